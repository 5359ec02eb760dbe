package flow_test

import (
	"bytes"
	"context"
	"errors"
	"image"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/agent"
	"github.com/kogge-fleet/kogge/drivers"
	"github.com/kogge-fleet/kogge/drivers/eid"
	"github.com/kogge-fleet/kogge/drivers/payment"
	"github.com/kogge-fleet/kogge/kiosk/flow"
	"github.com/kogge-fleet/kogge/kiosk/flow/flowtest"
	"github.com/kogge-fleet/kogge/protocol/casefile"
)

func TestSuccess(t *testing.T) {
	h := newHarness(t, options{})
	h.start(flow.SessionOptions{})

	v := h.step(flow.StepWelcome)
	if v.Number == "" || v.Total != 10 || v.Progress != 0 {
		t.Fatalf("welcome: number %q, progress %d/%d; want a number and 0/10", v.Number, v.Progress, v.Total)
	}
	if _, err := flow.ParseNumber(v.Number); err != nil {
		t.Fatalf("number %q: %v", v.Number, err)
	}
	number := v.Number
	h.refused(flow.Next{})
	h.send(flow.Start{})
	v = h.step(flow.StepLanguage)
	if !slices.Equal(v.Languages, flow.DefaultLanguages()) || v.Progress != 1 {
		t.Fatalf("language view: %+v", v)
	}
	h.refused(flow.ChooseLanguage{Tag: "xx"})
	h.send(flow.ChooseLanguage{Tag: "tr"})
	v = h.step(flow.StepDocuments)
	if v.Language != "tr" || !slices.Equal(v.Documents, h.cfg.Documents) {
		t.Fatalf("documents view: %+v", v)
	}
	h.send(flow.Next{})
	h.msg(flow.StepDocuments, flow.MsgDocumentsNone)
	h.send(flow.ToggleDocument{Kind: casefile.ServicePassport})
	h.send(flow.ToggleDocument{Kind: casefile.ServiceIDCard})
	v = h.await(func(v flow.View) bool { return len(v.Chosen) == 2 })
	if !slices.Equal(v.Chosen, []string{casefile.ServiceIDCard, casefile.ServicePassport}) {
		t.Fatalf("chosen %v: want the office's order", v.Chosen)
	}
	h.send(flow.ChooseLanguage{Tag: "de"}) // the language can change on any screen
	h.send(flow.Next{})

	// Identification runs by itself: keypad reader, card in it.
	v = h.step(flow.StepPhotoChoice)
	if v.Language != "de" || len(v.Candidates) != 3 || v.Frame != nil {
		t.Fatalf("photo choice: language %q, %d candidates, frame %v", v.Language, len(v.Candidates), v.Frame != nil)
	}
	h.refused(flow.PickPhoto{Index: 3})
	h.send(flow.PickPhoto{Index: 1})
	h.signature()
	v = h.step(flow.StepReview)
	if v.FeeCents != 10700 || len(v.Counter) != 0 || v.Progress != 9 {
		t.Fatalf("review: fee %d, counter %v, progress %d", v.FeeCents, v.Counter, v.Progress)
	}
	h.send(flow.Consent{Given: true})
	v = h.step(flow.StepReceipt)
	if v.Number != number || v.Message != flow.MsgReceipt || v.Progress != v.Total {
		t.Fatalf("receipt view: %+v", v)
	}
	h.send(flow.Next{})
	o := h.end()
	if o.End != flow.StepReceipt || !o.Saved || !o.Printed || o.Record == uuid.Nil || len(o.Counter) != 0 {
		t.Fatalf("outcome %+v", o)
	}

	a := h.app()
	if a.Number != number || a.Service != casefile.ServiceIDCard || len(a.Documents) != 2 || a.Language != "de" ||
		a.Terminal != h.cfg.Terminal || len(a.Counter) != 0 {
		t.Errorf("application: %+v", a)
	}
	if a.EID == nil || a.EID.Result != "ok" || a.EID.Session == "" {
		t.Errorf("eID result %+v, want ok with a session reference", a.EID)
	}
	if len(a.Face) != 3 || !a.Face[1].Selected || a.Face[0].Selected || a.Face[1].PAD == nil || len(a.Face[1].Checks) == 0 {
		t.Errorf("face attempts: %+v", a.Face)
	}
	if len(a.Finger) != 2 || a.Finger[0].Position != 2 || a.Finger[1].Position != 7 || !a.Finger[0].Selected ||
		a.Finger[0].Score != 60 || a.Finger[0].Threshold != 30 {
		t.Errorf("finger attempts: %+v", a.Finger)
	}
	if a.Signature == nil || len(a.Signature.Strokes) != 2 || a.Signature.Width != 640 {
		t.Errorf("signature: %+v", a.Signature)
	}
	if a.Fee == nil || a.Fee.AmountCents != 10700 || a.Fee.Currency != "EUR" || a.Fee.Result != 0 {
		t.Errorf("fee: %+v", a.Fee)
	}
	if len(a.Consent) != 2 || !a.Consent[0].Given || a.Consent[1].Name != "fingerprints" {
		t.Errorf("consent: %+v", a.Consent)
	}
	// The document names every blob the capture carries, each by its id.
	c := h.saver.Captures()[0]
	if c.Kind != casefile.KindApplication || c.Office != "buergeramt-mitte" || c.Meta["service"] != casefile.ServiceIDCard || len(c.Meta) != 1 {
		t.Errorf("capture kind %q office %q meta %v", c.Kind, c.Office, c.Meta)
	}
	roles := map[uuid.UUID]string{}
	for _, b := range c.Blobs {
		roles[b.ID] = b.Role
	}
	want := map[uuid.UUID]string{a.Face[1].Image: "photo", a.Finger[0].Image: "finger-2", a.Finger[1].Image: "finger-7",
		a.Signature.Image: "signature"}
	if len(roles) != 4 || !mapsEqual(roles, want) {
		t.Errorf("blobs %v, want %v", roles, want)
	}
	if blobs := h.saver.Blobs(0); !bytes.HasPrefix(blobs[a.Finger[0].Image], []byte("\x89PNG")) {
		t.Errorf("fingerprint blob is no PNG")
	}
	if len(h.faces.Crops()) != 1 {
		t.Errorf("%d crops, want 1", len(h.faces.Crops()))
	}
	// The receipt: the number and its QR code.
	jobs := h.printer.Jobs()
	if len(jobs) != 1 || !bytes.Contains(jobs[0], []byte(number)) || !bytes.Contains(jobs[0], append([]byte("1P0"), number...)) {
		t.Errorf("receipt jobs %q: want one with the number and its QR code", jobs)
	}
	if got := h.fakePay.Payments(); !slices.Equal(got, []int64{10700}) {
		t.Errorf("payments %v", got)
	}
	// PAD is logged, never shown.
	if !h.logs.Contains("photo PAD score") {
		t.Errorf("PAD score not logged")
	}
	h.checkWiped()
}

