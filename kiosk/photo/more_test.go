package photo_test

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"math"
	"strings"
	"sync"
	"testing"

	"github.com/kogge-fleet/kogge/internal/config"
	"github.com/kogge-fleet/kogge/kiosk/photo"
	camsim "github.com/kogge-fleet/kogge/simulators/devices/camera"
)

func TestConfig(t *testing.T) {
	if err := photo.DefaultConfig().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for _, tc := range []struct {
		name, want string
		change     func(*photo.Config)
	}{
		{"inverted head width", "head-width", func(c *photo.Config) { c.HeadWidth = photo.Range{Min: 0.8, Max: 0.5} }},
		{"quality", "jpeg-quality", func(c *photo.Config) { c.JPEGQuality = 0 }},
		{"half a capture mode", "capture mode", func(c *photo.Config) { c.CaptureWidth = 2592 }},
		{"capture mode too small", "cannot give a 1244x1600 photo", func(c *photo.Config) { c.CaptureWidth, c.CaptureHeight = 1600, 1200 }},
		{"unknown criterion", `"yaw"`, func(c *photo.Config) { c.Mandatory = append(c.Mandatory, "yaw") }},
		{"roll", "max-roll", func(c *photo.Config) { c.MaxRoll = -1 }},
		{"NaN", "min-sharpness", func(c *photo.Config) { c.MinSharpness = math.NaN() }},
		{"search", "search-size", func(c *photo.Config) { c.SearchSize = 10 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := photo.DefaultConfig()
			tc.change(&cfg)
			err := cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one about %s", err, tc.want)
			}
			if _, err := photo.New(cfg, nil); err == nil {
				t.Fatal("New accepted the config")
			}
		})
	}
}

func TestCheckCameraMode(t *testing.T) {
	cfg := photo.DefaultConfig()
	for _, tc := range []struct {
		w, h int
		ok   bool
	}{{2592, 1944, true}, {1244, 1600, true}, {1600, 1200, false}, {1200, 1600, false}, {640, 480, false}, {1920, 1080, false}} {
		err := cfg.CheckCameraMode(tc.w, tc.h)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, photo.ErrCameraTooSmall)) {
			t.Errorf("%dx%d: %v, want ok %v", tc.w, tc.h, err, tc.ok)
		}
	}
	// The simulator's capture mode is fit for photos; its preview is not.
	m := camsim.CaptureMode()
	if err := cfg.CheckCameraMode(m.Width, m.Height); err != nil {
		t.Fatal(err)
	}
	p := camsim.PreviewMode()
	if err := cfg.CheckCameraMode(p.Width, p.Height); err == nil {
		t.Fatal("preview mode accepted as a capture mode")
	}
}

// A preview frame and the capture frame of the same scene are judged
// alike: the region scales with the frame and the ratios stay.
func TestScaleAware(t *testing.T) {
	cfg := previewConfig()
	c := newChecker(t, cfg)
	script := camsim.DefaultScript()
	small := c.Assess(camsim.Render(script, 0, 640, 480))
	bigFrame := camsim.Render(script, 0, cfg.CaptureWidth, cfg.CaptureHeight)
	big := c.Assess(bigFrame)
	if !small.OK || !big.OK {
		t.Fatalf("preview:\n%s\ncapture:\n%s", describe(small), describe(big))
	}
	k := float64(cfg.CaptureWidth) / 640
	for _, edge := range []struct {
		name       string
		small, big int
	}{
		{"left", small.Region.Min.X, big.Region.Min.X}, {"top", small.Region.Min.Y, big.Region.Min.Y},
		{"width", small.Region.Dx(), big.Region.Dx()}, {"height", small.Region.Dy(), big.Region.Dy()},
	} {
		if d := math.Abs(float64(edge.small)*k - float64(edge.big)); d > 0.03*float64(big.Region.Dx()) {
			t.Errorf("region %s: %d in the preview is %.0f at capture size, but the capture gives %d", edge.name, edge.small, float64(edge.small)*k, edge.big)
		}
	}
	for _, name := range []string{photo.CheckImageSize, photo.CheckHeadWidth, photo.CheckHeadHeight, photo.CheckEyePosition,
		photo.CheckCentre, photo.CheckEyeDistance, photo.CheckExposure} {
		s, _ := small.Check(name)
		b, _ := big.Check(name)
		if d := math.Abs(s.Value-b.Value) / max(math.Abs(b.Value), 1e-9); d > 0.05 {
			t.Errorf("%s: %.3f in the preview, %.3f at capture size", name, s.Value, b.Value)
		}
	}
	// The same preview judged as its own capture is too small.
	own := newChecker(t, photo.DefaultConfig()).Assess(camsim.Render(script, 0, 640, 480))
	if c, _ := own.Check(photo.CheckImageSize); c.Passed || own.OK {
		t.Fatalf("a 640x480 capture passed:\n%s", describe(own))
	}

	// The photo cut from the capture frame meets the rules itself.
	jpg, err := c.Crop(bigFrame, big.Region)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jpeg.Decode(bytes.NewReader(jpg))
	if err != nil {
		t.Fatal(err)
	}
	if b := out.Bounds(); b.Dx() != 1244 || b.Dy() != 1600 {
		t.Fatalf("photo %v, want 1244x1600", b)
	}
	// Judged as a frame itself, the photo's own crop region is a few
	// pixels smaller than it (the head is measured afresh), so image-size
	// does not apply; every other mandatory criterion does.
	again := newChecker(t, photo.DefaultConfig()).Assess(out)
	for _, ch := range again.Checks {
		if ch.Mandatory && !ch.Passed && ch.Name != photo.CheckImageSize {
			t.Fatalf("the photo fails %s:\n%s", ch.Name, describe(again))
		}
	}
	for _, name := range []string{photo.CheckHeadHeight, photo.CheckEyePosition, photo.CheckCentre, photo.CheckEyeDistance} {
		p, _ := big.Check(name)
		q, _ := again.Check(name)
		if d := math.Abs(p.Value-q.Value) / max(math.Abs(q.Value), 1e-9); d > 0.06 {
			t.Errorf("%s: predicted %.3f, the photo has %.3f", name, p.Value, q.Value)
		}
	}
}

