package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kogge-fleet/kogge/agent/update"
	"github.com/kogge-fleet/kogge/internal/config"
	"github.com/kogge-fleet/kogge/protocol/artifact/artifacttest"
)

// The launcher step itself (agent/update.Launch) is tested in agent/update;
// these tests check the command's wiring of it.

// TestServeBootsFirst: the serve path boots the update slots before
// anything else (here it then stops: the terminal has no identity); with
// no keys it makes no update state.
func TestServeBootsFirst(t *testing.T) {
	t.Setenv(update.FactoryBinaryEnv, "")
	t.Setenv(update.BootedSlotEnv, "")
	for _, on := range []bool{true, false} {
		cfg := DefaultConfig()
		cfg.DataDir = t.TempDir()
		if on {
			cfg.Update.Keys = []string{artifacttest.KeyFile(t)}
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
// without it, keeps updates off; the section's keys are the documented ones
// and its validation runs with the config's.
func TestConfigFixtureUpdate(t *testing.T) {
	for _, f := range []string{"testdata/config-v1.json", "testdata/config-v2.json"} {
		cfg := DefaultConfig()
		if _, err := config.Load(&cfg, "kogge-kiosk", config.Source{Args: []string{"--config", f}}); err != nil {
			t.Fatal(err)
		}
		if err := cfg.Validate(); err != nil {
			t.Errorf("%s: %v", f, err)
		}
		want := update.DefaultConfig()
		if strings.HasSuffix(f, "v2.json") {
			want = update.Config{Keys: []string{"/etc/kogge/release-2026.pub", "/etc/kogge/release-2027.pub"},
				HealthWindow: 5 * time.Minute, MaxBoots: 2, RateLimit: 256 << 10}
		}
		if !reflect.DeepEqual(cfg.Update, want) {
			t.Errorf("%s: update %+v, want %+v", f, cfg.Update, want)
		}
	}
	defaults := DefaultConfig()
	usage := config.Usage(&defaults, "kogge-kiosk")
	for _, key := range []string{"update.keys", "update.dir", "update.health-window", "update.max-boots", "update.rate-limit"} {
		if !strings.Contains(usage, key) {
			t.Errorf("config key %s missing from the usage", key)
		}
	}
	defaults.Update.MaxBoots = 0
	if err := defaults.Validate(); err == nil || !strings.Contains(err.Error(), "update.max-boots") {
		t.Errorf("config with update.max-boots 0: %v", err)
	}
}