func mapsEqual[K comparable, V comparable](a, b map[K]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestNumbersAreUniqueAcrossSessions(t *testing.T) {
	h := newHarness(t, options{})
	seen := map[string]bool{}
	for range 3 {
		h.start(flow.SessionOptions{})
		v := h.step(flow.StepWelcome)
		if seen[v.Number] {
			t.Fatalf("number %s given twice", v.Number)
		}
		seen[v.Number] = true
		h.send(flow.Cancel{})
		h.step(flow.StepCancelled)
		h.send(flow.Next{})
		h.end()
	}
}

func TestEIDWithScreenPIN(t *testing.T) {
	h := newHarness(t, options{noKeypad: true})
	h.start(flow.SessionOptions{})
	h.toPhoto()
	h.msg(flow.StepIdentify, flow.MsgIdentifyEnterPIN)
	h.refused(flow.EnterPIN{PIN: "12"})
	h.send(flow.EnterPIN{PIN: "000000"}) // wrong
	v := h.msg(flow.StepIdentify, flow.MsgIdentifyWrongPIN)
	if v.Args["left"] != "2" {
		t.Errorf("attempts left %q, want 2", v.Args["left"])
	}
	h.send(flow.EnterPIN{PIN: "123456"})
	h.photo()
	h.signature()
	h.step(flow.StepReview)
	h.send(flow.Consent{Given: true})
	h.step(flow.StepReceipt)
	h.send(flow.Next{})
	h.end()
	if a := h.app(); a.EID.Result != "ok" {
		t.Errorf("eID %+v", a.EID)
	}
	h.checkWiped()
}

func TestEIDFailuresGoOnWithoutIt(t *testing.T) {
	cardWantsCAN := eid.DefaultCard()
	cardWantsCAN.RetryCounter = 1
	tests := []struct {
		name   string
		opts   options
		act    func(h *harness)
		result string
	}{
		{name: "no eID service", opts: options{config: func(c *flow.Config) {
			c.EID.TCTokenURL = "https://elsewhere.example/tc"
		}}, result: "failed"},
		{name: "card wants its CAN", opts: options{card: &cardWantsCAN}, result: "failed"},
		{name: "skipped", opts: options{noCard: true}, act: func(h *harness) {
			h.msg(flow.StepIdentify, flow.MsgIdentifyInsertCard)
			h.send(flow.Skip{})
		}, result: "skipped"},
		{name: "app gone", opts: options{noCard: true}, act: func(h *harness) {
			h.msg(flow.StepIdentify, flow.MsgIdentifyInsertCard)
			h.eid.Drop()
		}, result: "failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.opts)
			h.start(flow.SessionOptions{})
			h.toPhoto()
			if tt.act != nil {
				tt.act(h)
			}
			h.photo()
			h.signature()
			h.step(flow.StepReview)
			h.send(flow.Consent{Given: true})
			v := h.step(flow.StepReceipt)
			if len(v.Counter) != 0 {
				t.Errorf("counter %v: a failed identification moves nothing to the counter", v.Counter)
			}
			h.send(flow.Next{})
			h.end()
			if a := h.app(); a.EID == nil || a.EID.Result != tt.result {
				t.Errorf("eID %+v, want %s", a.EID, tt.result)
			}
			h.checkWiped()
		})
	}
}

