package mobileagent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/agent"
	"github.com/kogge-fleet/kogge/drivers/gnss"
	"github.com/kogge-fleet/kogge/mobile-agent/enforcement"
	"github.com/kogge-fleet/kogge/protocol/casefile"
)

// Errors of the notice actions a caller acts on.
var (
	// ErrNoDraft: there is no notice (or report) being filled; start one.
	ErrNoDraft = errors.New("nothing is being filled: start a new one first")
	// ErrBusy: the draft is being saved right now.
	ErrBusy = errors.New("the draft is being saved right now")
	// ErrNoPrinter: the handheld has no printer configured.
	ErrNoPrinter = errors.New("no printer is configured on this handheld")
	// ErrNotKept: the notice was not issued in the open shift on this
	// device, so the device has no copy to print or void.
	ErrNotKept = errors.New("this device keeps no copy of that notice (only the open shift's notices can be printed again or voided): the office voids it")
	// ErrTooManyPhotos: the draft has as many photos as it may.
	ErrTooManyPhotos = errors.New("no more photos: the limit is reached")
)

// maxRemarks bounds a notice's remarks (casefile.MaxNote).
const maxRemarks = casefile.MaxNote

// notePhoto is a photo of a notice: a JPEG without metadata and the blob
// id the record names it by.
type notePhoto struct {
	id   uuid.UUID
	data []byte
	at   time.Time
}

// noticeDraft is the notice being filled. It holds personal data (the
// plate, photos) and lives in memory only.
// ErrBackdate means an observation start too far before the notice was
// opened (Config.MaxBackdate).
var ErrBackdate = errors.New("observation start moved back too far")

type noticeDraft struct {
	plate         enforcement.Plate
	make, colour  string
	place         casefile.Place
	fix           *gnss.Position
	obs           enforcement.Observation
	offences      []enforcement.Offence
	valves        []casefile.Valve
	photos        []notePhoto
	remarks       string
	circumstances []string
	saving        bool
	opened        time.Time // when the warden opened the notice
}

// issuedNotice is a notice of the open shift, kept in memory for
// reprinting and voiding.
type issuedNotice struct {
	notice *casefile.Notice
	id     uuid.UUID
	voided bool
}

// OffenceView is an offence of the draft with its catalogue entry.
type OffenceView struct {
	Entry   enforcement.Entry
	Choices []string
	// Text is the offence text as printed (placeholders filled), or the
	// entry's display text while a choice is missing.
	Text string
}

// NoticeView is a snapshot of the notice being filled, for the screens.
type NoticeView struct {
	Plate               enforcement.Plate
	Make, Colour        string
	Street, HouseNumber string
	// Position is the GNSS fix taken for the notice, or nil.
	Position      *gnss.Position
	Observation   enforcement.Observation
	Offences      []OffenceView
	Valves        []casefile.Valve
	Photos        int
	Remarks       string
	Circumstances []string
}

// Issued is the outcome of IssueNotice.
type Issued struct {
	// Notice is the case record as saved. It holds personal data: show
	// it, do not keep it.
	Notice *casefile.Notice
	// Entry is the notice on the device's list.
	Entry NoticeEntry
	// PrintErr says why the notice did not print; the notice is saved
	// all the same and PrintNotice prints it again.
	PrintErr error
}

// NewNotice starts a new notice; the observation starts now. A draft not
// issued is dropped.
func (a *App) NewNotice() error {
	if _, err := a.onDuty(); err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.notice != nil && a.notice.saving {
		return ErrBusy
	}
	now := a.now().Truncate(time.Second)
	a.notice = &noticeDraft{obs: enforcement.Observation{Start: now}, opened: now}
	return nil
}

// DiscardNotice drops the notice being filled.
func (a *App) DiscardNotice() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.notice != nil && !a.notice.saving {
		a.notice = nil
	}
}

// withNotice runs f on the draft under the app's lock.
func (a *App) withNotice(f func(d *noticeDraft) error) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.notice == nil {
		return fmt.Errorf("notice: %w", ErrNoDraft)
	}
	if a.notice.saving {
		return fmt.Errorf("notice: %w", ErrBusy)
	}
	return f(a.notice)
}

