// Command kogge-server runs the Kogge fleet server: the embedded MQTT
// broker, ingest, registry and enrollment, twin, commands, presence and the
// REST API, on SQLite in its data directory unless configured otherwise.
//
//	kogge-server [--config FILE] [--print-config] [--SETTING=VALUE ...]
//
// Every setting is also a KOGGE_* environment variable; see --help.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	fleetserver "github.com/kogge-fleet/kogge/fleet-server"
	"github.com/kogge-fleet/kogge/fleet-server/dashboard"
	"github.com/kogge-fleet/kogge/internal/config"
)

// main runs the server until SIGINT or SIGTERM, then drains. A second
// signal during the drain ends the process at once.
func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	context.AfterFunc(ctx, stop)
	code := run(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run starts the server and returns the exit code: 0 after a clean
// shutdown, 1 when the server failed, 2 for a bad command line or
// configuration.
func run(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	cfg := fleetserver.DefaultConfig()
	res, err := config.Load(&cfg, "kogge-server", config.Source{Args: args, Environ: environ})
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, config.Usage(&cfg, "kogge-server"))
			return 0
		}
		fmt.Fprintf(stderr, "kogge-server: %v\n", err)
		return 2
	}
	if len(res.Args) > 0 {
		fmt.Fprintf(stderr, "kogge-server: unexpected arguments %q; settings are given as --name=value\n", res.Args)
		return 2
	}
	resolved := cfg.Resolve()
	if res.PrintConfig {
		p := resolved.Printable()
		if err := config.Print(stdout, &p); err != nil {
			fmt.Fprintf(stderr, "kogge-server: %v\n", err)
			return 1
		}
		return 0
	}
	if err := resolved.Validate(); err != nil {
		fmt.Fprintf(stderr, "kogge-server: %v\n", err)
		return 2
	}
	logger, err := fleetserver.NewLogger(cfg.Log, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "kogge-server: %v\n", err)
		return 2
	}
	if res.File != "" {
		logger.Info("configuration file read", "file", res.File)
	}

	app, err := fleetserver.New(cfg, logger)
	if err != nil {
		logger.Error("fleet server cannot start", "err", err)
		return 1
	}
	if app.TokenGenerated() {
		// Shown once, on the terminal, not in the log: the log may be
		// shipped elsewhere.
		fmt.Fprintf(stderr, "\nGenerated an API token (shown only now):\n\n    %s\n\nIt is stored in %s (mode 0600).\n"+
			"koggectl reads it with --token-file %s or KOGGE_TOKEN.\n\n",
			app.Token(), resolved.TokenPath(), resolved.TokenPath())
	}
	if pw, ok := app.AdminPassword(); ok {
		fmt.Fprintf(stderr, "Created the dashboard user admin; its password (shown only now):\n\n    %s\n\n"+
			"It is stored in %s (mode 0600). Sign in at %s and change it.\n\n",
			pw, filepath.Join(resolved.DataDir, dashboard.AdminPasswordFile), app.DashboardURL())
	}
	if err := app.Run(ctx); err != nil {
		logger.Error("fleet server failed", "err", err)
		return 1
	}
	return 0
}
