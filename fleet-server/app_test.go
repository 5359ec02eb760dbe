package fleetserver

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestEnsureToken(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "api-token")

	tok, gen, err := ensureToken("", file)
	if err != nil || !gen || len(tok) < 40 {
		t.Fatalf("first start: token %q generated %v err %v", tok, gen, err)
	}
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %v, want 0600", fi.Mode().Perm())
	}
	again, gen, err := ensureToken("", file)
	if err != nil || gen || again != tok {
		t.Fatalf("second start: token %q generated %v err %v; want the stored one", again, gen, err)
	}
	if got, gen, err := ensureToken("configured-token-123456", file); err != nil || gen || got != "configured-token-123456" {
		t.Errorf("configured token: %q %v %v", got, gen, err)
	}

	if err := os.Chmod(file, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ensureToken("", file); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("world-readable token file: err %v", err)
	}
	short := filepath.Join(dir, "short")
	if err := os.WriteFile(short, []byte("abc\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ensureToken("", short); err == nil {
		t.Error("a 3-character token file was accepted")
	}
	if _, _, err := ensureToken("", filepath.Join(dir, "missing", "api-token")); err == nil {
		t.Error("token stored in a missing directory")
	}
}

// testConfig is a configuration on loopback with free ports and a temporary
// data directory.
func testConfig(t *testing.T) Config {
	t.Helper()
	c := DefaultConfig()
	c.DataDir = t.TempDir()
	c.API.Listen = "127.0.0.1:0"
	c.Enroll.Listen = "127.0.0.1:0"
	c.Broker.Listen = "127.0.0.1:0"
	c.TLS.Names = []string{"127.0.0.1"}
	return c
}

func TestAppStartsAndStops(t *testing.T) {
	cfg := testConfig(t)
	app, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if !app.TokenGenerated() {
		t.Error("first start did not generate a token")
	}
	if got := app.Config().Broker.PublicAddress; got != "mqtts://"+app.BrokerAddr() || strings.HasSuffix(got, ":0") {
		t.Errorf("public broker address %q, broker %q", got, app.BrokerAddr())
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()

	waitReady(t, app.APIURL())
	resp, err := http.Get(app.APIURL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"go_goroutines", "process_resident_memory_bytes", "kogge_broker_clients_connected",
		"kogge_ingest_", "kogge_api_requests_total"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/metrics": 200, "/api/v1/groups": 401} {
		resp, err := http.Get(app.APIURL() + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after cancel: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if _, err := http.Get(app.APIURL() + "/healthz"); err == nil {
		t.Error("API still serves after Run returned")
	}

	// A second start on the same data directory keeps the token and the CA.
	again, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if again.TokenGenerated() || again.Token() != app.Token() || again.CAFingerprint() != app.CAFingerprint() {
		t.Errorf("restart: token generated %v, same token %v, same CA %v",
			again.TokenGenerated(), again.Token() == app.Token(), again.CAFingerprint() == app.CAFingerprint())
	}
}

func TestNewFailsClearly(t *testing.T) {
	cfg := testConfig(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cfg.API.Listen = busy.Addr().String()
	if _, err := New(cfg, nil); err == nil || !strings.Contains(err.Error(), "listen for the API") {
		t.Errorf("API port taken: %v", err)
	}
	cfg = testConfig(t)
	cfg.Log.Level = "loud"
	if _, err := New(cfg, nil); err == nil || !strings.Contains(err.Error(), "log.level") {
		t.Errorf("bad config: %v", err)
	}
}

// waitReady polls /readyz until it answers 200.
func waitReady(t *testing.T, base string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s/readyz not ready after 30s (last: %v)", base, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
