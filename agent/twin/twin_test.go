package twin_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/kogge-fleet/kogge/agent/store"
	"github.com/kogge-fleet/kogge/agent/twin"
	"github.com/kogge-fleet/kogge/protocol"
	"github.com/kogge-fleet/kogge/protocol/seal"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// reports collects what the twin sends.
type reports chan *protocol.TwinReported

func (r reports) Send(_ context.Context, m protocol.Message) error {
	r <- m.(*protocol.TwinReported)
	return nil
}

func (r reports) next(t *testing.T) *protocol.TwinReported {
	t.Helper()
	select {
	case rep := <-r:
		return rep
	case <-time.After(10 * time.Second):
		t.Fatal("no twin report")
		return nil
	}
}

// app records what the app was asked to apply.
type app struct {
	mu      gosync.Mutex
	applied []uint64
	fail    uint64 // version whose Apply fails
}

func (a *app) apply(c twin.Config) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if c.Version == a.fail && c.Version != 0 {
		return errors.New("the printer cannot use this paper size")
	}
	a.applied = append(a.applied, c.Version)
	return nil
}

func (a *app) versions() []uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]uint64(nil), a.applied...)
}

func check(values map[string]any) error {
	if v, ok := values["paper"]; ok && v != "A4" {
		return errors.New("paper: only A4 is supported")
	}
	return nil
}

type rig struct {
	tw    *twin.Twin
	reps  reports
	app   *app
	level *slog.LevelVar
	stop  func()
}

func start(t *testing.T, st *store.Store, a *app) *rig {
	t.Helper()
	r := &rig{reps: make(reports, 16), app: a, level: new(slog.LevelVar)}
	tw, err := twin.New(st, r.reps, twin.Options{Check: check, Apply: a.apply, LogLevel: r.level, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	if err := tw.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.tw = tw
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tw.Run(ctx) }()
	var once gosync.Once
	r.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
		})
	}
	t.Cleanup(r.stop)
	return r
}

