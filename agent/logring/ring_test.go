package logring_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/kogge-fleet/kogge/agent/logring"
)

func TestTail(t *testing.T) {
	tests := []struct {
		name     string
		size     int
		write    int
		maxBytes int
		first    int // number of the oldest line returned
		count    int
	}{
		{"fewer than the ring", 10, 3, 1 << 20, 0, 3},
		{"wrapped", 10, 25, 1 << 20, 15, 10},
		{"exactly full", 5, 5, 1 << 20, 0, 5},
		{"byte bound", 10, 10, 3 * lineLen(), 7, 3},
		{"nothing fits", 10, 10, 10, 0, 0},
		{"empty", 4, 0, 1 << 20, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := logring.New(tt.size, slog.LevelInfo)
			log := slog.New(r.Handler())
			for i := range tt.write {
				log.Info(fmt.Sprintf("line-%03d", i))
			}
			log.Debug("below the level")
			out := r.Tail(tt.maxBytes)
			lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
			if tt.count == 0 {
				if len(out) != 0 {
					t.Fatalf("got %q, want nothing", out)
				}
				return
			}
			if len(lines) != tt.count {
				t.Fatalf("got %d lines, want %d: %q", len(lines), tt.count, out)
			}
			for i, l := range lines {
				if want := fmt.Sprintf("msg=line-%03d", tt.first+i); !strings.Contains(l, want) {
					t.Errorf("line %d = %q, want %s", i, l, want)
				}
			}
			if bytes.Contains(out, []byte("below the level")) {
				t.Error("a debug line got in at info level")
			}
		})
	}
}

// lineLen is the length of one formatted line in TestTail, found by
// formatting one.
func lineLen() int {
	r := logring.New(1, slog.LevelInfo)
	slog.New(r.Handler()).Info("line-000")
	return len(r.Tail(1 << 20))
}
