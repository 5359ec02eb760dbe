package mobileagent

import (
	"context"
	"errors"
	"fmt"

	"github.com/kogge-fleet/kogge/mobile-agent/shift"
)

// ErrNoShift means an action needs the logged-in officer's open shift.
var ErrNoShift = errors.New("no shift of yours is open: start one first")

// Login checks the officer's PIN and logs them in (see shift.Manager.Login).
// When another officer takes over the device, the drafts and the notices
// kept for reprinting of the previous shift are dropped.
func (a *App) Login(ctx context.Context, id, pin string) (shift.Officer, error) {
	before := a.shifts.Status()
	o, err := a.shifts.Login(ctx, id, pin)
	if err != nil {
		return shift.Officer{}, err
	}
	if before.Shift != nil && before.Shift.Officer != o.ID {
		a.forget(true)
	}
	a.log.Info("officer logged in", "officer", o.ID)
	a.changed()
	return o, nil
}

// Logout logs the officer out (the device is locked); an open shift stays
// open and the same officer continues it after the next login. The drafts
// are dropped.
func (a *App) Logout() {
	a.shifts.Logout()
	a.forget(false)
	a.changed()
}

// StartShift opens a shift for the logged-in officer.
func (a *App) StartShift(ctx context.Context) (shift.Shift, error) {
	s, err := a.shifts.StartShift(ctx)
	if err != nil {
		return shift.Shift{}, err
	}
	a.log.Info("shift started", "officer", s.Officer, "shift", s.ID)
	a.changed()
	return s, nil
}

// EndShift ends the logged-in officer's shift and logs them out. The
// drafts and this shift's notices kept for reprinting are dropped.
func (a *App) EndShift(ctx context.Context) (shift.Shift, error) {
	s, err := a.shifts.EndShift(ctx)
	if err != nil {
		return shift.Shift{}, err
	}
	a.forget(true)
	a.log.Info("shift ended", "officer", s.Officer, "shift", s.ID)
	a.changed()
	return s, nil
}

// ShiftStatus returns the logged-in officer, the open shift and the login
// lock.
func (a *App) ShiftStatus() shift.Status { return a.shifts.Status() }

// Shifts returns the shifts the device remembers, newest first.
func (a *App) Shifts() []shift.Shift { return a.shifts.Shifts() }

// Cases lists the logged-in officer's cases of the day, notices and
// reports, newest first, with titles and statuses in lang ("de" or "en").
func (a *App) Cases(ctx context.Context, lang string) ([]shift.Case, error) {
	return a.shifts.Cases(ctx, lang)
}

// onDuty returns the logged-in officer whose shift is open.
func (a *App) onDuty() (shift.Officer, error) {
	s := a.shifts.Status()
	if s.Officer == nil {
		return shift.Officer{}, shift.ErrNotLoggedIn
	}
	if s.Shift == nil || s.Shift.Officer != s.Officer.ID {
		return shift.Officer{}, ErrNoShift
	}
	return *s.Officer, nil
}

// forget drops the drafts, and with all the notices kept for reprinting
// and voiding.
func (a *App) forget(all bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.notice, a.report = nil, nil
	if all {
		clear(a.issued)
	}
}

// setOfficers takes the twin's officers (or the provisioned ones).
func (a *App) setOfficers(officers []shift.Officer) error {
	if err := a.shifts.SetOfficers(officers); err != nil {
		return fmt.Errorf("officers: %w", err)
	}
	return nil
}
