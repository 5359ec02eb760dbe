// Package agent is the edge runtime the kiosk and the handhelds embed: it
// wires the durable outbox (agent/store), the sync engine (agent/sync) over
// a transport (agent/mqtt), the twin, the commands and the heartbeat into one
// Agent with a small API:
//
//	a, err := agent.New(cfg, st, tr, agent.Options{...})
//	go a.Run(ctx)
//	receipt, err := a.Capture(ctx, agent.Capture{...}) // sealed, then durable when it returns
//	status, err := a.Status(ctx, receipt.ID)           // saved → sent → stored → delivered → accepted
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	gosync "sync"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/agent/command"
	"github.com/kogge-fleet/kogge/agent/health"
	"github.com/kogge-fleet/kogge/agent/logring"
	"github.com/kogge-fleet/kogge/agent/store"
	"github.com/kogge-fleet/kogge/agent/sync"
	"github.com/kogge-fleet/kogge/agent/twin"
	"github.com/kogge-fleet/kogge/agent/update"
	"github.com/kogge-fleet/kogge/protocol"
	"github.com/kogge-fleet/kogge/protocol/seal"
)

// Config identifies the device.
type Config struct {
	// Device is the device id (the MQTT client id, the name in the topics).
	Device string
	// Software is the app's version, for heartbeats and presence.
	Software string
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if err := protocol.ValidateDeviceID(c.Device); err != nil {
		return fmt.Errorf("agent config: %w", err)
	}
	if c.Software == "" {
		return errors.New("agent config: the software version is not set")
	}
	return nil
}

// Transport is a sync.Transport with a lifecycle; agent/mqtt provides it.
type Transport interface {
	sync.Transport
	Run(ctx context.Context) error
}

// Options are the agent's optional settings. The zero value works.
type Options struct {
	// Logger receives the agent's log lines (slog.Default()). The agent
	// adds a ring of recent lines for collect-logs and filters by LogLevel.
	Logger *slog.Logger
	// LogLevel is the level the twin and set-log-level change (info).
	LogLevel *slog.LevelVar
	// LogLines is how many recent log lines collect-logs can return (2000).
	LogLines int
	// Sync tunes the sync engine (window, chunk size, timeouts); its
	// Logger, OnMessage and OnEvent are set by the agent.
	Sync sync.Options
	// CheckConfig validates the app's part of the twin configuration.
	CheckConfig func(values map[string]any) error
	// ApplyConfig applies a twin configuration in the app.
	ApplyConfig func(twin.Config) error
	// Battery returns the battery charge in percent, or -1; nil means none.
	Battery func() int
	// Reboot restarts the device for the reboot command; nil refuses it.
	Reboot func(ctx context.Context) error
	// WipeToken is the confirmation the wipe-unsent command needs; empty
	// refuses remote wipes.
	WipeToken string
	// CommandTimeout bounds one command (30 s).
	CommandTimeout time.Duration
	// Offices are office keys the device is provisioned with; the twin's
	// offices key overrides them office by office.
	Offices map[string]seal.Recipient
	// Updater installs software updates (agent/update); nil means the
	// device takes none. Its version must be Config.Software.
	Updater *update.Updater
}

// Agent runs a device's sync, twin, commands and heartbeat.
type Agent struct {
	cfg     Config
	offices map[string]seal.Recipient
	st      *store.Store
	tr      Transport
	log     *slog.Logger
	level   *slog.LevelVar
	ring    *logring.Ring
	engine  *sync.Engine
	twin    *twin.Twin
	cmds    *command.Runner
	health  *health.Reporter
	updater *update.Updater

	statusQ chan *protocol.RecordStatus
	events  chan Status
	entries <-chan store.Entry // the store's state changes, from New on
	unwatch func()

	mu       gosync.Mutex
	sent     map[uuid.UUID]bool
	watchers map[chan Status]struct{}
}

