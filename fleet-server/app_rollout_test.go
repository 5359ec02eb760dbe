package fleetserver_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/kogge-fleet/kogge/agent/enroll"
	fleetserver "github.com/kogge-fleet/kogge/fleet-server"
	"github.com/kogge-fleet/kogge/fleet-server/api/client"
	"github.com/kogge-fleet/kogge/protocol/artifact"
	"github.com/kogge-fleet/kogge/protocol/artifact/artifacttest"
)

// TestRolloutDeviceEndpoint checks who may use the device endpoint on the
// enrollment listener: an enrolled device with its certificate, not a
// client without one, not a bridge, not a revoked device.
func TestRolloutDeviceEndpoint(t *testing.T) {
	logs := &logSink{}
	logs.dumpOnFailure(t)
	key, err := artifact.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	keyFile := artifacttest.PublicKeyFile(t, key.Public().(ed25519.PublicKey))
	srv, _ := startServerWith(t, logs, func(c *fleetserver.Config) { c.Rollout.Keys = []string{keyFile} })
	ctx := context.Background()
	if _, err := srv.api.CreateGroup(ctx, "mitte", "Mitte"); err != nil {
		t.Fatal(err)
	}
	ident := func(id string) *enroll.Identity {
		code, err := srv.api.CreateCode(ctx, client.CodeRequest{Group: "mitte", TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		ident, err := enroll.Enroll(ctx, filepath.Join(t.TempDir(), "identity"), enroll.Request{Server: srv.app.EnrollURL(),
			Code: code.Secret, CAFingerprint: code.CAFingerprint, DeviceID: id}, enroll.Options{Timeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return ident
	}
	good, revoked := ident("kiosk-1"), ident("kiosk-2")

	bin := bytes.Repeat([]byte("kiosk"), 1000)
	m, err := artifact.Describe(artifact.Manifest{Name: "kogge-kiosk", Version: "1.1.0", Apps: []string{"kiosk"}, Platform: "linux/amd64",
		Created: time.Now()}, bytes.NewReader(bin))
	if err != nil {
		t.Fatal(err)
	}
	signed, err := artifact.Sign(m, key)
	if err != nil {
		t.Fatal(err)
	}
	a, err := srv.api.UploadArtifact(ctx, signed, bytes.NewReader(bin))
	if err != nil {
		t.Fatal(err)
	}
	get := func(cfg *tls.Config) int {
		t.Helper()
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
		resp, err := c.Get(srv.app.EnrollURL() + artifact.BinaryPath(a.ID))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode == http.StatusOK && !bytes.Equal(b, bin) {
			t.Errorf("the binary differs: %d bytes", len(b))
		}
		return resp.StatusCode
	}
	if code := get(good.TLSConfig()); code != http.StatusOK {
		t.Errorf("an enrolled device: %d", code)
	}
	noCert := good.TLSConfig()
	noCert.Certificates = nil
	if code := get(noCert); code != http.StatusUnauthorized {
		t.Errorf("without a certificate: %d", code)
	}
	// A bridge's certificate from the same CA is not a device's.
	bkey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, bkey)
	bc, err := srv.api.IssueBridgeCertificate(ctx, "buergeramt-mitte", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode([]byte(bc.Certificate))
	bridge := good.TLSConfig()
	bridge.Certificates = []tls.Certificate{{Certificate: [][]byte{block.Bytes}, PrivateKey: bkey}}
	if code := get(bridge); code != http.StatusForbidden {
		t.Errorf("a bridge: %d", code)
	}
	if _, err := srv.api.RevokeDevice(ctx, "kiosk-2", "stolen"); err != nil {
		t.Fatal(err)
	}
	if code := get(revoked.TLSConfig()); code != http.StatusForbidden {
		t.Errorf("a revoked device: %d", code)
	}
}