func TestPhotoNeverGood(t *testing.T) {
	h := newHarness(t, options{})
	h.faces.Check = func(n int, _ image.Image) flow.FaceCheck { return flowtest.Fail("photo.too-far", "photo.left") }
	h.start(flow.SessionOptions{})
	h.toPhoto()
	for attempt := 1; attempt <= 3; attempt++ {
		v := h.await(func(v flow.View) bool { return v.Step == flow.StepPhoto && v.Frame != nil && v.Attempt == attempt })
		if !slices.Equal(v.Guidance, []string{"photo.too-far", "photo.left"}) || v.Attempts != 3 {
			t.Fatalf("photo view: guidance %v, attempts %d", v.Guidance, v.Attempts)
		}
		h.clock.Advance(h.cfg.Photo.Time)
		if attempt < 3 {
			h.msg(flow.StepPhoto, flow.MsgPhotoRetry)
			h.send(flow.Retry{})
		}
	}
	v := h.step(flow.StepFingerRight)
	if v.Frame != nil {
		t.Errorf("the finger step shows a camera frame")
	}
	h.step(flow.StepSignature)
	h.send(signed())
	v = h.step(flow.StepReview)
	if !slices.Equal(v.Counter, []string{flow.CounterFace}) {
		t.Fatalf("counter %v, want face", v.Counter)
	}
	h.send(flow.Consent{Given: true})
	v = h.step(flow.StepCounter)
	if v.Message != flow.MsgCounter || !slices.Equal(v.Counter, []string{flow.CounterFace}) || v.Number == "" {
		t.Fatalf("counter view %+v", v)
	}
	h.send(flow.Next{})
	o := h.end()
	if o.End != flow.StepCounter || !o.Saved || !o.Printed {
		t.Errorf("outcome %+v", o)
	}
	a := h.app()
	if len(a.Face) != 3 || a.Face[0].Selected || a.Face[0].Image != uuid.Nil || len(a.Face[0].Checks) != 1 {
		t.Errorf("face attempts %+v: want three unselected with their values", a.Face)
	}
	if !bytes.Contains(h.printer.Jobs()[0], []byte("Schalter")) {
		t.Errorf("the receipt does not send the citizen to the counter")
	}
	h.checkWiped()
}

func TestPhotoFailures(t *testing.T) {
	tests := []struct {
		name  string
		setup func(h *harness)
		act   func(h *harness)
	}{
		{name: "presentation attack", setup: func(h *harness) { h.faces.PADScore = 0.9 }},
		{name: "crop fails", setup: func(h *harness) { h.faces.CropErr = errors.New("no face in the region") }, act: func(h *harness) {
			h.step(flow.StepPhotoChoice)
			h.send(flow.PickPhoto{Index: 0})
		}},
		{name: "camera gone", setup: func(h *harness) {
			h.cam.SetStatus(drivers.Status{State: drivers.StateMissing, Reason: "unplugged"})
		}},
		{name: "skipped in the choice", act: func(h *harness) {
			h.step(flow.StepPhotoChoice)
			h.send(flow.Skip{})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, options{})
			if tt.setup != nil {
				tt.setup(h)
			}
			h.start(flow.SessionOptions{})
			h.toPhoto()
			if tt.act != nil {
				tt.act(h)
			}
			h.signature()
			v := h.step(flow.StepReview)
			if !slices.Equal(v.Counter, []string{flow.CounterFace}) {
				t.Fatalf("counter %v, want face", v.Counter)
			}
			h.send(flow.Consent{Given: true})
			h.step(flow.StepCounter)
			h.send(flow.Next{})
			h.end()
			for _, f := range h.app().Face {
				if f.Selected || f.Image != uuid.Nil {
					t.Errorf("a face attempt was selected: %+v", f)
				}
			}
			h.checkWiped()
		})
	}
}

func TestPhotoUniqueBestNeedsNoChoice(t *testing.T) {
	h := newHarness(t, options{})
	h.faces.Check = func(n int, f image.Image) flow.FaceCheck {
		fc := flowtest.OK(f)
		if n == 2 {
			fc.Optional++ // the second frame is the best
		}
		return fc
	}
	h.start(flow.SessionOptions{})
	h.toPhoto()
	h.signature()
	h.step(flow.StepReview)
	h.send(flow.Consent{Given: true})
	h.step(flow.StepReceipt)
	h.send(flow.Next{})
	h.end()
	a := h.app()
	if len(a.Face) != 1 || !a.Face[0].Selected {
		t.Fatalf("face attempts %+v: want the one best", a.Face)
	}
	if crops := h.faces.Cropped(); len(crops) != 1 || !isFrame(h, 2, crops[0]) {
		t.Errorf("cropped the wrong frame")
	}
	h.checkWiped()
}

