package flow_test

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/color"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kogge-fleet/kogge/drivers/camera"
	"github.com/kogge-fleet/kogge/drivers/eid"
	"github.com/kogge-fleet/kogge/drivers/fingerprint"
	"github.com/kogge-fleet/kogge/drivers/payment"
	"github.com/kogge-fleet/kogge/drivers/printer"
	"github.com/kogge-fleet/kogge/kiosk/flow"
	"github.com/kogge-fleet/kogge/kiosk/flow/flowtest"
	"github.com/kogge-fleet/kogge/protocol/casefile"
)

// wait bounds every wait for the session in real time; the session's own
// timeouts run on the fake clock.
const wait = 10 * time.Second

const tcToken = "https://eid.kogge.test/tc?service=ausweis"

// t0 is a Tuesday morning in Bremen.
var t0 = time.Date(2026, 11, 24, 9, 30, 0, 0, time.UTC)

// harness is a flow over the drivers' fakes and flowtest's checkers.
type harness struct {
	t       *testing.T
	cfg     flow.Config
	clock   *flowtest.Clock
	cam     *camera.Fake
	scanner *fingerprint.Fake
	eid     *eid.Fake
	pay     payment.Terminal
	fakePay *payment.Fake
	printer *printer.Fake
	faces   *flowtest.Faces
	fingers *flowtest.Fingers
	sigs    *flowtest.Signatures
	saver   *flowtest.Saver
	kv      *flowtest.KV
	logs    *syncBuffer
	deps    flow.Deps
	flow    *flow.Flow
	run     *flow.Run
	cancel  context.CancelFunc

	mu     sync.Mutex
	frames []*image.RGBA
}

type options struct {
	noKeypad bool // the eID reader has no keypad: the PIN comes from the screen
	noCard   bool // no card in the reader at the start
	card     *eid.EmulatedCard
	noFinger bool // no finger on the scanner at the start
	config   func(*flow.Config)
	pay      func(*payment.Fake) payment.Terminal
}

