package fleet

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/agent"
	"github.com/kogge-fleet/kogge/protocol/casefile"
)

// Role is what a virtual device is: a kiosk in a citizens' office, a
// traffic warden's handheld or a road crew's handheld.
type Role string

// The roles.
const (
	Kiosk  Role = "kiosk"
	Warden Role = "warden"
	Crew   Role = "crew"
)

// Roles lists the roles.
func Roles() []Role { return []Role{Kiosk, Warden, Crew} }

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return r == Kiosk || r == Warden || r == Crew }

// Kind is the record kind the role captures.
func (r Role) Kind() string {
	switch r {
	case Kiosk:
		return casefile.KindApplication
	case Warden:
		return casefile.KindNotice
	case Crew:
		return casefile.KindReport
	}
	return ""
}

// Office is the office that receives the role's captures in district.
func (r Role) Office(district string) string {
	switch r {
	case Kiosk:
		return "buergeramt-" + district
	case Warden:
		return "ordnungsamt"
	case Crew:
		return "strassenbau"
	}
	return ""
}

// Workload is how often a device of a role captures: Peak captures per
// simulated hour at the busiest time of day, shaped by Curve.
type Workload struct {
	Peak  float64
	Curve Curve
}

// DefaultWorkload is the load of one device of role on a normal day: a
// kiosk serves a citizen every 7 to 8 minutes at the peak (one takes about
// 5), a warden writes a notice every 10 minutes, a road crew reports
// damage every 20.
func DefaultWorkload(r Role) Workload {
	switch r {
	case Kiosk:
		return Workload{Peak: 8, Curve: kioskCurve()}
	case Warden:
		return Workload{Peak: 6, Curve: wardenCurve()}
	case Crew:
		return Workload{Peak: 3, Curve: crewCurve()}
	}
	return Workload{}
}

// RealRate is the capture rate per real second at the clock's time of day,
// with the load multiplied by scale.
func (w Workload) RealRate(c Clock, scale float64) float64 {
	perSimHour := w.Peak * w.Curve.At(c.TimeOfDay()) * scale
	return perSimHour / c.Hour.Seconds()
}

// Blob sizes of the captures, before BlobScale.
const (
	photoSize     = 300 << 10 // the kiosk's biometric photo (JPEG 1244×1600)
	fingerSize    = 100 << 10 // one fingerprint (PNG, 500 ppi grey)
	signatureSize = 20 << 10  // the signature (PNG)
	evidenceSize  = 220 << 10 // a handheld's evidence or damage photo (JPEG)
)

// generator makes plausible captures for one device: a casefile document
// as the body and synthetic images as blobs. Images are random bytes behind
// a JPEG or PNG signature (their content does not matter to Kogge: it is
// sealed); the documents are valid casefile documents.
type generator struct {
	role      Role
	device    string
	district  string
	blobScale float64
	rng       *rand.Rand
	bytes     *rand.ChaCha8
	n         int
	now       func() time.Time
}

func newGenerator(role Role, device, district string, seed uint64, blobScale float64, now func() time.Time) *generator {
	var key [32]byte
	for i := range 4 {
		v := seed + uint64(i)*0x9e3779b97f4a7c15
		for j := range 8 {
			key[i*8+j] = byte(v >> (8 * j))
		}
	}
	if now == nil {
		now = time.Now
	}
	return &generator{
		role: role, device: device, district: district, blobScale: blobScale,
		rng:   rand.New(rand.NewPCG(seed, seed^0x5eed)),
		bytes: rand.NewChaCha8(key),
		now:   now,
	}
}

// Captures makes plausible captures of one device, as its workload does:
// casefile documents with synthetic photos, fingerprints and signatures.
type Captures struct{ g *generator }

// NewCaptures returns the captures of a device of role in district;
// blobScale scales the blobs (0: captures without blobs). The same seed
// gives the same captures.
func NewCaptures(role Role, device, district string, seed uint64, blobScale float64) *Captures {
	return &Captures{g: newGenerator(role, device, district, seed, blobScale, nil)}
}

// Next returns the next capture.
func (c *Captures) Next() (agent.Capture, error) { return c.g.next() }

