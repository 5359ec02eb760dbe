package brokerconfig_test

import (
	"bufio"
	"context"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kogge-fleet/kogge/fleet-server/brokerconfig/mosquittotest"
	"github.com/kogge-fleet/kogge/fleet-server/mqttclient"
	"github.com/kogge-fleet/kogge/protocol"
)

// inbox keeps what the server replica receives, as "topic payload".
type inbox struct {
	mu   sync.Mutex
	msgs []string
}

func (b *inbox) add(topic string, payload []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.msgs = append(b.msgs, topic+" "+string(payload))
}

func (b *inbox) has(m string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Contains(b.msgs, m)
}

func (b *inbox) all() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.msgs)
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 15s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startReplica connects a server replica to the fleet's broker as the
// server does, subscribed to every uplink and presence.
func startReplica(t *testing.T, f *mosquittotest.Fleet, id, share string, seen *inbox) *mqttclient.Client {
	t.Helper()
	c, err := mqttclient.New(mqttclient.Options{URL: f.URL(), TLS: f.TLS(f.Replica(t, id)), ClientID: "kogge-server:" + id,
		Share: share, Logger: slog.New(slog.DiscardHandler), MaxBackoff: 200 * time.Millisecond, ConnectWait: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if seen != nil {
		for _, filter := range []string{protocol.UpFilter, protocol.StateFilter} {
			if err := c.Subscribe(filter, seen.add); err != nil {
				t.Fatal(err)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestACLMosquittoGenerated is the broker black-box test (the embedded
// broker's, fleet-server/broker) against Mosquitto running the
// configuration that WriteMosquitto generates: Mosquitto's own clients,
// holding real device certificates, try what a device must not do, and
// each attempt is refused; the server replica sees only what it should.
func TestACLMosquittoGenerated(t *testing.T) {
	pubBin := mosquittotest.Tool(t, "mosquitto_pub")
	subBin := mosquittotest.Tool(t, "mosquitto_sub")
	f := mosquittotest.NewFleet(t, "r1")
	f.Device(t, "kiosk-a")
	f.Device(t, "kiosk-b")
	var seen inbox
	server := startReplica(t, f, "r1", "", &seen)

	common := []string{"-h", "127.0.0.1", "-p", strconv.Itoa(f.Port), "--cafile", f.CAFile(), "-V", "mqttv311"}
	as := func(name string) []string {
		return append(slices.Clone(common), "--cert", f.CertFile(name), "--key", f.KeyFile(name), "-i", name)
	}
	run := func(bin string, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
		return string(out), err
	}

	t.Run("publish to another device's topic", func(t *testing.T) {
		forged := []struct{ topic, qos string }{
			{"kogge/v1/d/kiosk-b/up/record", "0"},
			{"kogge/v1/d/kiosk-b/up/record", "1"},
			{"kogge/v1/d/kiosk-b/state", "0"},
			{"kogge/v1/d/kiosk-b/down/command", "0"}, // a command for another device
			{"kogge/v1/d/kiosk-a/down/ack", "0"},     // its own downlink is the server's
			{"kogge/v1/d/kiosk-a/twin", "1"},
		}
		for _, fp := range forged {
			run(pubBin, append(as("kiosk-a"), "-q", fp.qos, "-t", fp.topic, "-m", "forged")...)
		}
		// Mosquitto handles a connection's packets in order, and the
		// forged ones came first.
		if out, err := run(pubBin, append(as("kiosk-a"), "-q", "1", "-t", "kogge/v1/d/kiosk-a/up/record", "-m", "own")...); err != nil {
			t.Fatalf("publishing to its own up topic failed: %v\n%s", err, out)
		}
		eventually(t, "the device's own publish", func() bool { return seen.has("kogge/v1/d/kiosk-a/up/record own") })
		for _, m := range seen.all() {
			if strings.HasSuffix(m, " forged") {
				t.Errorf("forged publish delivered: %s", m)
			}
		}
	})

	t.Run("subscribe to other devices' topics", func(t *testing.T) {
		for topic, payload := range map[string]string{
			"kogge/v1/d/kiosk-a/twin":         "twin-a",
			"kogge/v1/d/kiosk-b/twin":         "twin-b",
			"kogge/v1/d/kiosk-b/down/command": "cmd-b",
		} {
			if err := server.Publish(topic, []byte(payload), true); err != nil {
				t.Fatal(err)
			}
		}
		// Mosquitto may grant a wildcard filter, but it checks every
		// message against the ACL before it delivers it: a device gets
		// only its own. The server publishes another device's message,
		// then one for kiosk-a on the same session; when kiosk-a's
		// arrives, the other was dealt with.
		for _, c := range []struct {
			filters []string
			first   string // the retained message expected first, if any
		}{
			{[]string{"#"}, "kogge/v1/d/kiosk-a/twin twin-a"},
			{[]string{"kogge/v1/d/+/twin", "kogge/v1/d/+/down/#"}, "kogge/v1/d/kiosk-a/twin twin-a"},
			{[]string{"kogge/v1/d/kiosk-b/#", "kogge/v1/d/kiosk-a/down/command"}, ""},
		} {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			args := append(as("kiosk-a"), "-v", "-W", "15")
			for _, f := range c.filters {
				args = append(args, "-t", f)
			}
			cmd := exec.CommandContext(ctx, subBin, args...)
			lines, stderr := startLines(t, cmd)
			var got []string
			if c.first != "" {
				got = append(got, <-lines)
			}
			eventually(t, "kiosk-a's own command", func() bool {
				for _, m := range [][2]string{{"kogge/v1/d/kiosk-b/down/command", "cmd-b2"}, {"kogge/v1/d/kiosk-b/twin", "twin-b2"},
					{"kogge/v1/d/kiosk-b/up/record", "up-b"}, {"kogge/v1/d/kiosk-a/down/command", "cmd-a"}} {
					if err := server.Publish(m[0], []byte(m[1]), false); err != nil {
						t.Fatal(err)
					}
				}
				for {
					select {
					case l := <-lines:
						got = append(got, l)
						if l == "kogge/v1/d/kiosk-a/down/command cmd-a" {
							return true
						}
					case <-time.After(300 * time.Millisecond):
						return false
					}
				}
			})
			cancel()
			cmd.Wait()
			if c.first != "" && got[0] != c.first {
				t.Errorf("%v: first message %q, want %q", c.filters, got[0], c.first)
			}
			for _, l := range got {
				if !strings.HasPrefix(l, "kogge/v1/d/kiosk-a/") {
					t.Errorf("%v: kiosk-a received another device's message %q (stderr %s)", c.filters, l, stderr.String())
				}
			}
		}
	})

	t.Run("client id of another device", func(t *testing.T) {
		// kiosk-b listens; kiosk-a connects with kiosk-b's client id. The
		// broker takes the certificate's name as client id, so kiosk-b's
		// session is not taken over.
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, subBin, append(as("kiosk-b"), "-v", "-C", "1", "-W", "15", "-t", "kogge/v1/d/kiosk-b/down/#")...)
		lines, stderr := startLines(t, cmd)
		// Wait until kiosk-b is subscribed: a retained message reaches it.
		if l := <-lines; l != "kogge/v1/d/kiosk-b/down/command cmd-b" {
			t.Fatalf("kiosk-b got %q first; stderr %s", l, stderr.String())
		}
		if err := cmd.Wait(); err != nil {
			t.Fatalf("mosquitto_sub: %v", err)
		}
		cmd = exec.CommandContext(ctx, subBin, append(as("kiosk-b"), "-v", "-C", "2", "-W", "15", "-t", "kogge/v1/d/kiosk-b/down/#")...)
		lines, stderr = startLines(t, cmd)
		<-lines // the retained command again: subscribed
		imposter := append(slices.Clone(common), "--cert", f.CertFile("kiosk-a"), "--key", f.KeyFile("kiosk-a"), "-i", "kiosk-b")
		if out, err := run(pubBin, append(imposter, "-q", "1", "-t", "kogge/v1/d/kiosk-a/up/record", "-m", "imposter")...); err != nil {
			t.Fatalf("kiosk-a with kiosk-b's client id: %v %s", err, out)
		}
		eventually(t, "kiosk-a's publish under its own name", func() bool { return seen.has("kogge/v1/d/kiosk-a/up/record imposter") })
		if err := server.Publish("kogge/v1/d/kiosk-b/down/command", []byte("still-there"), false); err != nil {
			t.Fatal(err)
		}
		if l := <-lines; l != "kogge/v1/d/kiosk-b/down/command still-there" {
			t.Errorf("kiosk-b got %q; stderr %s", l, stderr.String())
		}
		if err := cmd.Wait(); err != nil {
			t.Errorf("kiosk-b's session was taken over: %v; stderr %s", err, stderr.String())
		}
	})

	t.Run("connect without a certificate", func(t *testing.T) {
		out, err := run(pubBin, append(slices.Clone(common), "-i", "kiosk-a", "-q", "1",
			"-t", "kogge/v1/d/kiosk-a/up/record", "-m", "no-cert")...)
		if err == nil {
			t.Errorf("mosquitto_pub without a certificate succeeded: %s", out)
		}
		if seen.has("kogge/v1/d/kiosk-a/up/record no-cert") {
			t.Error("publish without a certificate delivered")
		}
	})

	t.Run("bridge certificate", func(t *testing.T) {
		f.Bridge(t, "buergeramt")
		f.UpdateAndReload(t)
		run(pubBin, append(as("bridge.buergeramt"), "-q", "1", "-t", "kogge/v1/d/bridge.buergeramt/up/record", "-m", "bridge")...)
		if out, err := run(pubBin, append(as("kiosk-a"), "-q", "1", "-t", "kogge/v1/d/kiosk-a/up/record", "-m", "after-bridge")...); err != nil {
			t.Fatalf("%v %s", err, out)
		}
		eventually(t, "a later device publish", func() bool { return seen.has("kogge/v1/d/kiosk-a/up/record after-bridge") })
		if seen.has("kogge/v1/d/bridge.buergeramt/up/record bridge") {
			t.Error("a bridge certificate published over MQTT")
		}
	})

	t.Run("revocation", func(t *testing.T) {
		ctx := context.Background()
		f.Device(t, "kiosk-r")
		// kiosk-r is connected when it is revoked: it listens to its own
		// downlink.
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(sctx, subBin, append(as("kiosk-r"), "-v", "-W", "25", "-t", "kogge/v1/d/kiosk-r/down/#")...)
		lines, _ := startLines(t, cmd)
		eventually(t, "kiosk-r receives before its revocation", func() bool {
			if err := server.Publish("kogge/v1/d/kiosk-r/down/command", []byte("before"), false); err != nil {
				t.Fatal(err)
			}
			select {
			case l := <-lines:
				return l == "kogge/v1/d/kiosk-r/down/command before"
			case <-time.After(200 * time.Millisecond):
				return false
			}
		})
		if err := f.Registry.RevokeDevice(ctx, "kiosk-r", "stolen"); err != nil {
			t.Fatal(err)
		}
		f.UpdateAndReload(t)

		// A new connection is refused (CRL)...
		out, err := run(pubBin, append(as("kiosk-r"), "-q", "1", "-t", "kogge/v1/d/kiosk-r/up/record", "-m", "revoked")...)
		if err == nil {
			t.Errorf("mosquitto_pub with a revoked certificate succeeded: %s", out)
		}
		// ...and the open one gets nothing more (ACL). The server
		// publishes to it, then markers to kiosk-a on the same session:
		// once a marker arrives, the broker has dealt with the first.
		markerCmd := exec.CommandContext(sctx, subBin, append(as("kiosk-a"), "-v", "-C", "1", "-W", "20", "-t", "kogge/v1/d/kiosk-a/down/marker")...)
		markers, _ := startLines(t, markerCmd)
		if err := server.Publish("kogge/v1/d/kiosk-r/down/command", []byte("after"), false); err != nil {
			t.Fatal(err)
		}
		eventually(t, "a marker after the revoked device's message", func() bool {
			if err := server.Publish("kogge/v1/d/kiosk-a/down/marker", []byte("marker"), false); err != nil {
				t.Fatal(err)
			}
			select {
			case <-markers:
				return true
			case <-time.After(200 * time.Millisecond):
				return false
			}
		})
		markerCmd.Wait()
		cancel()
		for l := range lines {
			if strings.HasSuffix(l, " after") {
				t.Errorf("the revoked device's open connection received %q", l)
			}
		}
		cmd.Wait()
		if seen.has("kogge/v1/d/kiosk-r/up/record revoked") {
			t.Error("publish with a revoked certificate delivered")
		}
		if !strings.Contains(readFile(t, f.Dir+"/acl"), "user kiosk-r\ntopic deny #\n") {
			t.Error("the ACL does not deny the revoked device")
		}
	})
}

// startLines starts cmd and returns its output lines.
func startLines(t *testing.T, cmd *exec.Cmd) (<-chan string, *strings.Builder) {
	t.Helper()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 16)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	return lines, &stderr
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
