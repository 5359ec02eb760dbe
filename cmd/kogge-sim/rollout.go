package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kogge-fleet/kogge/fleet-server/api/client"
	"github.com/kogge-fleet/kogge/simulators/fleet"
)

// RolloutDemoConfig are the settings of kogge-sim rollout-demo.
type RolloutDemoConfig struct {
	DataDir      string        `config:"data-dir" usage:"where the server and the devices keep their data (default: a fresh temporary directory, removed at the end)"`
	Keep         bool          `config:"keep" usage:"keep the temporary data directory at the end"`
	Devices      int           `config:"devices" usage:"number of devices (kiosks) in the fleet"`
	Waves        []string      `config:"waves" usage:"cumulative wave sizes of the rollouts (comma-separated, e.g. 1,5%,25%,100%)"`
	Soak         time.Duration `config:"soak" usage:"how long a ready wave must stay healthy before the next"`
	HealthWindow time.Duration `config:"health-window" usage:"how long a new version has on a device to pass its health check"`
	Size         int           `config:"size" usage:"size of the simulated binaries in bytes"`
	Bandwidth    int64         `config:"bandwidth" usage:"download limit per device in bytes a second (0: none)"`
	Bad          bool          `config:"bad" usage:"after the good version, roll out a bad one that fails its health check"`
	Timeout      time.Duration `config:"timeout" usage:"how long one rollout may take"`
	LogLevel     string        `config:"log-level" usage:"level of the log in the data directory (rollout-demo.log): debug, info, warn, error"`
}

func defaultRolloutDemoConfig() RolloutDemoConfig {
	return RolloutDemoConfig{Devices: 100, Waves: []string{"1", "5%", "25%", "100%"}, Soak: 10 * time.Second,
		HealthWindow: 20 * time.Second, Size: 1 << 20, Bad: true, Timeout: 10 * time.Minute, LogLevel: "info"}
}

// Validate checks the settings.
func (c RolloutDemoConfig) Validate() error {
	var errs []error
	if c.Devices < 1 || c.Devices > 2000 {
		errs = append(errs, fmt.Errorf("devices %d: 1 to 2000", c.Devices))
	}
	if len(c.Waves) == 0 {
		errs = append(errs, errors.New("waves: name at least one, e.g. 100%"))
	}
	if c.Soak < 0 || c.HealthWindow < time.Second || c.Timeout < time.Second {
		errs = append(errs, errors.New("soak must not be negative, health-window and timeout at least 1s"))
	}
	if c.Size < 1024 || c.Size > 256<<20 || c.Bandwidth < 0 {
		errs = append(errs, errors.New("size: 1 KiB to 256 MiB; bandwidth must not be negative"))
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(c.LogLevel)); err != nil {
		errs = append(errs, fmt.Errorf("log-level %q: want debug, info, warn or error", c.LogLevel))
	}
	return errors.Join(errs...)
}