// A frame whose corner is not at the origin (a sub-image) is judged the
// same, with the region in its coordinates.
func TestFrameOrigin(t *testing.T) {
	c := newChecker(t, previewConfig())
	img := camsim.Render(camsim.DefaultScript(), 0, 640, 480)
	a := c.Assess(img)
	canvas := image.NewRGBA(image.Rect(-50, 30, 700, 560))
	off := image.Pt(-20, 60)
	for y := range 480 {
		copy(canvas.Pix[canvas.PixOffset(off.X, off.Y+y):], img.Pix[y*img.Stride:(y+1)*img.Stride])
	}
	sub := canvas.SubImage(image.Rectangle{off, off.Add(image.Pt(640, 480))})
	b := c.Assess(sub)
	if !a.OK || !b.OK {
		t.Fatalf("origin:\n%s\nshifted:\n%s", describe(a), describe(b))
	}
	if d := b.Region.Sub(off).Min.Sub(a.Region.Min); d.X*d.X+d.Y*d.Y > 8 || b.Region.Dx() < a.Region.Dx()-3 || b.Region.Dx() > a.Region.Dx()+3 {
		t.Fatalf("region %v in the shifted frame, %v at the origin", b.Region, a.Region)
	}
	if !b.Region.In(sub.Bounds()) {
		t.Fatalf("region %v outside the frame %v", b.Region, sub.Bounds())
	}
}