// New wires an agent for the device over st and tr. Run starts it.
func New(cfg Config, st *store.Store, tr Transport, opts Options) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if st == nil || tr == nil {
		return nil, errors.New("agent: a store and a transport are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.LogLevel == nil {
		opts.LogLevel = new(slog.LevelVar)
	}
	if opts.LogLines == 0 {
		opts.LogLines = 2000
	}
	for office, r := range opts.Offices {
		if err := r.Validate(); err != nil || r.Office != office {
			return nil, fmt.Errorf("agent: provisioned key for office %q: %v", office, err)
		}
	}
	a := &Agent{
		offices:  opts.Offices,
		cfg:      cfg,
		st:       st,
		tr:       tr,
		level:    opts.LogLevel,
		ring:     logring.New(opts.LogLines, slog.LevelDebug),
		statusQ:  make(chan *protocol.RecordStatus, 256),
		events:   make(chan Status, 1024),
		sent:     map[uuid.UUID]bool{},
		watchers: map[chan Status]struct{}{},
	}
	// Subscribe now, so that Watch sees captures made before Run starts.
	a.entries, a.unwatch = st.Watch()
	a.log = slog.New(leveled{slog.NewMultiHandler(opts.Logger.Handler(), a.ring.Handler()), opts.LogLevel}).
		With("device", cfg.Device)

	so := opts.Sync
	so.Logger = a.log.With("component", "sync")
	so.OnMessage = a.onMessage
	so.OnEvent = a.onEvent
	var err error
	if a.engine, err = sync.New(cfg.Device, st, tr, so); err != nil {
		return nil, err
	}
	if a.health, err = health.New(st, a.engine, a.engine, cfg.Software, health.Options{
		Battery: opts.Battery, Logger: a.log.With("component", "health"),
	}); err != nil {
		return nil, err
	}
	if a.twin, err = twin.New(st, a.engine, twin.Options{
		Check:    opts.CheckConfig,
		Apply:    a.applyConfig(opts.ApplyConfig),
		LogLevel: opts.LogLevel,
		Logger:   a.log.With("component", "twin"),
	}); err != nil {
		return nil, err
	}
	if a.cmds, err = command.New(cfg.Device, st, a.engine, command.Options{
		Timeout:        opts.CommandTimeout,
		ResultsWaiting: a.engine.Poke,
		Logger:         a.log.With("component", "commands"),
	}); err != nil {
		return nil, err
	}
	err = a.cmds.RegisterBuiltins(command.Builtins{
		SyncNow:  a.engine.SyncNow,
		Logs:     a.ring.Tail,
		LogLevel: opts.LogLevel,
		WipeUnsent: func(ctx context.Context) (int, error) {
			n, err := st.WipeUnsent(ctx)
			a.engine.Resync()
			return n, err
		},
		WipeToken: opts.WipeToken,
		Reboot:    opts.Reboot,
	})
	if err != nil {
		return nil, err
	}
	if err := a.bindUpdater(opts.Updater); err != nil {
		return nil, err
	}
	return a, nil
}

// bindUpdater gives the updater its commands and what its health check
// looks at: the synced session, the heartbeats, the unsent captures.
func (a *Agent) bindUpdater(u *update.Updater) error {
	if u == nil {
		return nil
	}
	if v := u.Version(); v != a.cfg.Software {
		return fmt.Errorf("agent: the updater's slot runs %s, the agent is configured as %s", v, a.cfg.Software)
	}
	a.updater = u
	return u.Bind(update.Host{
		Register: a.cmds.Register,
		Connected: func() bool {
			s := a.engine.Stats()
			return s.Online && s.Synced
		},
		Heartbeats: a.health.Sent,
		Unsent: func(ctx context.Context) (int, error) {
			st, err := a.st.Stats(ctx)
			return st.QueueDepth, err
		},
	})
}

// applyConfig applies the built-in part of a twin configuration that the
// agent owns (the heartbeat), then the app's.
func (a *Agent) applyConfig(app func(twin.Config) error) func(twin.Config) error {
	return func(c twin.Config) error {
		if app != nil {
			if err := app(c); err != nil {
				return err
			}
		}
		a.health.SetInterval(c.Heartbeat)
		return nil
	}
}

