// Package ui is the kiosk's touch screen, built with fyne. It renders the
// flow.View values a flow.Session delivers and sends the session the
// flow.Input values the citizen's touches mean; it decides nothing about
// the flow itself. It is the only kiosk package that imports fyne.
//
// One screen per flow.Step, full screen and touch first: every control is
// at least 2 cm in both directions, colours are black on white and white
// on dark blue or red (contrast 7:1 and more), and every screen has a
// switch for larger text. Every string comes from the message catalogue
// (kiosk/i18n); Arabic screens are mirrored, with text ordered right to
// left. A hidden screen for office staff opens after five quick taps in
// the top-left corner and a PIN (see docs/kiosk.md).
//
// Wiring it, on the main goroutine:
//
//	a := app.NewWithID("org.kogge.kiosk")
//	u, err := ui.New(a, ui.Options{Language: "de"})
//	…
//	err = u.Run(ctx, k.NextSession, k.Admin()) // k is the *kiosk.Kiosk
package ui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/widget"

	"github.com/kogge-fleet/kogge/kiosk/flow"
	"github.com/kogge-fleet/kogge/kiosk/i18n"
)

// Options are the UI's settings; the zero value is usable.
type Options struct {
	// Language is the office's default language (BCP 47): the UI shows
	// it before the citizen has chosen one and on the admin screen.
	// Default "de".
	Language string
	// Windowed shows a normal window of Size instead of full screen, for
	// development. Default full screen.
	Windowed bool
	// Size is the window size when Windowed. Default 1280×800.
	Size fyne.Size
	// Catalog is the message catalogue. Default i18n.Default().
	Catalog *i18n.Catalog
	// Logger receives warnings (a message key the catalogue lacks, an
	// input the flow refused). Default: discard.
	Logger *slog.Logger
	// AdminIdle closes the admin screen after this long without a touch
	// on it, so it is never left open for the next citizen. Default 2 min.
	AdminIdle time.Duration
	// AdminAttempts wrong PINs in a row lock the PIN pad for
	// AdminLockout. Defaults 5 and 1 min.
	AdminAttempts int
	AdminLockout  time.Duration
}

