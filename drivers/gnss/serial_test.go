package gnss_test

import (
	"context"
	"errors"
	"math"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kogge-fleet/kogge/drivers"
	"github.com/kogge-fleet/kogge/drivers/gnss"
	gnsssim "github.com/kogge-fleet/kogge/simulators/devices/gnss"
)

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		<-tick.C
	}
}

// next returns the next position from ch within d.
func next(t *testing.T, ch <-chan gnss.Position, d time.Duration) gnss.Position {
	t.Helper()
	select {
	case p, ok := <-ch:
		if !ok {
			t.Fatal("watch channel closed")
		}
		return p
	case <-time.After(d):
		t.Fatalf("no position within %v", d)
	}
	panic("unreachable")
}

type rig struct {
	sim  *gnsssim.Simulator
	rcv  *gnss.Serial
	opts gnsssim.Options
}

// start runs a simulator and a driver on it; both stop at the test's end.
func start(t *testing.T, simOpts gnsssim.Options, opts gnss.Options) *rig {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	if simOpts.Interval == 0 {
		simOpts.Interval = 10 * time.Millisecond
	}
	simOpts.Start = time.Date(2025, 1, 6, 8, 0, 0, 0, time.UTC)
	simOpts.Dir = t.TempDir()
	sim, err := gnsssim.Start(ctx, simOpts)
	if err != nil {
		t.Fatal(err)
	}
	if opts.MinBackoff == 0 {
		opts.MinBackoff, opts.MaxBackoff = 5*time.Millisecond, 50*time.Millisecond
	}
	rcv, err := gnss.NewSerial(sim.Endpoint(), opts)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := rcv.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		sim.Close()
	})
	return &rig{sim: sim, rcv: rcv, opts: simOpts}
}

func TestSerialFollowsRoute(t *testing.T) {
	r := start(t, gnsssim.Options{Speed: 3}, gnss.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := r.rcv.Watch(ctx)
	for range 10 {
		p := next(t, ch, 5*time.Second)
		epoch := int(p.Time.Sub(r.opts.Start) / time.Second)
		want := r.sim.Truth(epoch)
		if math.Abs(p.Lat-want.Lat) > 1e-6 || math.Abs(p.Lon-want.Lon) > 1e-6 {
			t.Fatalf("epoch %d: position %.7f,%.7f, want %.7f,%.7f", epoch, p.Lat, p.Lon, want.Lat, want.Lon)
		}
		if math.Abs(p.Speed-3) > 0.01 || p.Satellites != 9 || p.HDOP != 0.9 || math.Abs(p.Accuracy-4.5) > 1e-9 {
			t.Fatalf("fix %+v: want 3 m/s, 9 satellites, HDOP 0.9, accuracy 4.5 m", p.Fix)
		}
	}
	waitFor(t, "a 3D fix", 5*time.Second, func() bool {
		p, err := r.rcv.Position(ctx)
		return err == nil && p.Mode == 3
	})
	if s := r.rcv.Status(); s.State != drivers.StateOK {
		t.Fatalf("status %v, want ok", s)
	}
	p, err := r.rcv.Position(ctx)
	if err != nil || p.Age < 0 || p.Age > time.Second {
		t.Fatalf("Position: %+v, %v; want a fresh fix", p, err)
	}
}

func TestSerialLossOfFix(t *testing.T) {
	r := start(t, gnsssim.Options{}, gnss.Options{})
	ctx := context.Background()
	if _, err := r.rcv.Position(ctx); err != nil {
		t.Fatal(err)
	}
	r.sim.LoseFix(1 << 20)
	waitFor(t, "degraded state", 5*time.Second, func() bool {
		s := r.rcv.Status()
		return s.State == drivers.StateDegraded && strings.Contains(s.Reason, "no satellite fix")
	})
	// The last fix stays available, with its growing age.
	p1, err := r.rcv.Position(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the fix to age", 5*time.Second, func() bool {
		p2, _ := r.rcv.Position(ctx)
		return p2.Received.Equal(p1.Received) && p2.Age > p1.Age
	})
	r.sim.LoseFix(0)
	waitFor(t, "fix regained", 5*time.Second, func() bool { return r.rcv.Status().OK() })
}

