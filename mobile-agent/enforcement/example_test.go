package enforcement_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kogge-fleet/kogge/mobile-agent/enforcement"
	"github.com/kogge-fleet/kogge/protocol/casefile"
)

// A warden notes a car parked for over an hour in a no-stopping zone:
// the first check is too early, the second issues the notice.
func Example() {
	loc, _ := time.LoadLocation("Europe/Berlin")
	now := time.Date(2025, 1, 6, 8, 45, 0, 0, loc)
	cat, err := enforcement.EmbeddedCatalogue()
	if err != nil {
		panic(err)
	}
	is, err := enforcement.NewIssuer(cat, enforcement.NewMemorySequencer(0), enforcement.Options{
		Prefix: "HB42", Location: loc, Now: func() time.Time { return now },
	})
	if err != nil {
		panic(err)
	}

	hits := cat.Search("haltverbot 283 stunde", now, 1)
	fmt.Println(hits[0].TBNR, hits[0].Display(), hits[0].Amount())

	plate, err := enforcement.ParsePlate("D", "hb-ab 123e")
	if err != nil {
		panic(err)
	}
	c := &enforcement.Case{
		Plate: plate, Make: "VW", Colour: "grau",
		Location:    casefile.Place{Street: "Am Markt", HouseNumber: "21", City: "Bremen"},
		Observation: enforcement.Observation{Start: time.Date(2025, 1, 6, 8, 15, 0, 0, loc)},
		Offences:    []enforcement.Offence{{TBNR: hits[0].TBNR}},
		Officer:     "4711",
	}
	_, err = is.Check(c)
	var wait *enforcement.ObservationError
	if errors.As(err, &wait) {
		fmt.Println("wait", enforcement.FormatDuration(wait.Remaining))
	}

	now = now.Add(wait.Remaining)
	n, err := is.Issue(context.Background(), c)
	if err != nil {
		panic(err)
	}
	fmt.Println(n.Number, plate, n.Sanction, enforcement.FormatEuro(n.AmountCents), n.PaymentRef)
	// Output:
	// 141314 Sie parkten länger als 1 Stunde im absoluten Haltverbot (Zeichen 283). 40,00 €
	// wait 30min
	// HB42-0000001-6 HB-AB 123 E warning 40,00 € RF98HB4200000016
}