func (o Options) withDefaults() Options {
	if o.Language == "" {
		o.Language = "de"
	}
	if o.Size.IsZero() {
		o.Size = fyne.NewSize(1280, 800)
	}
	if o.Catalog == nil {
		o.Catalog = i18n.Default()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.AdminIdle == 0 {
		o.AdminIdle = 2 * time.Minute
	}
	if o.AdminAttempts == 0 {
		o.AdminAttempts = 5
	}
	if o.AdminLockout == 0 {
		o.AdminLockout = time.Minute
	}
	return o
}

// Validate reports settings the UI cannot work with.
func (o Options) Validate() error {
	o = o.withDefaults()
	var errs []error
	if !o.Catalog.Known(o.Language) {
		errs = append(errs, fmt.Errorf("default language %q is not in the catalogue; use one of %v", o.Language, o.Catalog.Languages()))
	}
	if o.Size.Width < 640 || o.Size.Height < 480 {
		errs = append(errs, fmt.Errorf("window size %v is too small; the kiosk needs at least 640×480", o.Size))
	}
	if o.AdminIdle < 0 || o.AdminLockout < 0 || o.AdminAttempts < 0 {
		errs = append(errs, errors.New("admin idle time, lockout and attempts must not be negative"))
	}
	return errors.Join(errs...)
}

// Sessions hands the UI the next citizen session (kiosk.Kiosk's
// NextSession is one). It may block until the kiosk is ready for one.
// Once ctx is done the UI ignores what it returns; before that, nil ends
// Run with an error.
type Sessions func(ctx context.Context) flow.Session

// UI is the kiosk's window. Create it with New and run it with Run. Its
// state is touched only on fyne's goroutine.
type UI struct {
	app  fyne.App
	win  fyne.Window
	opts Options
	cat  *i18n.Catalog
	log  *slog.Logger
	clk  clock

	root *frame

	session flow.Session
	view    flow.View
	hasView bool
	large   bool // the citizen switched to large text
	sig     signature
	pin     []byte // eID PIN digits typed so far; zeroed when sent or left
	// warnUntil is when the step times out while the flow warns; the
	// warning counts down to it once a second (stopTick stops that).
	warnUntil time.Time
	stopTick  func() bool
	tickGen   int // a tick of an earlier countdown that still runs ends itself
	admin     *adminState
	backend   flow.Admin
	guard     pinGuard // wrong PINs and lockout, across openings
	// rebootErr is the last failed reboot's error, for the admin screen.
	rebootErr   string
	adminScreen *screen     // the admin screen, when open (tests)
	corner      []time.Time // recent taps on the hidden corner
	unknown     map[string]bool
	// measures caches text measurements across screens.
	measures map[measureKey]fyne.Size
	screen   *screen
	warning  *screen // the timeout warning, when shown

	// onShow, if set, runs after each view has been drawn (tests).
	onShow func(flow.View)
}

// New creates the kiosk window on app with the kiosk's theme. Call it
// on the main goroutine, before Run.
func New(app fyne.App, opts Options) (*UI, error) {
	if app == nil {
		return nil, errors.New("ui: no fyne app given")
	}
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("ui options: %w", err)
	}
	opts = opts.withDefaults()
	u := &UI{app: app, opts: opts, cat: opts.Catalog, log: opts.Logger, clk: realClock{},
		unknown: map[string]bool{}, measures: map[measureKey]fyne.Size{}}
	app.Settings().SetTheme(kioskTheme{})
	u.win = app.NewWindow("Kogge")
	u.win.SetPadded(false)
	u.root = newFrame(u.rebuildAt)
	u.win.SetContent(u.root)
	if opts.Windowed {
		u.win.Resize(opts.Size)
	} else {
		u.win.SetFullScreen(true)
	}
	return u, nil
}

// Run shows the window and runs fyne's event loop, so call it on the main
// goroutine. It draws each session next hands it, one after another,
// until ctx is done (it then returns nil), next returns no session (an
// error) or the window is closed. admin is the back end of the staff
// screen; nil disables that screen.
func (u *UI) Run(ctx context.Context, next Sessions, admin flow.Admin) error {
	stop, errc, err := u.start(ctx, next, admin)
	if err != nil {
		return err
	}
	u.win.Show()
	u.app.Run()
	stop()
	return <-errc
}

// start begins drawing sessions in a goroutine that quits the app when it
// ends; stop cancels it and waits for it.
func (u *UI) start(ctx context.Context, next Sessions, admin flow.Admin) (stop func(), errc <-chan error, err error) {
	if next == nil {
		return nil, nil, errors.New("ui: Run needs a Sessions function")
	}
	u.backend = admin
	ctx, cancel := context.WithCancel(ctx)
	out := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		err := u.pump(ctx, next)
		out <- err
		fyne.Do(u.quit)
	}()
	return func() { cancel(); <-done }, out, nil
}

func (u *UI) quit() {
	u.stopCountdown()
	u.closeAdmin()
	u.app.Quit()
}

