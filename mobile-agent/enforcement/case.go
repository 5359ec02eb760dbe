package enforcement

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/kogge-fleet/kogge/protocol/casefile"
)

// Limits of a case's texts.
const (
	maxVehicleText = 64
	// maxCaseOffences bounds the offences of one case.
	maxCaseOffences = 8
)

// Offence is an offence of a case: its TBNR and, for a text with
// placeholders, the alternative picked for each (see Entry.Fill).
type Offence struct {
	TBNR    string
	Choices []string
}

// Case is what a warden enters for one vehicle and one act. Issuer.Check
// validates it; Issuer.Issue turns it into the case record.
type Case struct {
	// Plate comes from ParsePlate.
	Plate Plate
	// Make is required (pick list Makes, or free text); Colour optional
	// (pick list Colours, German name).
	Make, Colour string
	// Location needs a street or a GNSS position.
	Location    casefile.Place
	Observation Observation
	// Offences committed by one act (see Assess).
	Offences []Offence
	// Circumstances are the warden's further circumstances (the
	// catalogue's qualifiers of the offences are added by Issue).
	Circumstances []string
	Valves        []casefile.Valve
	Photos        []casefile.Photo
	// Officer is the warden's service number.
	Officer string
	Remarks string
}

// Options configure an Issuer.
type Options struct {
	// Prefix is the device's notice-number prefix (see CheckPrefix);
	// required and unique in the fleet.
	Prefix string
	// Location is the time zone of the office; catalogue dates are taken
	// in it. Default Europe/Berlin.
	Location *time.Location
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

func (o *Options) setDefaults() error {
	if o.Location == nil {
		loc, err := time.LoadLocation("Europe/Berlin")
		if err != nil {
			return fmt.Errorf("time zone Europe/Berlin: %w (install tzdata, import time/tzdata in main, or set Options.Location)", err)
		}
		o.Location = loc
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return nil
}

// Validate reports options that cannot work.
func (o *Options) Validate() error {
	return CheckPrefix(o.Prefix)
}

// Issuer checks cases and issues notices on one device. It is safe for
// concurrent use.
type Issuer struct {
	cat    atomic.Pointer[Catalogue]
	seq    Sequencer
	prefix string
	loc    *time.Location
	now    func() time.Time
}

// NewIssuer returns an issuer that looks offences up in cat and numbers
// notices with seq.
func NewIssuer(cat *Catalogue, seq Sequencer, opts Options) (*Issuer, error) {
	if cat == nil || seq == nil {
		return nil, errors.New("enforcement: issuer needs a catalogue and a sequencer")
	}
	if err := opts.setDefaults(); err != nil {
		return nil, fmt.Errorf("enforcement: %w", err)
	}
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("enforcement: %w", err)
	}
	is := &Issuer{seq: seq, prefix: opts.Prefix, loc: opts.Location, now: opts.Now}
	is.cat.Store(cat)
	return is, nil
}

// Catalogue returns the catalogue in use.
func (is *Issuer) Catalogue() *Catalogue { return is.cat.Load() }

// Location returns the office's time zone.
func (is *Issuer) Location() *time.Location { return is.loc }

// UpdateCatalogue takes a catalogue update (the bytes of a newer version,
// from the twin) into use. On error (ErrNotNewer, a *CatalogueError) the
// catalogue in use stays. The caller stores Catalogue().Bytes() to load
// it at the next start.
func (is *Issuer) UpdateCatalogue(b []byte) error {
	for {
		cur := is.cat.Load()
		next, err := cur.Update(b)
		if err != nil {
			return err
		}
		if is.cat.CompareAndSwap(cur, next) {
			return nil
		}
	}
}

// Check validates a case at the current time and returns what it costs.
// It checks, in this order, and returns the first problem: plate, make and
// colour, location, officer, observation times, offences (each valid on
// the day the observation started, placeholders filled), valves, texts,
// and last the minimum observation times — an *ObservationError that says
// how long the warden still has to wait.
func (is *Issuer) Check(c *Case) (Assessment, error) {
	a, _, err := is.check(c, is.now())
	return a, err
}

// checked holds what Check found out beyond the assessment.
type checked struct {
	texts []string // filled offence texts, parallel to the offences
}

func (is *Issuer) check(c *Case, now time.Time) (Assessment, checked, error) {
	var ck checked
	if c == nil {
		return Assessment{}, ck, errors.New("case: none")
	}
	if c.Plate.Text == "" {
		return Assessment{}, ck, errors.New("case: no plate")
	}
	if _, err := ParsePlate(c.Plate.Nationality, c.Plate.Text); err != nil {
		return Assessment{}, ck, fmt.Errorf("case: %w", err)
	}
	if strings.TrimSpace(c.Make) == "" {
		return Assessment{}, ck, errors.New("case: no make; pick one or type it")
	}
	for _, f := range []struct{ name, v string }{{"make", c.Make}, {"colour", c.Colour}} {
		if err := checkText(f.v, maxVehicleText); err != nil {
			return Assessment{}, ck, fmt.Errorf("case: %s: %w", f.name, err)
		}
	}
	if strings.TrimSpace(c.Location.Street) == "" && c.Location.Position == nil {
		return Assessment{}, ck, errors.New("case: no location; enter the street or wait for a GNSS position")
	}
	if strings.TrimSpace(c.Officer) == "" {
		return Assessment{}, ck, errors.New("case: no officer; log in to a shift")
	}
	if err := c.Observation.Check(now); err != nil {
		return Assessment{}, ck, fmt.Errorf("case: %w", err)
	}
	if len(c.Offences) > maxCaseOffences {
		return Assessment{}, ck, fmt.Errorf("case: %d offences, at most %d for one act", len(c.Offences), maxCaseOffences)
	}
	cat := is.cat.Load()
	day := c.Observation.Start.In(is.loc)
	entries := make([]Entry, 0, len(c.Offences))
	for _, o := range c.Offences {
		e, err := cat.Lookup(strings.TrimSpace(o.TBNR), day)
		if err != nil {
			return Assessment{}, ck, fmt.Errorf("case: %w", err)
		}
		text, err := e.Fill(o.Choices)
		if err != nil {
			return Assessment{}, ck, fmt.Errorf("case: %w", err)
		}
		entries = append(entries, e)
		ck.texts = append(ck.texts, text)
	}
	a, err := Assess(entries)
	if err != nil {
		return Assessment{}, ck, fmt.Errorf("case: %w", err)
	}
	if err := CheckValves(c.Valves); err != nil {
		return Assessment{}, ck, fmt.Errorf("case: %w", err)
	}
	for _, s := range c.Circumstances {
		if strings.TrimSpace(s) == "" {
			return Assessment{}, ck, errors.New("case: an empty circumstance")
		}
		if err := checkText(s, casefile.MaxText); err != nil {
			return Assessment{}, ck, fmt.Errorf("case: circumstance: %w", err)
		}
	}
	// The offence that needs the longest observation decides.
	var wait *ObservationError
	for _, e := range entries {
		var oe *ObservationError
		if err := c.Observation.Require(e, now); errors.As(err, &oe) {
			if wait == nil || oe.Remaining > wait.Remaining {
				wait = oe
			}
		} else if err != nil {
			return Assessment{}, ck, fmt.Errorf("case: %w", err)
		}
	}
	if wait != nil {
		return Assessment{}, ck, wait
	}
	a.Texts = ck.texts
	return a, ck, nil
}

// Issue checks the case (see Check), draws the next notice number and
// returns the case record for the OWi procedure; its Validate passes. The
// observation ends now if it has no end yet. A warning gets its payment
// reference; a fine gets none (the fine office takes over). The record's
// offence texts are the catalogue's with the warden's choices filled in;
// its circumstances are the offences' qualifiers, then the warden's. The caller stores the record before it prints
// anything: printing never blocks saving.
func (is *Issuer) Issue(ctx context.Context, c *Case) (*casefile.Notice, error) {
	now := is.now()
	a, ck, err := is.check(c, now)
	if err != nil {
		return nil, err
	}
	end := c.Observation.End
	if end.IsZero() {
		end = now
	}
	n := &casefile.Notice{
		V:            casefile.Version,
		Plate:        c.Plate.Casefile(),
		Make:         strings.TrimSpace(c.Make),
		Colour:       strings.TrimSpace(c.Colour),
		Location:     c.Location,
		ObservedFrom: casefile.At(c.Observation.Start),
		ObservedTo:   casefile.At(end),
		Valves:       slices.Clone(c.Valves),
		Photos:       slices.Clone(c.Photos),
		Officer:      strings.TrimSpace(c.Officer),
		AmountCents:  a.AmountCents,
		Sanction:     a.Sanction.String(),
		CreatedAt:    casefile.At(now),
		Remarks:      c.Remarks,
	}
	for _, e := range a.Entries {
		n.Offences = append(n.Offences, e.TBNR)
		for _, q := range e.Qualifiers {
			if !slices.Contains(n.Circumstances, q) {
				n.Circumstances = append(n.Circumstances, q)
			}
		}
	}
	n.OffenceTexts = ck.texts
	for _, s := range c.Circumstances {
		if s = strings.TrimSpace(s); !slices.Contains(n.Circumstances, s) {
			n.Circumstances = append(n.Circumstances, s)
		}
	}
	// Validate with a stand-in number first, so that a record that cannot
	// be built does not use up a sequence number.
	num := NoticeNumber{Prefix: is.prefix}
	n.Number = num.String()
	if a.Sanction == Warning {
		n.PaymentRef = num.PaymentReference()
	}
	if err := n.Validate(); err != nil {
		return nil, fmt.Errorf("case record: %w", err)
	}
	seq, err := is.seq.Next(ctx)
	if err != nil {
		return nil, fmt.Errorf("draw notice number: %w", err)
	}
	num.Seq = seq
	n.Number = num.String()
	if a.Sanction == Warning {
		n.PaymentRef = num.PaymentReference()
	}
	return n, nil
}

// Void marks a notice as voided with the warden's reason. A voided notice
// is still delivered to the OWi procedure, flagged, so that every number
// is accounted for; the app records the act in its audit log. It fails
// without a reason and for a notice already voided.
func Void(n *casefile.Notice, reason string) error {
	reason = strings.TrimSpace(reason)
	switch {
	case n == nil:
		return errors.New("void: no notice")
	case n.Voided:
		return fmt.Errorf("void notice %s: already voided (%s)", n.Number, n.VoidReason)
	case reason == "":
		return fmt.Errorf("void notice %s: a reason is required", n.Number)
	}
	if err := checkText(strings.ReplaceAll(reason, "\n", " "), casefile.MaxText); err != nil {
		return fmt.Errorf("void notice %s: reason: %w", n.Number, err)
	}
	n.Voided, n.VoidReason = true, reason
	if err := n.Validate(); err != nil {
		n.Voided, n.VoidReason = false, ""
		return fmt.Errorf("void notice %s: %w", n.Number, err)
	}
	return nil
}
