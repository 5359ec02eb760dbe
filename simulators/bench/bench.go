// Package bench runs Kogge's benchmark scenarios against the real fleet
// server on loopback, each with a baseline measured in the same run:
//
//	ingest       durable acked records/s of many devices, against raw QoS 1
//	             publish→subscribe through the same broker
//	blobs        photo upload MB/s, against raw 64 KiB QoS 1 messages through
//	             the same broker
//	connections  idle devices over mTLS; the server's RSS per device
//	catch-up     one device with a long queue: drain rate
//	end-to-end   capture → office receipt latency, p50 and p99 (with delivery)
//	broker       embedded mochi against an external Mosquitto, same publishers
//	replicas     server replicas behind Mosquitto on PostgreSQL, against one
//
// Each scenario prints one table row and appends one Result to a JSON file
// (an array). Every load is bounded in count and in time; everything runs
// on 127.0.0.1.
package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/kogge-fleet/kogge/simulators/fleet"
)

// Result is one scenario's outcome, as appended to the results file.
type Result struct {
	Scenario     string         `json:"scenario"`
	Value        float64        `json:"value"`
	Unit         string         `json:"unit"`
	Baseline     float64        `json:"baseline"`
	BaselineUnit string         `json:"baseline_unit"`
	Ratio        float64        `json:"ratio"`
	Target       string         `json:"target"`
	Pass         *bool          `json:"pass"` // nil: no target, or not measured
	StartedAt    time.Time      `json:"started_at"`
	Params       map[string]any `json:"params"`
	Note         string         `json:"note,omitempty"`
	// Skipped is set when the scenario could not run here (and says why
	// in Note).
	Skipped bool `json:"skipped,omitempty"`
}

// Validate checks a result as a reader of the results file expects it.
func (r Result) Validate() error {
	var errs []error
	if !slices.Contains(Scenarios(), r.Scenario) {
		errs = append(errs, fmt.Errorf("unknown scenario %q", r.Scenario))
	}
	if r.StartedAt.IsZero() {
		errs = append(errs, errors.New("started_at not set"))
	}
	if !r.Skipped {
		if r.Unit == "" || r.Target == "" || r.Params == nil {
			errs = append(errs, fmt.Errorf("%s: unit, target and params must be set", r.Scenario))
		}
		if r.Value <= 0 {
			errs = append(errs, fmt.Errorf("%s: value %v is not positive", r.Scenario, r.Value))
		}
	} else if r.Note == "" {
		errs = append(errs, fmt.Errorf("%s: skipped without a note", r.Scenario))
	}
	return errors.Join(errs...)
}

// Scenario names.
const (
	Ingest      = "ingest"
	Blobs       = "blobs"
	Connections = "connections"
	CatchUp     = "catch-up"
	EndToEnd    = "end-to-end"
	BrokerCmp   = "broker"
	Replicas    = "replicas"
)

// Scenarios lists the scenarios in the order they run.
func Scenarios() []string {
	return []string{Ingest, Blobs, Connections, CatchUp, EndToEnd, BrokerCmp, Replicas}
}

