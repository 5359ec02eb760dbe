package casefile

import (
	"strconv"
	"strings"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/protocol"
)

// Sanctions of a notice.
const (
	// SanctionWarning is a warning fine (Verwarnungsgeld, up to 55 EUR).
	SanctionWarning = "warning"
	// SanctionFine is a matter for a fine notice (Bußgeldbescheid) that the
	// office issues.
	SanctionFine = "fine"
)

// Wheels of a valve position: front left and right, rear left and right.
const (
	WheelFrontLeft  = "VL"
	WheelFrontRight = "VR"
	WheelRearLeft   = "HL"
	WheelRearRight  = "HR"
)

// Notice is the plaintext of an enforcement.notice record: one parking or
// traffic violation as a warden records it, the case record for the OWi
// procedure (DOMAIN.md §2).
type Notice struct {
	V uint16 `cbor:"1,keyasint" json:"v"`
	// Number is the notice number printed on the notice.
	Number string `cbor:"2,keyasint" json:"number"`
	Plate  Plate  `cbor:"3,keyasint" json:"plate"`
	Make   string `cbor:"4,keyasint,omitempty" json:"make,omitempty"`
	Colour string `cbor:"5,keyasint,omitempty" json:"colour,omitempty"`
	// Location is where the vehicle stood.
	Location Place `cbor:"6,keyasint" json:"location"`
	// ObservedFrom and ObservedTo bound the observation.
	ObservedFrom Time `cbor:"7,keyasint" json:"observed_from"`
	ObservedTo   Time `cbor:"8,keyasint,omitempty" json:"observed_to,omitempty"`
	// Offences are the TBNRs (six digits) of the federal catalogue.
	Offences []string `cbor:"9,keyasint" json:"offences"`
	// Circumstances are the catalogue's qualifiers, for example
	// "obstruction" or "over-one-hour".
	Circumstances []string `cbor:"10,keyasint,omitempty" json:"circumstances,omitempty"`
	// Valves are the valve positions per wheel.
	Valves  []Valve `cbor:"11,keyasint,omitempty" json:"valves,omitempty"`
	Photos  []Photo `cbor:"12,keyasint,omitempty" json:"photos,omitempty"`
	Officer string  `cbor:"13,keyasint" json:"officer"`
	// AmountCents is the warning fine, or the catalogue amount of a fine.
	AmountCents int64 `cbor:"14,keyasint" json:"amount_cents"`
	// Sanction is warning or fine.
	Sanction string `cbor:"15,keyasint" json:"sanction"`
	// PaymentRef is the payment reference (the QR code's) of a warning.
	PaymentRef string `cbor:"16,keyasint,omitempty" json:"payment_ref,omitempty"`
	// Voided is set when the warden voided the notice, with the reason.
	Voided     bool   `cbor:"17,keyasint,omitempty" json:"voided,omitempty"`
	VoidReason string `cbor:"18,keyasint,omitempty" json:"void_reason,omitempty"`
	CreatedAt  Time   `cbor:"19,keyasint" json:"created_at"`
	// Remarks is the warden's free text.
	Remarks string `cbor:"20,keyasint,omitempty" json:"remarks,omitempty"`
	// OffenceTexts are the catalogue texts of Offences, in the same order,
	// with the warden's choices filled into their placeholders.
	OffenceTexts []string `cbor:"21,keyasint,omitempty" json:"offence_texts,omitempty"`
}

// Plate is a licence plate.
type Plate struct {
	// Text is the plate without separators ("HBAB1234E").
	Text string `cbor:"1,keyasint" json:"text"`
	// Nationality is the international vehicle registration code ("D").
	Nationality string `cbor:"2,keyasint" json:"nationality"`
	// Display is the plate as written, with its separators ("HB-AB 1234
	// E"): Text alone cannot tell HB-AB 1234 from HBA-B 1234. Without its
	// separators it equals Text.
	Display string `cbor:"3,keyasint,omitempty" json:"display,omitempty"`
}

// Place is a location by address and position.
type Place struct {
	Street      string    `cbor:"1,keyasint,omitempty" json:"street,omitempty"`
	HouseNumber string    `cbor:"2,keyasint,omitempty" json:"house_number,omitempty"`
	PostalCode  string    `cbor:"3,keyasint,omitempty" json:"postal_code,omitempty"`
	City        string    `cbor:"4,keyasint,omitempty" json:"city,omitempty"`
	Position    *Position `cbor:"5,keyasint,omitempty" json:"position,omitempty"`
}

