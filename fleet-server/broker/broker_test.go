package broker

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/kogge-fleet/kogge/protocol"
)

type pahoOpts struct {
	url      string
	clientID string
	tls      *tls.Config
	username string
	will     string // will topic, "" for none
	lost     chan error
}

// dial connects a paho client and returns it, or the connect error.
func dial(t *testing.T, o pahoOpts) (paho.Client, error) {
	t.Helper()
	opts := paho.NewClientOptions().AddBroker(o.url).SetClientID(o.clientID).
		SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(5 * time.Second).
		SetCleanSession(true).SetKeepAlive(30 * time.Second).
		SetProtocolVersion(4) // no fallback to 3.1 after a refusal
	if o.tls != nil {
		opts.SetTLSConfig(o.tls)
	}
	if o.username != "" {
		opts.SetUsername(o.username)
	}
	if o.will != "" {
		opts.SetWill(o.will, "offline", 1, true)
	}
	if o.lost != nil {
		opts.SetConnectionLostHandler(func(_ paho.Client, err error) { o.lost <- err })
	}
	c := paho.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return nil, errors.New("connect timed out")
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c, nil
}

func tlsURL(b *Broker) string { return "ssl://" + b.Addr().String() }

func TestConnectRefusals(t *testing.T) {
	p := newTestPKI(t)
	rev := newFakeRevocations()
	b, reg := startBroker(t, p, rev, Options{})
	good := p.device(t, "kiosk-1")
	revokedDev := p.device(t, "kiosk-2")
	rev.revokeDevice("kiosk-2")
	badName := p.device(t, "kiosk/#")
	bridgeKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	// A bridge certificate from the same CA whose CN is a valid device id.
	bridgeCert := p.client(t, pkix.Name{Organization: []string{"Kogge"}, OrganizationalUnit: []string{bridgeUnit},
		CommonName: "bridge.buergeramt"}, bridgeKey)

	tests := []struct {
		name   string
		o      pahoOpts
		reason string // "" = admitted
	}{
		{"admitted", pahoOpts{clientID: "kiosk-1", tls: p.clientTLS(&good), will: "kogge/v1/d/kiosk-1/state"}, ""},
		{"client id differs", pahoOpts{clientID: "kiosk-9", tls: p.clientTLS(&good)}, refusedClientID},
		{"will on another device", pahoOpts{clientID: "kiosk-1", tls: p.clientTLS(&good), will: "kogge/v1/d/kiosk-9/state"}, refusedWillTopic},
		{"revoked device", pahoOpts{clientID: "kiosk-2", tls: p.clientTLS(&revokedDev)}, refusedRevoked},
		{"certificate names no valid device", pahoOpts{clientID: "kiosk/#", tls: p.clientTLS(&badName)}, refusedBadIdentity},
		{"no certificate", pahoOpts{clientID: "kiosk-1", tls: p.clientTLS(nil)}, refusedNoCertificate},
		{"bridge certificate", pahoOpts{clientID: "bridge.buergeramt", tls: p.clientTLS(&bridgeCert)}, refusedBridge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.o.url = tlsURL(b)
			var before float64
			if tt.reason != "" {
				before = counter(t, reg, "kogge_broker_connects_refused_total", tt.reason)
			}
			c, err := dial(t, tt.o)
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				c.Disconnect(100)
				return
			}
			if err == nil {
				t.Fatal("admitted")
			}
			eventually(t, "refusal counted as "+tt.reason, func() bool {
				return counter(t, reg, "kogge_broker_connects_refused_total", tt.reason) == before+1
			})
		})
	}
}

