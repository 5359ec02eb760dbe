package owi

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/fleet-server/bridge"
	"github.com/kogge-fleet/kogge/protocol/casefile"
)

// Namespace is the XML namespace of version 1 of the case record.
const Namespace = "urn:kogge:owi:case:1"

// FormatVersion is the version of CaseRecord this build writes.
//
// History:
//
//	1  2026-12-01  first version.
const FormatVersion = 1

// MaxDocument bounds a document Parse reads.
const MaxDocument = 768 << 20

// CaseRecord is Kogge's case record of an enforcement notice for the OWi
// procedure (there is no national import standard; vendor formats are
// Adapters over this record). It has an XML and a JSON form.
type CaseRecord struct {
	XMLName  xml.Name `xml:"urn:kogge:owi:case:1 Case" json:"-"`
	Version  int      `xml:"version,attr" json:"version"`
	RecordID string   `xml:"recordId,attr" json:"record_id"`
	Office   string   `xml:"office,attr" json:"office"`
	Device   string   `xml:"device,attr" json:"device"`
	Captured string   `xml:"captured,attr" json:"captured"`
	Notice   Notice   `xml:"Notice" json:"notice"`
}

// Notice is the notice with its evidence.
type Notice struct {
	Number      string `xml:"number,attr" json:"number"`
	Sanction    string `xml:"sanction,attr" json:"sanction"`
	AmountCents int64  `xml:"amountCents,attr" json:"amount_cents"`
	Currency    string `xml:"currency,attr" json:"currency"`
	Voided      bool   `xml:"voided,attr,omitempty" json:"voided,omitempty"`
	Created     string `xml:"created,attr" json:"created"`

	Vehicle       Vehicle     `xml:"Vehicle" json:"vehicle"`
	Location      Location    `xml:"Location" json:"location"`
	Observation   Observation `xml:"Observation" json:"observation"`
	Offences      []string    `xml:"Offences>TBNR" json:"offences"`
	OffenceTexts  []string    `xml:"OffenceTexts>Text,omitempty" json:"offence_texts,omitempty"`
	Circumstances []string    `xml:"Circumstances>Circumstance,omitempty" json:"circumstances,omitempty"`
	Valves        []Valve     `xml:"Valves>Valve,omitempty" json:"valves,omitempty"`
	Officer       string      `xml:"Officer" json:"officer"`
	PaymentRef    string      `xml:"PaymentReference,omitempty" json:"payment_reference,omitempty"`
	VoidReason    string      `xml:"VoidReason,omitempty" json:"void_reason,omitempty"`
	Remarks       string      `xml:"Remarks,omitempty" json:"remarks,omitempty"`
	Photos        []Photo     `xml:"Photos>Photo,omitempty" json:"photos,omitempty"`
}

// Vehicle identifies the vehicle.
type Vehicle struct {
	Plate       string `xml:"plate,attr" json:"plate"`
	Display     string `xml:"display,attr,omitempty" json:"display,omitempty"`
	Nationality string `xml:"nationality,attr" json:"nationality"`
	Make        string `xml:"make,attr,omitempty" json:"make,omitempty"`
	Colour      string `xml:"colour,attr,omitempty" json:"colour,omitempty"`
}

// Location is where the vehicle stood.
type Location struct {
	Street      string   `xml:"street,attr,omitempty" json:"street,omitempty"`
	HouseNumber string   `xml:"houseNumber,attr,omitempty" json:"house_number,omitempty"`
	PostalCode  string   `xml:"postalCode,attr,omitempty" json:"postal_code,omitempty"`
	City        string   `xml:"city,attr,omitempty" json:"city,omitempty"`
	Lat         *float64 `xml:"lat,attr,omitempty" json:"lat,omitempty"`
	Lon         *float64 `xml:"lon,attr,omitempty" json:"lon,omitempty"`
	AccuracyM   *float64 `xml:"accuracyM,attr,omitempty" json:"accuracy_m,omitempty"`
}

