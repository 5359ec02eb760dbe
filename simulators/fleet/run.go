package fleet

import (
	"context"
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
)

// RunConfig configures a demo or a chaos run: a fleet server on embedded
// defaults in a data directory of its own, and a fleet of kiosks and
// handhelds.
type RunConfig struct {
	// DataDir holds the server's data, the devices' identities and stores,
	// the ledger and the logs. Empty: a fresh temporary directory, removed
	// at the end unless Keep is set.
	DataDir string
	Keep    bool
	// API, Enroll and Broker are the preferred listen addresses (loopback);
	// a taken one falls back to a free port.
	API, Enroll, Broker string
	// Kiosks and Handhelds are the fleet's size; half the handhelds are
	// wardens', half road crews'.
	Kiosks, Handhelds int
	// Districts are the groups the devices are spread over.
	Districts []string
	// Processes is how many devices run as processes of their own.
	Processes int
	// StartOfDay and Hour set the simulated clock.
	StartOfDay, Hour time.Duration
	// LoadScale and BlobScale scale the workloads (see Options).
	LoadScale, BlobScale float64
	Seed                 uint64
	// ChildCommand runs a device process (see Options).
	ChildCommand func(spec string) *exec.Cmd
	// Progress is how often a progress line is printed; default 5 s.
	Progress time.Duration
	// Out receives the progress lines and the summary.
	Out io.Writer
	// LogLevel is the level of the log files (server.log, devices.log in
	// the data directory); default info.
	LogLevel slog.Level
	// Delivery, if set, runs the bridges and the procedure simulators next
	// to the server (see Delivery).
	Delivery DeliveryStarter
	// FullDevice gives one in-process kiosk a store budget of a few
	// captures and three times the load, for the storage-full fault.
	FullDevice bool
}

// fullBudget is a store budget that holds about eight kiosk captures.
func fullBudget(blobScale float64) int64 {
	capture := float64(photoSize+2*fingerSize+signatureSize)*blobScale + 8<<10
	return 256<<10 + int64(8*capture)
}

// DeliveryStarter starts the delivery side of a run: the procedure
// simulators, and the offices' bridges next to every start of the server.
type DeliveryStarter func(ctx context.Context, dir string, offices *Offices, logger *slog.Logger) (Delivery, error)

// Delivery is the running delivery side of a run.
type Delivery interface {
	// Hook runs the bridges next to the server (see ServerHook).
	Hook() ServerHook
	// Deliveries are the cases the procedure simulators received.
	Deliveries() []Delivered
	// Describe says in a line what runs, for the run's header.
	Describe() string
	// Close stops the procedure simulators.
	Close() error
}

// DemoSpecs spreads kiosks and handhelds over the districts: kiosk-<d>-<n>,
// warden-<d>-<n>, crew-<d>-<n>. The last `processes` devices of the list,
// taken alternately from the kiosks and the handhelds, run as processes.
func DemoSpecs(kiosks, handhelds int, districts []string, processes int) []DeviceSpec {
	if len(districts) == 0 {
		districts = []string{"mitte"}
	}
	var specs []DeviceSpec
	count := map[string]int{}
	add := func(role Role, i int) {
		d := districts[i%len(districts)]
		key := string(role) + "-" + d
		count[key]++
		specs = append(specs, DeviceSpec{ID: fmt.Sprintf("%s-%s-%d", role, d, count[key]), Role: role, District: d})
	}
	for i := range kiosks {
		add(Kiosk, i)
	}
	for i := range handhelds {
		if i%2 == 0 {
			add(Warden, i/2)
		} else {
			add(Crew, i/2)
		}
	}
	// Processes: every n-th device, so that each role and district has
	// some.
	if processes > 0 && len(specs) > 0 {
		step := max(len(specs)/processes, 1)
		for i, n := len(specs)-1, 0; i >= 0 && n < processes; i -= step {
			specs[i].Process = true
			n++
		}
	}
	return specs
}

// env is a running server and fleet.
type env struct {
	cfg      RunConfig
	dir      string
	srv      *Server
	fleet    *Fleet
	ledger   *Ledger
	offices  *Offices
	delivery Delivery
	logs     []io.Closer
	started  time.Time
	full     string // the device with the tiny store
}

