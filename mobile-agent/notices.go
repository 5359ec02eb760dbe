package mobileagent

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/agent"
	"github.com/kogge-fleet/kogge/agent/store"
	"github.com/kogge-fleet/kogge/mobile-agent/enforcement"
	"github.com/kogge-fleet/kogge/mobile-agent/shift"
	"github.com/kogge-fleet/kogge/protocol/casefile"
)

// NoticeStatus is where a notice is on its way to the fine office, as the
// device shows it.
type NoticeStatus string

// The statuses, in the order a notice goes through them.
const (
	// NoticeSaved: durable on the device, waiting for the network.
	NoticeSaved NoticeStatus = "saved"
	// NoticeSending: on its way to the fleet server.
	NoticeSending NoticeStatus = "sending"
	// NoticeAtServer: the fleet server has it; the device's sealed copy
	// is gone.
	NoticeAtServer NoticeStatus = "at-server"
	// NoticeDelivered: handed to the fine office's procedure.
	NoticeDelivered NoticeStatus = "delivered"
	// NoticeAccepted: the fine office took it, with its reference.
	NoticeAccepted NoticeStatus = "accepted"
	// NoticeInProgress: the fine office works on it.
	NoticeInProgress NoticeStatus = "in-progress"
	// NoticeClosed: the case is closed.
	NoticeClosed NoticeStatus = "closed"
	// NoticeFailed: it could not be delivered; the office follows up.
	NoticeFailed NoticeStatus = "failed"
	// NoticeRejected: the fleet server refused it (Reason says why).
	NoticeRejected NoticeStatus = "rejected"
	// NoticeErased: wiped from the device before it was sent.
	NoticeErased NoticeStatus = "erased"
)

// NoticeVoided is the status key Cases shows for a voided notice.
const NoticeVoided = "voided"

// rank orders the statuses; a status never goes back.
var noticeRank = map[NoticeStatus]int{
	NoticeSaved: 1, NoticeSending: 2, NoticeAtServer: 3, NoticeDelivered: 4, NoticeAccepted: 5,
	NoticeInProgress: 6, NoticeClosed: 7, NoticeFailed: 8, NoticeRejected: 8, NoticeErased: 8,
}

var fromAgent = map[agent.State]NoticeStatus{
	agent.Saved: NoticeSaved, agent.Sent: NoticeSending, agent.Stored: NoticeAtServer,
	agent.Delivered: NoticeDelivered, agent.Accepted: NoticeAccepted, agent.InProgress: NoticeInProgress,
	agent.Closed: NoticeClosed, agent.Failed: NoticeFailed, agent.Rejected: NoticeRejected,
}

var noticeLabels = map[string][2]string{ // de, en
	string(NoticeSaved):      {"Gespeichert, wartet auf Netz", "Saved, waiting for network"},
	string(NoticeSending):    {"Wird gesendet", "Sending"},
	string(NoticeAtServer):   {"Beim Server", "At the server"},
	string(NoticeDelivered):  {"An Bußgeldstelle übergeben", "Handed to the fine office"},
	string(NoticeAccepted):   {"Von Bußgeldstelle angenommen", "Accepted by the fine office"},
	string(NoticeInProgress): {"In Bearbeitung", "In progress"},
	string(NoticeClosed):     {"Abgeschlossen", "Closed"},
	string(NoticeFailed):     {"Zustellung gescheitert", "Delivery failed"},
	string(NoticeRejected):   {"Abgelehnt", "Rejected"},
	string(NoticeErased):     {"Gelöscht", "Erased"},
	NoticeVoided:             {"Storniert", "Voided"},
}

// NoticeStatuses lists every status.
func NoticeStatuses() []NoticeStatus {
	return []NoticeStatus{NoticeSaved, NoticeSending, NoticeAtServer, NoticeDelivered, NoticeAccepted,
		NoticeInProgress, NoticeClosed, NoticeFailed, NoticeRejected, NoticeErased}
}

// Label returns the status as the device shows it, in lang ("de" or "en").
func (s NoticeStatus) Label(lang string) string { return statusLabel(string(s), lang) }

// Final reports whether nothing more will happen to the notice.
func (s NoticeStatus) Final() bool { return noticeRank[s] >= noticeRank[NoticeClosed] }

// Attention reports whether the warden should look at the notice.
func (s NoticeStatus) Attention() bool {
	return s == NoticeFailed || s == NoticeRejected || s == NoticeErased
}

func statusLabel(key, lang string) string {
	l, ok := noticeLabels[key]
	switch {
	case !ok:
		return key
	case lang == "en":
		return l[1]
	}
	return l[0]
}

