package registry

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"log/slog"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/kogge-fleet/kogge/fleet-server/store"
)

func quietLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

// clock is a settable clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Now()} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// logBuffer is a concurrency-safe log sink.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// newRegistry opens a registry on db with a settable clock.
func newRegistry(t *testing.T, db *store.DB, opts Options) (*Registry, *clock) {
	t.Helper()
	c := newClock()
	if opts.Now == nil {
		opts.Now = c.Now
	}
	if opts.Logger == nil {
		opts.Logger = quietLog()
	}
	r, err := New(context.Background(), db, opts)
	if err != nil {
		t.Fatal(err)
	}
	return r, c
}

// groupAndCode creates a group and a code for it and returns the code.
func groupAndCode(t *testing.T, r *Registry, group string) string {
	t.Helper()
	ctx := context.Background()
	if _, err := r.Group(ctx, group); err != nil {
		if _, err := r.CreateGroup(ctx, group, "Group "+group); err != nil {
			t.Fatal(err)
		}
	}
	c, err := r.CreateCode(ctx, group, CodeOptions{Note: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return c.Secret
}

// csrPEM makes a key and a CSR for it.
func csrPEM(t testing.TB, curve elliptic.Curve) (*ecdsa.PrivateKey, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "ignored"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

// enrollServer serves r.Handler over HTTPS with the registry's server
// certificate, like the fleet server does.
func enrollServer(t *testing.T, r *Registry) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(r.Handler())
	srv.TLS = r.HTTPSTLSConfig()
	// httptest puts its own certificate into an empty Certificates list,
	// which would win over GetCertificate for clients without SNI.
	cert, err := r.ServerCertificate(nil)
	if err != nil {
		t.Fatal(err)
	}
	srv.TLS.Certificates = []tls.Certificate{*cert}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func pemDecode(b []byte) ([]byte, []byte) {
	block, rest := pem.Decode(b)
	if block == nil {
		return nil, rest
	}
	return block.Bytes, rest
}

func pemEncode(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}