// Observation bounds the observation (RFC 3339).
type Observation struct {
	From string `xml:"from,attr" json:"from"`
	To   string `xml:"to,attr,omitempty" json:"to,omitempty"`
}

// Valve is a valve position, e.g. wheel VL at hour 5 ("VL05").
type Valve struct {
	Wheel string `xml:"wheel,attr" json:"wheel"`
	Hour  int    `xml:"hour,attr" json:"hour"`
}

// Photo is an evidence photo, embedded.
type Photo struct {
	Blob     string `xml:"blob,attr" json:"blob"`
	Time     string `xml:"time,attr,omitempty" json:"time,omitempty"`
	Caption  string `xml:"caption,attr,omitempty" json:"caption,omitempty"`
	MimeType string `xml:"mimeType,attr" json:"mime_type"`
	Size     int    `xml:"size,attr" json:"size"`
	SHA256   string `xml:"sha256,attr" json:"sha256"`
	Data     Base64 `xml:",chardata" json:"data"`
}

// Base64 is binary data written as base64 text in XML and JSON.
type Base64 []byte

func (b Base64) MarshalText() ([]byte, error) {
	out := make([]byte, base64.StdEncoding.EncodedLen(len(b)))
	base64.StdEncoding.Encode(out, b)
	return out, nil
}

func (b *Base64) UnmarshalText(t []byte) error {
	t = bytes.Map(func(r rune) rune {
		if r == ' ' || r == '\n' || r == '\r' || r == '\t' {
			return -1
		}
		return r
	}, t)
	out := make([]byte, base64.StdEncoding.DecodedLen(len(t)))
	n, err := base64.StdEncoding.Decode(out, t)
	if err != nil {
		return errors.New("photo data is not base64")
	}
	*b = out[:n]
	return nil
}

func rfc3339(t casefile.Time) string {
	if t == 0 {
		return ""
	}
	return t.Time().Format("2006-01-02T15:04:05.000Z07:00")
}

// Build makes the case record of an opened enforcement.notice case.
func Build(c *bridge.Case) (*CaseRecord, error) {
	n, ok := c.Doc.(*casefile.Notice)
	if !ok {
		return nil, bridge.Permanent(fmt.Errorf("owi delivers %s records, not %s", casefile.KindNotice, c.Kind))
	}
	r := &CaseRecord{
		Version: FormatVersion, RecordID: c.ID.String(), Office: c.Office, Device: c.Device,
		Captured: c.CreatedAt.UTC().Format(time.RFC3339Nano),
		Notice: Notice{
			Number: n.Number, Sanction: n.Sanction, AmountCents: n.AmountCents, Currency: "EUR", Voided: n.Voided,
			Created: rfc3339(n.CreatedAt),
			Vehicle: Vehicle{Plate: n.Plate.Text, Display: n.Plate.Display, Nationality: n.Plate.Nationality, Make: n.Make, Colour: n.Colour},
			Location: Location{
				Street: n.Location.Street, HouseNumber: n.Location.HouseNumber, PostalCode: n.Location.PostalCode,
				City: n.Location.City,
			},
			Observation:   Observation{From: rfc3339(n.ObservedFrom), To: rfc3339(n.ObservedTo)},
			Offences:      n.Offences,
			OffenceTexts:  n.OffenceTexts,
			Circumstances: n.Circumstances,
			Officer:       n.Officer, PaymentRef: n.PaymentRef, VoidReason: n.VoidReason, Remarks: n.Remarks,
		},
	}
	if p := n.Location.Position; p != nil {
		lat, lon := p.Lat, p.Lon
		r.Notice.Location.Lat, r.Notice.Location.Lon = &lat, &lon
		if p.AccuracyM > 0 {
			acc := p.AccuracyM
			r.Notice.Location.AccuracyM = &acc
		}
	}
	for _, v := range n.Valves {
		r.Notice.Valves = append(r.Notice.Valves, Valve{Wheel: v.Wheel, Hour: int(v.Hour)})
	}
	for _, p := range n.Photos {
		b, ok := c.Blob(p.Image)
		if !ok {
			return nil, bridge.Permanent(fmt.Errorf("photo blob %v is missing from the record", p.Image))
		}
		sum := sha256.Sum256(b.Data)
		r.Notice.Photos = append(r.Notice.Photos, Photo{
			Blob: p.Image.String(), Time: rfc3339(p.At), Caption: p.Caption, MimeType: b.ContentType(),
			Size: len(b.Data), SHA256: hex.EncodeToString(sum[:]), Data: b.Data,
		})
	}
	return r, nil
}

