package casefile

import (
	"strconv"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/protocol"
)

// Services an application can be for.
const (
	ServiceIDCard      = "id-card"
	ServicePassport    = "passport"
	ServiceTemporaryID = "temporary-id"
)

// Finger positions (ISO/IEC 19794-4) captured at an unattended terminal.
const (
	FingerRightIndex = 2
	FingerLeftIndex  = 7
)

// FingerFailed is the NFIQ 2 score of a capture that could not be scored.
const FingerFailed = 255

// Application is the plaintext of a kiosk.application record: one ID-document
// application with every capture attempt, modelled on the TR-03121 gid-log.
// The citizen's eID data is not in it: the eID server hands that to the
// procedure directly; the application carries only the result and the
// session reference that joins the two.
type Application struct {
	V uint16 `cbor:"1,keyasint" json:"v"`
	// Number is the application number the terminal shows the citizen.
	Number string `cbor:"2,keyasint" json:"number"`
	// Service is id-card, passport or temporary-id.
	Service string `cbor:"3,keyasint" json:"service"`
	// Documents lists the documents the citizen chose (for example
	// "id-card", "passport"); often just the service.
	Documents []string   `cbor:"4,keyasint,omitempty" json:"documents,omitempty"`
	EID       *EIDResult `cbor:"5,keyasint,omitempty" json:"eid,omitempty"`
	// Face holds every photo attempt, in order.
	Face []FaceAttempt `cbor:"6,keyasint,omitempty" json:"face,omitempty"`
	// Finger holds every fingerprint attempt, in order.
	Finger    []FingerAttempt `cbor:"7,keyasint,omitempty" json:"finger,omitempty"`
	Signature *Signature      `cbor:"8,keyasint,omitempty" json:"signature,omitempty"`
	Fee       *Fee            `cbor:"9,keyasint,omitempty" json:"fee,omitempty"`
	Consent   []Consent       `cbor:"10,keyasint,omitempty" json:"consent,omitempty"`
	// CreatedAt is when the citizen finished at the terminal.
	CreatedAt Time `cbor:"11,keyasint" json:"created_at"`
	// Terminal is the terminal's location label ("Bürgeramt Mitte, 1").
	Terminal string `cbor:"12,keyasint,omitempty" json:"terminal,omitempty"`
	// Language is the UI language the citizen chose (BCP 47, "de").
	Language string `cbor:"13,keyasint,omitempty" json:"language,omitempty"`
	// Counter lists what moved to the counter ("face", "finger-2",
	// "finger-7", "signature", "fee"): the clerk captures it manually.
	Counter []string `cbor:"14,keyasint,omitempty" json:"counter,omitempty"`
}

// EIDResult summarises the eID authentication (AusweisApp SDK AUTH result).
type EIDResult struct {
	// Result is ok, failed, cancelled or skipped.
	Result string `cbor:"1,keyasint" json:"result"`
	// Major and Minor are the SDK's result URIs (ECard-API).
	Major string `cbor:"2,keyasint,omitempty" json:"major,omitempty"`
	Minor string `cbor:"3,keyasint,omitempty" json:"minor,omitempty"`
	// Session is the eID server's reference under which the procedure
	// fetches the personal data server-to-server.
	Session string `cbor:"4,keyasint,omitempty" json:"session,omitempty"`
	At      Time   `cbor:"5,keyasint,omitempty" json:"at,omitempty"`
}

// Check is one quality criterion of a face attempt.
type Check struct {
	// Name is the criterion: roll, yaw, pitch, mouth-closed, eyes-open,
	// image-size, head-width, head-height, eye-position, centre,
	// eye-distance, exposure, sharpness, colour-space, background,
	// lighting.
	Name  string  `cbor:"1,keyasint" json:"name"`
	Value float64 `cbor:"2,keyasint" json:"value"`
	// Min and Max are the thresholds in force; nil where there is none.
	Min       *float64 `cbor:"3,keyasint,omitempty" json:"min,omitempty"`
	Max       *float64 `cbor:"4,keyasint,omitempty" json:"max,omitempty"`
	Mandatory bool     `cbor:"5,keyasint,omitempty" json:"mandatory,omitempty"`
	Passed    bool     `cbor:"6,keyasint,omitempty" json:"passed,omitempty"`
}

// PAD is a presentation-attack detection result: Score in [0,1], higher is
// more likely an attack; the attempt passes when Score ≤ Threshold.
type PAD struct {
	Score     float64 `cbor:"1,keyasint" json:"score"`
	Threshold float64 `cbor:"2,keyasint" json:"threshold"`
	Passed    bool    `cbor:"3,keyasint,omitempty" json:"passed,omitempty"`
}

