package health_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	gosync "sync"
	"testing"
	"time"

	"github.com/kogge-fleet/kogge/agent/health"
	"github.com/kogge-fleet/kogge/agent/store"
	"github.com/kogge-fleet/kogge/agent/sync"
	"github.com/kogge-fleet/kogge/protocol"
)

type fakeStore struct {
	mu gosync.Mutex
	st store.Stats
}

func (f *fakeStore) Stats(context.Context) (store.Stats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st, nil
}

func (f *fakeStore) set(fn func(*store.Stats)) {
	f.mu.Lock()
	fn(&f.st)
	f.mu.Unlock()
}

type fakeSync sync.Stats

func (f fakeSync) Stats() sync.Stats { return sync.Stats(f) }

type beats chan *protocol.Heartbeat

func (b beats) Send(_ context.Context, m protocol.Message) error {
	hb := m.(*protocol.Heartbeat)
	if err := hb.Validate(); err != nil {
		return err
	}
	b <- hb
	return nil
}

func (b beats) next(t *testing.T) *protocol.Heartbeat {
	t.Helper()
	select {
	case hb := <-b:
		return hb
	case <-time.After(10 * time.Second):
		t.Fatal("no heartbeat")
		return nil
	}
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func run(t *testing.T, r *health.Reporter) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
}

func TestHeartbeatFields(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	fs := &fakeStore{st: store.Stats{
		QueueDepth: 12, OldestUnsent: now.Add(-90 * time.Second), BudgetUsed: 100 << 20, BudgetTotal: 512 << 20, DiskFree: 3 << 30,
	}}
	ss := fakeSync{LastSync: now.Add(-time.Minute), ClockOffset: 1500 * time.Millisecond, ClockKnown: true}
	tests := []struct {
		name    string
		battery func() int
		want    int8
	}{
		{"no battery", nil, -1},
		{"battery", func() int { return 87 }, 87},
		{"battery out of range", func() int { return 140 }, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := health.New(fs, ss, make(beats), "kiosk-1.2.3", health.Options{Battery: tt.battery, Now: func() time.Time { return now }})
			if err != nil {
				t.Fatal(err)
			}
			r.SetPeripheral("printer", "escpos", protocol.PeripheralError, "out of paper")
			r.SetPeripheral("camera", "v4l2", protocol.PeripheralOK, "")
			hb, err := r.Heartbeat(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if hb.QueueDepth != 12 || hb.OldestUnsentMillis != 90_000 || hb.BudgetUsed != 100<<20 || hb.BudgetTotal != 512<<20 ||
				hb.DiskFree != 3<<30 || hb.Full || hb.Software != "kiosk-1.2.3" || hb.ClockOffsetMillis != 1500 ||
				hb.LastSync.Time() != now.Add(-time.Minute) || hb.Clock.Time() != now || hb.Battery != tt.want {
				t.Errorf("heartbeat %+v", hb)
			}
			if len(hb.Peripherals) != 2 || hb.Peripherals[0].Name != "camera" || hb.Peripherals[1].Reason != "out of paper" {
				t.Errorf("peripherals %+v", hb.Peripherals)
			}
			if err := hb.Validate(); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestHeartbeatOnChange(t *testing.T) {
	fs := &fakeStore{st: store.Stats{BudgetTotal: 1 << 20}}
	b := make(beats, 16)
	r, err := health.New(fs, fakeSync{}, b, "test", health.Options{Interval: time.Hour, CheckEvery: time.Millisecond, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	run(t, r)

	r.SetPeripheral("printer", "escpos", protocol.PeripheralOK, "")
	if hb := b.next(t); len(hb.Peripherals) != 1 {
		t.Fatalf("peripherals %+v", hb.Peripherals)
	}
	r.SetPeripheral("printer", "escpos", protocol.PeripheralOK, "") // no change
	r.SetPeripheral("printer", "escpos", protocol.PeripheralError, "jam")
	if hb := b.next(t); hb.Peripherals[0].State != protocol.PeripheralError {
		t.Fatalf("peripherals %+v", hb.Peripherals)
	}

	fs.set(func(s *store.Stats) { s.Full, s.BudgetUsed = true, 1<<20 })
	r.Poke()
	if hb := b.next(t); !hb.Full {
		t.Fatalf("heartbeat after the store filled up: %+v", hb)
	}
	fs.set(func(s *store.Stats) { s.Full, s.BudgetUsed = false, 1<<10 })
	r.Poke()
	if hb := b.next(t); hb.Full {
		t.Fatalf("heartbeat after the store had room again: %+v", hb)
	}
	select {
	case hb := <-b:
		t.Fatalf("an extra heartbeat %+v", hb)
	default:
	}
}

func TestHeartbeatInterval(t *testing.T) {
	b := make(beats, 16)
	r, err := health.New(&fakeStore{}, fakeSync{}, b, "test", health.Options{Interval: time.Hour, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	run(t, r)
	r.SetInterval(10 * time.Millisecond)
	for range 3 {
		b.next(t)
	}
}

type failing struct{}

func (failing) Stats(context.Context) (store.Stats, error) {
	return store.Stats{}, errors.New("disk I/O error")
}

func TestNewAndErrors(t *testing.T) {
	if _, err := health.New(&fakeStore{}, fakeSync{}, make(beats), "", health.Options{}); err == nil {
		t.Error("New accepted an empty software version")
	}
	if _, err := health.New(&fakeStore{}, fakeSync{}, make(beats), "x", health.Options{Interval: -1}); err == nil {
		t.Error("New accepted a negative interval")
	}
	r, _ := health.New(failing{}, fakeSync{}, make(beats), "x", health.Options{})
	if _, err := r.Heartbeat(context.Background()); err == nil {
		t.Error("Heartbeat hid a store error")
	}
}
