package fleet

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/agent/enroll"
	"github.com/kogge-fleet/kogge/agent/store"
	"github.com/kogge-fleet/kogge/fleet-server/api/client"
	"github.com/kogge-fleet/kogge/simulators/fleet/faultproxy"
)

// Software is the software version the virtual devices announce.
const Software = "kogge-sim-1"

// Options are the optional settings of a Fleet.
type Options struct {
	// Clock is the simulated clock; default: 1 simulated hour = 1 minute,
	// starting at 09:00 now.
	Clock Clock
	// Workloads override the default workload of a role.
	Workloads map[Role]Workload
	// LoadScale multiplies every workload's rate; default 1.
	LoadScale float64
	// BlobScale multiplies every blob's size; default 1 (a kiosk photo of
	// about 300 KiB).
	BlobScale float64
	// Seed makes the workloads repeatable; default 1.
	Seed uint64
	// ChildCommand returns the command that runs a device process with
	// the spec (JSON); required when a device runs as a process. It runs
	// `kogge-sim device --spec JSON` in kogge-sim.
	ChildCommand func(spec string) *exec.Cmd
	// EnrollConcurrency bounds the enrollments in flight; default 8.
	EnrollConcurrency int
	// Logger receives the fleet's log lines; default none.
	Logger *slog.Logger
	// DeviceLogger receives the agents' log lines; default none.
	DeviceLogger *slog.Logger
	// Keepalive is the devices' MQTT keepalive; default the server's.
	Keepalive time.Duration
}

