// Command kogge-sim runs Kogge's simulations: the one-command demo, the
// benchmark scenarios, the chaos run and the device simulators.
//
//	kogge-sim demo    [--SETTING=VALUE ...]   fleet server, bridges, procedures and a fleet; Ctrl-C stops
//	kogge-sim bench   [--quick] [--scenarios=ingest,blobs,…] [--out=bench-results.json]
//	kogge-sim chaos   [--duration=5m] [--seed=1] …   faults, drain, ledger; exit 1 on a lost or duplicated record
//	kogge-sim devices [KIND …]                 hardware simulators (serial pseudo-terminals, sockets)
//	kogge-sim rollout-demo [--devices=100] …    a good and a bad software version rolled out in waves; wave timings
//
// Every command takes --help, --print-config and --config FILE; settings
// are also read from KOGGE_SIM_* environment variables. `kogge-sim device`
// and `kogge-sim server` are internal: the fleet runs devices as processes
// of their own with the first, the benchmark a fleet server process with
// the second when no kogge-server binary is at hand.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"

	"github.com/kogge-fleet/kogge/internal/config"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// A second signal during the drain ends the process at once.
	context.AfterFunc(ctx, stop)
	code := run(ctx, os.Args[1:], os.Environ(), os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes one command and returns the exit code: 0 on success, 1 when
// it failed (a chaos run that lost or duplicated a record, a failed
// benchmark), 2 for a bad command line.
func run(ctx context.Context, args, environ []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	var err error
	switch cmd, rest := args[0], args[1:]; cmd {
	case "demo":
		err = demoCmd(ctx, rest, environ, stdout, stderr)
	case "chaos":
		err = chaosCmd(ctx, rest, environ, stdout, stderr)
	case "rollout-demo":
		err = rolloutDemoCmd(ctx, rest, environ, stdout, stderr)
	case "bench":
		err = benchCmd(ctx, rest, environ, stdout, stderr)
	case "devices":
		err = devicesCmd(ctx, rest, environ, stdout, stderr)
	case "device":
		err = deviceCmd(ctx, rest, stdin, stdout, stderr)
	case "server":
		err = serverCmd(ctx, rest, stderr)
	case "help", "-h", "--help":
		usage(stdout)
		return 0
	default:
		fmt.Fprintf(stderr, "kogge-sim: unknown command %q\n", cmd)
		usage(stderr)
		return 2
	}
	var ue usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp), errors.Is(err, errPrinted):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "kogge-sim %s: %v\n", args[0], err)
		return 2
	default:
		fmt.Fprintf(stderr, "kogge-sim %s: %v\n", args[0], err)
		return 1
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage: kogge-sim COMMAND [--SETTING=VALUE ...]

commands:
  demo      run the fleet server on embedded defaults with bridges, procedure
            simulators and a fleet of 12 kiosks and 20 handhelds; prints the
            API and dashboard addresses and a login; Ctrl-C stops cleanly
  bench     run the benchmark scenarios, print a table and append the results
            to bench-results.json (--quick scales them down)
  chaos     make faults over the demo fleet (link faults, kill -9, server
            restarts, a district offline, a full store), drain and compare the
            ledger; exits 1 on any lost or duplicated record
  devices   run hardware simulators (GNSS, printer, payment terminal, eID,
            card, camera, fingerprint reader)
  rollout-demo
            roll a good and then a bad software version out to a simulated
            fleet in waves; prints the wave timings and the rollback

Each command takes --help for its settings.
`)
}

// usageError is a bad command line.
type usageError struct{ error }

// errPrinted ends a command that printed what was asked (--print-config).
var errPrinted = errors.New("printed")

// load reads a command's configuration from flags, KOGGE_SIM_* and a file,
// and handles --help and --print-config.
func load(cfg any, name string, args, environ []string, stdout io.Writer) ([]string, error) {
	res, err := config.Load(cfg, name, config.Source{Args: args, Environ: environ, Prefix: "KOGGE_SIM_"})
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, simUsage(cfg, name))
		return nil, flag.ErrHelp
	}
	if err != nil {
		return nil, usageError{err}
	}
	if res.PrintConfig {
		if err := config.Print(stdout, cfg); err != nil {
			return nil, err
		}
		return nil, errPrinted
	}
	return res.Args, nil
}

// simUsage is config.Usage with kogge-sim's environment prefix.
func simUsage(cfg any, name string) string {
	return strings.ReplaceAll(config.Usage(cfg, name), ", KOGGE_", ", KOGGE_SIM_")
}

// childCommand runs this binary as a device process.
func childCommand(spec string) *exec.Cmd {
	exe, err := os.Executable()
	if err != nil {
		exe = os.Args[0]
	}
	cmd := exec.Command(exe, "device", "--spec", spec)
	// Its own process group: a Ctrl-C on the terminal is for kogge-sim,
	// which stops its devices itself (SIGTERM; stdin closes if it dies).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd
}