// setup starts the server, the delivery side and the fleet.
func setup(ctx context.Context, cfg RunConfig) (_ *env, err error) {
	if cfg.Out == nil {
		cfg.Out = io.Discard
	}
	if cfg.Progress == 0 {
		cfg.Progress = 5 * time.Second
	}
	e := &env{cfg: cfg, started: time.Now()}
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	if e.dir = cfg.DataDir; e.dir == "" {
		if e.dir, err = os.MkdirTemp("", "kogge-sim-*"); err != nil {
			return e, err
		}
	} else if err := os.MkdirAll(e.dir, 0o700); err != nil {
		return e, err
	}
	logger := func(name string) (*slog.Logger, error) {
		f, err := os.OpenFile(filepath.Join(e.dir, name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return nil, err
		}
		e.logs = append(e.logs, f)
		return slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: cfg.LogLevel})), nil
	}
	serverLog, err := logger("server.log")
	if err != nil {
		return e, err
	}
	deviceLog, err := logger("devices.log")
	if err != nil {
		return e, err
	}
	specs := DemoSpecs(cfg.Kiosks, cfg.Handhelds, cfg.Districts, cfg.Processes)
	if cfg.FullDevice {
		for i, s := range specs {
			if s.Role == Kiosk && !s.Process {
				specs[i].Budget = fullBudget(max(cfg.BlobScale, 0.01))
				specs[i].LoadScale = 3
				e.full = s.ID
				break
			}
		}
	}
	if e.offices, err = GenerateOffices(OfficesFor(specs)...); err != nil {
		return e, err
	}
	var hooks []ServerHook
	if cfg.Delivery != nil {
		if e.delivery, err = cfg.Delivery(ctx, filepath.Join(e.dir, "procedures"), e.offices, serverLog.With("side", "delivery")); err != nil {
			return e, fmt.Errorf("start the delivery side: %w", err)
		}
		hooks = append(hooks, e.delivery.Hook())
	}
	e.srv, err = StartServer(ctx, ServerConfig{
		DataDir: filepath.Join(e.dir, "server"), API: cfg.API, Enroll: cfg.Enroll, Broker: cfg.Broker,
		Logger: serverLog,
	}, hooks...)
	if err != nil {
		return e, err
	}
	if e.ledger, err = OpenLedger(filepath.Join(e.dir, "ledger.jsonl")); err != nil {
		return e, err
	}
	e.fleet, err = New(e.srv, filepath.Join(e.dir, "devices"), e.ledger, e.offices, Options{
		Clock:     Clock{Origin: time.Now(), StartOfDay: cfg.StartOfDay, Hour: cfg.Hour},
		LoadScale: cfg.LoadScale, BlobScale: cfg.BlobScale, Seed: cfg.Seed,
		ChildCommand: cfg.ChildCommand, Logger: serverLog.With("side", "fleet"), DeviceLogger: deviceLog,
	})
	if err != nil {
		return e, err
	}
	fmt.Fprintf(cfg.Out, "enrolling %d devices through %s/enroll/v1 …\n", len(specs), e.srv.EnrollURL())
	if err := e.fleet.Enroll(ctx, specs); err != nil {
		return e, err
	}
	if err := e.fleet.Start(ctx); err != nil {
		return e, err
	}
	return e, nil
}

// close stops what setup started, in reverse.
func (e *env) close() error {
	var errs []error
	if e.fleet != nil {
		errs = append(errs, e.fleet.Stop())
	}
	if e.srv != nil {
		errs = append(errs, e.srv.Stop())
	}
	if e.delivery != nil {
		errs = append(errs, e.delivery.Close())
	}
	if e.ledger != nil {
		errs = append(errs, e.ledger.Close())
	}
	for _, l := range e.logs {
		l.Close()
	}
	if e.cfg.DataDir == "" && !e.cfg.Keep && e.dir != "" {
		errs = append(errs, os.RemoveAll(e.dir))
	}
	return errors.Join(errs...)
}