// Notice returns the notice being filled; false when there is none.
func (a *App) Notice() (NoticeView, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	d := a.notice
	if d == nil {
		return NoticeView{}, false
	}
	v := NoticeView{
		Plate: d.plate, Make: d.make, Colour: d.colour, Street: d.place.Street, HouseNumber: d.place.HouseNumber,
		Observation: d.obs, Valves: slices.Clone(d.valves), Photos: len(d.photos), Remarks: d.remarks,
		Circumstances: slices.Clone(d.circumstances),
	}
	if d.fix != nil {
		p := *d.fix
		v.Position = &p
	}
	cat := a.issuer.Catalogue()
	for _, o := range d.offences {
		e, err := cat.Lookup(o.TBNR, d.obs.Start.In(a.opts.Location))
		if err != nil {
			e, _ = cat.Latest(o.TBNR)
		}
		text, err := e.Fill(o.Choices)
		if err != nil {
			text = e.Display()
		}
		v.Offences = append(v.Offences, OffenceView{Entry: e, Choices: slices.Clone(o.Choices), Text: text})
	}
	return v, true
}

// NoticePlate sets the plate: nationality "D" (or "") for a German plate,
// checked strictly, another registration code for a foreign one.
func (a *App) NoticePlate(nationality, text string) (enforcement.Plate, error) {
	p, err := enforcement.ParsePlate(strings.ToUpper(strings.TrimSpace(nationality)), text)
	if err != nil {
		return enforcement.Plate{}, err
	}
	return p, a.withNotice(func(d *noticeDraft) error { d.plate = p; return nil })
}

// NoticeVehicle sets the make and the colour. A colour of the pick list
// may be given in German or English; it is recorded in German.
func (a *App) NoticeVehicle(make, colour string) error {
	make, colour = strings.TrimSpace(make), strings.TrimSpace(colour)
	if make == "" {
		return errors.New("notice: no make; pick one or type it")
	}
	if c, ok := enforcement.ColourByName(colour); ok {
		colour = c.German
	}
	for _, f := range []struct{ name, v string }{{"make", make}, {"colour", colour}} {
		if err := checkLine(f.v, 64); err != nil {
			return fmt.Errorf("notice: %s: %w", f.name, err)
		}
	}
	return a.withNotice(func(d *noticeDraft) error { d.make, d.colour = make, colour; return nil })
}

// NoticeLocate takes the vehicle's position from the GNSS receiver. A fix
// that is too inaccurate or too old is refused with what to do.
func (a *App) NoticeLocate(ctx context.Context) (gnss.Position, error) {
	p, err := a.Position(ctx)
	if err != nil {
		return gnss.Position{}, err
	}
	return p, a.withNotice(func(d *noticeDraft) error {
		d.fix = &p
		d.place.Position = &casefile.Position{Lat: p.Lat, Lon: p.Lon, AccuracyM: p.Accuracy}
		return nil
	})
}

// NoticeAddress sets the street and house number where the vehicle stood.
func (a *App) NoticeAddress(street, house string) error {
	street, house = strings.TrimSpace(street), strings.TrimSpace(house)
	if err := checkAddress(street, house); err != nil {
		return fmt.Errorf("notice: %w", err)
	}
	return a.withNotice(func(d *noticeDraft) error {
		d.place.Street, d.place.HouseNumber = street, house
		return nil
	})
}

// NoticeObservationStart sets when the offence was first seen (or the
// expiry a parking ticket shows).
func (a *App) NoticeObservationStart(t time.Time) error {
	return a.withNotice(func(d *noticeDraft) error {
		o := d.obs
		o.Start = t.Truncate(time.Second)
		if earliest := d.opened.Add(-a.cfg.MaxBackdate); o.Start.Before(earliest) {
			return fmt.Errorf("notice: %w: %s is more than %v before the notice was opened (%s); record the vehicle at the first pass instead",
				ErrBackdate, o.Start.Format("15:04:05"), a.cfg.MaxBackdate, d.opened.Format("15:04:05"))
		}
		if err := o.Check(a.now()); err != nil {
			return fmt.Errorf("notice: %w", err)
		}
		d.obs = o
		return nil
	})
}

// NoticeObservationEnd ends the observation at t; the zero time lets it
// run until the notice is issued.
func (a *App) NoticeObservationEnd(t time.Time) error {
	return a.withNotice(func(d *noticeDraft) error {
		o := d.obs
		o.End = t.Truncate(time.Second)
		if err := o.Check(a.now()); err != nil {
			return fmt.Errorf("notice: %w", err)
		}
		d.obs = o
		return nil
	})
}

