package camera_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kogge-fleet/kogge/drivers"
	"github.com/kogge-fleet/kogge/drivers/camera"
	camsim "github.com/kogge-fleet/kogge/simulators/devices/camera"
)

const bound = 10 * time.Second

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// small modes keep the race detector's JPEG work light.
var testModes = []camera.Mode{{Width: 160, Height: 120, FPS: 30}, {Width: 320, Height: 240, FPS: 30}, {Width: 240, Height: 320, FPS: 30}}

func startSim(t *testing.T, opts camsim.Options) *camsim.Simulator {
	t.Helper()
	if opts.Modes == nil {
		opts.Modes = testModes
	}
	opts.Logger = quiet()
	sim, err := camsim.Start(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	return sim
}

func startCam(t *testing.T, sim *camsim.Simulator, want camera.Mode) (*camera.MJPEG, camera.Mode) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	c := camera.NewMJPEG(sim.Endpoint(), camera.MJPEGOptions{Logger: quiet()})
	m, err := c.Start(ctx, want)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Stop() })
	return c, m
}

func next(t *testing.T, c camera.Camera) camera.Frame {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	f, err := c.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// isSkin matches the synthetic faces' skin tone (after JPEG).
func isSkin(r, g, b uint32) bool {
	r, g, b = r>>8, g>>8, b>>8
	return r > 190 && r < 250 && g > 160 && g < 215 && b > 125 && b < 185 && r > g+15 && g > b+10
}

// skin returns the share of skin pixels and their centroid's x, as a
// fraction of the width, and the share of skin pixels in the left and
// right thirds.
func skin(img image.Image) (share, cx, left, right float64) {
	b := img.Bounds()
	var n, sx, nl, nr float64
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if !isSkin(r, g, bl) {
				continue
			}
			n++
			sx += float64(x - b.Min.X)
			switch {
			case x-b.Min.X < b.Dx()/3:
				nl++
			case x-b.Min.X >= 2*b.Dx()/3:
				nr++
			}
		}
	}
	total := float64(b.Dx() * b.Dy())
	if n == 0 {
		return 0, 0, 0, 0
	}
	return n / total, sx / n / float64(b.Dx()), nl / total, nr / total
}

func brightness(img image.Image) float64 {
	b := img.Bounds()
	var sum float64
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			sum += float64(r+g+bl) / 3 / 257
		}
	}
	return sum / float64(b.Dx()*b.Dy())
}

func TestNegotiation(t *testing.T) {
	sim := startSim(t, camsim.Options{})
	for _, tc := range []struct {
		want, got camera.Mode
	}{
		{camera.Mode{Width: 300, Height: 220, FPS: 30}, camera.Mode{Width: 320, Height: 240, FPS: 30}},
		{camera.Mode{Width: 100, Height: 80, FPS: 10}, camera.Mode{Width: 160, Height: 120, FPS: 10}},
		{camera.Mode{Width: 230, Height: 330, FPS: 60}, camera.Mode{Width: 240, Height: 320, FPS: 30}},
	} {
		t.Run(tc.want.String(), func(t *testing.T) {
			c, m := startCam(t, sim, tc.want)
			if m != tc.got {
				t.Fatalf("negotiated %v, want %v", m, tc.got)
			}
			var last camera.Frame
			for range 3 {
				f := next(t, c)
				if b := f.Image.Bounds(); b.Dx() != m.Width || b.Dy() != m.Height {
					t.Fatalf("frame of %v in mode %v", b, m)
				}
				if f.Seq <= last.Seq || f.Time.Before(last.Time) {
					t.Fatalf("frame %d at %v after frame %d at %v", f.Seq, f.Time, last.Seq, last.Time)
				}
				last = f
			}
			if s := c.Status(); !s.OK() {
				t.Fatalf("status %v", s)
			}
		})
	}
}

