package ui

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"

	"github.com/kogge-fleet/kogge/agent"
	"github.com/kogge-fleet/kogge/agent/store"
	"github.com/kogge-fleet/kogge/agent/sync/synctest"
	"github.com/kogge-fleet/kogge/drivers/camera"
	"github.com/kogge-fleet/kogge/drivers/gnss"
	"github.com/kogge-fleet/kogge/drivers/printer"
	mobileagent "github.com/kogge-fleet/kogge/mobile-agent"
	"github.com/kogge-fleet/kogge/mobile-agent/enforcement"
	"github.com/kogge-fleet/kogge/mobile-agent/shift"
	"github.com/kogge-fleet/kogge/protocol"
	"github.com/kogge-fleet/kogge/protocol/seal"
)

const device = "hh-ui-1"

// clock is the app's clock: it stands still where the test started,
// until the test moves it.
type clock struct {
	mu   sync.Mutex
	base time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.base
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.base = c.base.Add(d)
	c.mu.Unlock()
}

// harness is the UI on fyne's test driver over a real app on an
// in-memory link (cut: offline), with fake GNSS, printer and camera.
type harness struct {
	t       *testing.T
	u       *UI
	app     *mobileagent.App
	link    *synctest.Link
	printer *printer.Fake
	gnss    *gnss.Fake
	clock   *clock
}

