// Package kiosk is the self-service terminal: the agent, the peripherals,
// the citizen's flow (kiosk/flow) and the back end of the staff's admin
// screen, wired into one Kiosk.
//
//	k, err := kiosk.New(cfg, agent, store, kiosk.Devices{...}, kiosk.Options{...})
//	go k.Run(ctx)                 // peripheral checks, heartbeat, sync status
//	for {
//		s := k.NextSession(ctx)  // a citizen's flow, or "out of service"
//		ui.Show(s)               // until s.Views() closes
//	}
//
// At start, and before every session, the kiosk checks its peripherals. If
// one the flow needs is missing or broken, NextSession returns a session
// that shows StepOutOfService with the reason instead of a flow, and ends
// once the peripheral works again. Every peripheral's state goes into the
// device's heartbeat. Sessions run one after another.
//
// The capture-quality packages (kiosk/photo, kiosk/finger,
// kiosk/signature) reach the flow through Options.Faces, Options.Fingers
// and Options.Signatures (adapters in quality.go); left nil, they are the
// packages at their default settings.
package kiosk

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/kogge-fleet/kogge/agent"
	"github.com/kogge-fleet/kogge/agent/store"
	agentsync "github.com/kogge-fleet/kogge/agent/sync"
	"github.com/kogge-fleet/kogge/drivers"
	"github.com/kogge-fleet/kogge/drivers/camera"
	"github.com/kogge-fleet/kogge/drivers/eid"
	"github.com/kogge-fleet/kogge/drivers/fingerprint"
	"github.com/kogge-fleet/kogge/drivers/payment"
	"github.com/kogge-fleet/kogge/drivers/printer"
	"github.com/kogge-fleet/kogge/kiosk/flow"
	"github.com/kogge-fleet/kogge/protocol"
)

// Devices are the terminal's peripherals.
type Devices struct {
	Camera  camera.Camera
	Scanner fingerprint.Scanner
	// EID is nil when the office works without eID (Config.Flow.EID off).
	EID eid.Kernel
	// Payment is nil when fees are paid at the counter.
	Payment payment.Terminal
	Printer printer.Printer
}

// Agent is what the kiosk needs of the device's agent (*agent.Agent).
type Agent interface {
	flow.Saver
	SetPeripheral(name, kind string, state protocol.PeripheralState, reason string)
	Sync() agentsync.Stats
	Watch() (<-chan agent.Status, func())
}

var _ Agent = (*agent.Agent)(nil)

// Store is what the kiosk needs of the agent's store (*store.Store): a
// place for the application numbers' sequence, and the queue's depth.
type Store interface {
	flow.KV
	Stats(ctx context.Context) (store.Stats, error)
}

var _ Store = (*store.Store)(nil)

// Config configures the terminal.
type Config struct {
	// Flow is the office's flow configuration.
	Flow flow.Config
	// NumberPrefix is the terminal's code in its application numbers
	// (2–8 capital letters and digits, unique in the city).
	NumberPrefix string
	// AdminPIN opens the staff's admin screen; empty keeps it shut.
	AdminPIN string
	// Version is the software version the admin screen shows.
	Version string
	// CheckInterval is how often the peripherals are checked (30 s).
	CheckInterval time.Duration
}

// Validate checks the configuration.
func (c Config) Validate() error {
	var errs []error
	if err := c.Flow.Validate(); err != nil {
		errs = append(errs, err)
	}
	if _, err := flow.FormatNumber(c.NumberPrefix, time.Now(), 1); err != nil {
		errs = append(errs, err)
	}
	if c.AdminPIN != "" && (len(c.AdminPIN) < 4 || len(c.AdminPIN) > 12) {
		errs = append(errs, errors.New("admin PIN: 4 to 12 characters, or empty to keep the admin screen shut"))
	}
	if c.CheckInterval < 0 {
		errs = append(errs, fmt.Errorf("check interval %v: must not be negative", c.CheckInterval))
	}
	return errors.Join(errs...)
}

// Options are the kiosk's optional parts.
type Options struct {
	// Faces, Fingers and Signatures are the capture-quality checks; nil
	// means kiosk/photo, kiosk/finger and kiosk/signature at their
	// defaults (see Faces and Signatures for configured ones).
	Faces      flow.Faces
	Fingers    flow.Fingers
	Signatures flow.Signatures
	// CheckCameraMode reports a camera mode too small for the photo; the
	// camera is then out of service with the reason. nil means kiosk/photo's
	// check at its defaults.
	CheckCameraMode func(width, height int) error
	// Reboot restarts the terminal for the admin screen; nil refuses.
	Reboot func(ctx context.Context) error
	// Clock runs the flow's timeouts (flow.SystemClock()).
	Clock flow.Clock
	// Logger receives the kiosk's log lines (slog.Default()).
	Logger *slog.Logger
}

