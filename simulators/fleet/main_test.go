package fleet

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"syscall"
	"testing"
	"time"
)

// envChildSpec makes the test binary a device process (as `kogge-sim
// device` is): the fleet's ChildCommand in the tests re-executes the test
// binary with the spec in this variable.
const envChildSpec = "KOGGE_SIM_TEST_DEVICE_SPEC"

func TestMain(m *testing.M) {
	if spec := os.Getenv(envChildSpec); spec != "" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
		logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
		err := RunChild(ctx, spec, os.Stdin, os.Stdout, logger)
		stop()
		if err != nil {
			logger.Error("device process failed", "err", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// testChildCommand runs a device process from the test binary.
func testChildCommand(spec string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envChildSpec+"="+spec)
	// Its own process group: a Ctrl-C on the terminal is for the parent,
	// which stops its devices itself.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd
}

// logSink keeps log lines and shows them only when the test fails.
type logSink struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logSink) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buf.Len() > 8<<20 {
		return len(p), nil
	}
	return l.buf.Write(p)
}

func newLogSink(t *testing.T) (*logSink, *slog.Logger) {
	l := &logSink{}
	t.Cleanup(func() {
		if t.Failed() {
			l.mu.Lock()
			defer l.mu.Unlock()
			t.Logf("logs:\n%s", l.buf.String())
		}
	})
	return l, slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// sim is a server and a fleet for a test.
type sim struct {
	srv     *Server
	fleet   *Fleet
	ledger  *Ledger
	offices *Offices
}

// startSim starts a server on free loopback ports in a temporary
// directory and enrolls specs; the fleet is not started.
func startSim(t *testing.T, specs []DeviceSpec, opts Options, logger *slog.Logger) *sim {
	t.Helper()
	ctx := context.Background()
	srv, err := StartServer(ctx, ServerConfig{DataDir: t.TempDir(), Keepalive: 10 * time.Second, Logger: logger.With("side", "server")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Stop(); err != nil {
			t.Errorf("server: %v", err)
		}
	})
	offices, err := GenerateOffices(OfficesFor(specs)...)
	if err != nil {
		t.Fatal(err)
	}
	ledger, err := OpenLedger(t.TempDir() + "/ledger.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ledger.Close() })
	if opts.ChildCommand == nil {
		opts.ChildCommand = testChildCommand
	}
	if opts.Logger == nil {
		opts.Logger = logger.With("side", "fleet")
	}
	if opts.DeviceLogger == nil {
		opts.DeviceLogger = logger.With("side", "device")
	}
	f, err := New(srv, t.TempDir(), ledger, offices, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Enroll(ctx, specs); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := f.Stop(); err != nil {
			t.Errorf("fleet: %v", err)
		}
	})
	return &sim{srv: srv, fleet: f, ledger: ledger, offices: offices}
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() (bool, string)) {
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
		time.Sleep(50 * time.Millisecond)
	}
}
