package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kogge-fleet/kogge/agent"
	"github.com/kogge-fleet/kogge/agent/enroll"
	agentmqtt "github.com/kogge-fleet/kogge/agent/mqtt"
	agentstore "github.com/kogge-fleet/kogge/agent/store"
	fleetserver "github.com/kogge-fleet/kogge/fleet-server"
	"github.com/kogge-fleet/kogge/fleet-server/bridge/bridgetest"
	"github.com/kogge-fleet/kogge/protocol/casefile"
	"github.com/kogge-fleet/kogge/protocol/casefile/casefiletest"
	"github.com/kogge-fleet/kogge/protocol/seal"
	"github.com/kogge-fleet/kogge/simulators/fleet"
	"github.com/kogge-fleet/kogge/simulators/procedures"
)

// envBridgeArgs makes the test binary a kogge-bridge process: the kill test
// re-executes it with the bridge's arguments in this variable, separated by
// newlines, so that the bridge runs in a process of its own that the test
// can kill with SIGKILL.
const envBridgeArgs = "KOGGE_TEST_BRIDGE_ARGS"

func TestMain(m *testing.M) {
	if args := os.Getenv(envBridgeArgs); args != "" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
		code := run(ctx, strings.Split(args, "\n"), nil, os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// bridgeProcess is a kogge-bridge running as a child process.
type bridgeProcess struct {
	cmd  *exec.Cmd
	done chan error
}

func startBridge(t *testing.T, args []string, log *syncBuffer) *bridgeProcess {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envBridgeArgs+"="+strings.Join(args, "\n"))
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &bridgeProcess{cmd: cmd, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() { p.kill(t) })
	return p
}

// kill ends the process with SIGKILL and waits for it.
func (p *bridgeProcess) kill(t *testing.T) {
	if p.cmd.ProcessState != nil {
		return
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("kill bridge: %v", err)
	}
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Errorf("bridge process did not die within 30 s of SIGKILL")
	}
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v (last: %s)", what, timeout, state)
		}
		<-tick.C
	}
}

// bridgeCert has the fleet server issue a certificate for office's bridge,
// from a key made here, and writes key, certificate and fleet CA to dir.
func bridgeCert(t *testing.T, srv *fleet.Server, dir, office string) (cert, key, ca string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "bridge"}}, k)
	if err != nil {
		t.Fatal(err)
	}
	issued, err := srv.API().IssueBridgeCertificate(context.Background(), office,
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}))
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	cert, key, ca = filepath.Join(dir, office+".crt"), filepath.Join(dir, office+".key"), filepath.Join(dir, "fleet-ca.crt")
	for f, b := range map[string][]byte{
		cert: []byte(issued.Certificate), ca: []byte(issued.CA),
		key: pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}),
	} {
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return cert, key, ca
}

