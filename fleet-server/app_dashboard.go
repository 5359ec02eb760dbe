package fleetserver

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/kogge-fleet/kogge/fleet-server/alerts"
	"github.com/kogge-fleet/kogge/fleet-server/api"
	"github.com/kogge-fleet/kogge/fleet-server/dashboard"
	"github.com/kogge-fleet/kogge/fleet-server/dashboard/auth"
)

// newDashboard builds the web dashboard with its alert evaluator and rate
// sampler, makes sure there is a first admin, and binds the dashboard's own
// listener when dashboard.listen is set (else apiHandler serves it on the
// API's address).
func (a *App) newDashboard(ctx context.Context, logger *slog.Logger) error {
	cfg := a.cfg.Dashboard
	a.rates = dashboard.NewRates(a.metrics, 10*time.Second, nil)
	opts := alerts.Options{
		Logger: logger.With("component", "alerts"), Every: cfg.AlertEvery, Delivery: a.rates,
		Webhook: &alerts.Webhook{Secret: cfg.WebhookSecret}, DashboardURL: cfg.PublicURL,
		// a.dashboard is set below, before Run starts the evaluator.
		OnChange: a.alertChanged, // to every replica's dashboard: app_cluster.go
	}
	if cfg.SMTP.Addr != "" {
		m := &alerts.Mailer{Addr: cfg.SMTP.Addr, From: cfg.SMTP.From, Username: cfg.SMTP.Username,
			Password: cfg.SMTP.Password, TLS: cfg.SMTP.TLS}
		if err := m.Validate(); err != nil {
			return fmt.Errorf("dashboard.smtp: %w", err)
		}
		opts.Email = m
	}
	var err error
	if a.alerts, err = alerts.New(a.db, opts); err != nil {
		return err
	}
	dopts := dashboard.Options{
		Logger: logger.With("component", "dashboard"), PublicURL: cfg.PublicURL, Lang: cfg.Lang,
		SessionIdle: cfg.SessionIdle, SessionMax: cfg.SessionMax, Rates: a.rates,
	}
	if o := cfg.OIDC; o.Issuer != "" {
		redirect := o.RedirectURL
		if redirect == "" {
			redirect = strings.TrimRight(cfg.PublicURL, "/") + "/auth/oidc/callback"
		}
		dopts.OIDC = &dashboard.OIDCOptions{
			OIDCConfig: auth.OIDCConfig{Issuer: o.Issuer, ClientID: o.ClientID, ClientSecret: o.ClientSecret, RedirectURL: redirect},
			RoleClaim:  o.RoleClaim, AdminValues: o.Admin, OperatorValues: o.Operator, AuditorValues: o.Auditor, ViewerValues: o.Viewer,
		}
	}
	a.dashboard, err = dashboard.New(dashboard.Services{
		Registry: a.registry, Fleet: a.db, Users: a.db, Commands: a.commands, Twin: a.twin,
		Rules: a.alerts, Alerts: a.db, Audit: a.audit, Delivery: a.delivery, Rollouts: a.rollout,
	}, dopts)
	if err != nil {
		return err
	}
	if a.adminPassword, a.adminGenerated, err = dashboard.EnsureAdmin(ctx, a.db, a.cfg.DataDir, auth.DefaultParams, time.Now()); err != nil {
		return fmt.Errorf("dashboard: first admin: %w", err)
	}
	if cfg.Listen != "" {
		if a.dashLn, err = net.Listen("tcp", cfg.Listen); err != nil {
			return fmt.Errorf("listen for the dashboard on %s: %w", cfg.Listen, err)
		}
		a.dashSrv = newHTTPServer(a.dashboard, logger)
	}
	return nil
}

// apiHandler is what the API's address serves: the REST API, and the
// dashboard for every other path unless it has an address of its own.
func (a *App) apiHandler() http.Handler {
	if a.dashboard == nil || a.dashSrv != nil {
		return a.api
	}
	mux := http.NewServeMux()
	for _, p := range []string{api.Prefix + "/", "/healthz", "/readyz", "/metrics"} {
		mux.Handle(p, a.api)
	}
	mux.Handle("/", a.dashboard)
	return mux
}

// DashboardURL is the base URL of the dashboard, e.g. http://127.0.0.1:8080.
func (a *App) DashboardURL() string {
	if a.dashLn == nil {
		return a.APIURL()
	}
	return "http://" + a.dashLn.Addr().String()
}

// AdminPassword returns the password of the first admin ("admin") when New
// created that user now (first start), so that the caller can show it once.
// It is also stored in the data directory (dashboard.AdminPasswordFile).
func (a *App) AdminPassword() (string, bool) { return a.adminPassword, a.adminGenerated }
