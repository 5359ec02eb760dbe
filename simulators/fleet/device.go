package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kogge-fleet/kogge/agent"
	"github.com/kogge-fleet/kogge/agent/enroll"
	agentmqtt "github.com/kogge-fleet/kogge/agent/mqtt"
	"github.com/kogge-fleet/kogge/agent/store"
	agentsync "github.com/kogge-fleet/kogge/agent/sync"
)

// DeviceSpec describes one virtual device.
type DeviceSpec struct {
	// ID is the device id it enrolls as.
	ID string
	// Role says what it captures.
	Role Role
	// District is the group it is enrolled in; a kiosk's captures go to
	// that district's citizens' office.
	District string
	// Process runs the device as a child process of its own (kogge-sim
	// device), so that it can be killed with SIGKILL.
	Process bool
	// Budget is its store's size budget in bytes; 0 means the default.
	Budget int64
	// LoadScale multiplies its workload's rate (on top of the fleet's);
	// 0 means 1.
	LoadScale float64
}

// loadScale is the device's rate multiplier with the fleet's.
func (s DeviceSpec) loadScale(fleet float64) float64 {
	if s.LoadScale == 0 {
		return fleet
	}
	return fleet * s.LoadScale
}

// DeviceStats are a device's counters as the fleet sees them.
type DeviceStats struct {
	Online   bool   `json:"online"`
	Queue    int    `json:"queue"`    // records not yet acknowledged by the server
	Blobs    int    `json:"blobs"`    // blobs not yet complete at the server
	Full     bool   `json:"full"`     // the store refuses captures
	Captured uint64 `json:"captured"` // receipts, this incarnation
	Refused  uint64 `json:"refused"`  // captures refused: storage full
	NoKey    uint64 `json:"no_key"`   // captures not made: no office key yet
	Failed   uint64 `json:"failed"`   // captures that failed otherwise
}

// AgentTuning is what the simulator sets on every agent: timeouts short enough
// that faults heal within seconds, not minutes.
type AgentTuning struct {
	Keepalive    time.Duration `json:"keepalive"`
	MinBackoff   time.Duration `json:"min_backoff"`
	MaxBackoff   time.Duration `json:"max_backoff"`
	AckTimeout   time.Duration `json:"ack_timeout"`
	SyncBackoff  time.Duration `json:"sync_backoff"`
	HelloTimeout time.Duration `json:"hello_timeout"`
}

func (t AgentTuning) transport(logger *slog.Logger) agentmqtt.Options {
	return agentmqtt.Options{
		KeepAlive: t.Keepalive, MinBackoff: t.MinBackoff, MaxBackoff: t.MaxBackoff,
		ConnectTimeout: 5 * time.Second, PublishTimeout: 5 * time.Second, Logger: logger,
	}
}

func (t AgentTuning) sync() agentsync.Options {
	return agentsync.Options{AckTimeout: t.AckTimeout, MaxBackoff: t.SyncBackoff, HelloTimeout: t.HelloTimeout}
}

// agentRun is one running agent over its store, in this process: the
// device's runtime, in-process or inside a device process.
type agentRun struct {
	st     *store.Store
	tr     *agentmqtt.Transport
	ag     *agent.Agent
	cancel context.CancelFunc
	wg     sync.WaitGroup
	err    error // of agent.Run, once it has returned
}

// agentParams are what startAgent needs.
type agentParams struct {
	device   string
	dir      string // holds identity/ and agent.db
	broker   string // ssl://host:port
	budget   int64
	tuning   AgentTuning
	logger   *slog.Logger
	software string
}

// startAgent opens the device's store and identity and runs its agent.
func startAgent(p agentParams) (*agentRun, error) {
	id, err := enroll.Load(filepath.Join(p.dir, "identity"))
	if err != nil {
		return nil, fmt.Errorf("device %s: %w", p.device, err)
	}
	st, err := store.Open(filepath.Join(p.dir, "agent.db"), store.Options{Budget: p.budget, DiskReserve: 1 << 20, Logger: p.logger})
	if err != nil {
		return nil, fmt.Errorf("device %s: %w", p.device, err)
	}
	tr, err := agentmqtt.New(agentmqtt.Config{Broker: p.broker, Device: id.DeviceID, TLS: id.TLSConfig(), Software: p.software},
		p.tuning.transport(p.logger))
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("device %s: %w", p.device, err)
	}
	ag, err := agent.New(agent.Config{Device: id.DeviceID, Software: p.software}, st, tr,
		agent.Options{Logger: p.logger, Sync: p.tuning.sync()})
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("device %s: %w", p.device, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &agentRun{st: st, tr: tr, ag: ag, cancel: cancel}
	r.wg.Go(func() { r.err = ag.Run(ctx) })
	return r, nil
}