// progress prints one line: time, simulated time of day, devices online,
// records captured, stored and delivered, and what waits where.
func (e *env) progress(ctx context.Context, note string) {
	t := e.fleet.Totals(ctx)
	delivered, n := "-", 0
	if e.delivery != nil {
		for _, d := range e.delivery.Deliveries() {
			if !d.Duplicate {
				n++
			}
		}
		delivered = fmt.Sprint(n)
	}
	// Stored at the server: what the devices no longer hold (their
	// counters lag a moment behind the ledger), at least what was
	// delivered.
	stored := max(t.Captured-t.Queue, n)
	el := time.Since(e.started).Round(time.Second)
	line := fmt.Sprintf("[%s] %s  online %d/%d  captured %d  stored %d  delivered %s  on devices %d",
		el, FormatTimeOfDay(e.fleet.Clock().TimeOfDay()), t.Online, t.Devices+t.Stopped, t.Captured,
		stored, delivered, t.Queue)
	if t.Refused > 0 {
		line += fmt.Sprintf("  refused (storage full) %d", t.Refused)
	}
	if t.Kills > 0 {
		line += fmt.Sprintf("  kills %d", t.Kills)
	}
	if r := e.srv.Restarts(); r > 0 {
		line += fmt.Sprintf("  server restarts %d", r)
	}
	if note != "" {
		line += "  " + note
	}
	fmt.Fprintln(e.cfg.Out, line)
}

// drainAndReconcile stops the captures, waits for the devices (and, with
// delivery, the procedures) to receive everything, stops the fleet and
// compares the ledger with the server, the devices and the procedures.
func (e *env) drainAndReconcile(ctx context.Context, timeout time.Duration) (rep Report, drainErr, err error) {
	e.fleet.SetCapturing(false)
	e.fleet.Heal()
	fmt.Fprintf(e.cfg.Out, "draining: captures stopped, links healed; waiting up to %v for the devices to send everything\n", timeout)
	deadline := time.Now().Add(timeout)
	_, derr := e.fleet.WaitDrained(ctx, timeout, func(Totals) { e.progress(ctx, "(draining)") })
	if derr == nil && e.delivery != nil {
		derr = e.waitDelivered(ctx, time.Until(deadline))
	}
	if derr != nil {
		fmt.Fprintf(e.cfg.Out, "drain: %v\n", derr)
	}
	e.progress(ctx, "(drained)")
	if err := e.fleet.Stop(); err != nil {
		fmt.Fprintf(e.cfg.Out, "stopping the fleet: %v\n", err)
	}
	var deliveries []Delivered
	if e.delivery != nil {
		deliveries = e.delivery.Deliveries()
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	rep, err = e.fleet.Reconcile(rctx, deliveries, e.delivery != nil)
	return rep, derr, err
}

// waitDelivered waits until every receipt in the ledger reached a
// procedure, or timeout.
func (e *env) waitDelivered(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(max(timeout, time.Second))
	var last time.Time
	for {
		got := map[string]bool{}
		for _, d := range e.delivery.Deliveries() {
			got[d.Record.String()] = true
		}
		missing := 0
		for _, en := range e.ledger.Entries() {
			if !got[en.Record.String()] {
				missing++
			}
		}
		if missing == 0 {
			return nil
		}
		if time.Since(last) >= 2*time.Second {
			e.progress(ctx, fmt.Sprintf("(waiting for %d deliveries)", missing))
			last = time.Now()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d receipts not delivered to a procedure in time", missing)
		}
		if !sleep(ctx, 250*time.Millisecond) {
			return ctx.Err()
		}
	}
}

// Demo runs the demo until ctx ends: the fleet server on embedded defaults,
// the delivery side if configured, and the fleet producing traffic; it
// prints where to look and a progress line every few seconds. When ctx
// ends it stops the captures, lets the devices send what they hold (up to
// 15 s), stops everything cleanly and prints the ledger summary.
func Demo(ctx context.Context, cfg RunConfig) error {
	e, err := setup(ctx, cfg)
	if err != nil {
		return err
	}
	out := e.cfg.Out
	app := e.srv.App()
	fmt.Fprintln(out)
	fmt.Fprintf(out, "Kogge demo: the fleet server on embedded defaults (its own MQTT broker and SQLite)\n")
	fmt.Fprintf(out, "  data directory  %s\n", e.dir)
	fmt.Fprintf(out, "  REST API        %s/api/v1\n", e.srv.APIURL())
	fmt.Fprintf(out, "  API token       %s\n", app.Token())
	fmt.Fprintf(out, "  dashboard       %s\n", app.DashboardURL())
	if pw, ok := app.AdminPassword(); ok {
		fmt.Fprintf(out, "  login           admin / %s\n", pw)
	} else {
		fmt.Fprintf(out, "  login           admin (password in %s)\n", filepath.Join(e.srv.Config().DataDir, "admin-password"))
	}
	fmt.Fprintf(out, "  enrollment      %s/enroll/v1\n", e.srv.EnrollURL())
	fmt.Fprintf(out, "  MQTT broker     mqtts://%s%s\n", e.srv.BrokerAddr(), portNote(cfg.Broker, e.srv.BrokerAddr()))
	fmt.Fprintf(out, "  logs            %s, %s\n", filepath.Join(e.dir, "server.log"), filepath.Join(e.dir, "devices.log"))
	fmt.Fprintf(out, "  try             curl -s -H 'Authorization: Bearer %s' %s/api/v1/records?limit=5\n", app.Token(), e.srv.APIURL())
	fmt.Fprintf(out, "Fleet: %s\n", e.describeFleet())
	if e.delivery != nil {
		fmt.Fprintf(out, "Delivery: %s\n", e.delivery.Describe())
	} else {
		fmt.Fprintf(out, "Delivery: not part of this run (no bridges and procedure simulators in this build); records end stored on the server\n")
	}
	fmt.Fprintf(out, "Simulated day: one hour lasts %v, starting at %s. Ctrl-C stops everything cleanly.\n\n",
		cfg.Hour, FormatTimeOfDay(cfg.StartOfDay))
	tick := time.NewTicker(e.cfg.Progress)
	defer tick.Stop()
	e.progress(ctx, "")
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-tick.C:
			e.progress(ctx, "")
		}
	}
	fmt.Fprintln(out, "\nstopping …")
	rep, _, err := e.drainAndReconcile(context.Background(), 15*time.Second)
	if err == nil {
		rep.Print(out, e.delivery != nil)
	}
	return errors.Join(err, e.close())
}

