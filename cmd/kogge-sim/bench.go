package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"

	"github.com/kogge-fleet/kogge/simulators/bench"
)

// BenchConfig are the settings of kogge-sim bench.
type BenchConfig struct {
	Quick      bool     `config:"quick" usage:"scale every scenario down to seconds (for tests and a first look)"`
	Scenarios  []string `config:"scenarios" usage:"scenarios to run: ingest, blobs, connections, catch-up, end-to-end, broker (default all)"`
	Scale      float64  `config:"scale" usage:"multiplies the device and record counts of the full run"`
	Out        string   `config:"out" usage:"results file (JSON array); every scenario appends one object"`
	Dir        string   `config:"dir" usage:"where servers and devices keep their data (default: a temporary directory, removed at the end)"`
	ServerBin  string   `config:"server-bin" usage:"kogge-server binary for the connections scenario (default: kogge-server next to kogge-sim, else kogge-sim's own server)"`
	Mosquitto  string   `config:"mosquitto" usage:"mosquitto binary for the broker and replicas scenarios"`
	Broker     string   `config:"broker" usage:"external broker of the replicas scenario: mosquitto"`
	Replicas   int      `config:"replicas" usage:"server replicas of the replicas scenario (against one)"`
	Postgres   string   `config:"postgres" usage:"PostgreSQL URL for the replicas scenario (a schema of its own; default KOGGE_TEST_POSTGRES_URL)"`
	LogFile    string   `config:"log-file" usage:"file for the servers' and devices' logs (default: none)"`
	Delivery   bool     `config:"delivery" usage:"run the bridges and procedure simulators for the end-to-end scenario"`
	CPUProfile string   `config:"cpuprofile" usage:"write a CPU profile of this process (devices and in-process servers) to the file"`
}

func benchCmd(ctx context.Context, args, environ []string, stdout, stderr io.Writer) error {
	cfg := BenchConfig{Scale: 1, Out: "bench-results.json", Mosquitto: "mosquitto", Delivery: true, Broker: "mosquitto", Replicas: 2}
	rest, err := load(&cfg, "kogge-sim bench", args, environ, stdout)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageError{fmt.Errorf("unexpected arguments %q", rest)}
	}
	logger := slog.New(slog.DiscardHandler)
	if cfg.LogFile != "" {
		f, err := os.OpenFile(cfg.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return err
		}
		defer f.Close()
		logger = slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	bc := bench.Config{
		Scenarios: cfg.Scenarios, Quick: cfg.Quick, Scale: cfg.Scale, Out: cfg.Out, Dir: cfg.Dir,
		ServerCommand: serverCommand(cfg.ServerBin), Mosquitto: cfg.Mosquitto,
		Broker: cfg.Broker, Replicas: cfg.Replicas, Postgres: cfg.Postgres,
		RequireMosquitto: os.Getenv("CI") == "true",
		Table:            stdout, Progress: stderr, Logger: logger,
	}
	if bc.Postgres == "" {
		bc.Postgres = os.Getenv("KOGGE_TEST_POSTGRES_URL")
	}
	if cfg.Delivery {
		bc.Delivery = deliveryStarter()
	}
	if cfg.CPUProfile != "" {
		f, err := os.Create(cfg.CPUProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	results, err := bench.Run(ctx, bc)
	if cfg.Out != "" && len(results) > 0 {
		fmt.Fprintf(stdout, "\n%d results appended to %s\n", len(results), cfg.Out)
	}
	return err
}

// serverCommand starts a fleet server process: the given binary, else
// kogge-server next to this executable, else this executable's own server.
func serverCommand(bin string) func(args ...string) *exec.Cmd {
	exe, err := os.Executable()
	if err != nil {
		exe = os.Args[0]
	}
	if bin == "" {
		if p := filepath.Join(filepath.Dir(exe), "kogge-server"); isExecutable(p) {
			bin = p
		}
	}
	return func(args ...string) *exec.Cmd {
		if bin != "" {
			return exec.Command(bin, args...)
		}
		return exec.Command(exe, append([]string{"server"}, args...)...)
	}
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// serverCmd runs a fleet server for a benchmark (internal).
func serverCmd(ctx context.Context, args []string, stderr io.Writer) error {
	err := bench.RunServer(ctx, args, stderr)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