func (o *Options) setDefaults(srv *Server) {
	if o.Clock.Origin.IsZero() {
		o.Clock.Origin = time.Now()
		if o.Clock.StartOfDay == 0 {
			o.Clock.StartOfDay = 9 * time.Hour
		}
	}
	if o.Clock.Hour == 0 {
		o.Clock.Hour = time.Minute
	}
	if o.LoadScale == 0 {
		o.LoadScale = 1
	}
	if o.BlobScale == 0 {
		o.BlobScale = 1
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.EnrollConcurrency == 0 {
		o.EnrollConcurrency = 8
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.DeviceLogger == nil {
		o.DeviceLogger = slog.New(slog.DiscardHandler)
	}
	if o.Keepalive == 0 {
		o.Keepalive = srv.Config().Broker.Keepalive
	}
}

// Validate checks the options after defaults are filled in.
func (o *Options) Validate() error {
	var errs []error
	if err := o.Clock.Validate(); err != nil {
		errs = append(errs, err)
	}
	if o.LoadScale < 0 || o.BlobScale <= 0 || o.BlobScale > 10 {
		errs = append(errs, errors.New("load scale must not be negative, blob scale must be in (0, 10]"))
	}
	for r := range o.Workloads {
		if !r.Valid() {
			errs = append(errs, fmt.Errorf("workload for unknown role %q", r))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("fleet options: %w", err)
	}
	return nil
}

func (o *Options) workload(r Role) Workload {
	if w, ok := o.Workloads[r]; ok {
		return w
	}
	return DefaultWorkload(r)
}

// Fleet is a set of virtual devices, each a real agent with its own store
// and certificate, enrolled at the fleet server through the real
// enrollment endpoint, each connected through a fault proxy of its own.
// Devices marked Process run as child processes that can be killed.
type Fleet struct {
	srv     *Server
	dir     string
	ledger  *Ledger
	opts    Options
	offices *Offices
	log     *slog.Logger
	tuning  AgentTuning

	capturing atomic.Bool

	mu      sync.Mutex
	devices []*Device
	byID    map[string]*Device
	proxies sync.WaitGroup
	cancel  context.CancelFunc
	running bool
	stopped bool
}

// New returns a fleet whose devices keep their data under dir and enroll
// at srv; every receipt goes to ledger. Call Enroll, then Start.
func New(srv *Server, dir string, ledger *Ledger, offices *Offices, opts Options) (*Fleet, error) {
	if srv == nil || ledger == nil || offices == nil || dir == "" {
		return nil, errors.New("fleet: a server, a directory, a ledger and the offices are required")
	}
	opts.setDefaults(srv)
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	f := &Fleet{
		srv: srv, dir: dir, ledger: ledger, opts: opts, offices: offices, log: opts.Logger,
		byID: map[string]*Device{},
		tuning: AgentTuning{
			Keepalive: opts.Keepalive, MinBackoff: 200 * time.Millisecond, MaxBackoff: 3 * time.Second,
			AckTimeout: 3 * time.Second, SyncBackoff: 15 * time.Second, HelloTimeout: 3 * time.Second,
		},
	}
	f.capturing.Store(true)
	return f, nil
}

// Clock is the fleet's simulated clock.
func (f *Fleet) Clock() Clock { return f.opts.Clock }

// Device is one virtual device of a fleet.
type Device struct {
	Spec  DeviceSpec
	dir   string
	f     *Fleet
	proxy *faultproxy.Proxy

	mu          sync.Mutex
	incarnation int
	inproc      *inprocDevice
	proc        *procDevice
	last        DeviceStats   // of a device process, as it last reported
	offAcks     int           // "capture off" acknowledgements of its processes
	acked       chan struct{} // closed and replaced at each acknowledgement and when a process ends
	kills       int
}

// Proxy is the device's fault proxy.
func (d *Device) Proxy() *faultproxy.Proxy { return d.proxy }

// Dir is where the device keeps its identity and store.
func (d *Device) Dir() string { return d.dir }

// Kills is how often the device process was killed.
func (d *Device) Kills() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.kills
}

// Devices returns the fleet's devices.
func (f *Fleet) Devices() []*Device {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.devices)
}

// Device returns the device with id.
func (f *Fleet) Device(id string) (*Device, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, ok := f.byID[id]
	return d, ok
}

// Enroll creates the districts' groups with the offices' keys in their
// twins, then enrolls every device with a one-time code of its group
// through the server's HTTPS enrollment endpoint.
func (f *Fleet) Enroll(ctx context.Context, specs []DeviceSpec) error {
	api := f.srv.API()
	groups := map[string]bool{}
	for _, s := range specs {
		if !s.Role.Valid() {
			return fmt.Errorf("device %s: unknown role %q", s.ID, s.Role)
		}
		if s.Process && f.opts.ChildCommand == nil {
			return fmt.Errorf("device %s runs as a process, but the fleet has no ChildCommand", s.ID)
		}
		groups[s.District] = true
	}
	twin := f.offices.Twin()
	for _, g := range slices.Sorted(maps.Keys(groups)) {
		if _, err := api.CreateGroup(ctx, g, "Bezirk "+g+" (kogge-sim)"); err != nil && !isConflict(err) {
			return fmt.Errorf("create group %s: %w", g, err)
		}
		if _, err := api.SetGroupTwin(ctx, g, twin); err != nil {
			return fmt.Errorf("set the offices' keys in the twin of group %s: %w", g, err)
		}
	}

	var (
		wg   sync.WaitGroup
		sem  = make(chan struct{}, f.opts.EnrollConcurrency)
		mu   sync.Mutex
		errs []error
		done []*Device
	)
	for _, s := range specs {
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-sem }()
			d, err := f.enrollOne(ctx, s)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			done = append(done, d)
		})
	}
	wg.Wait()
	if err := errors.Join(append(errs, ctx.Err())...); err != nil {
		for _, d := range done {
			d.proxy.Close()
		}
		return err
	}
	order := map[string]int{}
	for i, s := range specs {
		order[s.ID] = i
	}
	slices.SortFunc(done, func(a, b *Device) int { return order[a.Spec.ID] - order[b.Spec.ID] })
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, d := range done {
		f.devices = append(f.devices, d)
		f.byID[d.Spec.ID] = d
	}
	return nil
}

func isConflict(err error) bool {
	var e *client.Error
	return errors.As(err, &e) && e.Status == 409
}