// NoticeEntry is what the device keeps about one of its notices for the
// warden's list: no plate, no photos, nothing personal.
type NoticeEntry struct {
	// ID is the record id of the notice.
	ID          uuid.UUID `json:"id"`
	Number      string    `json:"number"`
	Officer     string    `json:"officer"`
	Offences    []string  `json:"offences"`
	AmountCents int64     `json:"amount_cents"`
	Sanction    string    `json:"sanction"`
	// Where is the street and house number, if entered.
	Where     string       `json:"where,omitempty"`
	CreatedAt time.Time    `json:"created_at"`
	Status    NoticeStatus `json:"status"`
	// Reference is the fine office's reference, once it gave one.
	Reference string `json:"reference,omitempty"`
	// Note is the latest note on the status; Reason why the fleet server
	// refused the record.
	Note   string `json:"note,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Erased is set when the record's body was erased downstream.
	Erased    bool      `json:"erased,omitempty"`
	PrintedAt time.Time `json:"printed_at,omitzero"`
	// Voided is set when the notice was voided: VoidID is the record that
	// carries the voided copy, VoidStatus how far it got.
	Voided     bool         `json:"voided,omitempty"`
	VoidReason string       `json:"void_reason,omitempty"`
	VoidID     uuid.UUID    `json:"void_id,omitzero"`
	VoidStatus NoticeStatus `json:"void_status,omitempty"`
	UpdatedAt  time.Time    `json:"updated_at"`
}

// Printed reports whether the notice was printed.
func (e NoticeEntry) Printed() bool { return !e.PrintedAt.IsZero() }

// Title is the line of the case list: number, offences, amount and place.
func (e NoticeEntry) Title() string {
	parts := []string{e.Number, strings.Join(e.Offences, ", "), enforcement.FormatEuro(e.AmountCents)}
	if e.Where != "" {
		parts = append(parts, e.Where)
	}
	return strings.Join(parts, " · ")
}

// Bounds of the notice list.
const (
	noticeRetention  = 30 * 24 * time.Hour
	noticeMaxEntries = 2000
)

// noticeBook keeps the list of the device's notices and their statuses in
// the store values (key mobile.notices). It is a shift.CaseSource.
type noticeBook struct {
	vals     Values
	log      *slog.Logger
	now      func() time.Time
	onChange func()

	mu      sync.Mutex
	entries map[string]*NoticeEntry // by number
	byID    map[uuid.UUID]string    // record ids (first and voided) to number
}

func openNoticeBook(ctx context.Context, vals Values, log *slog.Logger, now func() time.Time, onChange func()) (*noticeBook, error) {
	b := &noticeBook{vals: vals, log: log, now: now, onChange: onChange,
		entries: map[string]*NoticeEntry{}, byID: map[uuid.UUID]string{}}
	raw, ok, err := vals.GetValue(ctx, keyNotices)
	if err != nil {
		return nil, fmt.Errorf("notice list: %w", err)
	}
	if ok && len(raw) > 0 {
		var list []NoticeEntry
		if err := json.Unmarshal(raw, &list); err != nil {
			log.Warn("the notice list cannot be read; it starts empty", "err", err)
		}
		for _, e := range list {
			if e.Number == "" || e.ID == uuid.Nil {
				continue
			}
			b.put(e)
		}
	}
	return b, nil
}

// put adds or replaces an entry; b.mu is held (or b is not shared yet).
func (b *noticeBook) put(e NoticeEntry) {
	b.entries[e.Number] = &e
	b.byID[e.ID] = e.Number
	if e.VoidID != uuid.Nil {
		b.byID[e.VoidID] = e.Number
	}
}

// saveLocked writes the list; b.mu is held.
func (b *noticeBook) saveLocked(ctx context.Context) error {
	b.trim()
	list := b.sorted()
	raw, err := json.Marshal(list)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	return b.vals.PutValue(ctx, keyNotices, raw)
}

// trim drops entries past the retention and beyond the bound; b.mu is held.
func (b *noticeBook) trim() {
	cut := b.now().Add(-noticeRetention)
	for n, e := range b.entries {
		if e.CreatedAt.Before(cut) {
			b.drop(n)
		}
	}
	if len(b.entries) > noticeMaxEntries {
		list := b.sorted()
		for _, e := range list[noticeMaxEntries:] {
			b.drop(e.Number)
		}
	}
}

func (b *noticeBook) drop(number string) {
	if e := b.entries[number]; e != nil {
		delete(b.byID, e.ID)
		delete(b.byID, e.VoidID)
		delete(b.entries, number)
	}
}

// sorted returns the entries newest first; b.mu is held.
func (b *noticeBook) sorted() []NoticeEntry {
	out := make([]NoticeEntry, 0, len(b.entries))
	for _, e := range b.entries {
		out = append(out, *e)
	}
	slices.SortFunc(out, func(x, y NoticeEntry) int {
		if c := y.CreatedAt.Compare(x.CreatedAt); c != 0 {
			return c
		}
		return cmp.Compare(y.Number, x.Number)
	})
	return out
}

// Add puts a newly saved notice on the list.
func (b *noticeBook) Add(ctx context.Context, e NoticeEntry) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.put(e)
	return b.saveLocked(ctx)
}

// Get returns the entry of a notice number.
func (b *noticeBook) Get(number string) (NoticeEntry, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.entries[number]
	if !ok {
		return NoticeEntry{}, false
	}
	return *e, true
}

// List returns the entries, newest first.
func (b *noticeBook) List() []NoticeEntry {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sorted()
}

// Printed notes that a notice was printed.
func (b *noticeBook) Printed(ctx context.Context, number string, at time.Time) {
	b.mu.Lock()
	e := b.entries[number]
	if e == nil {
		b.mu.Unlock()
		return
	}
	e.PrintedAt, e.UpdatedAt = at, at
	err := b.saveLocked(ctx)
	b.mu.Unlock()
	if err != nil {
		b.log.Warn("cannot write the notice list", "err", err)
	}
	b.onChange()
}

// Void notes that a notice was voided by the record voidID.
func (b *noticeBook) Void(ctx context.Context, number, reason string, voidID uuid.UUID) (NoticeEntry, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.entries[number]
	if e == nil {
		return NoticeEntry{}, fmt.Errorf("notice %s is not on the list", number)
	}
	e.Voided, e.VoidReason, e.VoidID, e.VoidStatus, e.UpdatedAt = true, reason, voidID, NoticeSaved, b.now()
	b.byID[voidID] = number
	return *e, b.saveLocked(ctx)
}

// Apply takes a record's state from the agent. It reports whether an
// entry changed; records not on the list are ignored, and a state never
// goes back (a late "sending" after "at the server").
func (b *noticeBook) Apply(ctx context.Context, s agent.Status) bool {
	b.mu.Lock()
	number, ok := b.byID[s.ID]
	if !ok {
		b.mu.Unlock()
		return false
	}
	e := b.entries[number]
	changed := false
	if s.State == agent.Erased {
		changed = !e.Erased
		e.Erased = true
	} else if st, ok := fromAgent[s.State]; ok {
		cur := &e.Status
		if s.ID == e.VoidID && e.VoidID != e.ID {
			cur = &e.VoidStatus
		}
		current := st == *cur // a repeated state may bring a reference or a note
		if noticeRank[st] > noticeRank[*cur] {
			*cur, changed, current = st, true, true
		}
		if s.ID == e.ID {
			if s.Reference != "" && s.Reference != e.Reference {
				e.Reference, changed = s.Reference, true
			}
			if current && s.Note != "" && s.Note != e.Note {
				e.Note, changed = s.Note, true
			}
			if current && s.Reason != "" && s.Reason != e.Reason {
				e.Reason, changed = s.Reason, true
			}
		}
	}
	var err error
	if changed {
		e.UpdatedAt = b.now()
		err = b.saveLocked(ctx)
	}
	b.mu.Unlock()
	if err != nil {
		b.log.Warn("cannot write the notice list; it is written with the next change", "err", err)
	}
	if changed {
		b.onChange()
	}
	return changed
}

// Follow applies the agent's state changes until ctx ends or the channel
// closes.
func (b *noticeBook) Follow(ctx context.Context, changes <-chan agent.Status) {
	for {
		select {
		case <-ctx.Done():
			return
		case s, ok := <-changes:
			if !ok {
				return
			}
			b.Apply(ctx, s)
		}
	}
}

// Refresh asks src for the state of every record on the list that is not
// final yet, for example after a restart.
func (b *noticeBook) Refresh(ctx context.Context, src interface {
	Status(ctx context.Context, id uuid.UUID) (agent.Status, error)
}) error {
	b.mu.Lock()
	var ids []uuid.UUID
	for _, e := range b.entries {
		if !e.Status.Final() {
			ids = append(ids, e.ID)
		}
		if e.VoidID != uuid.Nil && !e.VoidStatus.Final() {
			ids = append(ids, e.VoidID)
		}
	}
	b.mu.Unlock()
	for _, id := range ids {
		s, err := src.Status(ctx, id)
		switch {
		case errors.Is(err, store.ErrNotFound):
			continue
		case err != nil:
			return err
		}
		b.Apply(ctx, s)
	}
	return nil
}

// Cases lists the notices for the shift screen.
func (b *noticeBook) Cases(_ context.Context, q shift.Query) ([]shift.Case, error) {
	var out []shift.Case
	for _, e := range b.List() {
		if !q.Match(e.Officer, e.CreatedAt) {
			continue
		}
		c := shift.Case{
			ID: e.ID, Kind: casefile.KindNotice, Officer: e.Officer, Title: e.Title(),
			Status: string(e.Status), StatusText: e.Status.Label(q.Lang), Reference: e.Reference, Note: e.Note,
			Attention: e.Status.Attention(), Final: e.Status.Final(), CreatedAt: e.CreatedAt, UpdatedAt: e.UpdatedAt,
		}
		if e.Reason != "" {
			c.Note = e.Reason
		}
		if e.Voided {
			c.Status = NoticeVoided
			c.StatusText = statusLabel(NoticeVoided, q.Lang) + " · " + e.Status.Label(q.Lang)
			c.Note = e.VoidReason
		}
		out = append(out, c)
	}
	return out, nil
}

var _ shift.CaseSource = (*noticeBook)(nil)

// Notices returns the device's notices, newest first.
func (a *App) Notices() []NoticeEntry { return a.notices.List() }

// NoticeEntry returns the list entry of a notice number.
func (a *App) NoticeEntry(number string) (NoticeEntry, bool) {
	return a.notices.Get(strings.TrimSpace(number))
}
