package main

import (
	"context"
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

	"github.com/kogge-fleet/kogge/agent/enroll"
	"github.com/kogge-fleet/kogge/agent/store"
	"github.com/kogge-fleet/kogge/agent/update"
	"github.com/kogge-fleet/kogge/protocol/artifact"
)

// updateApp is the app name the handheld's artifacts must target.
const updateApp = "mobile-agent"

// factoryEnv carries the binary the device was set up with (the one the
// service manager starts) into a slot's binary executed from it: a switch
// back to the factory version executes it again.
const factoryEnv = "KOGGE_FACTORY_BINARY"

// bootedEnv carries the slot the launcher step chose (JSON) into the
// binary it executes, which then does not count the start a second time.
// A restart by the updater does not set it: that start is counted.
const bootedEnv = "KOGGE_BOOTED_SLOT"

// UpdateConfig configures software updates (agent/update).
type UpdateConfig struct {
	Keys         []string      `config:"keys" usage:"artifact signing public key files (PEM), comma-separated; empty turns software updates off"`
	Dir          string        `config:"dir" usage:"update directory with the A/B slots; empty: <data-dir>/update"`
	HealthWindow time.Duration `config:"health-window" usage:"how long a new version has to pass its health check before the handheld switches back"`
	MaxBoots     int           `config:"max-boots" usage:"starts of a new version without a passed health check before the handheld switches back (crash loop)"`
	RateLimit    int64         `config:"rate-limit" usage:"download limit in bytes a second; 0: no limit"`
}

// defaultUpdateConfig are the update defaults: agent/update's.
func defaultUpdateConfig() UpdateConfig {
	return UpdateConfig{HealthWindow: 2 * time.Minute, MaxBoots: 3}
}

// validate checks the update settings.
func (c UpdateConfig) validate() error {
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

// dir is the update directory.
func (c UpdateConfig) dir(dataDir string) string {
	if c.Dir != "" {
		return c.Dir
	}
	return filepath.Join(dataDir, "update")
}

// execSlot executes a binary in place of this process; it returns only
// when that fails. Tests replace it.
var execSlot = func(slot update.Slot, fallback string, env []string) error {
	return update.Exec{Fallback: fallback, Env: env}.Restart(context.Background(), slot)
}

// updates is the software-update part of one start; nil when updates are
// off.
type updates struct {
	cfg     UpdateConfig
	dir     string
	keys    artifact.Keyring
	slot    update.Slot
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

// bootUpdates is the launcher step of a start: it chooses the slot to run
// (update.Boot, which counts the starts of a version on trial and switches
// back after a crash loop) and, when the chosen slot's binary is not the
// running one, executes it in place of this process. It returns nil when
// no keys are configured: updates are off.
func bootUpdates(cfg UpdateConfig, dataDir string, log *slog.Logger) (*updates, error) {
	if len(cfg.Keys) == 0 {
		log.Info("software updates off: update.keys names no artifact signing key")
		return nil, nil
	}
	keys, err := loadKeys(cfg.Keys)
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, errors.New("update.keys: the files hold no key")
	}
	u := &updates{cfg: cfg, dir: cfg.dir(dataDir), keys: keys, log: log.With("component", "update")}
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
	} else if u.slot, err = update.Boot(u.dir, version(), update.BootOptions{MaxBoots: cfg.MaxBoots}); err != nil {
		return nil, err
	}
	u.factory = os.Getenv(factoryEnv)
	if u.factory == "" {
		u.factory = self // the service manager started this one
	}
	u.env = append(withoutEnv(withoutEnv(os.Environ(), factoryEnv), bootedEnv), factoryEnv+"="+u.factory)
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
		err = execSlot(u.slot, u.factory, append(slices.Clip(u.env), bootedEnv+"="+string(b)))
		return nil, fmt.Errorf("update: start slot %s (%s): %w", u.slot.Name, u.slot.Version, err)
	}
	if u.slot.Version != version() {
		u.log.Warn("the running binary's version differs from its slot's; the slot's is reported",
			"slot", u.slot.Name, "slot_version", u.slot.Version, "binary_version", version())
	}
	u.log.Info("software updates on", "slot", u.slot.Name, "version", u.slot.Version, "trial", u.slot.Trial,
		"boots", u.slot.Boots, "keys", keys.IDs())
	return u, nil
}

// bootedSlot is the slot the launcher step chose for this binary, if it
// executed it.
func bootedSlot(self string) (update.Slot, bool) {
	v := os.Getenv(bootedEnv)
	if v == "" {
		return update.Slot{}, false
	}
	var s update.Slot
	if err := json.Unmarshal([]byte(v), &s); err != nil || s.Binary == "" || !sameFile(self, s.Binary) {
		return update.Slot{}, false
	}
	return s, true
}

// software is the version the agent reports: the slot's when updates are
// on.
func (u *updates) software() string {
	if u == nil {
		return version()
	}
	return u.slot.Version
}

// newUpdater builds the updater for the agent over st (closed before a
// restart) with the app's self-test.
func (u *updates) newUpdater(ident *enroll.Identity, st *store.Store, selfTest func(context.Context) error) (*update.Updater, error) {
	return update.New(u.dir, update.Options{
		Server: ident.Server, TLS: ident.TLSConfig(), Keys: u.keys, App: updateApp,
		Restarter: update.Exec{Fallback: u.factory, Env: u.env, Before: st.Close},
		SelfTest:  selfTest, HealthWindow: u.cfg.HealthWindow, RateLimit: u.cfg.RateLimit,
		Logger: u.log,
	})
}

// lateSelfTest is a self-test whose app is built after the updater.
type lateSelfTest struct {
	fn atomic.Pointer[func(context.Context) error]
}

func (l *lateSelfTest) set(fn func(context.Context) error) { l.fn.Store(&fn) }

func (l *lateSelfTest) run(ctx context.Context) error {
	fn := l.fn.Load()
	if fn == nil {
		return errors.New("self-test: the handheld is not running yet")
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
