package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/kogge-fleet/kogge/simulators/fleet/faultproxy"
)

// ChaosOptions configure the fault mix. Zero intervals mean the defaults;
// a negative interval switches that fault off.
type ChaosOptions struct {
	// Duration is how long faults are made.
	Duration time.Duration
	// Seed makes the fault sequence repeatable (given the same timing).
	Seed uint64
	// LinkFaultEvery is the mean time between two link faults (latency,
	// bandwidth limit, reset, blackhole, cut) on random devices; default
	// 2 s.
	LinkFaultEvery time.Duration
	// KillEvery is the time between two SIGKILLs of a device process
	// (±25 %); default 8 s. Only devices that run as processes are
	// killed.
	KillEvery time.Duration
	// ServerRestartEvery is the time between two restarts of the fleet
	// server and its broker (±25 %); default 40 s.
	ServerRestartEvery time.Duration
	// DistrictOutage takes a whole district (group) offline for one
	// simulated hour, once, at a random time in the first half of the
	// run; default on, off with NoDistrictOutage.
	NoDistrictOutage bool
	// FullDevice is a device with a small store budget: its link is cut
	// until its store refuses captures (storage full), then healed so that
	// it drains and frees the space. Empty: none.
	FullDevice string
	// Logger receives a line for every fault.
	Logger *slog.Logger
}

func (o *ChaosOptions) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&o.LinkFaultEvery, 2*time.Second)
	def(&o.KillEvery, 8*time.Second)
	def(&o.ServerRestartEvery, 40*time.Second)
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// ChaosStats count the faults made.
type ChaosStats struct {
	Latency, Bandwidth, Resets, Blackholes, Cuts int
	Kills, ServerRestarts                        int
	DistrictOutages                              int
	OutageDistrict                               string
	FullEpisodes                                 int
	// FullRefused is how many captures the full device refused.
	FullRefused uint64
}

// String summarises the faults.
func (s ChaosStats) String() string {
	parts := []string{
		fmt.Sprintf("link faults: %d latency, %d bandwidth, %d resets, %d blackholes, %d cuts", s.Latency, s.Bandwidth, s.Resets, s.Blackholes, s.Cuts),
		fmt.Sprintf("%d device processes killed (SIGKILL)", s.Kills),
		fmt.Sprintf("%d server restarts", s.ServerRestarts),
	}
	if s.DistrictOutages > 0 {
		parts = append(parts, fmt.Sprintf("district %s offline for a simulated hour", s.OutageDistrict))
	}
	if s.FullEpisodes > 0 {
		parts = append(parts, fmt.Sprintf("%d storage-full episodes (%d captures refused)", s.FullEpisodes, s.FullRefused))
	}
	return strings.Join(parts, "; ")
}

// chaos is the state of a fault run.
type chaos struct {
	f     *Fleet
	srv   *Server
	opts  ChaosOptions
	rng   *rand.Rand
	log   *slog.Logger
	stats ChaosStats

	healAt    map[*Device]time.Time // link faults to lift
	restartAt map[*Device]time.Time // killed devices to start again
	outage    []*Device             // the district that is offline
	outageEnd time.Time
	full      *Device
	fullSince time.Time // zero: the full device's link is up
	fullUntil time.Time // when its link comes up again at the latest
}

// RunChaos makes faults over the fleet for opts.Duration, then lifts them
// all and starts every killed device again. The fleet must be running.
func RunChaos(ctx context.Context, f *Fleet, srv *Server, opts ChaosOptions) (ChaosStats, error) {
	opts.setDefaults()
	if opts.Duration <= 0 {
		return ChaosStats{}, errors.New("chaos: no duration")
	}
	c := &chaos{
		f: f, srv: srv, opts: opts, log: opts.Logger,
		rng:       rand.New(rand.NewPCG(opts.Seed, 0xc4a05)),
		healAt:    map[*Device]time.Time{},
		restartAt: map[*Device]time.Time{},
	}
	if opts.FullDevice != "" {
		d, ok := f.Device(opts.FullDevice)
		if !ok {
			return ChaosStats{}, fmt.Errorf("chaos: no device %q to fill", opts.FullDevice)
		}
		c.full = d
	}
	err := c.run(ctx)
	c.healAll(ctx)
	return c.stats, err
}

