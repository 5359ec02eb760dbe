package fleetserver_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kogge-fleet/kogge/agent"
	"github.com/kogge-fleet/kogge/agent/enroll"
	agentmqtt "github.com/kogge-fleet/kogge/agent/mqtt"
	agentstore "github.com/kogge-fleet/kogge/agent/store"
	fleetserver "github.com/kogge-fleet/kogge/fleet-server"
	"github.com/kogge-fleet/kogge/fleet-server/api/client"
	"github.com/kogge-fleet/kogge/protocol/seal"
)

// The end-to-end test runs the real fleet server (App on free loopback
// ports, a temporary data directory, SQLite) and a real agent (agent with
// agent/store, agent/mqtt over mTLS, enrolled with agent/enroll), and drives
// the server through its REST API with the API client, as koggectl does.

// logSink keeps the log lines of the server and the agent and shows them
// only when the test fails.
type logSink struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logSink) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logSink) dumpOnFailure(t *testing.T) {
	t.Cleanup(func() {
		if t.Failed() {
			l.mu.Lock()
			defer l.mu.Unlock()
			t.Logf("logs:\n%s", l.buf.String())
		}
	})
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		ok, state := cond()
		if ok {
			return
		}
		if state != "" {
			last = state
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v (last: %s)", what, timeout, last)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// officeKey is the key of the office the devices capture for; officeSecret
// opens what they seal.
var officeKey, officeSecret = func() (seal.Recipient, string) {
	r, secret, err := seal.GenerateKey("buergeramt-mitte", "e2e-1")
	if err != nil {
		panic(err)
	}
	return r, secret
}()

type testServer struct {
	app  *fleetserver.App
	api  *client.Client
	stop func() error
}

func startServer(t *testing.T, logs *logSink) *testServer {
	t.Helper()
	srv, _ := startServerWith(t, logs, func(*fleetserver.Config) {})
	return srv
}

type testDevice struct {
	id    *enroll.Identity
	store *agentstore.Store
	tr    *agentmqtt.Transport
	agent *agent.Agent
	stop  func() error
}

// startDevice enrolls a device with code and runs a real agent for it.
func startDevice(t *testing.T, srv *testServer, logs *logSink, code, fingerprint, deviceID string) *testDevice {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	id, err := enroll.Enroll(ctx, filepath.Join(dir, "identity"), enroll.Request{
		Server: srv.app.EnrollURL(), Code: code, CAFingerprint: fingerprint, DeviceID: deviceID,
		Inventory: enroll.Inventory{Model: "Kiosk K1", Serial: "SN-0001", Software: "1.0.0",
			Peripherals: []enroll.Peripheral{{Name: "camera", Kind: "camera"}}, Location: "Rathaus EG"},
	}, enroll.Options{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("enroll: %v", err)
	}
	return runDevice(t, id, filepath.Join(dir, "agent.db"), logs, nil)
}

// runDevice runs a real agent for an enrolled identity over the store file
// at path, as a device does after a boot. before, if not nil, runs before
// the agent connects (captures made offline).
func runDevice(t *testing.T, id *enroll.Identity, path string, logs *logSink, before func(a *agent.Agent)) *testDevice {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})).With("side", "device")
	st, err := agentstore.Open(path, agentstore.Options{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := agentmqtt.New(agentmqtt.Config{
		Broker: id.Broker, Device: id.DeviceID, TLS: id.TLSConfig(), Software: "1.0.0",
	}, agentmqtt.Options{KeepAlive: 5 * time.Second, MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(agent.Config{Device: id.DeviceID, Software: "1.0.0"}, st, tr,
		agent.Options{Logger: logger, Offices: map[string]seal.Recipient{officeKey.Office: officeKey}})
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	if before != nil {
		before(a)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(runCtx) }()
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		var err error
		select {
		case err = <-done:
		case <-time.After(30 * time.Second):
			err = errors.New("agent did not stop within 30s")
		}
		return errors.Join(err, st.Close())
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("agent: %v", err)
		}
	})
	return &testDevice{id: id, store: st, tr: tr, agent: a, stop: stop}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	logs := &logSink{}
	logs.dumpOnFailure(t)
	srv := startServer(t, logs)
	ctx := context.Background()

	// An admin creates a group and an enrollment code through the API.
	if _, err := srv.api.CreateGroup(ctx, "kiosks", "Bürgeramt Mitte kiosks"); err != nil {
		t.Fatal(err)
	}
	code, err := srv.api.CreateCode(ctx, client.CodeRequest{Group: "kiosks", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}

	// The device enrolls over HTTPS, pinning the CA, and connects over mTLS.
	dev := startDevice(t, srv, logs, code.Secret, code.CAFingerprint, "kiosk-e2e-1")
	if dev.id.DeviceID != "kiosk-e2e-1" || !strings.HasPrefix(dev.id.Broker, "mqtts://127.0.0.1:") {
		t.Fatalf("enrolled as %q, broker %q", dev.id.DeviceID, dev.id.Broker)
	}
	eventually(t, "device connected", 30*time.Second, func() (bool, string) {
		return dev.tr.Stats().Connected, ""
	})
	// The server sees it online, with its inventory and a heartbeat.
	var d client.DeviceDetail
	eventually(t, "device online with a heartbeat in the API", 30*time.Second, func() (bool, string) {
		var err error
		d, err = srv.api.Device(ctx, "kiosk-e2e-1")
		if err != nil {
			return false, err.Error()
		}
		return d.State == "online" && d.Health != nil, "state " + d.State
	})
	if d.Group != "kiosks" || d.Inventory.Model != "Kiosk K1" || len(d.Certificates) != 1 ||
		d.Presence == nil || !d.Presence.Online || d.Health.Heartbeat.Software != "1.0.0" {
		t.Errorf("device as the API shows it: %+v presence %+v health %+v", d, d.Presence, d.Health)
	}

	// The device renews its certificate over mutual TLS at the enrollment
	// endpoint; the old one stays valid until it expires.
	renewed, err := dev.id.Renew(ctx, enroll.Options{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("renew: %v", err)
	}
	if renewed.DeviceID != "kiosk-e2e-1" || renewed.Certificate.Leaf.SerialNumber.Cmp(dev.id.Certificate.Leaf.SerialNumber) == 0 {
		t.Errorf("renewed identity %s serial %v", renewed.DeviceID, renewed.Certificate.Leaf.SerialNumber)
	}
	if d, err := srv.api.Device(ctx, "kiosk-e2e-1"); err != nil || len(d.Certificates) != 2 {
		t.Errorf("certificates after renewal: %+v %v", d.Certificates, err)
	}

	// Captures with a blob of several chunks are stored, acknowledged and
	// leave the outbox.
	photo := make([]byte, 200<<10)
	if _, err := rand.Read(photo); err != nil {
		t.Fatal(err)
	}
	var receipts []agent.Receipt
	for i := range 3 {
		c := agent.Capture{Kind: "kiosk.application", Office: officeKey.Office, Body: []byte("Erika Mustermann"),
			Meta: map[string]string{"service": "passport"}}
		if i == 0 {
			c.Blobs = []agent.Blob{{Role: "photo", Data: photo}}
		}
		r, err := dev.agent.Capture(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		receipts = append(receipts, r)
	}
	eventually(t, "outbox empty", 30*time.Second, func() (bool, string) {
		pending, err := dev.store.Pending(ctx, 0, 10)
		if err != nil {
			return false, err.Error()
		}
		blobs, err := dev.store.PendingBlobs(ctx, 10)
		if err != nil {
			return false, err.Error()
		}
		return len(pending) == 0 && len(blobs) == 0, ""
	})
	for _, r := range receipts {
		st, err := dev.agent.Status(ctx, r.ID)
		if err != nil || st.State != agent.Stored {
			t.Errorf("record %v on the device: %+v %v", r.ID, st, err)
		}
	}
	page, err := srv.api.Records(ctx, client.RecordQuery{Device: "kiosk-e2e-1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Records) != 3 {
		t.Fatalf("API lists %d records, want 3: %+v", len(page.Records), page)
	}
	for i, r := range page.Records {
		if r.ID != receipts[i].ID || r.Seq != receipts[i].Seq || r.Status != "complete" || r.Kind != "kiosk.application" {
			t.Errorf("record %d: %+v", i, r)
		}
	}
	// The server holds the photo sealed: only the office's key opens it,
	// and the digest the API shows is that of the sealed bytes.
	b := page.Records[0].Blobs
	if len(b) != 1 || !b[0].Complete || b[0].Size <= uint64(len(photo)) {
		t.Fatalf("blob as the API shows it: %+v", b)
	}
	var sealedPhoto bytes.Buffer
	if _, err := srv.app.Store().CopyBlob(ctx, "kiosk-e2e-1", receipts[0].ID, b[0].ID, &sealedPhoto); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(sealedPhoto.Bytes())
	if b[0].SHA256 != hex.EncodeToString(sum[:]) || uint64(sealedPhoto.Len()) != b[0].Size {
		t.Errorf("blob %+v: the server holds %d bytes with digest %x", b[0], sealedPhoto.Len(), sum)
	}
	ring := seal.NewKeyring(officeKey.Office)
	if err := ring.Add(officeKey.KeyID, officeSecret); err != nil {
		t.Fatal(err)
	}
	if got, err := ring.Open(officeKey.KeyID, sealedPhoto.Bytes()); err != nil || !bytes.Equal(got, photo) {
		t.Errorf("the office's key does not open the photo the server holds: %v", err)
	}

	// A group configuration reaches the device, which applies and reports it.
	g, err := srv.api.SetGroupTwin(ctx, "kiosks", map[string]any{"heartbeat_s": 20, "log_level": "debug", "ui": map[string]any{"lang": "de"}})
	if err != nil {
		t.Fatal(err)
	}
	var view client.DeviceTwin
	eventually(t, "twin in sync", 30*time.Second, func() (bool, string) {
		view, err = srv.api.DeviceTwin(ctx, "kiosk-e2e-1")
		if err != nil {
			return false, err.Error()
		}
		return view.Diff.InSync, fmt.Sprintf("%+v", view.Diff)
	})
	if view.Version != 1 || view.Reported == nil || view.Reported.Version != 1 || g.Version != 1 {
		t.Errorf("twin view %+v reported %+v", view, view.Reported)
	}
	if c := dev.agent.Config(); c.Version != view.Version || c.Heartbeat != 20*time.Second || c.Values["ui"] == nil {
		t.Errorf("the agent runs %+v", c)
	}
	// A device override changes the device's document only.
	if _, err := srv.api.SetOverride(ctx, "kiosk-e2e-1", map[string]any{"heartbeat_s": 10}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "override applied", 30*time.Second, func() (bool, string) {
		c := dev.agent.Config()
		return c.Version == 2 && c.Heartbeat == 10*time.Second, fmt.Sprintf("version %d heartbeat %v", c.Version, c.Heartbeat)
	})

	// A command runs on the device and its result comes back.
	sent, err := srv.api.SendCommand(ctx, client.CommandRequest{Device: "kiosk-e2e-1", Name: "ping", TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	var cmd client.Command
	eventually(t, "command result", 30*time.Second, func() (bool, string) {
		cmd, err = srv.api.Command(ctx, sent.Commands[0].ID)
		if err != nil {
			return false, err.Error()
		}
		return cmd.State == "done", cmd.State
	})
	if cmd.Result == nil || cmd.Result.Outcome != "ok" || cmd.Result.Output != "pong" || cmd.SentCount < 1 {
		t.Errorf("command %+v result %+v", cmd, cmd.Result)
	}
	// An unknown command is refused by the device, not run.
	sent, err = srv.api.SendCommand(ctx, client.CommandRequest{Group: "kiosks", Name: "self-destruct"})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "refusal of an unknown command", 30*time.Second, func() (bool, string) {
		cmd, err = srv.api.Command(ctx, sent.Commands[0].ID)
		if err != nil {
			return false, err.Error()
		}
		return cmd.State == "done", cmd.State
	})
	if cmd.Result.Outcome != "rejected" {
		t.Errorf("unknown command: %+v", cmd.Result)
	}

	// Revoking the device disconnects it at once and refuses it from then on.
	if _, err := srv.api.RevokeDevice(ctx, "kiosk-e2e-1", "stolen"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "device disconnected", 10*time.Second, func() (bool, string) {
		return !dev.tr.Stats().Connected, ""
	})
	before := dev.tr.Stats().ConnectFailures
	eventually(t, "reconnects refused", 20*time.Second, func() (bool, string) {
		s := dev.tr.Stats()
		return s.ConnectFailures >= before+2 && !s.Connected, ""
	})
	if d, err := srv.api.Device(ctx, "kiosk-e2e-1"); err != nil || d.State != "revoked" || d.RevokedReason != "stolen" {
		t.Errorf("after revocation: %+v %v", d, err)
	}
	eventually(t, "presence offline after revocation", 30*time.Second, func() (bool, string) {
		d, err := srv.api.Device(ctx, "kiosk-e2e-1")
		if err != nil || d.Presence == nil {
			return false, errString(err)
		}
		return !d.Presence.Online, d.Presence.Reason
	})
	if err := dev.stop(); err != nil {
		t.Errorf("agent: %v", err)
	}
	if err := srv.stop(); err != nil {
		t.Errorf("server: %v", err)
	}
	if _, err := os.Stat(filepath.Join(srv.app.Config().DataDir, "kogge.db")); err != nil {
		t.Errorf("database file: %v", err)
	}
}
