package casefile

import (
	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/protocol"
)

// Reporters of a road report.
const (
	ReporterCrew    = "crew"
	ReporterCitizen = "citizen"
)

// Severities of a road report.
const (
	SeverityLow    = "low"
	SeverityMedium = "medium"
	SeverityHigh   = "high"
	// SeverityDanger is an immediate danger to road users.
	SeverityDanger = "danger"
)

// Report is the plaintext of a roadwork.report record: a road-damage report
// of a road crew or a citizen (DOMAIN.md §3).
type Report struct {
	V uint16 `cbor:"1,keyasint" json:"v"`
	// Category is the kind of damage, for example "pothole",
	// "damaged-sign", "streetlight"; the Open311 connector maps it to a
	// service code.
	Category string `cbor:"2,keyasint" json:"category"`
	// Severity is low, medium, high or danger.
	Severity string `cbor:"3,keyasint" json:"severity"`
	// Location is where the damage is; it needs a position or a street.
	Location Place `cbor:"4,keyasint" json:"location"`
	// Note is the reporter's description, at most 4000 bytes.
	Note   string  `cbor:"5,keyasint,omitempty" json:"note,omitempty"`
	Photos []Photo `cbor:"6,keyasint,omitempty" json:"photos,omitempty"`
	// Reporter is crew or citizen.
	Reporter string `cbor:"7,keyasint" json:"reporter"`
	// Crew names the road crew of a crew report.
	Crew string `cbor:"8,keyasint,omitempty" json:"crew,omitempty"`
	// Contact is a citizen's contact, if they left one.
	Contact   *Contact `cbor:"9,keyasint,omitempty" json:"contact,omitempty"`
	CreatedAt Time     `cbor:"10,keyasint" json:"created_at"`
}

// Contact is how the office can reach a reporting citizen.
type Contact struct {
	FirstName string `cbor:"1,keyasint,omitempty" json:"first_name,omitempty"`
	LastName  string `cbor:"2,keyasint,omitempty" json:"last_name,omitempty"`
	Email     string `cbor:"3,keyasint,omitempty" json:"email,omitempty"`
	Phone     string `cbor:"4,keyasint,omitempty" json:"phone,omitempty"`
}

func (*Report) Kind() string { return KindReport }

func (r *Report) Blobs() []uuid.UUID {
	v := validator{kind: KindReport}
	return r.check(&v).ids
}

func (r *Report) Validate() error {
	v := validator{kind: KindReport}
	r.check(&v)
	return v.err
}

func (r *Report) check(v *validator) *blobs {
	var b blobs
	v.version(r.V)
	v.text("category", r.Category, protocol.MaxNameLen, true)
	v.oneOf("severity", r.Severity, SeverityLow, SeverityMedium, SeverityHigh, SeverityDanger)
	v.place("location", r.Location)
	if r.Location.Street == "" && r.Location.Position == nil {
		v.fail("location", protocol.ErrInvalid, "needs a street or a position")
	}
	v.text("note", r.Note, MaxNote, false)
	v.photos("photos", r.Photos, &b)
	v.oneOf("reporter", r.Reporter, ReporterCrew, ReporterCitizen)
	v.text("crew", r.Crew, MaxText, false)
	if c := r.Contact; c != nil {
		v.text("contact.first_name", c.FirstName, MaxText, false)
		v.text("contact.last_name", c.LastName, MaxText, false)
		v.text("contact.email", c.Email, MaxText, false)
		v.text("contact.phone", c.Phone, 64, false)
	}
	v.timestamp("created_at", r.CreatedAt, true)
	return &b
}
