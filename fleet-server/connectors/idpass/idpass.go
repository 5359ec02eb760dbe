// Package idpass delivers ID-document applications (kiosk.application) to
// the ID-document procedure as a gid-log document (see GidLog), in XML or
// JSON, through a drop directory or over HTTPS.
//
// The document holds every face and finger attempt with its quality
// values, thresholds, selection and PAD score; the selected images and the
// signature are embedded (base64), the others are named by blob id and
// digest only, unless Config.EmbedAll is set.
//
// Idempotency is the record id: the drop directory's file is named by it
// (see package dropdir), and over HTTPS it is the Idempotency-Key header
// (see package webhook, whose client this connector uses).
package idpass

import (
	"context"
	"fmt"

	"github.com/kogge-fleet/kogge/fleet-server/bridge"
	"github.com/kogge-fleet/kogge/fleet-server/connectors/dropdir"
	"github.com/kogge-fleet/kogge/fleet-server/connectors/webhook"
)

// Transports.
const (
	TransportDropDir = "dropdir"
	TransportHTTPS   = "https"
)

// Config configures the idpass connector.
type Config struct {
	// Format is xml (default) or json.
	Format string
	// Transport is dropdir (default) or https.
	Transport string
	// Drop configures the drop directory; its Ext follows the format.
	Drop dropdir.Config
	// HTTPS configures the HTTPS client.
	HTTPS webhook.ClientConfig
	// EmbedAll embeds every attempt's image, not only the selected ones.
	EmbedAll bool
}

// Connector delivers applications to the ID-document procedure.
type Connector struct {
	cfg    Config
	drop   *dropdir.Dir
	client *webhook.Client
}

var _ bridge.Connector = (*Connector)(nil)

// New checks cfg and returns the connector.
func New(cfg Config) (*Connector, error) {
	if cfg.Format == "" {
		cfg.Format = FormatXML
	}
	if cfg.Transport == "" {
		cfg.Transport = TransportDropDir
	}
	if cfg.Format != FormatXML && cfg.Format != FormatJSON {
		return nil, fmt.Errorf("idpass: format %q, want xml or json", cfg.Format)
	}
	c := &Connector{cfg: cfg}
	var err error
	switch cfg.Transport {
	case TransportDropDir:
		cfg.Drop.Ext = "." + cfg.Format
		c.drop, err = dropdir.New(cfg.Drop)
	case TransportHTTPS:
		c.client, err = webhook.NewClient(cfg.HTTPS)
	default:
		err = fmt.Errorf("transport %q, want dropdir or https", cfg.Transport)
	}
	if err != nil {
		return nil, fmt.Errorf("idpass: %w", err)
	}
	return c, nil
}

// Close releases idle connections.
func (c *Connector) Close() {
	if c.client != nil {
		c.client.Close()
	}
}

// Deliver renders the application and hands it to the procedure.
func (c *Connector) Deliver(ctx context.Context, cs *bridge.Case) (bridge.Receipt, error) {
	g, err := Build(cs, c.cfg.EmbedAll)
	if err != nil {
		return bridge.Receipt{}, fmt.Errorf("idpass: %w", err)
	}
	body, err := g.Marshal(c.cfg.Format)
	if err != nil {
		return bridge.Receipt{}, bridge.Permanent(fmt.Errorf("idpass: %w", err))
	}
	defer clear(body)
	var rc bridge.Receipt
	if c.drop != nil {
		rc, err = c.drop.Deliver(ctx, cs.ID.String(), body)
	} else {
		ctype := "application/xml"
		if c.cfg.Format == FormatJSON {
			ctype = "application/json"
		}
		rc, err = c.client.Post(ctx, cs.ID.String(), ctype, body)
	}
	if err != nil {
		return rc, fmt.Errorf("idpass: %w", err)
	}
	return rc, nil
}