// FaceAttempt is one photo attempt with its quality values.
type FaceAttempt struct {
	// N numbers the attempts from 1.
	N        int     `cbor:"1,keyasint" json:"n"`
	At       Time    `cbor:"2,keyasint" json:"at"`
	Checks   []Check `cbor:"3,keyasint,omitempty" json:"checks,omitempty"`
	PAD      *PAD    `cbor:"4,keyasint,omitempty" json:"pad,omitempty"`
	Selected bool    `cbor:"5,keyasint,omitempty" json:"selected,omitempty"`
	// Image is the blob of the image (JPEG, 1244×1600); Nil when the
	// terminal kept no image of this attempt.
	Image uuid.UUID `cbor:"6,keyasint,omitempty" json:"image,omitzero"`
}

// FingerAttempt is one fingerprint attempt.
type FingerAttempt struct {
	N  int  `cbor:"1,keyasint" json:"n"`
	At Time `cbor:"2,keyasint" json:"at"`
	// Position is the ISO finger position: 2 right index, 7 left index.
	Position uint8 `cbor:"3,keyasint" json:"position"`
	// Score is the NFIQ 2 score 0–100, or 255 when scoring failed.
	Score uint8 `cbor:"4,keyasint" json:"score"`
	// Threshold is the enrolment threshold in force (30 for index
	// fingers).
	Threshold uint8 `cbor:"5,keyasint" json:"threshold"`
	Selected  bool  `cbor:"6,keyasint,omitempty" json:"selected,omitempty"`
	PAD       *PAD  `cbor:"7,keyasint,omitempty" json:"pad,omitempty"`
	// Image is the blob of the image (PNG, 500 ppi, 8-bit grey).
	Image uuid.UUID `cbor:"8,keyasint,omitempty" json:"image,omitzero"`
}

// Signature is the citizen's signature: a PNG image and the pen strokes.
type Signature struct {
	Image   uuid.UUID `cbor:"1,keyasint" json:"image"`
	Strokes []Stroke  `cbor:"2,keyasint,omitempty" json:"strokes,omitempty"`
	// Width and Height are the pad's coordinate range.
	Width  uint16 `cbor:"3,keyasint,omitempty" json:"width,omitempty"`
	Height uint16 `cbor:"4,keyasint,omitempty" json:"height,omitempty"`
}

// Stroke is one pen-down to pen-up movement.
type Stroke struct {
	Points []Point `cbor:"1,keyasint" json:"points"`
}

// Point is a sample of a stroke, encoded as a CBOR array [x, y, t, p].
type Point struct {
	_ struct{} `cbor:",toarray"`
	X uint16   `json:"x"`
	Y uint16   `json:"y"`
	// T is milliseconds since the stroke began.
	T uint32 `json:"t"`
	// P is the pressure, 0 when the pad has none.
	P uint16 `json:"p,omitempty"`
}

// Fee is the payment at the terminal.
type Fee struct {
	AmountCents int64  `cbor:"1,keyasint" json:"amount_cents"`
	Currency    string `cbor:"2,keyasint" json:"currency"`
	// Result is the ZVT result code of the authorisation (0 = approved).
	Result uint8 `cbor:"3,keyasint" json:"result"`
	// Receipt is the card terminal's receipt number.
	Receipt string `cbor:"4,keyasint,omitempty" json:"receipt,omitempty"`
	// Terminal is the card terminal's id (ZVT TID).
	Terminal string `cbor:"5,keyasint,omitempty" json:"terminal,omitempty"`
	At       Time   `cbor:"6,keyasint,omitempty" json:"at,omitempty"`
}

// Consent is one consent the citizen gave or refused.
type Consent struct {
	// Name is the consent, for example "processing" or "fingerprints".
	Name  string `cbor:"1,keyasint" json:"name"`
	Given bool   `cbor:"2,keyasint" json:"given"`
	At    Time   `cbor:"3,keyasint,omitempty" json:"at,omitempty"`
}

func (*Application) Kind() string { return KindApplication }

func (a *Application) Blobs() []uuid.UUID {
	v := validator{kind: KindApplication}
	return a.check(&v).ids
}

func (a *Application) Validate() error {
	v := validator{kind: KindApplication}
	a.check(&v)
	return v.err
}

