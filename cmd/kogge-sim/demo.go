package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/kogge-fleet/kogge/simulators/fleet"
)

// FleetConfig are the settings of kogge-sim demo and chaos (the chaos
// settings at the end are ignored by the demo).
type FleetConfig struct {
	DataDir    string        `config:"data-dir" usage:"where the server, the devices and the ledger keep their data (default: a fresh temporary directory, removed at the end)"`
	Keep       bool          `config:"keep" usage:"keep the temporary data directory at the end"`
	API        string        `config:"api" usage:"REST API and dashboard address (loopback; a free port if taken)"`
	Enroll     string        `config:"enroll" usage:"enrollment HTTPS address (loopback; a free port if taken)"`
	Broker     string        `config:"broker" usage:"MQTT broker TLS address (loopback; a free port if taken)"`
	Kiosks     int           `config:"kiosks" usage:"number of kiosks"`
	Handhelds  int           `config:"handhelds" usage:"number of handhelds, half wardens', half road crews'"`
	Districts  []string      `config:"districts" usage:"districts (device groups) the devices are spread over"`
	Processes  int           `config:"processes" usage:"devices that run as processes of their own"`
	StartOfDay time.Duration `config:"start-of-day" usage:"simulated time of day at the start, e.g. 8h"`
	Hour       time.Duration `config:"hour" usage:"real duration of one simulated hour"`
	LoadScale  float64       `config:"load-scale" usage:"multiplies every device's capture rate"`
	BlobScale  float64       `config:"blob-scale" usage:"multiplies the size of photos and fingerprints (1: a 300 KiB photo)"`
	Seed       uint64        `config:"seed" usage:"seed of the workloads (and the faults)"`
	Progress   time.Duration `config:"progress" usage:"how often a progress line is printed"`
	LogLevel   string        `config:"log-level" usage:"level of server.log and devices.log in the data directory: debug, info, warn, error"`
	Delivery   bool          `config:"delivery" usage:"run the bridges and procedure simulators (delivery into the offices)"`

	// Chaos only.
	Duration         time.Duration `config:"duration" usage:"(chaos) how long faults are made"`
	Drain            time.Duration `config:"drain" usage:"(chaos) how long the drain after the faults may take"`
	LinkFaultEvery   time.Duration `config:"link-fault-every" usage:"(chaos) mean time between link faults (latency, bandwidth, reset, blackhole, cut); negative: none"`
	KillEvery        time.Duration `config:"kill-every" usage:"(chaos) time between SIGKILLs of device processes (±25 %); negative: none"`
	RestartEvery     time.Duration `config:"restart-every" usage:"(chaos) time between restarts of the fleet server and its broker (±25 %); negative: none"`
	NoDistrictOutage bool          `config:"no-district-outage" usage:"(chaos) do not take a district offline for a simulated hour"`
	NoFullDevice     bool          `config:"no-full-device" usage:"(chaos) do not run a device with a tiny store that fills up"`
}

func defaultFleetConfig() FleetConfig {
	return FleetConfig{
		API: "127.0.0.1:8080", Enroll: "127.0.0.1:8443", Broker: "127.0.0.1:8883",
		Kiosks: 12, Handhelds: 20, Districts: []string{"mitte", "nord", "sued"}, Processes: 4,
		StartOfDay: 8 * time.Hour, Hour: 2 * time.Minute, LoadScale: 1, BlobScale: 1, Seed: 1,
		Progress: 5 * time.Second, LogLevel: "info", Delivery: true,
	}
}

// Validate checks the settings.
func (c FleetConfig) Validate() error {
	var errs []error
	for _, a := range []struct{ name, addr string }{{"api", c.API}, {"enroll", c.Enroll}, {"broker", c.Broker}} {
		if a.addr != "" && !strings.HasPrefix(a.addr, "127.") && !strings.HasPrefix(a.addr, "[::1]") && !strings.HasPrefix(a.addr, "localhost:") {
			errs = append(errs, fmt.Errorf("%s %q: the simulator listens on loopback only (127.0.0.1:PORT)", a.name, a.addr))
		}
	}
	if c.Kiosks < 0 || c.Handhelds < 0 || c.Kiosks+c.Handhelds == 0 {
		errs = append(errs, errors.New("kiosks and handhelds: at least one device"))
	}
	if c.Processes < 0 || c.Processes > c.Kiosks+c.Handhelds {
		errs = append(errs, fmt.Errorf("processes %d: 0 to the number of devices", c.Processes))
	}
	if len(c.Districts) == 0 {
		errs = append(errs, errors.New("districts: name at least one"))
	}
	for _, d := range c.Districts {
		if d == "" || strings.Trim(d, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" {
			errs = append(errs, fmt.Errorf("district %q: a-z, 0-9 and '-' only", d))
		}
	}
	if c.StartOfDay < 0 || c.StartOfDay >= 24*time.Hour {
		errs = append(errs, fmt.Errorf("start-of-day %v: 0 to 24h", c.StartOfDay))
	}
	if c.Hour < time.Second {
		errs = append(errs, fmt.Errorf("hour %v: at least 1s", c.Hour))
	}
	if c.LoadScale < 0 || c.BlobScale <= 0 || c.BlobScale > 10 {
		errs = append(errs, errors.New("load-scale must not be negative, blob-scale must be in (0, 10]"))
	}
	if c.Progress < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("progress %v: at least 100ms", c.Progress))
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(c.LogLevel)); err != nil {
		errs = append(errs, fmt.Errorf("log-level %q: want debug, info, warn or error", c.LogLevel))
	}
	return errors.Join(errs...)
}

