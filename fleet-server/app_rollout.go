package fleetserver

import (
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"time"

	"github.com/kogge-fleet/kogge/fleet-server/registry"
	"github.com/kogge-fleet/kogge/fleet-server/rollout"
	"github.com/kogge-fleet/kogge/protocol"
	"github.com/kogge-fleet/kogge/protocol/artifact"
)

// Software updates: artifacts and rollouts (fleet-server/rollout).
//
// The rollout service keeps the artifacts admins upload, and its scheduler
// (a singleton: run it on one replica) moves the rollouts on. Devices
// download artifacts and report their updates on the enrollment listener
// under /device/v1 (mutual TLS with their device certificate); admins use
// the REST API and the dashboard.

// RolloutConfig configures software updates.
type RolloutConfig struct {
	// Keys are PEM files with the ed25519 public keys whose signed
	// artifacts the server accepts (koggectl artifact keygen writes them).
	Keys []string `config:"keys" usage:"PEM files with the public keys whose signed artifacts the server accepts (comma-separated); none: uploads are refused"`
	// Tick is how often the scheduler looks at the rollouts.
	Tick time.Duration `config:"tick" usage:"how often the rollout scheduler looks at running rollouts"`
	// DeviceBandwidth limits each device's downloads.
	DeviceBandwidth int64 `config:"device-bandwidth" usage:"download limit per device in bytes a second (0: none)"`
	// MaxArtifactSize bounds an uploaded binary.
	MaxArtifactSize int64 `config:"max-artifact-size" usage:"largest artifact binary accepted, in bytes"`
	// KioskWindow is the default maintenance window of kiosk rollouts.
	KioskWindow string `config:"kiosk-window" usage:"maintenance window of kiosk rollouts that name none, outside opening hours (HH:MM-HH:MM or always)"`
	// TimeZone is the zone of maintenance windows.
	TimeZone string `config:"time-zone" usage:"time zone of maintenance windows, e.g. Europe/Berlin (default: the server's)"`
	// DeviceTimeout fails a device that reports nothing for this long.
	DeviceTimeout time.Duration `config:"device-timeout" usage:"a device that reports nothing about its update for this long counts as failed"`
	// CommandTTL is the time to live of update commands.
	CommandTTL time.Duration `config:"command-ttl" usage:"an update command expires for a device offline longer than this"`
}

// DefaultRolloutConfig returns the defaults of software updates.
func DefaultRolloutConfig() RolloutConfig {
	return RolloutConfig{Tick: 5 * time.Second, MaxArtifactSize: 1 << 30, KioskWindow: "19:00-07:00",
		DeviceTimeout: 2 * time.Hour, CommandTTL: 7 * 24 * time.Hour}
}

func (c RolloutConfig) validate() []error {
	var errs []error
	if c.Tick < 100*time.Millisecond || c.DeviceTimeout < time.Minute || c.CommandTTL < time.Minute {
		errs = append(errs, fmt.Errorf("rollout.tick %v, device-timeout %v, command-ttl %v: at least 100ms, 1m and 1m",
			c.Tick, c.DeviceTimeout, c.CommandTTL))
	}
	if c.DeviceBandwidth < 0 || c.MaxArtifactSize < 1 || c.MaxArtifactSize > artifact.MaxSize {
		errs = append(errs, fmt.Errorf("rollout.device-bandwidth must not be negative, max-artifact-size 1 to %d", int64(artifact.MaxSize)))
	}
	if _, err := rollout.ParseWindow(c.KioskWindow); err != nil {
		errs = append(errs, fmt.Errorf("rollout.kiosk-window: %v", err))
	}
	if c.TimeZone != "" {
		if _, err := time.LoadLocation(c.TimeZone); err != nil {
			errs = append(errs, fmt.Errorf("rollout.time-zone %q: %v", c.TimeZone, err))
		}
	}
	for _, f := range c.Keys {
		if _, err := readKeys(f); err != nil {
			errs = append(errs, fmt.Errorf("rollout.keys: %v", err))
		}
	}
	return errs
}

func readKeys(file string) (artifact.Keyring, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	keys, err := artifact.ParsePublicKeys(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return artifact.NewKeyring(keys...), nil
}

// newRollout builds the rollout service and its device endpoint; it needs
// the commands and the audit log.
func (a *App) newRollout(cfg Config, logger *slog.Logger) error {
	keys := artifact.Keyring{}
	for _, f := range cfg.Rollout.Keys {
		k, err := readKeys(f)
		if err != nil {
			return fmt.Errorf("rollout.keys: %w", err)
		}
		for id, pub := range k {
			keys[id] = pub
		}
	}
	loc := time.Local
	if cfg.Rollout.TimeZone != "" {
		var err error
		if loc, err = time.LoadLocation(cfg.Rollout.TimeZone); err != nil {
			return fmt.Errorf("rollout.time-zone: %w", err)
		}
	}
	var err error
	a.rollout, err = rollout.New(a.db, a.commands, a.audit, rollout.Options{
		Keys: keys, Tick: cfg.Rollout.Tick, DeviceBandwidth: cfg.Rollout.DeviceBandwidth, MaxArtifactSize: cfg.Rollout.MaxArtifactSize,
		KioskWindow: cfg.Rollout.KioskWindow, Location: loc, CommandTTL: cfg.Rollout.CommandTTL, DeviceTimeout: cfg.Rollout.DeviceTimeout,
		Logger:   logger.With("component", "rollout"),
		OnChange: a.rolloutChanged,
	})
	if err != nil {
		return err
	}
	if len(keys) == 0 {
		logger.Info("no artifact signing keys configured (rollout.keys): artifact uploads are refused")
	}
	a.rolloutDevices = a.rollout.DeviceHandler(a.rolloutDevice)
	return nil
}

// rolloutChanged passes a rollout's progress to the live dashboard.
func (a *App) rolloutChanged(r rollout.Rollout) {
	if a.dashboard != nil {
		a.dashboard.RolloutChanged(r)
	}
}

// rolloutDevice authenticates a device at the device endpoint by its
// client certificate: a device certificate (not a bridge's) of a device
// that is not revoked.
func (a *App) rolloutDevice(r *http.Request) (string, error) {
	cert := r.TLS.VerifiedChains[0][0]
	device := cert.Subject.CommonName
	if slices.Contains(cert.Subject.OrganizationalUnit, registry.BridgeUnit) {
		return "", fmt.Errorf("%w: a bridge certificate; the device endpoint is for devices", rollout.ErrForbidden)
	}
	if err := protocol.ValidateDeviceID(device); err != nil {
		return "", fmt.Errorf("%w: certificate %q does not name a device", rollout.ErrForbidden, device)
	}
	if a.registry.IsRevoked(device, cert.SerialNumber) {
		return "", fmt.Errorf("%w: device %s or its certificate is revoked", rollout.ErrForbidden, device)
	}
	return device, nil
}

// mountRolloutDevices serves the device endpoint on the enrollment
// listener's mux.
func (a *App) mountRolloutDevices(mux *http.ServeMux) {
	mux.Handle(artifact.DevicePrefix, a.rolloutDevices)
}

// Rollouts is the rollout service (artifacts, rollouts, the scheduler).
func (a *App) Rollouts() *rollout.Service { return a.rollout }