func openStore(t *testing.T, path string) *store.Store {
	t.Helper()
	st, err := store.Open(path, store.Options{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestTwin(t *testing.T) {
	path := filepath.Join(t.TempDir(), "device.db")
	st := openStore(t, path)
	a := &app{fail: 5}
	r := start(t, st, a)

	steps := []struct {
		name      string
		desired   protocol.TwinDesired
		report    bool   // a report follows
		applied   uint64 // version applied afterwards
		refused   uint64
		reason    string // part of the refusal reason
		heartbeat time.Duration
		level     slog.Level
	}{
		{
			name:    "valid",
			desired: protocol.TwinDesired{Version: 2, Config: map[string]any{"heartbeat_s": uint64(10), "log_level": "debug", "paper": "A4"}},
			report:  true, applied: 2, heartbeat: 10 * time.Second, level: slog.LevelDebug,
		},
		{
			name:    "heartbeat out of bounds",
			desired: protocol.TwinDesired{Version: 3, Config: map[string]any{"heartbeat_s": uint64(1)}},
			report:  true, applied: 2, refused: 3, reason: "heartbeat_s", heartbeat: 10 * time.Second, level: slog.LevelDebug,
		},
		{
			name:    "refused by the app's check",
			desired: protocol.TwinDesired{Version: 4, Config: map[string]any{"paper": "letter", "log_level": "loud"}},
			report:  true, applied: 2, refused: 4, reason: "only A4", heartbeat: 10 * time.Second, level: slog.LevelDebug,
		},
		{
			name:    "the app cannot apply it",
			desired: protocol.TwinDesired{Version: 5, Config: map[string]any{"log_level": "error"}},
			report:  true, applied: 2, refused: 5, reason: "paper size", heartbeat: 10 * time.Second, level: slog.LevelDebug,
		},
		{
			name:    "older version ignored",
			desired: protocol.TwinDesired{Version: 1, Config: map[string]any{"log_level": "error"}},
			applied: 2, heartbeat: 10 * time.Second, level: slog.LevelDebug,
		},
		{
			name:    "same version ignored",
			desired: protocol.TwinDesired{Version: 2, Config: map[string]any{"log_level": "error"}},
			applied: 2, heartbeat: 10 * time.Second, level: slog.LevelDebug,
		},
		{
			name:    "newer valid",
			desired: protocol.TwinDesired{Version: 7, Config: map[string]any{"heartbeat_s": 60.5, "log_level": "warn"}},
			report:  true, applied: 7, heartbeat: 60500 * time.Millisecond, level: slog.LevelWarn,
		},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			r.tw.Offer(&s.desired)
			if s.report {
				rep := r.reps.next(t)
				if rep.Version != s.applied || rep.Rejected != s.refused || !strings.Contains(rep.Reason, s.reason) {
					t.Errorf("report %+v: want applied %d, refused %d with %q", rep, s.applied, s.refused, s.reason)
				}
			} else {
				// Nothing is reported for an ignored version; a reconnect
				// report shows the state.
				r.tw.Reconnected()
				if rep := r.reps.next(t); rep.Version != s.applied {
					t.Errorf("report %+v: want applied %d", rep, s.applied)
				}
			}
			c := r.tw.Current()
			if c.Version != s.applied || c.Heartbeat != s.heartbeat || c.LogLevel != s.level || r.level.Level() != s.level {
				t.Errorf("current %+v (level var %v): want version %d, heartbeat %v, level %v",
					c, r.level.Level(), s.applied, s.heartbeat, s.level)
			}
		})
	}
	// The app applied 0 (defaults at load), 2, then 2 again after the
	// failed 5, then 7; nothing for the ignored ones.
	if got := a.versions(); !equal(got, []uint64{0, 2, 2, 7}) {
		t.Errorf("app applied %v", got)
	}

	// Restart: the applied configuration comes back from the store.
	r.stop()
	st.Close()
	st2 := openStore(t, path)
	a2 := &app{}
	r2 := start(t, st2, a2)
	if c := r2.tw.Current(); c.Version != 7 || c.Heartbeat != 60500*time.Millisecond || r2.level.Level() != slog.LevelWarn {
		t.Errorf("after restart: %+v", c)
	}
	if got := a2.versions(); !equal(got, []uint64{7}) {
		t.Errorf("after restart the app applied %v", got)
	}
	// The retained desired arrives again on connect: ignored, reported.
	r2.tw.Offer(&protocol.TwinDesired{Version: 7, Config: map[string]any{"log_level": "warn"}})
	r2.tw.Reconnected()
	if rep := r2.reps.next(t); rep.Version != 7 {
		t.Errorf("report after restart %+v", rep)
	}
}

func equal(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestOptionsValidate(t *testing.T) {
	for _, o := range []twin.Options{
		{MinHeartbeat: time.Minute, MaxHeartbeat: time.Second},
		{DefaultHeartbeat: time.Millisecond},
		{DefaultHeartbeat: 2 * time.Hour},
		{OpTimeout: -1},
	} {
		if _, err := twin.New(nil, nil, o); err == nil {
			t.Errorf("New accepted %+v", o)
		}
	}
}

func TestOfficeKeys(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "device.db"))
	r := start(t, st, &app{})
	pub, _, err := seal.GenerateKey("buergeramt-mitte", "2026-1")
	if err != nil {
		t.Fatal(err)
	}
	offices := map[string]any{"buergeramt-mitte": map[string]any{"key_id": pub.KeyID, "public_key": pub.PublicKey}}
	r.tw.Offer(&protocol.TwinDesired{Version: 1, Config: map[string]any{twin.KeyOffices: offices}})
	if rep := r.reps.next(t); rep.Version != 1 || rep.Rejected != 0 {
		t.Fatalf("report %+v: want version 1 applied", rep)
	}
	if got := r.tw.Current().Offices["buergeramt-mitte"]; got != pub {
		t.Fatalf("office key %+v, want %+v", got, pub)
	}
	for i, bad := range []any{
		"not an object",
		map[string]any{"ordnungsamt": "age1…"},
		map[string]any{"ordnungsamt": map[string]any{"key_id": "k", "public_key": "age1broken"}},
		map[string]any{"ordnungsamt": map[string]any{"public_key": pub.PublicKey}},
	} {
		v := uint64(i + 2)
		r.tw.Offer(&protocol.TwinDesired{Version: v, Config: map[string]any{twin.KeyOffices: bad}})
		rep := r.reps.next(t)
		if rep.Rejected != v || !strings.Contains(rep.Reason, "offices") {
			t.Errorf("offices %v: report %+v, want a refusal naming offices", bad, rep)
		}
		if got := r.tw.Current().Offices["buergeramt-mitte"]; got != pub {
			t.Errorf("a refused configuration replaced the office key: %+v", got)
		}
	}
}
