package roadwork

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/agent"
	"github.com/kogge-fleet/kogge/drivers/gnss"
	"github.com/kogge-fleet/kogge/mobile-agent/roadwork/photo"
	"github.com/kogge-fleet/kogge/protocol/casefile"
)

// Draft is a damage report being filled on the device.
type Draft struct {
	Category Category
	// Severity is one of Severities (casefile.SeverityLow …).
	Severity string
	// Position is the GNSS fix at the damage, or nil; with it or with a
	// street the report says where the damage is.
	Position *gnss.Position
	// Street, HouseNumber, PostalCode and City locate the damage by
	// address (entered, or picked from recent ones).
	Street      string
	HouseNumber string
	PostalCode  string
	City        string
	// Note describes the damage, at most casefile.MaxNote (4000) bytes.
	Note   string
	Photos []Photo
}

// Photo is a photo of a draft, as photo.Processor made it.
type Photo struct {
	// Private is the photo for the office: a JPEG without metadata.
	Private []byte
	// Public is the copy that may be published (faces and plates blurred),
	// or nil if there is none. The Open311 connector publishes the first
	// one.
	Public []byte
	// At is when the photo was taken.
	At time.Time
	// Caption is an optional line about the photo.
	Caption string
}

// PhotoFrom returns the draft photo of a processed camera photo.
func PhotoFrom(r *photo.Result, at time.Time, caption string) Photo {
	return Photo{Private: r.Private, Public: r.Public, At: at, Caption: caption}
}

// Limits are the rules a draft must keep beyond the report format's.
type Limits struct {
	// MaxAccuracy is the largest position error accepted, in metres (50).
	MaxAccuracy float64
	// MaxFixAge is the oldest position accepted (2 min): a crew that has
	// driven on since has a position of somewhere else.
	MaxFixAge time.Duration
	// MaxPhotos is how many photos a report takes (6, at most 8: each
	// photo is two blobs, a record has at most 16).
	MaxPhotos int
}

// Defaults of Limits.
const (
	DefaultMaxAccuracy = 50
	DefaultMaxFixAge   = 2 * time.Minute
	DefaultMaxPhotos   = 6
	maxPhotos          = 8
)

func (l Limits) withDefaults() Limits {
	if l.MaxAccuracy == 0 {
		l.MaxAccuracy = DefaultMaxAccuracy
	}
	if l.MaxFixAge == 0 {
		l.MaxFixAge = DefaultMaxFixAge
	}
	if l.MaxPhotos == 0 {
		l.MaxPhotos = DefaultMaxPhotos
	}
	return l
}

// Validate checks the limits; zero values are valid (the defaults).
func (l Limits) Validate() error {
	switch {
	case l.MaxAccuracy < 0 || math.IsNaN(l.MaxAccuracy) || l.MaxAccuracy > 10_000:
		return fmt.Errorf("roadwork limits: max accuracy %g m: want 0 to 10000", l.MaxAccuracy)
	case l.MaxFixAge < 0:
		return fmt.Errorf("roadwork limits: max fix age %v is negative", l.MaxFixAge)
	case l.MaxPhotos < 0 || l.MaxPhotos > maxPhotos:
		return fmt.Errorf("roadwork limits: max photos %d: want 0 to %d", l.MaxPhotos, maxPhotos)
	}
	return nil
}

// FieldError is a problem with one field of a draft, for the user
// interface to show at the field.
type FieldError struct {
	// Field is the draft's field: "category", "severity", "position",
	// "location", "street", "house_number", "postal_code", "city", "note",
	// "photos" or "photos[i]".
	Field string
	// Problem says what is wrong and what to do.
	Problem string
}

func (e *FieldError) Error() string { return "damage report: " + e.Field + ": " + e.Problem }

// Author is who files a report: the logged-in officer and their crew.
type Author struct {
	Officer string
	Crew    string
}

