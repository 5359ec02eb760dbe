package fleet

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kogge-fleet/kogge/agent"
	"github.com/kogge-fleet/kogge/agent/enroll"
	agentmqtt "github.com/kogge-fleet/kogge/agent/mqtt"
	"github.com/kogge-fleet/kogge/agent/store"
	"github.com/kogge-fleet/kogge/agent/update"
	"github.com/kogge-fleet/kogge/protocol/artifact"
)

// Software updates in the simulator: devices that install versions.
//
// An UpdateFleet runs devices whose agents carry an updater (agent/update)
// with the real A/B slots, downloads, health checks and reports. What a
// simulated version does is written in its binary (SimBinary): whether its
// self-test passes and whether it crashes. A "restart" stops the device's
// agent and starts it again through update.Boot with the version of the
// active slot, as a real device's service manager would after the
// updater's re-exec; a crash stops it without warning, and the next start
// counts towards the crash-loop limit.

// Behaviour is what a simulated version does.
type Behaviour struct {
	// FailSelfTest makes the version's self-test fail: it never passes
	// its health check.
	FailSelfTest bool
	// Crash makes the version die shortly after every start, before its
	// health check can pass.
	Crash bool
}

// SimBinary is the "binary" of a simulated version: a text header with the
// version and its behaviour, padded to size bytes (at least the header).
func SimBinary(version string, b Behaviour, size int) []byte {
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "kogge-sim-app\nversion=%s\nselftest=%s\ncrash=%v\n", version,
		map[bool]string{false: "pass", true: "fail"}[b.FailSelfTest], b.Crash)
	for i := 0; buf.Len() < size; i++ {
		buf.WriteByte(byte('a' + i%26))
	}
	return buf.Bytes()
}

// behaviourOf reads the behaviour of the binary in a slot; a slot without
// one (the factory version) behaves well.
func behaviourOf(slot update.Slot) Behaviour {
	f, err := os.Open(slot.Binary)
	if err != nil {
		return Behaviour{}
	}
	defer f.Close()
	var b Behaviour
	sc := bufio.NewScanner(f)
	for n := 0; n < 4 && sc.Scan(); n++ {
		switch sc.Text() {
		case "selftest=fail":
			b.FailSelfTest = true
		case "crash=true":
			b.Crash = true
		}
	}
	return b
}

// SignSimBinary makes the signed manifest of a simulated binary for the
// app on this machine's platform.
func SignSimBinary(key ed25519.PrivateKey, version, app string, binary []byte) ([]byte, error) {
	m, err := artifact.Describe(artifact.Manifest{Name: "kogge-sim-" + app, Version: version, Apps: []string{app},
		Platform: runtime.GOOS + "/" + runtime.GOARCH, Created: time.Now().UTC(), Notes: "kogge-sim"}, bytes.NewReader(binary))
	if err != nil {
		return nil, err
	}
	return artifact.Sign(m, key)
}

// UpdateOptions configure an UpdateFleet.
type UpdateOptions struct {
	// Keys are the signing keys the devices trust. Required.
	Keys artifact.Keyring
	// Factory is the version the devices start with; default 1.0.0.
	Factory string
	// App is the devices' app; default kiosk.
	App string
	// HealthWindow is the time a new version has to pass its health
	// check; default 5 s.
	HealthWindow time.Duration
	// MaxBoots is the crash-loop limit; default 3.
	MaxBoots int
	// RateLimit bounds each device's download in bytes a second; 0 none.
	RateLimit int64
	// CrashAfter is how long a crashing version runs; default 300 ms.
	CrashAfter time.Duration
	// UpdateServer returns the HTTPS address a device fetches updates
	// from; nil or "" means the server's enrollment address (a test puts
	// a proxy in between).
	UpdateServer func(device string) string
	// EnrollConcurrency bounds the enrollments in flight; default 8.
	EnrollConcurrency int
	// Heartbeat is the devices' heartbeat interval, set in their group's
	// twin; default 5 s, so that idle devices stay within the server's
	// presence deadline (twice the simulator's 10 s keepalive).
	Heartbeat time.Duration
	// Logger receives the fleet's log lines, DeviceLogger the agents';
	// default none.
	Logger, DeviceLogger *slog.Logger
}

