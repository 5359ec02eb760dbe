package ui

import (
	"bytes"
	"context"
	"image"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/test"

	"github.com/kogge-fleet/kogge/kiosk/flow"
	"github.com/kogge-fleet/kogge/kiosk/i18n"
)

func wantInputs(t *testing.T, s *fakeSession, want ...flow.Input) {
	t.Helper()
	got := s.take()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("inputs sent = %#v, want %#v", got, want)
	}
}

// TestWalkWholeFlow taps through every step of a session as a citizen
// would and checks what each screen shows and what it sends.
func TestWalkWholeFlow(t *testing.T) {
	h := newHarness(t, Options{Language: "de"})
	s := h.begin()
	docs := []string{"id-card", "passport", "temporary-id"}

	// Welcome, in the office's language: a touch anywhere starts.
	h.show(s, flow.View{Step: flow.StepWelcome, Languages: languages})
	h.wantText("Willkommen")
	h.wantText("Please touch the screen") // the call in the other languages
	h.wantText("يرجى لمس الشاشة")
	test.TapCanvas(h.u.win.Canvas(), fyne.NewPos(300, 400))
	wantInputs(t, s, flow.Start{})
	h.tap("start")
	wantInputs(t, s, flow.Start{})

	// Language: each under its own name.
	h.show(s, flow.View{Step: flow.StepLanguage, Languages: languages, Total: 9})
	h.wantText("Sprache wählen")
	for _, l := range languages {
		h.wantText(i18n.Name(l))
	}
	h.tapLabel("English")
	wantInputs(t, s, flow.ChooseLanguage{Tag: "en"})

	// Documents, now in English; Next waits for a choice.
	v := flow.View{Step: flow.StepDocuments, Language: "en", Languages: languages, Documents: docs, Progress: 1, Total: 9}
	h.show(s, v)
	h.wantText("What would you like to apply for?")
	h.wantText("Step 1 of 9")
	if !h.button("next").disabled {
		t.Error("Next is enabled before a document is chosen")
	}
	test.Tap(h.button("next"))
	wantInputs(t, s)
	h.tapLabel("Passport")
	wantInputs(t, s, flow.ToggleDocument{Kind: "passport"})
	v.Chosen = []string{"passport"}
	h.show(s, v)
	if b := h.button("doc:passport"); !b.selected {
		t.Error("the chosen passport is not shown as selected")
	}
	if h.button("doc:id-card").selected {
		t.Error("the ID card is shown as selected")
	}
	h.tapLabel("Next")
	wantInputs(t, s, flow.Next{})

	// Identification: the flow's status line, the PIN pad when the card
	// reader has no keypad, and skipping.
	iv := flow.View{Step: flow.StepIdentify, Language: "en", Message: "identify.insert-card", Progress: 2, Total: 9}
	h.show(s, iv)
	h.wantText("Place your ID card on the card reader.")
	if h.has("pin:1") {
		t.Error("PIN pad shown before the flow asks for the PIN")
	}
	iv.Message = "identify.enter-pin"
	h.show(s, iv)
	h.wantText("Enter your 6-digit PIN here on the screen.")
	for _, d := range "1234567" { // the seventh digit is ignored
		h.tap("pin:" + string(d))
	}
	h.wantText("● ● ● ● ● ●")
	h.tap("pin:correct")
	h.wantText("● ● ● ● ● ○")
	if !h.button("pin:ok").disabled {
		t.Error("the PIN can be confirmed with five digits")
	}
	h.tap("pin:9")
	wantInputs(t, s)
	typed := h.u.pin[:cap(h.u.pin)]
	h.tapLabel("Confirm PIN")
	wantInputs(t, s, flow.EnterPIN{PIN: "123459"})
	for _, c := range typed {
		if c != 0 {
			t.Fatalf("the PIN digits were not zeroed after sending: %q", typed)
		}
	}
	iv.Message, iv.Args = "identify.wrong-pin", map[string]string{"left": "2"}
	h.show(s, iv)
	h.wantText("The PIN was wrong. Tries left: 2")
	h.wantText("○ ○ ○ ○ ○ ○")
	h.tapLabel("Continue without ID card")
	wantInputs(t, s, flow.Skip{})

	// Photo: the live frame and the guidance; new frames are drawn in
	// place, other changes redraw the screen.
	f1, f2 := fakeFace(64, 48, 4), fakeFace(64, 48, -4)
	pv := flow.View{Step: flow.StepPhoto, Language: "en", Frame: f1, Guidance: []string{"photo.left", "photo.hold-still"},
		Attempt: 1, Attempts: 3, Progress: 3, Total: 9}
	h.show(s, pv)
	h.wantText("Move a little to the left.")
	h.wantText("Keep still.")
	h.wantText("Try 1 of 3")
	if h.u.screen.frame == nil || h.u.screen.frame.Image != f1 {
		t.Fatal("the photo screen does not show the camera frame")
	}
	before := h.u.screen
	pv.Frame = f2
	h.show(s, pv)
	if h.u.screen != before || h.u.screen.frame.Image != f2 {
		t.Error("a new frame redrew the screen instead of replacing the picture")
	}
	pv.Guidance = []string{"photo.too-close"}
	h.show(s, pv)
	if h.u.screen == before {
		t.Error("new guidance did not redraw the screen")
	}
	h.wantText("Move back a little.")
	if h.has("retry") || h.has("skip") {
		t.Error("retry or skip offered while the photo is being taken")
	}
	pv.Message, pv.Guidance = "photo.retry", nil
	h.show(s, pv)
	h.tapLabel("New photo")
	wantInputs(t, s, flow.Retry{})
	h.tapLabel("Do this at the counter")
	wantInputs(t, s, flow.Skip{})

	// Photo choice: tapping a photo picks it.
	h.show(s, flow.View{Step: flow.StepPhotoChoice, Language: "en", Candidates: []image.Image{fakeFace(31, 40, 0), fakeFace(31, 40, 2)}, Progress: 3, Total: 9})
	h.wantText("Photo 2")
	if len(h.u.screen.images) != 2 {
		t.Fatalf("photo choice shows %d photos, want 2", len(h.u.screen.images))
	}
	test.Tap(h.u.screen.images[1])
	wantInputs(t, s, flow.PickPhoto{Index: 1})

	// Fingers: retry while attempts are left, not after the last.
	h.show(s, flow.View{Step: flow.StepFingerRight, Language: "en", Message: "finger.low-quality", Attempt: 1, Attempts: 3, Progress: 4, Total: 9})
	h.wantText("Right index finger")
	h.wantText("That was not clear enough yet. Please try again.")
	h.tapLabel("Try again")
	wantInputs(t, s, flow.Retry{})
	h.show(s, flow.View{Step: flow.StepFingerLeft, Language: "en", Message: "finger.no-finger", Attempt: 3, Attempts: 3, Progress: 5, Total: 9})
	h.wantText("Left index finger")
	if h.has("retry") {
		t.Error("retry offered after the last attempt")
	}
	h.tapLabel("Do this at the counter")
	wantInputs(t, s, flow.Skip{})

	// Signature: strokes with millisecond times; clear starts over.
	h.show(s, flow.View{Step: flow.StepSignature, Language: "en", Progress: 6, Total: 9})
	if !h.button("done").disabled {
		t.Error("Done is enabled before anything is drawn")
	}
	pad := h.u.screen.pad
	stroke(h, pad, [2]float32{100, 100}, [2]float32{140, 120}, [2]float32{180, 90})
	wantInputs(t, s, flow.Touch{}) // the end of a stroke is activity
	if h.button("done").disabled {
		t.Error("Done stays disabled after drawing")
	}
	h.tapLabel("Clear")
	if !h.u.sig.empty() || !h.button("done").disabled {
		t.Error("Clear did not wipe the drawing")
	}
	pad = h.u.screen.pad // the screen was redrawn
	stroke(h, pad, [2]float32{10, 20}, [2]float32{30, 40}, [2]float32{50, 45}, [2]float32{5000, -7})
	test.Tap(pad) // a dot
	s.take()
	h.tapLabel("Done")
	in := s.take()
	if len(in) != 1 {
		t.Fatalf("Done sent %#v, want one SignatureDone", in)
	}
	sd, ok := in[0].(flow.SignatureDone)
	if !ok {
		t.Fatalf("Done sent %#v, want a SignatureDone", in[0])
	}
	w, ht := pad.area()
	if sd.W != w || sd.H != ht || w < 200 || ht < 200 {
		t.Errorf("signature area %d×%d, want the pad's %d×%d (at least 200×200)", sd.W, sd.H, w, ht)
	}
	if len(sd.Strokes) != 2 || len(sd.Strokes[0]) != 4 || len(sd.Strokes[1]) != 1 {
		t.Fatalf("strokes = %v, want one of 4 points and a dot", sd.Strokes)
	}
	// The drag's start and its first move arrive together, then 20 ms apart.
	want := []flow.Point{{X: 10, Y: 20, T: 0}, {X: 30, Y: 40, T: 0}, {X: 50, Y: 45, T: 20}, {X: w, Y: 0, T: 40}}
	if !reflect.DeepEqual(sd.Strokes[0], want) {
		t.Errorf("stroke = %v, want %v (clamped to the area)", sd.Strokes[0], want)
	}

	// Payment: the fee in the language's money format.
	pay := flow.View{Step: flow.StepPayment, Language: "en", FeeCents: 3700, Message: "payment.follow-terminal", Progress: 7, Total: 9}
	h.show(s, pay)
	h.wantText("€37.00")
	h.wantText("The fee is €37.00. Pay by card at the card terminal.")
	h.wantText("Follow the instructions on the card terminal.")
	pay.Message = "payment.declined"
	h.show(s, pay)
	h.tapLabel("Try again")
	wantInputs(t, s, flow.Retry{})
	h.tapLabel("Pay at the counter")
	wantInputs(t, s, flow.Skip{})

	// Review: what will be sent, what is left for the counter, consent.
	rv := flow.View{Step: flow.StepReview, Language: "en", Chosen: []string{"passport", "id-card"}, FeeCents: 3700,
		Counter: []string{"finger-7"}, Progress: 8, Total: 9}
	h.show(s, rv)
	for _, want := range []string{"Application: Passport, ID card", "Your photo", "Fingerprint of right index finger",
		"Your signature", "Fee paid: €37.00", "Still to be done at the counter:"} {
		h.wantText(want)
	}
	if h.showsText("Fingerprint of left index finger") != true {
		t.Error("the finger moved to the counter is not listed under the counter")
	}
	h.tapLabel("No")
	wantInputs(t, s, flow.Consent{Given: false})
	h.tapLabel("Yes, I agree")
	wantInputs(t, s, flow.Consent{Given: true})

	// Saving: nothing to tap but the text size.
	h.show(s, flow.View{Step: flow.StepSaving, Language: "en"})
	h.wantText("Your information is being encrypted and saved.")
	if h.has("cancel") || h.has("next") {
		t.Error("the saving screen offers buttons")
	}

	// Receipt: the number large, with its QR code.
	h.show(s, flow.View{Step: flow.StepReceipt, Language: "en", Number: "K7A-260504-0042-7", Message: "receipt.take"})
	h.wantText("K7A-260504-0042-7")
	h.wantText("Take your receipt. You will be called to the counter.")
	if !hasQRCode(h) {
		t.Error("the receipt screen shows no QR code")
	}
	h.tapLabel("Done")
	wantInputs(t, s, flow.Next{})
	h.end(s)
}

