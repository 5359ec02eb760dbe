// Package ui is the handheld's touch UI, built with fyne, for phone-sized
// portrait screens and one hand: the primary actions sit at the bottom of
// every screen, where the thumb reaches them; every control a finger hits
// is at least 2 cm high (minTarget); the colours are black on white and
// white on dark blue, red or green, contrast 7:1 and more, for sunlight.
// Every string comes from a small German and English catalogue (text.go).
//
// Screens: PIN login, shift (home), the day's cases with their statuses,
// the notice wizard (vehicle and plate, offences by search, location,
// observation with a countdown while the minimum time is not reached,
// valves, photos and remarks, check, issue and print), void, the damage
// report and a report's status. The UI calls the methods of
// mobileagent.App and nothing else.
//
//	a := app.NewWithID("org.kogge.mobile")
//	u, err := ui.New(a, mobileApp, ui.Options{Lang: "de"})
//	u.ShowAndRun()
package ui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/drivers"
	"github.com/kogge-fleet/kogge/drivers/printer"
	mobileagent "github.com/kogge-fleet/kogge/mobile-agent"
	"github.com/kogge-fleet/kogge/mobile-agent/enforcement"
	"github.com/kogge-fleet/kogge/mobile-agent/roadwork"
	"github.com/kogge-fleet/kogge/mobile-agent/shift"
)

// Options are the UI's settings; the zero value is usable.
type Options struct {
	// Lang is the UI's language: "de" (default) or "en".
	Lang string
	// Windowed shows a window of Size instead of full screen.
	Windowed bool
	// Size is the window's size when Windowed (PhoneSize).
	Size fyne.Size
	// Logger receives what the UI cannot show (slog discard).
	Logger *slog.Logger
	// Synchronous runs the app's actions on the caller's goroutine and
	// neither follows the app's changes nor ticks the countdown: for
	// fyne's test driver, which runs everything on the test's goroutine
	// (the test calls Refresh and Tick).
	Synchronous bool
	// ActionTimeout bounds one action of the app (60 s).
	ActionTimeout time.Duration
}

// page is a screen of the UI.
type page int

const (
	pageLogin page = iota
	pageHome
	pageCases
	pageCase
	pageNotice
	pageIssued
	pageVoid
	pageReport
	pageReportStatus
)

// Notice wizard steps.
const (
	stepVehicle = iota
	stepOffences
	stepPlace
	stepObservation
	stepDetails
	stepCheck
	steps
)

// UI is the handheld's window. Its state is touched only on fyne's
// goroutine.
type UI struct {
	fa   fyne.App
	win  fyne.Window
	app  *mobileagent.App
	opts Options
	log  *slog.Logger

	page   page
	msg    string
	msgErr bool
	busy   bool

	// Login.
	loginStage    int // 0: officer number, 1: PIN
	officerNumber string
	pinDigits     string

	// Notice wizard.
	step     int
	vehicle  vehicleInput
	query    string
	street   string
	house    string
	issued   *mobileagent.Issued
	selected shift.Case
	reason   string

	// Report.
	report     reportInput
	reportID   uuid.UUID
	reportSeen mobileagent.ReportPhoto

	// countdown shows the observation's remaining time, when on screen.
	countdown *widget.Label

	stopFollow func()
	wg         sync.WaitGroup
}

// vehicleInput is what the vehicle step's fields hold.
type vehicleInput struct {
	nationality, plate, make, colour string
}

// reportInput is what the report screen's fields hold.
type reportInput struct {
	street, house, note string
}

// New builds the UI on a fyne app for the handheld app m.
func New(fa fyne.App, m *mobileagent.App, opts Options) (*UI, error) {
	if opts.Lang == "" {
		opts.Lang = "de"
	}
	if opts.Lang != "de" && opts.Lang != "en" {
		return nil, fmt.Errorf("ui: language %q: de or en", opts.Lang)
	}
	if opts.Size.IsZero() {
		opts.Size = PhoneSize
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.ActionTimeout <= 0 {
		opts.ActionTimeout = time.Minute
	}
	if m == nil {
		return nil, errors.New("ui: no app")
	}
	fa.Settings().SetTheme(sunTheme{})
	u := &UI{fa: fa, app: m, opts: opts, log: opts.Logger, vehicle: vehicleInput{nationality: "D"}}
	u.win = fa.NewWindow(u.t("app.title"))
	if opts.Windowed {
		u.win.Resize(opts.Size)
		u.win.SetFixedSize(true)
	} else {
		u.win.SetFullScreen(true)
	}
	u.win.SetPadded(false)
	if s := m.ShiftStatus(); s.Officer != nil {
		u.page = pageHome
	}
	u.render()
	if !opts.Synchronous {
		u.follow()
	}
	return u, nil
}

// Window returns the UI's window.
func (u *UI) Window() fyne.Window { return u.win }

// ShowAndRun shows the window and runs fyne's event loop until the window
// closes. Call it on the main goroutine.
func (u *UI) ShowAndRun() {
	u.win.ShowAndRun()
	u.Close()
}

// Close stops following the app.
func (u *UI) Close() {
	if u.stopFollow != nil {
		u.stopFollow()
		u.stopFollow = nil
	}
	u.wg.Wait()
}

// follow re-draws live screens when the app changes and ticks the
// observation countdown every second.
func (u *UI) follow() {
	changes, stop := u.app.Changes()
	done := make(chan struct{})
	u.stopFollow = func() { stop(); close(done) }
	u.wg.Go(func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case _, ok := <-changes:
				if !ok {
					return
				}
				fyne.Do(u.Refresh)
			case <-tick.C:
				fyne.Do(u.Tick)
			}
		}
	})
}

