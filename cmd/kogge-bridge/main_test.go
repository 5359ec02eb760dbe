package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/fleet-server/bridge/bridgetest"
	"github.com/kogge-fleet/kogge/fleet-server/delivery"
	"github.com/kogge-fleet/kogge/fleet-server/store"
	"github.com/kogge-fleet/kogge/internal/config"
	"github.com/kogge-fleet/kogge/protocol/casefile"
	"github.com/kogge-fleet/kogge/protocol/casefile/casefiletest"
	"github.com/kogge-fleet/kogge/simulators/procedures"
)

type nopPublisher struct{}

func (nopPublisher) Publish(string, []byte, bool) error { return nil }

// syncBuffer is a bytes.Buffer safe for the logger and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestBridgeProcess runs kogge-bridge against a fleet server's bridge API
// (the delivery queue on SQLite behind mutual TLS) and the webhook
// simulator: every record is delivered once and accepted, a record sealed
// for a retired key is a dead letter, and the cancel (SIGTERM) ends it
// cleanly.
func TestBridgeProcess(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(dir, "kogge.db"), store.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	bridgetest.AddDevice(t, db, "kiosk-test-01")
	q, err := delivery.New(db, nopPublisher{}, delivery.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	h, err := delivery.NewHandler(q, func(_ context.Context, c *x509.Certificate) (string, error) {
		office, ok := strings.CutPrefix(c.Subject.CommonName, "bridge.")
		if !ok {
			return "", delivery.ErrForbidden
		}
		return office, nil
	}, delivery.HandlerOptions{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	fleetCA, err := procedures.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	api, err := procedures.ServeMutualTLS(h, fleetCA)
	if err != nil {
		t.Fatal(err)
	}
	defer api.Close()
	certFile, keyFile, caFile, err := fleetCA.WriteClient(dir, "bridge", "bridge.office-a")
	if err != nil {
		t.Fatal(err)
	}

	secret := []byte("webhook secret")
	hook, err := procedures.NewWebhook(procedures.WebhookOptions{Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	defer hook.Close()
	hookCA := filepath.Join(dir, "procedure-ca.crt")
	secretFile := filepath.Join(dir, "secret")
	for f, b := range map[string][]byte{hookCA: hook.CA().PEM, secretFile: secret} {
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	current := bridgetest.NewOffice(t, "office-a", "k2")
	old := bridgetest.NewOffice(t, "office-a", "k1")
	keyFile2 := filepath.Join(dir, "k2.key")
	if err := os.WriteFile(keyFile2, []byte(current.Secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var ids []uuid.UUID
	for i, kind := range casefile.Kinds() {
		doc := casefiletest.Sample(kind)
		r := bridgetest.Seal(t, current, doc, bridgetest.SampleBlobs(doc, 4096))
		bridgetest.Enqueue(t, db, r, uint64(i+1))
		ids = append(ids, r.Delivery.ID)
	}
	doc := casefiletest.Report()
	retired := bridgetest.Seal(t, old, doc, bridgetest.SampleBlobs(doc, 128))
	bridgetest.Enqueue(t, db, retired, 4)

	args := []string{
		"--server=" + api.URL(), "--office=office-a",
		"--tls.cert=" + certFile, "--tls.key=" + keyFile, "--tls.ca=" + caFile,
		"--keys=k2=" + keyFile2, "--retired-keys=k1",
		"--connector=webhook", "--procedure.url=" + hook.URL(), "--procedure.ca=" + hookCA,
		"--procedure.secret-file=" + secretFile,
		"--metrics.listen=", "--log.format=text", "--log.level=debug",
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() { done <- run(runCtx, args, nil, &stdout, &stderr) }()

	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for settled := false; !settled; {
		settled = true
		for _, id := range append(ids, retired.Delivery.ID) {
			d, err := db.DeliveryOf(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if d.State != store.DeliveryAccepted && d.State != store.DeliveryDead {
				settled = false
			}
		}
		select {
		case code := <-done:
			t.Fatalf("kogge-bridge exited with %d:\n%s", code, stderr.String())
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			t.Fatalf("records not delivered within 30 s; log:\n%s", stderr.String())
		}
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit code %d after SIGTERM; log:\n%s", code, stderr.String())
	}
	for _, id := range ids {
		d, _ := db.DeliveryOf(ctx, id)
		ref, _ := hook.Ledger().Reference(id.String())
		if d.State != store.DeliveryAccepted || d.Reference != ref {
			t.Errorf("record %v: %s with reference %q, the procedure gave %q", id, d.State, d.Reference, ref)
		}
	}
	if d, _ := db.DeliveryOf(ctx, retired.Delivery.ID); d.State != store.DeliveryDead || !strings.Contains(d.LastError, "retired") {
		t.Errorf("record sealed for the retired key: %s, %q", d.State, d.LastError)
	}
	if u, dups := hook.Stats(); u != 3 || dups != 0 {
		t.Errorf("procedure saw %d unique, %d duplicates", u, dups)
	}
	if !strings.Contains(stderr.String(), "kogge-bridge stopped") {
		t.Errorf("no clean stop in the log:\n%s", stderr.String())
	}
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	loose := filepath.Join(dir, "loose.key")
	if err := os.WriteFile(loose, []byte("AGE-SECRET-KEY-1"), 0o644); err != nil {
		t.Fatal(err)
	}
	base := []string{"--server=https://127.0.0.1:1", "--office=a", "--tls.cert=c", "--tls.key=k", "--tls.ca=ca", "--metrics.listen="}
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"nothing", nil, 2, "server is not set"},
		{"http server", append(base[1:], "--server=http://x", "--keys=k=f", "--connector=webhook"), 2, "want https://"},
		{"bad key entry", append(base, "--keys=k1", "--connector=webhook"), 2, `"k1" is not KEY-ID=FILE`},
		{"unknown connector", append(base, "--keys=k=f", "--connector=fax"), 2, `connector "fax"`},
		{"webhook without url", append(base, "--keys=k=f", "--connector=webhook"), 2, "procedure.url is not set"},
		{"owi adapter", append(base, "--keys=k=f", "--connector=owi", "--procedure.dir=/tmp", "--procedure.adapter=x"), 2, "procedure.adapter"},
		{"open311 codes", append(base, "--keys=k=f", "--connector=open311", "--procedure.url=https://x/", "--procedure.api-key-file=f",
			"--state-dir=/tmp", "--procedure.service-codes=pothole"), 2, `"pothole" is not CATEGORY=CODE`},
		{"readable key file", append(base, "--keys=k="+loose, "--connector=idpass", "--procedure.dir="+dir), 1, "chmod 600"},
		{"unknown flag", []string{"--colour=blue"}, 2, "flag provided but not defined"},
		{"positional", append(base, "extra"), 2, "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tt.args, nil, &stdout, &stderr)
			if code != tt.code || !strings.Contains(stderr.String(), tt.want) {
				t.Fatalf("exit %d, stderr:\n%s\nwant exit %d and %q", code, stderr.String(), tt.code, tt.want)
			}
		})
	}
}

// TestPrintConfig: the effective configuration is printed, the fixture of
// version 1 loads, and environment and flags take precedence.
func TestPrintConfig(t *testing.T) {
	var stdout, stderr bytes.Buffer
	args := []string{"--config", filepath.Join("testdata", "config-v1.json"), "--print-config", "--bridge.concurrency=8"}
	env := []string{"KOGGE_OFFICE=from-env"}
	if code := run(context.Background(), args, env, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var got map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("%v\n%s", err, stdout.String())
	}
	if got["office"] != "from-env" || got["connector"] != "open311" ||
		got["bridge"].(map[string]any)["concurrency"] != float64(8) ||
		got["procedure"].(map[string]any)["service-codes"].([]any)[0] != "pothole=001" {
		t.Fatalf("effective configuration %v", got)
	}
	cfg := DefaultConfig()
	if _, err := config.Load(&cfg, "kogge-bridge", config.Source{Args: []string{"--config", filepath.Join("testdata", "config-v1.json")}}); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("the fixture does not validate: %v", err)
	}
}

func TestHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"--help"}, nil, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if !strings.Contains(stdout.String(), "--procedure.service-codes, KOGGE_PROCEDURE_SERVICE_CODES") {
		t.Fatalf("usage:\n%s", stdout.String())
	}
}
