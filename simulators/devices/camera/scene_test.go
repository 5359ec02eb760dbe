package camera_test

import (
	"context"
	"fmt"
	"image"
	"image/jpeg"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/kogge-fleet/kogge/kiosk/photo"
	camsim "github.com/kogge-fleet/kogge/simulators/devices/camera"
)

func photoChecker(t *testing.T) *photo.Checker {
	t.Helper()
	cfg := photo.DefaultConfig()
	m := camsim.CaptureMode()
	cfg.CaptureWidth, cfg.CaptureHeight = m.Width, m.Height
	c, err := photo.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func failures(a photo.Assessment) string {
	s := fmt.Sprintf("guidance %v, faces %d;", a.Guidance, a.Faces)
	for _, c := range a.Checks {
		if !c.Passed {
			s += fmt.Sprintf(" %s=%.3f", c.Name, c.Value)
		}
	}
	return s
}

// The default scene, as the simulator serves it (JPEG), passes every
// mandatory photo check in the capture mode and in the preview mode, so a
// simulated kiosk session can take its photo.
func TestDefaultScenePassesPhotoChecks(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sim, err := camsim.Start(ctx, camsim.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	c := photoChecker(t)
	for _, m := range []struct{ w, h int }{{camsim.PreviewMode().Width, camsim.PreviewMode().Height}, {camsim.CaptureMode().Width, camsim.CaptureMode().Height}} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s?resolution=%dx%d", sim.SnapshotURL(), m.w, m.h), nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		img, err := jpeg.Decode(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if b := img.Bounds(); b.Dx() != m.w || b.Dy() != m.h {
			t.Fatalf("snapshot %v, want %dx%d", b, m.w, m.h)
		}
		a := c.Assess(img)
		if !a.OK {
			t.Fatalf("%dx%d: %s", m.w, m.h, failures(a))
		}
		if m.w == camsim.CaptureMode().Width {
			if _, err := c.Crop(img, a.Region); err != nil {
				t.Fatalf("crop the capture: %v", err)
			}
		}
	}
}

// Every scenario starts with acceptable frames and ends in the failure it
// is named for.
func TestScenarios(t *testing.T) {
	want := map[string]string{
		"too-far": photo.GuideTooFar, "too-close": photo.GuideTooClose, "off-centre": photo.GuideLeft,
		"two-faces": photo.GuideSeveralFaces, "dark": photo.GuideTooDark, "bright": photo.GuideTooBright,
		"blurred": photo.GuideHoldStill, "moving": photo.GuideHoldStill, "tilted": photo.GuideLookStraight,
		"eyes-closed": photo.GuideEyesClosed, "mouth-open": photo.GuideMouthOpen, "no-face": photo.GuideNoFace,
	}
	c := photoChecker(t)
	for name, script := range camsim.Scenarios() {
		t.Run(name, func(t *testing.T) {
			key, ok := want[name]
			if !ok {
				t.Fatalf("scenario %s has no expectation here", name)
			}
			if a := c.Assess(camsim.Render(script, 1, 640, 480)); !a.OK || len(a.Guidance) > 0 {
				t.Fatalf("lead-in frame: %s", failures(a))
			}
			a := c.Assess(camsim.Render(script, 60, 640, 480))
			if !slices.Contains(a.Guidance, key) {
				t.Fatalf("final frame: %s; want %s", failures(a), key)
			}
			if key != photo.GuideEyesClosed && a.OK {
				t.Fatalf("final frame acceptable: %s", failures(a))
			}
		})
	}
}

// Faces tilt and change expression as scripted.
func TestFaceOptions(t *testing.T) {
	base := camsim.Face{X: 0.5, Y: 0.5, Size: 0.6}
	plain := camsim.Render([]camsim.Step{{Faces: []camsim.Face{base}}}, 0, 320, 240)
	for _, f := range []camsim.Face{
		{X: 0.5, Y: 0.5, Size: 0.6, Roll: 10},
		{X: 0.5, Y: 0.5, Size: 0.6, EyesClosed: true},
		{X: 0.5, Y: 0.5, Size: 0.6, MouthOpen: true},
	} {
		img := camsim.Render([]camsim.Step{{Faces: []camsim.Face{f}}}, 0, 320, 240)
		if diff := differing(plain, img); diff < 50 {
			t.Errorf("%+v: only %d pixels differ from the plain face", f, diff)
		}
	}
	sway := []camsim.Step{{Faces: []camsim.Face{base}, Sway: 0.02}}
	if diff := differing(camsim.Render(sway, 0, 320, 240), camsim.Render(sway, 5, 320, 240)); diff < 50 {
		t.Errorf("a swaying face stands still: %d pixels differ", diff)
	}
	defocus := camsim.Render([]camsim.Step{{Faces: []camsim.Face{base}, Defocus: 0.01}}, 0, 320, 240)
	if diff := differing(plain, defocus); diff < 500 {
		t.Errorf("defocus changed only %d pixels", diff)
	}
}

func differing(a, b *image.RGBA) int {
	n := 0
	for i := 0; i < len(a.Pix); i += 4 {
		if a.Pix[i] != b.Pix[i] || a.Pix[i+1] != b.Pix[i+1] || a.Pix[i+2] != b.Pix[i+2] {
			n++
		}
	}
	return n
}
