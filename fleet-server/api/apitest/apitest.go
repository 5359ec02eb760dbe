// Package apitest runs the real REST API for tests of its clients: the
// api.Handler over a real SQLite store in a temporary directory, with the
// real registry, commands, twin, audit, delivery and retention services,
// behind an httptest server. Only the broker is a fake that keeps what is
// published.
package apitest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"

	"github.com/kogge-fleet/kogge/fleet-server/api"
	"github.com/kogge-fleet/kogge/fleet-server/audit"
	"github.com/kogge-fleet/kogge/fleet-server/commands"
	"github.com/kogge-fleet/kogge/fleet-server/delivery"
	"github.com/kogge-fleet/kogge/fleet-server/registry"
	"github.com/kogge-fleet/kogge/fleet-server/retention"
	"github.com/kogge-fleet/kogge/fleet-server/store"
	"github.com/kogge-fleet/kogge/fleet-server/twin"
)

// Token is the API token of every test server.
const Token = "apitest-token-0123456789abcdef"

// Server is a running API.
type Server struct {
	URL string
	DB  *store.DB
	// DBFile is the SQLite file, for tests that change it behind the
	// server's back (tampering with the audit log).
	DBFile    string
	Registry  *registry.Registry
	Commands  *commands.Service
	Twin      *twin.Service
	Broker    *Broker
	Audit     *audit.Log
	Queue     *delivery.Queue
	Retention *retention.Sweeper
}

// Broker is a fake broker that keeps what is published.
type Broker struct {
	mu   sync.Mutex
	msgs []Message
}

// Message is one published message.
type Message struct {
	Topic    string
	Payload  []byte
	Retained bool
}

// Publish keeps the message.
func (b *Broker) Publish(topic string, payload []byte, retained bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.msgs = append(b.msgs, Message{topic, append([]byte(nil), payload...), retained})
	return nil
}

// Published returns what was published so far.
func (b *Broker) Published() []Message {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Message(nil), b.msgs...)
}

// New starts a server; it stops when the test ends.
func New(t testing.TB) *Server {
	t.Helper()
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)
	file := filepath.Join(t.TempDir(), "kogge.db")
	db, err := store.Open(ctx, file, store.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	reg, err := registry.New(ctx, db, registry.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	b := &Broker{}
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
	h, err := api.New(Token, api.Services{Registry: reg, Records: db, Presence: db, Commands: cmds, Twin: tw,
		Audit: log, Deliveries: q, Erasure: sw, BridgeCerts: reg}, api.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &Server{URL: srv.URL, DB: db, DBFile: file, Registry: reg, Commands: cmds, Twin: tw, Broker: b,
		Audit: log, Queue: q, Retention: sw}
}

// Enroll enrolls a device with an enrollment code, as a device would, and
// returns its id.
func (s *Server) Enroll(t testing.TB, code, deviceID string, inv registry.Inventory) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	e, err := s.Registry.Enroll(context.Background(), registry.EnrollRequest{Code: code, DeviceID: deviceID, Inventory: inv,
		CSR: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})})
	if err != nil {
		t.Fatal(err)
	}
	return e.DeviceID
}

// EnrollInto creates a code for group and enrolls a device with it.
func (s *Server) EnrollInto(t testing.TB, group, deviceID string, inv registry.Inventory) string {
	t.Helper()
	code, err := s.Registry.CreateCode(context.Background(), group, registry.CodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s.Enroll(t, code.Secret, deviceID, inv)
}