// SearchOffences finds offences of the catalogue by number prefix or by
// words (see enforcement.Catalogue.Search), valid on the day the
// observation started (today without a notice).
func (a *App) SearchOffences(query string, limit int) []enforcement.Entry {
	at := a.now()
	a.mu.Lock()
	if a.notice != nil && !a.notice.obs.Start.IsZero() {
		at = a.notice.obs.Start
	}
	a.mu.Unlock()
	return a.issuer.Catalogue().Search(query, at.In(a.opts.Location), limit)
}

// Catalogue returns the offence catalogue in use.
func (a *App) Catalogue() *enforcement.Catalogue { return a.issuer.Catalogue() }

// NoticeAddOffence adds an offence by its TBNR, with the alternatives
// picked for its text's placeholders (see enforcement.Entry.Fill). Adding
// one that is there already replaces its choices.
func (a *App) NoticeAddOffence(tbnr string, choices ...string) (enforcement.Entry, error) {
	tbnr = strings.TrimSpace(tbnr)
	var entry enforcement.Entry
	err := a.withNotice(func(d *noticeDraft) error {
		e, err := a.issuer.Catalogue().Lookup(tbnr, d.obs.Start.In(a.opts.Location))
		if err != nil {
			return fmt.Errorf("notice: offence %s: %w", tbnr, err)
		}
		if _, err := e.Fill(choices); err != nil {
			return fmt.Errorf("notice: offence %s (%s): %w", tbnr, e.Display(), err)
		}
		entry = e
		o := enforcement.Offence{TBNR: tbnr, Choices: slices.Clone(choices)}
		if i := slices.IndexFunc(d.offences, func(x enforcement.Offence) bool { return x.TBNR == tbnr }); i >= 0 {
			d.offences[i] = o
			return nil
		}
		d.offences = append(d.offences, o)
		return nil
	})
	return entry, err
}

// NoticeRemoveOffence removes an offence from the notice.
func (a *App) NoticeRemoveOffence(tbnr string) error {
	return a.withNotice(func(d *noticeDraft) error {
		i := slices.IndexFunc(d.offences, func(x enforcement.Offence) bool { return x.TBNR == strings.TrimSpace(tbnr) })
		if i < 0 {
			return fmt.Errorf("notice: offence %s is not on the notice", tbnr)
		}
		d.offences = slices.Delete(d.offences, i, i+1)
		return nil
	})
}

// NoticeValve notes a valve position as wardens write it ("VL05"); a
// wheel noted before gets the new hour.
func (a *App) NoticeValve(s string) error {
	v, err := enforcement.ParseValve(s)
	if err != nil {
		return err
	}
	return a.withNotice(func(d *noticeDraft) error {
		if i := slices.IndexFunc(d.valves, func(x casefile.Valve) bool { return x.Wheel == v.Wheel }); i >= 0 {
			d.valves[i] = v
			return nil
		}
		d.valves = append(d.valves, v)
		slices.SortFunc(d.valves, func(x, y casefile.Valve) int {
			return slices.Index(enforcement.Wheels(), x.Wheel) - slices.Index(enforcement.Wheels(), y.Wheel)
		})
		return nil
	})
}

// NoticeClearValves removes the valve positions.
func (a *App) NoticeClearValves() error {
	return a.withNotice(func(d *noticeDraft) error { d.valves = nil; return nil })
}

// NoticeRemarks sets the warden's remarks (free text).
func (a *App) NoticeRemarks(text string) error {
	text = strings.TrimSpace(text)
	if len(text) > maxRemarks {
		return fmt.Errorf("notice: remarks of %d bytes, at most %d: shorten them", len(text), maxRemarks)
	}
	if err := checkText(text); err != nil {
		return fmt.Errorf("notice: remarks: %w", err)
	}
	return a.withNotice(func(d *noticeDraft) error { d.remarks = text; return nil })
}

// NoticeCircumstance adds a circumstance the warden states beyond the
// offences' own (for example "Warnblinkanlage an").
func (a *App) NoticeCircumstance(text string) error {
	text = strings.TrimSpace(text)
	if text == "" {
		return errors.New("notice: an empty circumstance")
	}
	if err := checkLine(text, casefile.MaxText); err != nil {
		return fmt.Errorf("notice: circumstance: %w", err)
	}
	return a.withNotice(func(d *noticeDraft) error {
		if !slices.Contains(d.circumstances, text) {
			d.circumstances = append(d.circumstances, text)
		}
		return nil
	})
}

