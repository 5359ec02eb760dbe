package idpass

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
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/fleet-server/bridge"
	"github.com/kogge-fleet/kogge/protocol/casefile"
)

// Namespace is the XML namespace of version 1 of the document.
const Namespace = "urn:kogge:idpass:gidlog:1"

// FormatVersion is the version of GidLog this build writes.
//
// History:
//
//	1  2026-12-01  first version.
const FormatVersion = 1

// MaxDocument bounds a document Parse reads (16 images of 32 MiB in
// base64, with room).
const MaxDocument = 768 << 20

// GidLog is the ID-document application as the procedure receives it,
// modelled on the gid-log of BSI TR-03121 (FaceAcquisition and
// FingerAcquisition records with every attempt's quality values,
// thresholds, selection and PAD score). It has an XML and a JSON form.
type GidLog struct {
	XMLName  xml.Name `xml:"urn:kogge:idpass:gidlog:1 GidLog" json:"-"`
	Version  int      `xml:"version,attr" json:"version"`
	RecordID string   `xml:"recordId,attr" json:"record_id"`
	Office   string   `xml:"office,attr" json:"office"`
	Device   string   `xml:"device,attr" json:"device"`
	// Captured is when the device saved the record (RFC 3339).
	Captured    string      `xml:"captured,attr" json:"captured"`
	Application Application `xml:"Application" json:"application"`
}

// Application is the application with its captures.
type Application struct {
	Number    string `xml:"number,attr" json:"number"`
	Service   string `xml:"service,attr" json:"service"`
	Terminal  string `xml:"terminal,attr,omitempty" json:"terminal,omitempty"`
	Language  string `xml:"language,attr,omitempty" json:"language,omitempty"`
	Completed string `xml:"completed,attr" json:"completed"`

	Documents         []string          `xml:"Documents>Document,omitempty" json:"documents,omitempty"`
	EID               *EID              `xml:"EID,omitempty" json:"eid,omitempty"`
	FaceAcquisition   FaceAcquisition   `xml:"FaceAcquisition" json:"face_acquisition"`
	FingerAcquisition FingerAcquisition `xml:"FingerAcquisition" json:"finger_acquisition"`
	Signature         *Signature        `xml:"Signature,omitempty" json:"signature,omitempty"`
	Fee               *Fee              `xml:"Fee,omitempty" json:"fee,omitempty"`
	Consents          []Consent         `xml:"Consents>Consent,omitempty" json:"consents,omitempty"`
	// Counter lists what the clerk captures at the counter.
	Counter []string `xml:"Counter>Item,omitempty" json:"counter,omitempty"`
}

// EID is the eID result; the personal data reach the procedure from the
// eID server under Session.
type EID struct {
	Result  string `xml:"result,attr" json:"result"`
	Major   string `xml:"major,attr,omitempty" json:"major,omitempty"`
	Minor   string `xml:"minor,attr,omitempty" json:"minor,omitempty"`
	Session string `xml:"session,attr,omitempty" json:"session,omitempty"`
	Time    string `xml:"time,attr,omitempty" json:"time,omitempty"`
}

// FaceAcquisition holds every photo attempt.
type FaceAcquisition struct {
	Attempts []FaceAttempt `xml:"Attempt" json:"attempts"`
}

// FaceAttempt is one photo attempt.
type FaceAttempt struct {
	Number   int            `xml:"number,attr" json:"number"`
	Time     string         `xml:"time,attr" json:"time"`
	Selected bool           `xml:"selected,attr" json:"selected"`
	Checks   []QualityCheck `xml:"Quality>Check" json:"checks"`
	PAD      *PAD           `xml:"PAD,omitempty" json:"pad,omitempty"`
	Image    *Image         `xml:"Image,omitempty" json:"image,omitempty"`
}

// QualityCheck is one quality criterion with its thresholds.
type QualityCheck struct {
	Name      string   `xml:"name,attr" json:"name"`
	Value     float64  `xml:"value,attr" json:"value"`
	Min       *float64 `xml:"min,attr,omitempty" json:"min,omitempty"`
	Max       *float64 `xml:"max,attr,omitempty" json:"max,omitempty"`
	Mandatory bool     `xml:"mandatory,attr" json:"mandatory"`
	Passed    bool     `xml:"passed,attr" json:"passed"`
}

// PAD is a presentation-attack detection result.
type PAD struct {
	Score     float64 `xml:"score,attr" json:"score"`
	Threshold float64 `xml:"threshold,attr" json:"threshold"`
	Passed    bool    `xml:"passed,attr" json:"passed"`
}

