package roadwork

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/agent"
	"github.com/kogge-fleet/kogge/agent/store"
	"github.com/kogge-fleet/kogge/mobile-agent/shift"
)

var (
	_ Values       = (*store.Store)(nil)
	_ StatusSource = (*agent.Agent)(nil)
	_ Capturer     = (*agent.Agent)(nil)
)

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
	return b, ok, nil
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

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newTracker(t testing.TB, vals Values, opts TrackerOptions) *Tracker {
	t.Helper()
	if opts.Clock == nil {
		opts.Clock = func() time.Time { return now }
	}
	opts.Logger = quiet()
	tr, err := NewTracker(t.Context(), vals, opts)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func entry(created time.Time) Entry {
	return Entry{ID: uuid.Must(uuid.NewV7()), Officer: "W-0417", Crew: "Kolonne Nord", Category: Pothole,
		Severity: "high", Street: "Osterdeich", HouseNumber: "12", CreatedAt: created}
}

func TestTrackerLifecycle(t *testing.T) {
	vals := newMem()
	var changes []Status
	tr := newTracker(t, vals, TrackerOptions{OnChange: func(e Entry) { changes = append(changes, e.Status) }})
	ctx := t.Context()
	e := entry(now)
	if err := tr.Add(ctx, e); err != nil {
		t.Fatal(err)
	}
	at := func(d time.Duration) time.Time { return now.Add(d) }
	steps := []struct {
		s      agent.Status
		want   Status
		change bool
	}{
		{agent.Status{ID: e.ID, State: agent.Sent}, StatusSending, true},
		{agent.Status{ID: e.ID, State: agent.Saved}, StatusSending, false}, // late
		{agent.Status{ID: e.ID, State: agent.Stored, At: at(time.Minute)}, StatusSent, true},
		{agent.Status{ID: e.ID, State: agent.Accepted, Reference: "100001", At: at(2 * time.Minute)}, StatusReceived, true},
		{agent.Status{ID: e.ID, State: agent.Sent}, StatusReceived, false}, // a late device event
		{agent.Status{ID: e.ID, State: agent.InProgress, Note: "Geprüft", At: at(time.Hour)}, StatusChecked, true},
		{agent.Status{ID: e.ID, State: agent.InProgress, Note: "In Bearbeitung", At: at(2 * time.Hour)}, StatusInProgress, true},
		{agent.Status{ID: e.ID, State: agent.InProgress, Note: "Geprüft", At: at(time.Hour)}, StatusInProgress, false}, // older
		{agent.Status{ID: e.ID, State: agent.Closed, Note: "Schlagloch verfüllt", At: at(26 * time.Hour)}, StatusSolved, true},
		{agent.Status{ID: e.ID, State: agent.Erased, At: at(30 * 24 * time.Hour)}, StatusSolved, true},
		{agent.Status{ID: uuid.New(), State: agent.Closed}, "", false}, // not ours
	}
	for i, s := range steps {
		got, changed := tr.Apply(ctx, s.s)
		if changed != s.change || (s.want != "" && got.Status != s.want) {
			t.Fatalf("step %d (%v %q): %s changed=%v; want %s changed=%v", i, s.s.State, s.s.Note, got.Status, changed, s.want, s.change)
		}
	}
	got, _ := tr.Get(e.ID)
	if got.Reference != "100001" || got.Note != "Schlagloch verfüllt" || !got.Erased || !got.StatusAt.Equal(at(26*time.Hour)) {
		t.Fatalf("entry %+v", got)
	}
	want := []Status{StatusSaved, StatusSending, StatusSent, StatusReceived, StatusChecked, StatusInProgress, StatusSolved, StatusSolved}
	if fmt.Sprint(changes) != fmt.Sprint(want) {
		t.Fatalf("OnChange saw %v, want %v", changes, want)
	}
	// The list survives a restart.
	tr2 := newTracker(t, vals, TrackerOptions{})
	if got2, ok := tr2.Get(e.ID); !ok || got2 != got {
		t.Fatalf("after restart %+v, want %+v", got2, got)
	}
}

func TestTrackerWipedAndRejected(t *testing.T) {
	tr := newTracker(t, newMem(), TrackerOptions{})
	ctx := t.Context()
	wiped, refused := entry(now), entry(now)
	tr.Add(ctx, wiped)
	tr.Add(ctx, refused)
	if got, _ := tr.Apply(ctx, agent.Status{ID: wiped.ID, State: agent.Erased}); got.Status != StatusErased || !got.Status.Final() {
		t.Fatalf("wiped before sending: %s", got.Status)
	}
	got, _ := tr.Apply(ctx, agent.Status{ID: refused.ID, State: agent.Rejected, Reason: "document invalid", At: now})
	if got.Status != StatusRejected || got.Reason != "document invalid" || !got.Status.Attention() {
		t.Fatalf("refused: %+v", got)
	}
}

func TestTrackerRetention(t *testing.T) {
	vals := newMem()
	tr := newTracker(t, vals, TrackerOptions{MaxEntries: 3, Retention: 48 * time.Hour})
	ctx := t.Context()
	old := entry(now.Add(-72 * time.Hour))
	tr.Add(ctx, old)
	if _, ok := tr.Get(old.ID); ok {
		t.Fatal("an entry past the retention was kept")
	}
	var ids []uuid.UUID
	for i := range 4 {
		e := entry(now.Add(time.Duration(i) * time.Minute))
		ids = append(ids, e.ID)
		tr.Add(ctx, e)
	}
	rs := tr.Reports()
	if len(rs) != 3 || rs[0].ID != ids[3] || rs[2].ID != ids[1] {
		t.Fatalf("reports %v, want the newest three, newest first", rs)
	}
}

func TestTrackerSaveFailureKeepsEntries(t *testing.T) {
	vals := newMem()
	tr := newTracker(t, vals, TrackerOptions{})
	vals.fail = errors.New("disk full")
	e := entry(now)
	if err := tr.Add(t.Context(), e); err == nil {
		t.Fatal("Add hid the save failure")
	}
	if _, ok := tr.Get(e.ID); !ok {
		t.Fatal("entry lost from memory")
	}
	if _, changed := tr.Apply(t.Context(), agent.Status{ID: e.ID, State: agent.Stored}); !changed {
		t.Fatal("status not applied while the store fails")
	}
	vals.fail = nil
	tr.Apply(t.Context(), agent.Status{ID: e.ID, State: agent.Accepted, Reference: "7", At: now})
	if got, ok := newTracker(t, vals, TrackerOptions{}).Get(e.ID); !ok || got.Status != StatusReceived {
		t.Fatalf("after the store recovered: %+v %v", got, ok)
	}
}

func TestTrackerFollowAndRefresh(t *testing.T) {
	changed := make(chan Entry, 16)
	tr := newTracker(t, newMem(), TrackerOptions{OnChange: func(e Entry) { changed <- e }})
	ctx, cancel := context.WithCancel(t.Context())
	a, b, gone := entry(now), entry(now), entry(now)
	for _, e := range []Entry{a, b, gone} {
		tr.Add(ctx, e)
	}
	ch := make(chan agent.Status, 4)
	done := make(chan error)
	go func() { done <- tr.Follow(ctx, ch) }()
	ch <- agent.Status{ID: a.ID, State: agent.Stored}
	ch <- agent.Status{ID: a.ID, State: agent.Delivered, At: now}
	timeout := time.After(10 * time.Second)
	for received := false; !received; {
		select {
		case e := <-changed:
			received = e.ID == a.ID && e.Status == StatusReceived
		case <-timeout:
			t.Fatal("Follow did not apply the changes")
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	src := statusSource{
		b.ID: {ID: b.ID, State: agent.Closed, Note: "erledigt", At: now},
	}
	if err := tr.Refresh(t.Context(), src); err != nil {
		t.Fatal(err)
	}
	if e, _ := tr.Get(b.ID); e.Status != StatusSolved {
		t.Fatalf("refresh: %s", e.Status)
	}
	if e, _ := tr.Get(gone.ID); e.Status != StatusSaved {
		t.Fatalf("a record the device no longer knows changed: %s", e.Status)
	}
	// A closed channel ends Follow too.
	close(ch)
	if err := tr.Follow(t.Context(), ch); err != nil {
		t.Fatal(err)
	}
}

type statusSource map[uuid.UUID]agent.Status

func (s statusSource) Status(_ context.Context, id uuid.UUID) (agent.Status, error) {
	st, ok := s[id]
	if !ok {
		return agent.Status{}, fmt.Errorf("record %v: %w", id, store.ErrNotFound)
	}
	return st, nil
}

func TestTrackerCases(t *testing.T) {
	tr := newTracker(t, newMem(), TrackerOptions{})
	ctx := t.Context()
	mine := entry(now.Add(-time.Hour))
	other := entry(now.Add(-time.Minute))
	other.Officer = "W-0500"
	nowhere := entry(now.Add(-2 * time.Hour))
	nowhere.Street, nowhere.HouseNumber, nowhere.Lat, nowhere.Lon = "", "", 53.07012, 8.826501
	for _, e := range []Entry{mine, other, nowhere} {
		tr.Add(ctx, e)
	}
	tr.Apply(ctx, agent.Status{ID: mine.ID, State: agent.Closed, Note: "Abgelehnt: Privatweg", At: now})
	cases, err := shift.Collect(ctx, shift.Query{Officer: "W-0417", Lang: LangDE}, tr)
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) != 2 {
		t.Fatalf("%d cases, want the officer's 2: %+v", len(cases), cases)
	}
	c := cases[0]
	if c.ID != mine.ID || c.Title != "Schlagloch · Osterdeich 12" || c.Status != "rejected" || c.StatusText != "Abgelehnt" ||
		!c.Attention || !c.Final || c.Note != "Abgelehnt: Privatweg" || c.Kind != "roadwork.report" {
		t.Fatalf("case %+v", c)
	}
	if cases[1].Title != "Schlagloch · 53.07012, 8.82650" || cases[1].StatusText != "Gespeichert, wartet auf Netz" {
		t.Fatalf("case %+v", cases[1])
	}
	en, _ := tr.Cases(ctx, shift.Query{Lang: LangEN})
	if len(en) != 3 || en[0].Title != "Pothole · Osterdeich 12" {
		t.Fatalf("English, all officers: %+v", en)
	}
}

func TestTrackerInAgentStore(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "device.db"), store.Options{Logger: quiet(), DiskReserve: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tr := newTracker(t, st, TrackerOptions{})
	e := entry(now)
	if err := tr.Add(t.Context(), e); err != nil {
		t.Fatal(err)
	}
	if got, ok := newTracker(t, st, TrackerOptions{}).Get(e.ID); !ok || got.Address() != "Osterdeich 12" {
		t.Fatalf("not restored from the store: %+v", got)
	}
}

func TestNewTrackerRefusesDamagedList(t *testing.T) {
	vals := newMem()
	vals.m[DefaultTrackerKey] = []byte("[")
	if _, err := NewTracker(t.Context(), vals, TrackerOptions{}); err == nil {
		t.Fatal("damaged list accepted")
	}
	if _, err := NewTracker(t.Context(), nil, TrackerOptions{}); err == nil {
		t.Fatal("nil store accepted")
	}
}

func TestRecentPlaces(t *testing.T) {
	tr := newTracker(t, newMem(), TrackerOptions{})
	for i, p := range []Place{{"Am Wall", "1", "Bremen"}, {"Osterdeich", "12", "Bremen"}, {"", "", ""}, {"Am Wall", "1", "Bremen"}, {"Ostertor", "", ""}} {
		e := entry(now.Add(time.Duration(i) * time.Minute))
		e.Street, e.HouseNumber, e.City = p.Street, p.HouseNumber, p.City
		tr.Add(t.Context(), e)
	}
	got := tr.RecentPlaces(2)
	want := []Place{{"Ostertor", "", ""}, {"Am Wall", "1", "Bremen"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("RecentPlaces(2) = %v, want %v", got, want)
	}
	if got := tr.RecentPlaces(10); len(got) != 3 {
		t.Fatalf("RecentPlaces(10) = %v, want 3 distinct", got)
	}
}