// next returns the next capture. The document names its blobs by id only
// when names is set: see linkBlobs.
func (g *generator) next() (agent.Capture, error) {
	g.n++
	var (
		doc   casefile.Document
		blobs []agent.Blob
		meta  = map[string]string{"district": g.district, "source": "kogge-sim"}
	)
	switch g.role {
	case Kiosk:
		doc, blobs = g.application(meta)
	case Warden:
		doc, blobs = g.notice(meta)
	case Crew:
		doc, blobs = g.report(meta)
	default:
		return agent.Capture{}, fmt.Errorf("unknown role %q", g.role)
	}
	body, err := casefile.Encode(doc)
	if err != nil {
		return agent.Capture{}, fmt.Errorf("workload %s: %w", g.role, err)
	}
	if g.blobScale == 0 {
		blobs = nil
	}
	return agent.Capture{Kind: g.role.Kind(), Office: g.role.Office(g.district), Meta: meta, Body: body, Blobs: blobs}, nil
}

// linkBlobs is the id under which a document names a blob. agent.Capture
// gives the blobs their ids when it saves them, after the body is sealed,
// so the app cannot name them in the document yet: the documents name no
// blobs, select no attempt and carry no signature image; the blobs travel
// with the record by role. When agent.Blob takes an id chosen by the app,
// this returns it and the documents are complete.
func linkBlobs(uuid.UUID) uuid.UUID { return uuid.Nil }

