// Package commands queues commands for devices and delivers them.
//
// Every command is stored before anything is sent, in a queue per device
// ordered by issue time. A command is published on the device's down/command
// topic when it is queued and the device is online, and again after every
// reconnect (the ingest reports the device's SyncHello or Presence online
// through Connected), and again every Options.ResendAfter while the device
// is online, until the device's result arrives. The device runs a command
// once, however often it receives it (it remembers the ids it ran), and
// sends its result until the server acknowledges it; the server keeps the
// first result. A command whose time to live runs out before it was ever
// sent is marked expired; one that was sent stays open for its result, since
// the device may have run it while offline, but it is not sent again.
//
// The queue lives in the store, so it survives restarts: after one, the
// devices reconnect and get their open commands.
package commands

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/fleet-server/store"
	"github.com/kogge-fleet/kogge/protocol"
)

// Broker publishes to devices.
type Broker interface {
	Publish(topic string, payload []byte, retained bool) error
}

// ErrInvalid wraps the reason a command was refused before it was queued:
// a name, argument or time to live outside the contract.
var ErrInvalid = errors.New("invalid command")

// Options are the optional settings of the Service.
type Options struct {
	Logger *slog.Logger
	// Clock returns the current time; default time.Now.
	Clock func() time.Time
	// DefaultTTL is the time to live of a command sent with ttl 0; default
	// 24 h. MaxTTL bounds it; default 30 days.
	DefaultTTL time.Duration
	MaxTTL     time.Duration
	// ResendAfter is how long an online device may leave a sent command
	// without a result before it is sent again; default 2 min.
	ResendAfter time.Duration
	// SweepEvery is how often expiry and resending are checked; default
	// 30 s.
	SweepEvery time.Duration
}

func (o *Options) defaults() {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.DefaultTTL == 0 {
		o.DefaultTTL = 24 * time.Hour
	}
	if o.MaxTTL == 0 {
		o.MaxTTL = 30 * 24 * time.Hour
	}
	if o.ResendAfter == 0 {
		o.ResendAfter = 2 * time.Minute
	}
	if o.SweepEvery == 0 {
		o.SweepEvery = 30 * time.Second
	}
}

// Validate checks the options after defaults are filled in.
func (o *Options) Validate() error {
	switch {
	case o.DefaultTTL < time.Second || o.MaxTTL < o.DefaultTTL:
		return fmt.Errorf("command TTLs: default %v must be at least 1s and at most the maximum %v", o.DefaultTTL, o.MaxTTL)
	case o.ResendAfter <= 0 || o.SweepEvery <= 0:
		return errors.New("command resend and sweep intervals must be positive")
	}
	return nil
}

// Service queues and delivers commands.
type Service struct {
	db        *store.DB
	broker    Broker
	opts      Options
	log       *slog.Logger
	connected chan string
	seq       atomic.Uint64
}

// New returns a Service over db and b. Run delivers on reconnects and
// resends; Send works without it.
func New(db *store.DB, b Broker, opts Options) (*Service, error) {
	opts.defaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	return &Service{db: db, broker: b, opts: opts, log: opts.Logger, connected: make(chan string, 4096)}, nil
}

