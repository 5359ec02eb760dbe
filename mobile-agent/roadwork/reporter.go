package roadwork

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kogge-fleet/kogge/agent"
	"github.com/kogge-fleet/kogge/protocol"
	"github.com/kogge-fleet/kogge/protocol/casefile"
)

// Capturer saves a capture durably; *agent.Agent is one.
type Capturer interface {
	Capture(ctx context.Context, c agent.Capture) (agent.Receipt, error)
}

// Options are the optional settings of a Reporter.
type Options struct {
	// Limits are the draft rules (positions, photos).
	Limits Limits
	// Clock is the current time (time.Now).
	Clock func() time.Time
}

// Reporter files damage reports: it builds the report from a draft, has
// the agent seal and save it for the road-maintenance office, and puts it
// on the tracker's list.
type Reporter struct {
	cap     Capturer
	tracker *Tracker
	office  string
	opts    Options
}

// NewReporter returns a reporter that files reports for office through
// cap and lists them in tracker.
func NewReporter(cap Capturer, tracker *Tracker, office string, opts Options) (*Reporter, error) {
	if cap == nil || tracker == nil {
		return nil, errors.New("roadwork: a capturer and a tracker are required")
	}
	if office == "" || len(office) > protocol.MaxNameLen {
		return nil, fmt.Errorf("roadwork: office %q: name the road-maintenance office reports go to (1 to %d bytes)", office, protocol.MaxNameLen)
	}
	if err := opts.Limits.Validate(); err != nil {
		return nil, err
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	return &Reporter{cap: cap, tracker: tracker, office: office, opts: opts}, nil
}

// Check validates a draft now, without filing it: the problems, each a
// *FieldError, joined.
func (r *Reporter) Check(d *Draft) error { return d.Validate(r.opts.Limits, r.opts.Clock()) }

// Submit files the draft. When it returns without error the report is
// durable on the device (sealed for the office) and on the list with
// status saved; the agent sends it when it can. An invalid draft gives
// *FieldError values joined; a full store an error wrapping
// store.ErrFull.
func (r *Reporter) Submit(ctx context.Context, d *Draft, by Author) (Entry, error) {
	now := r.opts.Clock()
	rep, blobs, err := d.Build(by, r.opts.Limits, now)
	if err != nil {
		return Entry{}, err
	}
	body, err := casefile.Encode(rep)
	if err != nil {
		return Entry{}, fmt.Errorf("damage report: %w", err)
	}
	defer clear(body)
	rc, err := r.cap.Capture(ctx, agent.Capture{
		Kind:   casefile.KindReport,
		Office: r.office,
		// Routing metadata: nothing personal.
		Meta:  map[string]string{"category": rep.Category, "severity": rep.Severity},
		Body:  body,
		Blobs: blobs,
	})
	if err != nil {
		return Entry{}, fmt.Errorf("save damage report: %w", err)
	}
	e := Entry{
		ID: rc.ID, Officer: by.Officer, Crew: by.Crew, Category: d.Category, Severity: d.Severity,
		Street: strings.TrimSpace(d.Street), HouseNumber: strings.TrimSpace(d.HouseNumber), City: strings.TrimSpace(d.City),
		Photos: len(d.Photos), CreatedAt: rc.CreatedAt, Status: StatusSaved,
		UpdatedAt: rc.CreatedAt,
	}
	if e.CreatedAt.IsZero() {
		e.CreatedAt, e.UpdatedAt = now, now
	}
	if p := d.Position; p != nil {
		e.Lat, e.Lon = p.Lat, p.Lon
	}
	// The report is saved: a list that cannot be written is no reason to
	// say otherwise. The tracker keeps it in memory and saves it later.
	if err := r.tracker.Add(ctx, e); err != nil {
		r.tracker.opts.Logger.Warn("roadwork: report saved, but the report list could not be written", "record", e.ID, "err", err)
	}
	return e, nil
}
