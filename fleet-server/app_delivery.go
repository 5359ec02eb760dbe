package fleetserver

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"

	"github.com/kogge-fleet/kogge/fleet-server/audit"
	"github.com/kogge-fleet/kogge/fleet-server/bridge/bridgeconfig"
	"github.com/kogge-fleet/kogge/fleet-server/delivery"
	"github.com/kogge-fleet/kogge/fleet-server/registry"
	"github.com/kogge-fleet/kogge/fleet-server/retention"
)

// Delivery, retention, audit and bridges.
//
// The delivery queues (fleet-server/delivery) hand the offices' sealed
// records to their bridges; the retention sweeper (fleet-server/retention)
// deletes what stays too long and serves erasure requests; the audit log
// (fleet-server/audit) records admin actions, deletions and accesses to
// personal data. The bridge API is served on the enrollment listener under
// /bridge/v1 (mutual TLS; bridge certificates from registry).
//
// # Bridges in-process or on their own
//
// In production every office's bridge runs as kogge-bridge in the office's
// network zone: the office's private keys never leave it, and the fleet
// server holds only sealed bytes (DESIGN.md principle 3). For the
// one-command default, AddBridge runs a bridge inside the server process,
// on the queue directly. The trade-off: the office's private keys then live
// in the server's process and configuration, so whoever controls the
// server can read the office's records in memory; and a bridge that hangs
// or crashes takes the server with it. Use it on one machine, for trials
// and small installations; not where the server is operated by others than
// the office.
//
// Config.Bridges (or the JSON list in bridges-file) configures in-process
// bridges: each is built with fleet-server/bridge/bridgeconfig, the same
// settings kogge-bridge takes, on the queue instead of the bridge API.

// BridgeRunner is a bridge that runs inside the server: fleet-server/bridge's
// *Runner, built on App.Queue.
type BridgeRunner interface {
	Run(ctx context.Context) error
}

type inProcessBridge struct {
	office string
	runner BridgeRunner
}

// newDelivery builds the audit log, the delivery queues, the retention
// sweeper and the bridge API.
func (a *App) newDelivery(cfg Config, logger *slog.Logger) error {
	var err error
	if a.audit, err = audit.New(a.db, audit.Options{Logger: logger.With("component", "audit")}); err != nil {
		return err
	}
	a.delivery, err = delivery.New(a.db, a.broker, delivery.Options{
		Logger:       logger.With("component", "delivery"),
		Registerer:   a.metrics,
		MaxAttempts:  cfg.Delivery.MaxAttempts,
		RetryBase:    cfg.Delivery.RetryBase,
		RetryMax:     cfg.Delivery.RetryMax,
		StatusResend: cfg.Delivery.StatusResend,
	})
	if err != nil {
		return fmt.Errorf("delivery: %w", err)
	}
	ro, err := cfg.Retention.options()
	if err != nil {
		return err
	}
	ro.Logger, ro.Registerer = logger.With("component", "retention"), a.metrics
	if a.retention, err = retention.New(a.db, a.delivery, ro); err != nil {
		return err
	}
	a.bridgeAPI, err = delivery.NewHandler(a.delivery, a.bridgeOffice, delivery.HandlerOptions{
		Logger: logger.With("component", "bridge-api"),
	})
	if err != nil {
		return err
	}
	for _, bc := range cfg.Bridges {
		b, err := bridgeconfig.Build(bc, a.delivery, bridgeconfig.Options{
			Logger: logger.With("component", "bridge"), Registerer: a.metrics,
		})
		if err != nil {
			return err
		}
		a.built = append(a.built, b)
		if err := a.AddBridge(bc.Office, b); err != nil {
			return err
		}
	}
	return nil
}

// bridgeOffice authenticates a bridge by its client certificate: the
// registry's refusals become the bridge API's 403.
func (a *App) bridgeOffice(ctx context.Context, cert *x509.Certificate) (string, error) {
	office, err := a.registry.BridgeOffice(ctx, cert)
	if errors.Is(err, registry.ErrNotBridge) || errors.Is(err, registry.ErrRevoked) {
		return "", fmt.Errorf("%w: %v", delivery.ErrForbidden, err)
	}
	return office, err
}

// Queue is the delivery queues, for in-process bridges (fleet-server/bridge
// takes it as its Source) and tests.
func (a *App) Queue() *delivery.Queue { return a.delivery }

// Audit is the audit log.
func (a *App) Audit() *audit.Log { return a.audit }

// Retention is the retention sweeper, which also serves erasure requests.
func (a *App) Retention() *retention.Sweeper { return a.retention }

// AddBridge runs r, the bridge of office, inside the server (see the
// trade-off above); call it after New and before Run. Run starts it with
// the other components and stops it, letting it drain, before the store
// closes. A bridge that fails stops the server.
func (a *App) AddBridge(office string, r BridgeRunner) error {
	if err := delivery.ValidateOffice(office); err != nil {
		return err
	}
	if r == nil {
		return errors.New("add bridge: no runner")
	}
	for _, b := range a.bridges {
		if b.office == office {
			return fmt.Errorf("add bridge: office %s has a bridge already", office)
		}
	}
	a.bridges = append(a.bridges, inProcessBridge{office: office, runner: r})
	a.log.Info("in-process bridge added; the office's keys live in this process", "office", office)
	return nil
}
