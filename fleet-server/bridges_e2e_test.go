package fleetserver_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
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
	"github.com/kogge-fleet/kogge/fleet-server/bridge/bridgeconfig"
	"github.com/kogge-fleet/kogge/fleet-server/bridge/bridgetest"
	"github.com/kogge-fleet/kogge/protocol/casefile"
	"github.com/kogge-fleet/kogge/protocol/casefile/casefiletest"
	"github.com/kogge-fleet/kogge/protocol/seal"
	"github.com/kogge-fleet/kogge/simulators/procedures"
)

// Plaintext markers placed in the captured test data: they must reach the
// procedures and must never appear on the fleet server.
const (
	markerName  = "Kunigundexq Zwiebackyy"
	markerPlate = "HBQX7319"
	markerPhoto = "PHOTO-MARKER-7c1e9d"
)

// sim is one procedure simulator with the bridge configuration for it.
type sim struct {
	office string
	kind   string
	key    seal.Recipient
	secret string
	cfg    bridgeconfig.Config
	stats  func() (int, int)
	// received returns everything the procedure received, for the marker
	// check.
	received func() []byte
}

func writeFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// startSims starts the four procedure simulators and returns them with the
// in-process bridge configuration for each.
func startSims(t *testing.T, ctx context.Context) (webhook *procedures.Webhook, open311 *procedures.Open311, sims []*sim) {
	t.Helper()
	dir := t.TempDir()
	newKey := func(office string) (seal.Recipient, string) {
		r, s, err := seal.GenerateKey(office, office+"-1")
		if err != nil {
			t.Fatal(err)
		}
		return r, s
	}
	runner := bridgeconfig.Runner{Concurrency: 4, Visibility: 20 * time.Second, IdleWait: 20 * time.Millisecond,
		DrainTimeout: 5 * time.Second, PollInterval: time.Minute}

	// webhook: verifies the HMAC signature and the document.
	hookSecret := []byte("webhook-secret-e2e")
	// checker verifies signature and document; the receiver keeps the
	// bodies for the marker check.
	checker, err := procedures.NewWebhook(procedures.WebhookOptions{Secret: hookSecret})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { checker.Close() })
	var bodiesMu sync.Mutex
	var bodies bytes.Buffer
	hook, err := procedures.NewWebhook(procedures.WebhookOptions{Secret: hookSecret,
		Accept: func(h http.Header, b []byte) (string, string, error) {
			key, kind, _, err := checker.Check(h, b)
			if err == nil {
				bodiesMu.Lock()
				bodies.Write(b)
				bodiesMu.Unlock()
			}
			return key, kind, err
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hook.Close() })
	{
		r, s := newKey("ordnungsamt-nord")
		c := bridgeconfig.Default()
		c.Office, c.KeySecrets, c.Connector, c.Bridge = r.Office, []string{r.KeyID + "=" + s}, bridgeconfig.KindWebhook, runner
		c.Procedure.URL, c.Procedure.Secret = hook.URL(), string(hookSecret)
		c.Procedure.CA = writeFile(t, dir, "hook-ca.pem", hook.CA().PEM)
		c.Procedure.Timeout, c.Procedure.Attempts = 5*time.Second, 1
		sims = append(sims, &sim{office: r.Office, kind: casefile.KindNotice, key: r, secret: s, cfg: c, stats: hook.Stats,
			received: func() []byte {
				bodiesMu.Lock()
				defer bodiesMu.Unlock()
				return bytes.Clone(bodies.Bytes())
			}})
	}
	// open311
	o, err := procedures.NewOpen311(procedures.Open311Options{APIKey: "open311-key"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	{
		r, s := newKey("strassenbau")
		c := bridgeconfig.Default()
		c.Office, c.KeySecrets, c.Connector, c.Bridge = r.Office, []string{r.KeyID + "=" + s}, bridgeconfig.KindOpen311, runner
		c.Procedure.URL, c.Procedure.APIKey, c.Procedure.ServiceCodes = o.URL(), "open311-key", []string{"pothole=001", "*=099"}
		c.Procedure.CA = writeFile(t, dir, "o311-ca.pem", o.CA().PEM)
		c.Procedure.Timeout, c.Procedure.AllPhotos = 5*time.Second, true
		c.StateDir = filepath.Join(dir, "o311-state")
		sims = append(sims, &sim{office: r.Office, kind: casefile.KindReport, key: r, secret: s, cfg: c, stats: o.Stats,
			received: func() []byte {
				var b bytes.Buffer
				for _, q := range o.Requests() {
					fmt.Fprintf(&b, "%s %s %s %s\n", q.FirstName, q.LastName, q.Description, q.Attributes)
					b.Write(q.Media)
				}
				return b.Bytes()
			}})
	}
	// drop directories
	for _, d := range []struct {
		office, kind, connector string
		newDrop                 func(procedures.DropDirOptions) (*procedures.DropDir, error)
	}{
		{"buergeramt-mitte", casefile.KindApplication, bridgeconfig.KindIDPass, procedures.NewIDPassDrop},
		{"bussgeldstelle", casefile.KindNotice, bridgeconfig.KindOWI, procedures.NewOWIDrop},
	} {
		ddir := filepath.Join(dir, d.office)
		if err := os.MkdirAll(ddir, 0o700); err != nil {
			t.Fatal(err)
		}
		drop, err := d.newDrop(procedures.DropDirOptions{Dir: ddir})
		if err != nil {
			t.Fatal(err)
		}
		runDone := make(chan error, 1)
		rctx, cancel := context.WithCancel(ctx)
		go func() { runDone <- drop.Run(rctx) }()
		t.Cleanup(func() {
			cancel()
			<-runDone
			drop.Close()
		})
		r, s := newKey(d.office)
		c := bridgeconfig.Default()
		c.Office, c.KeySecrets, c.Connector, c.Bridge = r.Office, []string{r.KeyID + "=" + s}, d.connector, runner
		c.Procedure.Transport, c.Procedure.Dir, c.Procedure.ReceiptTimeout = "dropdir", ddir, 10*time.Second
		sims = append(sims, &sim{office: r.Office, kind: d.kind, key: r, secret: s, cfg: c, stats: drop.Stats,
			received: func() []byte { return readTree(t, ddir) }})
	}
	return hook, o, sims
}

// readTree concatenates every regular file under dir.
func readTree(t *testing.T, dir string) []byte {
	t.Helper()
	var out bytes.Buffer
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		out.Write(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// capture is a capture of the casefile document of kind for office, with
// the markers in its personal fields and in every image the document names
// (the photo marker starts at a multiple of 3 bytes, so that it is also
// found in base64, as the webhook document carries blobs).
func capture(t *testing.T, kind, office string) agent.Capture {
	t.Helper()
	var d casefile.Document
	switch kind {
	case casefile.KindNotice:
		n := casefiletest.Notice()
		n.Plate.Text, n.Plate.Display = markerPlate, markerPlate
		n.Officer = markerName
		d = n
	case casefile.KindReport:
		r := casefiletest.Report()
		r.Contact.LastName = markerName
		r.Note = "Schlagloch, gemeldet von " + markerName
		d = r
	case casefile.KindApplication:
		a := casefiletest.Application()
		a.Terminal = markerName
		d = a
	}
	d = casefiletest.NewBlobIDs(d)
	b, err := casefile.Encode(d)
	if err != nil {
		t.Fatalf("%s: %v", kind, err)
	}
	c := agent.Capture{Kind: kind, Office: office, Body: b}
	images := bridgetest.SampleBlobs(d, 15_000)
	for _, id := range d.Blobs() {
		c.Blobs = append(c.Blobs, agent.Blob{ID: id, Role: "image", Data: append(images[id], markerPhoto...)})
	}
	return c
}

// startServerWith is startServer with a changed configuration.
func startServerWith(t *testing.T, logs *logSink, change func(*fleetserver.Config)) (*testServer, string) {
	t.Helper()
	cfg := fleetserver.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.API.Listen = "127.0.0.1:0"
	cfg.Enroll.Listen = "127.0.0.1:0"
	cfg.Broker.Listen = "127.0.0.1:0"
	cfg.TLS.Names = []string{"127.0.0.1"}
	cfg.Broker.Keepalive = 5 * time.Second
	change(&cfg)
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})).With("side", "server")
	app, err := fleetserver.New(cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			return errors.New("server did not stop within 30s")
		}
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("server: %v", err)
		}
	})
	api, err := client.New(app.APIURL(), app.Token(), client.Options{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "server ready", 30*time.Second, func() (bool, string) {
		_, err := api.Groups(context.Background())
		return err == nil, errString(err)
	})
	return &testServer{app: app, api: api, stop: stop}, cfg.DataDir
}