// enrollOne enrolls one device (or loads its identity if it enrolled
// before) and makes its fault proxy.
func (f *Fleet) enrollOne(ctx context.Context, s DeviceSpec) (*Device, error) {
	dir := filepath.Join(f.dir, s.ID)
	idDir := filepath.Join(dir, "identity")
	if _, err := enroll.Load(idDir); err != nil {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("device %s: %w", s.ID, err)
		}
		model := map[Role]string{Kiosk: "Kogge Kiosk K1 (simulated)", Warden: "Kogge Handheld H1 (simulated)", Crew: "Kogge Handheld H1 (simulated)"}[s.Role]
		_, err := EnrollDevice(ctx, f.srv.API(), f.srv.EnrollURL(), idDir, s.ID, s.District, enroll.Inventory{
			Model: model, Serial: "SIM-" + s.ID, Software: Software, Location: "Bezirk " + s.District, Peripherals: peripherals(s.Role),
		})
		if err != nil {
			return nil, err
		}
	}
	p, err := faultproxy.New(f.srv.BrokerAddr(), faultproxy.Options{Logger: f.log})
	if err != nil {
		return nil, fmt.Errorf("device %s: %w", s.ID, err)
	}
	return &Device{Spec: s, dir: dir, f: f, proxy: p}, nil
}

func peripherals(r Role) []enroll.Peripheral {
	switch r {
	case Kiosk:
		return []enroll.Peripheral{{Name: "camera", Kind: "camera"}, {Name: "fingerprint", Kind: "fingerprint"},
			{Name: "eid", Kind: "eid"}, {Name: "payment", Kind: "payment"}, {Name: "printer", Kind: "printer"}}
	case Warden:
		return []enroll.Peripheral{{Name: "camera", Kind: "camera"}, {Name: "gnss", Kind: "gnss"}, {Name: "printer", Kind: "printer"}}
	}
	return []enroll.Peripheral{{Name: "camera", Kind: "camera"}, {Name: "gnss", Kind: "gnss"}}
}

