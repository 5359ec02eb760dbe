package fleetserver

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kogge-fleet/kogge/internal/config"
)

func TestRolloutConfigDefaults(t *testing.T) {
	c := DefaultConfig().Resolve().Rollout
	if c.Tick != 5*time.Second || c.KioskWindow != "19:00-07:00" || c.MaxArtifactSize != 1<<30 || len(c.Keys) != 0 ||
		c.DeviceTimeout != 2*time.Hour || c.CommandTTL != 7*24*time.Hour || c.DeviceBandwidth != 0 {
		t.Errorf("defaults: %+v", c)
	}
}

func TestRolloutConfigFixture(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "config-rollout.json"))
	if err != nil {
		t.Fatal(err)
	}
	c := DefaultConfig()
	if err := config.Decode(&c, b); err != nil {
		t.Fatal(err)
	}
	c = c.Resolve()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	r := c.Rollout
	if len(r.Keys) != 1 || r.Tick != 2*time.Second || r.DeviceBandwidth != 256<<10 || r.MaxArtifactSize != 256<<20 ||
		r.KioskWindow != "20:00-06:30" || r.TimeZone != "Europe/Berlin" || r.DeviceTimeout != 3*time.Hour || r.CommandTTL != 72*time.Hour {
		t.Errorf("fixture read as %+v", r)
	}
	keys, err := readKeys(r.Keys[0])
	if err != nil || len(keys) != 1 {
		t.Errorf("keys: %v %v", keys, err)
	}
}

func TestRolloutConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(c *Config)
		want string
	}{
		{"tick", func(c *Config) { c.Rollout.Tick = time.Millisecond }, "rollout.tick"},
		{"bandwidth", func(c *Config) { c.Rollout.DeviceBandwidth = -1 }, "rollout.device-bandwidth"},
		{"size", func(c *Config) { c.Rollout.MaxArtifactSize = 0 }, "max-artifact-size"},
		{"window", func(c *Config) { c.Rollout.KioskWindow = "abends" }, "rollout.kiosk-window"},
		{"time zone", func(c *Config) { c.Rollout.TimeZone = "Mars/Olympus" }, "rollout.time-zone"},
		{"missing key file", func(c *Config) { c.Rollout.Keys = []string{"testdata/no-such.pub"} }, "rollout.keys"},
		{"not a key", func(c *Config) { c.Rollout.Keys = []string{"testdata/config-rollout.json"} }, "PUBLIC KEY"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig().Resolve()
			tt.edit(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate = %v, want a mention of %q", err, tt.want)
			}
		})
	}
}
