package mqttclient_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kogge-fleet/kogge/fleet-server/brokerconfig"
	"github.com/kogge-fleet/kogge/fleet-server/brokerconfig/mosquittotest"
	"github.com/kogge-fleet/kogge/fleet-server/mqttclient"
	"github.com/kogge-fleet/kogge/protocol"
)

// received keeps what a replica's handler got.
type received struct {
	mu   sync.Mutex
	msgs []string
}

func (r *received) add(topic string, payload []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, topic+" "+string(payload))
}

func (r *received) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.msgs)
}

func eventually(t *testing.T, what string, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v (last: %s)", what, timeout, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type replicaOpts struct {
	share  string
	accept func(string) bool
	reg    *prometheus.Registry
	probe  bool
}

func newReplica(t *testing.T, f *mosquittotest.Fleet, id string, o replicaOpts) (*mqttclient.Client, *received) {
	t.Helper()
	opts := mqttclient.Options{URL: f.URL(), TLS: f.TLS(f.Replica(t, id)), ClientID: brokerconfig.ReplicaUser(id),
		Share: o.share, Accept: o.accept, Registerer: registerer(o.reg), Logger: slog.New(slog.DiscardHandler),
		MaxBackoff: 200 * time.Millisecond, ConnectWait: time.Second, PublishTimeout: 3 * time.Second}
	if o.probe {
		opts.ProbeTopic = brokerconfig.ProbeTopic(id)
	}
	c, err := mqttclient.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	got := &received{}
	if err := c.Subscribe(protocol.UpFilter, got.add); err != nil {
		t.Fatal(err)
	}
	return c, got
}

func start(t *testing.T, c *mqttclient.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
}

