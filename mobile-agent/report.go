package mobileagent

import (
	"context"
	"errors"
	"fmt"
	"image"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/drivers/camera"
	"github.com/kogge-fleet/kogge/drivers/gnss"
	"github.com/kogge-fleet/kogge/mobile-agent/roadwork"
	"github.com/kogge-fleet/kogge/mobile-agent/roadwork/photo"
	"github.com/kogge-fleet/kogge/protocol/casefile"
)

// reportDraft is the damage report being filled. It lives in memory only.
type reportDraft struct {
	d      roadwork.Draft
	info   []ReportPhoto // parallel to d.Photos
	saving bool
}

// ReportPhoto describes a photo of the report being filled.
type ReportPhoto struct {
	// Width and Height are the private copy's size.
	Width, Height int
	// Faces and Plates count what was blurred in the public copy.
	Faces, Plates int
	// Public is the public copy (JPEG, faces and plates blurred), for the
	// crew to look at before filing.
	Public []byte
}

// ReportView is a snapshot of the report being filled, for the screens.
type ReportView struct {
	Category            roadwork.Category
	Severity            string
	Position            *gnss.Position
	Street, HouseNumber string
	Note                string
	Photos              []ReportPhoto
}

// NewReport starts a new damage report of a category and severity (codes
// or labels in German or English; empty leaves them to be chosen). A
// draft not filed is dropped.
func (a *App) NewReport(category, severity string) error {
	if _, err := a.onDuty(); err != nil {
		return err
	}
	d := &reportDraft{}
	if category != "" {
		c, err := roadwork.ParseCategory(category)
		if err != nil {
			return err
		}
		d.d.Category = c
	}
	if severity != "" {
		s, err := roadwork.ParseSeverity(severity)
		if err != nil {
			return err
		}
		d.d.Severity = s
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.report != nil && a.report.saving {
		return ErrBusy
	}
	a.report = d
	return nil
}

// DiscardReport drops the report being filled.
func (a *App) DiscardReport() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.report != nil && !a.report.saving {
		a.report = nil
	}
}

func (a *App) withReport(f func(d *roadwork.Draft) error) error {
	return a.withReportDraft(func(r *reportDraft) error { return f(&r.d) })
}

func (a *App) withReportDraft(f func(r *reportDraft) error) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.report == nil {
		return fmt.Errorf("report: %w", ErrNoDraft)
	}
	if a.report.saving {
		return fmt.Errorf("report: %w", ErrBusy)
	}
	return f(a.report)
}

// Report returns the report being filled; false when there is none.
func (a *App) Report() (ReportView, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.report == nil {
		return ReportView{}, false
	}
	d := a.report.d
	v := ReportView{Category: d.Category, Severity: d.Severity, Street: d.Street, HouseNumber: d.HouseNumber, Note: d.Note}
	if d.Position != nil {
		p := *d.Position
		v.Position = &p
	}
	v.Photos = slices.Clone(a.report.info)
	return v, true
}

// ReportCategory sets the kind of damage (a code or a label).
func (a *App) ReportCategory(s string) error {
	c, err := roadwork.ParseCategory(s)
	if err != nil {
		return err
	}
	return a.withReport(func(d *roadwork.Draft) error { d.Category = c; return nil })
}

// ReportSeverity sets the severity (a code or a label).
func (a *App) ReportSeverity(s string) error {
	sev, err := roadwork.ParseSeverity(s)
	if err != nil {
		return err
	}
	return a.withReport(func(d *roadwork.Draft) error { d.Severity = sev; return nil })
}

// ReportLocate takes the damage's position from the GNSS receiver.
func (a *App) ReportLocate(ctx context.Context) (gnss.Position, error) {
	p, err := a.Position(ctx)
	if err != nil {
		return gnss.Position{}, err
	}
	return p, a.withReport(func(d *roadwork.Draft) error { d.Position = &p; return nil })
}

// ReportAddress sets the street and house number of the damage.
func (a *App) ReportAddress(street, house string) error {
	street, house = strings.TrimSpace(street), strings.TrimSpace(house)
	if err := checkAddress(street, house); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return a.withReport(func(d *roadwork.Draft) error { d.Street, d.HouseNumber = street, house; return nil })
}

// ReportNote sets the description of the damage (at most 4000 bytes).
func (a *App) ReportNote(text string) error {
	text = strings.TrimSpace(text)
	if len(text) > casefile.MaxNote {
		return fmt.Errorf("report: note of %d bytes, at most %d: shorten it", len(text), casefile.MaxNote)
	}
	if err := checkText(text); err != nil {
		return fmt.Errorf("report: note: %w", err)
	}
	return a.withReport(func(d *roadwork.Draft) error { d.Note = text; return nil })
}

