package shift

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/agent/store"
)

// cheap are argon2id parameters that keep the tests fast.
var cheap = Params{Memory: 64, Time: 1, Threads: 1}

var _ Values = (*store.Store)(nil)

// memValues is an in-memory Values whose writes can be made to fail.
type memValues struct {
	mu   sync.Mutex
	m    map[string][]byte
	fail error
}

func newMem() *memValues { return &memValues{m: map[string][]byte{}} }

func (v *memValues) GetValue(_ context.Context, key string) ([]byte, bool, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	b, ok := v.m[key]
	return append([]byte(nil), b...), ok, nil
}

func (v *memValues) PutValue(_ context.Context, key string, value []byte) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.fail != nil {
		return v.fail
	}
	v.m[key] = append([]byte(nil), value...)
	return nil
}

// clock is a settable fake clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func officer(t *testing.T, id, pin, crew string) Officer {
	t.Helper()
	h, err := HashPIN(pin, cheap)
	if err != nil {
		t.Fatal(err)
	}
	return Officer{ID: id, Name: "Officer " + id, Crew: crew, PINHash: h}
}

type fixture struct {
	vals     *memValues
	clock    *clock
	officers []Officer
	opts     Options
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		berlin = time.FixedZone("CET", 3600)
	}
	c := &clock{t: time.Date(2026, 3, 2, 7, 30, 0, 0, berlin)}
	return &fixture{
		vals:     newMem(),
		clock:    c,
		officers: []Officer{officer(t, "W-0417", "482913", "Kolonne Nord"), officer(t, "W-0500", "1234", "Kolonne Süd")},
		opts:     Options{Clock: c.Now, Location: berlin},
	}
}

func (f *fixture) manager(t *testing.T) *Manager {
	t.Helper()
	m, err := New(t.Context(), f.vals, f.officers, f.opts)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestHashPIN(t *testing.T) {
	h, err := HashPIN("482913", cheap)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Fatalf("hash %q is not in PHC form", h)
	}
	if strings.Contains(h, "482913") {
		t.Fatal("the hash contains the PIN")
	}
	for pin, want := range map[string]bool{"482913": true, "482914": false, "": false, "4829130": false} {
		ok, err := CheckPIN(h, pin)
		if err != nil || ok != want {
			t.Errorf("CheckPIN(%q) = %v, %v; want %v", pin, ok, err, want)
		}
	}
	h2, _ := HashPIN("482913", cheap)
	if h2 == h {
		t.Fatal("two hashes of one PIN are equal: the salt is not random")
	}
}

func TestHashPINRefuses(t *testing.T) {
	for _, pin := range []string{"", "123", "1234567890123", "12a4", "12 34", "１２３４"} {
		if _, err := HashPIN(pin, cheap); err == nil {
			t.Errorf("HashPIN(%q) accepted", pin)
		}
	}
	for _, p := range []Params{{Memory: 0, Time: 1, Threads: 1}, {Memory: 64, Time: 0, Threads: 1},
		{Memory: 64, Time: 1, Threads: 0}, {Memory: 1 << 30, Time: 1, Threads: 1}} {
		if _, err := HashPIN("1234", p); err == nil {
			t.Errorf("HashPIN with %+v accepted", p)
		}
	}
}

func TestCheckPINBadHash(t *testing.T) {
	good, _ := HashPIN("1234", cheap)
	parts := strings.Split(good, "$")
	for name, h := range map[string]string{
		"empty":        "",
		"bcrypt":       "$2a$10$abcdefghijklmnopqrstuu",
		"argon2i":      strings.Replace(good, "argon2id", "argon2i", 1),
		"version":      strings.Replace(good, "v=19", "v=16", 1),
		"huge memory":  strings.Replace(good, "m=64", "m=4194304", 1),
		"huge time":    strings.Replace(good, "t=1", "t=1000", 1),
		"threads":      strings.Replace(good, "p=1", "p=300", 1),
		"unknown":      strings.Replace(good, "p=1", "p=1,x=2", 1),
		"short salt":   strings.Join([]string{"", parts[1], parts[2], parts[3], "YWJj", parts[5]}, "$"),
		"bad base64":   strings.Join([]string{"", parts[1], parts[2], parts[3], parts[4], "!!!"}, "$"),
		"missing part": strings.Join(parts[:5], "$"),
	} {
		if _, err := CheckPIN(h, "1234"); !errors.Is(err, ErrBadHash) {
			t.Errorf("%s: CheckPIN error %v, want ErrBadHash", name, err)
		}
	}
}

