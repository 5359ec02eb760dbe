package brokerconfig_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kogge-fleet/kogge/fleet-server/brokerconfig"
	"github.com/kogge-fleet/kogge/fleet-server/registry"
	"github.com/kogge-fleet/kogge/fleet-server/store"
)

// newFleetStore is a SQLite store with the fleet CA and two devices, one
// revoked.
func newFleetStore(t *testing.T) (*store.DB, *registry.Registry) {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "kogge.db"), store.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	reg, err := registry.New(ctx, db, registry.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return db, reg
}

func parseCRL(t *testing.T, dir string) *x509.RevocationList {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, brokerconfig.FileCRL))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "X509 CRL" {
		t.Fatalf("crl.pem holds no X509 CRL block")
	}
	crl, err := x509.ParseRevocationList(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return crl
}

func TestUpdateFollowsRevocations(t *testing.T) {
	db, reg := newFleetStore(t)
	ctx := context.Background()
	ca, err := brokerconfig.LoadCA(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	now := time.Now()
	m := brokerconfig.Mosquitto{Names: []string{"broker.example.org"}, Replicas: []string{"r1"}, User: "root"}
	if err := brokerconfig.WriteMosquitto(ctx, db, dir, m, now); err != nil {
		t.Fatal(err)
	}
	crl := parseCRL(t, dir)
	if err := crl.CheckSignatureFrom(ca.Certificate()); err != nil {
		t.Errorf("the CRL is not signed by the fleet CA: %v", err)
	}
	if len(crl.RevokedCertificateEntries) != 0 || crl.Number.Int64() != 1 || crl.NextUpdate.Sub(now) < 29*24*time.Hour {
		t.Errorf("fresh CRL: %d entries, number %v, next update %v", len(crl.RevokedCertificateEntries), crl.Number, crl.NextUpdate)
	}
	changed, pid, err := brokerconfig.Update(ctx, db, dir, now.Add(time.Minute))
	if err != nil || changed || pid != filepath.Join(dir, brokerconfig.FilePid) {
		t.Errorf("Update without news: changed %v, pid file %q, %v", changed, pid, err)
	}

	// A revoked device's certificate enters the CRL and the device the
	// ACL's deny list.
	if _, err := reg.CreateGroup(ctx, "kiosks", "Kiosks"); err != nil {
		t.Fatal(err)
	}
	serial := enrollDevice(t, reg, "kiosk-9")
	if err := reg.RevokeDevice(ctx, "kiosk-9", "stolen"); err != nil {
		t.Fatal(err)
	}
	changed, _, err = brokerconfig.Update(ctx, db, dir, now.Add(2*time.Minute))
	if err != nil || !changed {
		t.Fatalf("Update after a revocation: changed %v, %v", changed, err)
	}
	crl = parseCRL(t, dir)
	if len(crl.RevokedCertificateEntries) != 1 || crl.RevokedCertificateEntries[0].SerialNumber.Cmp(serial) != 0 || crl.Number.Int64() != 2 {
		t.Errorf("CRL after the revocation: %+v, number %v", crl.RevokedCertificateEntries, crl.Number)
	}
	acl, _ := os.ReadFile(filepath.Join(dir, brokerconfig.FileACL))
	if !bytes.Contains(acl, []byte("user kiosk-9\ntopic deny #\n")) {
		t.Errorf("ACL without the revoked device:\n%s", acl)
	}
	// Half the CRL's validity later it is signed again, with nothing new.
	changed, _, err = brokerconfig.Update(ctx, db, dir, now.Add(16*24*time.Hour))
	if err != nil || !changed || parseCRL(t, dir).Number.Int64() != 3 {
		t.Errorf("Update at half the CRL's validity: changed %v, %v", changed, err)
	}
	if _, _, err := brokerconfig.Update(ctx, db, t.TempDir(), now); err == nil || !strings.Contains(err.Error(), "koggectl broker-config") {
		t.Errorf("Update of an empty directory: %v", err)
	}
}

func TestMosquittoACLText(t *testing.T) {
	acl := string(brokerconfig.MosquittoACL([]string{"r1", "bad id"}, brokerconfig.Revoked{
		Devices: []string{"kiosk-1", "evil\nuser x", "has space"}, Bridges: []string{"bridge.buergeramt"},
	}))
	for _, want := range []string{"user kogge-server:r1\ntopic read kogge/v1/d/+/up/#\ntopic read kogge/v1/d/+/state\n",
		"topic write kogge/v1/d/+/down/#\n", "topic readwrite kogge/v1/probe/kogge-server:r1\n",
		"user kiosk-1\ntopic deny #\n", "user bridge.buergeramt\ntopic deny #\n", "pattern write kogge/v1/d/%u/state\n"} {
		if !strings.Contains(acl, want) {
			t.Errorf("ACL lacks %q:\n%s", want, acl)
		}
	}
	for _, bad := range []string{"bad id", "evil", "has space"} {
		if strings.Contains(acl, bad) {
			t.Errorf("ACL holds the unusable name %q", bad)
		}
	}
}

func TestMosquittoValidate(t *testing.T) {
	db, _ := newFleetStore(t)
	for _, m := range []brokerconfig.Mosquitto{
		{Replicas: []string{"r1"}},
		{Names: []string{"b"}},
		{Names: []string{"b"}, Replicas: []string{"R1"}},
		{Names: []string{"b"}, Replicas: []string{"r1"}, Listen: "99999"},
		{Names: []string{"b"}, Replicas: []string{"r1"}, ConfDir: "relative/dir"},
		{Names: []string{"b\nlistener 1883"}, Replicas: []string{"r1"}},
	} {
		if err := brokerconfig.WriteMosquitto(context.Background(), db, t.TempDir(), m, time.Now()); err == nil {
			t.Errorf("%+v accepted", m)
		}
	}
}

func TestParseCA(t *testing.T) {
	for _, bad := range []string{"", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"} {
		if _, err := brokerconfig.ParseCA([]byte(bad)); err == nil {
			t.Errorf("ParseCA(%q) succeeded", bad)
		}
	}
	db, _ := newFleetStore(t)
	ca, err := brokerconfig.LoadCA(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ca.IssueReplica("r1", time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("replica certificate does not verify: %v", err)
	}
	if c.Leaf.Subject.CommonName != "kogge-server:r1" || c.Leaf.Subject.OrganizationalUnit[0] != brokerconfig.ServerUnit {
		t.Errorf("replica certificate subject %v", c.Leaf.Subject)
	}
	if _, err := ca.IssueReplica("-r", time.Now(), time.Hour); err == nil {
		t.Error("a bad replica id was issued a certificate")
	}
	if _, err := ca.CRL([]string{"not-hex"}, 1, time.Now(), time.Hour); err == nil {
		t.Error("a CRL with a bad serial was signed")
	}
}

// fakeRevocations revokes the devices named.
type fakeRevocations map[string]bool

func (f fakeRevocations) IsRevoked(device string, _ *big.Int) bool { return f[device] }

// emqxServer serves EMQXHandler over mutual TLS as the enrollment listener
// does, and returns a client with the broker certificate and one with a
// device certificate.
func emqxServer(t *testing.T) (url string, broker, other *http.Client) {
	t.Helper()
	db, reg := newFleetStore(t)
	ca, err := brokerconfig.LoadCA(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	h, err := brokerconfig.EMQXHandler(fakeRevocations{"kiosk-r": true}, brokerconfig.EMQXOptions{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = reg.HTTPSTLSConfig()
	srv.StartTLS()
	t.Cleanup(srv.Close)
	certPEM, keyPEM, err := ca.IssueBroker([]string{"broker.example.org"}, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	bc, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := ca.IssueReplica("r1", time.Now(), time.Hour) // not a broker certificate
	if err != nil {
		t.Fatal(err)
	}
	client := func(c tls.Certificate) *http.Client {
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
			RootCAs: ca.Pool(), Certificates: []tls.Certificate{c}, ServerName: "localhost"}}}
	}
	return srv.URL, client(bc), client(rc)
}

func TestEMQXHandler(t *testing.T) {
	url, broker, other := emqxServer(t)
	ask := func(c *http.Client, path string, body any) (int, brokerconfig.EMQXResult) {
		t.Helper()
		b, _ := json.Marshal(body)
		resp, err := c.Post(url+brokerconfig.EMQXPrefix+path, "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var res brokerconfig.EMQXResult
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode == http.StatusOK {
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("content type %q", ct)
			}
			if err := json.Unmarshal(raw, &res); err != nil {
				t.Fatalf("answer %q: %v", raw, err)
			}
		}
		return resp.StatusCode, res
	}
	type req = brokerconfig.EMQXRequest
	for _, c := range []struct {
		path      string
		r         req
		result    string
		superuser bool
	}{
		{"authn", req{ClientID: "kiosk-1", Username: "kiosk-1", CertCommonName: "kiosk-1"}, "allow", false},
		{"authn", req{ClientID: "kiosk-2", Username: "kiosk-1", CertCommonName: "kiosk-1"}, "deny", false},
		{"authn", req{ClientID: "kiosk-1", Username: "kiosk-2", CertCommonName: "kiosk-1"}, "deny", false},
		{"authn", req{ClientID: "kiosk-r", Username: "kiosk-r", CertCommonName: "kiosk-r"}, "deny", false},
		{"authn", req{ClientID: "bridge.amt", Username: "bridge.amt", CertCommonName: "bridge.amt"}, "deny", false},
		{"authn", req{ClientID: "", Username: "", CertCommonName: ""}, "deny", false},
		{"authn", req{ClientID: "kogge-server:r1", Username: "kogge-server:r1", CertCommonName: "kogge-server:r1"}, "allow", true},
		{"authn", req{ClientID: "kogge-server:R1", Username: "kogge-server:R1"}, "deny", false},
		{"authz", req{Username: "kiosk-1", Topic: "kogge/v1/d/kiosk-1/up/record", Action: "publish"}, "allow", false},
		{"authz", req{Username: "kiosk-1", Topic: "kogge/v1/d/kiosk-2/up/record", Action: "publish"}, "deny", false},
		{"authz", req{Username: "kiosk-1", Topic: "kogge/v1/d/kiosk-1/down/ack", Action: "publish"}, "deny", false},
		{"authz", req{Username: "kiosk-1", Topic: "kogge/v1/d/kiosk-1/down/#", Action: "subscribe"}, "allow", false},
		{"authz", req{Username: "kiosk-1", Topic: "#", Action: "subscribe"}, "deny", false},
		{"authz", req{Username: "kiosk-1", Topic: "kogge/v1/d/+/twin", Action: "subscribe"}, "deny", false},
		{"authz", req{Username: "kiosk-r", Topic: "kogge/v1/d/kiosk-r/up/record", Action: "publish"}, "deny", false},
		{"authz", req{Username: "kiosk-1", Topic: "kogge/v1/d/kiosk-1/up/record", Action: "all"}, "deny", false},
	} {
		code, res := ask(broker, c.path, c.r)
		if code != http.StatusOK || res.Result != c.result || res.IsSuperuser != c.superuser {
			t.Errorf("%s %+v: %d %+v, want %s superuser %v", c.path, c.r, code, res, c.result, c.superuser)
		}
	}
	// Only the broker may ask.
	if code, _ := ask(other, "authn", req{ClientID: "kiosk-1", Username: "kiosk-1"}); code != http.StatusForbidden {
		t.Errorf("a replica certificate asked: %d, want 403", code)
	}
	if code, _ := ask(broker, "authn", "not an object"); code != http.StatusBadRequest {
		t.Errorf("garbage: %d, want 400", code)
	}
	resp, err := broker.Get(url + brokerconfig.EMQXPrefix + "authn")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d", resp.StatusCode)
	}
}

func FuzzDecodeEMQXRequest(f *testing.F) {
	f.Add([]byte(`{"clientid":"kiosk-1","username":"kiosk-1","cert_common_name":"kiosk-1","peerhost":"10.0.0.1"}`))
	f.Add([]byte(`{"username":"kiosk-1","topic":"kogge/v1/d/kiosk-1/up/record","action":"publish"}`))
	f.Add([]byte(`{"clientid":1}`))
	f.Add([]byte(`{} {}`))
	f.Add([]byte("{\"username\":\"\xff\"}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := brokerconfig.DecodeEMQXRequest(b)
		if err != nil {
			return
		}
		// What decodes encodes and decodes to the same request.
		again, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		r2, err := brokerconfig.DecodeEMQXRequest(again)
		if err != nil || r2 != r {
			t.Fatalf("round trip: %+v → %s → %+v, %v", r, again, r2, err)
		}
	})
}

// enrollDevice enrolls a device in group kiosks and returns its
// certificate's serial.
func enrollDevice(t *testing.T, reg *registry.Registry, id string) *big.Int {
	t.Helper()
	ctx := context.Background()
	code, err := reg.CreateCode(ctx, "kiosks", registry.CodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	en, err := reg.Enroll(ctx, registry.EnrollRequest{Code: code.Secret, DeviceID: id,
		CSR: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})})
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(en.Certificate)
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c.SerialNumber
}
