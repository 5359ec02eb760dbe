package mqtt_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	gosync "sync"
	"testing"
	"time"

	"github.com/kogge-fleet/kogge/agent/internal/testserver"
	"github.com/kogge-fleet/kogge/agent/mqtt"
	"github.com/kogge-fleet/kogge/agent/store"
	"github.com/kogge-fleet/kogge/agent/sync"
	"github.com/kogge-fleet/kogge/agent/sync/synctest"
	"github.com/kogge-fleet/kogge/protocol"
)

const device = "dev-1"

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func fastOpts() mqtt.Options {
	return mqtt.Options{
		KeepAlive:      5 * time.Second,
		ConnectTimeout: 5 * time.Second,
		MinBackoff:     10 * time.Millisecond,
		MaxBackoff:     100 * time.Millisecond,
		Logger:         quiet(),
	}
}

// rig is a device (engine + transport over an in-memory outbox) and the
// test server, on one broker.
type rig struct {
	t    *testing.T
	box  *synctest.Outbox
	srv  *testserver.Server
	tr   *mqtt.Transport
	eng  *sync.Engine
	stop func()
}

// startServer serves the test server on the given server-side transport.
func startServer(t *testing.T, conn sync.Transport) *testserver.Server {
	srv := testserver.New(testserver.Options{Logger: quiet()})
	ctx, cancel := context.WithCancel(context.Background())
	var wg gosync.WaitGroup
	wg.Go(func() {
		if err := srv.Serve(ctx, conn); err != nil {
			t.Errorf("server: %v", err)
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
	return srv
}

func startDevice(t *testing.T, srv *testserver.Server, cfg mqtt.Config) *rig {
	t.Helper()
	tr, err := mqtt.New(cfg, fastOpts())
	if err != nil {
		t.Fatal(err)
	}
	box := synctest.NewOutbox()
	eng, err := sync.New(cfg.Device, box, tr, sync.Options{
		ChunkSize: 4096, AckTimeout: time.Second, HelloTimeout: time.Second, Logger: quiet(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg gosync.WaitGroup
	wg.Go(func() {
		if err := tr.Run(ctx); err != nil {
			t.Errorf("transport: %v", err)
		}
	})
	wg.Go(func() {
		if err := eng.Run(ctx); err != nil {
			t.Errorf("engine: %v", err)
		}
	})
	var once gosync.Once
	stop := func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(stop)
	return &rig{t: t, box: box, srv: srv, tr: tr, eng: eng, stop: stop}
}

func (r *rig) add(n int) []protocol.Record {
	recs := make([]protocol.Record, n)
	for i := range recs {
		c := store.Capture{Kind: "test.record", Office: "office-1", Sealed: bytes.Repeat([]byte{byte(i)}, 100)}
		if i%4 == 0 {
			data := make([]byte, 10_000+i)
			rand.Read(data)
			c.Blobs = []store.BlobData{{Role: "photo", Data: data}}
		}
		recs[i] = r.box.Add(c)
	}
	r.eng.Poke()
	return recs
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

func (r *rig) drain(recs []protocol.Record) {
	r.t.Helper()
	waitFor(r.t, "drain", func() bool { return len(r.box.Unsent()) == 0 && r.box.BlobsLeft() == 0 })
	got := r.srv.Records(device)
	if len(got) != len(recs) {
		r.t.Fatalf("server has %d records, want %d", len(got), len(recs))
	}
	for i := range got {
		if got[i].ID != recs[i].ID {
			r.t.Fatalf("server record %d is seq %d, want seq %d", i, got[i].Seq, recs[i].Seq)
		}
		for _, ref := range recs[i].Blobs {
			if b, _ := r.srv.Blob(device, ref.ID); !b.Complete || protocol.SumOf(b.Data) != ref.SHA256 {
				r.t.Fatalf("blob of record %d incomplete or wrong", recs[i].Seq)
			}
		}
	}
}

func mochi(t *testing.T, tlsConf *tls.Config) (*testserver.Broker, *testserver.Server) {
	t.Helper()
	b, err := testserver.StartBroker(testserver.BrokerOptions{TLS: tlsConf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	in, err := testserver.NewInline(b.Server, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(in.Close)
	return b, startServer(t, in)
}

func states(ps []protocol.Presence) []protocol.PresenceState {
	out := make([]protocol.PresenceState, len(ps))
	for i, p := range ps {
		out[i] = p.State
	}
	return out
}

func TestSyncOverMochi(t *testing.T) {
	b, srv := mochi(t, nil)
	r := startDevice(t, srv, mqtt.Config{Broker: b.URL, Device: device, Software: "test-1.0"})
	recs := r.add(60)
	r.drain(recs)

	ps := srv.Presences(device)
	if len(ps) == 0 || ps[0].State != protocol.Online || ps[0].Software != "test-1.0" {
		t.Fatalf("presences %+v: want online first", ps)
	}
	r.stop()
	waitFor(t, "offline presence", func() bool {
		ps := srv.Presences(device)
		return len(ps) == 2 && ps[1].State == protocol.Offline && ps[1].Session == ps[0].Session
	})
	if s := r.tr.Stats(); s.Connects != 1 || s.PublishTimeouts != 0 {
		t.Errorf("transport stats %+v", s)
	}
}

// Kicking the device off the broker fires its last will (offline, retained),
// and the transport reconnects by itself; the engine starts a new session.
func TestLastWillAndReconnect(t *testing.T) {
	b, srv := mochi(t, nil)
	r := startDevice(t, srv, mqtt.Config{Broker: b.URL, Device: device})
	recs := r.add(8)
	r.drain(recs)

	cl, ok := b.Server.Clients.Get(device)
	if !ok {
		t.Fatal("the device is not connected to the broker")
	}
	cl.Stop(errors.New("kicked by the test"))
	waitFor(t, "will and reconnect", func() bool { return len(srv.Presences(device)) >= 3 })
	ps := srv.Presences(device)
	if got := states(ps[:3]); got[0] != protocol.Online || got[1] != protocol.Offline || got[2] != protocol.Online {
		t.Fatalf("presences %v: want online, offline (will), online", got)
	}
	if ps[1].Session != ps[0].Session || ps[2].Session == ps[0].Session {
		t.Errorf("sessions: will %v for %v, reconnect %v", ps[1].Session, ps[0].Session, ps[2].Session)
	}
	// The retained presence is the newest.
	sub := b.Server.Topics.Messages(protocol.TopicRoot + device + "/state")
	if len(sub) != 1 {
		t.Fatalf("%d retained presences", len(sub))
	}
	env, err := protocol.Decode(sub[0].Payload)
	if err != nil || env.Body.(*protocol.Presence).State != protocol.Online {
		t.Fatalf("retained presence %v, %v", env, err)
	}
	more := r.add(8)
	r.drain(append(recs, more...))
	if s := r.tr.Stats(); s.Connects < 2 || s.Disconnects < 1 {
		t.Errorf("transport stats %+v", s)
	}
	waitFor(t, "second session", func() bool { return r.eng.Stats().Sessions >= 2 })
}

func TestMutualTLS(t *testing.T) {
	ca := newCA(t)
	serverCert := ca.issue(t, "broker", true)
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	b, srv := mochi(t, &tls.Config{
		Certificates: []tls.Certificate{serverCert},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	})
	t.Run("device certificate", func(t *testing.T) {
		r := startDevice(t, srv, mqtt.Config{Broker: b.URL, Device: device, TLS: &tls.Config{
			RootCAs: pool, Certificates: []tls.Certificate{ca.issue(t, device, false)}, MinVersion: tls.VersionTLS12,
		}})
		r.drain(r.add(10))
	})
	t.Run("certificate of another CA", func(t *testing.T) {
		other := newCA(t)
		tr, err := mqtt.New(mqtt.Config{Broker: b.URL, Device: "dev-2", TLS: &tls.Config{
			RootCAs: pool, Certificates: []tls.Certificate{other.issue(t, "dev-2", false)}, MinVersion: tls.VersionTLS12,
		}}, fastOpts())
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- tr.Run(ctx) }()
		waitFor(t, "a refused connection", func() bool { return tr.Stats().ConnectFailures >= 2 })
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if s := tr.Stats(); s.Connects != 0 {
			t.Errorf("connected with a certificate of another CA: %+v", s)
		}
	})
}

func TestConfigValidation(t *testing.T) {
	tests := []struct {
		name string
		cfg  mqtt.Config
		opts mqtt.Options
	}{
		{"ssl without certificate", mqtt.Config{Broker: "ssl://127.0.0.1:8883", Device: device}, mqtt.Options{}},
		{"unknown scheme", mqtt.Config{Broker: "http://127.0.0.1:80", Device: device}, mqtt.Options{}},
		{"bad device", mqtt.Config{Broker: "tcp://127.0.0.1:1", Device: "a/b"}, mqtt.Options{}},
		{"keepalive below a second", mqtt.Config{Broker: "tcp://127.0.0.1:1", Device: device}, mqtt.Options{KeepAlive: time.Millisecond}},
		{"backoff inverted", mqtt.Config{Broker: "tcp://127.0.0.1:1", Device: device}, mqtt.Options{MinBackoff: time.Minute, MaxBackoff: time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := mqtt.New(tt.cfg, tt.opts); err == nil {
				t.Error("New accepted it")
			}
		})
	}
}

func TestSyncOverMosquitto(t *testing.T) {
	if !testserver.HaveMosquitto() {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and %s is missing: install mosquitto (make deps)", testserver.MosquittoPath)
		}
		t.Skipf("%s is not installed", testserver.MosquittoPath)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := testserver.StartMosquitto(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)
	conn, err := testserver.Dial(ctx, m.URL, "kogge-testserver")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	srv := startServer(t, conn)
	r := startDevice(t, srv, mqtt.Config{Broker: m.URL, Device: device})
	recs := r.add(60)
	r.drain(recs)
	r.stop()
	waitFor(t, "offline presence", func() bool {
		ps := srv.Presences(device)
		return len(ps) >= 2 && ps[len(ps)-1].State == protocol.Offline
	})
}

type ca struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newCA(t *testing.T) *ca {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "kogge test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &ca{cert: cert, key: key}
}

func (c *ca) issue(t *testing.T, name string, server bool) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: n,
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, &key.PublicKey, c.key)
	if err != nil {
		t.Fatal(fmt.Errorf("issue %s: %w", name, err))
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