// pump reads the sessions and their views and draws each view on fyne's
// goroutine. DoAndWait lets a slow screen drop intermediate views (the
// session keeps only the latest) instead of queueing them.
func (u *UI) pump(ctx context.Context, next Sessions) error {
	for {
		s := next(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if s == nil {
			return errors.New("next kiosk session: the kiosk gave none; it cannot serve citizens")
		}
		fyne.DoAndWait(func() { u.begin(s) })
		views := s.Views()
	session:
		for {
			select {
			case <-ctx.Done():
				return nil
			case v, ok := <-views:
				if !ok {
					break session
				}
				fyne.DoAndWait(func() { u.show(v) })
			}
		}
		fyne.DoAndWait(u.end)
	}
}

// begin starts a citizen's session: text size and signature reset.
func (u *UI) begin(s flow.Session) {
	u.session = s
	u.large = false
	u.sig.clear()
	u.clearPIN()
}

// end forgets the session; its last screen stays until the next session
// draws its first view.
func (u *UI) end() {
	u.session = nil
	u.sig.clear()
	u.clearPIN()
	u.stopCountdown()
}

// startCountdown redraws the warning's time left every second.
func (u *UI) startCountdown() {
	u.stopCountdown()
	gen := u.tickGen
	var tick func()
	tick = func() {
		if gen != u.tickGen || !u.view.Warning {
			return
		}
		if u.warning != nil && u.warning.remaining != nil {
			u.warning.remaining.SetText(u.remainingText(u.lang()))
		}
		if u.clk.Now().Before(u.warnUntil) {
			u.stopTick = u.clk.AfterFunc(time.Second, tick)
		}
	}
	u.stopTick = u.clk.AfterFunc(time.Second, tick)
}

func (u *UI) stopCountdown() {
	u.tickGen++
	if u.stopTick != nil {
		u.stopTick()
		u.stopTick = nil
	}
}

// remainingText is the warning's "time left" line, as of now.
func (u *UI) remainingText(lang string) string {
	return u.cat.T(lang, "timeout.remaining", map[string]string{"remaining": clockTime(u.warnUntil.Sub(u.clk.Now()))})
}

// clearPIN zeroes and forgets the eID PIN digits typed so far.
func (u *UI) clearPIN() {
	clear(u.pin)
	u.pin = u.pin[:0]
}

// send hands the session an input; the flow refusing it is normal (a
// double tap, a tap just as the step changed) and only logged.
func (u *UI) send(in flow.Input) {
	if u.session == nil {
		return
	}
	if err := u.session.Send(in); err != nil {
		u.log.Debug("flow refused input", "input", fmt.Sprintf("%T", in), "err", err)
	}
}

// show draws a view. Only the live camera frame changing is drawn in
// place; any other change redraws the screen from the view and the UI's
// own state (text size, signature, admin screen).
func (u *UI) show(v flow.View) {
	prev, had := u.view, u.hasView
	u.view, u.hasView = v, true
	if prev.Step != v.Step || !had {
		if v.Step != flow.StepSignature {
			u.sig.clear()
		}
	}
	if prev.Step != v.Step || prev.Message != v.Message {
		u.clearPIN()
	}
	switch {
	case !v.Warning:
		u.stopCountdown()
	case !prev.Warning || prev.Step != v.Step || prev.Remaining != v.Remaining || !had:
		// The flow gives the time left when it starts warning; the
		// screen counts down from there.
		u.warnUntil = u.clk.Now().Add(v.Remaining)
		u.startCountdown()
	}
	if had && u.screen != nil && u.screen.frame != nil && sameButFrame(prev, v) {
		u.screen.frame.Image = v.Frame
		u.screen.frame.Refresh()
	} else {
		u.rebuild()
	}
	if u.onShow != nil {
		u.onShow(v)
	}
}

// sameButFrame reports whether two views differ at most in the live frame.
func sameButFrame(a, b flow.View) bool {
	return a.Step == b.Step && a.Language == b.Language && a.Message == b.Message &&
		maps.Equal(a.Args, b.Args) && slices.Equal(a.Guidance, b.Guidance) &&
		slices.Equal(a.Languages, b.Languages) && slices.Equal(a.Documents, b.Documents) &&
		slices.Equal(a.Chosen, b.Chosen) && slices.Equal(a.Counter, b.Counter) &&
		len(a.Candidates) == 0 && len(b.Candidates) == 0 &&
		a.Attempt == b.Attempt && a.Attempts == b.Attempts && a.FeeCents == b.FeeCents &&
		a.Number == b.Number && a.Warning == b.Warning && a.Remaining == b.Remaining &&
		a.Progress == b.Progress && a.Total == b.Total && a.Frame != nil && b.Frame != nil
}

// lang is the language to draw in: the citizen's, else the office's.
func (u *UI) lang() string {
	if u.hasView && u.view.Language != "" && u.cat.Known(u.view.Language) {
		return u.view.Language
	}
	return u.opts.Language
}

func (u *UI) rebuild() { u.rebuildAt(u.root.Size()) }

// rebuildAt draws the whole screen for a frame of the given size.
func (u *UI) rebuildAt(size fyne.Size) {
	if size.IsZero() {
		return // not laid out yet; the first Resize draws
	}
	objs := []fyne.CanvasObject{}
	u.screen, u.warning, u.adminScreen = nil, nil, nil
	if u.hasView {
		u.screen = u.buildScreen(size)
		objs = append(objs, u.screen.content)
		if u.view.Warning {
			objs = append(objs, u.buildWarning(size))
		}
	}
	if u.admin != nil {
		objs = append(objs, u.buildAdmin(size))
	}
	u.root.setContent(objs)
}

// shared makes a text box use the UI's measurement cache.
func (u *UI) shared(t *textBox) *textBox {
	if len(u.measures) >= maxMeasures {
		clear(u.measures)
	}
	t.m.cache = u.measures
	return t
}

// toggleLarge switches between normal and large text.
func (u *UI) toggleLarge() {
	u.large = !u.large
	u.rebuild()
}

// sizes are the type sizes now in force.
func (u *UI) sizes() textSizes {
	if u.large {
		return largeText
	}
	return normalText
}

// cornerTap counts taps on the hidden corner; five within three seconds
// open the admin screen.
func (u *UI) cornerTap() {
	if u.backend == nil {
		return
	}
	now := u.clk.Now()
	keep := u.corner[:0]
	for _, t := range u.corner {
		if now.Sub(t) < 3*time.Second {
			keep = append(keep, t)
		}
	}
	u.corner = append(keep, now)
	if len(u.corner) >= 5 {
		u.corner = u.corner[:0]
		u.openAdmin()
	}
}

// frame is the window's content. It redraws the screen when its size
// changes, so text wraps to the real width.
type frame struct {
	widget.BaseWidget
	objs     []fyne.CanvasObject
	last     fyne.Size
	onResize func(fyne.Size)
}

func newFrame(onResize func(fyne.Size)) *frame {
	f := &frame{onResize: onResize}
	f.ExtendBaseWidget(f)
	return f
}

// Resize redraws for a new size before laying out.
func (f *frame) Resize(s fyne.Size) {
	if s != f.last {
		f.last = s
		if f.onResize != nil {
			f.onResize(s)
		}
	}
	f.BaseWidget.Resize(s)
}

func (f *frame) setContent(objs []fyne.CanvasObject) {
	f.objs = objs
	f.Refresh()
}

func (f *frame) CreateRenderer() fyne.WidgetRenderer { return &frameRenderer{f: f} }

type frameRenderer struct{ f *frame }

func (r *frameRenderer) Destroy()                     {}
func (r *frameRenderer) Objects() []fyne.CanvasObject { return r.f.objs }
func (r *frameRenderer) MinSize() fyne.Size           { return fyne.NewSize(640, 480) }
func (r *frameRenderer) Refresh() {
	r.Layout(r.f.Size())
	for _, o := range r.f.objs {
		o.Refresh()
	}
	// The objects are new to the canvas: have it repaint the whole frame.
	canvas.Refresh(r.f)
}

func (r *frameRenderer) Layout(size fyne.Size) {
	for _, o := range r.f.objs {
		o.Move(fyne.NewPos(0, 0))
		o.Resize(size)
	}
}

// clock is time for the admin screen's lockout and idle timeout; tests
// replace it.
type clock interface {
	Now() time.Time
	// AfterFunc runs f on fyne's goroutine after d; stop cancels it.
	AfterFunc(d time.Duration, f func()) (stop func() bool)
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) AfterFunc(d time.Duration, f func()) func() bool {
	return time.AfterFunc(d, func() { fyne.Do(f) }).Stop
}