func newHarness(t *testing.T, o options) *harness {
	t.Helper()
	h := &harness{
		t: t, clock: flowtest.NewClock(t0), faces: &flowtest.Faces{}, fingers: &flowtest.Fingers{},
		sigs: &flowtest.Signatures{}, saver: &flowtest.Saver{}, kv: &flowtest.KV{}, logs: &syncBuffer{},
		printer: printer.NewFake(), scanner: fingerprint.NewFake(), fakePay: payment.NewFake(),
	}
	h.pay = h.fakePay
	if o.pay != nil {
		h.pay = o.pay(h.fakePay)
	}
	h.cam = camera.NewFake([]camera.Mode{{Width: 64, Height: 48, FPS: 15}}, h.render)
	if !o.noFinger {
		h.scanner.Place(finger())
	}
	reader := eid.EmulatedReader{Name: "Kogge Pad", Keypad: !o.noKeypad, Insertable: true}
	var err error
	h.eid, err = eid.NewFake(eid.EmulatorOptions{Readers: []eid.EmulatedReader{reader}}, eid.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.eid.Close() })
	if !o.noCard {
		card := eid.DefaultCard()
		if o.card != nil {
			card = *o.card
		}
		if err := h.eid.Emulator.InsertCard(reader.Name, card); err != nil {
			t.Fatal(err)
		}
	}
	h.cfg = flow.DefaultConfig()
	h.cfg.Office, h.cfg.Terminal = "buergeramt-mitte", "Bürgeramt Mitte, Terminal 1"
	h.cfg.EID = flow.EIDConfig{Enabled: true, TCTokenURL: tcToken}
	h.cfg.Photo.Mode = camera.Mode{Width: 64, Height: 48, FPS: 15}
	h.cfg.Location = time.UTC
	if o.config != nil {
		o.config(&h.cfg)
	}
	numbers, err := flow.NewSequence("KMI1", h.kv, time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	h.deps = flow.Deps{
		Camera: h.cam, Scanner: h.scanner, EID: h.eid, Payment: h.pay, Printer: h.printer,
		Faces: h.faces, Fingers: h.fingers, Signatures: h.sigs, Saver: h.saver, Numbers: numbers,
		Clock: h.clock, Logger: slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if h.flow, err = flow.New(h.cfg, h.deps); err != nil {
		t.Fatal(err)
	}
	return h
}

// replaceSaver makes the flow save through s.
func (h *harness) replaceSaver(s flow.Saver) {
	h.t.Helper()
	h.deps.Saver = s
	var err error
	if h.flow, err = flow.New(h.cfg, h.deps); err != nil {
		h.t.Fatal(err)
	}
}

// render draws a camera frame and keeps it, to check the wipe.
func (h *harness) render(seq uint64, m camera.Mode) image.Image {
	img := image.NewRGBA(image.Rect(0, 0, m.Width, m.Height))
	for i := range img.Pix {
		img.Pix[i] = byte(0x80 + seq)
	}
	img.Pix[0] = 1 // never all zero
	h.mu.Lock()
	h.frames = append(h.frames, img)
	h.mu.Unlock()
	return img
}

// finger is a fingerprint image with no zero pixel.
func finger() *image.Gray {
	g := image.NewGray(image.Rect(0, 0, 32, 40))
	for y := range 40 {
		for x := range 32 {
			g.SetGray(x, y, color.Gray{Y: byte(40 + (x*7+y*3)%180)})
		}
	}
	return g
}

// start begins a session.
func (h *harness) start(opts flow.SessionOptions) {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	run, err := h.flow.Begin(ctx, opts)
	if err != nil {
		h.t.Fatal(err)
	}
	h.run = run
	h.t.Cleanup(func() {
		cancel()
		select {
		case <-run.Done():
		case <-time.After(wait):
			h.t.Errorf("the session did not end after its context was cancelled")
		}
	})
}

// await waits for a view that ok accepts.
func (h *harness) await(ok func(flow.View) bool) flow.View {
	h.t.Helper()
	v, err := flowtest.Await(h.run.Views(), wait, ok)
	if err != nil {
		h.t.Fatalf("%v\nlog:\n%s", err, h.logs)
	}
	return v
}

func (h *harness) step(s flow.Step) flow.View { h.t.Helper(); return h.await(flowtest.AtStep(s)) }

func (h *harness) msg(s flow.Step, m string) flow.View {
	h.t.Helper()
	return h.await(flowtest.AtMessage(s, m))
}

// send hands the session an input that must be taken.
func (h *harness) send(in flow.Input) {
	h.t.Helper()
	if err := h.run.Send(in); err != nil {
		h.t.Fatalf("send %T: %v", in, err)
	}
}

// refused checks that the session refuses in.
func (h *harness) refused(in flow.Input) {
	h.t.Helper()
	if err := h.run.Send(in); !errors.Is(err, flow.ErrRefused) {
		h.t.Fatalf("send %T: got %v, want ErrRefused", in, err)
	}
}

// end waits for the session to end and returns its outcome.
func (h *harness) end() flow.Outcome {
	h.t.Helper()
	o, err := h.run.Wait(ctxTimeout(h.t))
	if err != nil {
		h.t.Fatalf("session did not end: %v\nlog:\n%s", err, h.logs)
	}
	return o
}

func ctxTimeout(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return ctx
}

// toDocuments walks welcome and language.
func (h *harness) toDocuments() {
	h.t.Helper()
	h.step(flow.StepWelcome)
	h.send(flow.Start{})
	h.step(flow.StepLanguage)
	h.send(flow.ChooseLanguage{Tag: "de"})
	h.step(flow.StepDocuments)
}

// toPhoto walks to the photo step (identification runs by itself with the
// keypad reader and the card in it).
func (h *harness) toPhoto() {
	h.t.Helper()
	h.toDocuments()
	h.send(flow.ToggleDocument{Kind: casefile.ServiceIDCard})
	h.send(flow.Next{})
}

// photo takes the photo: the default faces find every frame good, so the
// equally good ones are offered and the newest is picked.
func (h *harness) photo() {
	h.t.Helper()
	v := h.step(flow.StepPhotoChoice)
	if len(v.Candidates) != h.cfg.Photo.Candidates {
		h.t.Fatalf("%d candidates, want %d", len(v.Candidates), h.cfg.Photo.Candidates)
	}
	h.send(flow.PickPhoto{Index: 0})
}

// signature signs.
func (h *harness) signature() {
	h.t.Helper()
	h.step(flow.StepSignature)
	h.send(signed())
}

func signed() flow.SignatureDone {
	var s []flow.Point
	for i := range 30 {
		s = append(s, flow.Point{X: 20 + i*10, Y: 80 + (i%5)*6, T: uint32(i * 16), P: 300})
	}
	return flow.SignatureDone{Strokes: [][]flow.Point{s, {{X: 100, Y: 50}, {X: 120, Y: 60}}}, W: 640, H: 200}
}

// toReview walks a whole successful capture up to the review.
func (h *harness) toReview() {
	h.t.Helper()
	h.toPhoto()
	h.photo()
	h.signature()
	h.step(flow.StepReview)
}

// checkWiped checks that every buffer of personal data the session had is
// zero: all camera frames, the crops, the scored fingerprints, the
// signature PNGs and everything handed to the saver.
func (h *harness) checkWiped() {
	h.t.Helper()
	<-h.run.Done()
	h.mu.Lock()
	frames := h.frames
	h.mu.Unlock()
	for i, f := range frames {
		if !flowtest.Zero(f.Pix) {
			h.t.Errorf("camera frame %d of %d not wiped", i+1, len(frames))
		}
	}
	for i, b := range h.faces.Crops() {
		if !flowtest.Zero(b) {
			h.t.Errorf("crop %d not wiped", i+1)
		}
	}
	for i, g := range h.fingers.Images() {
		if !flowtest.Zero(g.Pix) {
			h.t.Errorf("fingerprint %d not wiped", i+1)
		}
	}
	for i, b := range h.sigs.PNGs() {
		if !flowtest.Zero(b) {
			h.t.Errorf("signature PNG %d not wiped", i+1)
		}
	}
	for i, c := range h.saver.Captures() {
		if !flowtest.Zero(c.Body) {
			h.t.Errorf("capture %d: body not wiped", i+1)
		}
		for _, b := range c.Blobs {
			if !flowtest.Zero(b.Data) {
				h.t.Errorf("capture %d: blob %s not wiped", i+1, b.Role)
			}
		}
	}
}

// app returns the only saved application.
func (h *harness) app() *casefile.Application {
	h.t.Helper()
	apps := h.saver.Applications()
	if len(apps) != 1 {
		h.t.Fatalf("%d applications saved, want 1", len(apps))
	}
	return apps[0]
}

// syncBuffer is a log sink safe for the session's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) Contains(sub string) bool { return strings.Contains(s.String(), sub) }
