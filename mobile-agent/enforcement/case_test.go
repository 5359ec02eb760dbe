package enforcement

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/protocol/casefile"
)

// fixture is an issuer on a fixed clock at 08:32 on 6 January 2025 in
// Bremen, and a case observed from 08:15.
type fixture struct {
	now    time.Time
	seq    *MemorySequencer
	issuer *Issuer
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	loc := berlin(t)
	f := &fixture{now: time.Date(2025, 1, 6, 8, 32, 0, 0, loc), seq: NewMemorySequencer(122)}
	is, err := NewIssuer(embedded(t), f.seq, Options{Prefix: "HB42", Location: loc, Now: func() time.Time { return f.now }})
	if err != nil {
		t.Fatal(err)
	}
	f.issuer = is
	return f
}

func (f *fixture) parkingCase(t testing.TB, tbnrs ...string) *Case {
	t.Helper()
	plate, err := ParsePlate("D", "HB-AB 1234")
	if err != nil {
		t.Fatal(err)
	}
	c := &Case{
		Plate: plate, Make: "VW", Colour: "grau",
		Location: casefile.Place{
			Street: "Am Markt", HouseNumber: "21", PostalCode: "28195", City: "Bremen",
			Position: &casefile.Position{Lat: 53.07582, Lon: 8.80717, AccuracyM: 4},
		},
		Observation: Observation{Start: time.Date(2025, 1, 6, 8, 15, 0, 0, f.now.Location())},
		Valves: []casefile.Valve{
			{Wheel: "VL", Hour: 5}, {Wheel: "VR", Hour: 7}, {Wheel: "HL", Hour: 11}, {Wheel: "HR", Hour: 2},
		},
		Photos:  []casefile.Photo{{Image: uuid.MustParse("0190f3c4-0000-7000-8000-000000000051"), At: casefile.At(f.now.Add(-10 * time.Minute))}},
		Officer: "4711",
	}
	for _, n := range tbnrs {
		c.Offences = append(c.Offences, Offence{TBNR: n})
	}
	return c
}