// Kiosk is one terminal.
type Kiosk struct {
	cfg    Config
	ag     Agent
	st     Store
	dev    Devices
	opts   Options
	log    *slog.Logger
	flow   *flow.Flow
	admin  *admin
	cam    *guardedCamera
	checks []*peripheral

	nextMu  sync.Mutex // one NextSession at a time
	checkMu sync.Mutex // one check round at a time

	mu       sync.Mutex
	states   map[string]drivers.Status
	changed  chan struct{} // closed and replaced when a state changes
	current  *session      // the running flow session, nil when none
	lastSync time.Time
	wg       sync.WaitGroup
}

// New wires a kiosk.
func New(cfg Config, ag Agent, st Store, dev Devices, opts Options) (*Kiosk, error) {
	if cfg.CheckInterval == 0 {
		cfg.CheckInterval = 30 * time.Second
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("kiosk configuration: %w", err)
	}
	if ag == nil || st == nil {
		return nil, errors.New("kiosk: an agent and its store are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Clock == nil {
		opts.Clock = flow.SystemClock()
	}
	if err := defaultQuality(&opts); err != nil {
		return nil, fmt.Errorf("kiosk: capture-quality checks: %w", err)
	}
	numbers, err := flow.NewSequence(cfg.NumberPrefix, st, cfg.Flow.Location)
	if err != nil {
		return nil, err
	}
	k := &Kiosk{
		cfg: cfg, ag: ag, st: st, dev: dev, opts: opts, log: opts.Logger.With("component", "kiosk"),
		states: map[string]drivers.Status{}, changed: make(chan struct{}),
	}
	if dev.Camera == nil {
		return nil, errors.New("kiosk: no camera")
	}
	k.cam = newGuardedCamera(dev.Camera)
	k.flow, err = flow.New(cfg.Flow, flow.Deps{
		Camera: k.cam, Scanner: dev.Scanner, EID: dev.EID, Payment: dev.Payment, Printer: dev.Printer,
		Faces: opts.Faces, Fingers: opts.Fingers, Signatures: opts.Signatures,
		Saver: ag, Numbers: numbers, Clock: opts.Clock, Logger: opts.Logger.With("component", "flow"),
	})
	if err != nil {
		return nil, err
	}
	k.checks = k.peripherals()
	k.admin = &admin{k: k}
	return k, nil
}

// Admin returns the back end of the staff's admin screen.
func (k *Kiosk) Admin() flow.Admin { return k.admin }

// Run checks the peripherals now and then every CheckInterval, reports
// them in the heartbeat, ends an idle session when a peripheral it needs
// fails, and follows the sync for the admin screen, until ctx ends. It
// waits for the sessions' goroutines before it returns.
func (k *Kiosk) Run(ctx context.Context) error {
	defer k.wg.Wait()
	statuses, unwatch := k.ag.Watch()
	defer unwatch()
	k.check(ctx)
	t := time.NewTicker(k.cfg.CheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case s, ok := <-statuses:
			if ok && s.State >= agent.Stored && s.State != agent.Rejected {
				k.mu.Lock()
				k.lastSync = k.opts.Clock.Now()
				k.mu.Unlock()
			}
			if !ok {
				statuses = nil
			}
		case <-t.C:
			k.check(ctx)
		}
	}
}

// NextSession returns the next citizen's session once the previous one has
// ended: a flow at its welcome screen, or, when a peripheral the flow
// needs does not work or the terminal cannot start a session, a session
// that shows StepOutOfService with the reason and ends when that is
// resolved. It never returns nil; after ctx ends it returns a session that
// has ended.
func (k *Kiosk) NextSession(ctx context.Context) flow.Session {
	k.nextMu.Lock()
	defer k.nextMu.Unlock()
	k.mu.Lock()
	prev := k.current
	k.mu.Unlock()
	if prev != nil {
		select {
		case <-prev.done:
		case <-ctx.Done():
			return ended()
		}
	}
	if ctx.Err() != nil {
		return ended()
	}
	k.check(ctx)
	if name, st, bad := k.unavailable(); bad {
		k.log.Warn("out of service", "peripheral", name, "state", st.State.String(), "reason", st.Reason)
		return k.outOfService(ctx)
	}
	run, err := k.flow.Begin(ctx, flow.SessionOptions{})
	if err != nil {
		k.log.Error("cannot start a session", "err", err)
		return k.broken(ctx, err)
	}
	s := newSession(run)
	k.mu.Lock()
	k.current = s
	k.mu.Unlock()
	k.wg.Go(s.forward)
	return s
}

