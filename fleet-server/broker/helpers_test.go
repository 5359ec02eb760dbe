package broker

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// testPKI is a fleet CA for tests with a server certificate for 127.0.0.1.
type testPKI struct {
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	server tls.Certificate
	serial int64
	mu     sync.Mutex
}

func newTestPKI(t testing.TB) *testPKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test fleet CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	p := &testPKI{ca: ca, caKey: key, serial: 100}
	skey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := p.sign(t, &x509.Certificate{
		Subject: pkix.Name{CommonName: "kogge test server"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, &skey.PublicKey)
	p.server = tls.Certificate{Certificate: [][]byte{leaf.Raw, ca.Raw}, PrivateKey: skey, Leaf: leaf}
	return p
}

func (p *testPKI) sign(t testing.TB, tmpl *x509.Certificate, pub *ecdsa.PublicKey) *x509.Certificate {
	t.Helper()
	p.mu.Lock()
	p.serial++
	tmpl.SerialNumber = big.NewInt(p.serial)
	p.mu.Unlock()
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, pub, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// device issues a client certificate for a device id with a fresh key.
func (p *testPKI) device(t testing.TB, id string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return p.deviceWithKey(t, id, key)
}

func (p *testPKI) deviceWithKey(t testing.TB, id string, key *ecdsa.PrivateKey) tls.Certificate {
	return p.client(t, pkix.Name{CommonName: id}, key)
}

// client issues a client certificate for subject.
func (p *testPKI) client(t testing.TB, subject pkix.Name, key *ecdsa.PrivateKey) tls.Certificate {
	leaf := p.sign(t, &x509.Certificate{
		Subject: subject, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, &key.PublicKey)
	return tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}
}

func (p *testPKI) serverTLS() *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(p.ca)
	return &tls.Config{Certificates: []tls.Certificate{p.server}, ClientCAs: pool}
}

// clientTLS is a device's TLS configuration; cert may be nil.
func (p *testPKI) clientTLS(cert *tls.Certificate) *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(p.ca)
	cfg := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return cfg
}

// writeFiles writes the CA and a device's certificate and key as PEM files
// and returns their paths.
func (p *testPKI) writeFiles(t testing.TB, dir string, cert tls.Certificate) (caFile, certFile, keyFile string) {
	t.Helper()
	name := cert.Leaf.Subject.CommonName
	caFile = filepath.Join(dir, "ca.pem")
	certFile = filepath.Join(dir, name+".crt")
	keyFile = filepath.Join(dir, name+".key")
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	for f, b := range map[string][]byte{
		caFile:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.ca.Raw}),
		certFile: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Leaf.Raw}),
		keyFile:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	} {
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return caFile, certFile, keyFile
}

// fakeRevocations is an in-memory Revocations.
type fakeRevocations struct {
	mu      sync.Mutex
	devices map[string]bool
	serials map[string]bool
}

func newFakeRevocations() *fakeRevocations {
	return &fakeRevocations{devices: map[string]bool{}, serials: map[string]bool{}}
}

func (f *fakeRevocations) IsRevoked(device string, serial *big.Int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.devices[device] || (serial != nil && f.serials[serial.String()])
}

func (f *fakeRevocations) revokeDevice(d string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.devices[d] = true
}

func (f *fakeRevocations) revokeSerial(s *big.Int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.serials[s.String()] = true
}

// startBroker starts a broker on a free loopback port and closes it at the
// end of the test.
func startBroker(t testing.TB, p *testPKI, rev Revocations, opts Options) (*Broker, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	if opts.Address == "" {
		opts.Address = "127.0.0.1:0"
	}
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	opts.Registerer = reg
	b, err := New(p.serverTLS(), rev, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b, reg
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// counter reads a counter of reg by name and label value ("" for none).
func counter(t testing.TB, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label == "" || (len(m.GetLabel()) > 0 && m.GetLabel()[0].GetValue() == label) {
				if m.GetCounter() != nil {
					return m.GetCounter().GetValue()
				}
				return m.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("no metric %s{%s}", name, label)
	return 0
}

// inbox collects what an inline subscription receives.
type inbox struct {
	mu   sync.Mutex
	msgs []string // "topic payload"
}

func (in *inbox) add(topic string, payload []byte) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.msgs = append(in.msgs, topic+" "+string(payload))
}

func (in *inbox) all() []string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]string(nil), in.msgs...)
}

func (in *inbox) has(msg string) bool {
	for _, m := range in.all() {
		if m == msg {
			return true
		}
	}
	return false
}