func TestCheckOfficers(t *testing.T) {
	good := officer(t, "W-1", "1234", "")
	for name, os := range map[string][]Officer{
		"no id":     {{PINHash: good.PINHash}},
		"long id":   {{ID: strings.Repeat("x", 65), PINHash: good.PINHash}},
		"control":   {{ID: "W\n1", PINHash: good.PINHash}},
		"duplicate": {good, good},
		"bad hash":  {{ID: "W-2", PINHash: "secret"}},
	} {
		if err := CheckOfficers(os); err == nil {
			t.Errorf("%s: accepted", name)
		}
		if _, err := New(t.Context(), newMem(), os, Options{}); err == nil {
			t.Errorf("%s: New accepted", name)
		}
	}
	if err := CheckOfficers([]Officer{good}); err != nil {
		t.Fatal(err)
	}
}

func TestLogin(t *testing.T) {
	f := newFixture(t)
	m := f.manager(t)
	if s := m.Status(); s.Officer != nil || s.Remaining != DefaultMaxAttempts {
		t.Fatalf("fresh status %+v", s)
	}
	o, err := m.Login(t.Context(), "W-0417", "482913")
	if err != nil {
		t.Fatal(err)
	}
	if o.ID != "W-0417" || o.Crew != "Kolonne Nord" || o.PINHash != "" {
		t.Fatalf("login returned %+v", o)
	}
	if s := m.Status(); s.Officer == nil || s.Officer.ID != "W-0417" || s.Officer.PINHash != "" {
		t.Fatalf("status after login %+v", s)
	}
	m.Logout()
	if m.Status().Officer != nil {
		t.Fatal("still logged in after Logout")
	}
}