// blob returns about size bytes (±10 %, times the blob scale, at least 64)
// of a synthetic image with the signature of its format.
func (g *generator) blob(size int, png bool) []byte {
	n := int(float64(size) * g.blobScale * (0.9 + 0.2*g.rng.Float64()))
	n = max(n, 64)
	b := make([]byte, n)
	g.bytes.Read(b)
	if png {
		copy(b, "\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR")
		return b
	}
	copy(b, "\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
	b[n-2], b[n-1] = 0xff, 0xd9
	return b
}

func (g *generator) at(back time.Duration) casefile.Time {
	return casefile.At(g.now().Add(-back))
}

func ptr(f float64) *float64 { return &f }

// application is a kiosk.application: one to three photo attempts (the
// last selected), both index fingers (the right one sometimes twice), a
// signature and the fee, as the kiosk flow produces them in about five
// minutes.
func (g *generator) application(meta map[string]string) (casefile.Document, []agent.Blob) {
	services := []string{casefile.ServiceIDCard, casefile.ServiceIDCard, casefile.ServiceIDCard, casefile.ServicePassport, casefile.ServicePassport, casefile.ServiceTemporaryID}
	service := services[g.rng.IntN(len(services))]
	meta["service"] = service
	a := &casefile.Application{
		V:         casefile.Version,
		Number:    fmt.Sprintf("A-%s-%06d", g.device, g.n),
		Service:   service,
		Documents: []string{service},
		EID: &casefile.EIDResult{Result: "ok", Major: "http://www.bsi.bund.de/ecard/api/1.1/resultmajor#ok",
			Session: fmt.Sprintf("eid-%08x", g.rng.Uint32()), At: g.at(280 * time.Second)},
		CreatedAt: g.at(0),
		Terminal:  "Bürgeramt " + g.district + ", " + g.device,
		Language:  []string{"de", "de", "de", "en", "tr", "ar", "ru", "uk", "pl"}[g.rng.IntN(9)],
		Fee: &casefile.Fee{AmountCents: 3700, Currency: "EUR", Receipt: fmt.Sprintf("%06d", g.n),
			Terminal: "5250" + strconv.Itoa(1000+g.rng.IntN(9000)), At: g.at(20 * time.Second)},
		Consent: []casefile.Consent{{Name: "processing", Given: true, At: g.at(290 * time.Second)},
			{Name: "fingerprints", Given: true, At: g.at(150 * time.Second)}},
	}
	if service == casefile.ServicePassport {
		a.Fee.AmountCents = 7000
	}
	var blobs []agent.Blob
	attempts := 1 + g.rng.IntN(3)
	for i := range attempts {
		last := i == attempts-1
		yaw := 7 * g.rng.Float64()
		if last {
			yaw = 4 * g.rng.Float64()
		}
		f := casefile.FaceAttempt{
			N: i + 1, At: g.at(time.Duration(240-20*i) * time.Second),
			Checks: []casefile.Check{
				{Name: "roll", Value: math.Round(g.rng.Float64()*60-30) / 10, Min: ptr(-8), Max: ptr(8), Mandatory: true, Passed: true},
				{Name: "yaw", Value: math.Round(yaw*10) / 10, Min: ptr(-5), Max: ptr(5), Mandatory: true, Passed: yaw <= 5},
				{Name: "eye-distance", Value: float64(300 + g.rng.IntN(60)), Min: ptr(300), Mandatory: true, Passed: true},
				{Name: "background", Value: math.Round((0.8+0.2*g.rng.Float64())*100) / 100, Min: ptr(0.8), Passed: true},
			},
			PAD: &casefile.PAD{Score: math.Round(g.rng.Float64()*10) / 100, Threshold: 0.5, Passed: true},
		}
		if last {
			img := g.blob(photoSize, false)
			blobs = append(blobs, agent.Blob{Role: "photo", Data: img})
			f.Image = linkBlobs(uuid.New())
			f.Selected = f.Image != uuid.Nil
		}
		a.Face = append(a.Face, f)
	}
	n := 0
	for _, pos := range []uint8{casefile.FingerRightIndex, casefile.FingerLeftIndex} {
		tries := 1
		if pos == casefile.FingerRightIndex && g.rng.IntN(4) == 0 {
			tries = 2
		}
		for t := range tries {
			n++
			ok := t == tries-1
			score := uint8(10 + g.rng.IntN(19))
			if ok {
				score = uint8(35 + g.rng.IntN(60))
			}
			f := casefile.FingerAttempt{N: n, At: g.at(time.Duration(150-10*n) * time.Second), Position: pos, Score: score, Threshold: 30}
			if ok {
				blobs = append(blobs, agent.Blob{Role: "finger-" + strconv.Itoa(int(pos)), Data: g.blob(fingerSize, true)})
				f.Image = linkBlobs(uuid.New())
				f.Selected = f.Image != uuid.Nil
			}
			a.Finger = append(a.Finger, f)
		}
	}
	blobs = append(blobs, agent.Blob{Role: "signature", Data: g.blob(signatureSize, true)})
	if id := linkBlobs(uuid.New()); id != uuid.Nil {
		a.Signature = &casefile.Signature{Image: id, Width: 640, Height: 200, Strokes: g.strokes()}
	}
	return a, blobs
}

// strokes is a plausible signature: a few strokes of pen samples.
func (g *generator) strokes() []casefile.Stroke {
	out := make([]casefile.Stroke, 2+g.rng.IntN(3))
	x := uint16(20)
	for i := range out {
		pts := make([]casefile.Point, 20+g.rng.IntN(40))
		for j := range pts {
			x = min(x+uint16(g.rng.IntN(6)), 630)
			pts[j] = casefile.Point{X: x, Y: uint16(60 + g.rng.IntN(80)), T: uint32(j * 16), P: uint16(200 + g.rng.IntN(400))}
		}
		out[i] = casefile.Stroke{Points: pts}
	}
	return out
}

// street is a street of the simulated city (Bremen) with a position on it.
type street struct {
	street, postal string
	lat, lon       float64
}

func streets() []street {
	return []street{
		{"Am Wall", "28195", 53.0758, 8.8072},
		{"Osterdeich", "28203", 53.0701, 8.8265},
		{"Schwachhauser Heerstraße", "28209", 53.0870, 8.8290},
		{"Waller Heerstraße", "28217", 53.0930, 8.7710},
		{"Vahrer Straße", "28329", 53.0930, 8.8790},
		{"Hemelinger Bahnhofstraße", "28309", 53.0560, 8.8960},
		{"Gröpelinger Heerstraße", "28237", 53.1160, 8.7540},
		{"Kattenturmer Heerstraße", "28277", 53.0280, 8.8300},
	}
}

func (g *generator) place() casefile.Place {
	all := streets()
	s := all[g.rng.IntN(len(all))]
	return casefile.Place{
		Street: s.street, HouseNumber: strconv.Itoa(1 + g.rng.IntN(200)), PostalCode: s.postal, City: "Bremen",
		Position: &casefile.Position{
			Lat: s.lat + (g.rng.Float64()-0.5)*0.004, Lon: s.lon + (g.rng.Float64()-0.5)*0.006,
			AccuracyM: math.Round((2+g.rng.Float64()*10)*10) / 10,
		},
	}
}

// offence is a warning offence of the parking catalogue
// (data/tbnr-parking.csv): TBNR and amount in euros.
type offence struct {
	tbnr  string
	euros int64
}

func warningOffences() []offence {
	return []offence{
		{"112454", 55}, {"112474", 55}, {"141310", 20}, {"141311", 35}, {"141312", 25},
		{"141313", 40}, {"141322", 25}, {"112210", 20}, {"112211", 35}, {"112262", 10},
	}
}

// plate is a German plate: district code, one or two letters, digits.
func (g *generator) plate() string {
	codes := []string{"HB", "HB", "HB", "OHZ", "DEL", "VER", "WST", "H", "HH", "OL"}
	letters := "ABCDEFGHJKLMNPRSTUVWXYZ"
	p := codes[g.rng.IntN(len(codes))]
	for range 1 + g.rng.IntN(2) {
		p += string(letters[g.rng.IntN(len(letters))])
	}
	p += strconv.Itoa(1 + g.rng.IntN(9999))
	if g.rng.IntN(10) == 0 {
		p += "E"
	}
	return p
}

// notice is an enforcement.notice: a parking warning with three photos.
func (g *generator) notice(meta map[string]string) (casefile.Document, []agent.Blob) {
	offs := warningOffences()
	off := offs[g.rng.IntN(len(offs))]
	observed := time.Duration(5+g.rng.IntN(60)) * time.Minute
	meta["sanction"] = casefile.SanctionWarning
	n := &casefile.Notice{
		V:            casefile.Version,
		Number:       fmt.Sprintf("N-%s-%06d", g.device, g.n),
		Plate:        casefile.Plate{Text: g.plate(), Nationality: "D"},
		Make:         []string{"VW", "Opel", "Ford", "BMW", "Mercedes-Benz", "Škoda", "Renault", "Toyota"}[g.rng.IntN(8)],
		Colour:       []string{"schwarz", "weiß", "silber", "blau", "rot", "grau"}[g.rng.IntN(6)],
		Location:     g.place(),
		ObservedFrom: g.at(observed),
		ObservedTo:   g.at(time.Minute),
		Offences:     []string{off.tbnr},
		Valves:       []casefile.Valve{{Wheel: "VL", Hour: uint8(1 + g.rng.IntN(12))}, {Wheel: "HR", Hour: uint8(1 + g.rng.IntN(12))}},
		Officer:      fmt.Sprintf("PK-%04d", 1000+g.rng.IntN(9000)),
		AmountCents:  off.euros * 100,
		Sanction:     casefile.SanctionWarning,
		PaymentRef:   fmt.Sprintf("VG-%s-%06d", g.device, g.n),
		CreatedAt:    g.at(0),
	}
	if observed > time.Hour {
		n.Circumstances = []string{"over-one-hour"}
	}
	var blobs []agent.Blob
	for i := range 3 {
		blobs = append(blobs, agent.Blob{Role: "photo-" + strconv.Itoa(i+1), Data: g.blob(evidenceSize, false)})
		if id := linkBlobs(uuid.New()); id != uuid.Nil {
			n.Photos = append(n.Photos, casefile.Photo{Image: id, At: g.at(observed - time.Duration(i)*time.Minute)})
		}
	}
	return n, blobs
}

// report is a roadwork.report of a road crew: one to three photos and the
// GPS position.
func (g *generator) report(meta map[string]string) (casefile.Document, []agent.Blob) {
	cats := []string{"pothole", "pothole", "pothole", "crack", "damaged-sign", "streetlight", "traffic-light", "obstacle", "other"}
	cat := cats[g.rng.IntN(len(cats))]
	meta["category"] = cat
	r := &casefile.Report{
		V:         casefile.Version,
		Category:  cat,
		Severity:  []string{casefile.SeverityLow, casefile.SeverityMedium, casefile.SeverityMedium, casefile.SeverityHigh, casefile.SeverityDanger}[g.rng.IntN(5)],
		Location:  g.place(),
		Note:      fmt.Sprintf("Schaden aufgenommen von %s, etwa %d cm.", g.device, 10+g.rng.IntN(90)),
		Reporter:  casefile.ReporterCrew,
		Crew:      "Kolonne " + g.district,
		CreatedAt: g.at(0),
	}
	var blobs []agent.Blob
	for i := range 1 + g.rng.IntN(3) {
		blobs = append(blobs, agent.Blob{Role: "photo-" + strconv.Itoa(i+1), Data: g.blob(evidenceSize, false)})
		if id := linkBlobs(uuid.New()); id != uuid.Nil {
			r.Photos = append(r.Photos, casefile.Photo{Image: id, At: g.at(time.Duration(3-i) * time.Minute), Public: i == 0})
		}
	}
	return r, blobs
}
