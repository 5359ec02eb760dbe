package photo_test

import (
	"fmt"
	"image"
	"strings"
	"sync"
	"testing"

	"github.com/kogge-fleet/kogge/internal/facedetect/facedetecttest"
	"github.com/kogge-fleet/kogge/kiosk/photo"
	camsim "github.com/kogge-fleet/kogge/simulators/devices/camera"
)

// previewConfig judges 640×480 previews of the simulator's capture mode.
func previewConfig() photo.Config {
	cfg := photo.DefaultConfig()
	m := camsim.CaptureMode()
	cfg.CaptureWidth, cfg.CaptureHeight = m.Width, m.Height
	return cfg
}

// newChecker returns a checker for cfg, one per distinct config: making
// one unpacks the cascades, which is slow under the race detector.
func newChecker(t testing.TB, cfg photo.Config) *photo.Checker {
	t.Helper()
	key := fmt.Sprintf("%+v", cfg)
	checkersMu.Lock()
	defer checkersMu.Unlock()
	if c, ok := checkers[key]; ok {
		return c
	}
	c, err := photo.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkers[key] = c
	return c
}

var (
	checkersMu sync.Mutex
	checkers   = map[string]*photo.Checker{}
)

func describe(a photo.Assessment) string {
	var b strings.Builder
	fmt.Fprintf(&b, "ok=%v faces=%d region=%v guidance=%v\n", a.OK, a.Faces, a.Region, a.Guidance)
	for _, c := range a.Checks {
		mark := "pass"
		if !c.Passed {
			mark = "FAIL"
		}
		fmt.Fprintf(&b, "  %s %-12s %10.3f mandatory=%v\n", mark, c.Name, c.Value, c.Mandatory)
	}
	return b.String()
}

// mandatoryPass lists every mandatory criterion as passing.
var mandatoryPass = map[string]bool{
	photo.CheckFaces: true, photo.CheckImageSize: true, photo.CheckHeadWidth: true, photo.CheckHeadHeight: true,
	photo.CheckEyePosition: true, photo.CheckCentre: true, photo.CheckEyeDistance: true, photo.CheckRoll: true,
	photo.CheckMouthClosed: true, photo.CheckExposure: true, photo.CheckSharpness: true, photo.CheckColourSpace: true,
}

// with returns mandatoryPass changed by the pairs name, passed.
func with(kv ...any) map[string]bool {
	m := map[string]bool{}
	for k, v := range mandatoryPass {
		m[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1].(bool)
	}
	return m
}