func TestSerialSurvivesGarbage(t *testing.T) {
	r := start(t, gnsssim.Options{}, gnss.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	next(t, r.rcv.Watch(ctx), 5*time.Second)
	before := r.rcv.Counters()
	r.sim.Garbage("")
	waitFor(t, "garbled lines counted", 5*time.Second, func() bool {
		return r.rcv.Counters().Garbled >= before.Garbled+4
	})
	ch := r.rcv.Watch(ctx)
	next(t, ch, 5*time.Second)
	next(t, ch, 5*time.Second)
	if s := r.rcv.Status(); !s.OK() {
		t.Fatalf("status %v after garbage, want ok", s)
	}
	if c := r.rcv.Counters(); c.Opens != 1 {
		t.Fatalf("%d opens: garbage must not make the driver reconnect", c.Opens)
	}
}

func TestSerialUnplugReplug(t *testing.T) {
	r := start(t, gnsssim.Options{}, gnss.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := r.rcv.Watch(ctx)
	next(t, ch, 5*time.Second)

	r.sim.Unplug()
	waitFor(t, "missing state", 5*time.Second, func() bool {
		return r.rcv.Status().State == drivers.StateMissing
	})
	if s := r.rcv.Status(); !strings.Contains(s.Reason, "not connected") {
		t.Fatalf("reason %q should say the receiver is not connected", s.Reason)
	}
	if err := r.sim.Replug(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a second open", 5*time.Second, func() bool { return r.rcv.Counters().Opens >= 2 })
	for range len(ch) {
		<-ch // drop a fix from before the unplug
	}
	p := next(t, ch, 5*time.Second)
	if p.Received.Before(time.Now().Add(-time.Second)) {
		t.Fatalf("fix after replug is old: %v", p.Received)
	}
	waitFor(t, "ok state", 5*time.Second, func() bool { return r.rcv.Status().OK() })
}

func TestSerialScriptedUnplug(t *testing.T) {
	r := start(t, gnsssim.Options{Script: []gnsssim.Event{
		{Epoch: 5, Kind: gnsssim.Unplug, Epochs: 10},
		{Epoch: 20, Kind: gnsssim.Garbage},
	}}, gnss.Options{})
	waitFor(t, "reconnect after the scripted unplug", 10*time.Second, func() bool {
		c := r.rcv.Counters()
		return c.Opens >= 2 && c.Garbled >= 4 && r.rcv.Status().OK()
	})
}

func TestSerialNoFixYet(t *testing.T) {
	r := start(t, gnsssim.Options{Script: []gnsssim.Event{{Epoch: 0, Kind: gnsssim.LoseFix, Epochs: 1 << 20}}}, gnss.Options{})
	waitFor(t, "sentences", 5*time.Second, func() bool { return r.rcv.Counters().Sentences > 0 })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := r.rcv.Position(ctx)
	if !errors.Is(err, gnss.ErrNoFix) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Position: %v, want ErrNoFix and the deadline", err)
	}
	if !strings.Contains(err.Error(), "no satellite fix") {
		t.Fatalf("error %q should give the receiver's state", err)
	}
}

func TestSerialSilentReceiverIsReopened(t *testing.T) {
	r := start(t, gnsssim.Options{Manual: true}, gnss.Options{SilenceTimeout: 100 * time.Millisecond})
	waitFor(t, "error state", 5*time.Second, func() bool {
		s := r.rcv.Status()
		return s.State == drivers.StateError && strings.Contains(s.Reason, "no valid NMEA")
	})
	waitFor(t, "a reopen", 5*time.Second, func() bool { return r.rcv.Counters().Opens >= 2 })
}

func TestSerialMissingPort(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	rcv, err := gnss.NewSerial(filepath.Join(t.TempDir(), "nothing"), gnss.Options{MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- rcv.Run(ctx) }()
	waitFor(t, "an open attempt", 5*time.Second, func() bool {
		return strings.Contains(rcv.Status().Reason, "no such file")
	})
	if s := rcv.Status(); s.State != drivers.StateMissing {
		t.Fatalf("status %v, want missing", s)
	}
	ch := rcv.Watch(context.Background())
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if _, ok := <-ch; ok {
		t.Fatal("watch channel still open after Run returned")
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, o := range []gnss.Options{
		{Baud: -1},
		{UERE: -1},
		{MinBackoff: time.Second, MaxBackoff: time.Millisecond},
	} {
		if _, err := gnss.NewSerial("/dev/null", o); err == nil {
			t.Errorf("options %+v accepted", o)
		}
	}
	if _, err := gnss.NewSerial("", gnss.Options{}); err == nil {
		t.Error("empty path accepted")
	}
}
