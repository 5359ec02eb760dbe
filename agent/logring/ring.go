// Package logring keeps a device's most recent log lines in memory, so that
// an admin can collect them with a command without shell access.
package logring

import (
	"bytes"
	"log/slog"
	gosync "sync"
)

// Ring holds the last lines written through its handler. It is safe for
// concurrent use.
type Ring struct {
	mu    gosync.Mutex
	lines [][]byte
	next  int
	full  bool
	h     slog.Handler
}

// New returns a ring of n lines (at least 1) whose Handler formats records
// as text from level up.
func New(n int, level slog.Leveler) *Ring {
	r := &Ring{lines: make([][]byte, max(n, 1))}
	r.h = slog.NewTextHandler(writer{r}, &slog.HandlerOptions{Level: level})
	return r
}

// Handler returns the slog.Handler that writes into the ring. Combine it
// with the app's handler (slog.NewMultiHandler).
func (r *Ring) Handler() slog.Handler { return r.h }

// writer receives one formatted record per Write (slog's text handler
// writes each record in one call).
type writer struct{ r *Ring }

func (w writer) Write(p []byte) (int, error) {
	line := bytes.Clone(p)
	w.r.mu.Lock()
	w.r.lines[w.r.next] = line
	w.r.next = (w.r.next + 1) % len(w.r.lines)
	w.r.full = w.r.full || w.r.next == 0
	w.r.mu.Unlock()
	return len(p), nil
}

// Tail returns the newest lines, oldest first, at most maxBytes in all;
// when they do not fit, the oldest are left out.
func (r *Ring) Tail(maxBytes int) []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.next
	if r.full {
		n = len(r.lines)
	}
	var keep [][]byte
	size := 0
	for i := range n {
		line := r.lines[(r.next-1-i+len(r.lines))%len(r.lines)]
		if size+len(line) > maxBytes {
			break
		}
		size += len(line)
		keep = append(keep, line)
	}
	out := make([]byte, 0, size)
	for i := len(keep) - 1; i >= 0; i-- {
		out = append(out, keep[i]...)
	}
	return out
}