func (o *UpdateOptions) defaults(srv *Server) {
	if o.Factory == "" {
		o.Factory = "1.0.0"
	}
	if o.App == "" {
		o.App = "kiosk"
	}
	if o.HealthWindow == 0 {
		o.HealthWindow = 5 * time.Second
	}
	if o.MaxBoots == 0 {
		o.MaxBoots = 3
	}
	if o.CrashAfter == 0 {
		o.CrashAfter = 300 * time.Millisecond
	}
	if o.EnrollConcurrency == 0 {
		o.EnrollConcurrency = 8
	}
	if o.Heartbeat == 0 {
		o.Heartbeat = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.DeviceLogger == nil {
		o.DeviceLogger = slog.New(slog.DiscardHandler)
	}
}

// UpdateFleet is a set of devices that take software updates.
type UpdateFleet struct {
	srv    *Server
	dir    string
	opts   UpdateOptions
	tuning AgentTuning
	log    *slog.Logger

	mu      sync.Mutex
	devices map[string]*UpdateDevice
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// NewUpdateFleet returns a fleet whose devices keep their data under dir
// and enroll at srv. Call Enroll, then Start.
func NewUpdateFleet(srv *Server, dir string, opts UpdateOptions) (*UpdateFleet, error) {
	if srv == nil || dir == "" || len(opts.Keys) == 0 {
		return nil, errors.New("update fleet: a server, a directory and trusted keys are required")
	}
	opts.defaults(srv)
	keepalive := srv.Config().Broker.Keepalive
	return &UpdateFleet{srv: srv, dir: dir, opts: opts, log: opts.Logger, devices: map[string]*UpdateDevice{},
		tuning: AgentTuning{Keepalive: keepalive, MinBackoff: 200 * time.Millisecond, MaxBackoff: 3 * time.Second,
			AckTimeout: 3 * time.Second, SyncBackoff: 15 * time.Second, HelloTimeout: 3 * time.Second}}, nil
}

// UpdateDevice is one device of an UpdateFleet.
type UpdateDevice struct {
	ID  string
	dir string
	f   *UpdateFleet

	restart chan struct{}

	mu       sync.Mutex
	version  string // the version it runs now ("" while stopped)
	online   func() bool
	starts   int
	crashes  int
	versions []string // every version it started, in order
}

// Enroll creates group with the heartbeat in its twin and enrolls the
// devices into it through the real enrollment endpoint (each with its own
// key and certificate).
func (f *UpdateFleet) Enroll(ctx context.Context, group string, ids []string) error {
	api := f.srv.API()
	if _, err := api.CreateGroup(ctx, group, "Bezirk "+group+" (kogge-sim)"); err != nil && !isConflict(err) {
		return fmt.Errorf("create group %s: %w", group, err)
	}
	if _, err := api.SetGroupTwin(ctx, group, map[string]any{"heartbeat_s": f.opts.Heartbeat.Seconds()}); err != nil {
		return fmt.Errorf("set the heartbeat in the twin of group %s: %w", group, err)
	}
	sem := make(chan struct{}, f.opts.EnrollConcurrency)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, id := range ids {
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-sem }()
			dir := filepath.Join(f.dir, id)
			err := os.MkdirAll(dir, 0o700)
			if err == nil {
				if _, lerr := enroll.Load(filepath.Join(dir, "identity")); lerr != nil {
					_, err = EnrollDevice(ctx, api, f.srv.EnrollURL(), filepath.Join(dir, "identity"), id, group,
						enroll.Inventory{Model: "Kogge Kiosk K1 (simulated)", Serial: "SIM-" + id, Software: f.opts.Factory})
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			f.mu.Lock()
			f.devices[id] = &UpdateDevice{ID: id, dir: dir, f: f, restart: make(chan struct{}, 1)}
			f.mu.Unlock()
		})
	}
	wg.Wait()
	return errors.Join(append(errs, ctx.Err())...)
}

// Devices returns the devices, by id.
func (f *UpdateFleet) Devices() []*UpdateDevice {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.SortedFunc(maps.Values(f.devices), func(a, b *UpdateDevice) int { return strings.Compare(a.ID, b.ID) })
}

// Device returns the device with id.
func (f *UpdateFleet) Device(id string) *UpdateDevice {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.devices[id]
}

// Start runs every device until Stop.
func (f *UpdateFleet) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	f.mu.Lock()
	f.cancel = cancel
	f.mu.Unlock()
	for _, d := range f.Devices() {
		f.wg.Go(func() { d.run(ctx) })
	}
}

// Stop stops every device (their agents say goodbye) and waits for them.
func (f *UpdateFleet) Stop() {
	f.mu.Lock()
	cancel := f.cancel
	f.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	f.wg.Wait()
}

// Versions counts the devices per running version; "" counts the devices
// between two starts.
func (f *UpdateFleet) Versions() map[string]int {
	out := map[string]int{}
	for _, d := range f.Devices() {
		out[d.Version()]++
	}
	return out
}