// stroke drags across the pad through the points, 20 ms apart.
func stroke(h *harness, p *signaturePad, pts ...[2]float32) {
	for i := 1; i < len(pts); i++ {
		if i > 1 {
			h.clock.advance(20 * time.Millisecond)
		}
		p.Dragged(dragTo(pts[i-1], pts[i]))
	}
	p.DragEnd()
}

func hasQRCode(h *harness) bool {
	found := false
	walk(h.u.root, func(o fyne.CanvasObject) {
		if img, ok := o.(*canvas.Image); ok && img.ScaleMode == canvas.ImageScalePixels && img.Image != nil {
			found = true
		}
	})
	return found
}

// TestStepsShowTheirText draws every step in every language and checks
// title and instruction, and that no placeholder is left unfilled.
func TestStepsShowTheirText(t *testing.T) {
	h := newHarness(t, Options{Language: "de"})
	s := h.begin()
	cat := i18n.Default()
	for _, lang := range languages {
		for _, sc := range scenes(lang) {
			h.show(s, sc.v)
			shown := lang
			if sc.v.Language == "" {
				shown = "de"
			}
			key := stepKeys[sc.v.Step]
			if got, want := h.u.screen.title.Text(), cat.T(shown, key+".title", nil); got != want {
				t.Errorf("%s %s: title %q, want %q", lang, sc.name, got, want)
			}
			if !h.showsText(cat.T(shown, key+".instruction", h.u.newBuild(screenSize, shown).args())) {
				t.Errorf("%s %s: instruction missing; texts %q", lang, sc.name, h.texts())
			}
			for _, txt := range h.texts() {
				if len(i18n.Placeholders(txt)) > 0 {
					t.Errorf("%s %s: unfilled placeholder in %q", lang, sc.name, txt)
				}
			}
			if sc.v.Message != "" && !h.showsText(cat.T(shown, sc.v.Message, h.u.newBuild(screenSize, shown).args())) {
				t.Errorf("%s %s: the text of %q is not on screen; texts %q", lang, sc.name, sc.v.Message, h.texts())
			}
		}
	}
}

