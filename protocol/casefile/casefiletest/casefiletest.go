// Package casefiletest provides sample casefile documents for tests: full,
// valid documents with fixed blob ids and times, the same every call.
package casefiletest

import (
	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/protocol/casefile"
)

// T0 is 2026-11-29T08:00:00Z, the instant the samples are made at.
const T0 = casefile.Time(1795939200000)

// ID returns a fixed UUIDv7 distinguished by its last byte.
func ID(last byte) uuid.UUID {
	return uuid.UUID{0x01, 0x9a, 0xcd, 0x6e, 0x64, 0x00, 0x70, 0x00, 0x80, 0, 0, 0, 0, 0, 0, last}
}

func ptr(f float64) *float64 { return &f }

// Application returns a kiosk.application with two face attempts (the second
// selected), three finger attempts (right index retried), a signature and a
// paid fee. Its blobs are ID(0x21), ID(0x22) (faces), ID(0x31), ID(0x32),
// ID(0x33) (fingers) and ID(0x41) (signature).
func Application() *casefile.Application {
	checks := func(roll, yaw float64, passed bool) []casefile.Check {
		return []casefile.Check{
			{Name: "roll", Value: roll, Min: ptr(-8), Max: ptr(8), Mandatory: true, Passed: true},
			{Name: "yaw", Value: yaw, Min: ptr(-5), Max: ptr(5), Mandatory: true, Passed: passed},
			{Name: "mouth-closed", Value: 1, Mandatory: true, Passed: true},
			{Name: "eye-distance", Value: 312, Min: ptr(300), Mandatory: true, Passed: true},
			{Name: "background", Value: 0.91, Min: ptr(0.8), Passed: true},
		}
	}
	return &casefile.Application{
		V:         casefile.Version,
		Number:    "A-2026-000417",
		Service:   casefile.ServiceIDCard,
		Documents: []string{casefile.ServiceIDCard},
		EID: &casefile.EIDResult{
			Result: "ok", Major: "http://www.bsi.bund.de/ecard/api/1.1/resultmajor#ok",
			Session: "eid-7f3a9c", At: T0 + 30_000,
		},
		Face: []casefile.FaceAttempt{
			{N: 1, At: T0 + 60_000, Checks: checks(1.5, 7.2, false), PAD: &casefile.PAD{Score: 0.04, Threshold: 0.5, Passed: true}, Image: ID(0x21)},
			{N: 2, At: T0 + 75_000, Checks: checks(0.8, 1.1, true), PAD: &casefile.PAD{Score: 0.02, Threshold: 0.5, Passed: true}, Selected: true, Image: ID(0x22)},
		},
		Finger: []casefile.FingerAttempt{
			{N: 1, At: T0 + 90_000, Position: casefile.FingerRightIndex, Score: 22, Threshold: 30, Image: ID(0x31)},
			{N: 2, At: T0 + 95_000, Position: casefile.FingerRightIndex, Score: 61, Threshold: 30, Selected: true, Image: ID(0x32)},
			{N: 3, At: T0 + 101_000, Position: casefile.FingerLeftIndex, Score: 55, Threshold: 30, Selected: true, Image: ID(0x33)},
		},
		Signature: &casefile.Signature{
			Image: ID(0x41), Width: 640, Height: 200,
			Strokes: []casefile.Stroke{
				{Points: []casefile.Point{{X: 10, Y: 100, T: 0, P: 300}, {X: 40, Y: 80, T: 16, P: 410}, {X: 90, Y: 120, T: 33, P: 380}}},
				{Points: []casefile.Point{{X: 120, Y: 90, T: 0}, {X: 160, Y: 95, T: 20}}},
			},
		},
		Fee:       &casefile.Fee{AmountCents: 600, Currency: "EUR", Result: 0, Receipt: "000123", Terminal: "52500013", At: T0 + 120_000},
		Consent:   []casefile.Consent{{Name: "processing", Given: true, At: T0 + 5_000}, {Name: "fingerprints", Given: true, At: T0 + 85_000}},
		CreatedAt: T0 + 125_000,
		Terminal:  "Bürgeramt Mitte, Terminal 1",
		Language:  "de",
	}
}