// NoticeAddPhoto adds an evidence photo (JPEG or PNG, from the camera or
// a file). It is decoded and encoded again without any metadata before it
// is kept.
func (a *App) NoticeAddPhoto(data []byte) error {
	if err := a.withNotice(func(d *noticeDraft) error { return a.photoRoom(len(d.photos)) }); err != nil {
		return err
	}
	clean, err := a.opts.Photo.Clean(data)
	if err != nil {
		return fmt.Errorf("notice photo: %w", err)
	}
	return a.withNotice(func(d *noticeDraft) error {
		if err := a.photoRoom(len(d.photos)); err != nil {
			return err
		}
		d.photos = append(d.photos, notePhoto{id: uuid.New(), data: clean, at: a.now()})
		return nil
	})
}

// TakeNoticePhoto takes an evidence photo with the camera.
func (a *App) TakeNoticePhoto(ctx context.Context) error {
	b, err := a.snapshot(ctx)
	if err != nil {
		return err
	}
	return a.NoticeAddPhoto(b)
}

// NoticeRemovePhoto removes the i-th photo (from 0).
func (a *App) NoticeRemovePhoto(i int) error {
	return a.withNotice(func(d *noticeDraft) error {
		if i < 0 || i >= len(d.photos) {
			return fmt.Errorf("notice: no photo %d", i+1)
		}
		clear(d.photos[i].data)
		d.photos = slices.Delete(d.photos, i, i+1)
		return nil
	})
}

func (a *App) photoRoom(n int) error {
	if n >= a.cfg.Limits.MaxPhotos {
		return fmt.Errorf("%w (%d)", ErrTooManyPhotos, a.cfg.Limits.MaxPhotos)
	}
	return nil
}

// caseOf is the enforcement case of the draft; a.mu is held.
func (d *noticeDraft) caseOf(officer string) *enforcement.Case {
	c := &enforcement.Case{
		Plate: d.plate, Make: d.make, Colour: d.colour, Location: d.place, Observation: d.obs,
		Offences: slices.Clone(d.offences), Circumstances: slices.Clone(d.circumstances),
		Valves: slices.Clone(d.valves), Officer: officer, Remarks: d.remarks,
	}
	for _, p := range d.photos {
		c.Photos = append(c.Photos, casefile.Photo{Image: p.id, At: casefile.At(p.at)})
	}
	return c
}

// CheckNotice checks the notice being filled now and returns what it
// costs. A too short observation is an *enforcement.ObservationError
// that says how long the warden must still wait.
func (a *App) CheckNotice() (enforcement.Assessment, error) {
	o, err := a.onDuty()
	if err != nil {
		return enforcement.Assessment{}, err
	}
	var c *enforcement.Case
	if err := a.withNotice(func(d *noticeDraft) error { c = d.caseOf(o.ID); return nil }); err != nil {
		return enforcement.Assessment{}, err
	}
	if err := a.checkFix(c.Location); err != nil {
		return enforcement.Assessment{}, err
	}
	return a.issuer.Check(c)
}

// checkFix refuses a notice whose only location is a position that got
// too old meanwhile.
func (a *App) checkFix(p casefile.Place) error {
	if p.Position == nil || strings.TrimSpace(p.Street) != "" {
		return nil
	}
	a.mu.Lock()
	var fix *gnss.Position
	if a.notice != nil {
		fix = a.notice.fix
	}
	a.mu.Unlock()
	if fix != nil {
		if age := a.now().Sub(fix.Received); age > a.cfg.Limits.MaxFixAge {
			return fmt.Errorf("notice: the position is %v old, at most %v: take it again or enter the street",
				age.Round(time.Second), a.cfg.Limits.MaxFixAge)
		}
	}
	return nil
}

