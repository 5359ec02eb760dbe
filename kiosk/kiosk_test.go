package kiosk_test

import (
	"context"
	"errors"
	"image"
	"image/color"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kogge-fleet/kogge/agent"
	"github.com/kogge-fleet/kogge/agent/store"
	agentsync "github.com/kogge-fleet/kogge/agent/sync"
	"github.com/kogge-fleet/kogge/drivers"
	"github.com/kogge-fleet/kogge/drivers/camera"
	"github.com/kogge-fleet/kogge/drivers/fingerprint"
	"github.com/kogge-fleet/kogge/drivers/payment"
	"github.com/kogge-fleet/kogge/drivers/printer"
	"github.com/kogge-fleet/kogge/kiosk"
	"github.com/kogge-fleet/kogge/kiosk/flow"
	"github.com/kogge-fleet/kogge/kiosk/flow/flowtest"
	"github.com/kogge-fleet/kogge/protocol"
	"github.com/kogge-fleet/kogge/protocol/casefile"
)

const wait = 10 * time.Second

// fakeAgent is the agent as the kiosk uses it.
type fakeAgent struct {
	flowtest.Saver
	mu          sync.Mutex
	peripherals map[string]protocol.PeripheralState
	reasons     map[string]string
	stats       agentsync.Stats
	watch       chan agent.Status
}

func newFakeAgent() *fakeAgent {
	return &fakeAgent{peripherals: map[string]protocol.PeripheralState{}, reasons: map[string]string{},
		watch: make(chan agent.Status, 8)}
}

func (a *fakeAgent) SetPeripheral(name, kind string, st protocol.PeripheralState, reason string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.peripherals[name], a.reasons[name] = st, reason
}

func (a *fakeAgent) peripheral(name string) (protocol.PeripheralState, string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.peripherals[name], a.reasons[name]
}

func (a *fakeAgent) Sync() agentsync.Stats {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.stats
}

func (a *fakeAgent) Watch() (<-chan agent.Status, func()) { return a.watch, func() {} }

// fakeStore is the agent's store as the kiosk uses it.
type fakeStore struct {
	flowtest.KV
	queue int
}

func (s *fakeStore) Stats(context.Context) (store.Stats, error) {
	return store.Stats{QueueDepth: s.queue}, nil
}

type rig struct {
	t       *testing.T
	k       *kiosk.Kiosk
	ag      *fakeAgent
	st      *fakeStore
	cam     *camera.Fake
	scanner *fingerprint.Fake
	pay     *payment.Fake
	printer *printer.Fake
	clock   *flowtest.Clock
	ctx     context.Context
}

func newRig(t *testing.T, mod func(*kiosk.Config, *kiosk.Options)) *rig {
	t.Helper()
	r := &rig{t: t, ag: newFakeAgent(), st: &fakeStore{queue: 3}, pay: payment.NewFake(), printer: printer.NewFake(),
		scanner: fingerprint.NewFake(), clock: flowtest.NewClock(time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC))}
	r.cam = camera.NewFake([]camera.Mode{{Width: 160, Height: 120, FPS: 15}}, func(seq uint64, m camera.Mode) image.Image {
		img := image.NewRGBA(image.Rect(0, 0, m.Width, m.Height))
		for i := range img.Pix {
			img.Pix[i] = 140
		}
		return img
	})
	r.scanner.Place(ridges())
	cfg := kiosk.Config{Flow: flow.DefaultConfig(), NumberPrefix: "KMI1", AdminPIN: "4711", Version: "1.2.3"}
	cfg.Flow.Office, cfg.Flow.Terminal, cfg.Flow.Location = "buergeramt-mitte", "Mitte 1", time.UTC
	cfg.Flow.Photo.Mode = camera.Mode{Width: 160, Height: 120}
	// The capture-quality checks are the flow's business (kiosk/flow's
	// tests, and cmd/kogge-kiosk's simulation with the real ones); here
	// they accept the fake camera's grey frames.
	opts := kiosk.Options{Clock: r.clock, Logger: slog.New(slog.DiscardHandler),
		Faces: &flowtest.Faces{}, Fingers: &flowtest.Fingers{}, Signatures: &flowtest.Signatures{},
		CheckCameraMode: func(w, h int) error { return nil }}
	if mod != nil {
		mod(&cfg, &opts)
	}
	k, err := kiosk.New(cfg, r.ag, r.st, kiosk.Devices{Camera: r.cam, Scanner: r.scanner, Payment: r.pay, Printer: r.printer}, opts)
	if err != nil {
		t.Fatal(err)
	}
	r.k = k
	ctx, cancel := context.WithCancel(context.Background())
	r.ctx = ctx
	done := make(chan error, 1)
	go func() { done <- k.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(wait):
			t.Error("Run did not return")
		}
	})
	return r
}

