package bench

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/kogge-fleet/kogge/fleet-server/broker"
	"github.com/kogge-fleet/kogge/protocol"
	"github.com/kogge-fleet/kogge/simulators/fleet"
)

// noRevocations revokes nothing.
type noRevocations struct{}

func (noRevocations) IsRevoked(string, *big.Int) bool { return false }

// broker: the embedded mochi broker (fleet-server/broker, as the server
// runs it, with its auth and ACL hooks and an inline subscriber) against
// an external Mosquitto (with a network subscriber, as a server would use
// it), with the same paho publishers over plain TCP on loopback: the
// brokers alone. The replicas scenario runs the server on Mosquitto.
func (r *runner) broker(ctx context.Context, dir string) (Result, error) {
	pubs, per := r.n(200, 10), r.n(500, 100)
	const size = 256
	res := Result{Unit: "msgs/s mochi", BaselineUnit: "msgs/s mosquitto", Target: "measured (no target)", StartedAt: time.Now().UTC(),
		Params: map[string]any{"publishers": pubs, "messages_per_publisher": per, "message_bytes": size, "qos": 1, "transport": "plain TCP"}}
	bin, err := exec.LookPath(r.cfg.Mosquitto)
	if err != nil {
		if r.cfg.RequireMosquitto {
			return res, fmt.Errorf("mosquitto is not installed (make deps installs it): %w", err)
		}
		res.Skipped = true
		res.Note = "mosquitto is not installed; make deps installs it"
		return res, nil
	}
	payload := make([]byte, size)
	devices := make([]string, pubs)
	for i := range devices {
		devices[i] = fmt.Sprintf("bench-b-%04d", i)
	}

	// Embedded mochi, plain-TCP listener, inline subscriber.
	tlsCfg, err := throwawayTLS()
	if err != nil {
		return res, err
	}
	devAddr, err := fleet.FreeAddr("")
	if err != nil {
		return res, err
	}
	mochi, err := broker.New(tlsCfg, noRevocations{}, broker.Options{Address: "127.0.0.1:0", DevAddress: devAddr, DevInsecure: true, Logger: r.log})
	if err != nil {
		return res, err
	}
	if err := mochi.Start(ctx); err != nil {
		return res, err
	}
	var got atomic.Int64
	if err := mochi.Subscribe(protocol.UpFilter, func(string, []byte) { got.Add(1) }); err != nil {
		mochi.Close()
		return res, err
	}
	r.progressf("mochi: %d publishers × %d messages", pubs, per)
	mochiRate, err := r.fanIn(ctx, "tcp://"+mochi.DevAddr().String(), devices, payload, per, func() int64 { return got.Load() })
	mochi.Close()
	if err != nil {
		return res, fmt.Errorf("mochi: %w", err)
	}

	// Mosquitto with a paho subscriber.
	addr, stop, err := startMosquitto(ctx, bin, dir)
	if err != nil {
		return res, err
	}
	defer stop()
	var mgot atomic.Int64
	sub := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("bench-subscriber").
		SetProtocolVersion(4).SetCleanSession(true).SetAutoReconnect(false).SetOrderMatters(false).
		SetDefaultPublishHandler(func(paho.Client, paho.Message) { mgot.Add(1) }))
	if tok := sub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return res, fmt.Errorf("connect the subscriber to mosquitto: %v", tok.Error())
	}
	defer sub.Disconnect(100)
	if tok := sub.Subscribe(protocol.UpFilter, 1, nil); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return res, fmt.Errorf("subscribe at mosquitto: %v", tok.Error())
	}
	r.progressf("mosquitto: %d publishers × %d messages", pubs, per)
	mosqRate, err := r.fanIn(ctx, "tcp://"+addr, devices, payload, per, func() int64 { return mgot.Load() })
	if err != nil {
		return res, fmt.Errorf("mosquitto: %w", err)
	}
	res.Value, res.Baseline, res.Ratio = mochiRate, mosqRate, mochiRate/mosqRate
	res.Note = "raw brokers; the replicas scenario runs servers on Mosquitto"
	return res, nil
}

// fanIn connects a publisher per device (user name = device id), publishes
// and returns messages per second until count reaches the total.
func (r *runner) fanIn(ctx context.Context, url string, devices []string, payload []byte, per int, count func() int64) (float64, error) {
	pubs := make([]*publisher, 0, len(devices))
	defer func() {
		for _, p := range pubs {
			p.close()
		}
	}()
	for _, d := range devices {
		p, err := connectPublisher(ctx, url, d, nil)
		if err != nil {
			return 0, err
		}
		pubs = append(pubs, p)
	}
	want := int64(len(devices) * per)
	base := count()
	start := time.Now()
	if err := publishAll(ctx, pubs, payload, per, 64); err != nil {
		return 0, err
	}
	if err := r.waitUntil(ctx, "fan-in", time.Minute, func() (bool, string) {
		n := count() - base
		return n >= want, fmt.Sprintf("%d of %d arrived", n, want)
	}); err != nil {
		return 0, err
	}
	return float64(want) / time.Since(start).Seconds(), nil
}

// startMosquitto runs mosquitto on a free loopback port.
func startMosquitto(ctx context.Context, bin, dir string) (string, func(), error) {
	addr, err := fleet.FreeAddr("")
	if err != nil {
		return "", nil, err
	}
	host, port, _ := net.SplitHostPort(addr)
	conf := filepath.Join(dir, "mosquitto.conf")
	body := fmt.Sprintf("listener %s %s\nallow_anonymous true\nmax_inflight_messages 0\nmax_queued_messages 100000\npersistence false\nlog_dest stderr\nlog_type error\n", port, host)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		return "", nil, err
	}
	stop, err := runMosquitto(ctx, bin, conf, addr, dir)
	if err != nil {
		return "", nil, err
	}
	return addr, stop, nil
}

// throwawayTLS is a self-signed server certificate that also serves as the
// client CA: the broker needs one, though the benchmark uses its plain-TCP
// listener.
func throwawayTLS() (*tls.Config, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}}, ClientCAs: pool}, nil
}