// Refresh re-draws the screen if it shows what changes by itself
// (statuses, peripherals); screens with fields being filled stay as they
// are.
func (u *UI) Refresh() {
	switch u.page {
	case pageHome, pageCases, pageCase, pageIssued, pageReportStatus:
		if !u.busy {
			u.render()
		}
	}
}

// Tick updates the observation countdown.
func (u *UI) Tick() {
	if u.countdown != nil {
		u.countdown.SetText(u.countdownText())
	}
}

// t looks a text up in the UI's language.
func (u *UI) t(key string, args ...any) string { return tr(u.opts.Lang, key, args...) }

// go shows a page with a message (empty: none).
func (u *UI) show(p page, msg string, isErr bool) {
	u.page, u.msg, u.msgErr = p, msg, isErr
	u.render()
}

// fail shows an error on the current page.
func (u *UI) fail(err error) {
	u.msg, u.msgErr = u.errorText(err), true
	u.render()
}

// errorText is an error as the user reads it.
func (u *UI) errorText(err error) string {
	var le *shift.LoginError
	switch {
	case errors.As(err, &le) && errors.Is(err, shift.ErrLocked):
		return u.t("login.locked", le.Until.In(u.app.Location()).Format("15:04"))
	case errors.As(err, &le):
		return u.t("login.wrong", le.Remaining)
	case errors.Is(err, shift.ErrNotLoggedIn):
		return u.t("error.not-logged-in")
	case errors.Is(err, mobileagent.ErrNoShift):
		return u.t("error.no-shift")
	case errors.Is(err, enforcement.ErrPlate):
		return u.t("error.plate")
	case errors.Is(err, printer.ErrPaperOut):
		return u.t("error.paper-out")
	case errors.Is(err, printer.ErrCoverOpen):
		return u.t("error.cover-open")
	case errors.Is(err, drivers.ErrDisconnected), errors.Is(err, drivers.ErrTimeout):
		return u.t("error.device", err.Error())
	case errors.Is(err, mobileagent.ErrNoPrinter):
		return u.t("error.no-printer")
	case errors.Is(err, mobileagent.ErrNotKept):
		return u.t("error.not-kept")
	}
	var fe *roadwork.FieldError
	if errors.As(err, &fe) {
		if _, ok := texts["error.report."+fe.Field]; ok {
			return u.t("error.report." + fe.Field)
		}
	}
	return u.t("error.generic", err.Error())
}

// act runs an action of the app off the UI goroutine (inline when
// Synchronous) and then, on the UI goroutine, done with its error.
func (u *UI) act(work func(ctx context.Context) error, done func(err error)) {
	if u.busy {
		return
	}
	run := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), u.opts.ActionTimeout)
		defer cancel()
		return work(ctx)
	}
	if u.opts.Synchronous {
		done(run())
		return
	}
	u.busy = true
	u.render()
	u.wg.Go(func() {
		err := run()
		fyne.Do(func() {
			u.busy = false
			done(err)
		})
	})
}

// render draws the current page.
func (u *UI) render() {
	u.countdown = nil
	var c fyne.CanvasObject
	switch u.page {
	case pageLogin:
		c = u.loginPage()
	case pageHome:
		c = u.homePage()
	case pageCases:
		c = u.casesPage()
	case pageCase:
		c = u.casePage()
	case pageNotice:
		c = u.noticePage()
	case pageIssued:
		c = u.issuedPage()
	case pageVoid:
		c = u.voidPage()
	case pageReport:
		c = u.reportPage()
	case pageReportStatus:
		c = u.reportStatusPage()
	}
	u.win.SetContent(c)
	// Wrapped labels know their height only once they have their width:
	// a second layout pass places what follows them below them.
	c.Refresh()
}

// statusBar is the line on top of every screen: who is on duty, the
// link, the queue and the peripherals.
func (u *UI) statusBar() fyne.CanvasObject {
	var parts []string
	if s := u.app.ShiftStatus(); s.Officer != nil {
		parts = append(parts, s.Officer.ID)
	}
	if u.app.Online() {
		parts = append(parts, u.t("status.online"))
	} else {
		parts = append(parts, u.t("status.offline"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	if q, err := u.app.Queue(ctx); err == nil && q > 0 {
		parts = append(parts, u.t("status.queue", q))
	}
	cancel()
	for _, p := range u.app.Peripherals() {
		mark := "✓"
		if !p.Status.OK() {
			mark = "✗"
		}
		parts = append(parts, u.t("peripheral."+p.Name)+" "+mark)
	}
	if u.busy {
		parts = append(parts, u.t("status.busy"))
	}
	return bannerSized(strings.Join(parts, " · "), false, theme.SizeNameCaptionText)
}

// message is the page's banner, if any.
func (u *UI) message() fyne.CanvasObject {
	if u.msg == "" {
		return container.NewVBox()
	}
	return banner(u.msg, u.msgErr)
}
