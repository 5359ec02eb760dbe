package shift

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Values is where a Manager keeps its state between runs. The agent's
// store (*agent/store.Store) has these methods: the state then lives in the
// device's SQLite file, written durably, and survives restarts and updates.
type Values interface {
	GetValue(ctx context.Context, key string) ([]byte, bool, error)
	PutValue(ctx context.Context, key string, value []byte) error
}

// Officer is a person who may log in on the device, as the device's
// configuration provisions them.
type Officer struct {
	// ID is the officer's service number, what they type to log in.
	ID string `json:"id"`
	// Name is shown after login.
	Name string `json:"name,omitempty"`
	// Crew is the road crew or unit the officer works in (a road report's
	// crew).
	Crew string `json:"crew,omitempty"`
	// PINHash is the argon2id hash of the officer's PIN (HashPIN). The
	// Manager never hands it out.
	PINHash string `json:"pin_hash"`
}

// Shift is one officer's working period on the device.
type Shift struct {
	ID      uuid.UUID `json:"id"`
	Officer string    `json:"officer"`
	Crew    string    `json:"crew,omitempty"`
	Start   time.Time `json:"start"`
	// End is zero while the shift is open.
	End time.Time `json:"end,omitzero"`
	// EndReason is EndedByOfficer or EndedByHandover.
	EndReason string `json:"end_reason,omitempty"`
}

// Why a shift ended.
const (
	// EndedByOfficer: the officer ended it.
	EndedByOfficer = "ended"
	// EndedByHandover: another officer logged in on the device while the
	// shift was open.
	EndedByHandover = "handover"
)

// Open reports whether the shift has not ended.
func (s Shift) Open() bool { return s.End.IsZero() }

// Defaults of Options.
const (
	DefaultMaxAttempts = 5
	DefaultLockout     = 15 * time.Minute
	DefaultMaxLockout  = 4 * time.Hour
	DefaultKey         = "shift.state"
	DefaultHistory     = 32
)

// Options are the optional settings of a Manager; the zero value means the
// defaults.
type Options struct {
	// MaxAttempts is how many wrong PINs in a row lock the login (5).
	MaxAttempts int
	// Lockout is how long the first lock lasts (15 min). Every further
	// lock without a successful login in between lasts twice as long as
	// the one before, up to MaxLockout (4 h).
	Lockout    time.Duration
	MaxLockout time.Duration
	// Key is the value key of the state ("shift.state").
	Key string
	// History is how many ended shifts the state keeps (32).
	History int
	// Location is the time zone of "the day" (time.Local).
	Location *time.Location
	// Clock is the current time (time.Now).
	Clock func() time.Time
	// Sources list the officers' cases for Cases.
	Sources []CaseSource
}