// Start runs the proxies and starts every device. The proxies run until
// Stop. A fleet starts once.
func (f *Fleet) Start(ctx context.Context) error {
	f.mu.Lock()
	if f.running || f.stopped {
		f.mu.Unlock()
		return errors.New("fleet already started")
	}
	f.running = true
	pctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	devices := slices.Clone(f.devices)
	f.mu.Unlock()
	for _, d := range devices {
		f.proxies.Go(func() {
			if err := d.proxy.Run(pctx); err != nil {
				f.log.Error("fault proxy failed", "device", d.Spec.ID, "err", err)
			}
		})
	}
	var errs []error
	for _, d := range devices {
		if err := d.Start(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Stop stops every device (gracefully: agents finish what they do), then
// the proxies.
func (f *Fleet) Stop() error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, d := range f.Devices() {
		wg.Go(func() {
			if err := d.Stop(); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	f.mu.Lock()
	cancel := f.cancel
	f.running, f.stopped = false, true
	f.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	f.proxies.Wait()
	for _, d := range f.Devices() {
		d.proxy.Close() // the proxies of a fleet that never started
	}
	return errors.Join(errs...)
}

// SetCapturing switches every device's workload on or off (the devices
// keep running and syncing). Switching off returns once no device is in
// the middle of a capture and every receipt is in the ledger.
func (f *Fleet) SetCapturing(on bool) {
	f.capturing.Store(on)
	type waiting struct {
		d    *Device
		acks int
	}
	var wait []waiting
	for _, d := range f.Devices() {
		d.mu.Lock()
		if p := d.proc; p != nil {
			p.command(map[bool]string{true: cmdCaptureOn, false: cmdCaptureOff}[on])
			wait = append(wait, waiting{d, d.offAcks})
		}
		ip := d.inproc
		d.mu.Unlock()
		if !on && ip != nil {
			ip.capturer.idle()
		}
	}
	if on {
		return
	}
	// Switched off: wait until every device process says that no capture
	// is in progress (its receipts are read by then), so that a drain that
	// follows sees every capture. A process that ends is not waited for.
	timeout := time.NewTimer(30 * time.Second)
	defer timeout.Stop()
	for _, w := range wait {
		for {
			w.d.mu.Lock()
			done, acked := w.d.offAcks > w.acks || w.d.proc == nil, w.d.ackedLocked()
			w.d.mu.Unlock()
			if done {
				break
			}
			select {
			case <-acked:
			case <-timeout.C:
				return
			}
		}
	}
}

// ackedLocked returns the channel closed at the device's next "capture
// off" acknowledgement or the end of its process; d.mu is held.
func (d *Device) ackedLocked() <-chan struct{} {
	if d.acked == nil {
		d.acked = make(chan struct{})
	}
	return d.acked
}

// signalLocked wakes SetCapturing's waits; d.mu is held.
func (d *Device) signalLocked() {
	if d.acked != nil {
		close(d.acked)
		d.acked = nil
	}
}

// Heal lifts every device's link faults.
func (f *Fleet) Heal() {
	for _, d := range f.Devices() {
		d.proxy.Set(faultproxy.Faults{})
	}
}

// Totals are the fleet's counters summed over its devices.
type Totals struct {
	Devices, Online, Full int // running devices
	Stopped               int
	Queue, Blobs          int
	Captured              int // receipts in the ledger
	Refused, NoKey        uint64
	Failed                uint64
	Kills                 int
}

// Totals sums the devices' counters.
func (f *Fleet) Totals(ctx context.Context) Totals {
	t := Totals{Captured: f.ledger.Len()}
	for _, d := range f.Devices() {
		t.Kills += d.Kills()
		if !d.Running() {
			t.Stopped++
			continue
		}
		s := d.Stats(ctx)
		t.Devices++
		if s.Online {
			t.Online++
		}
		if s.Full {
			t.Full++
		}
		t.Queue += s.Queue
		t.Blobs += s.Blobs
		t.Refused += s.Refused
		t.NoKey += s.NoKey
		t.Failed += s.Failed
	}
	return t
}

// inprocDevice is a device running in this process.
type inprocDevice struct {
	run      *agentRun
	capturer *capturer
	counters *captureCounters
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

// procDevice is a device running as a child process.
type procDevice struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  chan struct{} // closed when the process has ended and its output is read
	mu    sync.Mutex
}

func (p *procDevice) command(c string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	io.WriteString(p.stdin, c+"\n") // a dead process cannot take it; it starts with the fleet's setting
}

// Running reports whether the device runs.
func (d *Device) Running() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.inproc != nil || d.proc != nil
}

// Start starts the device: its agent and its workload, in this process or
// as a child process.
func (d *Device) Start(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.inproc != nil || d.proc != nil {
		return nil
	}
	d.incarnation++
	f := d.f
	broker := "ssl://" + d.proxy.Addr()
	if d.Spec.Process {
		return d.startProcess(broker)
	}
	run, err := startAgent(agentParams{
		device: d.Spec.ID, dir: d.dir, broker: broker, budget: d.Spec.Budget,
		tuning: f.tuning, logger: f.opts.DeviceLogger, software: Software,
	})
	if err != nil {
		return err
	}
	seed := seedFor(f.opts.Seed, d.Spec.ID, d.incarnation)
	wctx, cancel := context.WithCancel(context.Background())
	ip := &inprocDevice{run: run, counters: &captureCounters{}, cancel: cancel}
	c := &capturer{
		gen:  newGenerator(d.Spec.Role, d.Spec.ID, d.Spec.District, seed, f.opts.BlobScale, nil),
		work: f.opts.workload(d.Spec.Role), clock: f.opts.Clock, scale: d.Spec.loadScale(f.opts.LoadScale), on: &f.capturing,
		rng: rand.New(rand.NewPCG(seed, 7)), ag: run.ag, device: d.Spec.ID,
		receipt:  f.addReceipt,
		counters: ip.counters, log: f.opts.DeviceLogger.With("device", d.Spec.ID),
	}
	ip.capturer = c
	ip.wg.Go(func() { c.run(wctx) })
	d.inproc = ip
	return nil
}

func (f *Fleet) addReceipt(e Entry) {
	if err := f.ledger.Add(e); err != nil {
		f.log.Error("cannot write the ledger", "err", err)
	}
}

// startProcess starts the device process; d.mu is held.
func (d *Device) startProcess(broker string) error {
	f := d.f
	spec := ChildSpec{
		Device: d.Spec.ID, Role: d.Spec.Role, District: d.Spec.District, Dir: d.dir, Broker: broker,
		Budget: d.Spec.Budget, Seed: f.opts.Seed, Incarnation: d.incarnation,
		Workload: f.opts.workload(d.Spec.Role), LoadScale: d.Spec.loadScale(f.opts.LoadScale), BlobScale: f.opts.BlobScale,
		Origin: f.opts.Clock.Origin, StartOfDay: f.opts.Clock.StartOfDay, Hour: f.opts.Clock.Hour,
		Capturing: f.capturing.Load(), Tuning: f.tuning, Software: Software,
	}
	b, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	cmd := f.opts.ChildCommand(string(b))
	logFile, err := os.OpenFile(filepath.Join(d.dir, "device.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("device %s: %w", d.Spec.ID, err)
	}
	cmd.Stderr = logFile
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		logFile.Close()
		return err
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		logFile.Close()
		return err
	}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("start device process %s: %w", d.Spec.ID, err)
	}
	p := &procDevice{cmd: cmd, stdin: stdin, done: make(chan struct{})}
	d.proc = p
	go func() {
		// Owned by the device: Stop and Kill wait for done.
		defer close(p.done)
		defer logFile.Close()
		d.readChild(stdout)
		err := cmd.Wait()
		d.mu.Lock()
		ended := d.proc == p // nobody stopped or killed it
		if ended {
			d.proc = nil
			d.last = DeviceStats{}
		}
		d.signalLocked() // the process ended: nothing to wait for
		d.mu.Unlock()
		if ended || err != nil && !isKilled(err) {
			f.log.Warn("device process ended on its own", "device", d.Spec.ID, "err", err)
		}
	}()
	return nil
}

func isKilled(err error) bool {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			return true
		}
	}
	return false
}

// readChild reads a device process's output until it ends.
func (d *Device) readChild(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		m, ok := parseChildLine(sc.Bytes())
		if !ok {
			continue // a line cut short by SIGKILL
		}
		switch {
		case m.Entry != nil:
			d.f.addReceipt(*m.Entry)
		case m.Stats != nil:
			d.mu.Lock()
			d.last = *m.Stats
			if m.Off {
				d.offAcks++
				d.signalLocked()
			}
			d.mu.Unlock()
		}
	}
}

