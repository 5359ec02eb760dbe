package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer collects what the server writes from its goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func loopbackArgs(dir string) []string {
	return []string{"--data-dir", dir, "--api.listen", "127.0.0.1:0", "--enroll.listen", "127.0.0.1:0",
		"--broker.listen", "127.0.0.1:0", "--tls.names", "127.0.0.1"}
}

func TestPrintConfig(t *testing.T) {
	var stdout, stderr bytes.Buffer
	env := []string{"KOGGE_API_TOKEN=secret-token-0123456789", "KOGGE_BROKER_KEEPALIVE=45s"}
	code := run(context.Background(), []string{"--print-config", "--data-dir", "/srv/kogge"}, env, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var cfg map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &cfg); err != nil {
		t.Fatalf("--print-config output is not JSON: %v\n%s", err, stdout.String())
	}
	if cfg["database"] != "/srv/kogge/kogge.db" || cfg["broker"].(map[string]any)["keepalive"] != "45s" {
		t.Errorf("effective config %v", cfg)
	}
	if strings.Contains(stdout.String(), "secret-token") {
		t.Error("--print-config printed the API token")
	}
}

func TestBadCommandLines(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{"unknown flag", []string{"--colour", "red"}, nil, "colour"},
		{"positional", []string{"serve"}, nil, "unexpected arguments"},
		{"invalid value", []string{"--broker.keepalive", "soon"}, nil, "broker.keepalive"},
		{"invalid config", []string{"--log.format", "xml"}, nil, "log.format"},
		{"invalid environment", nil, []string{"KOGGE_API_LISTEN=8080"}, "api.listen"},
		{"missing config file", []string{"--config", "/nonexistent/kogge.json"}, nil, "config file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tt.args, tt.env, &stdout, &stderr)
			if code != 2 || !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, stderr.String(), tt.want)
			}
		})
	}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"--help"}, nil, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "KOGGE_API_LISTEN") {
		t.Errorf("--help: exit %d, %q", code, stdout.String())
	}
}

func TestStartAndStop(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, loopbackArgs(dir), nil, &stdout, &stderr) }()

	// The start-up log names the API; wait for it, then for readiness.
	var api string
	deadline := time.Now().Add(30 * time.Second)
	for api == "" {
		for line := range strings.SplitSeq(stderr.String(), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "fleet server started" {
				api, _ = m["api"].(string)
			}
		}
		select {
		case code := <-done:
			t.Fatalf("server exited with %d:\n%s", code, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no start-up line after 30s:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	base := strings.TrimSuffix(api, "/api/v1")
	resp, err := http.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("readyz %d", resp.StatusCode)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit %d after SIGTERM-like cancel:\n%s", code, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("server did not stop")
	}

	out := stderr.String()
	token, err := os.ReadFile(filepath.Join(dir, "api-token"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "Generated an API token") || !strings.Contains(out, strings.TrimSpace(string(token))) {
		t.Errorf("the generated token is not shown once:\n%s", out)
	}
	for _, want := range []string{`"enroll":"https://127.0.0.1:`, `"broker":"mqtts://127.0.0.1:`, `"broker_public_address":"mqtts://127.0.0.1:`, `"data_dir":"` + dir,
		`"api_token_file":"` + filepath.Join(dir, "api-token"), `"msg":"fleet server stopped"`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, `"broker_public_address":"mqtts://127.0.0.1:0"`) {
		t.Errorf("devices would be told port 0:\n%s", out)
	}
	// The token appears only in the banner, never in a log line.
	for line := range strings.SplitSeq(out, "\n") {
		if strings.HasPrefix(line, "{") && strings.Contains(line, strings.TrimSpace(string(token))) {
			t.Errorf("a log line holds the token: %s", line)
		}
	}
}