// runDeviceFor runs a real agent that seals for offices.
func runDeviceFor(t *testing.T, srv *testServer, logs *logSink, code, fingerprint, deviceID string, offices map[string]seal.Recipient) *agent.Agent {
	t.Helper()
	dir := t.TempDir()
	id, err := enroll.Enroll(context.Background(), filepath.Join(dir, "identity"), enroll.Request{
		Server: srv.app.EnrollURL(), Code: code, CAFingerprint: fingerprint, DeviceID: deviceID,
		Inventory: enroll.Inventory{Model: "Handheld H1", Serial: "SN-" + deviceID, Software: "1.0.0"},
	}, enroll.Options{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("enroll: %v", err)
	}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})).With("side", "device")
	st, err := agentstore.Open(filepath.Join(dir, "agent.db"), agentstore.Options{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := agentmqtt.New(agentmqtt.Config{Broker: id.Broker, Device: id.DeviceID, TLS: id.TLSConfig(), Software: "1.0.0"},
		agentmqtt.Options{KeepAlive: 5 * time.Second, MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(agent.Config{Device: id.DeviceID, Software: "1.0.0"}, st, tr, agent.Options{Logger: logger, Offices: offices})
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("agent: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("agent did not stop within 30s")
		}
		st.Close()
	})
	return a
}

// TestBridgesEndToEnd: real agents capture for four offices; the server
// runs the four offices' bridges in-process (Config.Bridges) into the four
// procedure simulators, with injected faults; every record reaches its
// procedure exactly once, the receipt reaches the device, and no
// plaintext marker is found in the server's files or logs.
func TestBridgesEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	ctx := context.Background()
	logs := &logSink{}
	logs.dumpOnFailure(t)
	hook, o311, sims := startSims(t, ctx)
	srv, dataDir := startServerWith(t, logs, func(c *fleetserver.Config) {
		c.Delivery.RetryBase, c.Delivery.RetryMax = time.Second, 2*time.Second
		for _, s := range sims {
			c.Bridges = append(c.Bridges, s.cfg)
		}
	})
	hook.Inject(procedures.Fault500, 3)
	o311.Inject(procedures.Fault500, 2)

	if _, err := srv.api.CreateGroup(ctx, "handhelds", "Handhelds"); err != nil {
		t.Fatal(err)
	}
	offices := map[string]seal.Recipient{}
	for _, s := range sims {
		offices[s.office] = s.key
	}
	const perSim = 3
	markerPhoto64 := base64.StdEncoding.EncodeToString([]byte(markerPhoto[:18]))
	type captureRef struct {
		dev *agent.Agent
		id  agent.Receipt
		sim *sim
	}
	var all []captureRef
	for d := range 2 {
		code, err := srv.api.CreateCode(ctx, client.CodeRequest{Group: "handhelds", TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		dev := runDeviceFor(t, srv, logs, code.Secret, code.CAFingerprint, fmt.Sprintf("hh-%d", d), offices)
		for _, s := range sims {
			for i := range perSim {
				if (i+d)%2 == 1 {
					continue // perSim per simulator over both devices
				}
				r, err := dev.Capture(ctx, capture(t, s.kind, s.office))
				if err != nil {
					t.Fatal(err)
				}
				all = append(all, captureRef{dev: dev, id: r, sim: s})
			}
		}
	}
	want := map[*sim]int{}
	for _, c := range all {
		want[c.sim]++
	}
	for _, c := range all {
		eventually(t, "accepted on the device", 30*time.Second, func() (bool, string) {
			st, err := c.dev.Status(ctx, c.id.ID)
			if err != nil {
				return false, err.Error()
			}
			return st.State == agent.Accepted && st.Reference != "", fmt.Sprintf("%s %s %s", c.sim.office, st.State, st.Reason)
		})
	}
	for _, s := range sims {
		u, dup := s.stats()
		if u != want[s] || dup != 0 {
			t.Errorf("%s: %d unique, %d duplicates; want %d and 0", s.office, u, dup, want[s])
		}
	}

	// The markers travel to the procedures, the images with them...
	for _, m := range []string{markerName, markerPhoto64} {
		found := false
		for _, s := range sims {
			if bytes.Contains(s.received(), []byte(m)) {
				found = true
			}
		}
		if !found {
			t.Errorf("marker %q reached no procedure: the check below would prove nothing", m)
		}
	}
	for _, s := range sims {
		if got := s.received(); !bytes.Contains(got, []byte(markerPhoto)) && !bytes.Contains(got, []byte(markerPhoto64)) {
			t.Errorf("%s (%s): the images did not reach the procedure", s.office, s.cfg.Connector)
		}
	}
	// ...and are nowhere on the server: database, WAL, any other file, log.
	server := readTree(t, dataDir)
	logs.mu.Lock()
	logText := bytes.Clone(logs.buf.Bytes())
	logs.mu.Unlock()
	for _, m := range []string{markerName, markerPlate, markerPhoto, markerPhoto64} {
		if bytes.Contains(server, []byte(m)) {
			t.Errorf("plaintext marker %q in the server's data directory", m)
		}
		if bytes.Contains(logText, []byte(m)) {
			t.Errorf("plaintext marker %q in the server's log", m)
		}
	}
	if len(server) == 0 || !strings.Contains(string(logText), "in-process bridge added") {
		t.Errorf("nothing read: %d bytes of data, log %d bytes", len(server), len(logText))
	}
}