// isFrame reports whether img is the n-th frame the camera gave.
func isFrame(h *harness, n int, img image.Image) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.frames) >= n && image.Image(h.frames[n-1]) == img
}

func TestFingers(t *testing.T) {
	tests := []struct {
		name    string
		opts    options
		scores  []uint8
		act     func(h *harness)
		counter []string
		taken   int // fingers selected
	}{
		{name: "too low after every attempt", scores: []uint8{12, 20, 29, 45}, act: func(h *harness) {
			for range 2 {
				h.msg(flow.StepFingerRight, flow.MsgFingerLow)
				h.send(flow.Retry{})
			}
		}, counter: []string{flow.CounterFinger2}, taken: 1},
		{name: "second try good", scores: []uint8{12, 80}, act: func(h *harness) {
			h.msg(flow.StepFingerRight, flow.MsgFingerLow)
			h.send(flow.Retry{})
		}, taken: 2},
		{name: "scoring failed", scores: []uint8{255}, act: func(h *harness) {
			h.msg(flow.StepFingerRight, flow.MsgFingerLow)
			h.send(flow.Skip{})
			h.msg(flow.StepFingerLeft, flow.MsgFingerLow)
			h.send(flow.Skip{})
		}, counter: []string{flow.CounterFinger2, flow.CounterFinger7}},
		{name: "finger missing", opts: options{noFinger: true}, act: func(h *harness) {
			h.step(flow.StepFingerRight)
			h.send(flow.Skip{})
			h.step(flow.StepFingerLeft)
			h.scanner.Place(finger())
		}, counter: []string{flow.CounterFinger2}, taken: 1},
		{name: "no finger in time", opts: options{noFinger: true}, act: func(h *harness) {
			h.step(flow.StepFingerRight)
			h.clock.Advance(h.cfg.Finger.Timeout)
			h.msg(flow.StepFingerRight, flow.MsgFingerNone)
			h.scanner.Place(finger())
			h.send(flow.Retry{})
		}, taken: 2},
		{name: "scanner gone", opts: options{noFinger: true}, act: func(h *harness) {
			h.step(flow.StepFingerRight)
			h.scanner.SetStatus(drivers.Status{State: drivers.StateMissing, Reason: "unplugged"})
		}, counter: []string{flow.CounterFinger2, flow.CounterFinger7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.opts)
			h.fingers.Scores = tt.scores
			h.start(flow.SessionOptions{})
			h.toPhoto()
			h.photo()
			if tt.act != nil {
				tt.act(h)
			}
			h.signature()
			v := h.step(flow.StepReview)
			if !slices.Equal(v.Counter, tt.counter) {
				t.Fatalf("counter %v, want %v", v.Counter, tt.counter)
			}
			h.send(flow.Consent{Given: true})
			v = h.await(func(v flow.View) bool { return v.Step == flow.StepReceipt || v.Step == flow.StepCounter })
			if (len(tt.counter) > 0) != (v.Step == flow.StepCounter) {
				t.Errorf("ended at %s with counter %v", v.Step, v.Counter)
			}
			h.send(flow.Next{})
			h.end()
			taken := 0
			for _, f := range h.app().Finger {
				if f.Selected {
					taken++
				}
				if f.Threshold != 30 {
					t.Errorf("finger attempt threshold %d", f.Threshold)
				}
			}
			if taken != tt.taken {
				t.Errorf("%d fingers taken, want %d: %+v", taken, tt.taken, h.app().Finger)
			}
			h.checkWiped()
		})
	}
}

func TestUnderSixNoFingerprints(t *testing.T) {
	h := newHarness(t, options{})
	h.start(flow.SessionOptions{DateOfBirth: t0.AddDate(-6, 0, 1)}) // sixth birthday tomorrow
	v := h.step(flow.StepWelcome)
	if v.Total != 8 {
		t.Errorf("%d steps, want 8 without fingers", v.Total)
	}
	h.send(flow.Start{})
	h.step(flow.StepLanguage)
	h.send(flow.ChooseLanguage{Tag: "de"})
	h.step(flow.StepDocuments)
	h.send(flow.ToggleDocument{Kind: casefile.ServiceIDCard})
	h.send(flow.Next{})
	h.photo()
	v = h.step(flow.StepSignature)
	h.send(signed())
	v = h.step(flow.StepReview)
	if len(v.Counter) != 0 {
		t.Errorf("counter %v: children under six give no fingerprints at all", v.Counter)
	}
	h.send(flow.Consent{Given: true})
	h.step(flow.StepReceipt)
	h.send(flow.Next{})
	h.end()
	if a := h.app(); len(a.Finger) != 0 || len(h.fingers.Images()) != 0 {
		t.Errorf("fingerprints taken from a child under six")
	}

	// Six today: fingerprints.
	h2 := newHarness(t, options{})
	h2.start(flow.SessionOptions{DateOfBirth: t0.AddDate(-6, 0, 0)})
	if v := h2.step(flow.StepWelcome); v.Total != 10 {
		t.Errorf("%d steps on the sixth birthday, want 10", v.Total)
	}
}