// rolloutDemoCmd runs kogge-sim rollout-demo: a fleet server and a fleet of
// updatable devices; a good version rolls out in waves, then a bad one
// stops in its first wave; the wave timings are printed.
func rolloutDemoCmd(ctx context.Context, args, environ []string, stdout, stderr io.Writer) error {
	cfg := defaultRolloutDemoConfig()
	rest, err := load(&cfg, "kogge-sim rollout-demo", args, environ, stdout)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageError{fmt.Errorf("unexpected arguments %q", rest)}
	}
	if err := cfg.Validate(); err != nil {
		return usageError{err}
	}
	dir := cfg.DataDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "kogge-rollout-demo-"); err != nil {
			return err
		}
		if cfg.Keep {
			fmt.Fprintf(stdout, "rollout-demo: data in %s (kept)\n", dir)
		} else {
			defer os.RemoveAll(dir)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	logFile, err := os.OpenFile(filepath.Join(dir, "rollout-demo.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logFile.Close()
	var level slog.Level
	level.UnmarshalText([]byte(cfg.LogLevel))
	logger := slog.New(slog.NewTextHandler(logFile, &slog.HandlerOptions{Level: level}))

	start := time.Now()
	fmt.Fprintf(stdout, "rollout-demo: starting the fleet server and enrolling %d devices...\n", cfg.Devices)
	s, err := fleet.StartRolloutSim(ctx, fleet.RolloutSimConfig{Dir: dir, Devices: cfg.Devices, Logger: logger,
		Update: fleet.UpdateOptions{HealthWindow: cfg.HealthWindow, RateLimit: cfg.Bandwidth, EnrollConcurrency: 16,
			DeviceLogger: logger.With("side", "device")}})
	if err != nil {
		return err
	}
	defer s.Close()
	fmt.Fprintf(stdout, "rollout-demo: %d devices enrolled in %v, online %v later (%v in all); API %s (token in %s)\n", cfg.Devices,
		s.Enrolled.Round(time.Millisecond), s.Online.Round(time.Millisecond), time.Since(start).Round(time.Millisecond),
		s.Server.APIURL(), filepath.Join(dir, "server", "api-token"))

	roll := func(version string, b fleet.Behaviour) (client.Rollout, error) {
		a, err := s.Publish(ctx, version, b, cfg.Size)
		if err != nil {
			return client.Rollout{}, err
		}
		fmt.Fprintf(stdout, "\nrollout-demo: rolling out %s (%d bytes, %s) in waves %s, soak %v\n", version, a.Size,
			map[bool]string{false: "healthy", true: "fails its self-test"}[b.FailSelfTest], strings.Join(cfg.Waves, ", "), cfg.Soak)
		return s.Roll(ctx, client.RolloutRequest{Artifact: a.ID, Target: client.RolloutTarget{Group: "mitte"}, Waves: cfg.Waves,
			Soak: cfg.Soak.String(), Window: "always"}, cfg.Timeout, func(r client.Rollout) {
			fmt.Fprintf(stdout, "  %6.1fs  %-9s wave %d/%d  %s\n", time.Since(r.CreatedAt).Seconds(), r.State, r.Wave, len(r.Waves), counts(r))
		})
	}
	good, err := roll("1.1.0", fleet.Behaviour{})
	printTimings(stdout, good)
	if err != nil {
		return err
	}
	if good.State != "succeeded" {
		return fmt.Errorf("the good version did not roll out: %s: %s", good.State, good.Reason)
	}
	if !cfg.Bad {
		return nil
	}
	bad, err := roll("1.2.0", fleet.Behaviour{FailSelfTest: true})
	printTimings(stdout, bad)
	if err != nil {
		return err
	}
	if bad.State != "aborted" {
		return fmt.Errorf("the bad version was not stopped: %s", bad.State)
	}
	fmt.Fprintf(stdout, "  reason: %s\n", bad.Reason)
	deadline := time.Now().Add(cfg.HealthWindow + time.Minute)
	for s.Fleet.Versions()["1.1.0"] < cfg.Devices && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	fmt.Fprintf(stdout, "rollout-demo: devices per version now: %v\n", s.Fleet.Versions())
	return nil
}

func counts(r client.Rollout) string {
	var parts []string
	for _, st := range []string{"pending", "waiting", "sent", "downloading", "installing", "succeeded", "failed", "rolled-back", "rolling-back", "cancelled"} {
		if n := r.Counts[st]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", st, n))
		}
	}
	return strings.Join(parts, ", ")
}

// printTimings prints a rollout's wave timings as a table.
func printTimings(w io.Writer, r client.Rollout) {
	if r.ID == [16]byte{} {
		return
	}
	fmt.Fprintf(w, "rollout %s: %s", r.Name, r.State)
	if !r.FinishedAt.IsZero() {
		fmt.Fprintf(w, " after %v", r.FinishedAt.Sub(r.CreatedAt).Round(time.Millisecond))
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "wave\tdevices\tstarted at\tready after\tdone after\tsucceeded\tfailed\t")
	for _, t := range fleet.WaveTimings(r) {
		wp := r.Waves[t.Wave-1]
		fmt.Fprintf(tw, "%d\t%d\t%v\t%v\t%v\t%d\t%d\t\n", t.Wave, t.Devices, t.Start.Round(time.Millisecond),
			dash(t.Ready), dash(t.Done), wp.Succeeded, wp.Failed)
	}
	tw.Flush()
}

// dash renders a duration to the millisecond, "-" for none.
func dash(d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	return d.Round(time.Millisecond).String()
}
