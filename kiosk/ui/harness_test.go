package ui

import (
	"context"
	"image"
	"image/color"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"

	"github.com/kogge-fleet/kogge/kiosk/flow"
)

// fakeSession is a scripted flow.Session: the test pushes views and reads
// back the inputs the UI sent.
type fakeSession struct {
	views chan flow.View

	mu     sync.Mutex
	inputs []flow.Input
}

func newFakeSession() *fakeSession { return &fakeSession{views: make(chan flow.View)} }

func (f *fakeSession) Views() <-chan flow.View { return f.views }

func (f *fakeSession) Send(in flow.Input) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inputs = append(f.inputs, in)
	return nil
}

// take returns and forgets the inputs sent so far.
func (f *fakeSession) take() []flow.Input {
	f.mu.Lock()
	defer f.mu.Unlock()
	in := f.inputs
	f.inputs = nil
	return in
}

// fakeAdmin is the staff back end: one PIN, a fixed status, a reboot
// that records its call and may fail.
type fakeAdmin struct {
	pin       string
	status    flow.AdminStatus
	rebootErr error
	reboots   int
	checks    int
}

func (a *fakeAdmin) CheckPIN(pin string) bool { a.checks++; return pin == a.pin }
func (a *fakeAdmin) Status() flow.AdminStatus { return a.status }
func (a *fakeAdmin) Reboot() error            { a.reboots++; return a.rebootErr }

// fakeClock is a clock the test moves; timers fire on the test goroutine.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	at      time.Time
	f       func()
	stopped bool
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) func() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		was := !t.stopped
		t.stopped = true
		return was
	}
}

// advance moves time on and runs the timers that are due.
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []func()
	for _, t := range c.timers {
		if !t.stopped && !t.at.After(c.now) {
			t.stopped = true
			due = append(due, t.f)
		}
	}
	c.mu.Unlock()
	for _, f := range due {
		f()
	}
}

// harness runs a UI on fyne's test driver with scripted sessions. Views
// are handed over one at a time and the harness waits until each is
// drawn, so the test and the UI never touch the widgets at once.
type harness struct {
	t        testing.TB
	u        *UI
	clock    *fakeClock
	sessions chan flow.Session
	shown    chan flow.View
	done     chan struct{}
	errc     <-chan error
	stop     func()
	admin    *fakeAdmin
}

var screenSize = fyne.NewSize(1280, 800)

func newHarness(t testing.TB, opts Options) *harness {
	t.Helper()
	a := test.NewTempApp(t)
	opts.Windowed = true
	opts.Size = screenSize
	u, err := New(a, opts)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{
		t: t, u: u,
		clock:    &fakeClock{now: time.Date(2026, 5, 4, 9, 30, 0, 0, time.UTC)},
		sessions: make(chan flow.Session),
		shown:    make(chan flow.View),
		done:     make(chan struct{}),
		admin: &fakeAdmin{pin: "2468", status: flow.AdminStatus{
			Peripherals: []flow.Peripheral{
				{Name: "camera", State: "ok"},
				{Name: "fingerprint", State: "ok"},
				{Name: "printer", State: "degraded", Reason: "paper low"},
				{Name: "payment", State: "missing", Reason: "no answer on 192.168.7.20:20007"},
				{Name: "eid", State: "ok"},
			},
			Connected: true, Pending: 2, Version: "1.7.0",
			LastSync: time.Date(2026, 5, 4, 9, 12, 0, 0, time.Local),
		}},
	}
	u.clk = h.clock
	u.onShow = func(v flow.View) {
		select {
		case h.shown <- v:
		case <-h.done:
		}
	}
	next := func(ctx context.Context) flow.Session {
		select {
		case s := <-h.sessions:
			return s
		case <-ctx.Done():
			return nil
		}
	}
	stop, errc, err := u.start(context.Background(), next, h.admin)
	if err != nil {
		t.Fatal(err)
	}
	h.stop, h.errc = stop, errc
	t.Cleanup(func() {
		close(h.done)
		stop()
	})
	return h
}

const wait = 10 * time.Second

// begin hands the UI a new session.
func (h *harness) begin() *fakeSession {
	h.t.Helper()
	s := newFakeSession()
	select {
	case h.sessions <- s:
	case <-time.After(wait):
		h.t.Fatal("the UI did not ask for a session")
	}
	return s
}

// show hands the session's view to the UI and waits until it is drawn.
func (h *harness) show(s *fakeSession, v flow.View) {
	h.t.Helper()
	select {
	case s.views <- v:
	case <-time.After(wait):
		h.t.Fatalf("the UI did not read view %v", v.Step)
	}
	select {
	case <-h.shown:
	case <-time.After(wait):
		h.t.Fatalf("the UI did not draw view %v", v.Step)
	}
}

// end closes the session's views, as a flow does when the session is over.
func (h *harness) end(s *fakeSession) { close(s.views) }

// button returns the button with the role on the topmost screen.
func (h *harness) button(role string) *button {
	h.t.Helper()
	for _, s := range []*screen{h.u.adminScreen, h.u.warning, h.u.screen} {
		if s == nil {
			continue
		}
		if b, ok := s.buttons[role]; ok {
			return b
		}
	}
	h.t.Fatalf("no %q button on the screen", role)
	return nil
}