func TestInlineClientAndACL(t *testing.T) {
	p := newTestPKI(t)
	b, reg := startBroker(t, p, newFakeRevocations(), Options{})
	var up inbox
	if err := b.Subscribe(protocol.UpFilter, up.add); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish("kogge/v1/d/hh-1/twin", []byte("desired"), true); err != nil {
		t.Fatal(err)
	}
	cert := p.device(t, "hh-1")
	c, err := dial(t, pahoOpts{url: tlsURL(b), clientID: "hh-1", tls: p.clientTLS(&cert)})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 10)
	tok := c.SubscribeMultiple(map[string]byte{
		"kogge/v1/d/hh-1/twin":   1,
		"kogge/v1/d/hh-1/down/#": 1,
		"kogge/v1/d/+/up/#":      1, // a wildcard beyond its own prefix
		"kogge/v1/d/hh-2/down/#": 1,
		"kogge/v1/d/hh-2/twin":   1,
		// (paho calls the handler once per matching filter, so none of
		// these may match what the device is sent.)
	}, func(_ paho.Client, m paho.Message) { got <- m.Topic() + " " + string(m.Payload()) })
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	for filter, code := range tok.(*paho.SubscribeToken).Result() {
		own := strings.HasPrefix(filter, "kogge/v1/d/hh-1/")
		if own != (code == 1) {
			t.Errorf("SUBACK for %s = %#x", filter, code)
		}
	}
	wait := func(want string) {
		t.Helper()
		select {
		case m := <-got:
			if m != want {
				t.Errorf("device got %q, want %q", m, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("device did not get %q", want)
		}
	}
	wait("kogge/v1/d/hh-1/twin desired")
	if err := b.Publish("kogge/v1/d/hh-2/down/ack", []byte("not yours"), false); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish("kogge/v1/d/hh-1/down/ack", []byte("ack"), false); err != nil {
		t.Fatal(err)
	}
	wait("kogge/v1/d/hh-1/down/ack ack")

	// A device's publish reaches the inline subscriber; a refused QoS 0
	// publish is dropped without closing the connection.
	if tok := c.Publish("kogge/v1/d/hh-2/up/record", 0, false, "forged"); !tok.WaitTimeout(5 * time.Second) {
		t.Fatal("publish timed out")
	}
	if tok := c.Publish("kogge/v1/d/hh-1/up/record", 1, false, "record"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	eventually(t, "the device's record at the server", func() bool { return up.has("kogge/v1/d/hh-1/up/record record") })
	if up.has("kogge/v1/d/hh-2/up/record forged") {
		t.Error("forged publish delivered")
	}
	if n := counter(t, reg, "kogge_broker_acl_denied_total", "publish"); n != 1 {
		t.Errorf("publish denials = %v, want 1", n)
	}
	if n := counter(t, reg, "kogge_broker_clients_connected", ""); n != 1 {
		t.Errorf("clients connected = %v, want 1", n)
	}
}

func TestDisconnectDevice(t *testing.T) {
	p := newTestPKI(t)
	rev := newFakeRevocations()
	b, reg := startBroker(t, p, rev, Options{})
	cert := p.device(t, "kiosk-7")
	lost := make(chan error, 1)
	o := pahoOpts{url: tlsURL(b), clientID: "kiosk-7", tls: p.clientTLS(&cert), lost: lost}
	if _, err := dial(t, o); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the device to be connected", func() bool { return b.Connected() == 1 })

	rev.revokeDevice("kiosk-7")
	if !b.DisconnectDevice("kiosk-7") {
		t.Error("DisconnectDevice found no connected device")
	}
	select {
	case <-lost:
	case <-time.After(10 * time.Second):
		t.Fatal("the device's connection survived its revocation")
	}
	eventually(t, "no client connected", func() bool { return b.Connected() == 0 })
	if n := counter(t, reg, "kogge_broker_revocation_disconnects_total", ""); n != 1 {
		t.Errorf("revocation disconnects = %v, want 1", n)
	}
	o.lost = nil
	if _, err := dial(t, o); err == nil {
		t.Error("revoked device reconnected")
	}
	if b.DisconnectDevice("kiosk-7") || b.DisconnectDevice("nobody") {
		t.Error("DisconnectDevice reports a connection that is not there")
	}
}

func TestDevInsecureListener(t *testing.T) {
	p := newTestPKI(t)
	rev := newFakeRevocations()
	rev.revokeDevice("dev-revoked")
	var logs bytes.Buffer
	b, _ := startBroker(t, p, rev, Options{
		DevInsecure: true, DevAddress: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if !strings.Contains(logs.String(), "INSECURE") {
		t.Errorf("no loud warning about the insecure listener in the log:\n%s", logs.String())
	}
	url := "tcp://" + b.DevAddr().String()
	tests := []struct {
		name, clientID, username string
		ok                       bool
	}{
		{"username is the device id", "dev-1", "dev-1", true},
		{"no username", "dev-1", "", false},
		{"client id differs", "dev-2", "dev-1", false},
		{"revoked", "dev-revoked", "dev-revoked", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := dial(t, pahoOpts{url: url, clientID: tt.clientID, username: tt.username})
			if (err == nil) != tt.ok {
				t.Fatalf("connect: %v, want ok=%v", err, tt.ok)
			}
			if err != nil {
				return
			}
			// The ACL holds here too.
			tok := c.Subscribe("#", 1, func(paho.Client, paho.Message) {})
			if !tok.WaitTimeout(5*time.Second) || tok.(*paho.SubscribeToken).Result()["#"] != 0x80 {
				t.Errorf("subscription to # on the development listener not refused")
			}
		})
	}
}

func TestDevListenerOffByDefault(t *testing.T) {
	p := newTestPKI(t)
	b, _ := startBroker(t, p, newFakeRevocations(), Options{DevAddress: "127.0.0.1:0"})
	if b.DevAddr() != nil {
		t.Errorf("development listener open without DevInsecure at %v", b.DevAddr())
	}
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		o    Options
		ok   bool
	}{
		{"defaults", Options{}, true},
		{"packet size too small", Options{MaxPacketSize: protocol.MaxMessageSize}, false},
		{"insecure without address", Options{DevInsecure: true}, false},
		{"tiny read buffer", Options{ReadBufferSize: 16}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.o.setDefaults()
			if err := tt.o.Validate(); (err == nil) != tt.ok {
				t.Errorf("Validate() = %v, want ok=%v", err, tt.ok)
			}
		})
	}
	if _, err := New(&tls.Config{}, newFakeRevocations(), Options{}); err == nil {
		t.Error("New accepted a TLS configuration without certificate and CA")
	}
}

func TestLimitedHandler(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(newLimitedHandler(slog.NewTextHandler(&buf, nil), slog.LevelWarn, 3, time.Hour))
	log.Info("dropped: below the level")
	for range 10 {
		log.Warn("flood")
	}
	if n := strings.Count(buf.String(), "flood"); n != 3 {
		t.Errorf("%d of 10 warnings passed, want 3:\n%s", n, buf.String())
	}
	if strings.Contains(buf.String(), "below the level") {
		t.Error("info record passed")
	}
}

func TestCloseBeforeStart(t *testing.T) {
	p := newTestPKI(t)
	b, err := New(p.serverTLS(), newFakeRevocations(), Options{Address: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(context.Background()); err == nil {
		b.Close()
		t.Error("a closed broker started")
	}
}

// TestCloseWhileClientsComeAndGo closes the broker while clients connect and
// leave as fast as they can. mochi's own way of disconnecting a listener's
// clients on Close deadlocked when a client came or went at the wrong
// moment (mochi-mqtt/server#488); the broker must close every time.
func TestCloseWhileClientsComeAndGo(t *testing.T) {
	p := newTestPKI(t)
	rounds := 20
	if testing.Short() {
		rounds = 5
	}
	for round := range rounds {
		b, _ := startBroker(t, p, newFakeRevocations(), Options{DevInsecure: true, DevAddress: "127.0.0.1:0"})
		addr := b.DevAddr().String()
		stop := make(chan struct{})
		var acked atomic.Int64
		var wg sync.WaitGroup
		for w := range 8 {
			packet := connectPacket(t, fmt.Sprintf("dev-%d", w))
			wg.Go(func() {
				for i := 0; i < 10000; i++ {
					select {
					case <-stop:
						return
					default:
					}
					conn, err := net.DialTimeout("tcp", addr, time.Second)
					if err != nil {
						return // the broker has closed
					}
					conn.SetDeadline(time.Now().Add(time.Second))
					conn.Write(packet)
					if n, _ := io.ReadFull(conn, make([]byte, 4)); n == 4 { // CONNACK
						acked.Add(1)
					}
					conn.Close()
				}
			})
		}
		// Let the churn reach the broker before closing it.
		eventually(t, "clients connecting", func() bool { return acked.Load() >= 16 })
		closed := make(chan struct{})
		go func() { b.Close(); close(closed) }()
		select {
		case <-closed:
		case <-time.After(20 * time.Second):
			t.Fatalf("round %d: broker Close hangs while clients come and go", round)
		}
		close(stop)
		wg.Wait()
	}
}

// connectPacket is an MQTT 3.1.1 CONNECT with the client id as username.
func connectPacket(t *testing.T, id string) []byte {
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: 4,
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 30,
			ClientIdentifier: id, UsernameFlag: true, Username: []byte(id)},
	}
	var buf bytes.Buffer
	if err := pk.ConnectEncode(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