// FingerAcquisition holds every fingerprint attempt.
type FingerAcquisition struct {
	Attempts []FingerAttempt `xml:"Attempt" json:"attempts"`
}

// FingerAttempt is one fingerprint attempt.
type FingerAttempt struct {
	Number   int    `xml:"number,attr" json:"number"`
	Time     string `xml:"time,attr" json:"time"`
	Position int    `xml:"position,attr" json:"position"`
	// NFIQ is the NFIQ 2 score, 255 when scoring failed.
	NFIQ      int    `xml:"nfiq,attr" json:"nfiq"`
	Threshold int    `xml:"threshold,attr" json:"threshold"`
	Selected  bool   `xml:"selected,attr" json:"selected"`
	PAD       *PAD   `xml:"PAD,omitempty" json:"pad,omitempty"`
	Image     *Image `xml:"Image,omitempty" json:"image,omitempty"`
}

// Image names an image blob; Data embeds it (selected images, or all with
// Config.EmbedAll).
type Image struct {
	Blob     string `xml:"blob,attr" json:"blob"`
	MimeType string `xml:"mimeType,attr" json:"mime_type"`
	Size     int    `xml:"size,attr" json:"size"`
	// SHA256 is the hex digest of the image.
	SHA256 string `xml:"sha256,attr" json:"sha256"`
	Data   Base64 `xml:",chardata" json:"data,omitempty"`
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
		return errors.New("image data is not base64")
	}
	*b = out[:n]
	return nil
}

// Signature is the signature image and its strokes.
type Signature struct {
	Image  Image `xml:"Image" json:"image"`
	Width  int   `xml:"width,attr,omitempty" json:"width,omitempty"`
	Height int   `xml:"height,attr,omitempty" json:"height,omitempty"`
	// Strokes are the pen strokes, each a list of "x,y,t,p" samples
	// separated by spaces.
	Strokes []string `xml:"Strokes>Stroke,omitempty" json:"strokes,omitempty"`
}

// Fee is the payment.
type Fee struct {
	AmountCents int64  `xml:"amountCents,attr" json:"amount_cents"`
	Currency    string `xml:"currency,attr" json:"currency"`
	Result      int    `xml:"zvtResult,attr" json:"zvt_result"`
	Receipt     string `xml:"receipt,attr,omitempty" json:"receipt,omitempty"`
	Terminal    string `xml:"terminal,attr,omitempty" json:"terminal,omitempty"`
	Time        string `xml:"time,attr,omitempty" json:"time,omitempty"`
}

// Consent is a consent given or refused.
type Consent struct {
	Name  string `xml:"name,attr" json:"name"`
	Given bool   `xml:"given,attr" json:"given"`
	Time  string `xml:"time,attr,omitempty" json:"time,omitempty"`
}

func rfc3339(t casefile.Time) string {
	if t == 0 {
		return ""
	}
	return t.Time().Format("2006-01-02T15:04:05.000Z07:00")
}