func portNote(preferred, got string) string {
	if preferred == "" || preferred == got {
		return ""
	}
	return fmt.Sprintf(" (%s was taken)", preferred)
}

func (e *env) describeFleet() string {
	roles := map[Role]int{}
	procs := 0
	var districts []string
	for _, d := range e.fleet.Devices() {
		roles[d.Spec.Role]++
		if d.Spec.Process {
			procs++
		}
		if !slices.Contains(districts, d.Spec.District) {
			districts = append(districts, d.Spec.District)
		}
	}
	return fmt.Sprintf("%d kiosks, %d warden handhelds, %d road-crew handhelds in districts %s; %d of them as processes of their own",
		roles[Kiosk], roles[Warden], roles[Crew], strings.Join(districts, ", "), procs)
}

// ChaosResult is the outcome of a chaos run.
type ChaosResult struct {
	Faults ChaosStats
	Report Report
	// DrainErr says why the drain did not finish, if it did not.
	DrainErr error
}

// Chaos runs the fault mix over the demo fleet for opts.Duration, then
// drains and reconciles, printing progress and the ledger summary. The
// caller fails the run when the report is not OK.
func Chaos(ctx context.Context, cfg RunConfig, opts ChaosOptions, drain time.Duration) (ChaosResult, error) {
	e, err := setup(ctx, cfg)
	if err != nil {
		return ChaosResult{}, err
	}
	defer e.close()
	out := e.cfg.Out
	fmt.Fprintf(out, "chaos: %v of faults over %s (data in %s)\n", opts.Duration, e.describeFleet(), e.dir)
	if e.delivery != nil {
		fmt.Fprintf(out, "delivery: %s\n", e.delivery.Describe())
	}
	pctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(e.cfg.Progress)
		defer tick.Stop()
		for {
			select {
			case <-pctx.Done():
				return
			case <-tick.C:
				e.progress(pctx, "")
			}
		}
	}()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	if opts.FullDevice == "" {
		opts.FullDevice = e.full
	}
	faults, cerr := RunChaos(ctx, e.fleet, e.srv, opts)
	stop()
	<-done
	res := ChaosResult{Faults: faults}
	fmt.Fprintf(out, "faults made: %s\n", faults)
	if cerr != nil {
		return res, cerr
	}
	res.Report, res.DrainErr, err = e.drainAndReconcile(ctx, drain)
	if err != nil {
		return res, err
	}
	res.Report.Print(out, e.delivery != nil)
	return res, nil
}