// ReportAddPhoto adds a photo (JPEG or PNG): it is stripped of all
// metadata, and a public copy with faces and plates blurred is made. extra
// regions (in the upright photo's pixels) are blurred in the public copy
// too.
func (a *App) ReportAddPhoto(data []byte, extra ...image.Rectangle) (ReportPhoto, error) {
	if err := a.withReport(func(d *roadwork.Draft) error { return a.photoRoom(len(d.Photos)) }); err != nil {
		return ReportPhoto{}, err
	}
	res, err := a.photos.Process(data, extra...)
	if err != nil {
		return ReportPhoto{}, fmt.Errorf("report photo: %w", err)
	}
	p := roadwork.PhotoFrom(res, a.now(), "")
	info := ReportPhoto{Width: res.Width, Height: res.Height, Faces: res.Faces, Plates: res.Plates, Public: res.Public}
	err = a.withReportDraft(func(r *reportDraft) error {
		if err := a.photoRoom(len(r.d.Photos)); err != nil {
			return err
		}
		r.d.Photos = append(r.d.Photos, p)
		r.info = append(r.info, info)
		return nil
	})
	return info, err
}

// TakeReportPhoto takes a photo of the damage with the camera.
func (a *App) TakeReportPhoto(ctx context.Context) (ReportPhoto, error) {
	b, err := a.snapshot(ctx)
	if err != nil {
		return ReportPhoto{}, err
	}
	return a.ReportAddPhoto(b)
}

// ReportRemovePhoto removes the i-th photo (from 0).
func (a *App) ReportRemovePhoto(i int) error {
	return a.withReportDraft(func(r *reportDraft) error {
		if i < 0 || i >= len(r.d.Photos) {
			return fmt.Errorf("report: no photo %d", i+1)
		}
		r.d.Photos = slices.Delete(r.d.Photos, i, i+1)
		r.info = slices.Delete(r.info, i, i+1)
		return nil
	})
}

// CheckReport checks the report being filled now: the problems, each a
// *roadwork.FieldError, joined.
func (a *App) CheckReport() error {
	var d roadwork.Draft
	if err := a.withReport(func(x *roadwork.Draft) error { d = *x; return nil }); err != nil {
		return err
	}
	return a.reporter.Check(&d)
}

// SubmitReport files the report being filled for the road-maintenance
// office: sealed and durable on the device when it returns, sent when the
// network allows.
func (a *App) SubmitReport(ctx context.Context) (roadwork.Entry, error) {
	o, err := a.onDuty()
	if err != nil {
		return roadwork.Entry{}, err
	}
	a.mu.Lock()
	r := a.report
	switch {
	case r == nil:
		a.mu.Unlock()
		return roadwork.Entry{}, fmt.Errorf("report: %w", ErrNoDraft)
	case r.saving:
		a.mu.Unlock()
		return roadwork.Entry{}, fmt.Errorf("report: %w", ErrBusy)
	}
	r.saving = true
	d := r.d
	d.Photos = slices.Clone(d.Photos)
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		r.saving = false
		a.mu.Unlock()
	}()
	e, err := a.reporter.Submit(ctx, &d, roadwork.Author{Officer: o.ID, Crew: o.Crew})
	if err != nil {
		return roadwork.Entry{}, err
	}
	if d.Street != "" {
		if err := a.places.Add(ctx, Address{Street: d.Street, HouseNumber: d.HouseNumber}, a.now()); err != nil {
			a.log.Warn("cannot remember the address", "err", err)
		}
	}
	a.mu.Lock()
	if a.report == r {
		a.report = nil
	}
	a.mu.Unlock()
	a.log.Info("damage report saved", "record", e.ID, "category", e.Category, "officer", o.ID)
	a.changed()
	return e, nil
}

// Reports returns the device's damage reports with their statuses, newest
// first.
func (a *App) Reports() []roadwork.Entry { return a.tracker.Reports() }

// ReportEntry returns a report of the list.
func (a *App) ReportEntry(id uuid.UUID) (roadwork.Entry, bool) { return a.tracker.Get(id) }

// snapshot takes one frame from the camera as a JPEG.
func (a *App) snapshot(ctx context.Context) ([]byte, error) {
	cam := a.dev.Camera
	if cam == nil {
		return nil, errors.New("no camera on this handheld")
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := cam.Start(ctx, camera.Mode{Width: 1920, Height: 1080, FPS: 15}); err != nil {
		a.notePeripheral("camera", "camera", cam.Status())
		return nil, fmt.Errorf("camera: %w", err)
	}
	defer cam.Stop()
	f, err := cam.Next(ctx)
	a.notePeripheral("camera", "camera", cam.Status())
	if err != nil {
		return nil, fmt.Errorf("camera: %w", err)
	}
	return photo.Encode(f.Image, 92)
}