func TestIssueWarning(t *testing.T) {
	f := newFixture(t)
	c := f.parkingCase(t, "141312")
	a, err := f.issuer.Check(c)
	if err != nil {
		t.Fatal(err)
	}
	if a.AmountCents != 2500 || a.Sanction != Warning || a.Texts[0] != "Sie parkten im absoluten Haltverbot (Zeichen 283)." {
		t.Fatalf("assessment %+v", a)
	}
	n, err := f.issuer.Issue(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Validate(); err != nil {
		t.Fatalf("the case record does not validate: %v", err)
	}
	if _, err := casefile.Encode(n); err != nil {
		t.Fatal(err)
	}
	want := casefile.Notice{
		V: casefile.Version, Number: "HB42-0000123-1",
		Plate: casefile.Plate{Text: "HBAB1234", Nationality: "D", Display: "HB-AB 1234"}, Make: "VW", Colour: "grau",
		Location:     c.Location,
		ObservedFrom: casefile.At(c.Observation.Start), ObservedTo: casefile.At(f.now),
		Offences: []string{"141312"}, OffenceTexts: []string{"Sie parkten im absoluten Haltverbot (Zeichen 283)."}, Valves: c.Valves, Photos: c.Photos, Officer: "4711",
		AmountCents: 2500, Sanction: casefile.SanctionWarning, PaymentRef: "RF79HB4200001231",
		CreatedAt: casefile.At(f.now),
	}
	if !noticesEqual(*n, want) {
		t.Fatalf("notice\n got %+v\nwant %+v", *n, want)
	}
	if err := CheckPaymentReference(n.PaymentRef); err != nil {
		t.Fatal(err)
	}
	// The next notice gets the next number.
	n2, err := f.issuer.Issue(context.Background(), f.parkingCase(t, "113100"))
	if err != nil {
		t.Fatal(err)
	}
	if num, err := ParseNoticeNumber(n2.Number); err != nil || num.Seq != 124 || num.Prefix != "HB42" {
		t.Fatalf("second number %q: %v", n2.Number, err)
	}
}

func noticesEqual(a, b casefile.Notice) bool {
	ea, _ := casefile.Encode(&a)
	eb, _ := casefile.Encode(&b)
	return ea != nil && string(ea) == string(eb)
}

func TestIssueFine(t *testing.T) {
	f := newFixture(t)
	c := f.parkingCase(t, "112655", "141312") // footway with obstruction, 70 EUR
	c.Circumstances = []string{"Rollstuhlfahrer musste auf die Fahrbahn ausweichen"}
	n, err := f.issuer.Issue(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if n.Sanction != casefile.SanctionFine || n.AmountCents != 7000 || n.PaymentRef != "" {
		t.Fatalf("fine: sanction %s amount %d reference %q", n.Sanction, n.AmountCents, n.PaymentRef)
	}
	if !slices.Equal(n.Offences, []string{"112655", "141312"}) {
		t.Fatalf("offences %v", n.Offences)
	}
	if !slices.Equal(n.Circumstances, []string{"obstruction", "Rollstuhlfahrer musste auf die Fahrbahn ausweichen"}) {
		t.Fatalf("circumstances %q", n.Circumstances)
	}
	if err := n.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestIssueRecordsChoices(t *testing.T) {
	f := newFixture(t)
	c := f.parkingCase(t)
	c.Offences = []Offence{{TBNR: "141174", Choices: []string{"2"}}}
	a, err := f.issuer.Check(c)
	if err != nil {
		t.Fatal(err)
	}
	if a.Texts[0] != "Sie parkten auf einem Radfahrstreifen (Zeichen 237)." {
		t.Fatalf("text %q", a.Texts[0])
	}
	n, err := f.issuer.Issue(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(n.OffenceTexts, []string{"Sie parkten auf einem Radfahrstreifen (Zeichen 237)."}) {
		t.Fatalf("offence texts %q lack the choice", n.OffenceTexts)
	}
	c.Offences[0].Choices = nil
	if _, err := f.issuer.Check(c); !errors.Is(err, ErrChoice) {
		t.Fatalf("no choice: %v", err)
	}
}

func TestIssueNeedsObservedTime(t *testing.T) {
	f := newFixture(t)
	c := f.parkingCase(t, "141314", "141312") // over one hour in the no-stopping zone
	_, err := f.issuer.Issue(context.Background(), c)
	var oe *ObservationError
	if !errors.As(err, &oe) || oe.TBNR != "141314" || oe.Remaining != 43*time.Minute {
		t.Fatalf("after 17 minutes: %v", err)
	}
	if !strings.Contains(err.Error(), "43min remain") {
		t.Fatalf("message %q", err)
	}
	// No number was used up.
	if n, _ := f.seq.Next(context.Background()); n != 123 {
		t.Fatalf("sequence at %d: a refused case took a number", n)
	}
	// The warden comes back when the hour is over.
	f.now = c.Observation.Start.Add(time.Hour)
	n, err := f.issuer.Issue(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if n.AmountCents != 4000 || n.ObservedTo != casefile.At(f.now) || !slices.Contains(n.Circumstances, "over-one-hour") {
		t.Fatalf("notice %+v", n)
	}
	// With an end set too early, waiting does not help.
	c.Observation.End = c.Observation.Start.Add(50 * time.Minute)
	f.now = f.now.Add(time.Hour)
	if _, err := f.issuer.Check(c); !errors.As(err, &oe) || oe.Remaining != 10*time.Minute {
		t.Fatalf("ended after 50 minutes: %v", err)
	}
}

func TestCheckRefuses(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name string
		edit func(c *Case)
		want string
		is   error
	}{
		{"no plate", func(c *Case) { c.Plate = Plate{} }, "no plate", nil},
		{"plate made by hand", func(c *Case) { c.Plate = Plate{Nationality: "D", Text: "HBABCD1"} }, "not a district code", ErrPlate},
		{"no make", func(c *Case) { c.Make = " " }, "no make", nil},
		{"no location", func(c *Case) { c.Location = casefile.Place{City: "Bremen"} }, "no location", nil},
		{"no officer", func(c *Case) { c.Officer = "" }, "no officer", nil},
		{"no offence", func(c *Case) { c.Offences = nil }, "pick at least one offence", ErrNoOffence},
		{"unknown offence", func(c *Case) { c.Offences = []Offence{{TBNR: "999999"}} }, "999999", ErrUnknownOffence},
		{"offence before the catalogue", func(c *Case) {
			c.Observation.Start = time.Date(2021, 11, 8, 10, 0, 0, 0, f.now.Location())
		}, "2021-11-08", ErrNotValid},
		{"future start", func(c *Case) { c.Observation.Start = f.now.Add(time.Minute) }, "future", ErrObservationTimes},
		{"end before start", func(c *Case) { c.Observation.End = c.Observation.Start.Add(-time.Second) }, "before start", ErrObservationTimes},
		{"valve twice", func(c *Case) { c.Valves = append(c.Valves, casefile.Valve{Wheel: "VL", Hour: 1}) }, "twice", nil},
		{"empty circumstance", func(c *Case) { c.Circumstances = []string{" "} }, "empty circumstance", nil},
		{"same offence twice", func(c *Case) { c.Offences = append(c.Offences, c.Offences[0]) }, "twice", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := f.parkingCase(t, "141312")
			tt.edit(c)
			_, err := f.issuer.Check(c)
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tt.want) || tt.is != nil && !errors.Is(err, tt.is) {
				t.Fatalf("error %q; want %q (%v)", err, tt.want, tt.is)
			}
			if _, err := f.issuer.Issue(context.Background(), c); err == nil {
				t.Fatal("Issue accepted what Check refused")
			}
		})
	}
	if n, _ := f.seq.Next(context.Background()); n != 123 {
		t.Fatalf("refused cases used up numbers: next is %d", n)
	}
}

func TestIssuerCatalogueUpdate(t *testing.T) {
	f := newFixture(t)
	newer := strings.Replace(string(embeddedCatalogue), "# version: 1", "# version: 2", 1)
	newer = strings.Replace(newer, "141312,Sie parkten im absoluten Haltverbot (Zeichen 283).,25,", "141312,Sie parkten im absoluten Haltverbot (Zeichen 283).,30,", 1)
	if err := f.issuer.UpdateCatalogue([]byte(strings.Replace(newer, ",30,", ",33,", 1))); err == nil {
		t.Fatal("a 33 EUR warning was taken")
	}
	if err := f.issuer.UpdateCatalogue(embeddedCatalogue); !errors.Is(err, ErrNotNewer) {
		t.Fatalf("same version: %v", err)
	}
	if err := f.issuer.UpdateCatalogue([]byte(newer)); err != nil {
		t.Fatal(err)
	}
	if f.issuer.Catalogue().Version() != 2 {
		t.Fatal("update not in use")
	}
	a, err := f.issuer.Check(f.parkingCase(t, "141312"))
	if err != nil || a.AmountCents != 3000 {
		t.Fatalf("after the update: %d %v", a.AmountCents, err)
	}
}

func TestNewIssuerRefuses(t *testing.T) {
	cat := embedded(t)
	seq := NewMemorySequencer(0)
	if _, err := NewIssuer(cat, seq, Options{}); err == nil || !strings.Contains(err.Error(), "device prefix") {
		t.Fatalf("no prefix: %v", err)
	}
	if _, err := NewIssuer(nil, seq, Options{Prefix: "A"}); err == nil {
		t.Fatal("no catalogue accepted")
	}
	if _, err := NewIssuer(cat, nil, Options{Prefix: "A"}); err == nil {
		t.Fatal("no sequencer accepted")
	}
	is, err := NewIssuer(cat, seq, Options{Prefix: "A"})
	if err != nil || is.Location().String() != "Europe/Berlin" {
		t.Fatalf("defaults: %v", err)
	}
}

func TestVoid(t *testing.T) {
	f := newFixture(t)
	n, err := f.issuer.Issue(context.Background(), f.parkingCase(t, "141312"))
	if err != nil {
		t.Fatal(err)
	}
	for _, reason := range []string{"", "  \n "} {
		if err := Void(n, reason); err == nil || !strings.Contains(err.Error(), "reason is required") {
			t.Fatalf("void without reason: %v", err)
		}
	}
	if n.Voided {
		t.Fatal("voided without a reason")
	}
	if err := Void(n, "Fahrer kam zurück\x00"); err == nil || n.Voided {
		t.Fatalf("control character: %v", err)
	}
	if err := Void(n, "  Falsches Kennzeichen erfasst "); err != nil {
		t.Fatal(err)
	}
	if !n.Voided || n.VoidReason != "Falsches Kennzeichen erfasst" {
		t.Fatalf("voided %v reason %q", n.Voided, n.VoidReason)
	}
	// Still a valid record, delivered like any other.
	if _, err := casefile.Encode(n); err != nil {
		t.Fatal(err)
	}
	if err := Void(n, "again"); err == nil || !strings.Contains(err.Error(), "already voided") {
		t.Fatalf("void twice: %v", err)
	}
	if err := Void(nil, "x"); err == nil {
		t.Fatal("void of nothing")
	}
}
