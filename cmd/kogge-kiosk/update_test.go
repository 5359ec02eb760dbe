package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kogge-fleet/kogge/agent/update"
	"github.com/kogge-fleet/kogge/internal/config"
	"github.com/kogge-fleet/kogge/protocol/artifact"
)

// keyFile writes a fresh artifact signing public key.
func keyFile(t *testing.T) string {
	t.Helper()
	key, err := artifact.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	b, err := artifact.MarshalPublicKey(key.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "release.pub")
	if err := os.WriteFile(f, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// noExec fails the test when the launcher step executes a binary.
func noExec(t *testing.T) {
	t.Helper()
	old := execSlot
	execSlot = func(slot update.Slot, _ string, _ []string) error {
		t.Errorf("executed slot %s (%s)", slot.Name, slot.Binary)
		return errors.New("not in a test")
	}
	t.Cleanup(func() { execSlot = old })
}

func TestUpdatesOffWithoutKeys(t *testing.T) {
	noExec(t)
	var logs bytes.Buffer
	dir := t.TempDir()
	u, err := bootUpdates(defaultUpdateConfig(), dir, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil || u != nil {
		t.Fatalf("bootUpdates without keys: %v, %v; want updates off", u, err)
	}
	if !strings.Contains(logs.String(), "software updates off") {
		t.Errorf("no log line says updates are off:\n%s", logs.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "update")); !os.IsNotExist(err) {
		t.Errorf("update directory made with updates off: %v", err)
	}
	if u.software() != version() {
		t.Errorf("software %q, want %q", u.software(), version())
	}
}

func TestBootWithKeys(t *testing.T) {
	noExec(t)
	t.Setenv(factoryEnv, "")
	t.Setenv(bootedEnv, "")
	dir := t.TempDir()
	cfg := defaultUpdateConfig()
	cfg.Keys = []string{keyFile(t), " " + keyFile(t)}
	u, err := bootUpdates(cfg, dir, slog.New(slog.DiscardHandler))
	if err != nil || u == nil {
		t.Fatalf("bootUpdates: %v, %v", u, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "update", "state.json")); err != nil {
		t.Errorf("no update state after Boot: %v", err)
	}
	if u.slot.Name != update.SlotA || u.software() != version() || len(u.keys) != 2 {
		t.Errorf("slot %+v, software %q, %d keys; want slot a running %q with 2 keys", u.slot, u.software(), len(u.keys), version())
	}
	self, _ := os.Executable()
	if !hasEnv(u.env, factoryEnv+"=") || !sameFile(u.factory, self) {
		t.Errorf("factory binary %q, env without it; want the running one", u.factory)
	}

	cfg.Dir = filepath.Join(t.TempDir(), "elsewhere")
	if _, err := bootUpdates(cfg, dir, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(cfg.Dir, "state.json")); err != nil {
		t.Errorf("update.dir not used: %v", err)
	}
}

func hasEnv(env []string, prefix string) bool {
	for _, kv := range env {
		if strings.HasPrefix(kv, prefix) {
			return true
		}
	}
	return false
}

func TestBadKeysStopTheStart(t *testing.T) {
	noExec(t)
	bad := filepath.Join(t.TempDir(), "bad.pub")
	if err := os.WriteFile(bad, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, keys := range [][]string{{bad}, {filepath.Join(t.TempDir(), "missing.pub")}} {
		cfg := defaultUpdateConfig()
		cfg.Keys = keys
		if u, err := bootUpdates(cfg, t.TempDir(), slog.New(slog.DiscardHandler)); err == nil || u != nil {
			t.Errorf("keys %q: %v, %v; want an error", keys, u, err)
		}
	}
}

// trialState puts the device on trial of 1.1.0 in slot b, whose binary is
// bin (a symlink to it when link is set).
func trialState(t *testing.T, dir, bin string, link bool) {
	t.Helper()
	st := `{"active":"b","slots":{"a":{"version":"1.0.0"},"b":{"version":"1.1.0"}},` +
		`"trial":{"rollout":"00000000-0000-0000-0000-000000000001","from":"a","from_version":"1.0.0","version":"1.1.0","boots":0,"switched":"2026-11-24T09:00:00Z"},"seq":1}`
	if err := os.MkdirAll(filepath.Join(dir, "slots", "b"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "state.json"), []byte(st), 0o600); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "slots", "b", "binary")
	if link {
		if err := os.Symlink(bin, dst); err != nil {
			t.Fatal(err)
		}
	} else if err := os.WriteFile(dst, []byte(bin), 0o700); err != nil {
		t.Fatal(err)
	}
}

func readBoots(t *testing.T, dir string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Trial *struct{ Boots int } `json:"trial"`
	}
	if err := json.Unmarshal(b, &st); err != nil || st.Trial == nil {
		t.Fatalf("state %s: %v", b, err)
	}
	return st.Trial.Boots
}

func TestLauncherExecutesTheActiveSlot(t *testing.T) {
	t.Setenv(factoryEnv, "")
	t.Setenv(bootedEnv, "")
	dir := t.TempDir()
	trialState(t, dir, "new version", false)
	var got update.Slot
	var env []string
	old := execSlot
	execSlot = func(slot update.Slot, fallback string, e []string) error {
		got, env = slot, e
		return errors.New("exec refused by the test")
	}
	t.Cleanup(func() { execSlot = old })
	cfg := defaultUpdateConfig()
	cfg.Keys, cfg.Dir = []string{keyFile(t)}, dir
	u, err := bootUpdates(cfg, t.TempDir(), slog.New(slog.DiscardHandler))
	if err == nil || u != nil || !strings.Contains(err.Error(), "exec refused") {
		t.Fatalf("bootUpdates: %v, %v; want the failed execution", u, err)
	}
	if got.Name != update.SlotB || got.Version != "1.1.0" || !got.Trial || got.Boots != 1 {
		t.Errorf("executed %+v; want slot b on trial, first start", got)
	}
	if !hasEnv(env, bootedEnv+"=") || !hasEnv(env, factoryEnv+"=") {
		t.Errorf("environment of the slot's binary lacks %s or %s", bootedEnv, factoryEnv)
	}
	if n := readBoots(t, dir); n != 1 {
		t.Errorf("trial boots %d, want 1", n)
	}
}

func TestExecutedSlotDoesNotCountTheStartAgain(t *testing.T) {
	noExec(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	trialState(t, dir, self, true)
	slot := update.Slot{Name: update.SlotB, Version: "1.1.0", Dir: filepath.Join(dir, "slots", "b"),
		Binary: filepath.Join(dir, "slots", "b", "binary"), Trial: true, Boots: 1}
	b, _ := json.Marshal(slot)
	t.Setenv(bootedEnv, string(b))
	t.Setenv(factoryEnv, "/usr/bin/kogge-kiosk")
	cfg := defaultUpdateConfig()
	cfg.Keys, cfg.Dir = []string{keyFile(t)}, dir
	u, err := bootUpdates(cfg, t.TempDir(), slog.New(slog.DiscardHandler))
	if err != nil || u == nil {
		t.Fatalf("bootUpdates: %v, %v", u, err)
	}
	if u.software() != "1.1.0" || u.factory != "/usr/bin/kogge-kiosk" || hasEnv(u.env, bootedEnv+"=") {
		t.Errorf("software %q, factory %q, env %v", u.software(), u.factory, u.env)
	}
	if n := readBoots(t, dir); n != 0 {
		t.Errorf("trial boots %d, want 0: the launcher counted this start", n)
	}
}

// TestServeBootsFirst: the serve path boots the update slots before
// anything else (here it then stops: the terminal has no identity).
func TestServeBootsFirst(t *testing.T) {
	noExec(t)
	t.Setenv(factoryEnv, "")
	t.Setenv(bootedEnv, "")
	for _, on := range []bool{true, false} {
		cfg := DefaultConfig()
		cfg.DataDir = t.TempDir()
		if on {
			cfg.Update.Keys = []string{keyFile(t)}
		}
		err := serve(t.Context(), cfg, slog.New(slog.DiscardHandler))
		if err == nil || !strings.Contains(err.Error(), "no identity") {
			t.Fatalf("serve without an identity: %v", err)
		}
		_, serr := os.Stat(filepath.Join(cfg.DataDir, "update", "state.json"))
		if on && serr != nil {
			t.Errorf("updates on: no update state: %v", serr)
		}
		if !on && !os.IsNotExist(serr) {
			t.Errorf("updates off: update state made (%v)", serr)
		}
	}
}

// TestConfigFixtureUpdate: the update section of config-v2 is read; v1,
// without it, keeps updates off.
func TestConfigFixtureUpdate(t *testing.T) {
	for _, f := range []string{"testdata/config-v1.json", "testdata/config-v2.json"} {
		cfg := DefaultConfig()
		if _, err := config.Load(&cfg, "kogge-kiosk", config.Source{Args: []string{"--config", f}}); err != nil {
			t.Fatal(err)
		}
		if err := cfg.Validate(); err != nil {
			t.Errorf("%s: %v", f, err)
		}
		want := defaultUpdateConfig()
		if strings.HasSuffix(f, "v2.json") {
			want = UpdateConfig{Keys: []string{"/etc/kogge/release-2026.pub", "/etc/kogge/release-2027.pub"},
				HealthWindow: 5 * time.Minute, MaxBoots: 2, RateLimit: 256 << 10}
		}
		if !reflect.DeepEqual(cfg.Update, want) {
			t.Errorf("%s: update %+v, want %+v", f, cfg.Update, want)
		}
		if got := cfg.Update.dir(cfg.DataDir); got != filepath.Join(cfg.DataDir, "update") {
			t.Errorf("%s: update directory %q", f, got)
		}
	}
	bad := UpdateConfig{MaxBoots: 0, HealthWindow: -time.Second, RateLimit: -1}
	if err := bad.validate(); err == nil || !strings.Contains(err.Error(), "update.max-boots") ||
		!strings.Contains(err.Error(), "update.health-window") || !strings.Contains(err.Error(), "update.rate-limit") {
		t.Errorf("bad update settings: %v", err)
	}
}
