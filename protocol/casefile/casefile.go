package casefile

import (
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"strconv"
	"unicode/utf8"

	"github.com/fxamacker/cbor/v2"
	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/protocol"
)

// Version is the document version this build writes.
const Version = 1

// The record kinds that carry a casefile document.
const (
	KindApplication = "kiosk.application"
	KindNotice      = "enforcement.notice"
	KindReport      = "roadwork.report"
)

// Limits of a document. A decoder refuses anything larger.
const (
	// MaxSize bounds an encoded document: it must fit a sealed body.
	MaxSize = protocol.MaxSealedBody - 4<<10
	// MaxText bounds a short text field (names, numbers, labels).
	MaxText = 256
	// MaxNote bounds free text (a report's note: Open311 allows 4000).
	MaxNote = 4000
	// MaxAttempts bounds the face or finger attempts of an application.
	MaxAttempts = 64
	// MaxChecks bounds the quality checks of one face attempt.
	MaxChecks = 64
	// MaxList bounds other lists (documents, offences, circumstances,
	// photos, consents, valves).
	MaxList = 32
	// MaxStrokes and MaxPoints bound a signature's strokes and its points
	// over all strokes.
	MaxStrokes = 512
	MaxPoints  = 65536
)

// Document is the sealed plaintext of one record.
type Document interface {
	// Kind returns the record kind the document belongs to.
	Kind() string
	// Validate checks the document against its rules and limits.
	Validate() error
	// Blobs returns the ids of the blobs the document refers to, in
	// document order, each once.
	Blobs() []uuid.UUID
}

// Kinds lists the kinds this build knows.
func Kinds() []string { return []string{KindApplication, KindNotice, KindReport} }

// New returns an empty document of kind, or false for an unknown kind.
func New(kind string) (Document, bool) {
	switch kind {
	case KindApplication:
		return new(Application), true
	case KindNotice:
		return new(Notice), true
	case KindReport:
		return new(Report), true
	}
	return nil, false
}

var (
	encMode = mustEncMode()
	decMode = mustDecMode()
)

func mustEncMode() cbor.EncMode {
	em, err := cbor.EncOptions{
		Sort:          cbor.SortCoreDeterministic,
		ShortestFloat: cbor.ShortestFloat16,
		NaNConvert:    cbor.NaNConvertReject,
		InfConvert:    cbor.InfConvertReject,
		IndefLength:   cbor.IndefLengthForbidden,
		TagsMd:        cbor.TagsForbidden,
	}.EncMode()
	if err != nil {
		panic(err)
	}
	return em
}

func mustDecMode() cbor.DecMode {
	dm, err := cbor.DecOptions{
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		IndefLength:      cbor.IndefLengthForbidden,
		TagsMd:           cbor.TagsForbidden,
		MaxNestedLevels:  16,
		MaxArrayElements: MaxPoints,
		MaxMapPairs:      256,
		NaN:              cbor.NaNDecodeForbidden,
		Inf:              cbor.InfDecodeForbidden,
	}.DecMode()
	if err != nil {
		panic(err)
	}
	return dm
}

// Encode validates d and returns its CBOR form.
func Encode(d Document) ([]byte, error) {
	if d == nil || reflect.ValueOf(d).IsNil() {
		return nil, invalid("document", "not set")
	}
	if err := d.Validate(); err != nil {
		return nil, err
	}
	b, err := encMode.Marshal(d)
	if err != nil {
		return nil, fieldErr(d.Kind(), protocol.ErrMalformed, "%v", err)
	}
	if len(b) > MaxSize {
		return nil, fieldErr(d.Kind(), protocol.ErrTooLarge, "%d bytes, at most %d", len(b), MaxSize)
	}
	return b, nil
}

// Decode parses and validates the document of a record of kind. An unknown
// kind is an error wrapping protocol.ErrInvalid.
func Decode(kind string, b []byte) (Document, error) {
	d, ok := New(kind)
	if !ok {
		return nil, invalid("document", "unknown record kind %q: this build reads %v", kind, Kinds())
	}
	if err := decodeInto(d, b); err != nil {
		return nil, err
	}
	return d, nil
}

// DecodeApplication parses and validates a kiosk.application document.
func DecodeApplication(b []byte) (*Application, error) {
	d := new(Application)
	return d, decodeInto(d, b)
}

// DecodeNotice parses and validates an enforcement.notice document.
func DecodeNotice(b []byte) (*Notice, error) {
	d := new(Notice)
	return d, decodeInto(d, b)
}

// DecodeReport parses and validates a roadwork.report document.
func DecodeReport(b []byte) (*Report, error) {
	d := new(Report)
	return d, decodeInto(d, b)
}

func decodeInto(d Document, b []byte) error {
	field := d.Kind()
	if len(b) == 0 {
		return fieldErr(field, protocol.ErrTruncated, "empty document")
	}
	if len(b) > MaxSize {
		return fieldErr(field, protocol.ErrTooLarge, "%d bytes, at most %d", len(b), MaxSize)
	}
	if err := decMode.Unmarshal(b, d); err != nil {
		return cborErr(field, err)
	}
	return d.Validate()
}

// cborErr turns a codec error into a *protocol.Error naming field. The
// codec's messages name types and positions, never values.
func cborErr(field string, err error) error {
	var (
		nested *cbor.MaxNestedLevelError
		arr    *cbor.MaxArrayElementsError
		pairs  *cbor.MaxMapPairsError
	)
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return fieldErr(field, protocol.ErrTruncated, "document ends in the middle of an item")
	case errors.As(err, &nested), errors.As(err, &arr), errors.As(err, &pairs):
		return fieldErr(field, protocol.ErrTooLarge, "%v", err)
	}
	return fieldErr(field, protocol.ErrMalformed, "%v", err)
}