func newHarness(t *testing.T, lang string) *harness {
	t.Helper()
	h := &harness{t: t, link: synctest.NewLink(), printer: printer.NewFake(), gnss: gnss.NewFake(), clock: &clock{base: time.Now().Truncate(time.Second)}}
	h.gnss.SetFix(gnss.Fix{Lat: 53.07582, Lon: 8.80717, Accuracy: 4.5, HDOP: 0.9, Satellites: 9, Quality: "gps", Mode: 3})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	app, stop, err := startApp(ctx, t.TempDir(), appDeps{link: h.link, gnss: h.gnss, printer: h.printer, clock: h.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	h.app = app
	fa := test.NewTempApp(t)
	u, err := New(fa, app, Options{Lang: lang, Windowed: true, Synchronous: true})
	if err != nil {
		t.Fatal(err)
	}
	h.u = u
	return h
}

// appDeps are what a test may give startApp; zero fields get defaults.
type appDeps struct {
	link    *synctest.Link   // default: a new link, cut (offline)
	gnss    *gnss.Fake       // default: a fake with a fix in Bremen
	printer *printer.Fake    // default: a new fake
	clock   func() time.Time // default: the app's own
}

// startApp runs a handheld app for the UI's tests (a real store in dir, an
// in-memory link, fake GNSS, printer and camera, officer 4711 with PIN
// 1234) until stop is called, and returns it once it has checked its
// peripherals, which the status bar shows.
func startApp(ctx context.Context, dir string, d appDeps) (_ *mobileagent.App, stop func(), err error) {
	if d.link == nil {
		d.link = synctest.NewLink()
	}
	if d.gnss == nil {
		d.gnss = gnss.NewFake()
		d.gnss.SetFix(gnss.Fix{Lat: 53.07582, Lon: 8.80717, Accuracy: 4.5, HDOP: 0.9, Satellites: 9, Quality: "gps", Mode: 3})
	}
	if d.printer == nil {
		d.printer = printer.NewFake()
	}
	link := d.link
	log := quiet()
	st, err := store.Open(filepath.Join(dir, "agent.db"), store.Options{Logger: log})
	if err != nil {
		return nil, nil, err
	}
	var cleanups []func()
	cleanup := func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	}
	cleanups = append(cleanups, func() { st.Close() }, link.Close)
	defer func() {
		if err != nil {
			cleanup()
		}
	}()
	offices := map[string]seal.Recipient{}
	for _, o := range []string{mobileagent.DefaultNoticeOffice, mobileagent.DefaultReportOffice} {
		r, _, err := seal.GenerateKey(o, o+"-1")
		if err != nil {
			return nil, nil, err
		}
		offices[o] = r
	}
	hash, err := shift.HashPIN("1234", shift.Params{Memory: 64, Time: 1, Threads: 1})
	if err != nil {
		return nil, nil, err
	}
	cam := camera.NewFake([]camera.Mode{{Width: 960, Height: 720, FPS: 15}}, func(_ uint64, m camera.Mode) image.Image {
		return streetScene(m.Width, m.Height)
	})
	m, err := mobileagent.New(ctx, mobileagent.Config{
		Device: device, Software: "test-1", NoticePrefix: "HB42",
		Issuer:   enforcement.Office{Name: "Freie Hansestadt Bremen", Unit: "Ordnungsamt", IBAN: "DE89 3704 0044 0532 0130 00"},
		Officers: []shift.Officer{{ID: "4711", Name: "Erika Muster", Crew: "Mitte", PINHash: hash}},
	}, mobileagent.Deps{
		Store: st, Transport: link.Device(), Sequencer: enforcement.NewMemorySequencer(0),
		GNSS: d.gnss, Printer: d.printer, Camera: cam,
	}, mobileagent.Options{Logger: log, Clock: d.clock, Agent: agent.Options{Offices: offices}})
	if err != nil {
		return nil, nil, err
	}
	changes, unsubscribe := m.Changes()
	defer unsubscribe()
	runCtx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { m.Run(runCtx) })
	wg.Go(func() {
		for {
			select {
			case <-runCtx.Done():
				return
			case <-link.Server().Incoming():
			}
		}
	})
	cleanups = append(cleanups, func() { cancel(); wg.Wait() })
	for len(m.Peripherals()) < 3 {
		select {
		case <-changes:
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("the app checked %d of 3 peripherals: %w", len(m.Peripherals()), ctx.Err())
		}
	}
	return m, cleanup, nil
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// objects are the objects on screen now.
func (h *harness) objects() []fyne.CanvasObject {
	return test.LaidOutObjects(h.u.win.Content())
}

// button finds the enabled button labelled label.
func (h *harness) button(label string) *widget.Button {
	h.t.Helper()
	var found *widget.Button
	for _, o := range h.objects() {
		if b, ok := o.(*widget.Button); ok && b.Text == label {
			found = b
		}
	}
	if found == nil {
		h.t.Fatalf("no button %q on the screen; it shows: %s", label, h.texts())
	}
	return found
}

// tap taps the button labelled label.
func (h *harness) tap(label string) {
	h.t.Helper()
	b := h.button(label)
	if b.Disabled() {
		h.t.Fatalf("button %q is disabled; the screen shows: %s", label, h.texts())
	}
	test.Tap(b)
}

// tapCard taps the first card that shows a text containing s.
func (h *harness) tapCard(s string) {
	h.t.Helper()
	for _, o := range h.objects() {
		c, ok := o.(*tapCard)
		if !ok {
			continue
		}
		for _, inner := range test.LaidOutObjects(c) {
			if strings.Contains(textOf(inner), s) {
				test.Tap(c)
				return
			}
		}
	}
	h.t.Fatalf("no card with %q; the screen shows: %s", s, h.texts())
}

// field finds the input under the caption label.
func (h *harness) field(label string) fyne.CanvasObject {
	h.t.Helper()
	for _, o := range h.objects() {
		c, ok := o.(*fyne.Container)
		if !ok || len(c.Objects) != 2 {
			continue
		}
		if t, ok := c.Objects[0].(*canvas.Text); ok && t.Text == label {
			for _, inner := range test.LaidOutObjects(c.Objects[1]) {
				switch w := inner.(type) {
				case *widget.SelectEntry, *widget.Entry, *widget.Select:
					return w
				}
			}
		}
	}
	h.t.Fatalf("no field %q; the screen shows: %s", label, h.texts())
	return nil
}

// typeInto types into the entry under a caption.
func (h *harness) typeInto(label, s string) {
	h.t.Helper()
	switch w := h.field(label).(type) {
	case *widget.SelectEntry:
		w.SetText(s)
	case *widget.Entry:
		test.Type(w, s)
	default:
		h.t.Fatalf("field %q is a %T, not an entry", label, w)
	}
}

// choose picks an option of the select under a caption.
func (h *harness) choose(label, option string) {
	h.t.Helper()
	sel, ok := h.field(label).(*widget.Select)
	if !ok {
		h.t.Fatalf("field %q is not a select", label)
	}
	sel.SetSelected(option)
}

// texts is everything the screen says, for failure messages and checks.
func (h *harness) texts() string {
	var out []string
	for _, o := range h.objects() {
		if s := textOf(o); s != "" {
			out = append(out, s)
		}
	}
	return strings.Join(out, " | ")
}

// shows reports whether the screen says s somewhere.
func (h *harness) shows(s string) bool { return strings.Contains(h.texts(), s) }

func (h *harness) expect(s string) {
	h.t.Helper()
	if !h.shows(s) {
		h.t.Fatalf("the screen does not show %q; it shows: %s", s, h.texts())
	}
}

func textOf(o fyne.CanvasObject) string {
	switch w := o.(type) {
	case *canvas.Text:
		return w.Text
	case *widget.Label:
		return w.Text
	case *widget.Button:
		return "[" + w.Text + "]"
	case *widget.RichText:
		return w.String()
	}
	return ""
}

// login logs in on the keypad.
func (h *harness) login(officer, pin string) {
	h.t.Helper()
	for _, d := range officer {
		h.tap(string(d))
	}
	h.tap(tr(h.u.opts.Lang, "login.ok"))
	for _, d := range pin {
		h.tap(string(d))
	}
	h.tap(tr(h.u.opts.Lang, "login.ok"))
}

// send publishes a server message to the device over the healed link.
func (h *harness) send(msg protocol.Message) {
	h.t.Helper()
	topic, err := protocol.TopicFor(device, msg.Type())
	if err != nil {
		h.t.Fatal(err)
	}
	b, err := protocol.Encode(protocol.NewEnvelope(device, 0, time.Now(), msg))
	if err != nil {
		h.t.Fatal(err)
	}
	if err := h.link.Server().Publish(context.Background(), topic, b, false); err != nil {
		h.t.Fatal(err)
	}
}

// eventually polls cond until it holds or 10 s pass.
func (h *harness) eventually(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// glyphs is a 5×7 font for the plate in the camera's picture.
var glyphs = map[rune][7]string{
	'H': {"#...#", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"},
	'B': {"####.", "#...#", "#...#", "####.", "#...#", "#...#", "####."},
	'A': {".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"},
	'1': {"..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."},
	'2': {".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"},
	'3': {"####.", "....#", "....#", ".###.", "....#", "....#", "####."},
}

// streetScene is what the fake camera sees: asphalt and a car's rear
// with a licence plate, which the public copy must blur.
func streetScene(w, h int) image.Image {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	fill := func(r image.Rectangle, c color.Color) {
		draw.Draw(img, r, image.NewUniform(c), image.Point{}, draw.Src)
	}
	for y := range h {
		for x := range w {
			g := uint8(95 + (x*7+y*13)%23)
			img.Set(x, y, color.RGBA{g, g, g + 4, 255})
		}
	}
	fill(image.Rect(w*5/24, h*11/36, w*19/24, h*5/6), color.RGBA{30, 60, 120, 255})
	plate := image.Rect(w/3, h*23/36, w/3+329, h*23/36+70)
	fill(plate, color.RGBA{20, 20, 20, 255})
	fill(plate.Inset(2), color.White)
	fill(image.Rect(plate.Min.X+2, plate.Min.Y+2, plate.Min.X+30, plate.Max.Y-2), color.RGBA{0, 51, 153, 255})
	const dot = 7
	x, y := plate.Min.X+44, plate.Min.Y+(70-7*dot)/2
	for _, r := range "HBA123" {
		for gy, row := range glyphs[r] {
			for gx, c := range row {
				if c == '#' {
					fill(image.Rect(x+gx*dot, y+gy*dot, x+(gx+1)*dot, y+(gy+1)*dot), color.RGBA{10, 10, 10, 255})
				}
			}
		}
		x += 6 * dot
	}
	return img
}