// unavailable names the first required peripheral that does not work.
func (k *Kiosk) unavailable() (string, drivers.Status, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, p := range k.checks {
		if st, ok := k.states[p.name]; p.required && ok && !usable(st) {
			return p.name, st, true
		}
	}
	return "", drivers.Status{}, false
}

// usable: working, or working with a warning (paper low).
func usable(st drivers.Status) bool {
	return st.State == drivers.StateOK || st.State == drivers.StateDegraded
}

// Peripherals returns the peripherals' states as last checked.
func (k *Kiosk) Peripherals() []flow.Peripheral {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make([]flow.Peripheral, 0, len(k.checks))
	for _, p := range k.checks {
		st, ok := k.states[p.name]
		if !ok {
			st = drivers.Status{State: drivers.StateMissing, Reason: "not checked yet"}
		}
		out = append(out, flow.Peripheral{Name: p.name, State: st.State.String(), Reason: st.Reason})
	}
	return out
}

// Check checks the peripherals now (as Run does every CheckInterval) and
// returns their states.
func (k *Kiosk) Check(ctx context.Context) []flow.Peripheral {
	k.check(ctx)
	return k.Peripherals()
}

// check runs one round of checks. Peripherals that failed, and all of
// them while no session runs, are probed actively (the camera started and
// stopped, the printer asked for its state); during a session only what
// cannot disturb it is asked. A session still at its welcome screen is
// ended when a peripheral it needs fails.
func (k *Kiosk) check(ctx context.Context) {
	k.checkMu.Lock()
	defer k.checkMu.Unlock()
	k.mu.Lock()
	cur := k.current
	k.mu.Unlock()
	idle := cur == nil || cur.ended()
	welcome := !idle && cur.step() == flow.StepWelcome
	changed := false
	for _, p := range k.checks {
		k.mu.Lock()
		old, seen := k.states[p.name]
		k.mu.Unlock()
		var st drivers.Status
		switch {
		case idle || (welcome && p.safeAtWelcome):
			st = p.probe(ctx)
		case seen && !usable(old) && p.safeAtWelcome:
			st = p.probe(ctx)
		default:
			st = p.status()
		}
		if ctx.Err() != nil {
			return
		}
		if !seen || st != old {
			changed = true
			k.log.Info("peripheral", "name", p.name, "state", st.State.String(), "reason", st.Reason)
		}
		k.mu.Lock()
		k.states[p.name] = st
		k.mu.Unlock()
		k.ag.SetPeripheral(p.name, p.kind, protocol.PeripheralState(st.State), st.Reason)
	}
	if changed {
		k.mu.Lock()
		close(k.changed)
		k.changed = make(chan struct{})
		k.mu.Unlock()
	}
	if welcome && cur.step() == flow.StepWelcome { // still untouched
		if name, st, bad := k.unavailable(); bad {
			k.log.Warn("ending the idle session: a peripheral failed", "peripheral", name, "reason", st.Reason)
			cur.run.Stop()
		}
	}
}

// admin is the back end of the admin screen.
type admin struct{ k *Kiosk }

var _ flow.Admin = (*admin)(nil)

// CheckPIN implements flow.Admin.
func (a *admin) CheckPIN(pin string) bool {
	want := a.k.cfg.AdminPIN
	return want != "" && subtle.ConstantTimeCompare([]byte(pin), []byte(want)) == 1
}

// Status implements flow.Admin.
func (a *admin) Status() flow.AdminStatus {
	k := a.k
	s := k.ag.Sync()
	st := flow.AdminStatus{Peripherals: k.Peripherals(), Connected: s.Online && s.Synced, Version: k.cfg.Version}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if stats, err := k.st.Stats(ctx); err == nil {
		st.Pending = stats.QueueDepth
	}
	k.mu.Lock()
	st.LastSync = k.lastSync
	k.mu.Unlock()
	return st
}

// Reboot implements flow.Admin.
func (a *admin) Reboot() error {
	if a.k.opts.Reboot == nil {
		return errors.New("reboot: this terminal cannot restart itself; switch it off and on")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a.k.log.Warn("reboot asked for on the admin screen")
	return a.k.opts.Reboot(ctx)
}
