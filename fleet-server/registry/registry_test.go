package registry

import (
	"context"
	"crypto/elliptic"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kogge-fleet/kogge/fleet-server/store"
	"github.com/kogge-fleet/kogge/fleet-server/store/pgtest"
)

func TestCAPersistsAndServerCertificate(t *testing.T) {
	pgtest.Stores(t, func(t *testing.T, db *store.DB) {
		var logs logBuffer
		r1, _ := newRegistry(t, db, Options{
			ServerNames: []string{"fleet.example.org", "10.1.2.3", "localhost"},
			Logger:      slog.New(slog.NewTextHandler(&logs, nil)),
		})
		r2, _ := newRegistry(t, db, Options{})
		if r1.CAFingerprint() != r2.CAFingerprint() {
			t.Error("a second start made a new CA")
		}
		if !strings.Contains(logs.String(), r1.CAFingerprint()) {
			t.Error("creating the CA was not logged with its fingerprint")
		}
		if strings.Contains(logs.String(), "PRIVATE KEY") {
			t.Error("the CA key is in the log")
		}
		ca := r1.CA()
		if !ca.IsCA || ca.PublicKeyAlgorithm != x509.ECDSA || len(r1.CAFingerprint()) != 64 {
			t.Errorf("CA: IsCA=%v alg=%v fingerprint %q", ca.IsCA, ca.PublicKeyAlgorithm, r1.CAFingerprint())
		}
		cert, err := r1.ServerCertificate(nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(cert.Certificate) != 2 {
			t.Fatalf("server chain has %d certificates, want leaf and CA", len(cert.Certificate))
		}
		pool := x509.NewCertPool()
		pool.AddCert(ca)
		for _, host := range []string{"localhost", "127.0.0.1", "::1", "fleet.example.org", "10.1.2.3"} {
			if _, err := cert.Leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: host, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
				t.Errorf("server certificate not valid for %s: %v", host, err)
			}
		}
		if _, err := cert.Leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "evil.example.org"}); err == nil {
			t.Error("server certificate valid for a name not configured")
		}
	})
}

func TestServerCertificateRenewed(t *testing.T) {
	pgtest.Stores(t, func(t *testing.T, db *store.DB) {
		r, c := newRegistry(t, db, Options{ServerCertLifetime: 90 * time.Hour})
		first, _ := r.ServerCertificate(nil)
		c.advance(50 * time.Hour)
		if same, _ := r.ServerCertificate(nil); same != first {
			t.Error("server certificate replaced with more than a third of its life left")
		}
		c.advance(11 * time.Hour)
		if next, _ := r.ServerCertificate(nil); next == first || !next.Leaf.NotAfter.After(first.Leaf.NotAfter) {
			t.Error("server certificate not replaced with less than a third of its life left")
		}
	})
}