// TestCancelOnEveryCitizenStep checks the cancel button is on every step
// the citizen works through, and only there.
func TestCancelOnEveryCitizenStep(t *testing.T) {
	h := newHarness(t, Options{})
	s := h.begin()
	for _, sc := range scenes("de") {
		h.show(s, sc.v)
		if citizenStep(sc.v.Step) != h.has("cancel") {
			t.Errorf("%s: cancel button shown = %v, want %v", sc.name, h.has("cancel"), citizenStep(sc.v.Step))
			continue
		}
		if !h.has("cancel") {
			continue
		}
		h.tapLabel("Abbrechen")
		wantInputs(t, s, flow.Cancel{})
		if !h.has("text-size") {
			t.Errorf("%s: no text-size switch", sc.name)
		}
	}
}

// TestTimeoutWarning checks the warning covers the screen, shows the time
// left and answers any touch with Touch.
func TestTimeoutWarning(t *testing.T) {
	h := newHarness(t, Options{})
	s := h.begin()
	v := scenes("de")[2].v // documents
	v.Warning, v.Remaining = true, 24*time.Second+300*time.Millisecond
	h.show(s, v)
	h.wantText("Brauchen Sie mehr Zeit?")
	h.wantText("Wenn Sie nichts tun, bricht das Gerät ab und löscht Ihre Daten. Verbleibende Zeit: 0:25")
	// The flow says the time left once; the screen counts down.
	h.clock.advance(time.Second)
	h.wantText("Wenn Sie nichts tun, bricht das Gerät ab und löscht Ihre Daten. Verbleibende Zeit: 0:24")
	h.clock.advance(time.Second)
	h.wantText("Wenn Sie nichts tun, bricht das Gerät ab und löscht Ihre Daten. Verbleibende Zeit: 0:23")
	h.clock.advance(time.Minute)
	h.wantText("Wenn Sie nichts tun, bricht das Gerät ab und löscht Ihre Daten. Verbleibende Zeit: 0:00")
	h.tapLabel("Ja, ich mache weiter")
	wantInputs(t, s, flow.Touch{})
	// A tap where the cancel button lies reaches the warning, not cancel.
	cancel := h.u.screen.buttons["cancel"]
	test.TapCanvas(h.u.win.Canvas(), absPos(cancel).AddXY(10, 10))
	wantInputs(t, s, flow.Touch{})
	v.Warning = false
	h.show(s, v)
	if h.u.warning != nil || h.showsText("Brauchen Sie mehr Zeit?") {
		t.Error("the warning stays after the flow withdrew it")
	}
	if h.u.stopTick != nil {
		t.Error("the countdown goes on after the warning ended")
	}
	test.TapCanvas(h.u.win.Canvas(), absPos(h.button("cancel")).AddXY(10, 10))
	wantInputs(t, s, flow.Cancel{})
}