// runAgent enrolls and runs a real device agent that seals for offices.
func runAgent(t *testing.T, srv *fleet.Server, id string, offices map[string]seal.Recipient, logger *slog.Logger) *agent.Agent {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	ident, err := fleet.EnrollDevice(ctx, srv.API(), srv.EnrollURL(), filepath.Join(dir, "identity"), id, "terminals",
		enroll.Inventory{Model: "Kiosk K1", Serial: "SN-" + id, Software: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	st, err := agentstore.Open(filepath.Join(dir, "agent.db"), agentstore.Options{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := agentmqtt.New(agentmqtt.Config{Broker: ident.Broker, Device: ident.DeviceID, TLS: ident.TLSConfig(), Software: "1.0.0"},
		agentmqtt.Options{KeepAlive: 5 * time.Second, MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(agent.Config{Device: ident.DeviceID, Software: "1.0.0"}, st, tr, agent.Options{Logger: logger, Offices: offices})
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- a.Run(runCtx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent: %v", err)
		}
		st.Close()
	})
	return a
}

// TestBridgeSurvivesSIGKILL runs kogge-bridge as a process of its own
// between a fleet server and two procedures, kills it with SIGKILL in the
// middle of a delivery and starts it again: every record reaches its
// procedure as exactly one case, and the procedure's reference reaches the
// device.
//
//   - webhook: the bridge dies while the procedure is still answering the
//     POST of the third record (the procedure never commits it);
//   - idpass drop directory: the bridge dies after it wrote the first
//     record's file and while it waits for the receipt; the procedure
//     imports the file only afterwards, and the new bridge process must take
//     that receipt instead of writing the record again.
func TestBridgeSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a fleet server, a device and bridge processes")
	}
	ctx := context.Background()
	var logs syncBuffer
	defer func() {
		if t.Failed() {
			t.Logf("logs:\n%s", logs.String())
		}
	}()
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	dir := t.TempDir()
	srv, err := fleet.StartServer(ctx, fleet.ServerConfig{DataDir: t.TempDir(), Keepalive: 5 * time.Second,
		Logger: logger.With("side", "server"), Customize: func(c *fleetserver.Config) {
			c.Delivery.RetryBase, c.Delivery.RetryMax = time.Second, 2*time.Second
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Stop(); err != nil {
			t.Errorf("server: %v", err)
		}
	})
	if _, err := srv.API().CreateGroup(ctx, "terminals", "Terminals"); err != nil {
		t.Fatal(err)
	}

	// The webhook procedure: the third POST hangs until the test has
	// killed the bridge, then fails without committing, as a procedure
	// whose client went away does.
	secret := []byte("webhook secret for the kill test")
	checker, err := procedures.NewWebhook(procedures.WebhookOptions{Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	defer checker.Close()
	var posts atomic.Int32
	inFlight, release := make(chan struct{}), make(chan struct{})
	hook, err := procedures.NewWebhook(procedures.WebhookOptions{Secret: secret,
		Accept: func(h http.Header, b []byte) (string, string, error) {
			key, kind, _, err := checker.Check(h, b)
			if err != nil {
				return "", "", err
			}
			if posts.Add(1) == 3 {
				close(inFlight)
				<-release
				return "", "", errors.New("the client went away before the case was committed")
			}
			return key, kind, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer hook.Close()
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	dropDir := filepath.Join(dir, "idpass-drop")
	if err := os.Mkdir(dropDir, 0o700); err != nil {
		t.Fatal(err)
	}
	drop, err := procedures.NewIDPassDrop(procedures.DropDirOptions{Dir: dropDir})
	if err != nil {
		t.Fatal(err)
	}
	defer drop.Close()

	offices := map[string]seal.Recipient{}
	secrets := map[string]string{}
	for _, office := range []string{"ordnungsamt", "buergeramt"} {
		r, s, err := seal.GenerateKey(office, office+"-1")
		if err != nil {
			t.Fatal(err)
		}
		offices[office], secrets[office] = r, s
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	bridgeArgs := func(office string, connector ...string) []string {
		cert, key, ca := bridgeCert(t, srv, dir, office)
		officeKey := write(office+".age", []byte(secrets[office]+"\n"))
		return append([]string{
			"--server=" + srv.EnrollURL(), "--office=" + office,
			"--tls.cert=" + cert, "--tls.key=" + key, "--tls.ca=" + ca,
			"--keys=" + offices[office].KeyID + "=" + officeKey,
			// One delivery at a time, so the kill hits exactly the one
			// in flight; a short lease, so the new process gets it soon.
			"--bridge.concurrency=1", "--bridge.visibility=3s", "--bridge.idle-wait=50ms",
			"--metrics.listen=", "--log.format=text", "--log.level=debug",
		}, connector...)
	}
	webhookArgs := bridgeArgs("ordnungsamt", "--connector=webhook", "--procedure.url="+hook.URL(),
		"--procedure.ca="+write("hook-ca.crt", hook.CA().PEM), "--procedure.secret-file="+write("hook.secret", secret),
		"--procedure.attempts=1", "--procedure.timeout=20s")
	idpassArgs := bridgeArgs("buergeramt", "--connector=idpass", "--procedure.transport=dropdir",
		"--procedure.dir="+dropDir, "--procedure.receipt-timeout=60s")

	dev := runAgent(t, srv, "kiosk-kill-01", offices, logger.With("side", "device"))
	type capture struct {
		office string
		r      agent.Receipt
	}
	var caps []capture
	for i := range 10 {
		kind, office := casefile.KindNotice, "ordnungsamt"
		if i%2 == 1 {
			kind, office = casefile.KindApplication, "buergeramt"
		}
		d := casefiletest.NewBlobIDs(casefiletest.Sample(kind))
		body, err := casefile.Encode(d)
		if err != nil {
			t.Fatal(err)
		}
		c := agent.Capture{Kind: kind, Office: office, Body: body}
		for id, data := range bridgetest.SampleBlobs(d, 4096) {
			c.Blobs = append(c.Blobs, agent.Blob{ID: id, Role: "image", Data: data})
		}
		r, err := dev.Capture(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		caps = append(caps, capture{office, r})
	}

	// webhook: kill while the third POST is in flight, then start again.
	var hookLog, idpassLog syncBuffer
	p := startBridge(t, webhookArgs, &hookLog)
	select {
	case <-inFlight:
	case err := <-p.done:
		t.Fatalf("webhook bridge exited early (%v):\n%s", err, hookLog.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("the third webhook delivery did not start within 60 s:\n%s", hookLog.String())
	}
	p.kill(t)
	close(release)
	startBridge(t, webhookArgs, &hookLog)

	// idpass: kill while waiting for the first record's receipt; the
	// procedure imports the file only after that.
	p = startBridge(t, idpassArgs, &idpassLog)
	waitFor(t, "the first idpass file in the drop directory", 60*time.Second, func() (bool, string) {
		entries, err := os.ReadDir(dropDir)
		if err != nil {
			return false, err.Error()
		}
		for _, e := range entries {
			if !strings.HasPrefix(e.Name(), ".") && strings.HasSuffix(e.Name(), ".xml") {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d entries", len(entries))
	})
	p.kill(t)
	dropCtx, stopDrop := context.WithCancel(ctx)
	dropDone := make(chan error, 1)
	go func() { dropDone <- drop.Run(dropCtx) }()
	defer func() {
		stopDrop()
		<-dropDone
	}()
	startBridge(t, idpassArgs, &idpassLog)

	for _, c := range caps {
		waitFor(t, "the office's reference on the device", 60*time.Second, func() (bool, string) {
			st, err := dev.Status(ctx, c.r.ID)
			if err != nil {
				return false, err.Error()
			}
			return st.State == agent.Accepted && st.Reference != "", fmt.Sprintf("%s: %s %s", c.office, st.State, st.Reason)
		})
	}
	for _, c := range caps {
		st, err := dev.Status(ctx, c.r.ID)
		if err != nil {
			t.Fatal(err)
		}
		ledger := hook.Ledger()
		if c.office == "buergeramt" {
			ledger = drop.Ledger()
		}
		if ref, ok := ledger.Reference(c.r.ID.String()); !ok || ref != st.Reference {
			t.Errorf("record %v for %s: the device has reference %q, the procedure %q (known: %v)", c.r.ID, c.office, st.Reference, ref, ok)
		}
	}
	for name, stats := range map[string]func() (int, int){"webhook": hook.Stats, "idpass": drop.Stats} {
		if unique, dups := stats(); unique != 5 || dups != 0 {
			t.Errorf("%s procedure: %d cases, %d duplicate deliveries; want 5 and 0", name, unique, dups)
		}
	}
	for name, l := range map[string]*syncBuffer{"webhook": &hookLog, "idpass": &idpassLog} {
		if n := strings.Count(l.String(), "kogge-bridge running"); n != 2 {
			t.Errorf("%s bridge: %d starts in its log, want 2:\n%s", name, n, l.String())
		}
	}
	if bytes.Contains([]byte(hookLog.String()), []byte("panic")) {
		t.Errorf("webhook bridge panicked:\n%s", hookLog.String())
	}
}
