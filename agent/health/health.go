// Package health sends the device's heartbeat: every interval (from the
// twin, 30 s by default) and at once when something an admin cares about
// changes (the store fills up or has room again, a peripheral changes its
// state, a new session starts).
package health

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	gosync "sync"
	"time"

	"github.com/kogge-fleet/kogge/agent/store"
	"github.com/kogge-fleet/kogge/agent/sync"
	"github.com/kogge-fleet/kogge/protocol"
)

// StoreStats gives the outbox's queue and space.
type StoreStats interface {
	Stats(ctx context.Context) (store.Stats, error)
}

// SyncStats gives the sync engine's counters.
type SyncStats interface {
	Stats() sync.Stats
}

// Sender publishes a message to the server.
type Sender interface {
	Send(ctx context.Context, msg protocol.Message) error
}

// Options tune the reporter.
type Options struct {
	// Interval between heartbeats (30 s); the twin changes it with
	// SetInterval.
	Interval time.Duration
	// Battery returns the charge in percent; nil or -1 means no battery.
	Battery func() int
	// CheckEvery bounds how often Poke looks at the store (1 s).
	CheckEvery time.Duration
	// OpTimeout bounds store calls and sends (10 s).
	OpTimeout time.Duration
	// Logger receives the reporter's log lines (slog.Default()).
	Logger *slog.Logger
	// Now is the clock (time.Now).
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.Interval == 0 {
		o.Interval = 30 * time.Second
	}
	if o.CheckEvery == 0 {
		o.CheckEvery = time.Second
	}
	if o.OpTimeout == 0 {
		o.OpTimeout = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Validate checks the options after defaults are filled in.
func (o Options) Validate() error {
	if o.Interval <= 0 || o.CheckEvery <= 0 || o.OpTimeout <= 0 {
		return fmt.Errorf("interval %v, check every %v and op timeout %v: must be positive", o.Interval, o.CheckEvery, o.OpTimeout)
	}
	return nil
}

// Reporter builds and sends heartbeats.
type Reporter struct {
	st       StoreStats
	sync     SyncStats
	send     Sender
	software string
	opts     Options
	log      *slog.Logger

	beat     chan struct{} // send one now
	poke     chan struct{} // look whether Full flipped
	interval chan time.Duration

	mu          gosync.Mutex
	peripherals map[string]protocol.Peripheral
	sentFull    bool
	sent        uint64
}

// New returns a reporter for a device running software.
func New(st StoreStats, ss SyncStats, send Sender, software string, opts Options) (*Reporter, error) {
	opts = opts.withDefaults()
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("health options: %w", err)
	}
	if software == "" {
		return nil, fmt.Errorf("health: the software version is not set")
	}
	return &Reporter{
		st: st, sync: ss, send: send, software: software, opts: opts, log: opts.Logger,
		beat:        make(chan struct{}, 1),
		poke:        make(chan struct{}, 1),
		interval:    make(chan time.Duration, 1),
		peripherals: map[string]protocol.Peripheral{},
	}, nil
}

// SetInterval changes the heartbeat interval.
func (r *Reporter) SetInterval(d time.Duration) {
	if d <= 0 {
		return
	}
	for {
		select {
		case r.interval <- d:
			return
		default:
		}
		select {
		case <-r.interval:
		default:
		}
	}
}

// SetPeripheral records a peripheral's state; a change sends a heartbeat.
func (r *Reporter) SetPeripheral(name, kind string, state protocol.PeripheralState, reason string) {
	p := protocol.Peripheral{Name: name, Kind: kind, State: state, Reason: reason}
	r.mu.Lock()
	old, ok := r.peripherals[name]
	r.peripherals[name] = p
	r.mu.Unlock()
	if !ok || old != p {
		r.Beat()
	}
}

// Beat sends a heartbeat soon.
func (r *Reporter) Beat() { signal(r.beat) }

// Poke makes the reporter look whether the store's Full state flipped, and
// send a heartbeat if it did. Cheap to call often.
func (r *Reporter) Poke() { signal(r.poke) }

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Sent returns how many heartbeats went out.
func (r *Reporter) Sent() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sent
}