func (o Options) withDefaults() Options {
	if o.MaxAttempts == 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	if o.Lockout == 0 {
		o.Lockout = DefaultLockout
	}
	if o.MaxLockout == 0 {
		o.MaxLockout = max(DefaultMaxLockout, o.Lockout)
	}
	if o.Key == "" {
		o.Key = DefaultKey
	}
	if o.History == 0 {
		o.History = DefaultHistory
	}
	if o.Location == nil {
		o.Location = time.Local
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	return o
}

// Validate checks the options; zero values are valid (the defaults).
func (o Options) Validate() error {
	var errs []error
	if o.MaxAttempts < 0 || o.MaxAttempts > 100 {
		errs = append(errs, fmt.Errorf("max attempts %d: want 1 to 100", o.MaxAttempts))
	}
	if o.Lockout < 0 || o.MaxLockout < 0 {
		errs = append(errs, errors.New("lock-out durations must not be negative"))
	}
	if o.MaxLockout != 0 && o.MaxLockout < o.Lockout {
		errs = append(errs, fmt.Errorf("max lock-out %v is below the lock-out %v", o.MaxLockout, o.Lockout))
	}
	if o.History < 0 || o.History > 1000 {
		errs = append(errs, fmt.Errorf("history %d: want 1 to 1000", o.History))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("shift options: %w", err)
	}
	return nil
}

// CheckOfficers checks a configuration's officer list: ids present, at
// most 64 bytes of printable text and unique, every PIN hash readable.
func CheckOfficers(officers []Officer) error {
	seen := map[string]bool{}
	for i, o := range officers {
		switch {
		case o.ID == "" || len(o.ID) > 64 || !utf8.ValidString(o.ID) || strings.ContainsFunc(o.ID, isControl):
			return fmt.Errorf("officer %d: the id must be 1 to 64 bytes of printable text", i+1)
		case seen[o.ID]:
			return fmt.Errorf("officer %q is configured twice", o.ID)
		}
		seen[o.ID] = true
		if _, err := parseHash(o.PINHash); err != nil {
			return fmt.Errorf("officer %q: PIN hash: %w", o.ID, err)
		}
	}
	return nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// ErrWrongPIN means the officer number or the PIN was wrong; which of the
// two is not said.
var ErrWrongPIN = errors.New("wrong officer number or PIN")

// ErrLocked means too many wrong PINs locked the login for a while.
var ErrLocked = errors.New("locked after too many wrong PINs")

// LoginError is a refused login. It wraps ErrWrongPIN or ErrLocked.
type LoginError struct {
	Err error
	// Remaining is how many wrong PINs are left before the lock (after
	// ErrWrongPIN).
	Remaining int
	// Until is when the lock ends (after ErrLocked).
	Until time.Time
}

func (e *LoginError) Error() string {
	if errors.Is(e.Err, ErrLocked) {
		return fmt.Sprintf("login: %v until %s: wait, or ask a supervisor to check the device",
			e.Err, e.Until.Format("15:04"))
	}
	if e.Remaining == 1 {
		return fmt.Sprintf("login: %v: 1 attempt left before the login locks", e.Err)
	}
	return fmt.Sprintf("login: %v: %d attempts left before the login locks", e.Err, e.Remaining)
}

func (e *LoginError) Unwrap() error { return e.Err }

// Errors of the shift actions.
var (
	ErrShiftOpen = errors.New("a shift is already open: end it first")
	ErrNoShift   = errors.New("no shift is open: start one first")
)

// state is what the Manager persists. The logged-in officer is not part
// of it: after a restart the officer logs in again, while the open shift
// and the attempt counter survive.
type state struct {
	V           int       `json:"v"`
	Failures    int       `json:"failures,omitempty"`
	Lockouts    int       `json:"lockouts,omitempty"`
	LockedUntil time.Time `json:"locked_until,omitzero"`
	Shift       *Shift    `json:"shift,omitempty"`
	History     []Shift   `json:"history,omitempty"`
}

const stateVersion = 1

// Manager handles logins with a PIN and shifts on one device. It is safe
// for concurrent use.
//
// Wrong PINs are counted for the device, whichever officer number was
// typed, so guessing cannot move from one officer to the next; the count
// and the lock survive restarts. A successful login resets them.
type Manager struct {
	vals Values
	opts Options

	mu       sync.Mutex
	officers map[string]Officer
	dummy    string // hashed for unknown officer numbers, so they take as long
	st       state
	who      *Officer
}

// New loads the state from vals and returns the manager for the officers
// of the configuration.
func New(ctx context.Context, vals Values, officers []Officer, opts Options) (*Manager, error) {
	if vals == nil {
		return nil, errors.New("shift: a value store is required")
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	m := &Manager{vals: vals, opts: opts.withDefaults()}
	if err := m.SetOfficers(officers); err != nil {
		return nil, err
	}
	b, ok, err := vals.GetValue(ctx, m.opts.Key)
	if err != nil {
		return nil, fmt.Errorf("shift: load state: %w", err)
	}
	if ok {
		if err := json.Unmarshal(b, &m.st); err != nil {
			return nil, fmt.Errorf("shift: state under %q is unreadable (%v): the device's store is damaged", m.opts.Key, err)
		}
		if m.st.V > stateVersion {
			return nil, fmt.Errorf("shift: state version %d is newer than this build's %d: update the app", m.st.V, stateVersion)
		}
	}
	m.st.V = stateVersion
	return m, nil
}

// SetOfficers replaces the provisioned officers (a new configuration). A
// logged-in officer who is no longer listed is logged out; an open shift
// stays open.
func (m *Manager) SetOfficers(officers []Officer) error {
	if err := CheckOfficers(officers); err != nil {
		return fmt.Errorf("shift: %w", err)
	}
	byID := make(map[string]Officer, len(officers))
	for _, o := range officers {
		byID[o.ID] = o
	}
	var dummy string
	if len(officers) > 0 {
		// Its PIN does not matter: an unknown officer number never logs
		// in. Only the cost must match a real officer's.
		h, _ := parseHash(officers[0].PINHash)
		var err error
		if dummy, err = HashPIN("000000", h.p); err != nil {
			return fmt.Errorf("shift: %w", err)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.officers, m.dummy = byID, dummy
	if m.who != nil {
		if o, ok := byID[m.who.ID]; ok {
			o.PINHash = ""
			m.who = &o
		} else {
			m.who = nil
		}
	}
	return nil
}

// Status is a snapshot of the manager for the user interface.
type Status struct {
	// Officer is the logged-in officer (without the PIN hash), or nil.
	Officer *Officer
	// Shift is the open shift, or nil. It may belong to an officer who is
	// not logged in at the moment (the device was locked or restarted).
	Shift *Shift
	// LockedUntil is when the login lock ends; zero when not locked.
	LockedUntil time.Time
	// Remaining is how many wrong PINs are left before the lock.
	Remaining int
}

// Status returns the current status.
func (m *Manager) Status() Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	var s Status
	if m.who != nil {
		o := *m.who
		s.Officer = &o
	}
	if m.st.Shift != nil {
		sh := *m.st.Shift
		s.Shift = &sh
	}
	if m.opts.Clock().Before(m.st.LockedUntil) {
		s.LockedUntil = m.st.LockedUntil
	}
	s.Remaining = m.opts.MaxAttempts - m.st.Failures
	return s
}

// Login checks the officer's PIN and logs them in. A wrong officer number
// or PIN, or a locked login, gives a *LoginError. If another officer's
// shift is open, it ends with EndedByHandover. Whether the PIN was right
// is recorded before Login returns.
func (m *Manager) Login(ctx context.Context, id, pin string) (Officer, error) {
	m.mu.Lock()
	if len(m.officers) == 0 {
		m.mu.Unlock()
		return Officer{}, errors.New("login: the device's configuration lists no officers yet: ask the fleet administrator")
	}
	if now := m.opts.Clock(); now.Before(m.st.LockedUntil) {
		until := m.st.LockedUntil
		m.mu.Unlock()
		return Officer{}, &LoginError{Err: ErrLocked, Until: until}
	}
	o, known := m.officers[id]
	hash := o.PINHash
	if !known {
		hash = m.dummy
	}
	m.mu.Unlock()

	// The hash takes a while: not under the lock.
	ok, err := CheckPIN(hash, pin)
	if err != nil {
		return Officer{}, fmt.Errorf("login: officer %q: %w", id, err)
	}
	ok = ok && known

	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.opts.Clock()
	if now.Before(m.st.LockedUntil) { // a concurrent attempt locked it
		return Officer{}, &LoginError{Err: ErrLocked, Until: m.st.LockedUntil}
	}
	next := m.st.clone()
	if !ok {
		next.Failures++
		lerr := &LoginError{Err: ErrWrongPIN, Remaining: m.opts.MaxAttempts - next.Failures}
		if next.Failures >= m.opts.MaxAttempts {
			next.Failures = 0
			next.Lockouts++
			d := m.opts.Lockout
			for i := 1; i < next.Lockouts && d < m.opts.MaxLockout; i++ {
				d *= 2
			}
			next.LockedUntil = now.Add(min(d, m.opts.MaxLockout))
			lerr = &LoginError{Err: ErrLocked, Until: next.LockedUntil}
		}
		if err := m.commit(ctx, next); err != nil {
			return Officer{}, fmt.Errorf("login refused: %w", err)
		}
		m.who = nil
		return Officer{}, lerr
	}
	next.Failures, next.Lockouts, next.LockedUntil = 0, 0, time.Time{}
	if s := next.Shift; s != nil && s.Officer != id {
		next.end(now, EndedByHandover, m.opts.History)
	}
	if err := m.commit(ctx, next); err != nil {
		return Officer{}, fmt.Errorf("login: %w", err)
	}
	o.PINHash = ""
	m.who = &o
	return o, nil
}

// Logout logs the officer out. An open shift stays open: the same officer
// continues it after the next login.
func (m *Manager) Logout() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.who = nil
}

// StartShift opens a shift for the logged-in officer.
func (m *Manager) StartShift(ctx context.Context) (Shift, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.who == nil {
		return Shift{}, fmt.Errorf("start shift: %w", ErrNotLoggedIn)
	}
	if m.st.Shift != nil {
		return Shift{}, fmt.Errorf("start shift: %w (since %s)", ErrShiftOpen, m.st.Shift.Start.In(m.opts.Location).Format("15:04"))
	}
	id, err := uuid.NewV7()
	if err != nil {
		return Shift{}, fmt.Errorf("start shift: %w", err)
	}
	next := m.st.clone()
	next.Shift = &Shift{ID: id, Officer: m.who.ID, Crew: m.who.Crew, Start: m.opts.Clock()}
	if err := m.commit(ctx, next); err != nil {
		return Shift{}, fmt.Errorf("start shift: %w", err)
	}
	return *next.Shift, nil
}

// EndShift ends the logged-in officer's open shift and logs them out: the
// device is ready for the next officer.
func (m *Manager) EndShift(ctx context.Context) (Shift, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.who == nil {
		return Shift{}, fmt.Errorf("end shift: %w", ErrNotLoggedIn)
	}
	if m.st.Shift == nil {
		return Shift{}, fmt.Errorf("end shift: %w", ErrNoShift)
	}
	next := m.st.clone()
	ended := next.end(m.opts.Clock(), EndedByOfficer, m.opts.History)
	if err := m.commit(ctx, next); err != nil {
		return Shift{}, fmt.Errorf("end shift: %w", err)
	}
	m.who = nil
	return ended, nil
}

// Shifts returns the shifts the device remembers, newest first: the open
// one (if any), then the ended ones.
func (m *Manager) Shifts() []Shift {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Shift
	if m.st.Shift != nil {
		out = append(out, *m.st.Shift)
	}
	for i := len(m.st.History) - 1; i >= 0; i-- {
		out = append(out, m.st.History[i])
	}
	return out
}

// commit persists next and makes it the state; m.mu is held.
func (m *Manager) commit(ctx context.Context, next state) error {
	b, err := json.Marshal(next)
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	if err := m.vals.PutValue(ctx, m.opts.Key, b); err != nil {
		return fmt.Errorf("save shift state: %w", err)
	}
	m.st = next
	return nil
}

func (s state) clone() state {
	c := s
	if s.Shift != nil {
		sh := *s.Shift
		c.Shift = &sh
	}
	c.History = slices.Clone(s.History)
	return c
}

// end ends the open shift at t and moves it to the history.
func (s *state) end(t time.Time, reason string, keep int) Shift {
	sh := *s.Shift
	sh.End, sh.EndReason = t, reason
	s.Shift = nil
	s.History = append(s.History, sh)
	if n := len(s.History) - keep; n > 0 {
		s.History = slices.Delete(s.History, 0, n)
	}
	return sh
}