// device connects a device (paho, as agent/mqtt does).
func device(t *testing.T, f *mosquittotest.Fleet, cert tls.Certificate, id string) paho.Client {
	t.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tls://" + f.Addr()).SetClientID(id).
		SetTLSConfig(f.TLS(cert)).SetCleanSession(true).SetAutoReconnect(false))
	tok := c.Connect()
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("device %s connect: %v", id, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

func publish(t *testing.T, c paho.Client, topic, payload string) {
	t.Helper()
	tok := c.Publish(topic, 1, false, payload)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

// TestMosquittoSharedSubscriptionsDealMessages checks what Mosquitto 2.0
// does with $share and MQTT 3.1.1 clients: it shares the subscription
// (each message reaches one replica), but deals the messages out one by
// one, so one device's consecutive records reach different replicas. That
// is why the partitioned ingest exists (docs/deploy.md).
func TestMosquittoSharedSubscriptionsDealMessages(t *testing.T) {
	f := mosquittotest.NewFleet(t, "r1", "r2")
	r1, got1 := newReplica(t, f, "r1", replicaOpts{share: brokerconfig.ShareGroup})
	r2, got2 := newReplica(t, f, "r2", replicaOpts{share: brokerconfig.ShareGroup})
	start(t, r1)
	start(t, r2)
	dev := device(t, f, f.Device(t, "kiosk-a"), "kiosk-a")
	const n = 40
	for i := range n {
		publish(t, dev, "kogge/v1/d/kiosk-a/up/record", fmt.Sprint(i))
	}
	eventually(t, "every message at one replica", 10*time.Second, func() (bool, string) {
		return len(got1.all())+len(got2.all()) >= n, fmt.Sprint(len(got1.all()), "+", len(got2.all()))
	})
	all := append(got1.all(), got2.all()...)
	slices.Sort(all)
	if len(slices.Compact(all)) != n || len(all) != n {
		t.Errorf("%d messages received, %d distinct; want each of %d once", len(all), len(slices.Compact(all)), n)
	}
	if len(got1.all()) == 0 || len(got2.all()) == 0 {
		t.Errorf("one replica got everything (%d, %d): the subscription is not shared", len(got1.all()), len(got2.all()))
	}
	// Consecutive records of the one device went to different replicas.
	if a, b := len(got1.all()), len(got2.all()); a < n/4 || b < n/4 {
		t.Errorf("split %d/%d: Mosquitto no longer deals in turn; the partitioned ingest may be unnecessary", a, b)
	}
}

// TestPartitionFilter: each replica subscribes to everything and keeps
// only what Accept takes.
func TestPartitionFilter(t *testing.T) {
	f := mosquittotest.NewFleet(t, "r1")
	reg := prometheus.NewRegistry()
	onlyA := func(topic string) bool { return strings.HasPrefix(topic, "kogge/v1/d/kiosk-a/") }
	r1, got := newReplica(t, f, "r1", replicaOpts{accept: onlyA, reg: reg, probe: true})
	start(t, r1)
	a := device(t, f, f.Device(t, "kiosk-a"), "kiosk-a")
	b := device(t, f, f.Device(t, "kiosk-b"), "kiosk-b")
	publish(t, b, "kogge/v1/d/kiosk-b/up/record", "b1")
	publish(t, a, "kogge/v1/d/kiosk-a/up/record", "a1")
	eventually(t, "kiosk-a's record", 10*time.Second, func() (bool, string) {
		return slices.Contains(got.all(), "kogge/v1/d/kiosk-a/up/record a1"), fmt.Sprint(got.all())
	})
	eventually(t, "kiosk-b's record counted as skipped", 10*time.Second, func() (bool, string) {
		v := metric(t, reg, "kogge_mqtt_skipped_total")
		return v == 1, fmt.Sprint(v)
	})
	if slices.Contains(got.all(), "kogge/v1/d/kiosk-b/up/record b1") {
		t.Error("the handler got a device that Accept refused")
	}
	if v := metric(t, reg, "kogge_mqtt_connected"); v != 1 {
		t.Errorf("kogge_mqtt_connected = %v", v)
	}
}

// metric returns the value of a counter or gauge without labels.
func metric(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			if m := mf.Metric[0]; m.Counter != nil {
				return m.Counter.GetValue()
			} else {
				return m.Gauge.GetValue()
			}
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}

// TestProbeCatchesMissingACL: a replica that is not in the broker's ACL
// connects, but Mosquitto passes it nothing; Start says so.
func TestProbeCatchesMissingACL(t *testing.T) {
	f := mosquittotest.NewFleet(t, "r1")
	stray, _ := newReplica(t, f, "r9", replicaOpts{probe: true})
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	err := stray.Start(ctx)
	if err == nil || !strings.Contains(err.Error(), "ACL") {
		t.Fatalf("Start of a replica missing from the ACL: %v; want an error naming the ACL", err)
	}
	if stray.Connected() {
		t.Error("the stray replica counts as connected")
	}
}

// TestPublishToDevices: a retained twin waits for the broker; commands are
// handed over; the device receives both.
func TestPublishToDevices(t *testing.T) {
	f := mosquittotest.NewFleet(t, "r1")
	r1, _ := newReplica(t, f, "r1", replicaOpts{probe: true})
	start(t, r1)
	if err := r1.Publish("kogge/v1/d/kiosk-a/twin", []byte("desired"), true); err != nil {
		t.Fatal(err)
	}
	dev := device(t, f, f.Device(t, "kiosk-a"), "kiosk-a")
	var got received
	tok := dev.Subscribe("kogge/v1/d/kiosk-a/#", 1, func(_ paho.Client, m paho.Message) { got.add(m.Topic(), m.Payload()) })
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	if err := r1.Publish("kogge/v1/d/kiosk-a/down/command", []byte("reboot"), false); err != nil {
		t.Fatal(err)
	}
	eventually(t, "twin and command at the device", 10*time.Second, func() (bool, string) {
		all := got.all()
		return slices.Contains(all, "kogge/v1/d/kiosk-a/twin desired") &&
			slices.Contains(all, "kogge/v1/d/kiosk-a/down/command reboot"), fmt.Sprint(all)
	})
	if err := r1.Publish("kogge/v1/d/+/down/command", nil, false); err == nil {
		t.Error("a publish to a wildcard topic was accepted")
	}
	if r1.DisconnectDevice("kiosk-a") {
		t.Error("DisconnectDevice claims to have disconnected a device at an external broker")
	}
	if r1.Addr().String() != f.Addr() || r1.DevAddr() != nil {
		t.Errorf("Addr %v DevAddr %v", r1.Addr(), r1.DevAddr())
	}
}

// TestReconnect: the broker restarts; the client connects again and
// subscribes again; while it is away, Publish fails after ConnectWait.
func TestReconnect(t *testing.T) {
	f := mosquittotest.NewFleet(t, "r1")
	r1, got := newReplica(t, f, "r1", replicaOpts{probe: true})
	start(t, r1)
	dev := device(t, f, f.Device(t, "kiosk-a"), "kiosk-a")
	publish(t, dev, "kogge/v1/d/kiosk-a/up/record", "before")
	eventually(t, "before the restart", 10*time.Second, func() (bool, string) {
		return slices.Contains(got.all(), "kogge/v1/d/kiosk-a/up/record before"), ""
	})
	f.Broker.Stop()
	eventually(t, "the client notices", 10*time.Second, func() (bool, string) { return !r1.Connected(), "" })
	if err := r1.Publish("kogge/v1/d/kiosk-a/down/command", []byte("x"), false); err == nil ||
		!strings.Contains(err.Error(), "not connected") {
		t.Errorf("publish while the broker is down: %v", err)
	}
	f.Broker = mosquittotest.Start(t, filepath.Join(f.Dir, brokerconfig.FileConf), f.Addr())
	eventually(t, "reconnected", 20*time.Second, func() (bool, string) { return r1.Connected(), "" })
	dev2 := device(t, f, f.Device(t, "kiosk-b"), "kiosk-b")
	publish(t, dev2, "kogge/v1/d/kiosk-b/up/record", "after")
	eventually(t, "after the restart", 10*time.Second, func() (bool, string) {
		return slices.Contains(got.all(), "kogge/v1/d/kiosk-b/up/record after"), fmt.Sprint(got.all())
	})
}

func TestOptionsValidate(t *testing.T) {
	cert := tls.Certificate{Certificate: [][]byte{{1}}}
	for _, o := range []mqttclient.Options{
		{URL: "mqtt://127.0.0.1:1883", TLS: &tls.Config{Certificates: []tls.Certificate{cert}}, ClientID: "x"},
		{URL: "mqtts://127.0.0.1", TLS: &tls.Config{Certificates: []tls.Certificate{cert}}, ClientID: "x"},
		{URL: "mqtts://127.0.0.1:8883", TLS: &tls.Config{}, ClientID: "x"},
		{URL: "mqtts://127.0.0.1:8883", TLS: &tls.Config{Certificates: []tls.Certificate{cert}}},
		{URL: "mqtts://127.0.0.1:8883", TLS: &tls.Config{Certificates: []tls.Certificate{cert}}, ClientID: "x", Share: "a/b"},
	} {
		if _, err := mqttclient.New(o); err == nil {
			t.Errorf("options %+v accepted", o)
		}
	}
}

func registerer(r *prometheus.Registry) prometheus.Registerer {
	if r == nil {
		return nil
	}
	return r
}