// next draws the time of the next event of a Poisson process with mean
// interval every; far in the future when every is negative.
func (c *chaos) next(now time.Time, every time.Duration) time.Time {
	if every < 0 {
		return now.Add(1000 * time.Hour)
	}
	return now.Add(time.Duration(c.rng.ExpFloat64() * float64(every)))
}

// nextAbout is every ±25 %: for the heavy faults (kills, restarts), whose
// count in a short run must not depend on luck.
func (c *chaos) nextAbout(now time.Time, every time.Duration) time.Time {
	if every < 0 {
		return now.Add(1000 * time.Hour)
	}
	return now.Add(time.Duration((0.75 + 0.5*c.rng.Float64()) * float64(every)))
}

func (c *chaos) run(ctx context.Context) error {
	start := time.Now()
	end := start.Add(c.opts.Duration)
	hasProcesses := slices.ContainsFunc(c.f.Devices(), func(d *Device) bool { return d.Spec.Process })
	nextLink := c.next(start, c.opts.LinkFaultEvery)
	nextKill := c.nextAbout(start, c.opts.KillEvery)
	if !hasProcesses {
		nextKill = start.Add(1000 * time.Hour)
	}
	nextRestart := c.nextAbout(start, c.opts.ServerRestartEvery)
	var outageAt time.Time
	if !c.opts.NoDistrictOutage {
		outageAt = start.Add(time.Duration(c.rng.Float64() * float64(c.opts.Duration) / 2))
	}
	var fullAt time.Time
	if c.full != nil {
		fullAt = start.Add(time.Duration(c.rng.Float64() * float64(c.opts.Duration) / 4))
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		now := time.Now()
		if now.After(end) {
			return nil
		}
		c.lift(ctx, now)
		if !outageAt.IsZero() && now.After(outageAt) {
			outageAt = time.Time{}
			c.startOutage(now)
		}
		if !fullAt.IsZero() && now.After(fullAt) {
			fullAt = time.Time{}
			c.startFull(now)
		}
		if now.After(nextLink) {
			nextLink = c.next(now, c.opts.LinkFaultEvery)
			c.linkFault(now)
		}
		if now.After(nextKill) {
			nextKill = c.nextAbout(now, c.opts.KillEvery)
			c.kill(now)
		}
		if now.After(nextRestart) {
			nextRestart = c.nextAbout(now, c.opts.ServerRestartEvery)
			c.log.Info("chaos: restarting the fleet server and its broker")
			if err := c.srv.Restart(ctx); err != nil {
				return fmt.Errorf("chaos: restart the fleet server: %w", err)
			}
			c.stats.ServerRestarts++
		}
	}
}

// busy reports whether a device is in a longer fault that a link fault
// must not disturb: the outage, the storage-full episode.
func (c *chaos) busy(d *Device) bool {
	return slices.Contains(c.outage, d) || d == c.full && !c.fullSince.IsZero()
}

// lift ends the faults that are due: link faults, the outage, the
// storage-full episode; and starts killed devices again.
func (c *chaos) lift(ctx context.Context, now time.Time) {
	for d, at := range c.healAt {
		if now.After(at) {
			delete(c.healAt, d)
			if !c.busy(d) {
				d.proxy.Set(faultproxy.Faults{})
			}
		}
	}
	for d, at := range c.restartAt {
		if now.After(at) {
			delete(c.restartAt, d)
			if err := d.Start(ctx); err != nil {
				c.log.Error("chaos: cannot restart a killed device; retrying", "device", d.Spec.ID, "err", err)
				c.restartAt[d] = now.Add(time.Second)
			}
		}
	}
	if len(c.outage) > 0 && now.After(c.outageEnd) {
		c.log.Info("chaos: district back online", "district", c.stats.OutageDistrict)
		for _, d := range c.outage {
			d.proxy.Set(faultproxy.Faults{})
		}
		c.outage = nil
	}
	if c.full != nil && !c.fullSince.IsZero() {
		s := c.full.Stats(ctx)
		if s.Full || now.After(c.fullUntil) {
			if s.Full {
				c.stats.FullEpisodes++
			}
			c.log.Info("chaos: storage-full device back online", "device", c.full.Spec.ID, "full", s.Full)
			c.fullSince = time.Time{}
			c.full.proxy.Set(faultproxy.Faults{})
		}
	}
}

