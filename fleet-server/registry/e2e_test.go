package registry

// End-to-end tests: a real device-side client (agent/enroll) over real
// HTTPS, and the real broker. Test files may combine what production code
// keeps apart (internal/deptest).

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/kogge-fleet/kogge/agent/enroll"
	"github.com/kogge-fleet/kogge/fleet-server/broker"
	"github.com/kogge-fleet/kogge/fleet-server/store"
	"github.com/kogge-fleet/kogge/fleet-server/store/pgtest"
)

func TestEnrollAndRenewOverHTTPS(t *testing.T) {
	pgtest.Stores(t, func(t *testing.T, db *store.DB) {
		r, clk := newRegistry(t, db, Options{BrokerAddress: "mqtts://127.0.0.1:8883", CertLifetime: 90 * time.Hour})
		srv := enrollServer(t, r)
		ctx := context.Background()
		code := groupAndCode(t, r, "mitte")
		dir := filepath.Join(t.TempDir(), "identity")
		inv := enroll.Inventory{Model: "Kiosk K1", Serial: "SN-42", Software: "1.2.3", Location: "Rathaus EG",
			Peripherals: []enroll.Peripheral{{Name: "cam0", Kind: "camera"}}}

		// A wrong fingerprint: the device refuses the server.
		wrong := strings.Repeat("ab", 32)
		if _, err := enroll.Enroll(ctx, dir, enroll.Request{Server: srv.URL, Code: code, CAFingerprint: wrong}, enroll.Options{}); err == nil ||
			!strings.Contains(err.Error(), "fingerprint") {
			t.Fatalf("enroll against a server without the pinned CA: %v", err)
		}

		id, err := enroll.Enroll(ctx, dir, enroll.Request{
			Server: srv.URL, Code: strings.ToLower(code), CAFingerprint: "sha256:" + strings.ToUpper(r.CAFingerprint()),
			DeviceID: "kiosk-rathaus-1", Inventory: inv,
		}, enroll.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if id.DeviceID != "kiosk-rathaus-1" || id.Broker != "mqtts://127.0.0.1:8883" || !bytes.Equal(id.CA.Raw, r.CA().Raw) {
			t.Errorf("identity: %+v", id)
		}
		if lt := id.NotAfter().Sub(clk.Now()); lt < 89*time.Hour || lt > 91*time.Hour {
			t.Errorf("certificate lifetime %v, want 90h", lt)
		}
		// Saved with private permissions.
		st, err := os.Stat(dir)
		if err != nil || st.Mode().Perm() != 0o700 {
			t.Errorf("identity directory: %v, %v", st.Mode(), err)
		}
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				if info, _ := d.Info(); info.Mode().Perm() != 0o600 {
					t.Errorf("%s has mode %v, want 0600", p, info.Mode().Perm())
				}
			}
			return nil
		})
		dev, err := r.Device(ctx, "kiosk-rathaus-1")
		if err != nil {
			t.Fatal(err)
		}
		if dev.Group != "mitte" || dev.Inventory.Serial != "SN-42" || len(dev.Inventory.Peripherals) != 1 || len(dev.Certificates) != 1 {
			t.Errorf("registered device: %+v", dev)
		}

		// The code is spent: a second device gets a clear refusal.
		_, err = enroll.Enroll(ctx, filepath.Join(t.TempDir(), "second"), enroll.Request{
			Server: srv.URL, Code: code, CAFingerprint: r.CAFingerprint()}, enroll.Options{})
		var se *enroll.ServerError
		if !errors.As(err, &se) || se.Status != http.StatusForbidden || se.Reason != "code_used" {
			t.Errorf("second enrollment with one code: %v", err)
		}
		// And an expired code likewise.
		expired := groupAndCode(t, r, "mitte")
		clk.advance(25 * time.Hour)
		_, err = enroll.Enroll(ctx, filepath.Join(t.TempDir(), "third"), enroll.Request{
			Server: srv.URL, Code: expired, CAFingerprint: r.CAFingerprint()}, enroll.Options{})
		if !errors.As(err, &se) || se.Reason != "code_expired" {
			t.Errorf("enrollment with an expired code: %v", err)
		}

		// Renewal: not due after 25 of 90 hours, due after 61.
		if id.RenewalDue(clk.Now()) {
			t.Error("renewal due with two thirds of the lifetime left")
		}
		clk.advance(36 * time.Hour)
		if !id.RenewalDue(clk.Now()) {
			t.Error("renewal not due with less than a third left")
		}
		next, renewed, err := id.RenewIfDue(ctx, clk.Now(), enroll.Options{})
		if err != nil || !renewed {
			t.Fatalf("RenewIfDue = %v, %v", renewed, err)
		}
		if next.Certificate.Leaf.SerialNumber.Cmp(id.Certificate.Leaf.SerialNumber) == 0 ||
			next.Certificate.PrivateKey.(*ecdsa.PrivateKey).Equal(id.Certificate.PrivateKey) ||
			!next.NotAfter().After(id.NotAfter()) || next.DeviceID != id.DeviceID {
			t.Error("renewal did not give a new key and a later certificate")
		}
		loaded, err := enroll.Load(dir)
		if err != nil || loaded.Certificate.Leaf.SerialNumber.Cmp(next.Certificate.Leaf.SerialNumber) != 0 {
			t.Fatalf("Load after renewal: %v", err)
		}
		if dev, _ := r.Device(ctx, id.DeviceID); len(dev.Certificates) != 2 {
			t.Errorf("%d certificates tracked after renewal, want 2", len(dev.Certificates))
		}

		// A revoked device cannot renew.
		if err := r.RevokeDevice(ctx, id.DeviceID, "stolen"); err != nil {
			t.Fatal(err)
		}
		// (The first certificate, because the renewed one starts on the
		// test's clock, 61 h ahead of the TLS stack's.)
		_, err = id.Renew(ctx, enroll.Options{})
		if !errors.As(err, &se) || se.Reason != "revoked" {
			t.Errorf("renewal of a revoked device: %v", err)
		}
	})
}