// SaveNotice issues the notice being filled: it checks it, draws its
// number, and saves the case record sealed for the fine office with its
// photos (agent.Capture). When it returns without error the notice is
// durable on the device and on the list; print it with PrintNotice. A
// failure after the number was drawn uses the number up (numbers may have
// gaps, never repeats).
func (a *App) SaveNotice(ctx context.Context) (NoticeEntry, *casefile.Notice, error) {
	o, err := a.onDuty()
	if err != nil {
		return NoticeEntry{}, nil, err
	}
	var (
		c      *enforcement.Case
		photos []notePhoto
		draft  *noticeDraft
	)
	if err := a.withNotice(func(d *noticeDraft) error {
		c, photos, draft = d.caseOf(o.ID), slices.Clone(d.photos), d
		d.saving = true
		return nil
	}); err != nil {
		return NoticeEntry{}, nil, err
	}
	defer func() {
		a.mu.Lock()
		draft.saving = false
		a.mu.Unlock()
	}()
	if err := a.checkFix(c.Location); err != nil {
		return NoticeEntry{}, nil, err
	}
	n, err := a.issuer.Issue(ctx, c)
	if err != nil {
		return NoticeEntry{}, nil, err
	}
	body, err := casefile.Encode(n)
	if err != nil {
		return NoticeEntry{}, nil, fmt.Errorf("notice %s: %w", n.Number, err)
	}
	defer clear(body)
	capture := agent.Capture{
		Kind: casefile.KindNotice, Office: a.cfg.NoticeOffice, Body: body,
		// Routing metadata only: nothing personal.
		Meta: map[string]string{"sanction": n.Sanction},
	}
	for _, p := range photos {
		capture.Blobs = append(capture.Blobs, agent.Blob{ID: p.id, Role: "photo", Data: p.data})
	}
	rc, err := a.ag.Capture(ctx, capture)
	if err != nil {
		return NoticeEntry{}, nil, fmt.Errorf("notice %s was not saved (its number is used up; issue the notice again): %w", n.Number, err)
	}
	e := NoticeEntry{
		ID: rc.ID, Number: n.Number, Officer: o.ID, Offences: slices.Clone(n.Offences), AmountCents: n.AmountCents,
		Sanction: n.Sanction, Where: joinAddress(n.Location.Street, n.Location.HouseNumber),
		CreatedAt: rc.CreatedAt, Status: NoticeSaved, UpdatedAt: rc.CreatedAt,
	}
	if e.CreatedAt.IsZero() {
		e.CreatedAt, e.UpdatedAt = a.now(), a.now()
	}
	if err := a.notices.Add(ctx, e); err != nil {
		// The notice is saved: a list that cannot be written is no reason
		// to say otherwise; the book saves it with its next change.
		a.log.Warn("notice saved, but the notice list could not be written", "number", n.Number, "err", err)
	}
	if s := n.Location.Street; s != "" {
		if err := a.places.Add(ctx, Address{Street: s, HouseNumber: n.Location.HouseNumber}, a.now()); err != nil {
			a.log.Warn("cannot remember the address", "err", err)
		}
	}
	a.mu.Lock()
	a.issued[n.Number] = &issuedNotice{notice: n, id: rc.ID}
	if a.notice == draft {
		a.notice = nil
	}
	a.mu.Unlock()
	a.log.Info("notice saved", "number", n.Number, "record", rc.ID, "sanction", n.Sanction, "officer", o.ID)
	a.changed()
	return e, n, nil
}

// PrintNotice prints a notice of the open shift, again if it was printed
// before. A voided notice is not printed (enforcement.ErrVoided).
func (a *App) PrintNotice(ctx context.Context, number string) error {
	a.mu.Lock()
	in := a.issued[strings.TrimSpace(number)]
	a.mu.Unlock()
	if in == nil {
		return fmt.Errorf("print notice %s: %w", number, ErrNotKept)
	}
	if a.dev.Printer == nil {
		return fmt.Errorf("print notice %s: %w", number, ErrNoPrinter)
	}
	if in.voided {
		return fmt.Errorf("print notice %s: %w", number, enforcement.ErrVoided)
	}
	job, err := a.render.Render(in.notice, a.issuer.Catalogue())
	if err != nil {
		return fmt.Errorf("print notice %s: %w", number, err)
	}
	pctx, cancel := context.WithTimeout(ctx, a.opts.PrintTimeout)
	defer cancel()
	err = a.dev.Printer.Print(pctx, job)
	a.notePeripheral("printer", "printer", a.dev.Printer.Status())
	if err != nil {
		a.log.Warn("notice not printed", "number", number, "err", err)
		return fmt.Errorf("print notice %s (it is saved; print it again): %w", number, err)
	}
	a.notices.Printed(ctx, number, a.now())
	a.log.Info("notice printed", "number", number)
	return nil
}

