package bridgeclient_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/fleet-server/delivery"
	"github.com/kogge-fleet/kogge/fleet-server/delivery/bridgeclient"
	"github.com/kogge-fleet/kogge/fleet-server/registry"
	"github.com/kogge-fleet/kogge/fleet-server/store"
	"github.com/kogge-fleet/kogge/fleet-server/store/pgtest"
	"github.com/kogge-fleet/kogge/protocol"
)

// The client against the real bridge API: delivery.NewHandler over a real
// store and queue, served over TLS with the registry's server certificate,
// and bridges with client certificates the registry issued.

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

type fleet struct {
	db    *store.DB
	reg   *registry.Registry
	q     *delivery.Queue
	url   string
	roots *x509.CertPool
}

func openStore(t *testing.T, dsn string) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), dsn, store.Options{Logger: quiet(), MaxOpenConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

type nopBroker struct{}

func (nopBroker) Publish(string, []byte, bool) error { return nil }

func newFleet(t *testing.T, db *store.DB) *fleet {
	t.Helper()
	ctx := context.Background()
	reg, err := registry.New(ctx, db, registry.Options{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	q, err := delivery.New(db, nopBroker{}, delivery.Options{Logger: quiet(), MaxAttempts: 5})
	if err != nil {
		t.Fatal(err)
	}
	auth := func(ctx context.Context, cert *x509.Certificate) (string, error) {
		office, err := reg.BridgeOffice(ctx, cert)
		if errors.Is(err, registry.ErrNotBridge) || errors.Is(err, registry.ErrRevoked) {
			return "", fmt.Errorf("%w: %v", delivery.ErrForbidden, err)
		}
		return office, err
	}
	h, err := delivery.NewHandler(q, auth, delivery.HandlerOptions{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	// As the app serves it: a TLS listener with the registry's server
	// certificate that verifies client certificates against the fleet CA.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(tls.NewListener(ln, reg.HTTPSTLSConfig())) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Error(err)
		}
	})
	roots := x509.NewCertPool()
	roots.AddCert(reg.CA())
	if err := db.CreateGroup(ctx, store.Group{ID: "g", Name: "g", CreatedAt: 1}); err != nil {
		t.Fatal(err)
	}
	return &fleet{db: db, reg: reg, q: q, url: "https://" + ln.Addr().String(), roots: roots}
}

// csr makes a key and a PEM CSR for it.
func csr(t *testing.T) (*ecdsa.PrivateKey, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

// tlsConfig returns a client TLS configuration with certPEM and key.
func (f *fleet) tlsConfig(t *testing.T, certPEM []byte, key *ecdsa.PrivateKey) *tls.Config {
	t.Helper()
	cfg := &tls.Config{RootCAs: f.roots, MinVersion: tls.VersionTLS12}
	if certPEM != nil {
		block, _ := pem.Decode(certPEM)
		cfg.Certificates = []tls.Certificate{{Certificate: [][]byte{block.Bytes}, PrivateKey: key}}
	}
	return cfg
}

// bridge issues a bridge certificate for office and returns a client with
// it, and the certificate's serial.
func (f *fleet) bridge(t *testing.T, office string) (*bridgeclient.Client, string) {
	t.Helper()
	key, req := csr(t)
	bc, err := f.reg.IssueBridgeCertificate(context.Background(), office, req)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(bc.Certificate, "BEGIN CERTIFICATE") || bc.CommonName != "bridge."+office {
		t.Fatalf("issued %+v", bc)
	}
	return f.client(t, f.tlsConfig(t, []byte(bc.Certificate), key)), bc.Serial
}

func (f *fleet) client(t *testing.T, cfg *tls.Config) *bridgeclient.Client {
	t.Helper()
	c, err := bridgeclient.New(f.url, cfg, bridgeclient.Options{Timeout: 10 * time.Second, Retries: 1,
		BackoffBase: time.Millisecond, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// record stores a complete record of device for office with blob.
func (f *fleet) record(t *testing.T, device, office string, seq uint64, blob []byte) *protocol.Record {
	t.Helper()
	ctx := context.Background()
	if err := f.db.Tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO devices (id, group_id, created_at, inventory_at) VALUES ($1, 'g', 1, 1) ON CONFLICT DO NOTHING`, device)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	r := &protocol.Record{ID: uuid.Must(uuid.NewV7()), Seq: seq, Kind: "enforcement.notice", Office: office, KeyID: office + "-1",
		CreatedAt: protocol.At(time.Now()), Sealed: []byte("sealed notice"),
		Blobs: []protocol.BlobRef{{ID: uuid.Must(uuid.NewV7()), Role: "photo", Size: uint64(len(blob)), SHA256: protocol.SumOf(blob)}}}
	now := time.Now().UnixMilli()
	err := f.db.Ingest(ctx, func(tx *store.IngestTx) error {
		if _, err := tx.InsertRecord(ctx, device, r, now); err != nil {
			return err
		}
		if err := tx.AppendChunk(ctx, device, r.ID, r.Blobs[0].ID, 0, blob, now); err != nil {
			return err
		}
		if err := tx.CompleteBlob(ctx, device, r.ID, r.Blobs[0].ID, now); err != nil {
			return err
		}
		_, err := tx.EnqueueDelivery(ctx, device, r.ID, now)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// The client implements what a bridge needs, like delivery.Queue.
type source interface {
	Lease(ctx context.Context, office string, max int, visibility time.Duration) ([]delivery.Delivery, error)
	Blob(ctx context.Context, id, blob uuid.UUID, w io.Writer) error
	Ack(ctx context.Context, id uuid.UUID, attempt int, r delivery.Receipt) error
	Fail(ctx context.Context, id uuid.UUID, attempt int, reason string, permanent bool) error
	Update(ctx context.Context, id uuid.UUID, state protocol.DeliveryState, reference, note string) error
}

var (
	_ source = (*bridgeclient.Client)(nil)
	_ source = (*delivery.Queue)(nil)
)

func TestBridgeAPIOverTLS(t *testing.T) {
	pgtest.Stores(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		f := newFleet(t, db)
		a, serialA := f.bridge(t, "amt-a")
		b, _ := f.bridge(t, "amt-b")
		photo := bytes.Repeat([]byte{0xff, 0xd8, 7}, 40_000)
		rA := f.record(t, "hh-1", "amt-a", 1, photo)
		rB := f.record(t, "hh-1", "amt-b", 2, []byte("other office's photo"))

		ds, err := a.Lease(ctx, "amt-a", 10, time.Minute)
		if err != nil || len(ds) != 1 {
			t.Fatalf("lease: %v %v", ds, err)
		}
		d := ds[0]
		if d.ID != rA.ID || d.Attempt != 1 || string(d.Sealed) != "sealed notice" || d.KeyID != "amt-a-1" ||
			len(d.Blobs) != 1 || d.Blobs[0] != rA.Blobs[0] || d.Office != "amt-a" || d.Seq != 1 {
			t.Errorf("leased %+v", d)
		}
		var buf bytes.Buffer
		if err := a.Blob(ctx, d.ID, d.Blobs[0].ID, &buf); err != nil || !bytes.Equal(buf.Bytes(), photo) {
			t.Errorf("blob: %d bytes, %v", buf.Len(), err)
		}

		// Another office's bridge sees nothing of it and may touch nothing.
		forbidden := map[string]error{
			"lease":  func() error { _, err := b.Lease(ctx, "amt-a", 1, time.Minute); return err }(),
			"blob":   b.Blob(ctx, rA.ID, rA.Blobs[0].ID, io.Discard),
			"ack":    b.Ack(ctx, rA.ID, 1, delivery.Receipt{Reference: "X"}),
			"fail":   b.Fail(ctx, rA.ID, 1, "no", true),
			"status": b.Update(ctx, rA.ID, protocol.Closed, "", ""),
		}
		for op, err := range forbidden {
			if !errors.Is(err, delivery.ErrForbidden) || !strings.Contains(err.Error(), "another office") && op != "lease" {
				t.Errorf("amt-b's %s of amt-a's record: %v, want 403", op, err)
			}
		}
		if ds, err := b.Lease(ctx, "amt-b", 10, time.Minute); err != nil || len(ds) != 1 || ds[0].ID != rB.ID {
			t.Errorf("amt-b's own lease: %v %v", ds, err)
		}

		if err := a.Update(ctx, d.ID, protocol.Delivered, "", "dropped into the OWi inbox"); err != nil {
			t.Errorf("status: %v", err)
		}
		if err := a.Ack(ctx, d.ID, 2, delivery.Receipt{Reference: "OWI-1"}); !errors.Is(err, bridgeclient.ErrLeaseLost) {
			t.Errorf("ack of another attempt: %v, want ErrLeaseLost", err)
		}
		if err := a.Ack(ctx, d.ID, 1, delivery.Receipt{Reference: "OWI-2026-17", Note: "case opened"}); err != nil {
			t.Fatalf("ack: %v", err)
		}
		if err := a.Ack(ctx, d.ID, 1, delivery.Receipt{Reference: "OWI-2026-17"}); err != nil {
			t.Errorf("second ack: %v", err)
		}
		if err := a.Fail(ctx, d.ID, 1, "late", false); !errors.Is(err, bridgeclient.ErrLeaseLost) {
			t.Errorf("failure after the ack: %v, want ErrLeaseLost", err)
		}
		if err := a.Blob(ctx, d.ID, d.Blobs[0].ID, io.Discard); !errors.Is(err, bridgeclient.ErrNotFound) {
			t.Errorf("blob after the ack: %v, want ErrNotFound", err)
		}
		if err := a.Ack(ctx, uuid.New(), 1, delivery.Receipt{Reference: "x"}); !errors.Is(err, bridgeclient.ErrNotFound) {
			t.Errorf("ack of an unknown record: %v, want ErrNotFound", err)
		}
		got, err := db.DeliveryOf(ctx, d.ID)
		if err != nil || got.State != store.DeliveryAccepted || got.Reference != "OWI-2026-17" {
			t.Errorf("delivery after the ack: %+v %v", got, err)
		}
		es, err := db.AuditEntries(ctx, store.AuditFilter{Target: "record:" + d.ID.String()})
		if err != nil || len(es) != 1 || es[0].Actor != "bridge.amt-a" {
			t.Errorf("audit of the ack: %+v %v", es, err)
		}
		if err := a.Update(ctx, d.ID, protocol.Accepted, "", ""); !errors.Is(err, delivery.ErrInvalid) {
			t.Errorf("status accepted: %v, want ErrInvalid", err)
		}

		// A revoked bridge is refused at its next request.
		if _, err := f.reg.RevokeBridgeCertificate(ctx, serialA); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Lease(ctx, "amt-a", 1, time.Minute); !errors.Is(err, delivery.ErrForbidden) {
			t.Errorf("lease with a revoked certificate: %v, want 403", err)
		}
	})
}

func TestBridgeAPIRefusesNonBridges(t *testing.T) {
	ctx := context.Background()
	f := newFleet(t, openStore(t, filepath.Join(t.TempDir(), "kogge.db")))
	// A device cannot take a bridge's name, and a device certificate is no
	// bridge's.
	code, err := f.reg.CreateCode(ctx, "g", registry.CodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	key, req := csr(t)
	if _, err := f.reg.Enroll(ctx, registry.EnrollRequest{Code: code.Secret, CSR: req, DeviceID: "bridge.amt-a"}); !errors.Is(err, registry.ErrInvalid) {
		t.Fatalf("enrolling a device as bridge.amt-a: %v, want ErrInvalid", err)
	}
	enr, err := f.reg.Enroll(ctx, registry.EnrollRequest{Code: code.Secret, CSR: req, DeviceID: "kiosk-amt-a"})
	if err != nil {
		t.Fatal(err)
	}
	device := f.client(t, f.tlsConfig(t, enr.Certificate, key))
	if _, err := device.Lease(ctx, "amt-a", 1, time.Minute); !errors.Is(err, delivery.ErrForbidden) ||
		!strings.Contains(err.Error(), "not a bridge certificate") {
		t.Errorf("device certificate: %v, want 403", err)
	}
	anonymous := f.client(t, f.tlsConfig(t, nil, nil))
	var se *bridgeclient.StatusError
	if _, err := anonymous.Lease(ctx, "amt-a", 1, time.Minute); !errors.As(err, &se) || se.Status != http.StatusUnauthorized {
		t.Errorf("no client certificate: %v, want 401", err)
	}

	// Raw requests of a real bridge: bad bodies are refused with reasons.
	bkey, breq := csr(t)
	bc, err := f.reg.IssueBridgeCertificate(ctx, "amt-a", breq)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: f.tlsConfig(t, []byte(bc.Certificate), bkey)}, Timeout: 10 * time.Second}
	for _, c := range []struct {
		method, path, body string
		status             int
		msg                string
	}{
		{"POST", "lease", `{"office":"amt-a","max":1}`, 400, "visibility_ms"},
		{"POST", "lease", `{"office":"amt-a","max":1,"visibility_ms":1000,"extra":1}`, 400, "unknown field"},
		{"POST", "lease", `{"office":"amt-a","max":1,"visibility_ms":1000} {}`, 400, "after the JSON"},
		{"POST", "lease", `{"office":"amt-a","max":1,"visibility_ms":1000,"pad":"` + strings.Repeat("x", delivery.MaxRequestBody) + `"}`, 413, "larger than"},
		{"POST", "lease", `{"office":"amt-b","max":1,"visibility_ms":1000}`, 403, "not amt-b"},
		{"POST", "records/not-a-uuid/ack", `{"attempt":1,"reference":"r"}`, 400, "not a UUID"},
		{"POST", "records/" + uuid.NewString() + "/ack", `{"attempt":1,"reference":"r"}`, 404, "not found"},
		{"GET", "records/" + uuid.NewString() + "/blobs/" + uuid.NewString(), "", 404, "not found"},
		{"GET", "nothing", "", 404, "no such endpoint"},
	} {
		req, _ := http.NewRequest(c.method, f.url+delivery.BridgePrefix+c.path, strings.NewReader(c.body))
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status || !strings.Contains(bridgeclient.DecodeError(b), c.msg) {
			t.Errorf("%s %s: %d %s, want %d with %q", c.method, c.path, resp.StatusCode, b, c.status, c.msg)
		}
	}
}

// flaky is a TLS server whose handler fails the first n requests with
// status, then serves ok.
func flaky(t *testing.T, n int32, status int, ok http.HandlerFunc) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var calls atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= n {
			w.WriteHeader(status)
			fmt.Fprintf(w, `{"error":"try %d failed"}`, calls.Load())
			return
		}
		ok(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

func TestRetries(t *testing.T) {
	ctx := context.Background()
	ok := func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }
	newClient := func(srv *httptest.Server, retries int) *bridgeclient.Client {
		c, err := bridgeclient.New(srv.URL, nil, bridgeclient.Options{HTTPClient: srv.Client(), Retries: retries,
			BackoffBase: time.Millisecond, BackoffMax: 2 * time.Millisecond, Timeout: 10 * time.Second, Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for _, c := range []struct {
		name    string
		fails   int32
		status  int
		retries int
		calls   int32
		ok      bool
	}{
		{"503 twice, then ok", 2, http.StatusServiceUnavailable, 3, 3, true},
		{"500 beyond the retries", 10, http.StatusInternalServerError, 2, 3, false},
		{"400 is not retried", 10, http.StatusBadRequest, 3, 1, false},
		{"409 is not retried", 10, http.StatusConflict, 3, 1, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv, calls := flaky(t, c.fails, c.status, ok)
			err := newClient(srv, c.retries).Ack(ctx, uuid.New(), 1, delivery.Receipt{Reference: "r"})
			if (err == nil) != c.ok || calls.Load() != c.calls {
				t.Errorf("err %v after %d calls; want ok %v after %d", err, calls.Load(), c.ok, c.calls)
			}
		})
	}

	t.Run("a blob that does not match its digest is fetched again", func(t *testing.T) {
		data := []byte("the real bytes")
		sum := protocol.SumOf(data)
		var calls atomic.Int32
		srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set(delivery.BlobDigestHeader, sum.String())
			if calls.Add(1) == 1 {
				w.Write([]byte("the fake bytes"))
				return
			}
			w.Write(data)
		}))
		defer srv.Close()
		var buf bytes.Buffer
		if err := newClient(srv, 2).Blob(ctx, uuid.New(), uuid.New(), &buf); err != nil || buf.String() != string(data) || calls.Load() != 2 {
			t.Errorf("blob %q, %v after %d calls", buf.String(), err, calls.Load())
		}
	})

	t.Run("a hanging server times out", func(t *testing.T) {
		stop := make(chan struct{})
		srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			select {
			case <-r.Context().Done():
			case <-stop:
			}
		}))
		defer srv.Close()
		defer close(stop)
		c, err := bridgeclient.New(srv.URL, nil, bridgeclient.Options{HTTPClient: srv.Client(), Retries: -1,
			Timeout: 50 * time.Millisecond, Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Lease(ctx, "amt-a", 1, time.Minute); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("lease from a hanging server: %v", err)
		}
	})
}

func TestNewRefuses(t *testing.T) {
	for _, u := range []string{"http://fleet:8443", "fleet:8443", "https://"} {
		if _, err := bridgeclient.New(u, &tls.Config{}, bridgeclient.Options{}); err == nil {
			t.Errorf("New(%q) accepted", u)
		}
	}
	if _, err := bridgeclient.New("https://fleet:8443", nil, bridgeclient.Options{}); err == nil {
		t.Error("New without TLS configuration accepted")
	}
}

func FuzzDecodeError(f *testing.F) {
	f.Add([]byte(`{"error":"lease lost"}`))
	f.Add([]byte(`<html>bad gateway</html>`))
	f.Add([]byte{0xff, 0xfe})
	f.Fuzz(func(t *testing.T, b []byte) {
		if msg := bridgeclient.DecodeError(b); len(msg) > 600 {
			t.Errorf("message of %d bytes", len(msg))
		}
	})
}