func TestScene(t *testing.T) {
	for _, tc := range []struct {
		name   string
		script []camsim.Step
		check  func(t *testing.T, frames []camera.Frame)
	}{
		{
			name: "face moves right and grows",
			script: []camsim.Step{{Frames: 12, Faces: []camsim.Face{{X: 0.3, Y: 0.5, Size: 0.4}}, To: []camsim.Face{{X: 0.7, Y: 0.5, Size: 0.6}}},
				{Faces: []camsim.Face{{X: 0.7, Y: 0.5, Size: 0.6}}}},
			check: func(t *testing.T, frames []camera.Frame) {
				share0, x0, _, _ := skin(frames[0].Image)
				share1, x1, _, _ := skin(frames[len(frames)-1].Image)
				if x1-x0 < 0.2 || share1 <= share0*1.5 {
					t.Fatalf("face at x %.2f (%.3f of the frame), then x %.2f (%.3f)", x0, share0, x1, share1)
				}
			},
		},
		{
			name:   "two faces",
			script: []camsim.Step{{Faces: []camsim.Face{{X: 0.2, Y: 0.5, Size: 0.4}, {X: 0.8, Y: 0.5, Size: 0.4}}}},
			check: func(t *testing.T, frames []camera.Frame) {
				_, _, l, r := skin(frames[0].Image)
				if l < 0.02 || r < 0.02 {
					t.Fatalf("skin in the left third %.3f, right third %.3f", l, r)
				}
			},
		},
		{
			name: "lighting drops",
			script: []camsim.Step{{Frames: 8, Faces: []camsim.Face{{X: 0.5, Y: 0.5, Size: 0.5}}},
				{Faces: []camsim.Face{{X: 0.5, Y: 0.5, Size: 0.5}}, Light: -0.6}},
			check: func(t *testing.T, frames []camera.Frame) {
				b0, b1 := brightness(frames[0].Image), brightness(frames[len(frames)-1].Image)
				if b1 > b0*0.6 {
					t.Fatalf("brightness %.0f, then %.0f", b0, b1)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sim := startSim(t, camsim.Options{Script: tc.script})
			c, _ := startCam(t, sim, camera.Mode{Width: 160, Height: 120, FPS: 30})
			// Read until the stream is well past the script's moves.
			var frames []camera.Frame
			for len(frames) == 0 || frames[len(frames)-1].Seq < 16 {
				frames = append(frames, next(t, c))
			}
			tc.check(t, frames)
		})
	}
}

func TestImageFiles(t *testing.T) {
	dir := t.TempDir()
	for i, c := range []color.RGBA{{0xFF, 0, 0, 0xFF}, {0, 0, 0xFF, 0xFF}} {
		img := image.NewRGBA(image.Rect(0, 0, 64, 48))
		for p := 0; p < len(img.Pix); p += 4 {
			img.Pix[p], img.Pix[p+1], img.Pix[p+2], img.Pix[p+3] = c.R, c.G, c.B, c.A
		}
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%02d.png", i)))
		if err != nil {
			t.Fatal(err)
		}
		png.Encode(f, img)
		f.Close()
	}
	sim := startSim(t, camsim.Options{Dir: dir})
	c, _ := startCam(t, sim, camera.Mode{Width: 160, Height: 120, FPS: 30})
	seen := map[string]bool{}
	for len(seen) < 2 {
		f := next(t, c)
		r, _, b, _ := f.Image.At(80, 60).RGBA()
		want := "red"
		if f.Seq%2 == 0 {
			want = "blue"
		}
		got := "red"
		if b > r {
			got = "blue"
		}
		if got != want {
			t.Fatalf("frame %d is %s, want %s (the files alternate)", f.Seq, got, want)
		}
		seen[got] = true
	}
}

func TestStreamFaults(t *testing.T) {
	sim := startSim(t, camsim.Options{})
	c, m := startCam(t, sim, camera.Mode{Width: 160, Height: 120, FPS: 30})
	next(t, c)

	// A hanging sensor: frames are late.
	sim.Freeze(true)
	for try := 0; ; try++ {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		_, err := c.Next(ctx)
		cancel()
		if err == nil && try < 2 {
			continue // a frame that was on its way
		}
		if !errors.Is(err, drivers.ErrTimeout) {
			t.Fatalf("frozen camera: %v, want ErrTimeout", err)
		}
		break
	}
	if s := c.Status(); s.State != drivers.StateDegraded {
		t.Fatalf("status %v, want degraded", s)
	}
	sim.Freeze(false)
	next(t, c)

	// Unplugged: the stream breaks off.
	sim.Drop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), bound)
		_, err := c.Next(ctx)
		cancel()
		if err == nil {
			continue // frames that were already on their way
		}
		if !errors.Is(err, drivers.ErrDisconnected) {
			t.Fatalf("dropped camera: %v, want ErrDisconnected", err)
		}
		break
	}
	if s := c.Status(); s.State != drivers.StateMissing {
		t.Fatalf("status %v, want missing", s)
	}
	// Plugged in again: a restart streams.
	ctx2, cancel2 := context.WithTimeout(context.Background(), bound)
	defer cancel2()
	if m2, err := c.Start(ctx2, m); err != nil || m2 != m {
		t.Fatalf("restart: %v, %v", m2, err)
	}
	next(t, c)
}

func TestStartErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := camera.NewMJPEG("http://"+addr+"/stream", camera.MJPEGOptions{Logger: quiet()})
	if _, err := c.Next(ctx); !errors.Is(err, camera.ErrNotStarted) {
		t.Fatalf("next before start: %v", err)
	}
	if _, err := c.Start(ctx, camera.Mode{Width: 160, Height: 120, FPS: 30}); !errors.Is(err, drivers.ErrDisconnected) {
		t.Fatalf("start without a camera: %v, want ErrDisconnected", err)
	}
	if s := c.Status(); s.State != drivers.StateMissing {
		t.Fatalf("status %v", s)
	}
	sim := startSim(t, camsim.Options{})
	bad := camera.NewMJPEG(strings.TrimSuffix(sim.Endpoint(), "/stream")+"/nothing", camera.MJPEGOptions{Logger: quiet()})
	if _, err := bad.Start(ctx, camera.Mode{}); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("start on a wrong path: %v", err)
	}
	if s := bad.Status(); s.State != drivers.StateError {
		t.Fatalf("status %v, want error", s)
	}
}

func TestFake(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	f := camera.NewFake(testModes, func(seq uint64, m camera.Mode) image.Image {
		return image.NewGray(image.Rect(0, 0, m.Width, m.Height))
	})
	if _, err := f.Next(ctx); !errors.Is(err, camera.ErrNotStarted) {
		t.Fatalf("next before start: %v", err)
	}
	m, err := f.Start(ctx, camera.Mode{Width: 310, Height: 250, FPS: 25})
	if err != nil || m != testModes[1] {
		t.Fatalf("start: %v, %v", m, err)
	}
	if fr := next(t, f); fr.Seq != 1 || fr.Image.Bounds().Dx() != 320 {
		t.Fatalf("frame %+v", fr)
	}
	f.SetStatus(drivers.Status{State: drivers.StateMissing, Reason: "unplugged"})
	if _, err := f.Next(ctx); !errors.Is(err, drivers.ErrDisconnected) {
		t.Fatalf("next when unplugged: %v", err)
	}
}

// FuzzPartReader offers arbitrary bytes as an MJPEG stream: the reader
// never panics, never returns a part over the limit, and never returns
// more body bytes than it was given.
func FuzzPartReader(f *testing.F) {
	f.Add([]byte("--b\r\nContent-Type: image/jpeg\r\nContent-Length: 3\r\n\r\nabc\r\n--b\r\nContent-Type: image/jpeg\r\n\r\nxyz\r\n--b--\r\n"))
	f.Add([]byte("junk\r\nb\r\nContent-Length: 2\r\n\r\nhi\r\n--b\r\n\r\n\r\n--b--"))
	f.Add([]byte("--b\r\nContent-Length: 99999999\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		const limit = 1 << 10
		pr := camera.NewPartReader(bytes.NewReader(data), "b", limit)
		total := 0
		for range 100 {
			p, err := pr.Next()
			if err != nil {
				return
			}
			if len(p.Body) > limit {
				t.Fatalf("part of %d bytes over the limit", len(p.Body))
			}
			total += len(p.Body)
			if total > len(data) {
				t.Fatalf("%d body bytes from %d input bytes", total, len(data))
			}
		}
	})
}

func TestPartReader(t *testing.T) {
	in := "preamble\r\n--frame\r\nContent-Type: image/jpeg\r\nContent-Length: 5\r\nX-Timestamp: 17\r\n\r\nAB\r\nC\r\n" +
		"frame\r\nContent-Type: image/jpeg\r\n\r\nno length\r\nline two\r\n--frame  \r\n\r\nlast\r\n--frame--\r\nafter"
	pr := camera.NewPartReader(strings.NewReader(in), "--frame", 1024)
	var bodies []string
	for {
		p, err := pr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, string(p.Body))
		if len(bodies) == 1 && p.Header.Get("X-Timestamp") != "17" {
			t.Fatalf("header %v", p.Header)
		}
	}
	want := []string{"AB\r\nC", "no length\r\nline two", "last"}
	if fmt.Sprint(bodies) != fmt.Sprint(want) {
		t.Fatalf("bodies %q, want %q", bodies, want)
	}
	big := camera.NewPartReader(strings.NewReader("--b\r\nContent-Length: 2000\r\n\r\n"), "b", 1024)
	if _, err := big.Next(); !errors.Is(err, camera.ErrPartTooLarge) {
		t.Fatalf("oversized part: %v", err)
	}
}