func (h *harness) has(role string) bool {
	for _, s := range []*screen{h.u.adminScreen, h.u.warning, h.u.screen} {
		if s != nil && s.buttons[role] != nil {
			return true
		}
	}
	return false
}

func (h *harness) tap(role string) {
	h.t.Helper()
	b := h.button(role)
	if b.disabled {
		h.t.Fatalf("button %q (%q) is disabled", role, b.label)
	}
	test.Tap(b)
}

// tapLabel taps the visible button whose label is text, as a citizen
// reading the screen would.
func (h *harness) tapLabel(text string) {
	h.t.Helper()
	var found *button
	walk(h.u.root, func(o fyne.CanvasObject) {
		if b, ok := o.(*button); ok && b.label == text {
			found = b
		}
	})
	if found == nil {
		h.t.Fatalf("no button labelled %q; texts on screen: %q", text, h.texts())
	}
	test.Tap(found)
}

// texts lists the visible text on screen in drawing order.
func (h *harness) texts() []string {
	var out []string
	walk(h.u.root, func(o fyne.CanvasObject) {
		if tb, ok := o.(*textBox); ok && tb.text != "" {
			out = append(out, tb.text)
		}
	})
	return out
}

func (h *harness) showsText(s string) bool { return slices.Contains(h.texts(), s) }

func (h *harness) wantText(s string) {
	h.t.Helper()
	if !h.showsText(s) {
		h.t.Errorf("screen does not show %q; it shows %q", s, h.texts())
	}
}

// walk visits the visible objects under o, widgets through their
// renderers, parents before children.
func walk(o fyne.CanvasObject, fn func(fyne.CanvasObject)) {
	if o == nil || !o.Visible() {
		return
	}
	fn(o)
	switch x := o.(type) {
	case *fyne.Container:
		for _, c := range x.Objects {
			walk(c, fn)
		}
	case fyne.Widget:
		for _, c := range test.WidgetRenderer(x).Objects() {
			walk(c, fn)
		}
	}
}

// absPos is where an object sits on the canvas.
func absPos(o fyne.CanvasObject) fyne.Position {
	return fyne.CurrentApp().Driver().AbsolutePositionForObject(o)
}

// fakeFace draws a camera picture: a grey wall and a face-like oval,
// shifted by dx.
func fakeFace(w, h, dx int) image.Image {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	cx, cy := float64(w/2+dx), float64(h)*0.42
	rx := float64(min(w, h)) * 0.17
	ry := rx * 1.35
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			c := color.RGBA{0xb8, 0xb8, 0xb8, 0xff}
			nx, ny := (float64(x)-cx)/rx, (float64(y)-cy)/ry
			switch d := nx*nx + ny*ny; {
			case d <= 1:
				c = color.RGBA{0xe0, 0xac, 0x8a, 0xff}
				for _, ex := range []float64{-0.38, 0.38} {
					if math.Hypot(nx-ex, (ny+0.2)*1.6) < 0.12 {
						c = color.RGBA{0x30, 0x20, 0x18, 0xff}
					}
				}
				if math.Abs(ny-0.45) < 0.04 && math.Abs(nx) < 0.3 {
					c = color.RGBA{0x90, 0x40, 0x40, 0xff}
				}
			case float64(y) > cy+ry*0.8 && math.Abs(float64(x)-cx) < rx*2.2:
				c = color.RGBA{0x2a, 0x3a, 0x5a, 0xff} // shoulders
			}
			img.Set(x, y, c)
		}
	}
	return img
}

// tapCorner taps the hidden admin corner once.
func (h *harness) tapCorner() {
	h.t.Helper()
	if h.u.screen == nil || h.u.screen.corner == nil {
		h.t.Fatal("no screen with the admin corner")
	}
	test.Tap(h.u.screen.corner)
}

// dragTo is the drag event of a finger moving from one point to another
// on a widget.
func dragTo(from, to [2]float32) *fyne.DragEvent {
	return &fyne.DragEvent{
		PointEvent: fyne.PointEvent{Position: fyne.NewPos(to[0], to[1])},
		Dragged:    fyne.NewDelta(to[0]-from[0], to[1]-from[1]),
	}
}

func sinf(x float32) float32 { return float32(math.Sin(float64(x))) }

// BenchmarkShowFrame is a new camera frame on the photo screen: drawn in
// place, 20 times a second while the citizen takes the photo.
func BenchmarkShowFrame(b *testing.B) {
	h := newHarness(b, Options{})
	s := h.begin()
	v := scenes("de")[4].v
	frames := []image.Image{fakeFace(640, 480, 10), fakeFace(640, 480, -10)}
	h.show(s, v)
	b.ResetTimer()
	for i := range b.N {
		v.Frame = frames[i%2]
		h.show(s, v)
	}
}

// BenchmarkShowScreen is a view that redraws the whole photo screen (new
// guidance), in German and Arabic.
func BenchmarkShowScreen(b *testing.B) {
	for _, lang := range []string{"de", "ar"} {
		b.Run(lang, func(b *testing.B) {
			h := newHarness(b, Options{})
			s := h.begin()
			v := scenes(lang)[4].v
			guidance := [][]string{{"photo.left"}, {"photo.too-close", "photo.hold-still"}}
			b.ResetTimer()
			for i := range b.N {
				v.Guidance = guidance[i%2]
				h.show(s, v)
			}
		})
	}
}
