package idpass_test

import (
	"testing"

	"github.com/kogge-fleet/kogge/fleet-server/bridge/bridgetest"
	"github.com/kogge-fleet/kogge/fleet-server/connectors/idpass"
	"github.com/kogge-fleet/kogge/protocol/casefile/casefiletest"
)

// FuzzParse feeds arbitrary documents to the procedure-side parser: no
// panics, and what it accepts validates. The seeds are small documents
// (one attempt each, 64-byte images), so that the fuzzer minimizes quickly.
func FuzzParse(f *testing.F) {
	doc := casefiletest.Application()
	doc.Face = doc.Face[1:]
	doc.Face[0].N, doc.Face[0].Checks = 1, doc.Face[0].Checks[:1]
	doc.Finger = doc.Finger[2:]
	doc.Finger[0].N = 1
	doc.Signature.Strokes = doc.Signature.Strokes[1:]
	doc.Consent = nil
	g, err := idpass.Build(bridgetest.CaseOf(doc, 64), false)
	if err != nil {
		f.Fatal(err)
	}
	for i, format := range []string{idpass.FormatXML, idpass.FormatJSON} {
		b, err := g.Marshal(format)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(i), b)
	}
	f.Add(uint8(0), []byte(`<GidLog xmlns="urn:kogge:idpass:gidlog:1" version="1"/>`))
	f.Add(uint8(1), []byte(`{"version":1}`))
	f.Fuzz(func(t *testing.T, which uint8, b []byte) {
		format := []string{idpass.FormatXML, idpass.FormatJSON}[which%2]
		g, err := idpass.Parse(format, b)
		if err != nil {
			return
		}
		if err := g.Validate(); err != nil {
			t.Fatalf("Parse accepted a document that does not validate: %v", err)
		}
	})
}
