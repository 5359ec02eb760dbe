package main

import (
	"errors"
	"fmt"
	"net/url"

	"github.com/kogge-fleet/kogge/fleet-server/bridge/bridgeconfig"
	"github.com/kogge-fleet/kogge/internal/config"
)

// Config is kogge-bridge's configuration: flags over KOGGE_* environment
// over the JSON file (internal/config). The bridge's own settings are
// fleet-server/bridge/bridgeconfig's, which kogge-server's in-process
// bridges share.
type Config struct {
	// Server is the fleet server's bridge API (its enrollment listener).
	Server string `config:"server" usage:"fleet server's bridge API, e.g. https://fleet.example.org:8443"`
	// Office is the office this bridge serves.
	Office string `config:"office" usage:"the office this bridge serves (its certificate's CN is bridge.OFFICE)"`
	// TLS is the bridge's identity towards the fleet server.
	TLS TLSConfig `config:"tls"`
	// Keys are the office's private keys as KEY-ID=FILE.
	Keys []string `config:"keys" usage:"office private keys as KEY-ID=FILE (AGE-SECRET-KEY-1…, mode 0600), comma-separated"`
	// RetiredKeys are key ids the office retired: records sealed for them
	// become dead letters.
	RetiredKeys []string `config:"retired-keys" usage:"key ids the office has retired, comma-separated"`
	// StateDir holds the connector's state (the Open311 journal).
	StateDir string `config:"state-dir" usage:"directory for the connector's state (the open311 idempotency journal)"`
	// Connector is the procedure's kind.
	Connector string `config:"connector" usage:"connector: webhook, idpass, owi or open311"`

	Procedure bridgeconfig.Procedure `config:"procedure"`
	Bridge    bridgeconfig.Runner    `config:"bridge"`
	Metrics   MetricsConfig          `config:"metrics"`
	Log       LogConfig              `config:"log"`
}

// TLSConfig names the bridge's certificate files from the fleet CA.
type TLSConfig struct {
	Cert string `config:"cert" usage:"the bridge's client certificate (PEM) from the fleet CA"`
	Key  string `config:"key" usage:"the bridge's private key (PEM)"`
	CA   string `config:"ca" usage:"the fleet CA certificate (PEM) that signs the server's certificate"`
}

// MetricsConfig configures /metrics and /healthz.
type MetricsConfig struct {
	Listen string `config:"listen" usage:"address of /metrics and /healthz (plain HTTP); empty: off"`
}

// LogConfig configures logging (internal/config's shared settings).
type LogConfig = config.Log

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	b := bridgeconfig.Default()
	return Config{
		Procedure: b.Procedure,
		Bridge:    b.Bridge,
		Metrics:   MetricsConfig{Listen: "127.0.0.1:9465"},
		Log:       LogConfig{Level: "info", Format: "json"},
	}
}

// bridge is the bridge's own part of the configuration.
func (c *Config) bridge() bridgeconfig.Config {
	return bridgeconfig.Config{
		Office: c.Office, Keys: c.Keys, RetiredKeys: c.RetiredKeys, StateDir: c.StateDir,
		Connector: c.Connector, Procedure: c.Procedure, Bridge: c.Bridge,
	}
}

// Validate checks what can be checked without reading files.
func (c *Config) Validate() error {
	var errs []error
	need := func(v, name string) {
		if v == "" {
			errs = append(errs, fmt.Errorf("%s is not set", name))
		}
	}
	need(c.Server, "server")
	need(c.TLS.Cert, "tls.cert")
	need(c.TLS.Key, "tls.key")
	need(c.TLS.CA, "tls.ca")
	if u, err := url.Parse(c.Server); c.Server != "" && (err != nil || u.Scheme != "https" || u.Host == "") {
		errs = append(errs, fmt.Errorf("server %q: want https://host:port", c.Server))
	}
	b := c.bridge()
	return errors.Join(append(errs, b.Validate())...)
}