// Formats of the Kogge case record.
const (
	FormatXML  = "xml"
	FormatJSON = "json"
)

// Parse reads a case record in format (xml or json) and validates it.
func Parse(format string, b []byte) (*CaseRecord, error) {
	if len(b) > MaxDocument {
		return nil, fmt.Errorf("document of %d bytes, at most %d", len(b), MaxDocument)
	}
	var r CaseRecord
	switch format {
	case FormatXML:
		dec := xml.NewDecoder(bytes.NewReader(b))
		if err := dec.Decode(&r); err != nil {
			return nil, fmt.Errorf("not an OWi case record XML document: %w", err)
		}
		for {
			tok, err := dec.Token()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("after the case element: %w", err)
			}
			if cd, ok := tok.(xml.CharData); ok && len(bytes.TrimSpace(cd)) == 0 {
				continue
			}
			if _, ok := tok.(xml.Comment); ok {
				continue
			}
			return nil, errors.New("content after the case element")
		}
	case FormatJSON:
		dec := json.NewDecoder(bytes.NewReader(b))
		if err := dec.Decode(&r); err != nil {
			return nil, fmt.Errorf("not an OWi case record JSON document: %w", err)
		}
		if dec.More() {
			return nil, errors.New("trailing data after the case record")
		}
	default:
		return nil, fmt.Errorf("unknown format %q: want xml or json", format)
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return &r, nil
}

// Validate checks the record as the procedure would.
func (r *CaseRecord) Validate() error {
	if r.XMLName.Space != "" && r.XMLName.Space != Namespace {
		return fmt.Errorf("namespace %q, want %q", r.XMLName.Space, Namespace)
	}
	if r.Version < 1 {
		return fmt.Errorf("version %d, want 1 or more", r.Version)
	}
	if _, err := uuid.Parse(r.RecordID); err != nil {
		return errors.New("recordId is not a UUID")
	}
	n := &r.Notice
	if n.Number == "" || n.Vehicle.Plate == "" || n.Officer == "" {
		return errors.New("notice number, plate or officer missing")
	}
	if n.Sanction != casefile.SanctionWarning && n.Sanction != casefile.SanctionFine {
		return errors.New("sanction is neither warning nor fine")
	}
	if _, err := time.Parse(time.RFC3339Nano, n.Observation.From); err != nil {
		return errors.New("observation start is not RFC 3339")
	}
	if len(n.Offences) == 0 {
		return errors.New("no offence")
	}
	for _, t := range n.Offences {
		if len(t) != 6 || !digits(t) {
			return errors.New("an offence is not a TBNR of six digits")
		}
	}
	for _, v := range n.Valves {
		if v.Hour < 1 || v.Hour > 12 {
			return errors.New("a valve hour is not 1 to 12")
		}
	}
	for i, p := range n.Photos {
		sum := sha256.Sum256(p.Data)
		if _, err := uuid.Parse(p.Blob); err != nil || p.Size != len(p.Data) || p.SHA256 != hex.EncodeToString(sum[:]) {
			return fmt.Errorf("photo %d does not match its blob id, size and SHA-256", i+1)
		}
	}
	return nil
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
