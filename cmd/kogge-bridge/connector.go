package main

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"strings"

	"github.com/kogge-fleet/kogge/fleet-server/bridge"
	"github.com/kogge-fleet/kogge/fleet-server/connectors/dropdir"
	"github.com/kogge-fleet/kogge/fleet-server/connectors/idpass"
	"github.com/kogge-fleet/kogge/fleet-server/connectors/open311"
	"github.com/kogge-fleet/kogge/fleet-server/connectors/owi"
	"github.com/kogge-fleet/kogge/fleet-server/connectors/webhook"
)

// connector builds the configured connector and the function that closes
// it.
func connector(cfg Config, log *slog.Logger) (bridge.Connector, func(), error) {
	p := cfg.Procedure
	tc, err := procedureTLS(p)
	if err != nil {
		return nil, nil, err
	}
	client := func(needSecret bool) (webhook.ClientConfig, error) {
		cc := webhook.ClientConfig{URL: p.URL, TLS: tc, Timeout: p.Timeout, Attempts: p.Attempts, RequireReference: true}
		if p.SecretFile != "" {
			s, err := readSecret(p.SecretFile, "procedure secret")
			if err != nil {
				return cc, err
			}
			cc.Secret = s
		} else if needSecret {
			return cc, fmt.Errorf("procedure.secret-file is not set")
		}
		return cc, nil
	}
	drop := dropdir.Config{Dir: p.Dir, ReceiptTimeout: p.ReceiptTimeout}
	switch cfg.Connector {
	case kindWebhook:
		cc, err := client(true)
		if err != nil {
			return nil, nil, err
		}
		c, err := webhook.New(webhook.Config{ClientConfig: cc})
		if err != nil {
			return nil, nil, err
		}
		return c, c.Close, nil
	case kindIDPass:
		ic := idpass.Config{Format: p.Format, Transport: p.Transport, Drop: drop, EmbedAll: p.EmbedAll}
		if p.Transport == idpass.TransportHTTPS {
			if ic.HTTPS, err = client(false); err != nil {
				return nil, nil, err
			}
		}
		c, err := idpass.New(ic)
		if err != nil {
			return nil, nil, err
		}
		return c, c.Close, nil
	case kindOWI:
		oc := owi.Config{Adapter: owi.Adapters()[p.Adapter], Transport: p.Transport, Drop: drop}
		if p.Transport == owi.TransportHTTPS {
			if oc.HTTPS, err = client(false); err != nil {
				return nil, nil, err
			}
		}
		c, err := owi.New(oc)
		if err != nil {
			return nil, nil, err
		}
		return c, c.Close, nil
	case kindOpen311:
		key, err := readSecret(p.APIKeyFile, "open311 api key")
		if err != nil {
			return nil, nil, err
		}
		codes := map[string]string{}
		for _, sc := range p.ServiceCodes {
			cat, code, _ := strings.Cut(sc, "=")
			codes[strings.TrimSpace(cat)] = strings.TrimSpace(code)
		}
		c, err := open311.New(open311.Config{
			Endpoint: p.URL, APIKey: string(key), Jurisdiction: p.Jurisdiction, ServiceCodes: codes,
			Media: p.Media, MediaURL: p.MediaURL, AllPhotos: p.AllPhotos, Lookup: p.Lookup,
			RecordAttribute: p.RecordAttribute, StateDir: cfg.StateDir, TLS: tc, Timeout: p.Timeout, Logger: log,
		})
		if err != nil {
			return nil, nil, err
		}
		return c, func() { c.Close() }, nil
	}
	return nil, nil, fmt.Errorf("connector %q: want webhook, idpass, owi or open311", cfg.Connector)
}

// procedureTLS is the TLS towards the procedure: its CA, and the bridge's
// client certificate for mutual TLS. Nil when neither is configured.
func procedureTLS(p ProcedureConfig) (*tls.Config, error) {
	if p.CA == "" && p.Cert == "" {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if p.CA != "" {
		pool, err := loadPool(p.CA)
		if err != nil {
			return nil, fmt.Errorf("procedure CA: %w", err)
		}
		tc.RootCAs = pool
	}
	if p.Cert != "" {
		cert, err := tls.LoadX509KeyPair(p.Cert, p.Key)
		if err != nil {
			return nil, fmt.Errorf("procedure client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}
