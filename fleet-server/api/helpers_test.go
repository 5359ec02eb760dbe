package api

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"

	"github.com/kogge-fleet/kogge/fleet-server/audit"
	"github.com/kogge-fleet/kogge/fleet-server/commands"
	"github.com/kogge-fleet/kogge/fleet-server/delivery"
	"github.com/kogge-fleet/kogge/fleet-server/registry"
	"github.com/kogge-fleet/kogge/fleet-server/retention"
	"github.com/kogge-fleet/kogge/fleet-server/store"
	"github.com/kogge-fleet/kogge/fleet-server/twin"
)

// testEnv is a handler over the real services on a fresh SQLite store; only
// the broker is a fake that keeps what is published.
type testEnv struct {
	h      *Handler
	db     *store.DB
	reg    *registry.Registry
	broker *fakeBroker
	q      *delivery.Queue
}

// fakeBroker keeps what is published.
type fakeBroker struct {
	mu     sync.Mutex
	topics []string
}

func (b *fakeBroker) Publish(topic string, payload []byte, retained bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.topics = append(b.topics, topic)
	return nil
}

func (b *fakeBroker) published() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.topics...)
}

func newTestEnv(t *testing.T, edit func(o *Options)) *testEnv {
	t.Helper()
	var opts Options
	if edit != nil {
		edit(&opts)
	}
	return buildTestEnv(t, opts, nil)
}

// buildTestEnv makes a handler with opts over real services on a fresh
// store; more, when set, adds services made from the same store, commands
// and audit log before the handler is made.
func buildTestEnv(t *testing.T, opts Options, more func(s *Services, db *store.DB, cmds *commands.Service, log *audit.Log)) *testEnv {
	t.Helper()
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "kogge.db"), store.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	reg, err := registry.New(ctx, db, registry.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	b := &fakeBroker{}
	cmds, err := commands.New(db, b, commands.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	tw, err := twin.New(db, b, twin.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	log, err := audit.New(db, audit.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	q, err := delivery.New(db, b, delivery.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	sw, err := retention.New(db, q, retention.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	services := Services{Registry: reg, Records: db, Presence: db, Commands: cmds, Twin: tw,
		Audit: log, Deliveries: q, Erasure: sw, BridgeCerts: reg}
	if more != nil {
		more(&services, db, cmds, log)
	}
	h, err := New(testToken, services, opts)
	if err != nil {
		t.Fatal(err)
	}
	return &testEnv{h: h, db: db, reg: reg, broker: b, q: q}
}

// newTestHandler returns a handler over real services on a fresh store.
func newTestHandler(t *testing.T, edit func(o *Options)) *Handler {
	t.Helper()
	return newTestEnv(t, edit).h
}

// enroll enrolls a device into group through the registry, as a device
// would, and returns its id.
func (e *testEnv) enroll(t *testing.T, group, deviceID string, inv registry.Inventory) string {
	t.Helper()
	code, err := e.reg.CreateCode(context.Background(), group, registry.CodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return e.enrollWith(t, code.Secret, deviceID, inv)
}

// enrollWith enrolls a device with an enrollment code.
func (e *testEnv) enrollWith(t *testing.T, code, deviceID string, inv ...registry.Inventory) string {
	t.Helper()
	ctx := context.Background()
	var in registry.Inventory
	if len(inv) > 0 {
		in = inv[0]
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	enr, err := e.reg.Enroll(ctx, registry.EnrollRequest{
		Code: code, DeviceID: deviceID, Inventory: in,
		CSR: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}),
	})
	if err != nil {
		t.Fatal(err)
	}
	return enr.DeviceID
}
