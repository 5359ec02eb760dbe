package broker

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// limitedHandler passes on records from level min up, at most burst per
// window; it reports how many it dropped with the next record it passes.
// mochi logs a warning per misbehaving packet, which a flaky or hostile
// device could otherwise turn into a flood.
type limitedHandler struct {
	inner slog.Handler
	min   slog.Level
	lim   *limiter
}

type limiter struct {
	burst  int
	window time.Duration

	mu      sync.Mutex
	start   time.Time
	n       int
	dropped int
}

func newLimitedHandler(inner slog.Handler, min slog.Level, burst int, window time.Duration) *limitedHandler {
	return &limitedHandler{inner: inner, min: min, lim: &limiter{burst: burst, window: window}}
}

// allow reports whether a record may pass now and how many were dropped
// before it.
func (l *limiter) allow(now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.start) >= l.window {
		l.start, l.n = now, 0
	}
	if l.n >= l.burst {
		l.dropped++
		return false, 0
	}
	l.n++
	d := l.dropped
	l.dropped = 0
	return true, d
}

func (h *limitedHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return level >= h.min && h.inner.Enabled(ctx, level)
}

func (h *limitedHandler) Handle(ctx context.Context, r slog.Record) error {
	ok, dropped := h.lim.allow(r.Time)
	if !ok {
		return nil
	}
	r.AddAttrs(slog.String("component", "mqtt"))
	if dropped > 0 {
		r.AddAttrs(slog.Int("suppressed_before", dropped))
	}
	return h.inner.Handle(ctx, r)
}

func (h *limitedHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &limitedHandler{inner: h.inner.WithAttrs(as), min: h.min, lim: h.lim}
}

func (h *limitedHandler) WithGroup(name string) slog.Handler {
	return &limitedHandler{inner: h.inner.WithGroup(name), min: h.min, lim: h.lim}
}