// Build makes the gid-log of an opened kiosk.application case. With
// embedAll every attempt's image is embedded, else only the selected ones
// and the signature.
func Build(c *bridge.Case, embedAll bool) (*GidLog, error) {
	app, ok := c.Doc.(*casefile.Application)
	if !ok {
		return nil, bridge.Permanent(fmt.Errorf("idpass delivers %s records, not %s", casefile.KindApplication, c.Kind))
	}
	image := func(id uuid.UUID, embed bool) (*Image, error) {
		if id == uuid.Nil {
			return nil, nil
		}
		b, ok := c.Blob(id)
		if !ok {
			return nil, bridge.Permanent(fmt.Errorf("image blob %v is missing from the record", id))
		}
		sum := sha256.Sum256(b.Data)
		img := &Image{Blob: id.String(), MimeType: b.ContentType(), Size: len(b.Data), SHA256: hex.EncodeToString(sum[:])}
		if embed || embedAll {
			img.Data = b.Data
		}
		return img, nil
	}
	g := &GidLog{
		Version: FormatVersion, RecordID: c.ID.String(), Office: c.Office, Device: c.Device,
		Captured: c.CreatedAt.UTC().Format(time.RFC3339Nano),
		Application: Application{
			Number: app.Number, Service: app.Service, Terminal: app.Terminal, Language: app.Language,
			Completed: rfc3339(app.CreatedAt), Documents: app.Documents, Counter: app.Counter,
		},
	}
	a := &g.Application
	if e := app.EID; e != nil {
		a.EID = &EID{Result: e.Result, Major: e.Major, Minor: e.Minor, Session: e.Session, Time: rfc3339(e.At)}
	}
	a.FaceAcquisition.Attempts = []FaceAttempt{}
	for _, f := range app.Face {
		img, err := image(f.Image, f.Selected)
		if err != nil {
			return nil, err
		}
		fa := FaceAttempt{Number: f.N, Time: rfc3339(f.At), Selected: f.Selected, Image: img, PAD: pad(f.PAD), Checks: []QualityCheck{}}
		for _, ch := range f.Checks {
			fa.Checks = append(fa.Checks, QualityCheck{
				Name: ch.Name, Value: ch.Value, Min: ch.Min, Max: ch.Max, Mandatory: ch.Mandatory, Passed: ch.Passed,
			})
		}
		a.FaceAcquisition.Attempts = append(a.FaceAcquisition.Attempts, fa)
	}
	a.FingerAcquisition.Attempts = []FingerAttempt{}
	for _, f := range app.Finger {
		img, err := image(f.Image, f.Selected)
		if err != nil {
			return nil, err
		}
		a.FingerAcquisition.Attempts = append(a.FingerAcquisition.Attempts, FingerAttempt{
			Number: f.N, Time: rfc3339(f.At), Position: int(f.Position), NFIQ: int(f.Score), Threshold: int(f.Threshold),
			Selected: f.Selected, PAD: pad(f.PAD), Image: img,
		})
	}
	if s := app.Signature; s != nil {
		img, err := image(s.Image, true)
		if err != nil {
			return nil, err
		}
		sig := &Signature{Image: *img, Width: int(s.Width), Height: int(s.Height)}
		for _, st := range s.Strokes {
			var sb strings.Builder
			for i, p := range st.Points {
				if i > 0 {
					sb.WriteByte(' ')
				}
				fmt.Fprintf(&sb, "%d,%d,%d,%d", p.X, p.Y, p.T, p.P)
			}
			sig.Strokes = append(sig.Strokes, sb.String())
		}
		a.Signature = sig
	}
	if f := app.Fee; f != nil {
		a.Fee = &Fee{
			AmountCents: f.AmountCents, Currency: f.Currency, Result: int(f.Result), Receipt: f.Receipt,
			Terminal: f.Terminal, Time: rfc3339(f.At),
		}
	}
	for _, cs := range app.Consent {
		a.Consents = append(a.Consents, Consent{Name: cs.Name, Given: cs.Given, Time: rfc3339(cs.At)})
	}
	return g, nil
}

func pad(p *casefile.PAD) *PAD {
	if p == nil {
		return nil
	}
	return &PAD{Score: p.Score, Threshold: p.Threshold, Passed: p.Passed}
}

// Formats of the document.
const (
	FormatXML  = "xml"
	FormatJSON = "json"
)

// Marshal renders the document in format (xml or json).
func (g *GidLog) Marshal(format string) ([]byte, error) {
	switch format {
	case FormatXML:
		var buf bytes.Buffer
		buf.WriteString(xml.Header)
		enc := xml.NewEncoder(&buf)
		enc.Indent("", "  ")
		if err := enc.Encode(g); err != nil {
			return nil, fmt.Errorf("render gid-log XML: %w", err)
		}
		buf.WriteByte('\n')
		return buf.Bytes(), nil
	case FormatJSON:
		b, err := json.MarshalIndent(g, "", "  ")
		if err != nil {
			return nil, fmt.Errorf("render gid-log JSON: %w", err)
		}
		return append(b, '\n'), nil
	}
	return nil, fmt.Errorf("unknown format %q: want xml or json", format)
}

// Parse reads a document in format (xml or json) and validates it.
func Parse(format string, b []byte) (*GidLog, error) {
	if len(b) > MaxDocument {
		return nil, fmt.Errorf("document of %d bytes, at most %d", len(b), MaxDocument)
	}
	var g GidLog
	switch format {
	case FormatXML:
		dec := xml.NewDecoder(bytes.NewReader(b))
		if err := dec.Decode(&g); err != nil {
			return nil, fmt.Errorf("not a gid-log XML document: %w", err)
		}
		if err := trailing(dec); err != nil {
			return nil, err
		}
	case FormatJSON:
		dec := json.NewDecoder(bytes.NewReader(b))
		if err := dec.Decode(&g); err != nil {
			return nil, fmt.Errorf("not a gid-log JSON document: %w", err)
		}
		if dec.More() {
			return nil, errors.New("trailing data after the gid-log JSON document")
		}
	default:
		return nil, fmt.Errorf("unknown format %q: want xml or json", format)
	}
	if err := g.Validate(); err != nil {
		return nil, err
	}
	return &g, nil
}

