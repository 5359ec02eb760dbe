package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kogge-fleet/kogge/simulators/bench"
)

// envMain makes the test binary behave as kogge-sim itself, so that the
// device processes the fleet starts (os.Executable() device --spec …) run
// the real command.
const envMain = "KOGGE_SIM_TEST_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(envMain) == "1" {
		os.Exit(run(context.Background(), os.Args[1:], nil, os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// syncBuffer is a strings.Builder safe for the demo's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
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

func TestCommandLine(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		out  string // in stdout or stderr
	}{
		{"no command", nil, 2, "usage: kogge-sim"},
		{"unknown command", []string{"fly"}, 2, `unknown command "fly"`},
		{"help", []string{"help"}, 0, "chaos"},
		{"demo help", []string{"demo", "--help"}, 0, "KOGGE_SIM_KIOSKS"},
		{"demo print-config", []string{"demo", "--print-config", "--kiosks=3"}, 0, `"kiosks": 3`},
		{"demo not on loopback", []string{"demo", "--api=0.0.0.0:8080"}, 2, "loopback only"},
		{"demo no devices", []string{"demo", "--kiosks=0", "--handhelds=0"}, 2, "at least one device"},
		{"demo bad district", []string{"demo", "--districts=Mitte"}, 2, "district"},
		{"demo extra argument", []string{"demo", "now"}, 2, "unexpected arguments"},
		{"chaos bad flag", []string{"chaos", "--duration=soon"}, 2, "duration"},
		{"bench unknown scenario", []string{"bench", "--scenarios=speed", "--out="}, 1, "unknown scenario"},
		{"device by hand", []string{"device"}, 2, "started by the fleet"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr strings.Builder
			code := run(context.Background(), tt.args, nil, strings.NewReader(""), &stdout, &stderr)
			if code != tt.code || !strings.Contains(stdout.String()+stderr.String(), tt.out) {
				t.Fatalf("exit %d, want %d; output:\n%s%s", code, tt.code, stdout.String(), stderr.String())
			}
		})
	}
}

// TestDemo runs the demo with a small fleet (two of its devices as
// processes of kogge-sim), waits for records to reach the server, stops it
// as Ctrl-C does and checks what it printed.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a fleet server and device processes")
	}
	t.Setenv(envMain, "1")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &syncBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"demo", "--api=127.0.0.1:0", "--enroll=127.0.0.1:0", "--broker=127.0.0.1:0",
			"--kiosks=2", "--handhelds=2", "--processes=2", "--districts=mitte", "--hour=2s", "--load-scale=5",
			"--blob-scale=0.05", "--progress=500ms"}, nil, strings.NewReader(""), out, out)
	}()
	deadline := time.Now().Add(90 * time.Second)
	for !strings.Contains(out.String(), "stored 1") && !strings.Contains(out.String(), "stored 2") {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("no record stored within 90s:\n%s", out.String())
		}
		select {
		case code := <-done:
			t.Fatalf("the demo ended with %d:\n%s", code, out.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit %d", code)
		}
	case <-time.After(90 * time.Second):
		t.Fatalf("the demo did not stop within 90s after Ctrl-C:\n%s", out.String())
	}
	s := out.String()
	for _, want := range []string{"REST API        http://127.0.0.1:", "dashboard       http://127.0.0.1:", "login           admin / ",
		"API token", "2 kiosks, 1 warden handhelds, 1 road-crew handhelds", "2 of them as processes", "online 4/4", "stopping", "0 lost, 0 duplicated"} {
		if !strings.Contains(s, want) {
			t.Errorf("the demo did not print %q:\n%s", want, s)
		}
	}
}

// TestBenchQuick runs two quick scenarios through the command and checks
// the results file.
func TestBenchQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("runs benchmarks")
	}
	out := filepath.Join(t.TempDir(), "bench-results.json")
	var stdout, stderr strings.Builder
	code := run(context.Background(), []string{"bench", "--quick", "--scenarios=catch-up,end-to-end", "--out=" + out, "--dir=" + t.TempDir()},
		nil, strings.NewReader(""), &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d:\n%s%s", code, stdout.String(), stderr.String())
	}
	rs, err := bench.ReadResults(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 || rs[0].Scenario != bench.CatchUp || rs[1].Scenario != bench.EndToEnd {
		t.Fatalf("results %+v", rs)
	}
	for _, r := range rs {
		if err := r.Validate(); err != nil {
			t.Error(err)
		}
	}
	if !strings.Contains(stdout.String(), "catch-up") || !strings.Contains(stdout.String(), "appended to") {
		t.Errorf("output:\n%s", stdout.String())
	}
}