func TestPayment(t *testing.T) {
	declined := payment.Result{Outcome: payment.Declined, Code: 5, Reason: "Zahlung abgelehnt"}
	tests := []struct {
		name    string
		push    []payment.Result
		act     func(h *harness)
		paid    bool
		fee     *uint8 // the recorded fee's result code, nil: none
		counter []string
	}{
		{name: "declined, then paid", push: []payment.Result{declined}, act: func(h *harness) {
			v := h.msg(flow.StepPayment, flow.MsgPaymentDeclined)
			if v.Attempt != 1 || v.Attempts != 2 || v.FeeCents != 3700 {
				h.t.Errorf("declined view %+v", v)
			}
			h.send(flow.Retry{})
		}, paid: true, fee: u8(0)},
		{name: "declined twice", push: []payment.Result{declined, declined}, act: func(h *harness) {
			h.msg(flow.StepPayment, flow.MsgPaymentDeclined)
			h.send(flow.Retry{})
		}, fee: u8(5), counter: []string{flow.CounterFee}},
		{name: "aborted, pay at the counter", push: []payment.Result{{Outcome: payment.Aborted, Reason: "Stop pressed"}}, act: func(h *harness) {
			h.msg(flow.StepPayment, flow.MsgPaymentAborted)
			h.send(flow.Skip{})
		}, counter: []string{flow.CounterFee}},
		{name: "unknown, reconciled as paid", push: []payment.Result{{Outcome: payment.Unknown, Code: 0}}, paid: true, fee: u8(0)},
		{name: "unknown, not made", push: []payment.Result{{Outcome: payment.Unknown, Code: 1}}, act: func(h *harness) {
			h.msg(flow.StepPayment, flow.MsgPaymentAborted)
			h.send(flow.Retry{})
		}, paid: true, fee: u8(0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, options{})
			for _, r := range tt.push {
				h.fakePay.Push(r)
			}
			h.start(flow.SessionOptions{})
			h.toPhoto()
			h.photo()
			h.signature()
			if tt.act != nil {
				tt.act(h)
			}
			v := h.step(flow.StepReview)
			if !slices.Equal(v.Counter, tt.counter) {
				t.Fatalf("counter %v, want %v", v.Counter, tt.counter)
			}
			h.send(flow.Consent{Given: true})
			h.await(func(v flow.View) bool { return v.Step == flow.StepReceipt || v.Step == flow.StepCounter })
			h.send(flow.Next{})
			h.end()
			a := h.app()
			switch {
			case tt.fee == nil && a.Fee != nil:
				t.Errorf("fee recorded %+v, want none", a.Fee)
			case tt.fee != nil && (a.Fee == nil || a.Fee.Result != *tt.fee || a.Fee.AmountCents != 3700):
				t.Errorf("fee %+v, want result %d", a.Fee, *tt.fee)
			}
			receipt := string(h.printer.Jobs()[0])
			if tt.paid != strings.Contains(receipt, "Fee paid") {
				t.Errorf("receipt says paid: %v, want %v", !tt.paid, tt.paid)
			}
			h.checkWiped()
		})
	}
}

func u8(v uint8) *uint8 { return &v }

func TestPayAtCounter(t *testing.T) {
	h := newHarness(t, options{config: func(c *flow.Config) { c.PayAtCounter = true }})
	h.start(flow.SessionOptions{})
	if v := h.step(flow.StepWelcome); v.Total != 9 {
		t.Errorf("%d steps, want 9 without payment", v.Total)
	}
	h.send(flow.Start{})
	h.step(flow.StepLanguage)
	h.send(flow.ChooseLanguage{Tag: "en"})
	h.step(flow.StepDocuments)
	h.send(flow.ToggleDocument{Kind: casefile.ServiceIDCard})
	h.send(flow.Next{})
	h.photo()
	h.signature()
	v := h.step(flow.StepReview)
	if len(v.Counter) != 0 || v.FeeCents != 3700 {
		t.Errorf("review %+v", v)
	}
	h.send(flow.Consent{Given: true})
	v = h.step(flow.StepReceipt)
	if v.Message != flow.MsgReceiptPayAtCounter {
		t.Errorf("receipt message %q", v.Message)
	}
	h.send(flow.Next{})
	h.end()
	if len(h.fakePay.Payments()) != 0 || h.app().Fee != nil {
		t.Errorf("paid at the terminal although the counter takes the fee")
	}
}

