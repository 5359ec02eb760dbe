package enroll

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseFingerprint(t *testing.T) {
	sum := sha256.Sum256([]byte("ca"))
	plain := hex.EncodeToString(sum[:])
	var colons []string
	for i := 0; i < len(plain); i += 2 {
		colons = append(colons, strings.ToUpper(plain[i:i+2]))
	}
	for _, in := range []string{plain, strings.ToUpper(plain), "sha256:" + plain, strings.Join(colons, ":"), " " + plain + "\n"} {
		if fp, err := ParseFingerprint(in); err != nil || fp != sum {
			t.Errorf("ParseFingerprint(%q) = %x, %v", in, fp, err)
		}
	}
	for _, in := range []string{"", plain[:62], plain + "00", "zz" + plain[2:]} {
		if _, err := ParseFingerprint(in); err == nil {
			t.Errorf("ParseFingerprint(%q) accepted", in)
		}
	}
}

// testCA issues certificates for the tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTestCA(t testing.TB) *testCA {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key}
}

func (ca *testCA) issue(t testing.TB, cn string, pub *ecdsa.PublicKey, notBefore, notAfter time.Time) *x509.Certificate {
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: notBefore, NotAfter: notAfter, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c
}

func pemOf(c *x509.Certificate) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
}

func TestIdentityFromChecksTheResponse(t *testing.T) {
	ca, other := newTestCA(t), newTestCA(t)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	good := ca.issue(t, "dev-1", &key.PublicKey, now, now.Add(time.Hour))
	fp := sha256.Sum256(ca.cert.Raw)
	dev1, dev2 := "dev-1", "dev-2"
	tests := []struct {
		name   string
		v      enrollmentJSON
		device *string
		ok     bool
	}{
		{"good", enrollmentJSON{DeviceID: "dev-1", Certificate: pemOf(good), CA: pemOf(ca.cert)}, nil, true},
		{"good renewal", enrollmentJSON{DeviceID: "dev-1", Certificate: pemOf(good), CA: pemOf(ca.cert)}, &dev1, true},
		{"other CA", enrollmentJSON{DeviceID: "dev-1", Certificate: pemOf(good), CA: pemOf(other.cert)}, nil, false},
		{"not signed by the CA", enrollmentJSON{DeviceID: "dev-1",
			Certificate: pemOf(other.issue(t, "dev-1", &key.PublicKey, now, now.Add(time.Hour))), CA: pemOf(ca.cert)}, nil, false},
		{"other key", enrollmentJSON{DeviceID: "dev-1",
			Certificate: pemOf(ca.issue(t, "dev-1", &otherKey.PublicKey, now, now.Add(time.Hour))), CA: pemOf(ca.cert)}, nil, false},
		{"id differs from CN", enrollmentJSON{DeviceID: "dev-2", Certificate: pemOf(good), CA: pemOf(ca.cert)}, nil, false},
		{"renewal for another device", enrollmentJSON{DeviceID: "dev-1", Certificate: pemOf(good), CA: pemOf(ca.cert)}, &dev2, false},
		{"no certificate", enrollmentJSON{DeviceID: "dev-1", CA: pemOf(ca.cert)}, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := identityFrom(tt.v, key, fp[:], tt.device)
			if (err == nil) != tt.ok {
				t.Errorf("identityFrom: %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestSaveLoadAndRenewalDue(t *testing.T) {
	ca := newTestCA(t)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	start := time.Now().Truncate(time.Second)
	leaf := ca.issue(t, "dev-1", &key.PublicKey, start, start.Add(90*time.Hour))
	dir := filepath.Join(t.TempDir(), "id")
	id := &Identity{Dir: dir, DeviceID: "dev-1", Server: "https://127.0.0.1:8443", Broker: "mqtts://127.0.0.1:8883",
		Certificate: tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}, CA: ca.cert}
	if err := id.save(true); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{identityFile, caFile, metaFile} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, %v", name, st.Mode(), err)
		}
	}
	got, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.DeviceID != "dev-1" || got.Broker != id.Broker || got.Server != id.Server || !got.Certificate.Leaf.Equal(leaf) || !got.CA.Equal(ca.cert) {
		t.Errorf("Load = %+v", got)
	}
	for _, tt := range []struct {
		at  time.Duration
		due bool
	}{{0, false}, {59 * time.Hour, false}, {61 * time.Hour, true}, {100 * time.Hour, true}} {
		if due := got.RenewalDue(start.Add(tt.at)); due != tt.due {
			t.Errorf("RenewalDue after %v = %v, want %v", tt.at, due, tt.due)
		}
	}
	cfg := got.TLSConfig()
	if len(cfg.Certificates) != 1 || cfg.RootCAs == nil || cfg.MinVersion < tls.VersionTLS12 {
		t.Errorf("TLSConfig: %+v", cfg)
	}

	// Enroll refuses to overwrite an identity.
	_, err = Enroll(context.Background(), dir, Request{Server: "https://127.0.0.1:1", Code: "x",
		CAFingerprint: strings.Repeat("0", 64)}, Options{})
	if err == nil || !strings.Contains(err.Error(), "already holds") {
		t.Errorf("Enroll over an identity: %v", err)
	}

	// A metadata file that names another device is refused.
	os.WriteFile(filepath.Join(dir, metaFile), []byte(`{"device_id":"dev-2"}`), 0o600)
	if _, err := Load(dir); err == nil {
		t.Error("Load accepted an identity whose files disagree")
	}
}

func TestEnrollPinsTheCA(t *testing.T) {
	// httptest's certificate is self-signed and a CA, so pinning it is
	// pinning the server's CA; its handler refuses like the fleet server.
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req enrollRequestJSON
		if r.URL.Path != "/enroll/v1" || json.NewDecoder(r.Body).Decode(&req) != nil || req.Code != "7KQ2" || !strings.Contains(req.CSR, "CERTIFICATE REQUEST") {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, `{"error":"code_used","message":"each code enrolls one device"}`)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	defer srv.Close()
	fp := sha256.Sum256(srv.Certificate().Raw)
	ctx := context.Background()

	_, err := Enroll(ctx, t.TempDir(), Request{Server: srv.URL, Code: "7KQ2", CAFingerprint: hex.EncodeToString(fp[:])}, Options{})
	var se *ServerError
	if !errors.As(err, &se) || se.Status != http.StatusForbidden || se.Reason != "code_used" {
		t.Errorf("Enroll with the pinned CA: %v, want the server's refusal", err)
	}
	fp[0] ^= 1
	_, err = Enroll(ctx, t.TempDir(), Request{Server: srv.URL, Code: "7KQ2", CAFingerprint: hex.EncodeToString(fp[:])}, Options{})
	if err == nil || errors.As(err, &se) || !strings.Contains(err.Error(), "fingerprint") {
		t.Errorf("Enroll with another fingerprint: %v, want a TLS refusal", err)
	}
	for _, bad := range []string{"http://127.0.0.1", "127.0.0.1:8443", ""} {
		if _, err := Enroll(ctx, t.TempDir(), Request{Server: bad, Code: "x", CAFingerprint: hex.EncodeToString(fp[:])}, Options{}); err == nil {
			t.Errorf("Enroll accepted server URL %q", bad)
		}
	}
}

func TestDecodeResponse(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		reason string // "" = decoded, "-" = plain error
	}{
		{"enrollment", 200, `{"device_id":"d","certificate":"c","ca":"a","broker":"b","not_after":"2027-01-01T00:00:00Z"}`, ""},
		{"refusal", 403, `{"error":"code_expired","message":"ask for a new one"}`, "code_expired"},
		{"refusal without JSON", 502, `<html>bad gateway</html>`, "unknown"},
		{"bad JSON", 200, `{"device_id":`, "-"},
		{"too large", 200, strings.Repeat(" ", maxResponse+1), "-"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := decodeResponse(tt.status, []byte(tt.body))
			var se *ServerError
			switch tt.reason {
			case "":
				if err != nil || v.DeviceID != "d" {
					t.Errorf("decodeResponse = %+v, %v", v, err)
				}
			case "-":
				if err == nil || errors.As(err, &se) {
					t.Errorf("decodeResponse error = %v", err)
				}
			default:
				if !errors.As(err, &se) || se.Reason != tt.reason || se.Status != tt.status {
					t.Errorf("decodeResponse error = %v, want reason %s", err, tt.reason)
				}
			}
		})
	}
}

func FuzzDecodeResponse(f *testing.F) {
	f.Add(200, []byte(`{"device_id":"d","certificate":"c","ca":"a","broker":"b","not_after":"2027-01-01T00:00:00Z"}`))
	f.Add(403, []byte(`{"error":"code_used","message":"m"}`))
	f.Add(500, []byte(`oops`))
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	f.Fuzz(func(t *testing.T, status int, b []byte) {
		v, err := decodeResponse(status, b)
		if err != nil {
			var se *ServerError
			if errors.As(err, &se) && (len(se.Reason) > 301+len("…") || len(se.Message) > 301+len("…")) {
				t.Fatalf("server error not clipped: %d bytes", len(se.Message))
			}
			return
		}
		// Checking what decoded must not panic.
		identityFrom(v, key, make([]byte, 32), nil)
	})
}
