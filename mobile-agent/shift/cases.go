package shift

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
)

// Case is one of an officer's cases as the shift screen lists it: an
// enforcement notice, a road report, whatever a CaseSource keeps. It holds
// no personal data beyond what the officer entered on this device.
type Case struct {
	// ID is the record id of the case (agent.Receipt.ID).
	ID uuid.UUID
	// Kind is the record kind, for example casefile.KindNotice or
	// casefile.KindReport.
	Kind string
	// Officer is the officer who made the case.
	Officer string
	// Title is one line for the list, in the query's language, for
	// example "Schlagloch · Osterdeich 12".
	Title string
	// Status is the source's status key, for example "in-progress";
	// StatusText is its label in the query's language.
	Status     string
	StatusText string
	// Reference is the procedure's reference number, once there is one.
	Reference string
	// Note is the latest note on the status (the office's or the
	// server's words).
	Note string
	// Attention marks a case the officer should look at (refused, failed).
	Attention bool
	// Final marks a case on which nothing more will happen.
	Final     bool
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Query selects cases.
type Query struct {
	// Officer selects the cases of this officer; empty selects all.
	Officer string
	// From and To bound CreatedAt: From ≤ CreatedAt < To; a zero bound is
	// open.
	From, To time.Time
	// Lang is the language of titles and labels: "de" or "en".
	Lang string
}

// Match reports whether a case of officer made at t is selected.
func (q Query) Match(officer string, t time.Time) bool {
	return (q.Officer == "" || q.Officer == officer) &&
		(q.From.IsZero() || !t.Before(q.From)) &&
		(q.To.IsZero() || t.Before(q.To))
}

// CaseSource lists cases. roadwork.Tracker is one; the enforcement
// package's notice list is another (or an adapter to it).
type CaseSource interface {
	Cases(ctx context.Context, q Query) ([]Case, error)
}

// SourceFunc adapts a function to a CaseSource.
type SourceFunc func(ctx context.Context, q Query) ([]Case, error)

// Cases calls f.
func (f SourceFunc) Cases(ctx context.Context, q Query) ([]Case, error) { return f(ctx, q) }

// ErrNotLoggedIn means an action needs a logged-in officer.
var ErrNotLoggedIn = errors.New("no officer is logged in: log in with your officer number and PIN")

// Cases lists the logged-in officer's cases of the day, newest first: those
// made since local midnight, or since the start of the open shift if that
// was earlier (a night shift), from every source of Options.Sources. If a
// source fails, Cases returns the others' cases together with an error
// that names the failure.
func (m *Manager) Cases(ctx context.Context, lang string) ([]Case, error) {
	m.mu.Lock()
	who := m.who
	var from time.Time
	if who != nil {
		now := m.opts.Clock().In(m.opts.Location)
		from = time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, m.opts.Location)
		if s := m.st.Shift; s != nil && s.Officer == who.ID && s.Start.Before(from) {
			from = s.Start
		}
	}
	m.mu.Unlock()
	if who == nil {
		return nil, ErrNotLoggedIn
	}
	return Collect(ctx, Query{Officer: who.ID, From: from, Lang: lang}, m.opts.Sources...)
}

// Collect merges the cases of the sources for q, newest first. If a source
// fails, it returns the others' cases and an error naming the failure.
func Collect(ctx context.Context, q Query, sources ...CaseSource) ([]Case, error) {
	var (
		out  []Case
		errs []error
	)
	for i, s := range sources {
		cs, err := s.Cases(ctx, q)
		if err != nil {
			errs = append(errs, fmt.Errorf("case list %d of %d: %w", i+1, len(sources), err))
			continue
		}
		for _, c := range cs {
			if q.Match(c.Officer, c.CreatedAt) {
				out = append(out, c)
			}
		}
	}
	slices.SortStableFunc(out, func(a, b Case) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return cmp.Compare(a.ID.String(), b.ID.String())
	})
	return out, errors.Join(errs...)
}
