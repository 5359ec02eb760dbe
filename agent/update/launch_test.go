//go:build linux || darwin || freebsd || netbsd || openbsd

package update

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kogge-fleet/kogge/protocol/artifact/artifacttest"
)

// noExec fails the test when the launcher step executes a binary.
func noExec(t *testing.T) {
	t.Helper()
	old := execSlot
	execSlot = func(slot Slot, _ string, _ []string) error {
		t.Errorf("executed slot %s (%s)", slot.Name, slot.Binary)
		return errors.New("not in a test")
	}
	t.Cleanup(func() { execSlot = old })
}

func hasEnv(env []string, prefix string) bool {
	return slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, prefix) })
}

func TestLaunchOffWithoutKeys(t *testing.T) {
	noExec(t)
	var logs bytes.Buffer
	dir := t.TempDir()
	u, err := Launch(DefaultConfig(), "kiosk", "1.0.0", dir, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil || u != nil {
		t.Fatalf("Launch without keys: %v, %v; want updates off", u, err)
	}
	if !strings.Contains(logs.String(), "software updates off") {
		t.Errorf("no log line says updates are off:\n%s", logs.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "update")); !os.IsNotExist(err) {
		t.Errorf("update directory made with updates off: %v", err)
	}
	if got := u.Software("1.0.0"); got != "1.0.0" {
		t.Errorf("software %q with updates off, want the running version", got)
	}
}

func TestLaunchWithKeys(t *testing.T) {
	noExec(t)
	t.Setenv(FactoryBinaryEnv, "")
	t.Setenv(BootedSlotEnv, "")
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.Keys = []string{artifacttest.KeyFile(t), " " + artifacttest.KeyFile(t), ""}
	u, err := Launch(cfg, "kiosk", "1.0.0", dir, slog.New(slog.DiscardHandler))
	if err != nil || u == nil {
		t.Fatalf("Launch: %v, %v", u, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "update", "state.json")); err != nil {
		t.Errorf("no update state after Boot: %v", err)
	}
	if u.Slot().Name != SlotA || u.Software("other") != "1.0.0" || len(u.keys) != 2 {
		t.Errorf("slot %+v, software %q, %d keys; want slot a running 1.0.0 with 2 keys", u.Slot(), u.Software("other"), len(u.keys))
	}
	self, _ := os.Executable()
	if !hasEnv(u.env, FactoryBinaryEnv+"=") || !sameFile(u.factory, self) {
		t.Errorf("factory binary %q, env without it; want the running one", u.factory)
	}

	cfg.Dir = filepath.Join(t.TempDir(), "elsewhere")
	if _, err := Launch(cfg, "kiosk", "1.0.0", dir, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(cfg.Dir, "state.json")); err != nil {
		t.Errorf("update.dir not used: %v", err)
	}
}

func TestLaunchBadKeysStopTheStart(t *testing.T) {
	noExec(t)
	tmp := t.TempDir()
	bad := filepath.Join(tmp, "bad.pub")
	if err := os.WriteFile(bad, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, keys := range [][]string{{bad}, {filepath.Join(tmp, "missing.pub")}, {" ", ""}} {
		cfg := DefaultConfig()
		cfg.Keys = keys
		u, err := Launch(cfg, "kiosk", "1.0.0", t.TempDir(), slog.New(slog.DiscardHandler))
		if err == nil || u != nil || !strings.Contains(err.Error(), "update.keys") {
			t.Errorf("keys %q: %v, %v; want an error naming update.keys", keys, u, err)
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
	t.Setenv(FactoryBinaryEnv, "")
	t.Setenv(BootedSlotEnv, "")
	dir := t.TempDir()
	trialState(t, dir, "new version", false)
	var got Slot
	var fallback string
	var env []string
	old := execSlot
	execSlot = func(slot Slot, fb string, e []string) error {
		got, fallback, env = slot, fb, e
		return errors.New("exec refused by the test")
	}
	t.Cleanup(func() { execSlot = old })
	cfg := DefaultConfig()
	cfg.Keys, cfg.Dir = []string{artifacttest.KeyFile(t)}, dir
	u, err := Launch(cfg, "kiosk", "1.0.0", t.TempDir(), slog.New(slog.DiscardHandler))
	if err == nil || u != nil || !strings.Contains(err.Error(), "exec refused") {
		t.Fatalf("Launch: %v, %v; want the failed execution", u, err)
	}
	if got.Name != SlotB || got.Version != "1.1.0" || !got.Trial || got.Boots != 1 {
		t.Errorf("executed %+v; want slot b on trial, first start", got)
	}
	self, _ := os.Executable()
	if !sameFile(fallback, self) {
		t.Errorf("fallback binary %q, want the running one", fallback)
	}
	if !hasEnv(env, BootedSlotEnv+"=") || !hasEnv(env, FactoryBinaryEnv+"=") {
		t.Errorf("environment of the slot's binary lacks %s or %s", BootedSlotEnv, FactoryBinaryEnv)
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
	slot := Slot{Name: SlotB, Version: "1.1.0", Dir: filepath.Join(dir, "slots", "b"),
		Binary: filepath.Join(dir, "slots", "b", "binary"), Trial: true, Boots: 1}
	b, _ := json.Marshal(slot)
	t.Setenv(BootedSlotEnv, string(b))
	t.Setenv(FactoryBinaryEnv, "/usr/bin/kogge-kiosk")
	cfg := DefaultConfig()
	cfg.Keys, cfg.Dir = []string{artifacttest.KeyFile(t)}, dir
	u, err := Launch(cfg, "kiosk", "1.0.0", t.TempDir(), slog.New(slog.DiscardHandler))
	if err != nil || u == nil {
		t.Fatalf("Launch: %v, %v", u, err)
	}
	if u.Software("1.0.0") != "1.1.0" || u.factory != "/usr/bin/kogge-kiosk" || hasEnv(u.env, BootedSlotEnv+"=") {
		t.Errorf("software %q, factory %q, env %v", u.Software("1.0.0"), u.factory, u.env)
	}
	if n := readBoots(t, dir); n != 0 {
		t.Errorf("trial boots %d, want 0: the launcher counted this start", n)
	}
}

func TestBootedSlotOfAnotherBinaryIsIgnored(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(t.TempDir(), "other")
	if err := os.WriteFile(other, []byte("x"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"", "{", `{"name":"b"}`, `{"name":"b","binary":"` + other + `"}`} {
		t.Setenv(BootedSlotEnv, v)
		if s, ok := bootedSlot(self); ok {
			t.Errorf("%s=%q: booted slot %+v, want none", BootedSlotEnv, v, s)
		}
	}
}

func TestLaunchedNewUpdater(t *testing.T) {
	noExec(t)
	t.Setenv(FactoryBinaryEnv, "")
	t.Setenv(BootedSlotEnv, "")
	cfg := DefaultConfig()
	cfg.Keys, cfg.HealthWindow, cfg.RateLimit = []string{artifacttest.KeyFile(t)}, time.Minute, 1024
	l, err := Launch(cfg, "mobile-agent", "1.0.0", t.TempDir(), slog.New(slog.DiscardHandler))
	if err != nil || l == nil {
		t.Fatalf("Launch: %v, %v", l, err)
	}
	closed := false
	u, err := l.NewUpdater("https://127.0.0.1:1", &tls.Config{}, func() error { closed = true; return nil }, nil)
	if err != nil {
		t.Fatal(err)
	}
	o := u.opts
	if o.App != "mobile-agent" || o.Server != "https://127.0.0.1:1" || o.HealthWindow != time.Minute ||
		o.RateLimit != 1024 || len(o.Keys) != 1 || u.Version() != "1.0.0" {
		t.Errorf("updater options %+v, version %q", o, u.Version())
	}
	ex, ok := o.Restarter.(Exec)
	if !ok || ex.Fallback != l.factory || !hasEnv(ex.Env, FactoryBinaryEnv+"=") || ex.Before == nil {
		t.Fatalf("restarter %#v", o.Restarter)
	}
	if err := ex.Before(); err != nil || !closed {
		t.Errorf("restarter's Before did not run the given function: %v", err)
	}
	if _, err := l.NewUpdater("", nil, nil, nil); err == nil {
		t.Error("NewUpdater without a server: no error")
	}
}

func TestLateSelfTest(t *testing.T) {
	var l LateSelfTest
	if err := l.Run(t.Context()); err == nil || !strings.Contains(err.Error(), "not running yet") {
		t.Errorf("self-test before Set: %v", err)
	}
	want := errors.New("printer offline")
	l.Set(func(context.Context) error { return want })
	if err := l.Run(t.Context()); !errors.Is(err, want) {
		t.Errorf("self-test after Set: %v, want %v", err, want)
	}
}

func TestConfigValidateAndDirectory(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Errorf("default config: %v", err)
	}
	bad := Config{MaxBoots: 0, HealthWindow: -time.Second, RateLimit: -1}
	err := bad.Validate()
	for _, key := range []string{"update.max-boots", "update.health-window", "update.rate-limit"} {
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("bad update settings: %v; want it to name %s", err, key)
		}
	}
	if got := (Config{}).Directory("/var/lib/kogge"); got != filepath.Join("/var/lib/kogge", "update") {
		t.Errorf("default directory %q", got)
	}
	if got := (Config{Dir: "/srv/slots"}).Directory("/var/lib/kogge"); got != "/srv/slots" {
		t.Errorf("directory %q, want update.dir", got)
	}
}

func TestWithoutEnv(t *testing.T) {
	got := withoutEnv([]string{"A=1", "AB=2", "A=3", "B=A=1"}, "A")
	if want := []string{"AB=2", "B=A=1"}; !slices.Equal(got, want) {
		t.Errorf("withoutEnv: %q, want %q", got, want)
	}
}

// FuzzBootedSlot: the slot in the environment is outside input; garbage
// is ignored (the start is then counted), never a panic.
func FuzzBootedSlot(f *testing.F) {
	f.Add(`{"name":"b","version":"1.1.0","binary":"/nonexistent/binary","trial":true,"boots":1}`)
	f.Add(`{`)
	f.Add(`null`)
	f.Add(`{"binary":""}`)
	self, err := os.Executable()
	if err != nil {
		f.Fatal(err)
	}
	own, _ := json.Marshal(Slot{Name: SlotB, Version: "1.1.0", Binary: self})
	f.Add(string(own))
	f.Fuzz(func(t *testing.T, v string) {
		s, ok := parseBootedSlot(self, v)
		if ok && !sameFile(self, s.Binary) {
			t.Errorf("booted slot %+v accepted for another binary", s)
		}
		if !ok && s != (Slot{}) {
			t.Errorf("rejected slot returned as %+v", s)
		}
	})
}