// TestRightToLeft checks Arabic screens are mirrored: buttons swap
// sides, text aligns right, the progress bar fills from the right.
func TestRightToLeft(t *testing.T) {
	h := newHarness(t, Options{})
	s := h.begin()
	positions := func(lang string) (cancel, next float32, title *textBox) {
		h.show(s, scenes(lang)[2].v) // documents
		return absPos(h.button("cancel")).X, absPos(h.button("next")).X, h.u.screen.title
	}
	c, n, title := positions("de")
	if c >= n {
		t.Errorf("German: cancel at x=%v is not left of next at x=%v", c, n)
	}
	if r := runsOf(title); len(r) == 0 || r[0].pos.X > 1 {
		t.Errorf("German title is not left-aligned: %+v", r)
	}
	c, n, title = positions("ar")
	if c <= n {
		t.Errorf("Arabic: cancel at x=%v is not right of next at x=%v", c, n)
	}
	r := runsOf(title)
	if len(r) == 0 {
		t.Fatal("Arabic title has no text")
	}
	last := r[len(r)-1]
	if right := last.pos.X + last.size.Width; title.Size().Width-right > 1 {
		t.Errorf("Arabic title ends at x=%v of %v: not right-aligned", right, title.Size().Width)
	}
	if !h.u.screen.rtl {
		t.Error("Arabic screen not marked right to left")
	}
	var bar *progressBar
	walk(h.u.root, func(o fyne.CanvasObject) {
		if p, ok := o.(*progressBar); ok {
			bar = p
		}
	})
	if bar == nil || !bar.rtl {
		t.Fatal("Arabic progress bar missing or not right to left")
	}
	fill := test.WidgetRenderer(bar).(*progressRenderer).fill
	if got := fill.Position().X + fill.Size().Width; bar.Size().Width-got > 1 {
		t.Errorf("Arabic progress fill ends at %v of %v; it should fill from the right", got, bar.Size().Width)
	}
	// Choices put the tick box on the right.
	box := test.WidgetRenderer(h.button("doc:id-card")).(*buttonRenderer).box
	if bw := h.button("doc:id-card").Size().Width; box.Position().X < bw/2 {
		t.Errorf("Arabic tick box at x=%v of %v, want it on the right", box.Position().X, bw)
	}
}