func TestLoginWrongPINLocks(t *testing.T) {
	f := newFixture(t)
	f.opts.MaxAttempts = 3
	f.opts.Lockout = 10 * time.Minute
	f.opts.MaxLockout = 30 * time.Minute
	m := f.manager(t)
	ctx := t.Context()

	// Unknown numbers and wrong PINs count alike, for the device.
	for i, try := range [][2]string{{"W-0417", "000000"}, {"W-9999", "482913"}} {
		_, err := m.Login(ctx, try[0], try[1])
		var le *LoginError
		if !errors.As(err, &le) || !errors.Is(err, ErrWrongPIN) || le.Remaining != 3-(i+1) {
			t.Fatalf("attempt %d: %v", i+1, err)
		}
	}
	_, err := m.Login(ctx, "W-0500", "9999")
	var le *LoginError
	if !errors.As(err, &le) || !errors.Is(err, ErrLocked) {
		t.Fatalf("third wrong PIN: %v, want ErrLocked", err)
	}
	if want := f.clock.Now().Add(10 * time.Minute); !le.Until.Equal(want) {
		t.Fatalf("locked until %v, want %v", le.Until, want)
	}
	if !strings.Contains(err.Error(), "until") {
		t.Fatalf("message %q does not say until when", err)
	}
	// Locked: even the right PIN is refused, and does not count.
	if _, err := m.Login(ctx, "W-0417", "482913"); !errors.Is(err, ErrLocked) {
		t.Fatalf("right PIN while locked: %v", err)
	}
	if s := m.Status(); s.LockedUntil.IsZero() {
		t.Fatal("status does not show the lock")
	}

	// The lock survives a restart.
	m = f.manager(t)
	if _, err := m.Login(ctx, "W-0417", "482913"); !errors.Is(err, ErrLocked) {
		t.Fatalf("after restart: %v, want ErrLocked", err)
	}

	// The second lock lasts twice as long, the third is capped.
	f.clock.Add(10 * time.Minute)
	for range 3 {
		_, err = m.Login(ctx, "W-0417", "1")
	}
	if !errors.As(err, &le) || !le.Until.Equal(f.clock.Now().Add(20*time.Minute)) {
		t.Fatalf("second lock: %v", err)
	}
	f.clock.Add(20 * time.Minute)
	for range 3 {
		_, err = m.Login(ctx, "W-0417", "1")
	}
	if !errors.As(err, &le) || !le.Until.Equal(f.clock.Now().Add(30*time.Minute)) {
		t.Fatalf("third lock: %v", err)
	}

	// After the lock the right PIN works and resets the count and the
	// escalation.
	f.clock.Add(30 * time.Minute)
	if _, err := m.Login(ctx, "W-0417", "482913"); err != nil {
		t.Fatal(err)
	}
	if s := m.Status(); s.Remaining != 3 || !s.LockedUntil.IsZero() {
		t.Fatalf("status after login %+v", s)
	}
	for range 3 {
		_, err = m.Login(ctx, "W-0417", "1")
	}
	if !errors.As(err, &le) || !le.Until.Equal(f.clock.Now().Add(10*time.Minute)) {
		t.Fatalf("lock after a successful login: %v, want the first lock's duration again", err)
	}
	if m.Status().Officer != nil {
		t.Fatal("a failed login left the earlier officer logged in")
	}
}

func TestLoginFailsClosedWhenStateCannotBeSaved(t *testing.T) {
	f := newFixture(t)
	m := f.manager(t)
	f.vals.fail = errors.New("disk I/O error")
	if _, err := m.Login(t.Context(), "W-0417", "482913"); err == nil || m.Status().Officer != nil {
		t.Fatalf("login with an unwritable state: %v", err)
	}
	if _, err := m.Login(t.Context(), "W-0417", "0"); err == nil || errors.Is(err, ErrWrongPIN) {
		t.Fatalf("a wrong PIN that cannot be counted: %v, want the storage error", err)
	}
}