// Notice returns an enforcement.notice for a parking offence with two
// photos, ID(0x51) and ID(0x52).
func Notice() *casefile.Notice {
	return &casefile.Notice{
		V:      casefile.Version,
		Number: "N-HB-2026-0815",
		Plate:  casefile.Plate{Text: "HBAB1234E", Nationality: "D", Display: "HB-AB 1234 E"},
		Make:   "VW", Colour: "blau",
		Location: casefile.Place{
			Street: "Am Wall", HouseNumber: "175", PostalCode: "28195", City: "Bremen",
			Position: &casefile.Position{Lat: 53.0758, Lon: 8.8072, AccuracyM: 4.5},
		},
		ObservedFrom:  T0,
		ObservedTo:    T0 + 3_900_000,
		Offences:      []string{"141314"},
		OffenceTexts:  []string{"Sie parkten länger als 1 Stunde im absoluten Haltverbot (Zeichen 283)."},
		Circumstances: []string{"over-one-hour"},
		Valves:        []casefile.Valve{{Wheel: "VL", Hour: 5}, {Wheel: "HR", Hour: 11}},
		Photos:        []casefile.Photo{{Image: ID(0x51), At: T0 + 10_000}, {Image: ID(0x52), At: T0 + 3_890_000, Caption: "Kennzeichen"}},
		Officer:       "PK-4711",
		AmountCents:   4000,
		Sanction:      casefile.SanctionWarning,
		PaymentRef:    "VG-2026-0815-7",
		CreatedAt:     T0 + 3_910_000,
	}
}

// Report returns a roadwork.report of a citizen with a contact and two
// photos, ID(0x61) (public) and ID(0x62).
func Report() *casefile.Report {
	return &casefile.Report{
		V:        casefile.Version,
		Category: "pothole",
		Severity: casefile.SeverityHigh,
		Location: casefile.Place{
			Street: "Osterdeich", HouseNumber: "12", City: "Bremen",
			Position: &casefile.Position{Lat: 53.0701, Lon: 8.8265, AccuracyM: 6},
		},
		Note:      "Tiefes Schlagloch auf dem Radweg, etwa 40 cm breit.",
		Photos:    []casefile.Photo{{Image: ID(0x61), At: T0, Public: true}, {Image: ID(0x62), At: T0 + 2_000}},
		Reporter:  casefile.ReporterCitizen,
		Contact:   &casefile.Contact{FirstName: "Erika", LastName: "Mustermann", Email: "erika@example.org"},
		CreatedAt: T0 + 60_000,
	}
}

// Sample returns the sample document of kind, or nil for an unknown kind.
func Sample(kind string) casefile.Document {
	switch kind {
	case casefile.KindApplication:
		return Application()
	case casefile.KindNotice:
		return Notice()
	case casefile.KindReport:
		return Report()
	}
	return nil
}

// NewBlobIDs gives every blob d names a fresh UUIDv7, as a device does for
// each capture (a device's blob ids are unique), and returns d.
func NewBlobIDs(d casefile.Document) casefile.Document {
	fresh := func(id *uuid.UUID) {
		if *id != uuid.Nil {
			*id = uuid.Must(uuid.NewV7())
		}
	}
	photos := func(ps []casefile.Photo) {
		for i := range ps {
			fresh(&ps[i].Image)
		}
	}
	switch d := d.(type) {
	case *casefile.Application:
		for i := range d.Face {
			fresh(&d.Face[i].Image)
		}
		for i := range d.Finger {
			fresh(&d.Finger[i].Image)
		}
		if d.Signature != nil {
			fresh(&d.Signature.Image)
		}
	case *casefile.Notice:
		photos(d.Photos)
	case *casefile.Report:
		photos(d.Photos)
	}
	return d
}
