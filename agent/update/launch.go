//go:build linux || darwin || freebsd || netbsd || openbsd

package update

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/kogge-fleet/kogge/protocol/artifact"
)

// FactoryBinaryEnv carries the binary the device was set up with (the one
// the service manager starts) into a slot's binary executed from it: a
// switch back to the factory version executes it again.
const FactoryBinaryEnv = "KOGGE_FACTORY_BINARY"

// BootedSlotEnv carries the slot the launcher step chose (JSON) into the
// binary it executes, which then does not count the start a second time.
// A restart by the updater does not set it: that start is counted.
const BootedSlotEnv = "KOGGE_BOOTED_SLOT"

// Config is the "update" section of an app's configuration
// (internal/config tags); its error messages name the keys under
// "update.".
type Config struct {
	Keys         []string      `config:"keys" usage:"artifact signing public key files (PEM), comma-separated; empty turns software updates off"`
	Dir          string        `config:"dir" usage:"update directory with the A/B slots; empty: <data-dir>/update"`
	HealthWindow time.Duration `config:"health-window" usage:"how long a new version has to pass its health check before the device switches back"`
	MaxBoots     int           `config:"max-boots" usage:"starts of a new version without a passed health check before the device switches back (crash loop)"`
	RateLimit    int64         `config:"rate-limit" usage:"download limit in bytes a second; 0: no limit"`
}

// DefaultConfig is the update configuration of an app that has set none:
// updates off (no keys), the updater's health window, three boots.
func DefaultConfig() Config {
	return Config{HealthWindow: 2 * time.Minute, MaxBoots: 3}
}

// Validate checks the update settings.
func (c Config) Validate() error {
	var errs []error
	if c.HealthWindow <= 0 {
		errs = append(errs, fmt.Errorf("update.health-window %v: must be positive", c.HealthWindow))
	}
	if c.MaxBoots < 1 {
		errs = append(errs, fmt.Errorf("update.max-boots %d: at least 1", c.MaxBoots))
	}
	if c.RateLimit < 0 {
		errs = append(errs, fmt.Errorf("update.rate-limit %d: must not be negative", c.RateLimit))
	}
	return errors.Join(errs...)
}

// Directory is the update directory: Dir, or "update" in the app's data
// directory when Dir is empty.
func (c Config) Directory(dataDir string) string {
	if c.Dir != "" {
		return c.Dir
	}
	return filepath.Join(dataDir, "update")
}

// execSlot executes a binary in place of this process; it returns only
// when that fails. Tests replace it.
var execSlot = func(slot Slot, fallback string, env []string) error {
	return Exec{Fallback: fallback, Env: env}.Restart(context.Background(), slot)
}

// Launched is the software-update part of one start of an app, after its
// launcher step ([Launch]) chose the slot this process runs.
type Launched struct {
	cfg     Config
	app     string
	dir     string
	keys    artifact.Keyring
	slot    Slot
	factory string   // the binary of a slot without one
	env     []string // the environment of a restart
	log     *slog.Logger
}

// loadKeys reads the trusted artifact signing keys.
func loadKeys(files []string) (artifact.Keyring, error) {
	keys := artifact.Keyring{}
	for _, f := range files {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("update.keys: %w", err)
		}
		pubs, err := artifact.ParsePublicKeys(b)
		if err != nil {
			return nil, fmt.Errorf("update.keys %s: %w", f, err)
		}
		for _, p := range pubs {
			keys.Add(p)
		}
	}
	return keys, nil
}

