package fingerprint_test

import (
	"bytes"
	"context"
	"errors"
	"image"
	"io"
	"log/slog"
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/kogge-fleet/kogge/drivers"
	"github.com/kogge-fleet/kogge/drivers/fingerprint"
	fpsim "github.com/kogge-fleet/kogge/simulators/devices/fingerprint"
)

const bound = 10 * time.Second

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func startSim(t *testing.T, opts fpsim.Options) *fpsim.Simulator {
	t.Helper()
	opts.Logger = quiet()
	if opts.Link == "" {
		opts.Link = filepath.Join(t.TempDir(), "ttyFinger")
	}
	sim, err := fpsim.Start(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	return sim
}

func open(t *testing.T, sim *fpsim.Simulator, opts fingerprint.Options) *fingerprint.R30x {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	opts.Logger = quiet()
	if opts.PollInterval == 0 {
		opts.PollInterval = 5 * time.Millisecond
	}
	s, err := fingerprint.Open(ctx, sim.Endpoint(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// contrast is the mean standard deviation of the grey values over the
// 16×16 blocks that lie on the finger (darker than the empty sensor): the
// ridge contrast.
func contrast(g *image.Gray) float64 {
	b := g.Bounds()
	var total float64
	var blocks int
	for by := 0; by+16 <= b.Dy(); by += 16 {
		for bx := 0; bx+16 <= b.Dx(); bx += 16 {
			var sum, sq float64
			for y := by; y < by+16; y++ {
				for x := bx; x < bx+16; x++ {
					v := float64(g.Pix[y*g.Stride+x])
					sum += v
					sq += v * v
				}
			}
			m := sum / 256
			if m >= 215 {
				continue // background
			}
			total += math.Sqrt(max(sq/256-m*m, 0))
			blocks++
		}
	}
	if blocks == 0 {
		return 0
	}
	return total / float64(blocks)
}

func TestCapture(t *testing.T) {
	tests := []struct {
		name     string
		script   []fpsim.Step
		wantErr  error
		quality  func(float64) bool
		captures int
	}{
		{name: "good finger", script: []fpsim.Step{{Finger: fpsim.Good}}, quality: func(c float64) bool { return c > 40 }, captures: 1},
		{name: "poor finger", script: []fpsim.Step{{Finger: fpsim.Poor}}, quality: func(c float64) bool { return c < 25 }, captures: 1},
		{name: "finger arrives later", script: []fpsim.Step{{Finger: fpsim.NoFinger, Polls: 5}, {Finger: fpsim.Good}},
			quality: func(c float64) bool { return c > 40 }, captures: 1},
		{name: "no finger", script: []fpsim.Step{{Finger: fpsim.NoFinger}}, wantErr: fingerprint.ErrNoFinger},
		{name: "smudge", script: []fpsim.Step{{Finger: fpsim.Smudge}}, wantErr: fingerprint.ErrImageFailed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sim := startSim(t, fpsim.Options{Script: tc.script})
			s := open(t, sim, fingerprint.Options{})
			timeout := bound
			if tc.wantErr == fingerprint.ErrNoFinger {
				timeout = 300 * time.Millisecond
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			img, err := s.Capture(ctx)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("capture: %v, want %v", err, tc.wantErr)
				}
				if tc.wantErr == fingerprint.ErrNoFinger && !errors.Is(err, drivers.ErrTimeout) {
					t.Fatalf("no finger: %v does not wrap drivers.ErrTimeout", err)
				}
				if st := s.Status(); !st.OK() {
					t.Fatalf("status %v: the scanner itself works", st)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if b := img.Gray.Bounds(); b.Dx() != fingerprint.SensorWidth || b.Dy() != fingerprint.SensorHeight || img.PPI != 500 || img.Time.IsZero() {
				t.Fatalf("image %v at %d ppi, taken %v", b, img.PPI, img.Time)
			}
			if c := contrast(img.Gray); !tc.quality(c) {
				t.Fatalf("contrast %.1f out of range for a %s", c, tc.name)
			}
			if n := sim.Captures(); n != tc.captures {
				t.Fatalf("%d images taken, want %d", n, tc.captures)
			}
		})
	}
}

// TestCaptureExact checks every pixel: the uploaded image is the
// simulator's print for the scripted finger at 4 bits per pixel.
func TestCaptureExact(t *testing.T) {
	const w, h = fingerprint.SensorWidth, fingerprint.SensorHeight
	for _, tc := range []struct {
		finger fpsim.Finger
		print  func(w, h int, seed uint64) *image.Gray
	}{
		{fpsim.Good, fpsim.GoodImage},
		{fpsim.Poor, fpsim.PoorImage},
		{fpsim.Smudged, fpsim.SmudgedImage},
		{fpsim.Partial, fpsim.PartialImage},
	} {
		t.Run(tc.finger.String(), func(t *testing.T) {
			sim := startSim(t, fpsim.Options{Seed: 7, Script: []fpsim.Step{{Finger: tc.finger}}})
			s := open(t, sim, fingerprint.Options{})
			ctx, cancel := context.WithTimeout(context.Background(), bound)
			defer cancel()
			img, err := s.Capture(ctx)
			if err != nil {
				t.Fatal(err)
			}
			want, err := fingerprint.UnpackImage(fingerprint.PackImage(tc.print(w, h, 7)), w, h)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(img.Gray.Pix, want.Pix) {
				t.Fatalf("uploaded image differs from the simulator's %s print", tc.finger)
			}
		})
	}
}

func TestFingerPresent(t *testing.T) {
	sim := startSim(t, fpsim.Options{Script: []fpsim.Step{{Finger: fpsim.NoFinger}}})
	s := open(t, sim, fingerprint.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	if on, err := s.FingerPresent(ctx); err != nil || on {
		t.Fatalf("without a finger: %v, %v", on, err)
	}
	sim.SetFinger(fpsim.Good)
	if on, err := s.FingerPresent(ctx); err != nil || !on {
		t.Fatalf("with a finger: %v, %v", on, err)
	}
}

func TestLineFaults(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	sim := startSim(t, fpsim.Options{})
	s := open(t, sim, fingerprint.Options{ReplyTimeout: time.Second})

	// Noise before the answer is skipped.
	if err := sim.Inject([]byte{0x00, 0xEF, 0x13, 0xFF}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Capture(ctx); err != nil {
		t.Fatalf("capture after line noise: %v", err)
	}

	// A module that stops answering times out.
	sim.SetSilent(true)
	if _, err := s.FingerPresent(ctx); !errors.Is(err, drivers.ErrTimeout) {
		t.Fatalf("silent module: %v, want ErrTimeout", err)
	}
	if st := s.Status(); st.State != drivers.StateError {
		t.Fatalf("status of a silent module: %v", st)
	}
	sim.SetSilent(false)
	if _, err := s.FingerPresent(ctx); err != nil {
		t.Fatalf("module answers again: %v", err)
	}

	// Unplugged: the port goes away.
	sim.Unplug()
	if _, err := s.FingerPresent(ctx); !errors.Is(err, drivers.ErrDisconnected) {
		t.Fatalf("unplugged: %v, want ErrDisconnected", err)
	}
	if st := s.Status(); st.State != drivers.StateMissing {
		t.Fatalf("status when unplugged: %v", st)
	}
	// Plugged in again (the link follows the new port): the driver
	// reopens it by itself.
	if err := sim.Replug(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Capture(ctx); err != nil {
		t.Fatalf("capture after replug: %v", err)
	}
	if st := s.Status(); !st.OK() {
		t.Fatalf("status after replug: %v", st)
	}
}

func TestOpenErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	if _, err := fingerprint.Open(ctx, filepath.Join(t.TempDir(), "nothing"), fingerprint.Options{Logger: quiet()}); !errors.Is(err, drivers.ErrDisconnected) {
		t.Fatalf("open a missing port: %v, want ErrDisconnected", err)
	}
	sim := startSim(t, fpsim.Options{Password: 0x1234})
	if _, err := fingerprint.Open(ctx, sim.Endpoint(), fingerprint.Options{Logger: quiet()}); err == nil {
		t.Fatal("opened with the wrong password")
	}
	s := open(t, sim, fingerprint.Options{Password: 0x1234})
	if st := s.Status(); !st.OK() {
		t.Fatalf("status %v", st)
	}
	if _, err := fingerprint.Open(ctx, sim.Endpoint(), fingerprint.Options{Logger: quiet(), Baud: 1234}); err == nil {
		t.Fatal("odd baud rate accepted")
	}
}

func TestFake(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	f := fingerprint.NewFake()
	if on, _ := f.FingerPresent(ctx); on {
		t.Fatal("finger on a new fake")
	}
	got := make(chan fingerprint.Image, 1)
	go func() {
		img, err := f.Capture(ctx)
		if err != nil {
			t.Error(err)
		}
		got <- img
	}()
	f.Place(fpsim.GoodImage(fingerprint.SensorWidth, fingerprint.SensorHeight, 1))
	if img := <-got; img.Gray == nil || img.PPI != 500 {
		t.Fatalf("capture %+v", img)
	}
	f.Place(nil)
	short, scancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer scancel()
	if _, err := f.Capture(short); !errors.Is(err, fingerprint.ErrNoFinger) || !errors.Is(err, drivers.ErrTimeout) {
		t.Fatalf("capture without a finger: %v", err)
	}
	f.SetStatus(drivers.Status{State: drivers.StateMissing, Reason: "unplugged"})
	if _, err := f.Capture(ctx); !errors.Is(err, drivers.ErrDisconnected) {
		t.Fatalf("unplugged capture: %v", err)
	}
}