func runsOf(tb *textBox) []placedRun {
	return test.WidgetRenderer(tb).(*textRenderer).runs
}

// TestTextSize checks the switch on every screen enlarges the text, and
// that the next citizen starts with normal text again.
func TestTextSize(t *testing.T) {
	h := newHarness(t, Options{})
	s := h.begin()
	h.show(s, scenes("de")[3].v)
	if got := h.u.screen.title.m.size; got != normalText.title {
		t.Fatalf("title size %v, want %v", got, normalText.title)
	}
	h.tapLabel("Aa  Große Schrift")
	if got := h.u.screen.title.m.size; got != largeText.title {
		t.Errorf("after the switch the title size is %v, want %v", got, largeText.title)
	}
	if h.button("cancel").textSize != largeText.button {
		t.Errorf("button text %v, want %v", h.button("cancel").textSize, largeText.button)
	}
	h.show(s, scenes("de")[4].v) // the setting holds for the next step
	if got := h.u.screen.title.m.size; got != largeText.title {
		t.Errorf("next step title size %v, want it to stay large", got)
	}
	if h.u.screen.buttons["cancel"].MinSize().Height < minTarget {
		t.Error("a button is smaller than the touch target")
	}
	h.tapLabel("Aa  Normale Schrift")
	if got := h.u.screen.title.m.size; got != normalText.title {
		t.Errorf("switching back gives %v, want %v", got, normalText.title)
	}
	h.tap("text-size")
	h.end(s)
	s2 := h.begin()
	h.show(s2, scenes("de")[0].v)
	if h.u.large {
		t.Error("large text carried over to the next citizen")
	}
}