func TestPrinterOutOfPaper(t *testing.T) {
	h := newHarness(t, options{})
	h.printer.SetPaperOut(true)
	h.start(flow.SessionOptions{})
	number := h.step(flow.StepWelcome).Number
	h.toReviewFromWelcome()
	h.send(flow.Consent{Given: true})
	v := h.step(flow.StepCounter)
	if v.Message != flow.MsgCounterNoReceipt || v.Number != number || len(v.Counter) != 0 {
		t.Fatalf("counter view %+v: want the number and no-receipt", v)
	}
	h.send(flow.Next{})
	o := h.end()
	if !o.Saved || o.Printed || o.End != flow.StepCounter {
		t.Errorf("outcome %+v: the application must stay saved", o)
	}
	if a := h.app(); a.Number != number {
		t.Errorf("saved application %s", a.Number)
	}
	h.checkWiped()
}

// toReviewFromWelcome is toReview for a session already at the welcome
// screen's view.
func (h *harness) toReviewFromWelcome() {
	h.t.Helper()
	h.send(flow.Start{})
	h.step(flow.StepLanguage)
	h.send(flow.ChooseLanguage{Tag: "de"})
	h.step(flow.StepDocuments)
	h.send(flow.ToggleDocument{Kind: casefile.ServiceIDCard})
	h.send(flow.Next{})
	h.photo()
	h.signature()
	h.step(flow.StepReview)
}

func TestSaveFails(t *testing.T) {
	h := newHarness(t, options{})
	h.saver.Err = errors.New("storage full: 512 MiB budget used")
	h.start(flow.SessionOptions{})
	h.toReview()
	h.send(flow.Consent{Given: true})
	v := h.step(flow.StepCounter)
	want := []string{flow.CounterFace, flow.CounterFinger2, flow.CounterFinger7, flow.CounterSignature}
	if v.Message != flow.MsgCounterSaveFailed || !slices.Equal(v.Counter, want) {
		t.Fatalf("counter view %+v, want everything at the counter", v)
	}
	h.send(flow.Next{})
	o := h.end()
	if o.Saved || !o.Printed {
		t.Errorf("outcome %+v: not saved, but the receipt with the number printed", o)
	}
	if !bytes.Contains(h.printer.Jobs()[0], []byte("Schalter")) {
		t.Errorf("receipt without the counter lines")
	}
	h.checkWiped()
}

func TestConsentRefused(t *testing.T) {
	h := newHarness(t, options{})
	h.start(flow.SessionOptions{})
	h.toReview()
	h.send(flow.Consent{Given: false})
	v := h.step(flow.StepCounter)
	if v.Message != flow.MsgCounterConsentRefused {
		t.Fatalf("counter view %+v", v)
	}
	h.send(flow.Next{})
	h.end()
	a := h.app()
	if len(a.Face) != 0 || len(a.Finger) != 0 || a.Signature != nil || len(h.saver.Captures()[0].Blobs) != 0 {
		t.Errorf("biometrics sent without consent: %+v", a)
	}
	if a.Fee == nil || len(a.Consent) == 0 || a.Consent[0].Given || len(a.Counter) != 4 {
		t.Errorf("application without consent: fee %+v consent %+v counter %v", a.Fee, a.Consent, a.Counter)
	}
	h.checkWiped()
}

func TestSignature(t *testing.T) {
	t.Run("again, then skipped", func(t *testing.T) {
		h := newHarness(t, options{})
		h.start(flow.SessionOptions{})
		h.toPhoto()
		h.photo()
		h.step(flow.StepSignature)
		h.send(flow.SignatureDone{W: 640, H: 200})
		h.msg(flow.StepSignature, flow.MsgSignatureAgain)
		h.send(flow.Skip{})
		v := h.step(flow.StepReview)
		if !slices.Equal(v.Counter, []string{flow.CounterSignature}) {
			t.Errorf("counter %v", v.Counter)
		}
	})
	t.Run("renderer fails three times", func(t *testing.T) {
		h := newHarness(t, options{})
		h.sigs.Err = errors.New("broken")
		h.start(flow.SessionOptions{})
		h.toPhoto()
		h.photo()
		h.step(flow.StepSignature)
		for range 3 {
			h.send(signed())
		}
		v := h.step(flow.StepReview)
		if !slices.Equal(v.Counter, []string{flow.CounterSignature}) {
			t.Errorf("counter %v", v.Counter)
		}
	})
}

