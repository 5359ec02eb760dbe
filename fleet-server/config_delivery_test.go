package fleetserver

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kogge-fleet/kogge/internal/config"
)

func TestDeliveryConfigDefaults(t *testing.T) {
	c := DefaultConfig().Resolve()
	if c.Delivery.MaxAttempts != 10 || c.Retention.Biometric != 96*time.Hour || c.Retention.Undelivered != 14*24*time.Hour ||
		c.Retention.Metadata != 400*24*time.Hour || len(c.Retention.BiometricKinds) != 1 || c.Retention.BiometricKinds[0] != "kiosk.application" {
		t.Errorf("defaults: %+v %+v", c.Delivery, c.Retention)
	}
}

func TestDeliveryConfigFixture(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "config-delivery.json"))
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
	o, err := c.Retention.options()
	if err != nil {
		t.Fatal(err)
	}
	if c.Delivery.MaxAttempts != 6 || c.Delivery.RetryMax != 30*time.Minute || o.Biometric != 72*time.Hour ||
		o.Limits["roadwork.report"] != 168*time.Hour || o.Limits["enforcement.notice"] != 480*time.Hour || o.Every != 10*time.Minute {
		t.Errorf("fixture read as %+v, retention %+v", c.Delivery, o)
	}
}

func TestDeliveryConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(c *Config)
		want string
	}{
		{"attempts", func(c *Config) { c.Delivery.MaxAttempts = 0 }, "delivery.max-attempts"},
		{"retry", func(c *Config) { c.Delivery.RetryMax = time.Second }, "delivery.retry-base"},
		{"kind syntax", func(c *Config) { c.Retention.Kinds = []string{"roadwork.report:7d"} }, "KIND=DURATION"},
		{"kind above metadata", func(c *Config) { c.Retention.Kinds = []string{"roadwork.report=10000h"} }, "metadata retention"},
		{"biometric kind in kinds", func(c *Config) { c.Retention.Kinds = []string{"kiosk.application=1h"} }, "biometric"},
		{"no sweep", func(c *Config) { c.Retention.SweepEvery = 0 }, "sweep-every"},
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

// fakeBridge is an in-process bridge that runs until its context ends.
type fakeBridge struct {
	started chan struct{}
	stopped chan struct{}
}

func (f *fakeBridge) Run(ctx context.Context) error {
	close(f.started)
	<-ctx.Done()
	close(f.stopped)
	return nil
}

func TestAddBridge(t *testing.T) {
	app, err := New(testConfig(t), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if app.Queue() == nil || app.Audit() == nil || app.Retention() == nil {
		t.Fatal("delivery components not built")
	}
	b := &fakeBridge{started: make(chan struct{}), stopped: make(chan struct{})}
	if err := app.AddBridge("amt-a", b); err != nil {
		t.Fatal(err)
	}
	if err := app.AddBridge("amt-a", &fakeBridge{}); err == nil {
		t.Error("a second bridge for one office was added")
	}
	if err := app.AddBridge("amt/a", &fakeBridge{}); err == nil {
		t.Error("a bridge for an invalid office was added")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()
	select {
	case <-b.started:
	case <-time.After(30 * time.Second):
		t.Fatal("the bridge did not start")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the app did not stop")
	}
	select {
	case <-b.stopped:
	default:
		t.Error("Run returned before the bridge stopped")
	}
}