// TestTouchTargets checks every button on every screen is at least 2 cm
// (minTarget) in both directions.
func TestTouchTargets(t *testing.T) {
	h := newHarness(t, Options{})
	s := h.begin()
	for _, sc := range append(scenes("de"), scenes("ar")...) {
		h.show(s, sc.v)
		walk(h.u.root, func(o fyne.CanvasObject) {
			if b, ok := o.(*button); ok {
				if sz := b.Size(); sz.Width < minTarget || sz.Height < minTarget {
					t.Errorf("%s: button %q is %v, smaller than %v", sc.name, b.label, sz, minTarget)
				}
			}
		})
	}
}

// TestUnknownMessageKey checks a key the catalogue lacks is not shown and
// is logged once.
func TestUnknownMessageKey(t *testing.T) {
	var buf bytes.Buffer
	h := newHarness(t, Options{Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	s := h.begin()
	v := scenes("de")[3].v
	v.Message = "identify.brand-new-state"
	h.show(s, v)
	if h.u.screen.status != nil {
		t.Errorf("a status line shows for an unknown key: %q", h.u.screen.status.Text())
	}
	for _, txt := range h.texts() {
		if strings.Contains(txt, "brand-new") {
			t.Errorf("the raw key reaches the screen: %q", txt)
		}
	}
	v.Progress++
	h.show(s, v)
	if n := strings.Count(buf.String(), "identify.brand-new-state"); n != 1 {
		t.Errorf("unknown key logged %d times, want once; log:\n%s", n, buf.String())
	}
}

// TestSessionsOneAfterAnother checks the UI takes the next session when
// one ends, and that it stops with an error when it gets none.
func TestSessionsOneAfterAnother(t *testing.T) {
	h := newHarness(t, Options{})
	for i := range 3 {
		s := h.begin()
		h.show(s, scenes("de")[i].v)
		h.tap("text-size")
		h.end(s)
	}

	a := test.NewTempApp(t)
	u, err := New(a, Options{Windowed: true})
	if err != nil {
		t.Fatal(err)
	}
	stop, errc, err := u.start(context.Background(), func(context.Context) flow.Session { return nil }, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	select {
	case err := <-errc:
		if err == nil || !strings.Contains(err.Error(), "gave none") {
			t.Errorf("Run error = %v, want one saying the kiosk gave no session", err)
		}
	case <-time.After(wait):
		t.Fatal("Sessions giving no session did not end the UI")
	}
	if _, _, err := u.start(context.Background(), nil, nil); err == nil {
		t.Error("start without Sessions succeeded")
	}
}

func TestOptions(t *testing.T) {
	if err := (Options{}).Validate(); err != nil {
		t.Errorf("zero Options: %v", err)
	}
	bad := []Options{
		{Language: "xx"},
		{Windowed: true, Size: fyne.NewSize(300, 200)},
		{AdminIdle: -time.Second},
	}
	for _, o := range bad {
		if err := o.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil, want an error", o)
		}
	}
	if _, err := New(test.NewTempApp(t), Options{Language: "xx"}); err == nil {
		t.Error("New accepted an unknown language")
	}
	if _, err := New(nil, Options{}); err == nil {
		t.Error("New accepted no app")
	}
	if got := clockTime(61*time.Second + time.Millisecond); got != "1:02" {
		t.Errorf("clockTime = %q, want 1:02 (rounded up)", got)
	}
	if got := clockTime(-time.Second); got != "0:00" {
		t.Errorf("clockTime of a negative duration = %q", got)
	}
}