func TestNoOfficers(t *testing.T) {
	m, err := New(t.Context(), newMem(), nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Login(t.Context(), "W-1", "1234"); err == nil || errors.Is(err, ErrWrongPIN) {
		t.Fatalf("login without officers: %v", err)
	}
}

func TestShift(t *testing.T) {
	f := newFixture(t)
	m := f.manager(t)
	ctx := t.Context()
	if _, err := m.StartShift(ctx); !errors.Is(err, ErrNotLoggedIn) {
		t.Fatalf("start without login: %v", err)
	}
	if _, err := m.Login(ctx, "W-0417", "482913"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.EndShift(ctx); !errors.Is(err, ErrNoShift) {
		t.Fatalf("end without shift: %v", err)
	}
	s, err := m.StartShift(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s.Officer != "W-0417" || s.Crew != "Kolonne Nord" || !s.Start.Equal(f.clock.Now()) || !s.Open() || s.ID.Version() != 7 {
		t.Fatalf("shift %+v", s)
	}
	if _, err := m.StartShift(ctx); !errors.Is(err, ErrShiftOpen) {
		t.Fatalf("second start: %v", err)
	}

	// Logout and restart keep the shift open; the officer logs in again.
	m.Logout()
	f.clock.Add(time.Hour)
	m = f.manager(t)
	st := m.Status()
	if st.Officer != nil || st.Shift == nil || st.Shift.ID != s.ID {
		t.Fatalf("after restart: %+v", st)
	}
	if _, err := m.Login(ctx, "W-0417", "482913"); err != nil {
		t.Fatal(err)
	}
	f.clock.Add(7 * time.Hour)
	ended, err := m.EndShift(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ended.ID != s.ID || !ended.End.Equal(f.clock.Now()) || ended.EndReason != EndedByOfficer {
		t.Fatalf("ended %+v", ended)
	}
	if st := m.Status(); st.Officer != nil || st.Shift != nil {
		t.Fatalf("after end: %+v", st)
	}
	m = f.manager(t)
	if sh := m.Shifts(); len(sh) != 1 || sh[0].ID != s.ID || sh[0].Open() {
		t.Fatalf("history after restart %+v", sh)
	}
}

func TestShiftHandover(t *testing.T) {
	f := newFixture(t)
	f.opts.History = 2
	m := f.manager(t)
	ctx := t.Context()
	var first uuid.UUID
	for i := range 3 {
		if _, err := m.Login(ctx, "W-0417", "482913"); err != nil {
			t.Fatal(err)
		}
		s, err := m.StartShift(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = s.ID
		}
		m.Logout()
		f.clock.Add(time.Hour)
		// Another officer takes the device over without ending the shift.
		if _, err := m.Login(ctx, "W-0500", "1234"); err != nil {
			t.Fatal(err)
		}
		if st := m.Status(); st.Shift != nil {
			t.Fatalf("the earlier officer's shift is still open after a handover: %+v", st.Shift)
		}
		m.Logout()
	}
	sh := m.Shifts()
	if len(sh) != 2 {
		t.Fatalf("history has %d shifts, want 2 (Options.History)", len(sh))
	}
	for _, s := range sh {
		if s.EndReason != EndedByHandover || s.ID == first {
			t.Fatalf("history %+v", sh)
		}
	}
}

func TestSetOfficers(t *testing.T) {
	f := newFixture(t)
	m := f.manager(t)
	if _, err := m.Login(t.Context(), "W-0500", "1234"); err != nil {
		t.Fatal(err)
	}
	if err := m.SetOfficers(f.officers[:1]); err != nil {
		t.Fatal(err)
	}
	if m.Status().Officer != nil {
		t.Fatal("an officer removed from the configuration is still logged in")
	}
	if _, err := m.Login(t.Context(), "W-0500", "1234"); !errors.Is(err, ErrWrongPIN) {
		t.Fatalf("removed officer: %v", err)
	}
}

func TestStateInAgentStore(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "device.db"), store.Options{DiskReserve: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	f := newFixture(t)
	m, err := New(t.Context(), st, f.officers, f.opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Login(t.Context(), "W-0417", "482913"); err != nil {
		t.Fatal(err)
	}
	s, err := m.StartShift(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	b, ok, err := st.GetValue(t.Context(), DefaultKey)
	if err != nil || !ok {
		t.Fatalf("state not in the store: %v", err)
	}
	if strings.Contains(string(b), "argon2id") || strings.Contains(string(b), "482913") {
		t.Fatalf("the state holds a PIN or a hash: %s", b)
	}
	m2, err := New(t.Context(), st, f.officers, f.opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := m2.Status().Shift; got == nil || got.ID != s.ID {
		t.Fatalf("shift not restored from the store: %+v", got)
	}
}

func TestNewRefusesDamagedState(t *testing.T) {
	f := newFixture(t)
	f.vals.m[DefaultKey] = []byte("{not json")
	if _, err := New(t.Context(), f.vals, f.officers, f.opts); err == nil {
		t.Fatal("damaged state accepted")
	}
	f.vals.m[DefaultKey] = []byte(`{"v":99}`)
	if _, err := New(t.Context(), f.vals, f.officers, f.opts); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("newer state: %v", err)
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, o := range []Options{{MaxAttempts: -1}, {Lockout: -time.Second}, {Lockout: time.Hour, MaxLockout: time.Minute}, {History: -1}} {
		if o.Validate() == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	if err := (Options{}).Validate(); err != nil {
		t.Fatal(err)
	}
}
