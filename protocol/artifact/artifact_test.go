package artifact

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func testKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func testManifest(t testing.TB, binary []byte) Manifest {
	t.Helper()
	m, err := Describe(Manifest{Name: "kogge-kiosk", Version: "1.2.0", Apps: []string{"kiosk"}, Platform: "linux/amd64",
		MinVersion: "1.0.0", Created: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}, bytes.NewReader(binary))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestSignVerify(t *testing.T) {
	key := testKey(t)
	bin := []byte("the binary")
	m := testManifest(t, bin)
	b, err := Sign(m, key)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Verify(b, NewKeyring(key.Public().(ed25519.PublicKey)))
	if err != nil {
		t.Fatal(err)
	}
	if s.Manifest.Version != "1.2.0" || s.Manifest.Size != int64(len(bin)) || !s.Manifest.Created.Equal(m.Created) {
		t.Fatalf("manifest after the round trip: %+v", s.Manifest)
	}
	if err := s.Manifest.CheckBinary(bytes.NewReader(bin)); err != nil {
		t.Fatal(err)
	}
	// Encode gives back what verifies.
	again, err := s.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(again, NewKeyring(key.Public().(ed25519.PublicKey))); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyRefuses(t *testing.T) {
	key, other := testKey(t), testKey(t)
	trusted := NewKeyring(key.Public().(ed25519.PublicKey))
	m := testManifest(t, []byte("bin"))
	good, err := Sign(m, key)
	if err != nil {
		t.Fatal(err)
	}
	byOther, err := Sign(m, other)
	if err != nil {
		t.Fatal(err)
	}
	var w signedJSON
	if err := json.Unmarshal(good, &w); err != nil {
		t.Fatal(err)
	}
	// A changed manifest under the original signature.
	tamperedManifest := func() []byte {
		v := w
		v.Manifest = bytes.Replace(v.Manifest, []byte(`"1.2.0"`), []byte(`"9.2.0"`), 1)
		b, _ := json.Marshal(v)
		return b
	}()
	unsigned := func() []byte {
		v := w
		v.Signatures = nil
		b, _ := json.Marshal(v)
		return b
	}()
	flipped := func() []byte {
		v := signedJSON{Manifest: w.Manifest, Signatures: []Signature{{Key: w.Signatures[0].Key, Sig: bytes.Clone(w.Signatures[0].Sig)}}}
		v.Signatures[0].Sig[3] ^= 1
		b, _ := json.Marshal(v)
		return b
	}()
	bare, _ := json.Marshal(m)
	for _, c := range []struct {
		name string
		b    []byte
		want error
	}{
		{"tampered manifest", tamperedManifest, ErrSignature},
		{"flipped signature bit", flipped, ErrSignature},
		{"unsigned", unsigned, ErrUnsigned},
		{"bare manifest", bare, ErrUnsigned},
		{"unknown key", byOther, ErrUnknownKey},
		{"garbage", []byte("MZ\x90\x00"), ErrMalformed},
		{"empty", nil, ErrMalformed},
		{"unknown field", []byte(`{"manifest":"e30=","signatures":[],"x":1}`), ErrMalformed},
		{"two values", append(append([]byte{}, good...), good...), ErrMalformed},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Verify(c.b, trusted)
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
	// Two signatures: one by an unknown key, one by the trusted key.
	s, err := Decode(byOther)
	if err != nil {
		t.Fatal(err)
	}
	s.AddSignature(key)
	both, err := s.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(both, trusted); err != nil {
		t.Fatalf("a trusted signature beside an unknown one: %v", err)
	}
}

func TestCheckTarget(t *testing.T) {
	m := testManifest(t, []byte("bin")) // 1.2.0 for kiosk on linux/amd64, min 1.0.0
	for _, c := range []struct {
		name string
		t    Target
		want error
	}{
		{"upgrade", Target{App: "kiosk", Platform: "linux/amd64", Running: "1.1.9"}, nil},
		{"upgrade from a v-version", Target{App: "kiosk", Platform: "linux/amd64", Running: "v1.1.0"}, nil},
		{"development build", Target{App: "kiosk", Platform: "linux/amd64", Running: "devel"}, nil},
		{"wrong platform", Target{App: "kiosk", Platform: "linux/arm64", Running: "1.1.0"}, ErrPlatform},
		{"wrong app", Target{App: "mobile-agent", Platform: "linux/amd64", Running: "1.1.0"}, ErrApp},
		{"downgrade", Target{App: "kiosk", Platform: "linux/amd64", Running: "1.3.0"}, ErrDowngrade},
		{"downgrade allowed for another version", Target{App: "kiosk", Platform: "linux/amd64", Running: "1.3.0", AllowDowngrade: "1.1.0"}, ErrDowngrade},
		{"allowed rollback", Target{App: "kiosk", Platform: "linux/amd64", Running: "1.3.0", AllowDowngrade: "1.2.0"}, nil},
		{"same version", Target{App: "kiosk", Platform: "linux/amd64", Running: "1.2.0"}, ErrCurrent},
		{"release over its pre-release", Target{App: "kiosk", Platform: "linux/amd64", Running: "1.2.0-rc.2"}, nil},
		{"too old to take it", Target{App: "kiosk", Platform: "linux/amd64", Running: "0.9.0"}, ErrMinVersion},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := m.Check(c.t)
			if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
}

func TestCheckBinary(t *testing.T) {
	m := testManifest(t, []byte("0123456789"))
	for _, c := range []struct {
		name string
		bin  string
	}{{"changed byte", "0123456788"}, {"short", "012345678"}, {"long", "0123456789X"}, {"empty", ""}} {
		if err := m.CheckBinary(strings.NewReader(c.bin)); !errors.Is(err, ErrMismatch) {
			t.Errorf("%s: got %v, want ErrMismatch", c.name, err)
		}
	}
}

func TestManifestValidate(t *testing.T) {
	good := testManifest(t, []byte("x"))
	for _, c := range []struct {
		name string
		edit func(*Manifest)
	}{
		{"format", func(m *Manifest) { m.Format = 2 }},
		{"name", func(m *Manifest) { m.Name = "Kogge Kiosk" }},
		{"version", func(m *Manifest) { m.Version = "one" }},
		{"no apps", func(m *Manifest) { m.Apps = nil }},
		{"app", func(m *Manifest) { m.Apps = []string{"Kiosk"} }},
		{"platform", func(m *Manifest) { m.Platform = "linux" }},
		{"platform with three parts", func(m *Manifest) { m.Platform = "linux/arm/v7" }},
		{"size", func(m *Manifest) { m.Size = 0 }},
		{"sha256", func(m *Manifest) { m.SHA256 = strings.ToUpper(m.SHA256) }},
		{"min version", func(m *Manifest) { m.MinVersion = "x" }},
		{"created", func(m *Manifest) { m.Created = time.Time{} }},
	} {
		m := good
		m.Apps = append([]string(nil), good.Apps...)
		c.edit(&m)
		if err := m.Validate(); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %v, want ErrMalformed", c.name, err)
		}
	}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestVersions(t *testing.T) {
	ordered := []string{"0.9.0", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2",
		"1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1", "1.2", "v1.10.0", "2"}
	for i := range ordered {
		for j := range ordered {
			c, err := CompareVersions(ordered[i], ordered[j])
			if err != nil {
				t.Fatal(err)
			}
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if c != want {
				t.Errorf("compare %s %s = %d, want %d", ordered[i], ordered[j], c, want)
			}
		}
	}
	if c, _ := CompareVersions("1.2.0+build.5", "1.2.0"); c != 0 {
		t.Errorf("build metadata orders: %d", c)
	}
	for _, bad := range []string{"", "v", "1.2.3.4", "01.2", "1..2", "1.2-", "1.2-a..b", "1.x", "1.2-ä", "-1"} {
		if _, err := ParseVersion(bad); err == nil {
			t.Errorf("ParseVersion(%q) accepted", bad)
		}
	}
}

func TestKeysPEM(t *testing.T) {
	key := testKey(t)
	privPEM, err := MarshalPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParsePrivateKey(privPEM)
	if err != nil || !back.Equal(key) {
		t.Fatalf("private key round trip: %v", err)
	}
	other := testKey(t)
	p1, _ := MarshalPublicKey(key.Public().(ed25519.PublicKey))
	p2, _ := MarshalPublicKey(other.Public().(ed25519.PublicKey))
	keys, err := ParsePublicKeys(append(p1, p2...))
	if err != nil || len(keys) != 2 || !keys[0].Equal(key.Public()) || !keys[1].Equal(other.Public()) {
		t.Fatalf("public keys: %d, %v", len(keys), err)
	}
	if _, err := ParsePublicKeys(privPEM); err == nil {
		t.Error("a private key read as a public key")
	}
	if _, err := ParsePrivateKey(p1); err == nil {
		t.Error("a public key read as a private key")
	}
	if _, err := ParsePublicKeys([]byte("nothing")); err == nil {
		t.Error("no PEM read as a key")
	}
}

func TestDecodeReport(t *testing.T) {
	good := `{"rollout":"0190f2c4-8d7a-7000-8000-000000000001","state":"rolled-back","version":"1.2.0","running":"1.1.0","reason":"self-test failed","at":"2026-12-01T10:00:00Z","seq":3}`
	r, err := DecodeReport([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if r.State != ReportRolledBack || r.Running != "1.1.0" || r.Seq != 3 {
		t.Fatalf("report: %+v", r)
	}
	for _, bad := range []string{
		`{"rollout":"00000000-0000-0000-0000-000000000000","state":"succeeded","version":"1"}`,
		`{"rollout":"0190f2c4-8d7a-7000-8000-000000000001","state":"exploded","version":"1"}`,
		`{"rollout":"0190f2c4-8d7a-7000-8000-000000000001","state":"succeeded","version":""}`,
		`{"rollout":"0190f2c4-8d7a-7000-8000-000000000001","state":"downloading","version":"1","progress":-1}`,
		`{"rollout":"0190f2c4-8d7a-7000-8000-000000000001","state":"succeeded","version":"1","extra":true}`,
		good + good,
		`[`,
	} {
		if _, err := DecodeReport([]byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %v, want ErrMalformed", bad, err)
		}
	}
}
