package artifact

import (
	"crypto/ed25519"
	"errors"
	"testing"
	"time"
)

// FuzzDecode feeds the signed-manifest decoder anything: it must return a
// manifest that validates or an error of this package, never panic.
func FuzzDecode(f *testing.F) {
	key := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	m := Manifest{Format: Format, Name: "kogge-kiosk", Version: "1.0.0", Apps: []string{"kiosk"}, Platform: "linux/amd64",
		Size: 3, SHA256: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", Created: time.Unix(1, 0).UTC()}
	good, err := Sign(m, key)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{"manifest":"e30=","signatures":[]}`))
	f.Add([]byte(`{"manifest":null}`))
	f.Add([]byte(`{"format":1,"sha256":"00"}`))
	f.Add([]byte(`[]`))
	f.Add([]byte{})
	trusted := NewKeyring(key.Public().(ed25519.PublicKey))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnsigned) {
				t.Fatalf("error outside the contract: %v", err)
			}
			return
		}
		if err := s.Manifest.Validate(); err != nil {
			t.Fatalf("decoded an invalid manifest: %v", err)
		}
		if err := s.Verify(trusted); err != nil && !errors.Is(err, ErrSignature) && !errors.Is(err, ErrUnknownKey) {
			t.Fatalf("verify error outside the contract: %v", err)
		}
	})
}

// FuzzParseVersion checks that version parsing never panics and that
// Compare is reflexive on what parses.
func FuzzParseVersion(f *testing.F) {
	for _, s := range []string{"1.2.3", "v1.0.0-rc.1+b", "1", "1.2-a.b.3", "", "01", "1.2.3.4"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseVersion(s)
		if err != nil {
			return
		}
		if v.Compare(v) != 0 {
			t.Fatalf("%q is not equal to itself", s)
		}
	})
}

// FuzzDecodeReport checks that the report decoder never panics and that
// what it accepts validates.
func FuzzDecodeReport(f *testing.F) {
	f.Add([]byte(`{"rollout":"0190f2c4-8d7a-7000-8000-000000000001","state":"succeeded","version":"1.2.0","running":"1.2.0","at":"2026-12-01T10:00:00Z","seq":3}`))
	f.Add([]byte(`{"rollout":"0190f2c4-8d7a-7000-8000-000000000001","state":"downloading","version":"1","progress":101}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeReport(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error outside the contract: %v", err)
			}
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("decoded an invalid report: %v", err)
		}
	})
}