func TestCrop(t *testing.T) {
	// A tenth of the photo's size keeps the test fast; the full size is
	// cut in TestScaleAware.
	cfg := photo.DefaultConfig()
	cfg.OutputWidth, cfg.OutputHeight, cfg.MinEyeDistance = 124, 160, 30
	c := newChecker(t, cfg)
	// A frame of four quadrants: the crop keeps them where they were.
	f := image.NewRGBA(image.Rect(100, 50, 400, 410))
	quad := []color.RGBA{{200, 40, 40, 255}, {40, 200, 40, 255}, {40, 40, 200, 255}, {230, 230, 230, 255}}
	for y := f.Rect.Min.Y; y < f.Rect.Max.Y; y++ {
		for x := f.Rect.Min.X; x < f.Rect.Max.X; x++ {
			i := 0
			if x >= 250 {
				i++
			}
			if y >= 230 {
				i += 2
			}
			f.SetRGBA(x, y, quad[i])
		}
	}
	// 1.5 times the photo, the quadrants' corner in the middle of the
	// region, which is in the middle of the photo.
	region := image.Rect(250-93, 230-120, 250+93, 230+120)
	img, err := c.CropImage(f, region)
	if err != nil {
		t.Fatal(err)
	}
	if img.Rect.Dx() != 124 || img.Rect.Dy() != 160 {
		t.Fatalf("photo %v", img.Rect)
	}
	for _, p := range []struct {
		x, y int
		c    color.RGBA
	}{{10, 10, quad[0]}, {110, 10, quad[1]}, {10, 150, quad[2]}, {110, 150, quad[3]}, {61, 79, quad[0]}, {62, 80, quad[3]}} {
		if got := img.RGBAAt(p.x, p.y); got != p.c {
			t.Errorf("photo at %d,%d: %v, want %v", p.x, p.y, got, p.c)
		}
	}
	// 186 source columns onto 124: target column 61 takes source columns
	// 91.5 to 93 of 93 red ones: still pure red; no ringing, no shift.
	if got := img.RGBAAt(61, 10); got != quad[0] {
		t.Errorf("left of the boundary %v", got)
	}
	// Shifted by one source pixel, target column 61 takes source columns
	// 249.5 to 251: a third red, two thirds green.
	mixed, err := c.CropImage(f, region.Add(image.Pt(1, 0)))
	if err != nil {
		t.Fatal(err)
	}
	if got := mixed.RGBAAt(61, 10); math.Abs(float64(got.R)-93.3) > 1 || math.Abs(float64(got.G)-146.7) > 1 {
		t.Errorf("straddling pixel %v, want (93, 147): a third of %v and two thirds of %v", got, quad[0], quad[1])
	}
	jpg, err := c.Crop(f, region)
	if err != nil {
		t.Fatal(err)
	}
	cfgj, err := jpeg.DecodeConfig(bytes.NewReader(jpg))
	if err != nil || cfgj.Width != 124 || cfgj.Height != 160 || cfgj.ColorModel != color.YCbCrModel {
		t.Fatalf("JPEG %+v, %v", cfgj, err)
	}

	for _, tc := range []struct {
		name   string
		region image.Rectangle
		is     error
	}{
		{"narrower than the photo", image.Rect(200, 100, 323, 260), photo.ErrUpscale},
		{"one pixel short", image.Rect(200, 100, 324, 259), photo.ErrUpscale},
		{"outside the frame", image.Rect(0, 0, 124, 160), nil},
		{"empty", image.Rectangle{}, nil},
	} {
		_, err := c.Crop(f, tc.region)
		if err == nil || (tc.is != nil && !errors.Is(err, tc.is)) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	if _, err := c.Crop(f, image.Rect(200, 100, 324, 260)); err != nil {
		t.Errorf("exactly the photo's size: %v", err)
	}
}

func TestBest(t *testing.T) {
	at := func(m, o int) photo.Assessment { return photo.Assessment{Mandatory: m, Optional: o} }
	for _, tc := range []struct {
		name  string
		in    []photo.Assessment
		best  int
		equal []int
	}{
		{"none", nil, -1, nil},
		{"one", []photo.Assessment{at(3, 1)}, 0, []int{0}},
		{"mandatory first", []photo.Assessment{at(12, 0), at(11, 3)}, 0, []int{0}},
		{"then optional", []photo.Assessment{at(12, 1), at(12, 3), at(12, 2)}, 1, []int{1}},
		{"then newest, ties reported", []photo.Assessment{at(12, 3), at(10, 3), at(12, 3), at(12, 2), at(12, 3)}, 4, []int{4, 2, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			best, equal := photo.Best(tc.in)
			if best != tc.best || !equalInts(equal, tc.equal) {
				t.Fatalf("best %d among %v, want %d among %v", best, equal, tc.best, tc.equal)
			}
		})
	}
}

func equalInts(a, b []int) bool {
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

// padThreshold is the kiosk flow's default: a score above it is an attack.
const padThreshold = 0.5

func TestPAD(t *testing.T) {
	c := newChecker(t, previewConfig())
	var live, screen []image.Image
	for n := range 6 {
		f := camsim.Render(camsim.DefaultScript(), n, 640, 480)
		live = append(live, viaJPEG(t, f))
		screen = append(screen, viaJPEG(t, moire(f)))
	}
	still := []image.Image{live[0], live[0], live[0], live[0]}
	print := blur(rgba(live[0]), 2)
	gr := onGrey(t)
	real := frame(gr, 640, 480, 1, image.Pt(160, 40))
	var realLive []image.Image
	for i := range 4 {
		realLive = append(realLive, frame(gr, 640, 480, 1, image.Pt(160+3*i, 40+2*(i%2))))
	}
	for _, tc := range []struct {
		name   string
		frames []image.Image
		attack bool
	}{
		{"live synthetic face", live, false},
		{"live real face", realLive, false},
		{"one frame of a real face", []image.Image{real}, false},
		{"a photo on a stand", still, true},
		{"a blurred print on a stand", []image.Image{print, print, print}, true},
		{"a screen replay", screen, true},
		{"nobody", []image.Image{image.NewGray(image.Rect(0, 0, 64, 48))}, true},
		{"no frames", nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := c.PAD(tc.frames)
			if s < 0 || s > 1 || (s > padThreshold) != tc.attack {
				t.Fatalf("score %.3f, threshold %.2f, want an attack: %v", s, padThreshold, tc.attack)
			}
		})
	}
}

// moire overlays a fine pixel grid, as a screen filmed by the camera shows.
func moire(img *image.RGBA) *image.RGBA {
	out := image.NewRGBA(img.Rect)
	copy(out.Pix, img.Pix)
	for y := out.Rect.Min.Y; y < out.Rect.Max.Y; y++ {
		for x := out.Rect.Min.X; x < out.Rect.Max.X; x++ {
			if x%2 == 0 || y%3 == 0 {
				i := out.PixOffset(x, y)
				for c := range 3 {
					out.Pix[i+c] = uint8(float64(out.Pix[i+c]) * 0.55)
				}
			}
		}
	}
	return out
}

type fixedPAD float64

func (p fixedPAD) Score([]image.Image) float64 { return float64(p) }

func TestPluggablePAD(t *testing.T) {
	for _, tc := range []struct {
		pad  fixedPAD
		want float64
	}{{0.25, 0.25}, {7, 1}, {-1, 0}, {fixedPAD(math.NaN()), 1}} {
		c, err := photo.New(photo.DefaultConfig(), tc.pad)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.PAD(nil); got != tc.want {
			t.Errorf("detector says %v: score %v, want %v", float64(tc.pad), got, tc.want)
		}
	}
}

func TestConcurrentAssess(t *testing.T) {
	c := newChecker(t, previewConfig())
	frames := []image.Image{
		camsim.Render(camsim.DefaultScript(), 0, 640, 480),
		camsim.Render(camsim.Scenarios()["two-faces"], 60, 640, 480),
	}
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for i := range 4 {
		wg.Go(func() {
			a := c.Assess(frames[i%2])
			if want := i%2 == 0; a.OK != want {
				errs <- describe(a)
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// FuzzAssess judges arbitrary small images, raw and as decoded from
// arbitrary bytes: no panic, regions inside the frame, faces judged first.
func FuzzAssess(f *testing.F) {
	f.Add(uint8(32), []byte{1, 2, 3, 4, 5, 6, 7, 8})
	f.Add(uint8(1), []byte("\xff\xd8\xff\xe0 not a jpeg"))
	var buf bytes.Buffer
	jpeg.Encode(&buf, camsim.Render(camsim.DefaultScript(), 0, 64, 48), nil)
	f.Add(uint8(64), buf.Bytes())
	c, err := photo.New(photo.DefaultConfig(), nil)
	if err != nil {
		f.Fatal(err)
	}
	check := func(t *testing.T, img image.Image) {
		a := c.Assess(img)
		if len(a.Checks) == 0 || a.Checks[0].Name != photo.CheckFaces {
			t.Fatalf("checks %+v", a.Checks)
		}
		if !a.Region.Empty() && !a.Region.In(img.Bounds()) {
			t.Fatalf("region %v outside %v", a.Region, img.Bounds())
		}
		if !a.Region.Empty() {
			if _, err := c.CropImage(img, a.Region); err == nil && (a.Region.Dx() < 1244 || a.Region.Dy() < 1600) {
				t.Fatalf("cropped a region of %v", a.Region)
			}
		}
	}
	f.Fuzz(func(t *testing.T, w uint8, data []byte) {
		if cfg, err := jpeg.DecodeConfig(bytes.NewReader(data)); err == nil && cfg.Width*cfg.Height <= 1<<16 {
			if img, err := jpeg.Decode(bytes.NewReader(data)); err == nil {
				check(t, img)
			}
		}
		if w == 0 || len(data) < 4 || len(data) > 1<<14 {
			return
		}
		rgba := &image.RGBA{Pix: data[:len(data)/4*4], Stride: 4 * int(w), Rect: image.Rect(0, 0, int(w), len(data)/4/int(w))}
		if rgba.Rect.Dy() > 0 {
			check(t, rgba)
		}
		check(t, &image.Gray{Pix: data, Stride: int(w), Rect: image.Rect(3, 5, 3+int(w), 5+len(data)/int(w))})
	})
}

// The rules load from the kiosk's configuration like every other setting.
func TestConfigFile(t *testing.T) {
	cfg := photo.DefaultConfig()
	err := config.Decode(&cfg, []byte(`{"head-width": {"min": 0.55}, "capture-width": 2592, "capture-height": 1944,
		"mandatory": ["faces", "roll"], "min-sharpness": 55.5}`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HeadWidth != (photo.Range{Min: 0.55, Max: 0.75}) || cfg.CaptureWidth != 2592 || len(cfg.Mandatory) != 2 || cfg.MinSharpness != 55.5 {
		t.Fatalf("decoded %+v", cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := config.Print(&out, &cfg); err != nil || !strings.Contains(out.String(), `"min": 0.55`) {
		t.Fatalf("printed %q, %v", out.String(), err)
	}
}
