package roadwork

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/agent"
	"github.com/kogge-fleet/kogge/agent/store"
	"github.com/kogge-fleet/kogge/mobile-agent/shift"
	"github.com/kogge-fleet/kogge/protocol/casefile"
)

// Values is where a Tracker keeps its list between runs; the agent's
// store (*agent/store.Store) has these methods.
type Values interface {
	GetValue(ctx context.Context, key string) ([]byte, bool, error)
	PutValue(ctx context.Context, key string, value []byte) error
}

// StatusSource answers a record's current state; *agent.Agent is one.
type StatusSource interface {
	Status(ctx context.Context, id uuid.UUID) (agent.Status, error)
}

// Entry is what the device keeps about one of its reports for the crew:
// no photos and no contact, only what the list shows.
type Entry struct {
	// ID is the record id (agent.Receipt.ID).
	ID       uuid.UUID `json:"id"`
	Officer  string    `json:"officer,omitempty"`
	Crew     string    `json:"crew,omitempty"`
	Category Category  `json:"category"`
	Severity string    `json:"severity"`
	// Street, HouseNumber and City are the address, if entered.
	Street      string `json:"street,omitempty"`
	HouseNumber string `json:"house_number,omitempty"`
	City        string `json:"city,omitempty"`
	// Lat and Lon are the position, if there was one (0, 0 otherwise).
	Lat       float64   `json:"lat,omitempty"`
	Lon       float64   `json:"lon,omitempty"`
	Photos    int       `json:"photos,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	Status    Status    `json:"status"`
	// Reference is the road-maintenance system's request number.
	Reference string `json:"reference,omitempty"`
	// Note is the office's latest status note; Reason why the fleet
	// server refused the report.
	Note   string `json:"note,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Erased is set when the report's body was erased downstream
	// (retention); the status stays what it was.
	Erased bool `json:"erased,omitempty"`
	// StatusAt is when the server gave the latest status after the device
	// (its clock); UpdatedAt when the entry last changed.
	StatusAt  time.Time `json:"status_at,omitzero"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Address returns the street and house number, e.g. "Osterdeich 12", or
// "" without a street.
func (e Entry) Address() string { return strings.TrimSpace(e.Street + " " + e.HouseNumber) }

// Where returns the address, or the position as "53.07930, 8.80170".
func (e Entry) Where() string {
	if a := e.Address(); a != "" {
		return a
	}
	if e.Lat != 0 || e.Lon != 0 {
		return strconv.FormatFloat(e.Lat, 'f', 5, 64) + ", " + strconv.FormatFloat(e.Lon, 'f', 5, 64)
	}
	return ""
}

// TrackerOptions are the optional settings of a Tracker.
type TrackerOptions struct {
	// Key is the value key of the list ("roadwork.reports").
	Key string
	// Retention is how long a report stays on the list (30 days).
	Retention time.Duration
	// MaxEntries bounds the list (1000); the oldest go first.
	MaxEntries int
	// Rules tell the office's statuses apart (DefaultNoteRules).
	Rules NoteRules
	// OnChange is called with every changed entry, outside the tracker's
	// lock, for example to refresh the screen.
	OnChange func(Entry)
	// Logger receives failures to save the list (slog.Default()).
	Logger *slog.Logger
	// Clock is the current time (time.Now).
	Clock func() time.Time
}

// Defaults of TrackerOptions.
const (
	DefaultTrackerKey = "roadwork.reports"
	DefaultRetention  = 30 * 24 * time.Hour
	DefaultMaxEntries = 1000
)

// Tracker keeps the list of the device's own reports and their latest
// status. Its list lives in the agent's store values, so it survives
// restarts; the statuses come from the agent (Follow, Refresh). It is safe
// for concurrent use.
type Tracker struct {
	vals Values
	opts TrackerOptions

	mu      sync.Mutex
	entries map[uuid.UUID]*Entry
}

type trackerState struct {
	V       int     `json:"v"`
	Entries []Entry `json:"entries"`
}

// NewTracker loads the tracker's list from vals.
func NewTracker(ctx context.Context, vals Values, opts TrackerOptions) (*Tracker, error) {
	if vals == nil {
		return nil, errors.New("roadwork tracker: a value store is required")
	}
	if opts.Key == "" {
		opts.Key = DefaultTrackerKey
	}
	if opts.Retention == 0 {
		opts.Retention = DefaultRetention
	}
	if opts.MaxEntries == 0 {
		opts.MaxEntries = DefaultMaxEntries
	}
	if opts.Retention < 0 || opts.MaxEntries < 0 {
		return nil, errors.New("roadwork tracker: retention and max entries must not be negative")
	}
	opts.Rules = opts.Rules.withDefaults()
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	t := &Tracker{vals: vals, opts: opts, entries: map[uuid.UUID]*Entry{}}
	b, ok, err := vals.GetValue(ctx, opts.Key)
	if err != nil {
		return nil, fmt.Errorf("roadwork tracker: load the report list: %w", err)
	}
	if ok {
		var st trackerState
		if err := json.Unmarshal(b, &st); err != nil {
			return nil, fmt.Errorf("roadwork tracker: the report list under %q is unreadable (%v): the device's store is damaged", opts.Key, err)
		}
		for _, e := range st.Entries {
			t.entries[e.ID] = &e
		}
		t.trim()
	}
	return t, nil
}

// Add puts a newly filed report on the list and saves the list.
func (t *Tracker) Add(ctx context.Context, e Entry) error {
	if e.ID == uuid.Nil {
		return errors.New("roadwork tracker: an entry needs the record id")
	}
	if e.Status == "" {
		e.Status = StatusSaved
	}
	if e.UpdatedAt.IsZero() {
		e.UpdatedAt = e.CreatedAt
	}
	t.mu.Lock()
	t.entries[e.ID] = &e
	t.trim()
	err := t.save(ctx)
	t.mu.Unlock()
	t.changed(e)
	return err
}

// Apply takes a record's state from the agent. It returns the entry and
// whether it changed; records that are not on the list are ignored. A
// state that is older than the entry's, or that goes back from the office
// to the device (a late "sent" after "received"), is ignored too. A failure
// to save the list is logged; the list in memory is changed all the same
// and saved with the next change.
func (t *Tracker) Apply(ctx context.Context, s agent.Status) (Entry, bool) {
	t.mu.Lock()
	e, ok := t.entries[s.ID]
	if !ok {
		t.mu.Unlock()
		return Entry{}, false
	}
	next := *e
	st, known := t.opts.Rules.FromAgent(s)
	switch {
	case s.State == agent.Erased:
		if next.Status == StatusSaved || next.Status == StatusSending {
			next.Status = StatusErased // wiped before it was sent
		}
		next.Erased = true
	case !known:
	case st.onDevice() && !next.Status.onDevice():
		// The office already has it: a late device event.
	case st.onDevice() && rank(st) < rank(next.Status):
	case !st.onDevice() && !s.At.IsZero() && s.At.Before(next.StatusAt):
		// Older than the office's status the entry shows.
	default:
		next.Status = st
		if !st.onDevice() {
			next.Reference = cmp.Or(s.Reference, next.Reference)
			next.Note, next.Reason = s.Note, s.Reason
			if !s.At.IsZero() {
				next.StatusAt = s.At
			}
		}
	}
	if next == *e {
		t.mu.Unlock()
		return next, false
	}
	next.UpdatedAt = t.opts.Clock()
	*e = next
	if err := t.save(ctx); err != nil {
		t.opts.Logger.Warn("roadwork: cannot save the report list; it is saved with the next change", "err", err)
	}
	t.mu.Unlock()
	t.changed(next)
	return next, true
}

// rank orders the device statuses.
func rank(s Status) int {
	switch s {
	case StatusSaved:
		return 1
	case StatusSending:
		return 2
	case StatusSent:
		return 3
	}
	return 4
}

// Follow applies the agent's state changes (agent.Watch) until ctx is done
// or the channel is closed. Changes the watcher missed are caught up with
// Refresh.
func (t *Tracker) Follow(ctx context.Context, changes <-chan agent.Status) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case s, ok := <-changes:
			if !ok {
				return nil
			}
			t.Apply(ctx, s)
		}
	}
}

// Refresh asks src for the state of every report on the list that is not
// final yet, for example after a restart. A record the device no longer
// knows is skipped.
func (t *Tracker) Refresh(ctx context.Context, src StatusSource) error {
	var open []uuid.UUID
	t.mu.Lock()
	for id, e := range t.entries {
		if !e.Status.Final() {
			open = append(open, id)
		}
	}
	t.mu.Unlock()
	var errs []error
	for _, id := range open {
		s, err := src.Status(ctx, id)
		switch {
		case errors.Is(err, store.ErrNotFound):
			continue
		case err != nil:
			errs = append(errs, err)
			if ctx.Err() != nil {
				return fmt.Errorf("roadwork tracker: refresh: %w", ctx.Err())
			}
			continue
		}
		t.Apply(ctx, s)
	}
	if len(errs) > 0 {
		return fmt.Errorf("roadwork tracker: refresh %d of %d reports failed, first: %w", len(errs), len(open), errs[0])
	}
	return nil
}

// Get returns the entry of a report.
func (t *Tracker) Get(id uuid.UUID) (Entry, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.entries[id]
	if !ok {
		return Entry{}, false
	}
	return *e, true
}

// Reports returns the reports on the list, newest first.
func (t *Tracker) Reports() []Entry {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.sorted()
}

// Place is an address the crew entered.
type Place struct {
	Street, HouseNumber, City string
}

// RecentPlaces returns up to n addresses of the reports on the list,
// newest first, each once: the pick list of recent places.
func (t *Tracker) RecentPlaces(n int) []Place {
	var out []Place
	for _, e := range t.Reports() {
		p := Place{Street: e.Street, HouseNumber: e.HouseNumber, City: e.City}
		if len(out) >= n {
			break
		}
		if p.Street != "" && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// Cases lists the reports for the shift screen; Tracker is a
// shift.CaseSource.
func (t *Tracker) Cases(_ context.Context, q shift.Query) ([]shift.Case, error) {
	var out []shift.Case
	for _, e := range t.Reports() {
		if !q.Match(e.Officer, e.CreatedAt) {
			continue
		}
		title := e.Category.Label(q.Lang)
		if w := e.Where(); w != "" {
			title += " · " + w
		}
		note := e.Note
		if e.Reason != "" {
			note = e.Reason
		}
		out = append(out, shift.Case{
			ID: e.ID, Kind: casefile.KindReport, Officer: e.Officer, Title: title,
			Status: string(e.Status), StatusText: e.Status.Label(q.Lang), Reference: e.Reference, Note: note,
			Attention: e.Status.Attention(), Final: e.Status.Final(), CreatedAt: e.CreatedAt, UpdatedAt: e.UpdatedAt,
		})
	}
	return out, nil
}

var _ shift.CaseSource = (*Tracker)(nil)

// sorted returns the entries newest first; t.mu is held.
func (t *Tracker) sorted() []Entry {
	out := make([]Entry, 0, len(t.entries))
	for _, e := range t.entries {
		out = append(out, *e)
	}
	slices.SortFunc(out, func(a, b Entry) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return cmp.Compare(a.ID.String(), b.ID.String())
	})
	return out
}

// trim drops entries past the retention and beyond MaxEntries; t.mu is
// held.
func (t *Tracker) trim() {
	cutoff := t.opts.Clock().Add(-t.opts.Retention)
	all := t.sorted()
	for i, e := range all {
		if i >= t.opts.MaxEntries || e.CreatedAt.Before(cutoff) {
			delete(t.entries, e.ID)
		}
	}
}

// save writes the list; t.mu is held.
func (t *Tracker) save(ctx context.Context) error {
	b, err := json.Marshal(trackerState{V: 1, Entries: t.sorted()})
	if err != nil {
		return fmt.Errorf("roadwork tracker: encode the report list: %w", err)
	}
	if err := t.vals.PutValue(ctx, t.opts.Key, b); err != nil {
		return fmt.Errorf("roadwork tracker: save the report list: %w", err)
	}
	return nil
}

func (t *Tracker) changed(e Entry) {
	if t.opts.OnChange != nil {
		t.opts.OnChange(e)
	}
}
