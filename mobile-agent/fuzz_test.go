package mobileagent_test

import (
	"encoding/base64"
	"encoding/json"
	"testing"
	"time"

	mobileagent "github.com/kogge-fleet/kogge/mobile-agent"
	"github.com/kogge-fleet/kogge/mobile-agent/enforcement"
)

// The twin's catalogue is outside input: garbage is refused with an
// error, a valid file (as text or base64) is read.
func FuzzParseTwinCatalogue(f *testing.F) {
	cat, err := enforcement.EmbeddedCatalogue()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(cat.Bytes()))
	f.Add(base64.StdEncoding.EncodeToString(cat.Bytes()))
	f.Add("# format: kogge-catalogue/1\n# version: 2\ntbnr,text,amount_eur,kind,valid_from\n112454,x,55,Verwarnung,2021-11-09\n")
	f.Add("not base64 !")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := mobileagent.ParseTwinCatalogue(s)
		if err != nil {
			if c != nil {
				t.Fatal("a catalogue and an error")
			}
			return
		}
		if c.Version() < 1 {
			t.Fatalf("accepted version %d", c.Version())
		}
		if _, err := enforcement.ParseCatalogue(c.Bytes()); err != nil {
			t.Fatalf("an accepted catalogue does not read back: %v", err)
		}
	})
}

// The twin's officers are outside input too.
func FuzzParseTwinOfficers(f *testing.F) {
	f.Add(`[{"id":"4711","name":"Erika","pin_hash":"$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g"}]`)
	f.Add(`[]`)
	f.Add(`{"id":1}`)
	f.Add(`[{"id":"","pin_hash":""}]`)
	f.Fuzz(func(t *testing.T, raw string) {
		var v any
		if json.Unmarshal([]byte(raw), &v) != nil {
			return
		}
		os, err := mobileagent.ParseTwinOfficers(v)
		if err == nil && len(os) == 0 {
			t.Fatal("no officers and no error")
		}
		for _, o := range os {
			if o.ID == "" || o.PINHash == "" {
				t.Fatalf("accepted an officer without id or hash: %+v", o)
			}
		}
	})
}

// Script times come from script files.
func FuzzParseScriptTime(f *testing.F) {
	for _, s := range []string{"now", "-65m", "14:05", "14:05:30", "2026-03-02T08:00:00Z", "-", "25:99", "-9999999999h"} {
		f.Add(s)
	}
	loc := time.UTC
	now := time.Date(2026, 3, 2, 10, 0, 0, 0, loc)
	f.Fuzz(func(t *testing.T, s string) {
		got, err := mobileagent.ParseScriptTime(s, now, loc)
		if err == nil && got.IsZero() && s != "0001-01-01T00:00:00Z" {
			t.Fatalf("%q: the zero time without an error", s)
		}
	})
}