// Stop stops the device gracefully: its workload, then its agent (which
// says goodbye to the broker); a device process gets SIGTERM and, after
// 30 s, SIGKILL.
func (d *Device) Stop() error {
	d.mu.Lock()
	ip, p := d.inproc, d.proc
	d.inproc, d.proc = nil, nil
	d.signalLocked()
	d.mu.Unlock()
	switch {
	case ip != nil:
		ip.cancel()
		ip.wg.Wait()
		return ip.run.stop()
	case p != nil:
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
			return fmt.Errorf("device process %s did not stop within 30s; killed", d.Spec.ID)
		}
	}
	return nil
}

// Kill ends a device process with SIGKILL, as a pulled plug does. It
// returns an error for an in-process device.
func (d *Device) Kill() error {
	d.mu.Lock()
	p := d.proc
	if !d.Spec.Process {
		d.mu.Unlock()
		return fmt.Errorf("device %s runs in-process and cannot be killed", d.Spec.ID)
	}
	d.proc = nil
	d.signalLocked()
	if p != nil {
		d.kills++
	}
	d.mu.Unlock()
	if p == nil {
		return nil
	}
	p.cmd.Process.Kill()
	<-p.done
	d.mu.Lock()
	d.last = DeviceStats{}
	d.mu.Unlock()
	return nil
}

// Stats returns the device's counters (zero while it is stopped).
func (d *Device) Stats(ctx context.Context) DeviceStats {
	d.mu.Lock()
	ip, last := d.inproc, d.last
	proc := d.proc != nil
	d.mu.Unlock()
	switch {
	case ip != nil:
		s := ip.run.stats(ctx)
		ip.counters.fill(&s)
		return s
	case proc:
		return last
	}
	return DeviceStats{}
}