func TestRevocationDisconnectsAtBroker(t *testing.T) {
	pgtest.Stores(t, func(t *testing.T, db *store.DB) {
		r, _ := newRegistry(t, db, Options{})
		b, err := broker.New(r.BrokerTLSConfig(), r, broker.Options{Address: "127.0.0.1:0", Logger: quietLog()})
		if err != nil {
			t.Fatal(err)
		}
		r.OnRevoke(func(device string) { b.DisconnectDevice(device) })
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := b.Start(ctx); err != nil {
			t.Fatal(err)
		}
		defer b.Close()

		srv := enrollServer(t, r)
		id, err := enroll.Enroll(ctx, filepath.Join(t.TempDir(), "id"), enroll.Request{
			Server: srv.URL, Code: groupAndCode(t, r, "od"), CAFingerprint: r.CAFingerprint()}, enroll.Options{})
		if err != nil {
			t.Fatal(err)
		}
		lost := make(chan error, 1)
		connect := func(tlsCfg *tls.Config) (paho.Client, error) {
			opts := paho.NewClientOptions().AddBroker("ssl://" + b.Addr().String()).SetClientID(id.DeviceID).
				SetTLSConfig(tlsCfg).SetAutoReconnect(false).SetConnectRetry(false).SetProtocolVersion(4).
				SetConnectTimeout(5 * time.Second).
				SetConnectionLostHandler(func(_ paho.Client, err error) { lost <- err })
			c := paho.NewClient(opts)
			tok := c.Connect()
			if !tok.WaitTimeout(10 * time.Second) {
				return nil, errors.New("connect timed out")
			}
			return c, tok.Error()
		}
		c, err := connect(id.TLSConfig())
		if err != nil {
			t.Fatalf("enrolled device cannot connect: %v", err)
		}
		defer c.Disconnect(100)
		if tok := c.Publish("kogge/v1/d/"+id.DeviceID+"/up/heartbeat", 1, false, "hb"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}

		if err := r.RevokeDevice(ctx, id.DeviceID, "lost in the field"); err != nil {
			t.Fatal(err)
		}
		select {
		case <-lost:
		case <-time.After(10 * time.Second):
			t.Fatal("revoked device stayed connected")
		}
		if _, err := connect(id.TLSConfig()); err == nil {
			t.Fatal("revoked device reconnected")
		}
	})
}

func TestHandlerRefusesBadRequests(t *testing.T) {
	pgtest.Stores(t, func(t *testing.T, db *store.DB) {
		r, _ := newRegistry(t, db, Options{})
		srv := enrollServer(t, r)
		client := srv.Client()
		_, csr := csrPEM(t, elliptic.P256())
		code := groupAndCode(t, r, "g")
		jsonCSR := strings.ReplaceAll(string(csr), "\n", `\n`)
		tests := []struct {
			name, path, ctype, body string
			status                  int
			reason                  string
		}{
			{"wrong content type", "/enroll/v1", "text/plain", `{}`, 415, "unsupported_media_type"},
			{"unknown field", "/enroll/v1", "application/json", `{"code":"x","csr":"y","admin":true}`, 400, "bad_request"},
			{"two objects", "/enroll/v1", "application/json", `{"code":"x"}{"code":"y"}`, 400, "bad_request"},
			{"trailing data", "/enroll/v1", "application/json", `{"code":"x"} x`, 400, "bad_request"},
			{"not JSON", "/enroll/v1", "application/json", `code=x`, 400, "bad_request"},
			{"wrong type", "/enroll/v1", "application/json", `{"code":7}`, 400, "bad_request"},
			{"too large", "/enroll/v1", "application/json", `{"code":"` + strings.Repeat("x", MaxRequestBody) + `"}`, 413, "too_large"},
			{"bad CSR", "/enroll/v1", "application/json", `{"code":"` + code + `","csr":"nope"}`, 400, "bad_request"},
			{"unknown code", "/enroll/v1", "application/json", `{"code":"0000-0000-0000-0000","csr":"` + jsonCSR + `"}`, 403, "code_unknown"},
			{"renew without certificate", "/enroll/v1/renew", "application/json", `{"csr":"` + jsonCSR + `"}`, 401, "certificate_required"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				resp, err := client.Post(srv.URL+tt.path, tt.ctype, strings.NewReader(tt.body))
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				var e errorJSON
				if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
					t.Fatal(err)
				}
				if resp.StatusCode != tt.status || e.Error != tt.reason || e.Message == "" {
					t.Errorf("got %d %+v, want %d %s", resp.StatusCode, e, tt.status, tt.reason)
				}
			})
		}
		// The code survived every refusal.
		cs, _ := r.Codes(context.Background(), "g")
		if len(cs) != 1 || cs[0].State != "active" {
			t.Errorf("code after refused requests: %+v", cs)
		}
		resp, err := client.Get(srv.URL + "/enroll/v1")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("GET /enroll/v1: %d", resp.StatusCode)
		}
	})
}