// Config configures a benchmark run.
type Config struct {
	// Scenarios to run; empty: all.
	Scenarios []string
	// Quick scales every scenario down so that the whole run takes
	// seconds (for tests), not minutes.
	Quick bool
	// Scale multiplies the device and record counts of the full run
	// (ignored with Quick); default 1.
	Scale float64
	// Out is the results file (a JSON array); empty: none.
	Out string
	// Dir is where servers and devices keep their data; empty: a fresh
	// temporary directory, removed at the end.
	Dir string
	// ServerCommand starts a fleet server process with kogge-server's
	// flags (the connections scenario measures its memory). Required for
	// that scenario.
	ServerCommand func(args ...string) *exec.Cmd
	// Mosquitto is the mosquitto binary; default "mosquitto" on PATH.
	Mosquitto string
	// RequireMosquitto fails the broker scenario when Mosquitto is missing
	// instead of skipping it (CI=true).
	RequireMosquitto bool
	// Postgres is a PostgreSQL URL for the replicas scenario, which makes
	// a schema of its own there and drops it at the end; empty: the
	// scenario is skipped (fails with RequireMosquitto).
	Postgres string
	// Replicas is how many server replicas the replicas scenario runs;
	// default 2.
	Replicas int
	// Broker is the external broker of the replicas scenario; only
	// "mosquitto" (the default) is supported.
	Broker string
	// Delivery, if set, runs the bridges and the procedure simulators for
	// the end-to-end scenario.
	Delivery fleet.DeliveryStarter
	// Table receives the table; Progress the progress lines.
	Table, Progress io.Writer
	// Logger receives the servers' and devices' logs; default none.
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if len(c.Scenarios) == 0 {
		c.Scenarios = Scenarios()
	}
	if c.Scale == 0 {
		c.Scale = 1
	}
	if c.Mosquitto == "" {
		c.Mosquitto = "mosquitto"
	}
	if c.Replicas == 0 {
		c.Replicas = 2
	}
	if c.Broker == "" {
		c.Broker = "mosquitto"
	}
	if c.Table == nil {
		c.Table = io.Discard
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate checks the configuration after defaults are filled in.
func (c *Config) Validate() error {
	var errs []error
	for _, s := range c.Scenarios {
		if !slices.Contains(Scenarios(), s) {
			errs = append(errs, fmt.Errorf("unknown scenario %q: want one of %s", s, strings.Join(Scenarios(), ", ")))
		}
	}
	if c.Scale <= 0 || c.Scale > 10 {
		errs = append(errs, fmt.Errorf("scale %v: (0, 10]", c.Scale))
	}
	if c.Replicas < 1 || c.Replicas > 8 {
		errs = append(errs, fmt.Errorf("replicas %d: 1 to 8", c.Replicas))
	}
	if c.Broker != "mosquitto" {
		errs = append(errs, fmt.Errorf("broker %q: only mosquitto can run here (EMQX: see docs/deploy.md)", c.Broker))
	}
	return errors.Join(errs...)
}

// runner holds what the scenarios share.
type runner struct {
	cfg Config
	dir string
	log *slog.Logger
}

// n scales a full-run count; quick is the count with Quick.
func (r *runner) n(full, quick int) int {
	if r.cfg.Quick {
		return quick
	}
	return max(int(float64(full)*r.cfg.Scale), 1)
}

// progressf prints a progress line.
func (r *runner) progressf(format string, args ...any) {
	fmt.Fprintf(r.cfg.Progress, "  … "+format+"\n", args...)
}

// Run runs the scenarios one after another, prints the table and appends
// every result to the results file. A scenario that fails is reported as a
// failed row, and Run goes on with the next; the error joins the failures.
func Run(ctx context.Context, cfg Config) ([]Result, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	dir := cfg.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "kogge-bench-*")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	r := &runner{cfg: cfg, dir: dir, log: cfg.Logger}
	fmt.Fprintf(cfg.Table, "%-12s %14s %-12s %14s %-14s %7s  %-22s %s\n", "scenario", "value", "unit", "baseline", "unit", "ratio", "target", "result")
	var (
		results []Result
		errs    []error
	)
	for _, name := range Scenarios() {
		if !slices.Contains(cfg.Scenarios, name) {
			continue
		}
		if ctx.Err() != nil {
			errs = append(errs, ctx.Err())
			break
		}
		fmt.Fprintf(cfg.Progress, "%s: running\n", name)
		sdir := filepath.Join(dir, name)
		if err := os.MkdirAll(sdir, 0o700); err != nil {
			return results, err
		}
		start := time.Now()
		res, err := r.run(ctx, name, sdir)
		res.Scenario = name
		if res.StartedAt.IsZero() {
			res.StartedAt = start.UTC()
		}
		fmt.Fprintf(cfg.Progress, "%s: done in %v\n", name, time.Since(start).Round(100*time.Millisecond))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			fmt.Fprintf(cfg.Table, "%-12s %s\n", name, "FAILED: "+err.Error())
			continue
		}
		printRow(cfg.Table, res)
		results = append(results, res)
		if cfg.Out != "" {
			if err := AppendResults(cfg.Out, res); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return results, errors.Join(errs...)
}

func (r *runner) run(ctx context.Context, name, dir string) (Result, error) {
	switch name {
	case Ingest:
		return r.ingest(ctx, dir)
	case Blobs:
		return r.blobs(ctx, dir)
	case Connections:
		return r.connections(ctx, dir)
	case CatchUp:
		return r.catchUp(ctx, dir)
	case EndToEnd:
		return r.endToEnd(ctx, dir)
	case BrokerCmp:
		return r.broker(ctx, dir)
	case Replicas:
		return r.replicas(ctx, dir)
	}
	return Result{}, fmt.Errorf("unknown scenario %q", name)
}

// printRow prints a result as a table row.
func printRow(w io.Writer, r Result) {
	if r.Skipped {
		fmt.Fprintf(w, "%-12s %14s %-12s %14s %-14s %7s  %-22s skipped: %s\n", r.Scenario, "-", "", "-", "", "-", r.Target, r.Note)
		return
	}
	base, ratio := "-", "-"
	if r.Baseline > 0 {
		base = formatValue(r.Baseline)
	}
	if r.Ratio > 0 {
		ratio = fmt.Sprintf("%.2f", r.Ratio)
	}
	verdict := "measured"
	if r.Pass != nil {
		verdict = map[bool]string{true: "PASS", false: "below target"}[*r.Pass]
	}
	if r.Note != "" {
		verdict += " (" + r.Note + ")"
	}
	fmt.Fprintf(w, "%-12s %14s %-12s %14s %-14s %7s  %-22s %s\n", r.Scenario, formatValue(r.Value), r.Unit, base, r.BaselineUnit, ratio, r.Target, verdict)
}

func formatValue(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.3f", v)
}

func pass(ok bool) *bool { return &ok }

// AppendResults appends results to the JSON array in path, creating it if
// needed; it is rewritten atomically.
func AppendResults(path string, results ...Result) error {
	existing, err := ReadResults(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	all := append(existing, results...)
	b, err := json.MarshalIndent(all, "", "  ")
	if err != nil {
		return fmt.Errorf("encode results: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	return nil
}

// ReadResults reads the results file: a JSON array of Result.
func ReadResults(path string) ([]Result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return DecodeResults(b)
}

// DecodeResults parses the content of a results file.
func DecodeResults(b []byte) ([]Result, error) {
	if len(strings.TrimSpace(string(b))) == 0 {
		return nil, nil
	}
	var out []Result
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("results file: not a JSON array of results: %w", err)
	}
	return out, nil
}
