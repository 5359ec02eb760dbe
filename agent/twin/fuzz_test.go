package twin_test

import (
	"context"
	"log/slog"
	gosync "sync"
	"testing"
	"time"

	"github.com/kogge-fleet/kogge/agent/twin"
	"github.com/kogge-fleet/kogge/protocol"
)

// memStore keeps values in memory.
type memStore struct {
	mu gosync.Mutex
	m  map[string][]byte
}

func (s *memStore) GetValue(_ context.Context, k string) ([]byte, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[k]
	return v, ok, nil
}

func (s *memStore) PutValue(_ context.Context, k string, v []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[k] = v
	return nil
}

// FuzzDesired offers arbitrary desired documents (as they arrive on the
// twin topic) to a twin: it never panics, always reports, and what it
// applies stays within the built-in bounds and survives a restart.
func FuzzDesired(f *testing.F) {
	now := time.Now()
	for _, d := range []*protocol.TwinDesired{
		{Version: 1, Config: map[string]any{"heartbeat_s": uint64(10), "log_level": "debug"}},
		{Version: 2, Config: map[string]any{"heartbeat_s": -3.5, "log_level": []any{"x"}}},
		{Version: 3, Config: map[string]any{"heartbeat_s": "ten", "nested": map[string]any{"a": uint64(1)}}},
		{Version: 1 << 62},
	} {
		b, err := protocol.Encode(protocol.NewEnvelope("dev-1", 1, now, d))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0xa0})
	f.Fuzz(func(t *testing.T, payload []byte) {
		env, err := protocol.DecodeOn(protocol.TopicRoot+"dev-1/twin", payload)
		if err != nil {
			return // the sync engine drops it
		}
		d := env.Body.(*protocol.TwinDesired)
		st := &memStore{m: map[string][]byte{}}
		reps := make(reports, 4)
		opts := twin.Options{Logger: quiet(), LogLevel: new(slog.LevelVar)}
		tw, err := twin.New(st, reps, opts)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- tw.Run(ctx) }()
		tw.Offer(d)
		rep := reps.next(t)
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if err := rep.Validate(); err != nil {
			t.Fatalf("invalid report %+v: %v", rep, err)
		}
		c := tw.Current()
		switch {
		case rep.Version == d.Version:
			if c.Version != d.Version {
				t.Fatalf("reported %d, runs %d", rep.Version, c.Version)
			}
		case rep.Rejected == d.Version:
			if rep.Reason == "" || c.Version != 0 {
				t.Fatalf("refusal %+v, runs %d", rep, c.Version)
			}
		default:
			t.Fatalf("report %+v for version %d", rep, d.Version)
		}
		if c.Heartbeat < 5*time.Second || c.Heartbeat > time.Hour {
			t.Fatalf("heartbeat %v out of bounds", c.Heartbeat)
		}
		// A restart applies the same configuration again.
		tw2, err := twin.New(st, reps, opts)
		if err != nil {
			t.Fatal(err)
		}
		if err := tw2.Load(context.Background()); err != nil {
			t.Fatalf("load after applying %+v: %v", d, err)
		}
		if c2 := tw2.Current(); c2.Version != c.Version || c2.Heartbeat != c.Heartbeat || c2.LogLevel != c.LogLevel {
			t.Fatalf("after restart %+v, before %+v", c2, c)
		}
	})
}