// stop ends the agent and closes the store.
func (r *agentRun) stop() error {
	r.cancel()
	r.wg.Wait()
	return errors.Join(r.err, r.st.Close())
}

// stats reads the agent's counters.
func (r *agentRun) stats(ctx context.Context) DeviceStats {
	s := DeviceStats{Online: r.tr.Stats().Connected}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if st, err := r.st.Stats(sctx); err == nil {
		s.Queue, s.Full = st.QueueDepth, st.Full
	}
	if blobs, err := r.st.PendingBlobs(sctx, 1000); err == nil {
		s.Blobs = len(blobs)
	}
	return s
}

// capturer makes a device's captures at its workload's rate while it is
// switched on, and reports each receipt.
type capturer struct {
	gen      *generator
	work     Workload
	clock    Clock
	scale    float64
	on       *atomic.Bool
	rng      *rand.Rand
	ag       *agent.Agent
	device   string
	receipt  func(Entry)
	counters *captureCounters
	log      *slog.Logger

	busy sync.Mutex // held while a capture is made
}

// idle returns once no capture is being made; with capturing switched off
// none starts afterwards.
func (c *capturer) idle() {
	c.busy.Lock()
	//lint:ignore SA2001 the empty critical section waits for the capture in progress
	c.busy.Unlock()
}

// captureCounters are a device's capture outcomes.
type captureCounters struct {
	captured, refused, noKey, failed atomic.Uint64
}

func (c *captureCounters) fill(s *DeviceStats) {
	s.Captured, s.Refused, s.NoKey, s.Failed = c.captured.Load(), c.refused.Load(), c.noKey.Load(), c.failed.Load()
}

// run captures until ctx ends. Arrivals are a Poisson process whose rate
// follows the workload's daily curve; while the device is switched off or
// the office is closed it waits.
func (c *capturer) run(ctx context.Context) {
	const idle = 200 * time.Millisecond // re-check of a closed office or a switched-off device
	for {
		var gap time.Duration
		rate := c.work.RealRate(c.clock, c.scale)
		switch {
		case !c.on.Load() || rate <= 0:
			gap = idle
		default:
			gap = time.Duration(c.rng.ExpFloat64() / rate * float64(time.Second))
			// The rate changes with the time of day: draw again after a
			// while (the process is memoryless, so this is exact).
			if limit := c.clock.Real(10 * time.Minute); gap > limit {
				if !sleep(ctx, limit) {
					return
				}
				continue
			}
		}
		if !sleep(ctx, gap) {
			return
		}
		if c.on.Load() && rate > 0 {
			c.busy.Lock()
			if c.on.Load() {
				c.captureOne(ctx)
			}
			c.busy.Unlock()
		}
	}
}

// captureOne makes one capture and reports its receipt.
func (c *capturer) captureOne(ctx context.Context) {
	capture, err := c.gen.next()
	if err != nil {
		c.counters.failed.Add(1)
		c.log.Error("cannot make a capture", "err", err)
		return
	}
	size := int64(len(capture.Body))
	for _, b := range capture.Blobs {
		size += int64(len(b.Data))
	}
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	r, err := c.ag.Capture(cctx, capture)
	cancel()
	switch {
	case err == nil:
		c.counters.captured.Add(1)
		c.receipt(Entry{Record: r.ID, Device: c.device, Kind: capture.Kind, Office: capture.Office, Seq: r.Seq,
			KeyID: r.KeyID, Blobs: len(capture.Blobs), Bytes: size, At: r.CreatedAt})
	case errors.Is(err, store.ErrFull):
		c.counters.refused.Add(1)
	case errors.Is(err, agent.ErrNoOfficeKey):
		c.counters.noKey.Add(1)
	case ctx.Err() != nil:
	default:
		c.counters.failed.Add(1)
		c.log.Warn("capture failed", "err", err)
	}
}

// sleep waits for d; false if ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// seedFor derives a device's seed from the run's seed and its id.
func seedFor(seed uint64, device string, incarnation int) uint64 {
	h := seed ^ 0xcbf29ce484222325
	for i := 0; i < len(device); i++ {
		h ^= uint64(device[i])
		h *= 0x100000001b3
	}
	return h + uint64(incarnation)*0x9e3779b97f4a7c15
}