func TestOptionsValidate(t *testing.T) {
	for _, tt := range []struct {
		name string
		o    Options
		ok   bool
	}{
		{"defaults", Options{}, true},
		{"short device certificates", Options{CertLifetime: time.Minute}, false},
		{"code lifetime too long", Options{CodeLifetime: 60 * 24 * time.Hour}, false},
		{"bad server name", Options{ServerNames: []string{"not a host"}}, false},
		{"good server names", Options{ServerNames: []string{"fleet.example.org", "::2"}}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.o.setDefaults()
			if err := tt.o.Validate(); (err == nil) != tt.ok {
				t.Errorf("Validate() = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestSlug(t *testing.T) {
	for name, want := range map[string]string{
		"Bürgeramt Mitte kiosks":   "buergeramt-mitte-kiosks",
		"Ordnungsdienst handhelds": "ordnungsdienst-handhelds",
		"  Straße/Tiefbau (Nord) ": "strasse-tiefbau-nord",
		"ÄÖÜ":                      "aeoeue",
		"!!!":                      "",
		strings.Repeat("ab ", 30):  "ab-ab-ab-ab-ab-ab-ab-ab-ab-ab-ab-ab-ab-a",
	} {
		got := slug(name)
		if got != want {
			t.Errorf("slug(%q) = %q, want %q", name, got, want)
		}
		if got != "" && validGroupID(got) != nil {
			t.Errorf("slug(%q) = %q is no valid group id", name, got)
		}
	}
}

func TestGroups(t *testing.T) {
	pgtest.Stores(t, func(t *testing.T, db *store.DB) {
		r, _ := newRegistry(t, db, Options{})
		ctx := context.Background()
		g, err := r.CreateGroup(ctx, "", "Bürgeramt Mitte kiosks")
		if err != nil || g.ID != "buergeramt-mitte-kiosks" {
			t.Fatalf("CreateGroup = %+v, %v", g, err)
		}
		for _, tt := range []struct{ id, name string }{
			{"", "Bürgeramt Mitte kiosks"}, {"od", "Bürgeramt Mitte kiosks"}, {"buergeramt-mitte-kiosks", "x"},
		} {
			if _, err := r.CreateGroup(ctx, tt.id, tt.name); !errors.Is(err, ErrExists) {
				t.Errorf("CreateGroup(%q, %q) = %v, want ErrExists", tt.id, tt.name, err)
			}
		}
		for _, tt := range []struct{ id, name string }{
			{"Bad_ID", "x"}, {"-x", "x"}, {"", "!!!"}, {"ok", ""}, {"ok", "line\nbreak"},
		} {
			if _, err := r.CreateGroup(ctx, tt.id, tt.name); !errors.Is(err, ErrInvalid) {
				t.Errorf("CreateGroup(%q, %q) = %v, want ErrInvalid", tt.id, tt.name, err)
			}
		}
		od, err := r.CreateGroup(ctx, "od", "Ordnungsdienst handhelds")
		if err != nil {
			t.Fatal(err)
		}
		if g, err := r.RenameGroup(ctx, "od", "Ordnungsdienst Nord"); err != nil || g.Name != "Ordnungsdienst Nord" || !g.CreatedAt.Equal(od.CreatedAt) {
			t.Errorf("RenameGroup = %+v, %v", g, err)
		}
		if _, err := r.RenameGroup(ctx, "nope", "x"); !errors.Is(err, ErrNotFound) {
			t.Errorf("rename unknown: %v", err)
		}
		if _, err := r.RenameGroup(ctx, "od", "Bürgeramt Mitte kiosks"); !errors.Is(err, ErrExists) {
			t.Errorf("rename to a taken name: %v", err)
		}
		code := groupAndCode(t, r, "od")
		_, csr := csrPEM(t, elliptic.P256())
		if _, err := r.Enroll(ctx, EnrollRequest{Code: code, CSR: csr}); err != nil {
			t.Fatal(err)
		}
		if err := r.DeleteGroup(ctx, "od"); !errors.Is(err, ErrGroupNotEmpty) {
			t.Errorf("delete group with a device: %v", err)
		}
		if err := r.DeleteGroup(ctx, "buergeramt-mitte-kiosks"); err != nil {
			t.Fatal(err)
		}
		gs, err := r.Groups(ctx)
		if err != nil || len(gs) != 1 || gs[0].ID != "od" || gs[0].Devices != 1 {
			t.Errorf("Groups = %+v, %v", gs, err)
		}
		if _, err := r.Group(ctx, "buergeramt-mitte-kiosks"); !errors.Is(err, ErrNotFound) {
			t.Errorf("deleted group: %v", err)
		}
	})
}

func TestCodeFormat(t *testing.T) {
	shape := regexp.MustCompile(`^[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){3}$`)
	seen := map[string]bool{}
	for range 200 {
		c, err := randomCode()
		if err != nil {
			t.Fatal(err)
		}
		f := formatCode(c)
		if !shape.MatchString(f) {
			t.Fatalf("code %q has the wrong shape", f)
		}
		if seen[f] {
			t.Fatalf("code %q made twice", f)
		}
		seen[f] = true
		if n, err := normalizeCode(strings.ToLower(f)); err != nil || n != c {
			t.Fatalf("normalizeCode(%q) = %q, %v", strings.ToLower(f), n, err)
		}
	}
	for in, want := range map[string]string{
		"7kq2 m9xd 4htn b3we":  "7KQ2M9XD4HTNB3WE",
		"OOOO-IIII-LLLL-0000":  "0000111111110000",
		"7KQ2-M9XD-4HTN-B3W":   "",
		"7KQ2-M9XD-4HTN-B3WEE": "",
		"7KQ2-M9XD-4HTN-B3WU":  "",
		"7KQ2-M9XD-4HTN-B3Wü":  "",
		"":                     "",
	} {
		got, err := normalizeCode(in)
		if want == "" {
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("normalizeCode(%q) = %q, %v; want ErrInvalid", in, got, err)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("normalizeCode(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestCodes(t *testing.T) {
	pgtest.Stores(t, func(t *testing.T, db *store.DB) {
		var logs logBuffer
		r, clk := newRegistry(t, db, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		ctx := context.Background()
		if _, err := r.CreateGroup(ctx, "mitte", "Mitte"); err != nil {
			t.Fatal(err)
		}
		if _, err := r.CreateCode(ctx, "nope", CodeOptions{}); !errors.Is(err, ErrNotFound) {
			t.Errorf("code for unknown group: %v", err)
		}
		if _, err := r.CreateCode(ctx, "mitte", CodeOptions{TTL: 31 * 24 * time.Hour}); !errors.Is(err, ErrInvalid) {
			t.Errorf("code with too long a lifetime: %v", err)
		}
		day, err := r.CreateCode(ctx, "mitte", CodeOptions{Note: "kiosk 1"})
		if err != nil {
			t.Fatal(err)
		}
		if got := day.ExpiresAt.Sub(day.CreatedAt); got != 24*time.Hour {
			t.Errorf("default lifetime %v, want 24h", got)
		}
		if day.CAFingerprint != r.CAFingerprint() || day.State != "active" {
			t.Errorf("new code: %+v", day)
		}
		hour, _ := r.CreateCode(ctx, "mitte", CodeOptions{TTL: time.Hour})
		revoked, _ := r.CreateCode(ctx, "mitte", CodeOptions{})
		used, _ := r.CreateCode(ctx, "mitte", CodeOptions{})
		if err := r.RevokeCode(ctx, revoked.ID); err != nil {
			t.Fatal(err)
		}
		_, csr := csrPEM(t, elliptic.P256())
		if _, err := r.Enroll(ctx, EnrollRequest{Code: used.Secret, CSR: csr}); err != nil {
			t.Fatal(err)
		}
		if err := r.RevokeCode(ctx, used.ID); !errors.Is(err, ErrCodeUsed) {
			t.Errorf("revoke used code: %v", err)
		}
		clk.advance(2 * time.Hour)

		// Expired, revoked and used codes are refused with their reason.
		for _, tt := range []struct {
			code string
			want error
		}{
			{hour.Secret, ErrCodeExpired},
			{revoked.Secret, ErrCodeRevoked},
			{used.Secret, ErrCodeUsed},
			{"0000-0000-0000-0000", ErrCodeUnknown},
			{"0000-0000", ErrInvalid},
		} {
			_, csr := csrPEM(t, elliptic.P256())
			if _, err := r.Enroll(ctx, EnrollRequest{Code: tt.code, CSR: csr}); !errors.Is(err, tt.want) {
				t.Errorf("Enroll with %v code: %v", tt.want, err)
			}
		}

		cs, err := r.Codes(ctx, "mitte")
		if err != nil {
			t.Fatal(err)
		}
		states := map[string]string{}
		for _, c := range cs {
			states[c.ID] = c.State
		}
		want := map[string]string{day.ID: "active", hour.ID: "expired", revoked.ID: "revoked", used.ID: "used"}
		if fmt.Sprint(states) != fmt.Sprint(want) {
			t.Errorf("code states %v, want %v", states, want)
		}
		// The codes themselves appear nowhere but in CreateCode's answer.
		for _, secret := range []string{day.Secret, hour.Secret, used.Secret} {
			if strings.Contains(fmt.Sprintf("%+v", cs), secret) || strings.Contains(logs.String(), secret) {
				t.Errorf("code %s is listed or logged", secret)
			}
		}
	})
}

func TestConcurrentEnrollmentOneCode(t *testing.T) {
	pgtest.Stores(t, func(t *testing.T, db *store.DB) {
		r, _ := newRegistry(t, db, Options{})
		code := groupAndCode(t, r, "od")
		const n = 8
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			_, csr := csrPEM(t, elliptic.P256())
			wg.Go(func() {
				<-start
				_, errs[i] = r.Enroll(context.Background(), EnrollRequest{Code: code, CSR: csr})
			})
		}
		close(start)
		wg.Wait()
		won := 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, ErrCodeUsed):
				t.Errorf("losing enrollment: %v, want ErrCodeUsed", err)
			}
		}
		if won != 1 {
			t.Errorf("%d of %d concurrent enrollments with one code won, want 1", won, n)
		}
		devs, err := r.Devices(context.Background(), DeviceFilter{})
		if err != nil || len(devs) != 1 {
			t.Errorf("Devices = %d, %v; want 1", len(devs), err)
		}
	})
}

func TestEnrollValidation(t *testing.T) {
	pgtest.Stores(t, func(t *testing.T, db *store.DB) {
		r, _ := newRegistry(t, db, Options{})
		ctx := context.Background()
		code := groupAndCode(t, r, "mitte")
		_, good := csrPEM(t, elliptic.P256())
		_, p384 := csrPEM(t, elliptic.P384())
		// A CSR whose signature does not match: flip a byte of the
		// signature at the end of the DER.
		tampered := tamperCSR(t, good)
		tests := []struct {
			name string
			req  EnrollRequest
		}{
			{"not PEM", EnrollRequest{Code: code, CSR: []byte("hello")}},
			{"P-384 key", EnrollRequest{Code: code, CSR: p384}},
			{"bad signature", EnrollRequest{Code: code, CSR: tampered}},
			{"device id with slash", EnrollRequest{Code: code, CSR: good, DeviceID: "a/b"}},
			{"device id with wildcard", EnrollRequest{Code: code, CSR: good, DeviceID: "a+"}},
			{"device id of a bridge", EnrollRequest{Code: code, CSR: good, DeviceID: "bridge.buergeramt"}},
			{"long model", EnrollRequest{Code: code, CSR: good, Inventory: Inventory{Model: strings.Repeat("x", 201)}}},
			{"control character", EnrollRequest{Code: code, CSR: good, Inventory: Inventory{Location: "a\x00b"}}},
			{"nameless peripheral", EnrollRequest{Code: code, CSR: good, Inventory: Inventory{Peripherals: []Peripheral{{Kind: "camera"}}}}},
			{"too many peripherals", EnrollRequest{Code: code, CSR: good, Inventory: Inventory{Peripherals: make([]Peripheral, 33)}}},
		}
		for _, tt := range tests {
			if _, err := r.Enroll(ctx, tt.req); !errors.Is(err, ErrInvalid) {
				t.Errorf("%s: %v, want ErrInvalid", tt.name, err)
			}
		}
		// None of the refusals used up the code.
		e, err := r.Enroll(ctx, EnrollRequest{Code: code, CSR: good, DeviceID: "kiosk-rathaus-1",
			Inventory: Inventory{Model: "K1", Peripherals: []Peripheral{{Name: "cam0", Kind: "camera"}}}})
		if err != nil {
			t.Fatal(err)
		}
		if e.DeviceID != "kiosk-rathaus-1" {
			t.Errorf("device id %q", e.DeviceID)
		}
		// The requested id is taken now; the second code stays unused.
		code2 := groupAndCode(t, r, "mitte")
		if _, err := r.Enroll(ctx, EnrollRequest{Code: code2, CSR: good, DeviceID: "kiosk-rathaus-1"}); !errors.Is(err, ErrExists) {
			t.Errorf("taken device id: %v", err)
		}
		e2, err := r.Enroll(ctx, EnrollRequest{Code: code2, CSR: good})
		if err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(`^mitte-[0-9a-z]{6}$`).MatchString(e2.DeviceID) {
			t.Errorf("assigned device id %q, want mitte-xxxxxx", e2.DeviceID)
		}
	})
}

func tamperCSR(t *testing.T, csr []byte) []byte {
	t.Helper()
	block, _ := pemDecode(csr)
	der := append([]byte(nil), block...)
	der[len(der)-3] ^= 0xff
	return pemEncode("CERTIFICATE REQUEST", der)
}

func TestDevicesAndInventory(t *testing.T) {
	pgtest.Stores(t, func(t *testing.T, db *store.DB) {
		r, clk := newRegistry(t, db, Options{})
		ctx := context.Background()
		inv := Inventory{Model: "Kiosk K1", Serial: "SN-1", Software: "1.0.0", Location: "Rathaus EG",
			Peripherals: []Peripheral{{Name: "cam0", Kind: "camera"}, {Name: "prn0", Kind: "printer"}}}
		for _, id := range []string{"k-2", "k-1", "h-1"} {
			group := "kiosks"
			if id[0] == 'h' {
				group = "handhelds"
			}
			_, csr := csrPEM(t, elliptic.P256())
			if _, err := r.Enroll(ctx, EnrollRequest{Code: groupAndCode(t, r, group), CSR: csr, DeviceID: id, Inventory: inv}); err != nil {
				t.Fatal(err)
			}
		}
		ds, err := r.Devices(ctx, DeviceFilter{Group: "kiosks"})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, d := range ds {
			ids = append(ids, d.ID)
		}
		if !slices.Equal(ids, []string{"k-1", "k-2"}) {
			t.Errorf("devices of kiosks: %v", ids)
		}
		d, err := r.Device(ctx, "k-1")
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(d.Inventory) != fmt.Sprint(inv) || d.Group != "kiosks" || d.LastSeen != nil || len(d.Certificates) != 1 {
			t.Errorf("device: %+v", d)
		}

		// Touch is batched until Flush.
		seen := clk.Now().Add(time.Minute).Truncate(time.Millisecond)
		r.Touch("k-1", seen)
		r.Touch("k-1", seen.Add(-time.Hour))
		if d, _ := r.Device(ctx, "k-1"); d.LastSeen != nil {
			t.Error("last seen written before Flush")
		}
		if err := r.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if d, _ := r.Device(ctx, "k-1"); d.LastSeen == nil || !d.LastSeen.Equal(seen) {
			t.Errorf("last seen %v, want %v", d.LastSeen, seen)
		}

		inv2 := Inventory{Model: "Kiosk K1", Serial: "SN-1", Software: "1.1.0"}
		if err := r.UpdateInventory(ctx, "k-1", inv2); err != nil {
			t.Fatal(err)
		}
		if d, _ := r.Device(ctx, "k-1"); d.Inventory.Software != "1.1.0" || len(d.Inventory.Peripherals) != 0 {
			t.Errorf("inventory after update: %+v", d.Inventory)
		}
		if err := r.UpdateInventory(ctx, "ghost", inv2); !errors.Is(err, ErrNotFound) {
			t.Errorf("inventory of unknown device: %v", err)
		}
		if _, err := r.Device(ctx, "ghost"); !errors.Is(err, ErrNotFound) {
			t.Errorf("unknown device: %v", err)
		}
	})
}

func TestRunFlushesAndRefreshes(t *testing.T) {
	pgtest.Stores(t, func(t *testing.T, db *store.DB) {
		r, _ := newRegistry(t, db, Options{TouchInterval: 10 * time.Millisecond, RefreshInterval: 10 * time.Millisecond})
		// Another replica on the same store.
		other, _ := newRegistry(t, db, Options{})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		defer func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
		}()
		_, csr := csrPEM(t, elliptic.P256())
		e, err := r.Enroll(context.Background(), EnrollRequest{Code: groupAndCode(t, r, "g"), CSR: csr})
		if err != nil {
			t.Fatal(err)
		}
		revoked := make(chan string, 1)
		r.OnRevoke(func(d string) { revoked <- d })

		r.Touch(e.DeviceID, time.Now())
		waitFor(t, "Run to write last seen", func() bool {
			d, err := r.Device(context.Background(), e.DeviceID)
			return err == nil && d.LastSeen != nil
		})
		if err := other.RevokeDevice(context.Background(), e.DeviceID, "stolen"); err != nil {
			t.Fatal(err)
		}
		select {
		case d := <-revoked:
			if d != e.DeviceID {
				t.Errorf("revocation listener got %q", d)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a revocation by another replica did not reach this one")
		}
		if !r.IsRevoked(e.DeviceID, nil) {
			t.Error("IsRevoked false after the refresh")
		}
	})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRevocationCache(t *testing.T) {
	pgtest.Stores(t, func(t *testing.T, db *store.DB) {
		r, _ := newRegistry(t, db, Options{})
		ctx := context.Background()
		var got []string
		r.OnRevoke(func(d string) { got = append(got, d) })
		enroll := func(id string) *x509.Certificate {
			_, csr := csrPEM(t, elliptic.P256())
			e, err := r.Enroll(ctx, EnrollRequest{Code: groupAndCode(t, r, "g"), CSR: csr, DeviceID: id})
			if err != nil {
				t.Fatal(err)
			}
			block, _ := pemDecode(e.Certificate)
			c, err := x509.ParseCertificate(block)
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
		a, b := enroll("dev-a"), enroll("dev-b")
		if r.IsRevoked("dev-a", a.SerialNumber) || r.IsRevoked("dev-b", b.SerialNumber) {
			t.Fatal("fresh devices revoked")
		}
		if err := r.RevokeDevice(ctx, "dev-a", "lost"); err != nil {
			t.Fatal(err)
		}
		if err := r.RevokeCertificate(ctx, b.SerialNumber.Text(16)); err != nil {
			t.Fatal(err)
		}
		if !r.IsRevoked("dev-a", nil) || !r.IsRevoked("dev-b", b.SerialNumber) || r.IsRevoked("dev-b", nil) {
			t.Error("cache does not reflect the revocations")
		}
		if !slices.Equal(got, []string{"dev-a", "dev-b"}) {
			t.Errorf("listeners got %v", got)
		}
		if err := r.RevokeDevice(ctx, "ghost", ""); !errors.Is(err, ErrNotFound) {
			t.Errorf("revoke unknown device: %v", err)
		}
		if err := r.RevokeCertificate(ctx, "abc"); !errors.Is(err, ErrNotFound) {
			t.Errorf("revoke unknown certificate: %v", err)
		}
		// A restarted registry loads the revocations from the store.
		r2, _ := newRegistry(t, db, Options{})
		if !r2.IsRevoked("dev-a", nil) || !r2.IsRevoked("dev-b", b.SerialNumber) || r2.IsRevoked("dev-b", nil) {
			t.Error("revocations not loaded at start")
		}
		d, err := r.Device(ctx, "dev-a")
		if err != nil || d.RevokedAt == nil || d.RevokedReason != "lost" || d.Certificates[0].RevokedAt == nil {
			t.Errorf("revoked device: %+v, %v", d, err)
		}
	})
}
