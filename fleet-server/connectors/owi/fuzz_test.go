package owi_test

import (
	"testing"

	"github.com/kogge-fleet/kogge/fleet-server/bridge/bridgetest"
	"github.com/kogge-fleet/kogge/fleet-server/connectors/owi"
	"github.com/kogge-fleet/kogge/protocol/casefile/casefiletest"
)

// FuzzParse feeds arbitrary documents to the procedure-side parser: no
// panics, and what it accepts validates. The seeds are small (one 64-byte
// photo), so that the fuzzer minimizes quickly.
func FuzzParse(f *testing.F) {
	doc := casefiletest.Notice()
	doc.Photos = doc.Photos[:1]
	r, err := owi.Build(bridgetest.CaseOf(doc, 64))
	if err != nil {
		f.Fatal(err)
	}
	for i, a := range []owi.Adapter{owi.XMLAdapter{}, owi.JSONAdapter{}} {
		b, err := a.Render(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(i), b)
	}
	f.Add(uint8(0), []byte(`<Case xmlns="urn:kogge:owi:case:1" version="1"/>`))
	f.Fuzz(func(t *testing.T, which uint8, b []byte) {
		format := []string{owi.FormatXML, owi.FormatJSON}[which%2]
		r, err := owi.Parse(format, b)
		if err != nil {
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("Parse accepted a record that does not validate: %v", err)
		}
	})
}
