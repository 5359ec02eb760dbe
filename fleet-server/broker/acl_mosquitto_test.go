package broker

import (
	"bufio"
	"context"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// mosquittoTool returns the path of a Mosquitto client program. Under
// CI=true a missing program fails the test; otherwise the test skips.
func mosquittoTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not found; install the Debian package mosquitto-clients (make deps)", name)
		}
		t.Skipf("%s not found; install mosquitto-clients (make deps) to run this test", name)
	}
	return p
}

// TestACLMosquittoClients is the black-box test of the broker's security:
// Mosquitto's own clients, holding a real device certificate, try what a
// device must not do, and each attempt is refused.
func TestACLMosquittoClients(t *testing.T) {
	pubBin := mosquittoTool(t, "mosquitto_pub")
	subBin := mosquittoTool(t, "mosquitto_sub")

	p := newTestPKI(t)
	rev := newFakeRevocations()
	b, reg := startBroker(t, p, rev, Options{})
	port := strconv.Itoa(b.Addr().(*net.TCPAddr).Port)

	dir := t.TempDir()
	kioskA := p.device(t, "kiosk-a")
	kioskR := p.device(t, "kiosk-r")
	rev.revokeSerial(kioskR.Leaf.SerialNumber)
	caFile, aCert, aKey := p.writeFiles(t, dir, kioskA)
	_, rCert, rKey := p.writeFiles(t, dir, kioskR)

	// The server sees everything published under the topic root.
	var seen inbox
	if err := b.Subscribe("kogge/v1/d/#", seen.add); err != nil {
		t.Fatal(err)
	}

	common := []string{"-h", "127.0.0.1", "-p", port, "--cafile", caFile}
	asA := append(append([]string{}, common...), "--cert", aCert, "--key", aKey, "-i", "kiosk-a")
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
		before := counter(t, reg, "kogge_broker_acl_denied_total", "publish")
		for _, f := range forged {
			// A refused QoS 1 publish closes the connection, so the exit
			// status is not the verdict; what arrives is.
			run(pubBin, append(asA, "-q", f.qos, "-t", f.topic, "-m", "forged")...)
		}
		if out, err := run(pubBin, append(asA, "-q", "1", "-t", "kogge/v1/d/kiosk-a/up/record", "-m", "own")...); err != nil {
			t.Fatalf("publishing to its own up topic failed: %v\n%s", err, out)
		}
		eventually(t, "the device's own publish", func() bool { return seen.has("kogge/v1/d/kiosk-a/up/record own") })
		// Every forged publish was processed and refused...
		eventually(t, "ACL denials of the forged publishes", func() bool {
			return counter(t, reg, "kogge_broker_acl_denied_total", "publish")-before == float64(len(forged))
		})
		// ...and none reached a subscriber.
		for _, m := range seen.all() {
			if strings.HasSuffix(m, " forged") {
				t.Errorf("forged publish delivered: %s", m)
			}
		}
	})

	t.Run("subscribe to #", func(t *testing.T) {
		for topic, payload := range map[string]string{
			"kogge/v1/d/kiosk-a/twin": "twin-a",
			"kogge/v1/d/kiosk-b/twin": "twin-b",
		} {
			if err := b.Publish(topic, []byte(payload), true); err != nil {
				t.Fatal(err)
			}
		}
		before := counter(t, reg, "kogge_broker_acl_denied_total", "subscribe")

		// '#' together with its own filters: '#' is refused, its own are
		// granted. It prints what it receives and stops after two messages.
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, subBin, append(asA, "-v", "-C", "2", "-W", "15",
			"-t", "#", "-t", "kogge/v1/d/kiosk-a/twin", "-t", "kogge/v1/d/kiosk-a/down/#")...)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
		}()
		next := func() string {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("mosquitto_sub ended early; stderr: %s", stderr.String())
				}
				return l
			case <-ctx.Done():
				t.Fatal("mosquitto_sub printed nothing in time")
			}
			return ""
		}
		// Retained messages come right after the SUBACK: only its own twin.
		if l := next(); l != "kogge/v1/d/kiosk-a/twin twin-a" {
			t.Errorf("first message = %q, want its own twin", l)
		}
		// Now a live message for another device, then one for itself: the
		// second line must be its own.
		if err := b.Publish("kogge/v1/d/kiosk-b/down/command", []byte("cmd-b"), false); err != nil {
			t.Fatal(err)
		}
		if err := b.Publish("kogge/v1/d/kiosk-a/down/command", []byte("cmd-a"), false); err != nil {
			t.Fatal(err)
		}
		if l := next(); l != "kogge/v1/d/kiosk-a/down/command cmd-a" {
			t.Errorf("second message = %q, want its own command", l)
		}
		for range lines {
		}
		if err := cmd.Wait(); err != nil {
			t.Errorf("mosquitto_sub: %v; stderr: %s", err, stderr.String())
		}
		if n := counter(t, reg, "kogge_broker_acl_denied_total", "subscribe") - before; n != 1 {
			t.Errorf("%v subscriptions refused, want 1 ('#')", n)
		}

		// '#' alone: every filter refused, nothing received.
		out, _ := run(subBin, append(asA, "-v", "-C", "1", "-W", "5", "-t", "#")...)
		if strings.Contains(out, "twin-") || !strings.Contains(out, "denied") {
			t.Errorf("mosquitto_sub -t '#': %q, want the subscription denied and no message", out)
		}
	})

	t.Run("connect without a certificate", func(t *testing.T) {
		before := counter(t, reg, "kogge_broker_connects_refused_total", "no_certificate")
		out, err := run(pubBin, append(append([]string{}, common...), "-i", "kiosk-a", "-q", "1",
			"-t", "kogge/v1/d/kiosk-a/up/record", "-m", "no-cert")...)
		if err == nil {
			t.Errorf("mosquitto_pub without a certificate succeeded: %s", out)
		}
		eventually(t, "the refusal to be counted", func() bool {
			return counter(t, reg, "kogge_broker_connects_refused_total", "no_certificate") > before
		})
		if seen.has("kogge/v1/d/kiosk-a/up/record no-cert") {
			t.Error("publish without a certificate delivered")
		}
	})

	t.Run("connect with a revoked certificate", func(t *testing.T) {
		before := counter(t, reg, "kogge_broker_connects_refused_total", "revoked")
		out, err := run(pubBin, append(append([]string{}, common...), "--cert", rCert, "--key", rKey, "-i", "kiosk-r",
			"-q", "1", "-t", "kogge/v1/d/kiosk-r/up/record", "-m", "revoked")...)
		if err == nil || !strings.Contains(out, "not authori") {
			t.Errorf("mosquitto_pub with a revoked certificate: %v, %q; want refused as not authorised", err, out)
		}
		if n := counter(t, reg, "kogge_broker_connects_refused_total", "revoked") - before; n != 1 {
			t.Errorf("%v connects refused as revoked, want 1", n)
		}
		if seen.has("kogge/v1/d/kiosk-r/up/record revoked") {
			t.Error("publish with a revoked certificate delivered")
		}
	})
}