// StoreState opens the device's store (the device must be stopped) and
// tells for each record id whether it is still queued, acknowledged, or
// unknown to the device.
func (d *Device) StoreState(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]DeviceState, error) {
	if d.Running() {
		return nil, fmt.Errorf("device %s is running; stop it before reading its store", d.Spec.ID)
	}
	st, err := store.Open(filepath.Join(d.dir, "agent.db"), store.Options{Budget: d.Spec.Budget, DiskReserve: 1 << 20,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, fmt.Errorf("device %s: %w", d.Spec.ID, err)
	}
	defer st.Close()
	out := make(map[uuid.UUID]DeviceState, len(ids))
	for _, id := range ids {
		e, err := st.Get(ctx, id)
		switch {
		case errors.Is(err, store.ErrNotFound):
			out[id] = DeviceUnknown
		case err != nil:
			return nil, fmt.Errorf("device %s: %w", d.Spec.ID, err)
		case e.State == store.Saved:
			out[id] = DeviceQueued
		default:
			out[id] = DeviceAcked
		}
	}
	return out, nil
}

// ServerRecords lists every record the server holds, through its API.
func ServerRecords(ctx context.Context, api *client.Client) ([]ServerRecord, error) {
	var out []ServerRecord
	// 500, not the API's maximum of 1000: the API asks its store for one
	// record more than the page to know whether a next page exists, and
	// the store caps at 1000, so a page of 1000 never says "next".
	q := client.RecordQuery{Limit: 500}
	for range 100_000 { // a bound: 100 million records
		page, err := api.Records(ctx, q)
		if err != nil {
			return nil, fmt.Errorf("list the server's records: %w", err)
		}
		for _, r := range page.Records {
			out = append(out, ServerRecord{Device: r.Device, ID: r.ID, Seq: r.Seq, Complete: r.Status != "incomplete"})
		}
		if page.Next == "" {
			return out, nil
		}
		q.After = page.Next
	}
	return nil, errors.New("list the server's records: too many pages")
}

// Reconcile compares the ledger with the server's records, the devices'
// stores and the deliveries (with delivery set). The fleet must be
// stopped (the stores are read) and the server running (it is asked).
func (f *Fleet) Reconcile(ctx context.Context, deliveries []Delivered, delivery bool) (Report, error) {
	entries := f.ledger.Entries()
	server, err := ServerRecords(ctx, f.srv.API())
	if err != nil {
		return Report{}, err
	}
	have := make(map[uuid.UUID]bool, len(server))
	for _, s := range server {
		have[s.ID] = true
	}
	// Ask the devices only about what the server does not have.
	ask := map[string][]uuid.UUID{}
	for _, e := range entries {
		if !have[e.Record] {
			ask[e.Device] = append(ask[e.Device], e.Record)
		}
	}
	states := map[uuid.UUID]DeviceState{}
	for dev, ids := range ask {
		d, ok := f.Device(dev)
		if !ok {
			continue
		}
		m, err := d.StoreState(ctx, ids)
		if err != nil {
			return Report{}, err
		}
		maps.Copy(states, m)
	}
	return Reconcile(Inputs{
		Ledger: entries, Server: server, Deliveries: deliveries, Delivery: delivery,
		Device: func(_ string, id uuid.UUID) DeviceState { return states[id] },
	}), nil
}

// WaitDrained waits until no device has records or blobs that the server
// has not acknowledged, or until timeout; it reports the totals it saw
// last. Devices that are stopped count as drained.
func (f *Fleet) WaitDrained(ctx context.Context, timeout time.Duration, progress func(Totals)) (Totals, error) {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var last time.Time
	for {
		t := f.Totals(ctx)
		if t.Queue == 0 && t.Blobs == 0 && t.Online == t.Devices {
			return t, nil
		}
		if progress != nil && time.Since(last) >= 2*time.Second {
			progress(t)
			last = time.Now()
		}
		if time.Now().After(deadline) {
			return t, fmt.Errorf("not drained after %v: %d records and %d blobs still on %d devices (%d of them online)",
				timeout, t.Queue, t.Blobs, t.Devices, t.Online)
		}
		select {
		case <-ctx.Done():
			return t, ctx.Err()
		case <-tick.C:
		}
	}
}
