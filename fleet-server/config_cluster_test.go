package fleetserver

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kogge-fleet/kogge/internal/config"
)

// TestClusterConfigFixture reads the configuration of a replica with an
// external broker.
func TestClusterConfigFixture(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "config-cluster.json"))
	if err != nil {
		t.Fatal(err)
	}
	c := DefaultConfig()
	if err := config.Decode(&c, b); err != nil {
		t.Fatalf("cluster fixture: %v", err)
	}
	c = c.Resolve()
	if err := c.Validate(); err != nil {
		t.Fatalf("cluster fixture invalid: %v", err)
	}
	x := c.Broker.External
	if c.Replica != "fleet-a" || c.Broker.Mode != BrokerExternal || x.URL != "mqtts://broker.internal:8883" ||
		x.Split != SplitPartitions || x.CertLifetime != 168*time.Hour || x.MosquittoCheck != 10*time.Second {
		t.Errorf("cluster fixture read as %+v, replica %q", c.Broker, c.Replica)
	}
	// Devices enroll to the external broker unless told otherwise.
	if c.Broker.PublicAddress != "mqtts://broker.internal:8883" {
		t.Errorf("public address %q, want the external broker's", c.Broker.PublicAddress)
	}
}

func TestClusterConfigDefaults(t *testing.T) {
	c := DefaultConfig()
	if c.Broker.Mode != BrokerEmbedded || c.Broker.External.Split != SplitPartitions || c.Replica == "" {
		t.Errorf("defaults: mode %q split %q replica %q", c.Broker.Mode, c.Broker.External.Split, c.Replica)
	}
	if err := c.Resolve().Validate(); err != nil {
		t.Errorf("defaults invalid: %v", err)
	}
	for host, want := range map[string]string{"Fleet-A.example.org": "fleet-a.example.org", "-x y": "xxxy", "kogge_1": "kogge_1"} {
		if got := replicaFrom(host); got != want {
			t.Errorf("replica from host %q = %q, want %q", host, got, want)
		}
	}
	if got := replicaFrom(strings.Repeat("a", 100)); len(got) != 63 {
		t.Errorf("replica from a long host name has %d characters", len(got))
	}
}

func TestClusterConfigValidate(t *testing.T) {
	ext := func(f func(*Config)) Config {
		c := DefaultConfig()
		c.DataDir = t.TempDir()
		c.Broker.Mode = BrokerExternal
		c.Broker.External.URL = "mqtts://broker:8883"
		f(&c)
		return c.Resolve()
	}
	for _, tc := range []struct {
		c    Config
		want string
	}{
		{ext(func(c *Config) { c.Broker.Mode = "cluster" }), "broker.mode"},
		{ext(func(c *Config) { c.Broker.External.URL = "" }), "broker.external.url is empty"},
		{ext(func(c *Config) { c.Broker.External.URL = "mqtt://broker:1883" }), "mqtts://HOST:PORT"},
		{ext(func(c *Config) { c.Broker.External.URL = "mqtts://broker" }), "mqtts://HOST:PORT"},
		{ext(func(c *Config) { c.Broker.External.Split = "random" }), "broker.external.split"},
		{ext(func(c *Config) { c.Broker.External.CertLifetime = time.Minute }), "cert-lifetime"},
		{ext(func(c *Config) { c.Broker.External.CAFile = "/nonexistent/ca.pem" }), "ca-file"},
		{ext(func(c *Config) { c.Broker.External.MosquittoDir = t.TempDir() }), "koggectl broker-config mosquitto"},
		{ext(func(c *Config) { c.Replica = "Fleet A" }), "replica"},
		{ext(func(c *Config) { c.Replica = "" }), "replica"},
	} {
		err := tc.c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate = %v, want an error about %q", err, tc.want)
		}
	}
	if err := ext(func(*Config) {}).Validate(); err != nil {
		t.Errorf("a valid external configuration: %v", err)
	}
}
