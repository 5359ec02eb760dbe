package ui

import (
	"flag"
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kogge-fleet/kogge/kiosk/flow"
)

// screenshotDir, when set, is where TestScreenshots writes the
// documentation's screenshots:
//
//	go test ./kiosk/ui -run TestScreenshots -args -screenshots="$PWD/docs/screenshots"
var screenshotDir = flag.String("screenshots", "", "write kiosk-*.png screenshots into this directory")

var languages = []string{"de", "en", "tr", "ar", "ru", "uk", "pl"}

// scene is a named view, as a session shows it.
type scene struct {
	name string
	v    flow.View
}

// pictures are the camera frame and photo candidates the scenes show,
// drawn once.
var pictures = sync.OnceValues(func() (image.Image, []image.Image) {
	return fakeFace(640, 480, 70), []image.Image{fakeFace(311, 400, 0), fakeFace(311, 400, 6), fakeFace(311, 400, -6)}
})

// scenes are one view of every step, in the flow's order, in lang.
func scenes(lang string) []scene {
	frame, candidates := pictures()
	docs := []string{"id-card", "passport", "temporary-id"}
	base := func(step flow.Step, progress int) flow.View {
		return flow.View{Step: step, Language: lang, Languages: languages, Documents: docs,
			Chosen: []string{"id-card"}, Number: "K7A-260504-0042-7", FeeCents: 3700,
			Progress: progress, Total: 9}
	}
	v := func(step flow.Step, progress int, f func(*flow.View)) flow.View {
		x := base(step, progress)
		if f != nil {
			f(&x)
		}
		return x
	}
	return []scene{
		// Before step 1 the language is the office's (German); the other
		// languages show their welcome as an office with that default would.
		{"welcome", v(flow.StepWelcome, 0, func(x *flow.View) {
			x.Chosen, x.Total = nil, 0
			if lang == "de" {
				x.Language = ""
			}
		})},
		{"language", v(flow.StepLanguage, 0, func(x *flow.View) { x.Chosen = nil })},
		{"documents", v(flow.StepDocuments, 1, nil)},
		{"identify", v(flow.StepIdentify, 2, func(x *flow.View) { x.Message = "identify.enter-pin" })},
		{"photo", v(flow.StepPhoto, 3, func(x *flow.View) {
			x.Frame = frame
			x.Guidance = []string{"photo.left", "photo.look-straight"}
			x.Attempt, x.Attempts = 1, 3
		})},
		{"photo-choice", v(flow.StepPhotoChoice, 3, func(x *flow.View) {
			x.Candidates = candidates
			x.Attempt, x.Attempts = 1, 3
		})},
		{"finger-right", v(flow.StepFingerRight, 4, func(x *flow.View) {
			x.Message = "finger.low-quality"
			x.Attempt, x.Attempts = 1, 3
		})},
		{"finger-left", v(flow.StepFingerLeft, 5, func(x *flow.View) { x.Message = "finger.place-left"; x.Attempt, x.Attempts = 1, 3 })},
		{"signature", v(flow.StepSignature, 6, func(x *flow.View) { x.Message = "signature.sign" })},
		{"payment", v(flow.StepPayment, 7, func(x *flow.View) { x.Message = "payment.follow-terminal" })},
		{"review", v(flow.StepReview, 8, func(x *flow.View) { x.Counter = []string{"finger-7"}; x.Message = "review.consent" })},
		{"saving", v(flow.StepSaving, 9, func(x *flow.View) { x.Message = "saving.wait" })},
		{"receipt", v(flow.StepReceipt, 9, func(x *flow.View) { x.Message = "receipt.take" })},
		{"counter", v(flow.StepCounter, 9, func(x *flow.View) {
			x.Message = "counter.save-failed"
			x.Counter = []string{"face", "finger-2", "finger-7", "signature", "fee"}
		})},
		{"cancelled", v(flow.StepCancelled, 0, func(x *flow.View) { x.Message = "cancelled.timeout" })},
		{"out-of-service", v(flow.StepOutOfService, 0, func(x *flow.View) {
			x.Message = "out-of-service.peripheral"
			x.Args = map[string]string{"peripheral": "camera", "reason": "no picture for 5 s"}
		})},
	}
}

// TestScreenshots draws every step in German and Arabic, the timeout
// warning, large text and the admin screen, and checks each picture has
// content. With -screenshots it writes them for docs/kiosk.md.
func TestScreenshots(t *testing.T) {
	dir := *screenshotDir
	// Without -screenshots a few pictures are enough to check drawing;
	// painting all of them takes most of this package's test time.
	sample := map[string]bool{"ar-04-photo": true, "de-timeout": true}
	h := newHarness(t, Options{Language: "de"})
	s := h.begin()
	shot := func(name string) {
		t.Helper()
		if dir == "" && !sample[name] {
			return
		}
		img := h.u.win.Canvas().Capture()
		checkPicture(t, name, img)
		if dir == "" {
			return
		}
		f, err := os.Create(filepath.Join(dir, "kiosk-"+name+".png"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := png.Encode(f, img); err != nil {
			t.Fatal(err)
		}
	}
	for _, lang := range []string{"de", "ar"} {
		for i, sc := range scenes(lang) {
			h.show(s, sc.v)
			if sc.v.Step == flow.StepSignature {
				drawName(h)
			}
			shot(fmt.Sprintf("%s-%02d-%s", lang, i, sc.name))
		}
		w := scenes(lang)[2].v
		w.Warning, w.Remaining = true, 25*time.Second
		h.show(s, w)
		shot(lang + "-timeout")
	}
	h.show(s, scenes("de")[4].v)
	h.tap("text-size")
	shot("de-large-text")
	h.tap("text-size")
	for range 5 {
		h.tapCorner()
	}
	for _, d := range "24" {
		h.tap("pin:" + string(d))
	}
	shot("admin-pin")
	for _, d := range "68" {
		h.tap("pin:" + string(d))
	}
	h.tap("pin:ok")
	shot("admin-status")
}

// checkPicture fails when a screenshot is empty or nearly one colour.
func checkPicture(t *testing.T, name string, img image.Image) {
	t.Helper()
	b := img.Bounds()
	if b.Dx() != int(screenSize.Width) || b.Dy() != int(screenSize.Height) {
		t.Errorf("%s: picture is %v, want %v", name, b.Size(), screenSize)
	}
	dark := 0
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			r, g, bl, _ := img.At(x, y).RGBA()
			if r+g+bl < 3*0x4000 {
				dark++
			}
		}
	}
	if dark < 500 {
		t.Errorf("%s: only %d dark pixels; the screen looks empty", name, dark)
	}
}

// drawName signs on the pad with two strokes.
func drawName(h *harness) {
	p := h.u.screen.pad
	if p == nil {
		h.t.Fatal("signature screen has no drawing area")
	}
	sz := p.Size()
	stroke := func(x0, y0 float32, pts [][2]float32) {
		prev := [2]float32{x0, y0}
		for _, q := range pts {
			h.clock.advance(15 * time.Millisecond)
			p.Dragged(dragTo(prev, q))
			prev = q
		}
		p.DragEnd()
	}
	y := sz.Height * 0.6
	var pts [][2]float32
	for i := 1; i <= 60; i++ {
		x := 80 + float32(i)*9
		pts = append(pts, [2]float32{x, y - 50*sinf(float32(i)/4)})
	}
	stroke(80, y, pts)
	stroke(700, y-80, [][2]float32{{720, y - 20}, {760, y + 10}, {800, y - 40}, {830, y - 60}})
}