// Validate checks the draft against the limits at now. It returns all
// problems, each a *FieldError, joined.
func (d *Draft) Validate(l Limits, now time.Time) error {
	l = l.withDefaults()
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Problem: fmt.Sprintf(format, args...)})
	}
	if !d.Category.Valid() {
		bad("category", "choose one of %v", Categories())
	}
	if !slices.Contains(Severities(), d.Severity) {
		bad("severity", "choose one of %v", Severities())
	}
	if p := d.Position; p != nil {
		age := p.Age
		if !p.Received.IsZero() {
			age = now.Sub(p.Received)
		}
		switch {
		case math.IsNaN(p.Lat) || math.IsNaN(p.Lon) || p.Lat < -90 || p.Lat > 90 || p.Lon < -180 || p.Lon > 180 ||
			p.Lat == 0 && p.Lon == 0:
			bad("position", "not a valid position: wait for a GNSS fix or enter the street")
		case math.IsNaN(p.Accuracy) || p.Accuracy < 0:
			bad("position", "the receiver gave an invalid accuracy: wait for a new fix or enter the street")
		case p.Accuracy > l.MaxAccuracy:
			bad("position", "accurate to %.0f m only, at most %.0f m: wait for a better fix in the open, or enter the street and leave the position out",
				p.Accuracy, l.MaxAccuracy)
		case age > l.MaxFixAge:
			bad("position", "the fix is %v old, at most %v: wait for a fresh fix, or enter the street and leave the position out",
				age.Round(time.Second), l.MaxFixAge)
		}
	}
	if d.Position == nil && strings.TrimSpace(d.Street) == "" {
		bad("location", "no position and no street: wait for a GNSS fix or enter the street")
	}
	text := func(field, s string, max int, multiline bool) {
		switch {
		case len(s) > max:
			bad(field, "%d bytes, at most %d: shorten it", len(s), max)
		case !utf8.ValidString(s):
			bad(field, "not valid text")
		case strings.ContainsFunc(s, func(r rune) bool {
			return (r < 0x20 || r == 0x7f) && !(multiline && (r == '\n' || r == '\t' || r == '\r'))
		}):
			bad(field, "contains control characters")
		}
	}
	text("street", d.Street, casefile.MaxText, false)
	text("house_number", d.HouseNumber, 32, false)
	text("postal_code", d.PostalCode, 16, false)
	text("city", d.City, casefile.MaxText, false)
	text("note", d.Note, casefile.MaxNote, true)
	if len(d.Photos) > l.MaxPhotos {
		bad("photos", "%d photos, at most %d: leave some out", len(d.Photos), l.MaxPhotos)
	}
	for i, p := range d.Photos {
		field := "photos[" + strconv.Itoa(i) + "]"
		if err := clean(p.Private, true); err != nil {
			bad(field, "private copy: %v", err)
		}
		if err := clean(p.Public, false); err != nil {
			bad(field, "public copy: %v", err)
		}
		text(field+".caption", p.Caption, casefile.MaxText, false)
	}
	return errors.Join(errs...)
}

// clean checks that b is a JPEG without metadata: a photo made by the
// photo package. Nothing else leaves the device.
func clean(b []byte, required bool) error {
	if len(b) == 0 {
		if required {
			return errors.New("missing: process the camera photo first")
		}
		return nil
	}
	md, err := photo.Metadata(b)
	if err != nil {
		return fmt.Errorf("%v: process the camera photo with the photo package", err)
	}
	if len(md) > 0 {
		return fmt.Errorf("carries metadata %v: process the camera photo with the photo package", md)
	}
	return nil
}

// Blob roles of a report's photos: photo-1, photo-1-public, photo-2, ….
func photoRole(i int, public bool) string {
	r := "photo-" + strconv.Itoa(i+1)
	if public {
		r += "-public"
	}
	return r
}

// Build validates the draft and returns the report document and its
// blobs: for every photo the private copy and, if there is one, the public
// copy (marked Public in the document), each named by a new blob id.
func (d *Draft) Build(by Author, l Limits, now time.Time) (*casefile.Report, []agent.Blob, error) {
	if err := d.Validate(l, now); err != nil {
		return nil, nil, err
	}
	rep := &casefile.Report{
		V:        casefile.Version,
		Category: string(d.Category),
		Severity: d.Severity,
		Location: casefile.Place{
			Street:      strings.TrimSpace(d.Street),
			HouseNumber: strings.TrimSpace(d.HouseNumber),
			PostalCode:  strings.TrimSpace(d.PostalCode),
			City:        strings.TrimSpace(d.City),
		},
		Note:      d.Note,
		Reporter:  casefile.ReporterCrew,
		Crew:      by.Crew,
		CreatedAt: casefile.At(now),
	}
	if p := d.Position; p != nil {
		rep.Location.Position = &casefile.Position{Lat: p.Lat, Lon: p.Lon, AccuracyM: p.Accuracy}
	}
	var blobs []agent.Blob
	add := func(i int, data []byte, p Photo, public bool) error {
		id, err := uuid.NewV7()
		if err != nil {
			return err
		}
		blobs = append(blobs, agent.Blob{ID: id, Role: photoRole(i, public), Data: data})
		rep.Photos = append(rep.Photos, casefile.Photo{Image: id, At: casefile.At(p.At), Public: public, Caption: p.Caption})
		return nil
	}
	for i, p := range d.Photos {
		if err := add(i, p.Private, p, false); err != nil {
			return nil, nil, fmt.Errorf("damage report: photo id: %w", err)
		}
		if len(p.Public) > 0 {
			if err := add(i, p.Public, p, true); err != nil {
				return nil, nil, fmt.Errorf("damage report: photo id: %w", err)
			}
		}
	}
	if err := rep.Validate(); err != nil {
		return nil, nil, fmt.Errorf("damage report: %w", err)
	}
	return rep, blobs, nil
}