// startOutage takes a random district offline for a simulated hour.
func (c *chaos) startOutage(now time.Time) {
	byDistrict := map[string][]*Device{}
	for _, d := range c.f.Devices() {
		byDistrict[d.Spec.District] = append(byDistrict[d.Spec.District], d)
	}
	districts := make([]string, 0, len(byDistrict))
	for k := range byDistrict {
		districts = append(districts, k)
	}
	slices.Sort(districts)
	if len(districts) == 0 {
		return
	}
	district := districts[c.rng.IntN(len(districts))]
	c.outage = byDistrict[district]
	c.outageEnd = now.Add(c.f.Clock().Real(time.Hour))
	c.stats.DistrictOutages++
	c.stats.OutageDistrict = district
	c.log.Info("chaos: district offline for a simulated hour", "district", district, "devices", len(c.outage),
		"real", c.f.Clock().Real(time.Hour))
	for _, d := range c.outage {
		d.proxy.Set(faultproxy.Faults{Blackhole: true})
	}
}

// startFull cuts the full device's link until its store is full.
func (c *chaos) startFull(now time.Time) {
	c.fullSince = now
	c.fullUntil = now.Add(max(c.opts.Duration/3, 10*time.Second))
	c.log.Info("chaos: cutting the link of the small-budget device until its storage is full", "device", c.full.Spec.ID)
	c.full.proxy.Set(faultproxy.Faults{Down: true})
}

// linkFault puts a random fault on a random device's link.
func (c *chaos) linkFault(now time.Time) {
	devices := c.f.Devices()
	if len(devices) == 0 {
		return
	}
	d := devices[c.rng.IntN(len(devices))]
	if c.busy(d) {
		return
	}
	secs := func(lo, hi float64) time.Duration {
		return time.Duration((lo + c.rng.Float64()*(hi-lo)) * float64(time.Second))
	}
	var f faultproxy.Faults
	var until time.Duration
	switch n := c.rng.IntN(10); {
	case n < 3:
		f, until = faultproxy.Faults{Latency: time.Duration(50+c.rng.IntN(350)) * time.Millisecond}, secs(2, 8)
		c.stats.Latency++
	case n < 5:
		f, until = faultproxy.Faults{Bandwidth: int64(16+c.rng.IntN(112)) << 10}, secs(3, 10)
		c.stats.Bandwidth++
	case n < 7:
		c.stats.Resets++
		c.log.Debug("chaos: reset", "device", d.Spec.ID)
		d.proxy.Reset()
		return
	case n < 9:
		f, until = faultproxy.Faults{Blackhole: true}, secs(2, 12)
		c.stats.Blackholes++
	default:
		f, until = faultproxy.Faults{Down: true}, secs(2, 10)
		c.stats.Cuts++
	}
	c.log.Debug("chaos: link fault", "device", d.Spec.ID, "faults", f.String(), "for", until)
	d.proxy.Set(f)
	c.healAt[d] = now.Add(until)
}

// kill SIGKILLs a random running device process and schedules its restart.
func (c *chaos) kill(now time.Time) {
	var candidates []*Device
	for _, d := range c.f.Devices() {
		if d.Spec.Process && d.Running() {
			candidates = append(candidates, d)
		}
	}
	if len(candidates) == 0 {
		return
	}
	d := candidates[c.rng.IntN(len(candidates))]
	if err := d.Kill(); err != nil {
		c.log.Error("chaos: kill", "device", d.Spec.ID, "err", err)
		return
	}
	c.stats.Kills++
	c.log.Info("chaos: killed a device process with SIGKILL", "device", d.Spec.ID)
	c.restartAt[d] = now.Add(time.Duration(300+c.rng.IntN(2700)) * time.Millisecond)
}

// healAll lifts every fault and starts every stopped device.
func (c *chaos) healAll(ctx context.Context) {
	if c.full != nil {
		c.stats.FullRefused = c.full.Stats(ctx).Refused
	}
	c.f.Heal()
	c.outage, c.fullSince = nil, time.Time{}
	for _, d := range c.f.Devices() {
		if !d.Running() {
			if err := d.Start(ctx); err != nil {
				c.log.Error("chaos: cannot start a device again", "device", d.Spec.ID, "err", err)
			}
		}
	}
	clear(c.healAt)
	clear(c.restartAt)
}