func TestTimeout(t *testing.T) {
	h := newHarness(t, options{})
	h.start(flow.SessionOptions{})
	h.step(flow.StepWelcome)
	h.send(flow.Start{})
	h.step(flow.StepLanguage)
	lang, warn := h.cfg.Timeouts.Language, h.cfg.Timeouts.Warning

	h.clock.Advance(lang - warn)
	v := h.await(func(v flow.View) bool { return v.Warning })
	if v.Step != flow.StepLanguage || v.Remaining != warn {
		t.Fatalf("warning view %+v", v)
	}
	h.send(flow.Touch{}) // "yes, more time"
	h.await(func(v flow.View) bool { return v.Step == flow.StepLanguage && !v.Warning })

	// The full timeout runs again from the touch.
	h.clock.Advance(lang - warn - time.Second)
	h.clock.Advance(time.Second)
	h.await(func(v flow.View) bool { return v.Warning })
	h.clock.Advance(warn)
	v = h.step(flow.StepCancelled)
	if v.Message != flow.MsgCancelledTimeout {
		t.Errorf("cancelled message %q", v.Message)
	}
	h.clock.Advance(h.cfg.Timeouts.End)
	o := h.end()
	if o.End != flow.StepCancelled || !o.TimedOut || o.Saved {
		t.Errorf("outcome %+v", o)
	}
}

func TestTimeoutAtEveryStep(t *testing.T) {
	for _, tt := range stopAt() {
		if tt.step == flow.StepWelcome {
			continue // the idle screen waits for good
		}
		t.Run(tt.step.String(), func(t *testing.T) {
			h := newHarness(t, tt.opts)
			tt.setup(h)
			h.start(flow.SessionOptions{})
			tt.walk(h)
			h.clock.Advance(time.Hour)
			v := h.step(flow.StepCancelled)
			if v.Message != flow.MsgCancelledTimeout {
				t.Errorf("message %q", v.Message)
			}
			h.clock.Advance(h.cfg.Timeouts.End)
			if o := h.end(); !o.TimedOut {
				t.Errorf("outcome %+v", o)
			}
			h.checkWiped()
		})
	}
}

// stopAt lists how to bring a session to each step and keep it there.
func stopAt() []struct {
	step  flow.Step
	opts  options
	setup func(h *harness)
	walk  func(h *harness)
} {
	none := func(*harness) {}
	block := func(f *payment.Fake) payment.Terminal { return blockingTerminal{f} }
	return []struct {
		step  flow.Step
		opts  options
		setup func(h *harness)
		walk  func(h *harness)
	}{
		{flow.StepWelcome, options{}, none, func(h *harness) { h.step(flow.StepWelcome) }},
		{flow.StepLanguage, options{}, none, func(h *harness) {
			h.step(flow.StepWelcome)
			h.send(flow.Start{})
			h.step(flow.StepLanguage)
		}},
		{flow.StepDocuments, options{}, none, func(h *harness) { h.toDocuments() }},
		{flow.StepIdentify, options{noCard: true}, none, func(h *harness) {
			h.toPhoto()
			h.msg(flow.StepIdentify, flow.MsgIdentifyInsertCard)
		}},
		{flow.StepPhoto, options{}, func(h *harness) {
			h.faces.Check = func(int, image.Image) flow.FaceCheck { return flowtest.Fail("photo.no-face") }
		}, func(h *harness) {
			h.toPhoto()
			h.step(flow.StepPhoto)
			h.clock.Advance(h.cfg.Photo.Time)
			h.msg(flow.StepPhoto, flow.MsgPhotoRetry)
		}},
		{flow.StepPhotoChoice, options{}, none, func(h *harness) {
			h.toPhoto()
			h.step(flow.StepPhotoChoice)
		}},
		{flow.StepFingerRight, options{}, func(h *harness) { h.fingers.Scores = []uint8{5} }, func(h *harness) {
			h.toPhoto()
			h.photo()
			h.msg(flow.StepFingerRight, flow.MsgFingerLow)
		}},
		{flow.StepFingerLeft, options{}, func(h *harness) { h.fingers.Scores = []uint8{50, 5} }, func(h *harness) {
			h.toPhoto()
			h.photo()
			h.msg(flow.StepFingerLeft, flow.MsgFingerLow)
		}},
		{flow.StepSignature, options{}, none, func(h *harness) {
			h.toPhoto()
			h.photo()
			h.step(flow.StepSignature)
		}},
		{flow.StepPayment, options{pay: block}, none, func(h *harness) {
			h.toPhoto()
			h.photo()
			h.signature()
			h.step(flow.StepPayment)
		}},
		{flow.StepReview, options{}, none, func(h *harness) { h.toReview() }},
	}
}

func TestCancelAtEveryStep(t *testing.T) {
	for _, tt := range stopAt() {
		t.Run(tt.step.String(), func(t *testing.T) {
			h := newHarness(t, tt.opts)
			tt.setup(h)
			h.start(flow.SessionOptions{})
			tt.walk(h)
			h.send(flow.Cancel{})
			v := h.step(flow.StepCancelled)
			if v.Message != flow.MsgCancelled || v.Frame != nil || len(v.Candidates) != 0 {
				t.Errorf("cancelled view %+v", v)
			}
			h.send(flow.Next{})
			o := h.end()
			if o.End != flow.StepCancelled || o.TimedOut || o.Saved {
				t.Errorf("outcome %+v", o)
			}
			if len(h.saver.Captures()) != 0 || len(h.printer.Jobs()) != 0 {
				t.Errorf("a cancelled session saved or printed")
			}
			if err := h.run.Send(flow.Start{}); !errors.Is(err, flow.ErrEnded) {
				t.Errorf("send after the end: %v", err)
			}
			h.checkWiped()
		})
	}
}

