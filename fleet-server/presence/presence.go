// Package presence decides whether devices are online and keeps their
// health time series bounded.
//
// A device is online from its retained Presence (published when it
// connects) or any message it sends, and offline
//
//   - when its retained Presence says so: its last will, which the broker
//     publishes when the connection dies without a DISCONNECT (MQTT 3.1.1
//     declares a connection dead after 1.5 × its keepalive of silence), or
//     its clean disconnect; or
//   - when nothing has been heard from it for twice the keepalive (the
//     heartbeat deadline), for the cases the will cannot cover: a broker
//     that lost the connection's state, a replica that missed the will.
//
// The ingest applies Presence messages and records when each device was
// last heard (batched: at most every Options.LastSeenResolution per device).
// The Tracker applies the deadline. It wakes when the oldest online device
// becomes overdue rather than on a fixed tick, and counts a device as
// silent LastSeenResolution early to make up for the batching, so a device
// that falls silent is marked offline at most 2 × Keepalive after its last
// message (plus the few milliseconds of a query). That is the worst-case
// detection time; a device is never marked offline before 2 × Keepalive −
// 2 × LastSeenResolution of silence. With the defaults (30 s, 1 s): at most
// 60 s, never before 58 s.
//
// The Tracker also trims the heartbeat time series: samples older than
// Options.Retention, and beyond Options.MaxSamples per device.
package presence

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/kogge-fleet/kogge/fleet-server/store"
)

// Options are the optional settings of the Tracker.
type Options struct {
	Logger *slog.Logger
	// Clock returns the current time; default time.Now.
	Clock func() time.Time
	// Keepalive is the MQTT keepalive devices use; a device silent for
	// twice as long is offline. Default 30 s.
	Keepalive time.Duration
	// LastSeenResolution is how far the stored last-heard times may lag
	// (the ingest's LastSeenEvery); default 1 s.
	LastSeenResolution time.Duration
	// Retention bounds the age of heartbeat samples; default 7 days.
	Retention time.Duration
	// MaxSamples bounds the heartbeat samples kept per device; default
	// 2500.
	MaxSamples int64
	// TrimEvery is how often the time series is trimmed; default 10 min.
	TrimEvery time.Duration
	// OnOffline is called for each device the deadline marks offline. It
	// must not block.
	OnOffline func(device string)
}

func (o *Options) defaults() {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Keepalive == 0 {
		o.Keepalive = 30 * time.Second
	}
	if o.LastSeenResolution == 0 {
		o.LastSeenResolution = time.Second
	}
	if o.Retention == 0 {
		o.Retention = 7 * 24 * time.Hour
	}
	if o.MaxSamples == 0 {
		o.MaxSamples = 2500
	}
	if o.TrimEvery == 0 {
		o.TrimEvery = 10 * time.Minute
	}
}

// Validate checks the options after defaults are filled in.
func (o *Options) Validate() error {
	switch {
	case o.Keepalive < time.Second:
		return fmt.Errorf("presence keepalive %v must be at least 1s", o.Keepalive)
	case o.LastSeenResolution < 0 || 2*o.LastSeenResolution >= o.Keepalive:
		return fmt.Errorf("presence last-seen resolution %v must be under half the keepalive %v", o.LastSeenResolution, o.Keepalive)
	case o.Retention < time.Minute:
		return fmt.Errorf("heartbeat retention %v must be at least a minute", o.Retention)
	case o.MaxSamples < 1:
		return fmt.Errorf("heartbeat samples per device %d must be 1 or more", o.MaxSamples)
	case o.TrimEvery <= 0:
		return errors.New("heartbeat trim interval must be positive")
	}
	return nil
}

// Tracker applies the heartbeat deadline and trims the health time series.
type Tracker struct {
	db   *store.DB
	opts Options
	log  *slog.Logger
}

// New returns a Tracker over db. Run starts it.
func New(db *store.DB, opts Options) (*Tracker, error) {
	opts.defaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	return &Tracker{db: db, opts: opts, log: opts.Logger}, nil
}

// Deadline is how long a device may be silent before it is offline: twice
// the keepalive.
func (t *Tracker) Deadline() time.Duration { return 2 * t.opts.Keepalive }

// silence is the deadline applied to the stored last-heard times, which lag
// by up to LastSeenResolution.
func (t *Tracker) silence() time.Duration { return t.Deadline() - t.opts.LastSeenResolution }

// Expire marks offline the online devices silent beyond the deadline now,
// and returns them.
func (t *Tracker) Expire(ctx context.Context) ([]string, error) {
	now := t.opts.Clock()
	off, err := t.db.ExpireOnline(ctx, now.Add(-t.silence()).UnixMilli(), now.UnixMilli())
	if err != nil {
		return nil, err
	}
	for _, d := range off {
		t.log.Info("device offline: heartbeat deadline passed", "device", d, "deadline", t.Deadline())
		if t.opts.OnOffline != nil {
			t.opts.OnOffline(d)
		}
	}
	return off, nil
}

// Trim deletes the heartbeat samples beyond the retention and the
// per-device bound, and returns how many.
func (t *Tracker) Trim(ctx context.Context) (int64, error) {
	now := t.opts.Clock()
	return t.db.TrimHeartbeats(ctx, now.Add(-t.opts.Retention).UnixMilli(), t.opts.MaxSamples)
}

// Run applies the deadline and trims until ctx ends. It wakes when the
// oldest online device becomes overdue.
func (t *Tracker) Run(ctx context.Context) error {
	timer := time.NewTimer(0)
	defer timer.Stop()
	nextTrim := t.opts.Clock()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		if _, err := t.Expire(ctx); err != nil && ctx.Err() == nil {
			t.log.Error("applying the heartbeat deadline failed; retrying", "err", err)
		}
		now := t.opts.Clock()
		if !now.Before(nextTrim) {
			if n, err := t.Trim(ctx); err != nil && ctx.Err() == nil {
				t.log.Error("trimming heartbeats failed; retrying at the next interval", "err", err)
			} else if n > 0 {
				t.log.Info("trimmed heartbeats", "deleted", n)
			}
			nextTrim = now.Add(t.opts.TrimEvery)
		}
		wait := t.silence()
		oldest, ok, err := t.db.OldestOnline(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			t.log.Error("reading presence failed; retrying", "err", err)
			wait = time.Second
		case ok:
			wait = time.UnixMilli(oldest).Add(t.silence()).Sub(now) + time.Millisecond
		}
		wait = max(min(wait, nextTrim.Sub(now)), 10*time.Millisecond)
		timer.Reset(wait)
	}
}
