// Command kogge-kiosk runs a self-service terminal for ID-document
// applications: the agent (store, sync with the fleet server), the
// peripherals (camera, fingerprint scanner, eID card reader through the
// AusweisApp, payment terminal, receipt printer) and the citizen's flow.
//
//	kogge-kiosk [--config FILE] [--print-config] [--SETTING=VALUE ...]
//	kogge-kiosk --simulate
//
// Every setting is also a KOGGE_* environment variable; see --help. On its
// first start the terminal enrolls with a one-time code (enroll.*). Until
// the touch UI is wired in, the terminal runs headless: it checks and
// reports its peripherals, keeps its sessions ready and logs what they
// show.
//
// --simulate starts, in this process and on loopback only, a fleet server
// with its bridge into the ID-document procedure simulator, the device
// simulators (camera, fingerprint module, payment terminal, printer,
// AusweisApp), enrolls a terminal through the real enrollment, runs one
// scripted citizen through the whole flow, and waits until the application
// has reached the procedure and its receipt is back on the terminal. It
// prints each step and exits 0, or 1 if anything failed.
//
// SIGTERM or SIGINT stop the terminal: a running session is cancelled and
// wiped, the agent says goodbye to the broker.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/kogge-fleet/kogge/internal/config"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	context.AfterFunc(ctx, stop) // a second signal kills the process
	code := run(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run returns the exit code: 0 after a clean shutdown or a successful
// simulation, 1 when the terminal or the simulation failed, 2 for a bad
// command line or configuration.
func run(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	cfg := DefaultConfig()
	res, code, exit := config.Command(&cfg, "kogge-kiosk", config.Source{Args: args, Environ: environ}, stdout, stderr, func() error { return cfg.Validate() })
	if exit {
		return code
	}
	log, _ := cfg.Log.Logger(stderr)
	if res.File != "" {
		log.Info("configuration file read", "file", res.File)
	}
	if cfg.Simulate {
		if err := simulate(ctx, cfg, stdout); err != nil {
			fmt.Fprintf(stderr, "kogge-kiosk --simulate: %v\n", err)
			return 1
		}
		return 0
	}
	if err := serve(ctx, cfg, log); err != nil {
		log.Error("terminal failed", "err", err)
		return 1
	}
	return 0
}

// version is the module's version as built, "devel" in a work tree.
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}