// ridges is a fingerprint with contrast.
func ridges() *image.Gray {
	g := image.NewGray(image.Rect(0, 0, 64, 64))
	for y := range 64 {
		for x := range 64 {
			if (x+y/3)%8 < 4 {
				g.SetGray(x, y, color.Gray{Y: 30})
			} else {
				g.SetGray(x, y, color.Gray{Y: 220})
			}
		}
	}
	return g
}

func await(t *testing.T, s flow.Session, ok func(flow.View) bool) flow.View {
	t.Helper()
	v, err := flowtest.Await(s.Views(), wait, ok)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func send(t *testing.T, s flow.Session, in flow.Input) {
	t.Helper()
	if err := s.Send(in); err != nil {
		t.Fatalf("send %T: %v", in, err)
	}
}

// citizen walks a whole session with the stand-in checks.
func citizen(t *testing.T, s flow.Session) {
	t.Helper()
	await(t, s, flowtest.AtStep(flow.StepWelcome))
	send(t, s, flow.Start{})
	await(t, s, flowtest.AtStep(flow.StepLanguage))
	send(t, s, flow.ChooseLanguage{Tag: "uk"})
	await(t, s, flowtest.AtStep(flow.StepDocuments))
	send(t, s, flow.ToggleDocument{Kind: casefile.ServiceIDCard})
	send(t, s, flow.Next{})
	v := await(t, s, func(v flow.View) bool {
		return v.Step == flow.StepPhotoChoice || v.Step == flow.StepSignature
	})
	if v.Step == flow.StepPhotoChoice {
		send(t, s, flow.PickPhoto{Index: 0})
		await(t, s, flowtest.AtStep(flow.StepSignature))
	}
	var stroke []flow.Point
	for i := range 20 {
		stroke = append(stroke, flow.Point{X: 10 + 5*i, Y: 20 + i%4})
	}
	send(t, s, flow.SignatureDone{Strokes: [][]flow.Point{stroke}, W: 200, H: 60})
	await(t, s, flowtest.AtStep(flow.StepReview))
	send(t, s, flow.Consent{Given: true})
	await(t, s, flowtest.AtStep(flow.StepReceipt))
	send(t, s, flow.Next{})
	for range s.Views() {
	}
}

func TestSessionsOneAfterAnother(t *testing.T) {
	r := newRig(t, nil)
	var numbers []string
	for range 2 {
		s := r.k.NextSession(r.ctx)
		o, ok := s.(kiosk.Outcomer)
		if !ok {
			t.Fatalf("a flow session of type %T tells no outcome", s)
		}
		citizen(t, s)
		out, err := o.Outcome(r.ctx)
		if err != nil || out.End != flow.StepReceipt || !out.Saved || !out.Printed {
			t.Fatalf("outcome %+v, %v", out, err)
		}
		numbers = append(numbers, o.Number())
	}
	if numbers[0] == numbers[1] {
		t.Errorf("two sessions with the number %s", numbers[0])
	}
	apps := r.ag.Applications()
	if len(apps) != 2 {
		t.Fatalf("%d applications saved, want 2", len(apps))
	}
	a := apps[0]
	if len(a.Face) == 0 || !a.Face[0].Selected || len(a.Finger) != 2 || a.Signature == nil || a.Language != "uk" {
		t.Errorf("application from the stand-ins: %+v", a)
	}
	if st, _ := r.ag.peripheral("camera"); st != protocol.PeripheralOK {
		t.Errorf("camera reported %v in the heartbeat", st)
	}
}

func TestOutOfServiceUntilThePeripheralWorks(t *testing.T) {
	r := newRig(t, nil)
	r.cam.SetStatus(drivers.Status{State: drivers.StateMissing, Reason: "camera unplugged"})
	s := r.k.NextSession(r.ctx)
	v := await(t, s, flowtest.AtStep(flow.StepOutOfService))
	if v.Message != flow.MsgOutOfService || v.Args["peripheral"] != "camera" || !strings.Contains(v.Args["reason"], "unplugged") {
		t.Fatalf("out-of-service view %+v", v)
	}
	if err := s.Send(flow.Start{}); !errors.Is(err, flow.ErrRefused) {
		t.Errorf("input out of service: %v", err)
	}
	if st, reason := r.ag.peripheral("camera"); st != protocol.PeripheralMissing || !strings.Contains(reason, "unplugged") {
		t.Errorf("heartbeat: camera %v %q", st, reason)
	}
	r.cam.SetStatus(drivers.Status{State: drivers.StateOK})
	r.k.Check(r.ctx)
	for range s.Views() {
	}
	s = r.k.NextSession(r.ctx)
	await(t, s, flowtest.AtStep(flow.StepWelcome))
	if st, _ := r.ag.peripheral("camera"); st != protocol.PeripheralOK {
		t.Errorf("heartbeat: camera %v after it came back", st)
	}
}

func TestCameraTooSmallIsAConfigurationError(t *testing.T) {
	r := newRig(t, func(_ *kiosk.Config, o *kiosk.Options) {
		o.CheckCameraMode = func(w, h int) error {
			return errors.New("1244×1600 needs a larger camera mode")
		}
	})
	s := r.k.NextSession(r.ctx)
	v := await(t, s, flowtest.AtStep(flow.StepOutOfService))
	if v.Args["peripheral"] != "camera" || !strings.Contains(v.Args["reason"], "configuration error") {
		t.Fatalf("view %+v", v)
	}
}

// Without configured checks the kiosk runs kiosk/photo, kiosk/finger and
// kiosk/signature at their defaults: the fake camera's 160x120 can never
// give the photo.
func TestDefaultChecksRefuseASmallCamera(t *testing.T) {
	r := newRig(t, func(_ *kiosk.Config, o *kiosk.Options) {
		o.Faces, o.Fingers, o.Signatures, o.CheckCameraMode = nil, nil, nil, nil
	})
	s := r.k.NextSession(r.ctx)
	v := await(t, s, flowtest.AtStep(flow.StepOutOfService))
	if v.Args["peripheral"] != "camera" || !strings.Contains(v.Args["reason"], "1244") {
		t.Fatalf("view %+v", v)
	}
}

func TestIdleSessionEndsWhenThePrinterFails(t *testing.T) {
	r := newRig(t, nil)
	s := r.k.NextSession(r.ctx)
	await(t, s, flowtest.AtStep(flow.StepWelcome))
	r.printer.SetPaperOut(true)
	r.k.Check(r.ctx)
	for range s.Views() {
	}
	s = r.k.NextSession(r.ctx)
	v := await(t, s, flowtest.AtStep(flow.StepOutOfService))
	if v.Args["peripheral"] != "printer" || !strings.Contains(v.Args["reason"], "paper") {
		t.Fatalf("view %+v", v)
	}
	if len(r.ag.Captures()) != 0 {
		t.Errorf("an idle session saved something")
	}
}

func TestIdleSessionEndsWhenTheCameraGoes(t *testing.T) {
	r := newRig(t, nil)
	s := r.k.NextSession(r.ctx)
	await(t, s, flowtest.AtStep(flow.StepWelcome))
	r.cam.SetStatus(drivers.Status{State: drivers.StateMissing, Reason: "USB cable pulled"})
	r.k.Check(r.ctx)
	for range s.Views() {
	}
	s = r.k.NextSession(r.ctx)
	v := await(t, s, flowtest.AtStep(flow.StepOutOfService))
	if v.Args["peripheral"] != "camera" || !strings.Contains(v.Args["reason"], "USB cable") {
		t.Fatalf("view %+v", v)
	}
}

func TestRunningSessionIsNotDisturbed(t *testing.T) {
	r := newRig(t, nil)
	s := r.k.NextSession(r.ctx)
	await(t, s, flowtest.AtStep(flow.StepWelcome))
	send(t, s, flow.Start{})
	await(t, s, flowtest.AtStep(flow.StepLanguage))
	r.printer.SetPaperLow(true) // degraded: still usable
	r.cam.SetStatus(drivers.Status{State: drivers.StateMissing, Reason: "unplugged"})
	r.k.Check(r.ctx)
	if st, _ := r.ag.peripheral("printer"); st != protocol.PeripheralDegraded {
		t.Errorf("printer reported %v, want degraded", st)
	}
	if st, _ := r.ag.peripheral("camera"); st != protocol.PeripheralMissing {
		t.Errorf("camera reported %v, want missing", st)
	}
	// A session past its welcome screen goes on: the photo moves to the
	// counter if the camera stays away.
	send(t, s, flow.ChooseLanguage{Tag: "de"})
	await(t, s, flowtest.AtStep(flow.StepDocuments))
	send(t, s, flow.Cancel{})
	await(t, s, flowtest.AtStep(flow.StepCancelled))
	send(t, s, flow.Next{})
	for range s.Views() {
	}
}

func TestPayAtCounterNeedsNoTerminal(t *testing.T) {
	r := newRig(t, func(c *kiosk.Config, _ *kiosk.Options) { c.Flow.PayAtCounter = true })
	r.pay.SetStatus(drivers.Status{State: drivers.StateMissing, Reason: "terminal away for repair"})
	s := r.k.NextSession(r.ctx)
	await(t, s, flowtest.AtStep(flow.StepWelcome))
	if st, _ := r.ag.peripheral("payment"); st != protocol.PeripheralMissing {
		t.Errorf("the missing terminal is not in the heartbeat: %v", st)
	}
}

func TestCannotStartASession(t *testing.T) {
	r := newRig(t, nil)
	r.st.Err = errors.New("database is locked")
	s := r.k.NextSession(r.ctx)
	v := await(t, s, flowtest.AtStep(flow.StepOutOfService))
	if v.Message != flow.MsgOutOfServiceError || !strings.Contains(v.Args["reason"], "locked") {
		t.Fatalf("view %+v", v)
	}
	r.st.Err = nil
	r.clock.Advance(time.Minute) // the kiosk tries again
	for range s.Views() {
	}
	s = r.k.NextSession(r.ctx)
	await(t, s, flowtest.AtStep(flow.StepWelcome))
}

func TestAdmin(t *testing.T) {
	rebooted := false
	r := newRig(t, func(_ *kiosk.Config, o *kiosk.Options) {
		o.Reboot = func(context.Context) error { rebooted = true; return nil }
	})
	a := r.k.Admin()
	for pin, want := range map[string]bool{"4711": true, "4712": false, "": false, "47111": false} {
		if a.CheckPIN(pin) != want {
			t.Errorf("CheckPIN(%q) = %v", pin, !want)
		}
	}
	r.ag.mu.Lock()
	r.ag.stats = agentsync.Stats{Online: true, Synced: true}
	r.ag.mu.Unlock()
	r.ag.watch <- agent.Status{State: agent.Stored}
	r.k.Check(r.ctx)
	// Run takes the sync news in its own time: poll for it.
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(wait)
	st := a.Status()
	for st.LastSync.IsZero() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatal("the last sync never showed")
		}
		st = a.Status()
	}
	if !st.Connected || st.Pending != 3 || st.Version != "1.2.3" || st.LastSync.IsZero() {
		t.Errorf("status %+v", st)
	}
	names := map[string]string{}
	for _, p := range st.Peripherals {
		names[p.Name] = p.State
	}
	if names["camera"] != "ok" || names["printer"] != "ok" || names["fingerprint"] != "ok" || names["payment"] != "ok" {
		t.Errorf("peripherals %+v", st.Peripherals)
	}
	if err := a.Reboot(); err != nil || !rebooted {
		t.Errorf("reboot: %v, %v", err, rebooted)
	}

	shut := newRig(t, func(c *kiosk.Config, _ *kiosk.Options) { c.AdminPIN = "" })
	if shut.k.Admin().CheckPIN("") || shut.k.Admin().Reboot() == nil {
		t.Error("an admin screen without a PIN opens, or a terminal without Reboot reboots")
	}
}

func TestConfigValidate(t *testing.T) {
	cfg := kiosk.Config{Flow: flow.DefaultConfig(), NumberPrefix: "k1"}
	cfg.Flow.Office = "buergeramt-mitte"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "prefix") {
		t.Errorf("lower-case prefix: %v", err)
	}
	cfg.NumberPrefix, cfg.AdminPIN = "K1", "12"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "PIN") {
		t.Errorf("short PIN: %v", err)
	}
}