func (a *Application) check(v *validator) *blobs {
	var b blobs
	v.version(a.V)
	v.text("number", a.Number, MaxText, true)
	v.oneOf("service", a.Service, ServiceIDCard, ServicePassport, ServiceTemporaryID)
	v.texts("documents", a.Documents, MaxText)
	if e := a.EID; e != nil {
		v.oneOf("eid.result", e.Result, "ok", "failed", "cancelled", "skipped")
		v.text("eid.major", e.Major, MaxText, false)
		v.text("eid.minor", e.Minor, MaxText, false)
		v.text("eid.session", e.Session, MaxText, false)
		v.timestamp("eid.at", e.At, false)
	}
	v.count("face", len(a.Face), MaxAttempts)
	selected := 0
	for i, f := range a.Face {
		field := "face[" + strconv.Itoa(i) + "]"
		if f.N != i+1 {
			v.fail(field+".n", protocol.ErrInvalid, "attempts must be numbered 1, 2, … in order")
		}
		v.timestamp(field+".at", f.At, true)
		v.count(field+".checks", len(f.Checks), MaxChecks)
		for j, c := range f.Checks {
			cf := field + ".checks[" + strconv.Itoa(j) + "]"
			v.text(cf+".name", c.Name, MaxText, true)
			v.number(cf+".value", c.Value)
			if c.Min != nil {
				v.number(cf+".min", *c.Min)
			}
			if c.Max != nil {
				v.number(cf+".max", *c.Max)
			}
		}
		v.pad(field+".pad", f.PAD)
		if f.Selected {
			selected++
			if f.Image == uuid.Nil {
				v.fail(field+".image", protocol.ErrInvalid, "the selected attempt has no image")
			}
		}
		b.add(v, field+".image", f.Image, false)
	}
	if selected > 1 {
		v.fail("face", protocol.ErrInvalid, "%d attempts selected, at most 1", selected)
	}
	v.count("finger", len(a.Finger), MaxAttempts)
	perPosition := map[uint8]int{}
	for i, f := range a.Finger {
		field := "finger[" + strconv.Itoa(i) + "]"
		if f.N != i+1 {
			v.fail(field+".n", protocol.ErrInvalid, "attempts must be numbered 1, 2, … in order")
		}
		v.timestamp(field+".at", f.At, true)
		if f.Position < 1 || f.Position > 10 {
			v.fail(field+".position", protocol.ErrInvalid, "finger position %d is not 1 to 10", f.Position)
		}
		if f.Score > 100 && f.Score != FingerFailed {
			v.fail(field+".score", protocol.ErrInvalid, "NFIQ 2 score %d is not 0–100 or 255", f.Score)
		}
		if f.Threshold > 100 {
			v.fail(field+".threshold", protocol.ErrInvalid, "threshold %d is not 0–100", f.Threshold)
		}
		v.pad(field+".pad", f.PAD)
		if f.Selected {
			perPosition[f.Position]++
			if f.Image == uuid.Nil {
				v.fail(field+".image", protocol.ErrInvalid, "the selected attempt has no image")
			}
		}
		b.add(v, field+".image", f.Image, false)
	}
	for pos, n := range perPosition {
		if n > 1 {
			v.fail("finger", protocol.ErrInvalid, "%d attempts selected for finger %d, at most 1", n, pos)
		}
	}
	if s := a.Signature; s != nil {
		b.add(v, "signature.image", s.Image, true)
		v.count("signature.strokes", len(s.Strokes), MaxStrokes)
		points := 0
		for _, st := range s.Strokes {
			points += len(st.Points)
		}
		v.count("signature.strokes", points, MaxPoints)
	}
	if f := a.Fee; f != nil {
		if f.AmountCents < 0 {
			v.fail("fee.amount_cents", protocol.ErrInvalid, "negative")
		}
		v.currency("fee.currency", f.Currency)
		v.text("fee.receipt", f.Receipt, MaxText, false)
		v.text("fee.terminal", f.Terminal, MaxText, false)
		v.timestamp("fee.at", f.At, false)
	}
	v.count("consent", len(a.Consent), MaxList)
	for i, c := range a.Consent {
		field := "consent[" + strconv.Itoa(i) + "]"
		v.text(field+".name", c.Name, MaxText, true)
		v.timestamp(field+".at", c.At, false)
	}
	v.timestamp("created_at", a.CreatedAt, true)
	v.text("terminal", a.Terminal, MaxText, false)
	v.text("language", a.Language, 35, false)
	v.texts("counter", a.Counter, MaxText)
	return &b
}

func (v *validator) pad(field string, p *PAD) {
	if p == nil {
		return
	}
	v.number(field+".score", p.Score)
	v.number(field+".threshold", p.Threshold)
	if p.Score < 0 || p.Score > 1 {
		v.fail(field+".score", protocol.ErrInvalid, "outside 0..1")
	}
	if p.Threshold < 0 || p.Threshold > 1 {
		v.fail(field+".threshold", protocol.ErrInvalid, "outside 0..1")
	}
}

func (v *validator) currency(field, s string) {
	if len(s) != 3 || s[0] < 'A' || s[0] > 'Z' || s[1] < 'A' || s[1] > 'Z' || s[2] < 'A' || s[2] > 'Z' {
		v.fail(field, protocol.ErrInvalid, "not an ISO 4217 code such as EUR")
	}
}