// Heartbeat returns the device's health now.
func (r *Reporter) Heartbeat(ctx context.Context) (*protocol.Heartbeat, error) {
	ctx, cancel := context.WithTimeout(ctx, r.opts.OpTimeout)
	defer cancel()
	st, err := r.st.Stats(ctx)
	if err != nil {
		return nil, fmt.Errorf("heartbeat: %w", err)
	}
	ss := r.sync.Stats()
	now := r.opts.Now()
	hb := &protocol.Heartbeat{
		QueueDepth:  uint32(min(max(st.QueueDepth, 0), 1<<32-1)),
		DiskFree:    uint64(max(st.DiskFree, 0)),
		BudgetUsed:  uint64(max(st.BudgetUsed, 0)),
		BudgetTotal: uint64(max(st.BudgetTotal, 0)),
		Full:        st.Full,
		Battery:     -1,
		Software:    r.software,
		Clock:       protocol.At(now),
		LastSync:    protocol.At(ss.LastSync),
	}
	if hb.BudgetTotal > 0 && hb.BudgetUsed > hb.BudgetTotal {
		hb.BudgetUsed, hb.Full = hb.BudgetTotal, true
	}
	if !st.OldestUnsent.IsZero() {
		hb.OldestUnsentMillis = uint64(max(now.Sub(st.OldestUnsent).Milliseconds(), 0))
	}
	if ss.ClockKnown {
		hb.ClockOffsetMillis = ss.ClockOffset.Milliseconds()
	}
	if r.opts.Battery != nil {
		hb.Battery = int8(min(max(r.opts.Battery(), -1), 100))
	}
	r.mu.Lock()
	for _, p := range r.peripherals {
		hb.Peripherals = append(hb.Peripherals, p)
	}
	r.mu.Unlock()
	slices.SortFunc(hb.Peripherals, func(a, b protocol.Peripheral) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	if len(hb.Peripherals) > protocol.MaxPeripherals {
		hb.Peripherals = hb.Peripherals[:protocol.MaxPeripherals]
	}
	return hb, nil
}

// Run sends heartbeats until ctx ends.
func (r *Reporter) Run(ctx context.Context) error {
	interval := r.opts.Interval
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	var lastCheck time.Time
	check := time.NewTimer(time.Hour)
	check.Stop()
	defer check.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case d := <-r.interval:
			if d != interval {
				interval = d
				ticker.Reset(d)
			}
			continue
		case <-ticker.C:
		case <-r.beat:
			ticker.Reset(interval)
		case <-r.poke:
			if wait := r.opts.CheckEvery - r.opts.Now().Sub(lastCheck); wait > 0 {
				check.Reset(wait)
				continue
			}
			lastCheck = r.opts.Now()
			if !r.fullFlipped(ctx) {
				continue
			}
		case <-check.C:
			lastCheck = r.opts.Now()
			if !r.fullFlipped(ctx) {
				continue
			}
		}
		r.sendBeat(ctx)
	}
}

func (r *Reporter) fullFlipped(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, r.opts.OpTimeout)
	defer cancel()
	st, err := r.st.Stats(ctx)
	if err != nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return st.Full != r.sentFull
}

func (r *Reporter) sendBeat(ctx context.Context) {
	hb, err := r.Heartbeat(ctx)
	if err != nil {
		r.log.Warn("cannot make a heartbeat", "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, r.opts.OpTimeout)
	defer cancel()
	if err := r.send.Send(ctx, hb); err != nil {
		r.log.Debug("cannot send a heartbeat now", "err", err)
		return
	}
	r.mu.Lock()
	r.sentFull = hb.Full
	r.sent++
	r.mu.Unlock()
}