// Valve is the position of a tyre valve: the wheel (VL, VR, HL, HR) and the
// clock hour (1–12), printed as VL05.
type Valve struct {
	Wheel string `cbor:"1,keyasint" json:"wheel"`
	Hour  uint8  `cbor:"2,keyasint" json:"hour"`
}

// String returns the valve position as wardens write it, e.g. "VL05".
func (v Valve) String() string {
	h := strconv.Itoa(int(v.Hour))
	if v.Hour < 10 {
		h = "0" + h
	}
	return v.Wheel + h
}

func (*Notice) Kind() string { return KindNotice }

func (n *Notice) Blobs() []uuid.UUID {
	v := validator{kind: KindNotice}
	return n.check(&v).ids
}

func (n *Notice) Validate() error {
	v := validator{kind: KindNotice}
	n.check(&v)
	return v.err
}

func (n *Notice) check(v *validator) *blobs {
	var b blobs
	v.version(n.V)
	v.text("number", n.Number, MaxText, true)
	v.text("plate.text", n.Plate.Text, 16, true)
	v.text("plate.nationality", n.Plate.Nationality, 3, true)
	v.text("plate.display", n.Plate.Display, 24, false)
	if d := n.Plate.Display; d != "" && strings.NewReplacer("-", "", " ", "").Replace(d) != n.Plate.Text {
		v.fail("plate.display", protocol.ErrInvalid, "%q is not plate.text %q with separators", d, n.Plate.Text)
	}
	v.text("make", n.Make, MaxText, false)
	v.text("colour", n.Colour, MaxText, false)
	v.place("location", n.Location)
	if n.Location.Street == "" && n.Location.Position == nil {
		v.fail("location", protocol.ErrInvalid, "needs a street or a position")
	}
	v.timestamp("observed_from", n.ObservedFrom, true)
	v.timestamp("observed_to", n.ObservedTo, false)
	if n.ObservedTo != 0 && n.ObservedTo < n.ObservedFrom {
		v.fail("observed_to", protocol.ErrInvalid, "before observed_from")
	}
	if len(n.Offences) == 0 {
		v.fail("offences", protocol.ErrInvalid, "empty")
	}
	v.count("offences", len(n.Offences), MaxList)
	for i, t := range n.Offences {
		if !isTBNR(t) {
			v.fail("offences["+strconv.Itoa(i)+"]", protocol.ErrInvalid, "not a TBNR of six digits")
		}
	}
	v.texts("offence_texts", n.OffenceTexts, MaxText)
	if len(n.OffenceTexts) > 0 && len(n.OffenceTexts) != len(n.Offences) {
		v.fail("offence_texts", protocol.ErrInvalid, "%d texts for %d offences", len(n.OffenceTexts), len(n.Offences))
	}
	v.texts("circumstances", n.Circumstances, MaxText)
	v.count("valves", len(n.Valves), 4)
	for i, vv := range n.Valves {
		field := "valves[" + strconv.Itoa(i) + "]"
		v.oneOf(field+".wheel", vv.Wheel, WheelFrontLeft, WheelFrontRight, WheelRearLeft, WheelRearRight)
		if vv.Hour < 1 || vv.Hour > 12 {
			v.fail(field+".hour", protocol.ErrInvalid, "clock hour %d is not 1 to 12", vv.Hour)
		}
	}
	v.photos("photos", n.Photos, &b)
	v.text("officer", n.Officer, MaxText, true)
	if n.AmountCents < 0 {
		v.fail("amount_cents", protocol.ErrInvalid, "negative")
	}
	v.oneOf("sanction", n.Sanction, SanctionWarning, SanctionFine)
	v.text("payment_ref", n.PaymentRef, MaxText, false)
	v.text("void_reason", n.VoidReason, MaxText, n.Voided)
	if !n.Voided && n.VoidReason != "" {
		v.fail("void_reason", protocol.ErrInvalid, "set on a notice that is not voided")
	}
	v.timestamp("created_at", n.CreatedAt, true)
	v.text("remarks", n.Remarks, MaxNote, false)
	return &b
}

func (v *validator) place(field string, p Place) {
	v.text(field+".street", p.Street, MaxText, false)
	v.text(field+".house_number", p.HouseNumber, 32, false)
	v.text(field+".postal_code", p.PostalCode, 16, false)
	v.text(field+".city", p.City, MaxText, false)
	v.position(field+".position", p.Position)
}

func isTBNR(s string) bool {
	if len(s) != 6 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