// Online counts the devices whose agent has a synced session.
func (f *UpdateFleet) Online() int {
	n := 0
	for _, d := range f.Devices() {
		if d.Online() {
			n++
		}
	}
	return n
}

// Version is the version the device runs now, "" between two starts.
func (d *UpdateDevice) Version() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.version
}

// Online reports whether the device's agent has a synced session.
func (d *UpdateDevice) Online() bool {
	d.mu.Lock()
	online := d.online
	d.mu.Unlock()
	return online != nil && online()
}

// Starts returns how often the device started, and how often a version
// crashed.
func (d *UpdateDevice) Starts() (starts, crashes int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.starts, d.crashes
}

// History is every version the device started, in order.
func (d *UpdateDevice) History() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.versions)
}

// run starts the device again and again until ctx ends: boot, run the
// agent of the active slot until it asks for a restart or crashes.
func (d *UpdateDevice) run(ctx context.Context) {
	log := d.f.log.With("device", d.ID)
	for ctx.Err() == nil {
		if err := d.once(ctx); err != nil && ctx.Err() == nil {
			log.Error("device start failed; trying again", "err", err)
			if !sleep(ctx, time.Second) {
				return
			}
		}
	}
}

// once is one start of the device.
func (d *UpdateDevice) once(ctx context.Context) error {
	f := d.f
	udir := filepath.Join(d.dir, "update")
	slot, err := update.Boot(udir, f.opts.Factory, update.BootOptions{MaxBoots: f.opts.MaxBoots})
	if err != nil {
		return err
	}
	b := behaviourOf(slot)
	id, err := enroll.Load(filepath.Join(d.dir, "identity"))
	if err != nil {
		return err
	}
	logger := f.opts.DeviceLogger.With("device", d.ID, "version", slot.Version)
	st, err := store.Open(filepath.Join(d.dir, "agent.db"), store.Options{DiskReserve: 1 << 20, Logger: logger})
	if err != nil {
		return err
	}
	defer st.Close()
	tr, err := agentmqtt.New(agentmqtt.Config{Broker: "ssl://" + f.srv.BrokerAddr(), Device: id.DeviceID, TLS: id.TLSConfig(),
		Software: slot.Version}, f.tuning.transport(logger))
	if err != nil {
		return err
	}
	selfTest := func(context.Context) error { return nil }
	if b.FailSelfTest || b.Crash {
		selfTest = func(context.Context) error { return errors.New("capture pipeline: camera gives no frames") }
	}
	select {
	case <-d.restart: // a restart asked for by the previous start
	default:
	}
	server := f.srv.EnrollURL()
	if f.opts.UpdateServer != nil {
		if s := f.opts.UpdateServer(d.ID); s != "" {
			server = s
		}
	}
	u, err := update.New(udir, update.Options{
		Server: server, TLS: id.TLSConfig(), Keys: f.opts.Keys, App: f.opts.App,
		Restarter: update.RestartFunc(func(context.Context, update.Slot) error {
			select {
			case d.restart <- struct{}{}:
			default:
			}
			return nil
		}),
		SelfTest: selfTest, HealthWindow: f.opts.HealthWindow, HealthPoll: 100 * time.Millisecond,
		RestartDelay: 100 * time.Millisecond, RateLimit: f.opts.RateLimit, DiskReserve: 1 << 20,
		RetryBase: 200 * time.Millisecond, RetryMax: 2 * time.Second, Logger: logger.With("component", "update"),
	})
	if err != nil {
		return err
	}
	ag, err := agent.New(agent.Config{Device: id.DeviceID, Software: slot.Version}, st, tr,
		agent.Options{Logger: logger, Sync: f.tuning.sync(), Updater: u})
	if err != nil {
		return err
	}
	actx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- ag.Run(actx) }()
	d.mu.Lock()
	d.version, d.starts = slot.Version, d.starts+1
	d.versions = append(d.versions, slot.Version)
	d.online = func() bool { s := ag.Sync(); return s.Online && s.Synced }
	d.mu.Unlock()

	var crash <-chan time.Time
	if b.Crash {
		t := time.NewTimer(f.opts.CrashAfter)
		defer t.Stop()
		crash = t.C
	}
	select {
	case <-ctx.Done():
	case <-d.restart:
	case <-crash:
		d.mu.Lock()
		d.crashes++
		d.mu.Unlock()
	case err := <-done:
		done <- err
	}
	cancel()
	err = <-done
	d.mu.Lock()
	d.version, d.online = "", nil
	d.mu.Unlock()
	return err
}