// Launch is the launcher step of a start of app (the name its artifacts
// must carry) running version, with its data in dataDir: it chooses the
// slot to run ([Boot], which counts the starts of a version on trial and
// switches back after a crash loop) and, when the chosen slot's binary is
// not the running one, executes it in place of this process; then it
// returns only the error of that. It returns nil and no error when cfg
// names no keys: updates are off.
func Launch(cfg Config, app, version, dataDir string, log *slog.Logger) (*Launched, error) {
	if len(cfg.Keys) == 0 {
		log.Info("software updates off: update.keys names no artifact signing key")
		return nil, nil
	}
	keys, err := loadKeys(cfg.Keys)
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, errors.New("update.keys: the files hold no key; name PEM public key files or leave update.keys empty")
	}
	u := &Launched{cfg: cfg, app: app, dir: cfg.Directory(dataDir), keys: keys, log: log.With("component", "update")}
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("update: the running binary is unknown: %w", err)
	}
	if s, err := filepath.EvalSymlinks(self); err == nil {
		self = s
	}
	booted, ok := bootedSlot(self)
	if ok {
		u.slot = booted
	} else if u.slot, err = Boot(u.dir, version, BootOptions{MaxBoots: cfg.MaxBoots}); err != nil {
		return nil, err
	}
	u.factory = os.Getenv(FactoryBinaryEnv)
	if u.factory == "" {
		u.factory = self // the service manager started this one
	}
	u.env = append(withoutEnv(withoutEnv(os.Environ(), FactoryBinaryEnv), BootedSlotEnv), FactoryBinaryEnv+"="+u.factory)
	target := u.factory
	if _, err := os.Stat(u.slot.Binary); err == nil {
		target = u.slot.Binary
	}
	if !sameFile(self, target) {
		u.log.Info("starting the active slot's version", "slot", u.slot.Name, "version", u.slot.Version, "binary", target)
		b, err := json.Marshal(u.slot)
		if err != nil {
			return nil, err
		}
		err = execSlot(u.slot, u.factory, append(slices.Clip(u.env), BootedSlotEnv+"="+string(b)))
		return nil, fmt.Errorf("update: start slot %s (%s): %w", u.slot.Name, u.slot.Version, err)
	}
	if u.slot.Version != version {
		u.log.Warn("the running binary's version differs from its slot's; the slot's is reported",
			"slot", u.slot.Name, "slot_version", u.slot.Version, "binary_version", version)
	}
	u.log.Info("software updates on", "slot", u.slot.Name, "version", u.slot.Version, "trial", u.slot.Trial,
		"boots", u.slot.Boots, "keys", keys.IDs())
	return u, nil
}

// bootedSlot is the slot the launcher step chose for this binary, if it
// executed it.
func bootedSlot(self string) (Slot, bool) {
	return parseBootedSlot(self, os.Getenv(BootedSlotEnv))
}

// parseBootedSlot decodes v, the value of BootedSlotEnv; a slot whose
// binary is not self is not this start's.
func parseBootedSlot(self, v string) (Slot, bool) {
	if v == "" {
		return Slot{}, false
	}
	var s Slot
	if err := json.Unmarshal([]byte(v), &s); err != nil || s.Binary == "" || !sameFile(self, s.Binary) {
		return Slot{}, false
	}
	return s, true
}

// Software is the version the app reports: its slot's, or running when
// updates are off (l is nil).
func (l *Launched) Software(running string) string {
	if l == nil {
		return running
	}
	return l.slot.Version
}

// Slot is the slot this process runs.
func (l *Launched) Slot() Slot { return l.slot }

// NewUpdater builds the app's updater (agent.Options.Updater): it fetches
// from the fleet server at server (HTTPS base URL) with tlsConfig (the
// device certificate and fleet CA), runs before (closing the store; may be
// nil) ahead of a restart and checks the app's health with selfTest.
func (l *Launched) NewUpdater(server string, tlsConfig *tls.Config, before func() error,
	selfTest func(context.Context) error) (*Updater, error) {
	return New(l.dir, Options{
		Server: server, TLS: tlsConfig, Keys: l.keys, App: l.app,
		Restarter: Exec{Fallback: l.factory, Env: l.env, Before: before},
		SelfTest:  selfTest, HealthWindow: l.cfg.HealthWindow, RateLimit: l.cfg.RateLimit,
		Logger: l.log,
	})
}

// LateSelfTest is the self-test of an app built after its updater: it
// fails until Set gives it the app's. The zero value is ready to use.
type LateSelfTest struct {
	fn atomic.Pointer[func(context.Context) error]
}

// Set makes fn the self-test.
func (l *LateSelfTest) Set(fn func(context.Context) error) { l.fn.Store(&fn) }

// Run runs the self-test given to Set (Options.SelfTest).
func (l *LateSelfTest) Run(ctx context.Context) error {
	fn := l.fn.Load()
	if fn == nil {
		return errors.New("self-test: the device is not running yet")
	}
	return (*fn)(ctx)
}

// sameFile reports whether a and b are the same file.
func sameFile(a, b string) bool {
	fa, err := os.Stat(a)
	if err != nil {
		return false
	}
	fb, err := os.Stat(b)
	if err != nil {
		return false
	}
	return os.SameFile(fa, fb)
}

// withoutEnv is env without the variable name.
func withoutEnv(env []string, name string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	return out
}