func (s *Service) newCommand(device string, fanout uuid.UUID, name string, args map[string]string, ttl time.Duration) (store.Command, error) {
	if ttl == 0 {
		ttl = s.opts.DefaultTTL
	}
	if ttl < time.Second || ttl > s.opts.MaxTTL {
		return store.Command{}, fmt.Errorf("%w: time to live %v must be 1s to %v", ErrInvalid, ttl, s.opts.MaxTTL)
	}
	now := s.opts.Clock()
	c := store.Command{
		ID: uuid.Must(uuid.NewV7()), Device: device, Fanout: fanout, Name: name, Args: args,
		IssuedAt: now.UnixMilli(), ExpiresAt: now.Add(ttl).UnixMilli(),
	}
	if err := c.Wire().Validate(); err != nil {
		return store.Command{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return c, nil
}

// Send queues a command for a device and publishes it at once if the device
// is online. ttl 0 means Options.DefaultTTL. Errors: ErrInvalid,
// store.ErrNotFound for an unknown device, store.ErrDeviceRevoked.
func (s *Service) Send(ctx context.Context, device, name string, args map[string]string, ttl time.Duration) (store.Command, error) {
	d, err := s.db.Device(ctx, device)
	if err != nil {
		return store.Command{}, err
	}
	if d.RevokedAt != 0 {
		return store.Command{}, store.ErrDeviceRevoked
	}
	c, err := s.newCommand(device, uuid.Nil, name, args, ttl)
	if err != nil {
		return store.Command{}, err
	}
	if err := s.db.InsertCommands(ctx, []store.Command{c}); err != nil {
		return store.Command{}, err
	}
	if err := s.deliverIfOnline(ctx, []store.Command{c}); err != nil {
		s.log.Warn("command queued, but sending it failed; it is sent again when the device reconnects",
			"command", c.ID, "device", device, "err", err)
	}
	return s.db.Command(ctx, c.ID)
}

// SendGroup queues one command for every device of a group that is not
// revoked (each gets its own command id, all share the fan-out id) and
// publishes to those online. Errors: ErrInvalid, store.ErrNotFound for an
// unknown group.
func (s *Service) SendGroup(ctx context.Context, group, name string, args map[string]string, ttl time.Duration) (uuid.UUID, []store.Command, error) {
	if _, err := s.db.Group(ctx, group); err != nil {
		return uuid.Nil, nil, err
	}
	fanout := uuid.Must(uuid.NewV7())
	var cmds []store.Command
	after := ""
	for {
		devs, err := s.db.Devices(ctx, store.DeviceFilter{GroupID: group, After: after, Limit: 1000})
		if err != nil {
			return uuid.Nil, nil, err
		}
		for _, d := range devs {
			if d.RevokedAt != 0 {
				continue
			}
			c, err := s.newCommand(d.ID, fanout, name, args, ttl)
			if err != nil {
				return uuid.Nil, nil, err
			}
			cmds = append(cmds, c)
		}
		if len(devs) < 1000 {
			break
		}
		after = devs[len(devs)-1].ID
	}
	if len(cmds) == 0 {
		return fanout, nil, nil
	}
	if err := s.db.InsertCommands(ctx, cmds); err != nil {
		return uuid.Nil, nil, err
	}
	if err := s.deliverIfOnline(ctx, cmds); err != nil {
		s.log.Warn("commands queued, but sending some failed; they are sent again when the devices reconnect",
			"fanout", fanout, "err", err)
	}
	sent, err := s.db.FanoutCommands(ctx, fanout)
	if err != nil {
		return uuid.Nil, nil, err
	}
	return fanout, sent, nil
}

// Command returns a command with its state and result.
func (s *Service) Command(ctx context.Context, id uuid.UUID) (store.Command, error) {
	return s.db.Command(ctx, id)
}

// History returns a device's commands, newest first.
func (s *Service) History(ctx context.Context, f store.CommandFilter) ([]store.Command, error) {
	return s.db.DeviceCommands(ctx, f)
}

// Fanout returns the commands of one group send.
func (s *Service) Fanout(ctx context.Context, id uuid.UUID) ([]store.Command, error) {
	return s.db.FanoutCommands(ctx, id)
}

// Connected tells the service that a device started a session, so that its
// open commands are sent again. It never blocks: when too many reconnects
// are pending, the periodic resend catches up.
func (s *Service) Connected(device string) {
	select {
	case s.connected <- device:
	default:
	}
}

// Run sends open commands to reconnecting devices, expires undelivered
// commands and resends stale ones, until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	tick := time.NewTicker(s.opts.SweepEvery)
	defer tick.Stop()
	s.sweep(ctx)
	for {
		select {
		case <-ctx.Done():
			return nil
		case device := <-s.connected:
			// A session start is reported by its presence and its hello:
			// send once for all reports waiting now.
			for _, d := range coalesce(device, s.connected) {
				if err := s.deliverOpen(ctx, d); err != nil && ctx.Err() == nil {
					s.log.Warn("sending open commands failed; they are sent again later", "device", d, "err", err)
				}
			}
		case <-tick.C:
			s.sweep(ctx)
		}
	}
}

// coalesce returns first and the devices waiting in ch, each once.
func coalesce(first string, ch chan string) []string {
	seen := map[string]bool{first: true}
	out := []string{first}
	for {
		select {
		case d := <-ch:
			if !seen[d] {
				seen[d] = true
				out = append(out, d)
			}
		default:
			return out
		}
	}
}

// sweep expires undelivered commands and resends those online devices have
// left without a result for ResendAfter.
func (s *Service) sweep(ctx context.Context) {
	now := s.opts.Clock()
	ids, err := s.db.ExpireCommands(ctx, now.UnixMilli())
	if err != nil && ctx.Err() == nil {
		s.log.Warn("expiring commands failed; retrying", "err", err)
	}
	if len(ids) > 0 {
		s.log.Info("commands expired before they could be sent", "count", len(ids))
	}
	stale, err := s.db.StaleCommands(ctx, now.Add(-s.opts.ResendAfter).UnixMilli(), now.UnixMilli(), 1000)
	if err == nil {
		err = s.publish(ctx, stale)
	}
	if err != nil && ctx.Err() == nil {
		s.log.Warn("resending commands failed; retrying", "err", err)
	}
}

// deliverOpen sends all of a device's open commands, in queue order.
func (s *Service) deliverOpen(ctx context.Context, device string) error {
	open, err := s.db.OpenCommands(ctx, device, s.opts.Clock().UnixMilli())
	if err != nil {
		return err
	}
	return s.publish(ctx, open)
}

// deliverIfOnline sends the commands of the devices that are online.
func (s *Service) deliverIfOnline(ctx context.Context, cmds []store.Command) error {
	var out []store.Command
	for _, c := range cmds {
		on, err := s.db.DeviceOnline(ctx, c.Device)
		if err != nil {
			return err
		}
		if on {
			out = append(out, c)
		}
	}
	return s.publish(ctx, out)
}

// publish hands commands to the broker and records that they were sent.
func (s *Service) publish(ctx context.Context, cmds []store.Command) error {
	now := s.opts.Clock()
	var sent []uuid.UUID
	var errs []error
	for _, c := range cmds {
		topic, err := protocol.TopicFor(c.Device, protocol.TypeCommand)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		b, err := protocol.Encode(protocol.NewEnvelope(c.Device, s.seq.Add(1), now, c.Wire()))
		if err != nil {
			errs = append(errs, fmt.Errorf("encode command %v: %w", c.ID, err))
			continue
		}
		if err := s.broker.Publish(topic, b, false); err != nil {
			errs = append(errs, fmt.Errorf("publish command %v to %s: %w", c.ID, c.Device, err))
			continue
		}
		sent = append(sent, c.ID)
	}
	if err := s.db.MarkCommandsSent(ctx, sent, now.UnixMilli()); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