// runConfig turns the settings into the fleet's run configuration.
func (c FleetConfig) runConfig(out io.Writer) fleet.RunConfig {
	var l slog.Level
	l.UnmarshalText([]byte(c.LogLevel))
	rc := fleet.RunConfig{
		DataDir: c.DataDir, Keep: c.Keep, API: c.API, Enroll: c.Enroll, Broker: c.Broker,
		Kiosks: c.Kiosks, Handhelds: c.Handhelds, Districts: c.Districts, Processes: c.Processes,
		StartOfDay: c.StartOfDay, Hour: c.Hour, LoadScale: c.LoadScale, BlobScale: c.BlobScale, Seed: c.Seed,
		ChildCommand: childCommand, Progress: c.Progress, Out: out, LogLevel: l,
	}
	if c.Delivery {
		rc.Delivery = deliveryStarter()
	}
	return rc
}

func demoCmd(ctx context.Context, args, environ []string, stdout, stderr io.Writer) error {
	cfg := defaultFleetConfig()
	rest, err := load(&cfg, "kogge-sim demo", args, environ, stdout)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageError{fmt.Errorf("unexpected arguments %q", rest)}
	}
	if err := cfg.Validate(); err != nil {
		return usageError{err}
	}
	if cfg.DataDir == "" && !cfg.Keep {
		fmt.Fprintln(stdout, "kogge-sim demo: data in a fresh temporary directory, removed at the end (--keep keeps it)")
	}
	return fleet.Demo(ctx, cfg.runConfig(stdout))
}

func defaultChaosConfig() FleetConfig {
	c := defaultFleetConfig()
	c.Hour = 30 * time.Second
	c.Progress = 10 * time.Second
	c.Duration, c.Drain = 5*time.Minute, 3*time.Minute
	c.LinkFaultEvery, c.KillEvery, c.RestartEvery = 2*time.Second, 8*time.Second, 40*time.Second
	return c
}

func chaosCmd(ctx context.Context, args, environ []string, stdout, stderr io.Writer) error {
	cfg := defaultChaosConfig()
	rest, err := load(&cfg, "kogge-sim chaos", args, environ, stdout)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageError{fmt.Errorf("unexpected arguments %q", rest)}
	}
	err = cfg.Validate()
	if cfg.Duration <= 0 || cfg.Drain <= 0 {
		err = errors.Join(err, errors.New("duration and drain must be positive"))
	}
	if err != nil {
		return usageError{err}
	}
	rc := cfg.runConfig(stdout)
	opts := fleet.ChaosOptions{
		Duration: cfg.Duration, Seed: cfg.Seed, LinkFaultEvery: cfg.LinkFaultEvery,
		KillEvery: cfg.KillEvery, ServerRestartEvery: cfg.RestartEvery, NoDistrictOutage: cfg.NoDistrictOutage,
	}
	if !cfg.NoFullDevice {
		rc.FullDevice = true
	}
	res, err := fleet.Chaos(ctx, rc, opts, cfg.Drain)
	if err != nil {
		return err
	}
	switch {
	case !res.Report.OK():
		return fmt.Errorf("%d records lost, %d duplicated", len(res.Report.Lost), len(res.Report.Duplicated))
	case res.Report.Created == 0:
		return errors.New("no record was captured: the run proves nothing")
	case res.DrainErr != nil || res.Report.PendingCount() > 0:
		fmt.Fprintf(stdout, "chaos: 0 lost, 0 duplicated; %d records still pending after the drain (see above)\n", res.Report.PendingCount())
		return nil
	}
	fmt.Fprintln(stdout, "chaos: 0 lost, 0 duplicated")
	return nil
}

// deviceCmd runs one device process for the fleet (internal).
func deviceCmd(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) != 2 || args[0] != "--spec" {
		return usageError{errors.New("usage: kogge-sim device --spec JSON (started by the fleet, not by hand)")}
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if err := fleet.RunChild(ctx, args[1], stdin, stdout, logger); err != nil {
		return err
	}
	return nil
}