// TestCriteria runs the checks on real and synthetic faces, each with the
// expected pass or fail per criterion, whether the frame is acceptable and
// the first guidance.
func TestCriteria(t *testing.T) {
	gr := onGrey(t)
	good := frame(gr, 640, 480, 1, image.Pt(160, 40))
	white := frame(rgba(facedetecttest.Sample(t)), 640, 480, 1, image.Pt(160, 40))
	twoUp := frame(gr, 640, 480, 0.7, image.Pt(70, 80))
	twoUp = frame(twoUp, 640, 480, 1, image.Pt(0, 0))
	second := frame(gr, 640, 480, 0.7, image.Pt(350, 80))
	for y := 80; y < 360; y++ {
		copy(twoUp.Pix[y*twoUp.Stride+350*4:y*twoUp.Stride+574*4], second.Pix[y*second.Stride+350*4:])
	}
	scenario := func(name string) image.Image {
		return camsim.Render(camsim.Scenarios()[name], 60, 640, 480)
	}
	for _, tc := range []struct {
		name  string
		img   image.Image
		cfg   photo.Config
		want  map[string]bool // criteria checked: passed or not
		ok    bool
		guide string // the first guidance; "" none
	}{
		{"real: good", good, previewConfig(), with(photo.CheckEyesOpen, true, photo.CheckBackground, true, photo.CheckLighting, true), true, ""},
		{"real: own JPEG", viaJPEG(t, good), previewConfig(), with(photo.CheckBackground, true), true, ""},
		{"real: too far", frame(gr, 640, 480, 0.5, image.Pt(240, 140)), previewConfig(), with(photo.CheckImageSize, false), false, photo.GuideTooFar},
		{"real: too close", frame(gr, 640, 480, 1.5, image.Pt(80, -60)), previewConfig(), map[string]bool{photo.CheckHeadHeight: false, photo.CheckFaces: true}, false, photo.GuideTooClose},
		{"real: off to the left", frame(gr, 640, 480, 1, image.Pt(-70, 40)), previewConfig(), with(photo.CheckCentre, false), false, photo.GuideLeft},
		{"real: off to the right", frame(gr, 640, 480, 1, image.Pt(390, 40)), previewConfig(), with(photo.CheckCentre, false), false, photo.GuideRight},
		{"real: too high", frame(gr, 640, 480, 1, image.Pt(160, -105)), previewConfig(), map[string]bool{photo.CheckEyePosition: false}, false, photo.GuideLower},
		{"real: tilted 14°", rotate(good, 14), previewConfig(), with(photo.CheckRoll, false), false, photo.GuideLookStraight},
		{"real: tilted 4°", rotate(good, 4), previewConfig(), with(), true, ""},
		{"real: blurred", blur(good, 2), previewConfig(), with(photo.CheckSharpness, false), false, photo.GuideHoldStill},
		{"real: dark", light(good, 0.3, 0), previewConfig(), with(photo.CheckExposure, false), false, photo.GuideTooDark},
		{"real: bright", light(good, 1.3, 70), previewConfig(), with(photo.CheckExposure, false), false, photo.GuideTooBright},
		{"real: grey", grey(good), previewConfig(), with(photo.CheckColourSpace, false), false, ""},
		{"real: eyes closed", frame(closeEyes(gr), 640, 480, 1, image.Pt(160, 40)), previewConfig(), with(photo.CheckEyesOpen, false), true, photo.GuideEyesClosed},
		{"real: mouth open", frame(openMouth(gr), 640, 480, 1, image.Pt(160, 40)), previewConfig(), with(photo.CheckMouthClosed, false, photo.CheckEyesOpen, true), false, photo.GuideMouthOpen},
		{"real: white background", white, previewConfig(), with(photo.CheckBackground, false), true, photo.GuideBackground},
		{"real: two faces", twoUp, previewConfig(), map[string]bool{photo.CheckFaces: false}, false, photo.GuideSeveralFaces},
		{"real: nobody", frame(gr, 640, 480, 1, image.Pt(900, 900)), previewConfig(), map[string]bool{photo.CheckFaces: false}, false, photo.GuideNoFace},
		{"real: the sample as a capture", facedetecttest.Sample(t), photo.DefaultConfig(), with(photo.CheckImageSize, false, photo.CheckBackground, false), false, photo.GuideTooFar},
		{"synthetic: default scene", camsim.Render(camsim.DefaultScript(), 7, 640, 480), previewConfig(), with(photo.CheckEyesOpen, true, photo.CheckBackground, true, photo.CheckLighting, true), true, ""},
		{"synthetic: too far", scenario("too-far"), previewConfig(), with(photo.CheckImageSize, false), false, photo.GuideTooFar},
		{"synthetic: too close", scenario("too-close"), previewConfig(), map[string]bool{photo.CheckHeadWidth: false, photo.CheckHeadHeight: false}, false, photo.GuideTooClose},
		{"synthetic: off-centre", scenario("off-centre"), previewConfig(), with(photo.CheckCentre, false), false, photo.GuideLeft},
		{"synthetic: two faces", scenario("two-faces"), previewConfig(), map[string]bool{photo.CheckFaces: false}, false, photo.GuideSeveralFaces},
		{"synthetic: dark", scenario("dark"), previewConfig(), map[string]bool{photo.CheckExposure: false, photo.CheckBackground: false}, false, photo.GuideTooDark},
		{"synthetic: bright", scenario("bright"), previewConfig(), map[string]bool{photo.CheckExposure: false}, false, photo.GuideTooBright},
		{"synthetic: blurred", scenario("blurred"), previewConfig(), with(photo.CheckSharpness, false), false, photo.GuideHoldStill},
		{"synthetic: moving", scenario("moving"), previewConfig(), map[string]bool{photo.CheckSharpness: false}, false, photo.GuideHoldStill},
		{"synthetic: tilted", scenario("tilted"), previewConfig(), with(photo.CheckRoll, false), false, photo.GuideLookStraight},
		{"synthetic: eyes closed", scenario("eyes-closed"), previewConfig(), with(photo.CheckEyesOpen, false), true, photo.GuideEyesClosed},
		{"synthetic: mouth open", scenario("mouth-open"), previewConfig(), with(photo.CheckMouthClosed, false), false, photo.GuideMouthOpen},
		{"synthetic: nobody", scenario("no-face"), previewConfig(), map[string]bool{photo.CheckFaces: false}, false, photo.GuideNoFace},
		{"synthetic: mirrored preview", scenario("off-centre"), func() photo.Config { c := previewConfig(); c.Mirrored = true; return c }(), with(photo.CheckCentre, false), false, photo.GuideRight},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newChecker(t, tc.cfg).Assess(tc.img)
			bad := false
			for name, want := range tc.want {
				c, ok := a.Check(name)
				if !ok || c.Passed != want {
					t.Errorf("%s: judged %v, passed %v; want passed %v", name, ok, c.Passed, want)
					bad = true
				}
			}
			if a.OK != tc.ok {
				t.Errorf("ok %v, want %v", a.OK, tc.ok)
				bad = true
			}
			first := ""
			if len(a.Guidance) > 0 {
				first = a.Guidance[0]
			}
			if first != tc.guide {
				t.Errorf("first guidance %q, want %q", first, tc.guide)
				bad = true
			}
			if bad {
				t.Log(describe(a))
			}
		})
	}
}

// Several failures give their guidance in the order of importance.
func TestGuidanceOrder(t *testing.T) {
	img := light(rotate(frame(onGrey(t), 640, 480, 1, image.Pt(-70, 40)), 12), 0.36, 0)
	a := newChecker(t, previewConfig()).Assess(img)
	want := []string{photo.GuideLeft, photo.GuideLookStraight, photo.GuideTooDark, photo.GuideBackground}
	if fmt.Sprint(a.Guidance) != fmt.Sprint(want) {
		t.Fatalf("guidance %v, want %v\n%s", a.Guidance, want, describe(a))
	}
}