func TestCancelWhilePayingAfterThePaymentWentThrough(t *testing.T) {
	var term *latePaid
	h := newHarness(t, options{pay: func(f *payment.Fake) payment.Terminal {
		term = &latePaid{Fake: f}
		return term
	}})
	h.start(flow.SessionOptions{})
	h.toPhoto()
	h.photo()
	h.signature()
	h.step(flow.StepPayment)
	h.send(flow.Cancel{})
	h.step(flow.StepCancelled)
	h.send(flow.Next{})
	h.end()
	if !h.logs.Contains("after the fee was paid") {
		t.Errorf("money taken by a cancelled session is not logged for the office")
	}
	h.checkWiped()
}

func TestShutdownWipes(t *testing.T) {
	h := newHarness(t, options{})
	h.start(flow.SessionOptions{})
	h.toPhoto()
	h.step(flow.StepPhotoChoice)
	h.cancel()
	o := h.end()
	if o.End != flow.StepCancelled {
		t.Errorf("outcome %+v", o)
	}
	for range h.run.Views() {
	}
	h.checkWiped()
}

func TestViewsKeepTheNewest(t *testing.T) {
	h := newHarness(t, options{})
	h.start(flow.SessionOptions{})
	h.step(flow.StepWelcome)
	h.send(flow.Start{})
	h.send(flow.ChooseLanguage{Tag: "pl"})
	h.send(flow.ToggleDocument{Kind: casefile.ServicePassport})
	// Nobody read the views in between: the newest waits.
	v := <-h.run.Views()
	if v.Step != flow.StepDocuments || !slices.Equal(v.Chosen, []string{casefile.ServicePassport}) {
		t.Errorf("view %+v, want the newest", v)
	}
}

// blockingTerminal is a payment terminal whose customer never comes: Pay
// waits until it is cancelled.
type blockingTerminal struct{ *payment.Fake }

func (b blockingTerminal) Pay(ctx context.Context, cents int64) (payment.Result, error) {
	<-ctx.Done()
	return payment.Result{Outcome: payment.Aborted, Amount: cents, Reason: "aborted at the terminal"}, nil
}

// latePaid completes the payment even though it was asked to abort.
type latePaid struct{ *payment.Fake }

func (l *latePaid) Pay(ctx context.Context, cents int64) (payment.Result, error) {
	<-ctx.Done()
	return payment.Result{Outcome: payment.Paid, Amount: cents, Trace: 7, ReceiptNo: 12}, nil
}

func TestCancelIsRefusedWhileSaving(t *testing.T) {
	h := newHarness(t, options{})
	release := make(chan struct{})
	slow := &slowSaver{Saver: h.saver, release: release}
	h.replaceSaver(slow)
	h.start(flow.SessionOptions{})
	h.toReview()
	h.send(flow.Consent{Given: true})
	h.msg(flow.StepSaving, flow.MsgSaving)
	h.refused(flow.Cancel{})
	h.send(flow.Touch{})
	close(release)
	h.step(flow.StepReceipt)
	h.send(flow.Next{})
	if o := h.end(); !o.Saved {
		t.Errorf("outcome %+v", o)
	}
	h.checkWiped()
}

// slowSaver saves once released.
type slowSaver struct {
	*flowtest.Saver
	release chan struct{}
}

func (s *slowSaver) Capture(ctx context.Context, c agent.Capture) (agent.Receipt, error) {
	select {
	case <-s.release:
	case <-ctx.Done():
		return agent.Receipt{}, ctx.Err()
	}
	return s.Saver.Capture(ctx, c)
}

func TestPhotoRetryFromTheChoice(t *testing.T) {
	h := newHarness(t, options{})
	h.start(flow.SessionOptions{})
	h.toPhoto()
	v := h.step(flow.StepPhotoChoice)
	if v.Attempt != 1 {
		t.Fatalf("choice of attempt %d", v.Attempt)
	}
	h.send(flow.Retry{})
	h.await(func(v flow.View) bool { return v.Step == flow.StepPhotoChoice && v.Attempt == 2 })
	h.send(flow.PickPhoto{Index: 2})
	h.signature()
	h.step(flow.StepReview)
	h.send(flow.Consent{Given: true})
	h.step(flow.StepReceipt)
	h.send(flow.Next{})
	h.end()
	a := h.app()
	selected := 0
	for _, f := range a.Face {
		if f.Selected {
			selected++
		}
	}
	if len(a.Face) != 6 || selected != 1 || !a.Face[5].Selected {
		t.Errorf("face attempts %+v: want 3 + 3 with the last picked", a.Face)
	}
	h.checkWiped()
}
