package fleetserver_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kogge-fleet/kogge/agent"
	"github.com/kogge-fleet/kogge/fleet-server/api/client"
	"github.com/kogge-fleet/kogge/fleet-server/delivery"
	"github.com/kogge-fleet/kogge/fleet-server/delivery/bridgeclient"
	"github.com/kogge-fleet/kogge/fleet-server/store"
	"github.com/kogge-fleet/kogge/protocol/seal"
)

// bridgeClient has the server issue a bridge certificate for office through
// the REST API (as koggectl bridge-cert does) and returns a bridge API
// client with it, over the enrollment listener.
func bridgeClient(t *testing.T, srv *testServer, office string) *bridgeclient.Client {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	bc, err := srv.api.IssueBridgeCertificate(context.Background(), office,
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode([]byte(bc.Certificate))
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM([]byte(bc.CA)) {
		t.Fatal("no CA in the answer")
	}
	c, err := bridgeclient.New(srv.app.EnrollURL(), &tls.Config{
		RootCAs: roots, MinVersion: tls.VersionTLS12,
		Certificates: []tls.Certificate{{Certificate: [][]byte{block.Bytes}, PrivateKey: key}},
	}, bridgeclient.Options{Timeout: 10 * time.Second, BackoffBase: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestDeliveryEndToEnd: a real agent captures, the server stores and
// queues, a bridge on the bridge API over mutual TLS leases, opens and acks;
// the server drops body and blobs and the receipt reaches the device.
func TestDeliveryEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	logs := &logSink{}
	logs.dumpOnFailure(t)
	srv := startServer(t, logs)
	ctx := context.Background()
	if _, err := srv.api.CreateGroup(ctx, "kiosks", "Kiosks"); err != nil {
		t.Fatal(err)
	}
	code, err := srv.api.CreateCode(ctx, client.CodeRequest{Group: "kiosks", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	dev := startDevice(t, srv, logs, code.Secret, code.CAFingerprint, "kiosk-k4-1")

	photo := bytes.Repeat([]byte("PHOTO-BYTES "), 20_000)
	var receipts []agent.Receipt
	for i := range 2 {
		c := agent.Capture{Kind: "kiosk.application", Office: officeKey.Office, Body: []byte(fmt.Sprintf("Erika Mustermann %d", i))}
		if i == 0 {
			c.Blobs = []agent.Blob{{Role: "photo", Data: photo}}
		}
		r, err := dev.agent.Capture(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		receipts = append(receipts, r)
	}

	bridge := bridgeClient(t, srv, officeKey.Office)
	other := bridgeClient(t, srv, "ordnungsamt")
	keys := seal.NewKeyring(officeKey.Office)
	if err := keys.Add(officeKey.KeyID, officeSecret); err != nil {
		t.Fatal(err)
	}

	var leased []delivery.Delivery
	eventually(t, "both records leased", 30*time.Second, func() (bool, string) {
		ds, err := bridge.Lease(ctx, officeKey.Office, 10, time.Minute)
		if err != nil {
			return false, err.Error()
		}
		leased = append(leased, ds...)
		return len(leased) == 2, fmt.Sprintf("%d leased", len(leased))
	})
	if _, err := other.Lease(ctx, officeKey.Office, 10, time.Minute); !errors.Is(err, delivery.ErrForbidden) {
		t.Errorf("another office's bridge: %v, want 403", err)
	}
	for _, d := range leased {
		body, err := keys.Open(d.KeyID, d.Sealed)
		if err != nil || !strings.HasPrefix(string(body), "Erika Mustermann") {
			t.Errorf("record %v does not open: %v", d.ID, err)
		}
		for _, b := range d.Blobs {
			var sealed bytes.Buffer
			if err := bridge.Blob(ctx, d.ID, b.ID, &sealed); err != nil {
				t.Fatal(err)
			}
			if got, err := keys.Open(d.KeyID, sealed.Bytes()); err != nil || !bytes.Equal(got, photo) {
				t.Errorf("blob of %v does not open to the photo: %v", d.ID, err)
			}
		}
		if err := other.Ack(ctx, d.ID, d.Attempt, delivery.Receipt{Reference: "STOLEN"}); !errors.Is(err, delivery.ErrForbidden) {
			t.Errorf("another office's ack: %v", err)
		}
		if err := bridge.Ack(ctx, d.ID, d.Attempt, delivery.Receipt{Reference: "PA-" + d.ID.String()[:8]}); err != nil {
			t.Fatal(err)
		}
	}

	for _, r := range receipts {
		eventually(t, "the receipt on the device", 30*time.Second, func() (bool, string) {
			st, err := dev.agent.Status(ctx, r.ID)
			if err != nil {
				return false, err.Error()
			}
			return st.State == agent.Accepted && st.Reference == "PA-"+r.ID.String()[:8], st.State.String()
		})
		if _, err := srv.app.Store().RecordSealed(ctx, "kiosk-k4-1", r.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("record %v: the server still holds the body: %v", r.ID, err)
		}
	}
	page, err := srv.api.Records(ctx, client.RecordQuery{Device: "kiosk-k4-1"})
	if err != nil || len(page.Records) != 2 || page.Records[0].Status != "erased" || len(page.Records[0].Blobs) != 1 {
		t.Errorf("records after acceptance: %+v %v", page, err)
	}
	entries, err := srv.api.Audit(ctx, client.AuditQuery{Action: "delivery.accepted"})
	if err != nil || len(entries.Entries) != 2 || entries.Entries[0].Actor != "bridge."+officeKey.Office {
		t.Errorf("audit of the acceptances: %+v %v", entries, err)
	}
	if v, err := srv.api.VerifyAudit(ctx); err != nil || !v.OK {
		t.Errorf("audit verify: %+v %v", v, err)
	}
	qs, err := srv.api.Queues(ctx)
	if err != nil || len(qs) != 0 {
		t.Errorf("queues after all were accepted: %+v %v", qs, err)
	}
}
