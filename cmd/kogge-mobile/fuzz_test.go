package main

import (
	"testing"

	"github.com/kogge-fleet/kogge/mobile-agent/shift"
)

// The officers file is read by hand-written configuration: garbage is an
// error, never a panic, and what is accepted can log in.
func FuzzParseOfficers(f *testing.F) {
	h, err := shift.HashPIN("1234", shift.Params{Memory: 64, Time: 1, Threads: 1})
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(`[{"id":"4711","name":"Erika Muster","crew":"Mitte","pin_hash":"` + h + `"}]`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"id":"4711"}`))
	f.Add([]byte(`[{"id":"4711","pin_hash":"$argon2id$v=19$m=999999999,t=1,p=1$AA$AA"}]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		list, err := parseOfficers(b)
		if err != nil {
			return
		}
		if len(list) == 0 {
			t.Fatal("no officers and no error")
		}
		for _, o := range list {
			if o.ID == "" || o.PINHash == "" {
				t.Fatalf("accepted %+v", o)
			}
		}
	})
}

// Office keys come from flags, environment and files.
func FuzzOfficeKeys(f *testing.F) {
	f.Add("ordnungsamt=ordnungsamt-1:age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq")
	f.Add("x=y:z")
	f.Add("==::")
	f.Fuzz(func(t *testing.T, kv string) {
		c := Config{OfficeKeys: []string{kv}}
		keys, err := c.officeKeys()
		if err != nil {
			return
		}
		for office, r := range keys {
			if office == "" || r.Office != office || r.Validate() != nil {
				t.Fatalf("accepted %q as %+v", kv, r)
			}
		}
	})
}