func fieldErr(field string, sentinel error, format string, args ...any) *protocol.Error {
	return &protocol.Error{Field: field, Err: sentinel, Detail: fmt.Sprintf(format, args...)}
}

func invalid(field, format string, args ...any) *protocol.Error {
	return fieldErr(field, protocol.ErrInvalid, format, args...)
}

// validator collects the first problem of a document. Its checks name the
// field and say what is wrong without repeating the value.
type validator struct {
	kind string
	err  error
}

func (v *validator) fail(field string, sentinel error, format string, args ...any) {
	if v.err == nil {
		v.err = fieldErr(v.kind+"."+field, sentinel, format, args...)
	}
}

func (v *validator) version(n uint16) {
	if n == 0 {
		v.fail("v", protocol.ErrVersion, "missing")
	}
}

// text checks a text field: valid UTF-8, no control characters except tab
// and newline in notes, at most max bytes, and present if required.
func (v *validator) text(field, s string, max int, required bool) {
	switch {
	case s == "" && required:
		v.fail(field, protocol.ErrInvalid, "empty")
	case len(s) > max:
		v.fail(field, protocol.ErrTooLarge, "%d bytes, at most %d", len(s), max)
	case !utf8.ValidString(s):
		v.fail(field, protocol.ErrInvalid, "not valid UTF-8")
	default:
		for i, r := range s {
			if r < 0x20 && r != '\t' && r != '\n' && r != '\r' || r == 0x7f {
				v.fail(field, protocol.ErrInvalid, "control character at byte %d", i)
				return
			}
		}
	}
}

func (v *validator) texts(field string, ss []string, max int) {
	v.count(field, len(ss), MaxList)
	for i, s := range ss {
		v.text(field+"["+strconv.Itoa(i)+"]", s, max, true)
	}
}

func (v *validator) oneOf(field, s string, allowed ...string) {
	for _, a := range allowed {
		if s == a {
			return
		}
	}
	if s == "" {
		v.fail(field, protocol.ErrInvalid, "empty; one of %v", allowed)
		return
	}
	v.fail(field, protocol.ErrInvalid, "not one of %v", allowed)
}

func (v *validator) count(field string, n, max int) {
	if n > max {
		v.fail(field, protocol.ErrTooLarge, "%d entries, at most %d", n, max)
	}
}

func (v *validator) number(field string, f float64) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		v.fail(field, protocol.ErrInvalid, "not a finite number")
	}
}

func (v *validator) timestamp(field string, ts Time, required bool) {
	switch {
	case ts == 0 && required:
		v.fail(field, protocol.ErrInvalid, "not set")
	case ts < 0:
		v.fail(field, protocol.ErrInvalid, "before 1970")
	}
}

// blobs tracks blob ids so that a document refers to each blob once.
type blobs struct {
	ids  []uuid.UUID
	seen map[uuid.UUID]bool
}

func (b *blobs) add(v *validator, field string, id uuid.UUID, required bool) {
	if id == uuid.Nil {
		if required {
			v.fail(field, protocol.ErrInvalid, "not set")
		}
		return
	}
	if b.seen == nil {
		b.seen = map[uuid.UUID]bool{}
	}
	if b.seen[id] {
		v.fail(field, protocol.ErrInvalid, "blob %v is named twice in the document", id)
		return
	}
	b.seen[id] = true
	b.ids = append(b.ids, id)
}

// Position is a GNSS fix in WGS 84.
type Position struct {
	Lat float64 `cbor:"1,keyasint" json:"lat"`
	Lon float64 `cbor:"2,keyasint" json:"lon"`
	// AccuracyM is the horizontal accuracy (radius, metres); 0 = unknown.
	AccuracyM float64 `cbor:"3,keyasint,omitempty" json:"accuracy_m,omitempty"`
}

func (v *validator) position(field string, p *Position) {
	if p == nil {
		return
	}
	v.number(field+".lat", p.Lat)
	v.number(field+".lon", p.Lon)
	v.number(field+".accuracy_m", p.AccuracyM)
	switch {
	case p.Lat < -90 || p.Lat > 90:
		v.fail(field+".lat", protocol.ErrInvalid, "outside -90..90")
	case p.Lon < -180 || p.Lon > 180:
		v.fail(field+".lon", protocol.ErrInvalid, "outside -180..180")
	case p.AccuracyM < 0:
		v.fail(field+".accuracy_m", protocol.ErrInvalid, "negative")
	}
}

// Photo is an image blob of a notice or a report.
type Photo struct {
	Image uuid.UUID `cbor:"1,keyasint" json:"image"`
	At    Time      `cbor:"2,keyasint,omitempty" json:"at,omitempty"`
	// Public marks a photo whose copy may be published (stripped of
	// metadata, faces and plates blurred by the device).
	Public  bool   `cbor:"3,keyasint,omitempty" json:"public,omitempty"`
	Caption string `cbor:"4,keyasint,omitempty" json:"caption,omitempty"`
}

func (v *validator) photos(field string, ps []Photo, b *blobs) {
	v.count(field, len(ps), MaxList)
	for i, p := range ps {
		f := field + "[" + strconv.Itoa(i) + "]"
		b.add(v, f+".image", p.Image, true)
		v.timestamp(f+".at", p.At, false)
		v.text(f+".caption", p.Caption, MaxText, false)
	}
}