// Logger returns the agent's logger: lines go to the app's handler and to
// the ring that collect-logs reads, filtered by the configured level.
func (a *Agent) Logger() *slog.Logger { return a.log }

// Register adds a command the server can send; call it before Run.
func (a *Agent) Register(name string, h command.Handler) error { return a.cmds.Register(name, h) }

// SetPeripheral reports a peripheral's state in the heartbeat; a change
// sends one at once.
func (a *Agent) SetPeripheral(name, kind string, state protocol.PeripheralState, reason string) {
	a.health.SetPeripheral(name, kind, state, reason)
}

// Sync returns the sync engine's counters.
func (a *Agent) Sync() sync.Stats { return a.engine.Stats() }

// Config returns the applied twin configuration.
func (a *Agent) Config() twin.Config { return a.twin.Current() }

// Run runs the agent until ctx ends, then stops everything and returns. It
// returns an error if a part fails for good.
func (a *Agent) Run(ctx context.Context) error {
	if err := a.twin.Load(ctx); err != nil {
		a.log.Error("cannot apply the stored configuration; running with the defaults", "err", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    gosync.WaitGroup
		errMu gosync.Mutex
		first error
	)
	run := func(name string, f func(context.Context) error) {
		wg.Go(func() {
			if err := f(ctx); err != nil {
				errMu.Lock()
				if first == nil {
					first = fmt.Errorf("agent %s: %w", name, err)
				}
				errMu.Unlock()
				cancel()
			}
		})
	}
	run("transport", a.tr.Run)
	run("sync", a.engine.Run)
	run("twin", a.twin.Run)
	run("commands", a.cmds.Run)
	run("health", a.health.Run)
	run("status", a.runStatus)
	run("watch", a.runWatch)
	if a.updater != nil {
		run("update", a.updater.Run)
	}
	wg.Wait()
	return first
}

// onMessage receives the engine's downlink messages for the other parts. It
// runs on the engine's goroutine and must not block.
func (a *Agent) onMessage(env *protocol.Envelope) {
	switch m := env.Body.(type) {
	case *protocol.TwinDesired:
		a.twin.Offer(m)
	case *protocol.Command:
		a.cmds.Offer(env)
	case *protocol.RecordStatus:
		select {
		case a.statusQ <- m:
		default:
			a.log.Warn("too many status updates waiting; dropped one", "items", len(m.Items))
		}
	}
}

// onEvent receives the engine's events. It runs on the engine's goroutine
// and must not block.
func (a *Agent) onEvent(ev sync.Event) {
	switch ev.Kind {
	case sync.EventSynced:
		a.twin.Reconnected()
		a.health.Beat()
	case sync.EventSent:
		a.mu.Lock()
		a.sent[ev.Record] = true
		a.mu.Unlock()
		select {
		case a.events <- Status{ID: ev.Record, Seq: ev.Seq, State: Sent, At: time.Now()}:
		default:
		}
	case sync.EventStored, sync.EventRejected:
		a.mu.Lock()
		delete(a.sent, ev.Record)
		a.mu.Unlock()
		a.health.Poke()
	case sync.EventBlobComplete:
		a.health.Poke()
	}
}

// runStatus applies the server's RecordStatus updates to the store.
func (a *Agent) runStatus(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case m := <-a.statusQ:
			for _, it := range m.Items {
				st, ok := store.StateOf(it.State)
				if !ok {
					continue
				}
				sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				err := a.st.SetState(sctx, it.Record, st, it.Reference, it.Note)
				cancel()
				switch {
				case errors.Is(err, store.ErrNotFound):
					a.log.Debug("status for a record the device does not know", "record", it.Record, "state", it.State)
				case err != nil:
					a.log.Warn("cannot record a status update", "record", it.Record, "state", it.State, "err", err)
				}
			}
		}
	}
}