// trailing refuses anything but whitespace, comments and processing
// instructions after the root element.
func trailing(dec *xml.Decoder) error {
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("after the gid-log element: %w", err)
		}
		switch t := tok.(type) {
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				return errors.New("text after the gid-log element")
			}
		case xml.Comment, xml.ProcInst:
		default:
			return errors.New("a second element after the gid-log element")
		}
	}
}

// Validate checks the document as a procedure would: version, record id,
// attempts in order, at most one selected face and one selected attempt per
// finger, selected images embedded and matching size and digest.
func (g *GidLog) Validate() error {
	if g.XMLName.Space != "" && g.XMLName.Space != Namespace {
		return fmt.Errorf("namespace %q, want %q", g.XMLName.Space, Namespace)
	}
	if g.Version < 1 {
		return fmt.Errorf("version %d, want 1 or more", g.Version)
	}
	if _, err := uuid.Parse(g.RecordID); err != nil {
		return errors.New("recordId is not a UUID")
	}
	a := &g.Application
	if a.Number == "" || a.Service == "" {
		return errors.New("application number or service missing")
	}
	if _, err := time.Parse(time.RFC3339Nano, a.Completed); err != nil {
		return errors.New("application completed time is not RFC 3339")
	}
	selected := 0
	for i, f := range a.FaceAcquisition.Attempts {
		if f.Number != i+1 {
			return fmt.Errorf("face attempt %d is numbered %d", i+1, f.Number)
		}
		if f.PAD != nil && (f.PAD.Score < 0 || f.PAD.Score > 1) {
			return fmt.Errorf("face attempt %d: PAD score outside 0..1", f.Number)
		}
		if f.Selected {
			selected++
			if err := checkImage(f.Image, true); err != nil {
				return fmt.Errorf("selected face attempt %d: %w", f.Number, err)
			}
		} else if err := checkImage(f.Image, false); err != nil {
			return fmt.Errorf("face attempt %d: %w", f.Number, err)
		}
	}
	if selected > 1 {
		return fmt.Errorf("%d face attempts selected, at most 1", selected)
	}
	perFinger := map[int]int{}
	for i, f := range a.FingerAcquisition.Attempts {
		if f.Number != i+1 {
			return fmt.Errorf("finger attempt %d is numbered %d", i+1, f.Number)
		}
		if f.Position < 1 || f.Position > 10 {
			return fmt.Errorf("finger attempt %d: position %d is not 1 to 10", f.Number, f.Position)
		}
		if (f.NFIQ < 0 || f.NFIQ > 100) && f.NFIQ != casefile.FingerFailed {
			return fmt.Errorf("finger attempt %d: NFIQ %d is not 0–100 or 255", f.Number, f.NFIQ)
		}
		if f.Selected {
			perFinger[f.Position]++
			if err := checkImage(f.Image, true); err != nil {
				return fmt.Errorf("selected finger attempt %d: %w", f.Number, err)
			}
		} else if err := checkImage(f.Image, false); err != nil {
			return fmt.Errorf("finger attempt %d: %w", f.Number, err)
		}
	}
	for pos, n := range perFinger {
		if n > 1 {
			return fmt.Errorf("%d attempts selected for finger %d, at most 1", n, pos)
		}
	}
	if s := a.Signature; s != nil {
		if err := checkImage(&s.Image, true); err != nil {
			return fmt.Errorf("signature: %w", err)
		}
		for i, st := range s.Strokes {
			if err := checkStroke(st); err != nil {
				return fmt.Errorf("signature stroke %d: %w", i+1, err)
			}
		}
	}
	return nil
}

func checkImage(img *Image, embedded bool) error {
	if img == nil {
		if embedded {
			return errors.New("no image")
		}
		return nil
	}
	if _, err := uuid.Parse(img.Blob); err != nil {
		return errors.New("image blob is not a UUID")
	}
	if len(img.Data) == 0 {
		if embedded {
			return errors.New("image not embedded")
		}
		return nil
	}
	sum := sha256.Sum256(img.Data)
	if img.Size != len(img.Data) || img.SHA256 != hex.EncodeToString(sum[:]) {
		return errors.New("image does not match its size and SHA-256")
	}
	return nil
}

func checkStroke(s string) error {
	for p := range strings.FieldsSeq(s) {
		parts := strings.Split(p, ",")
		if len(parts) != 4 {
			return errors.New("a sample is not x,y,t,p")
		}
		for _, n := range parts {
			if _, err := strconv.ParseUint(n, 10, 32); err != nil {
				return errors.New("a sample is not x,y,t,p")
			}
		}
	}
	return nil
}
