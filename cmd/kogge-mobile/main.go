// Command kogge-mobile runs a traffic warden's or road crew's handheld:
// the agent (store, sync with the fleet server), the GNSS receiver, the
// printer, the camera, notices for the fine office and damage reports for
// road maintenance (mobile-agent).
//
//	kogge-mobile [--config FILE] [--print-config] [--SETTING=VALUE ...]   the touch UI
//	kogge-mobile --script FILE|-                                           headless: run a script, then exit
//	kogge-mobile --simulate [--script FILE] [--keep]                        the end-to-end simulation
//	kogge-mobile --hash-pin < pin                                          a PIN's hash for the officers file
//
// Every setting is also a KOGGE_* environment variable; see --help. On its
// first start the handheld enrolls with a one-time code (enroll.*). The
// script language is in docs/mobile.md.
//
// --simulate starts, in this process and on loopback only, a fleet server
// with in-process bridges into the owi drop-directory and Open311
// procedure simulators, a simulated GNSS receiver (a pseudo-terminal) and
// printer (TCP); it enrolls a handheld through the real enrollment, runs
// it offline (its link to the broker is down), issues a notice (printed,
// read back by the printer simulator) and files a damage report, then
// brings the link up and waits until the notice has reached the owi
// procedure and the report the Open311 one with their references back on
// the handheld; last it advances the report's request in the Open311
// simulator and waits until the handheld shows the new status. It prints
// each step and exits 0, or 1 if anything failed.
//
// SIGTERM or SIGINT stop the handheld: the agent says goodbye to the
// broker; what is saved stays saved.
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
	code := run(ctx, os.Args[1:], os.Environ(), os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run returns the exit code: 0 after a clean shutdown, a script or a
// simulation that succeeded, 1 when the handheld, the script or the
// simulation failed, 2 for a bad command line or configuration.
func run(ctx context.Context, args, environ []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cfg := DefaultConfig()
	res, code, exit := config.Command(&cfg, "kogge-mobile", config.Source{Args: args, Environ: environ}, stdout, stderr, func() error { return cfg.Validate() })
	if exit {
		return code
	}
	log, _ := cfg.Log.Logger(stderr)
	if res.File != "" {
		log.Info("configuration file read", "file", res.File)
	}
	switch {
	case cfg.HashPIN:
		if err := hashPIN(stdin, stdout); err != nil {
			fmt.Fprintf(stderr, "kogge-mobile --hash-pin: %v\n", err)
			return 1
		}
	case cfg.Simulate:
		if err := simulate(ctx, cfg, stdin, stdout, stderr); err != nil {
			fmt.Fprintf(stderr, "kogge-mobile --simulate: %v\n", err)
			return 1
		}
	default:
		if err := serve(ctx, cfg, stdin, stdout, log); err != nil {
			log.Error("handheld failed", "err", err)
			return 1
		}
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
