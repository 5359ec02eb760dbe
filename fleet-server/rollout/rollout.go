// Package rollout updates the fleet's software: it keeps signed artifacts
// (protocol/artifact), serves them to devices, and rolls them out in waves
// gated by how the updated devices behave.
//
// # Artifacts
//
// An admin uploads a binary with its signed manifest (koggectl artifact
// upload). The server checks the signature against the keys it trusts
// (rollout.keys), and the binary against the manifest's size and SHA-256,
// and keeps the binary in the store in chunks, so that every replica on one
// PostgreSQL serves it. Devices fetch the manifest and the binary from the
// device endpoint ([Service.DeviceHandler], on the HTTPS listener, mutual
// TLS with the device certificate) with Range requests, so that a cut
// download resumes; each device's download is held to a bandwidth limit.
// Devices verify everything again before they install (agent/update).
//
// # Rollouts
//
// A rollout installs one artifact on the devices of a group or a filter
// (fixed when it is created), in waves of cumulative size, e.g. 1 device,
// 5 %, 25 %, 100 %. The scheduler ([Service.Run]) sends the current wave's
// devices the "update" command; a device reports each step over HTTPS
// (downloading, installing, succeeded, failed, rolled-back). A wave is
// ready when the share of its devices that succeeded reaches the success
// threshold; the rollout moves on to the next wave when the wave stayed
// ready, with the updated devices healthy (online, announcing the new
// version), for the soak time. When the share of failed devices (refused,
// failed, or rolled back by their own health check) among the devices of
// the waves so far exceeds the error threshold, the rollout aborts: the
// devices not yet updated are cancelled and the updated ones get
// "update-rollback", which switches them back to the version they ran.
//
// An admin can pause (no new devices, no next wave), resume and abort.
// A device waits while it is outside the rollout's maintenance window (by
// default kiosks update only outside opening hours) and, unless the rollout
// says otherwise, while its last heartbeat shows captures not yet
// delivered. Every admin action and every automatic abort is audited.
//
// # Singleton
//
// Run is the scheduler; exactly one replica should run it (wrap it in the
// leader election). Reports and admin actions work on every replica: they
// only write rows, which the scheduler reads at its next tick.
package rollout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/fleet-server/audit"
	"github.com/kogge-fleet/kogge/fleet-server/store"
	"github.com/kogge-fleet/kogge/protocol/artifact"
)

// Errors that callers act on (the API maps them to HTTP statuses).
var (
	ErrNotFound = errors.New("not found")
	// ErrInvalid: the request breaks a rule; the message says which.
	ErrInvalid = errors.New("invalid")
	// ErrExists: an artifact of that name, version and platform exists.
	ErrExists = errors.New("already exists")
	// ErrConflict: the change does not fit the current state (a rollout
	// that ended, devices in another rollout, an artifact in use).
	ErrConflict = errors.New("conflict")
	// ErrRefused: an artifact that is not signed by a trusted key or
	// whose binary does not match its manifest.
	ErrRefused = errors.New("artifact refused")
)

// Commands sends commands to devices (fleet-server/commands).
type Commands interface {
	Send(ctx context.Context, device, name string, args map[string]string, ttl time.Duration) (store.Command, error)
	Command(ctx context.Context, id uuid.UUID) (store.Command, error)
}

// Audit records admin actions (fleet-server/audit).
type Audit interface {
	Record(ctx context.Context, actor, action, target string, details map[string]any) (audit.Entry, error)
}

// Options are the optional settings of New.
type Options struct {
	// Keys are the signing keys whose artifacts the server accepts; with
	// none, uploads are refused.
	Keys artifact.Keyring
	// Tick is how often the scheduler looks at the running rollouts (5 s).
	Tick time.Duration
	// DeviceBandwidth limits each device's downloads, in bytes a second;
	// 0 means no limit.
	DeviceBandwidth int64
	// MaxArtifactSize bounds an uploaded binary (1 GiB).
	MaxArtifactSize int64
	// KioskWindow is the maintenance window of rollouts whose artifact is
	// for the kiosk app and that name none: outside the offices' opening
	// hours ("19:00-07:00").
	KioskWindow string
	// Location is the time zone of maintenance windows (time.Local).
	Location *time.Location
	// CommandTTL is the time to live of update commands (7 days): a device
	// offline longer does not get the update.
	CommandTTL time.Duration
	// DeviceTimeout fails a device that reports nothing new for this long
	// after it got its command (2 h), and one that does not answer a
	// rollback.
	DeviceTimeout time.Duration
	// OnChange is told the progress of a rollout that changed, for live
	// pages. It must not block.
	OnChange func(Rollout)
	Logger   *slog.Logger
	// Clock is the time; default time.Now.
	Clock func() time.Time
}

func (o *Options) defaults() {
	if o.Tick == 0 {
		o.Tick = 5 * time.Second
	}
	if o.MaxArtifactSize == 0 {
		o.MaxArtifactSize = 1 << 30
	}
	if o.KioskWindow == "" {
		o.KioskWindow = "19:00-07:00"
	}
	if o.Location == nil {
		o.Location = time.Local
	}
	if o.CommandTTL == 0 {
		o.CommandTTL = 7 * 24 * time.Hour
	}
	if o.DeviceTimeout == 0 {
		o.DeviceTimeout = 2 * time.Hour
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
}

// Validate checks the options after defaults are filled in.
func (o *Options) Validate() error {
	var errs []error
	if o.Tick <= 0 || o.CommandTTL < time.Second || o.DeviceTimeout <= 0 {
		errs = append(errs, errors.New("tick, command TTL and device timeout must be positive"))
	}
	if o.DeviceBandwidth < 0 || o.MaxArtifactSize <= 0 || o.MaxArtifactSize > artifact.MaxSize {
		errs = append(errs, fmt.Errorf("device bandwidth must not be negative, the artifact size limit 1 to %d", int64(artifact.MaxSize)))
	}
	if _, err := ParseWindow(o.KioskWindow); err != nil {
		errs = append(errs, fmt.Errorf("kiosk window: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("rollout options: %w", err)
	}
	return nil
}

// Service keeps artifacts and rollouts.
type Service struct {
	db    *store.DB
	cmds  Commands
	audit Audit
	opts  Options
	log   *slog.Logger
	poke  chan struct{}
	bw    *bandwidth

	// last is the progress last told to OnChange, per rollout (scheduler
	// goroutine only).
	last map[uuid.UUID]string
}

// New returns the service over db; cmds sends the update commands, audit
// records admin actions.
func New(db *store.DB, cmds Commands, au Audit, opts Options) (*Service, error) {
	if db == nil || cmds == nil || au == nil {
		return nil, errors.New("rollout: a store, commands and an audit log are required")
	}
	opts.defaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	return &Service{
		db: db, cmds: cmds, audit: au, opts: opts, log: opts.Logger,
		poke: make(chan struct{}, 1), bw: newBandwidth(opts.DeviceBandwidth),
		last: map[uuid.UUID]string{},
	}, nil
}

// Poke makes the scheduler look at the rollouts soon.
func (s *Service) Poke() {
	select {
	case s.poke <- struct{}{}:
	default:
	}
}

func (s *Service) now() time.Time { return s.opts.Clock() }

// record appends an audit entry; a failure fails the action, which must
// not happen unrecorded.
func (s *Service) record(ctx context.Context, actor, action, target string, details map[string]any) error {
	if actor == "" {
		actor = audit.System
	}
	if _, err := s.audit.Record(ctx, actor, action, target, details); err != nil {
		return fmt.Errorf("audit %s: %w", action, err)
	}
	return nil
}