// IssueNotice saves the notice being filled (SaveNotice), then prints it
// (PrintNotice). A notice that did not print is saved all the same:
// Issued.PrintErr says why, and PrintNotice prints it again.
func (a *App) IssueNotice(ctx context.Context) (Issued, error) {
	e, n, err := a.SaveNotice(ctx)
	if err != nil {
		return Issued{}, err
	}
	out := Issued{Notice: n, Entry: e}
	if out.PrintErr = a.PrintNotice(ctx, e.Number); out.PrintErr == nil {
		out.Entry, _ = a.notices.Get(e.Number)
	}
	return out, nil
}

// VoidNotice voids a notice of the open shift with the warden's reason:
// the notice is captured again, flagged voided with the reason, and
// delivered to the fine office like the first record (see the package
// documentation). The act goes into the device log.
func (a *App) VoidNotice(ctx context.Context, number, reason string) (NoticeEntry, error) {
	o, err := a.onDuty()
	if err != nil {
		return NoticeEntry{}, err
	}
	number = strings.TrimSpace(number)
	a.mu.Lock()
	in := a.issued[number]
	var v casefile.Notice
	if in != nil {
		v = *in.notice
	}
	a.mu.Unlock()
	if in == nil {
		return NoticeEntry{}, fmt.Errorf("void notice %s: %w", number, ErrNotKept)
	}
	if in.voided {
		return NoticeEntry{}, fmt.Errorf("void notice %s: it is voided already", number)
	}
	// The voided record names no photos: the first record carries them.
	v.Photos = nil
	if err := enforcement.Void(&v, reason); err != nil {
		return NoticeEntry{}, err
	}
	body, err := casefile.Encode(&v)
	if err != nil {
		return NoticeEntry{}, fmt.Errorf("void notice %s: %w", number, err)
	}
	defer clear(body)
	rc, err := a.ag.Capture(ctx, agent.Capture{
		Kind: casefile.KindNotice, Office: a.cfg.NoticeOffice, Body: body,
		Meta: map[string]string{"sanction": v.Sanction, "voided": "true"},
	})
	if err != nil {
		return NoticeEntry{}, fmt.Errorf("void notice %s: not saved, the notice stands: %w", number, err)
	}
	a.mu.Lock()
	in.voided = true
	a.mu.Unlock()
	a.ag.Logger().Info("notice voided", "audit", true, "number", number, "officer", o.ID,
		"reason", v.VoidReason, "record", rc.ID, "voids", in.id)
	e, err := a.notices.Void(ctx, number, v.VoidReason, rc.ID)
	if err != nil {
		a.log.Warn("notice voided, but the notice list could not be written", "number", number, "err", err)
	}
	a.changed()
	return e, nil
}

// Position returns the latest GNSS fix, waiting up to
// Options.PositionTimeout for a first one; a fix that is too inaccurate or
// too old for the limits is refused with what to do.
func (a *App) Position(ctx context.Context) (gnss.Position, error) {
	if a.dev.GNSS == nil {
		return gnss.Position{}, errors.New("no GNSS receiver on this handheld: enter the street")
	}
	pctx, cancel := context.WithTimeout(ctx, a.opts.PositionTimeout)
	defer cancel()
	p, err := a.dev.GNSS.Position(pctx)
	a.notePeripheral("gnss", "gnss", a.dev.GNSS.Status())
	if err != nil {
		return gnss.Position{}, fmt.Errorf("no GNSS position: %w; go into the open or enter the street", err)
	}
	if !p.Received.IsZero() {
		p.Age = a.now().Sub(p.Received)
	}
	switch l := a.cfg.Limits; {
	case p.Accuracy > l.MaxAccuracy:
		return p, fmt.Errorf("the position is accurate to %.0f m only, at most %.0f m: wait for a better fix in the open, or enter the street",
			p.Accuracy, l.MaxAccuracy)
	case p.Age > l.MaxFixAge:
		return p, fmt.Errorf("the latest fix is %v old, at most %v: wait for a fresh one, or enter the street",
			p.Age.Round(time.Second), l.MaxFixAge)
	}
	return p, nil
}
