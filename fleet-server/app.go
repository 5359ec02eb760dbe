// Package fleetserver wires the fleet server together: store, registry and
// enrollment, broker, ingest, twin, commands, presence, the delivery queues
// with their bridge API, retention, the audit log and the REST API. It
// is the one place that knows all of them (like syncthing's lib/syncthing);
// cmd/kogge-server only parses the configuration and runs an App.
package fleetserver

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/kogge-fleet/kogge/fleet-server/alerts"
	"github.com/kogge-fleet/kogge/fleet-server/api"
	"github.com/kogge-fleet/kogge/fleet-server/audit"
	"github.com/kogge-fleet/kogge/fleet-server/bridge/bridgeconfig"
	"github.com/kogge-fleet/kogge/fleet-server/commands"
	"github.com/kogge-fleet/kogge/fleet-server/dashboard"
	"github.com/kogge-fleet/kogge/fleet-server/delivery"
	"github.com/kogge-fleet/kogge/fleet-server/ingest"
	"github.com/kogge-fleet/kogge/fleet-server/presence"
	"github.com/kogge-fleet/kogge/fleet-server/registry"
	"github.com/kogge-fleet/kogge/fleet-server/retention"
	"github.com/kogge-fleet/kogge/fleet-server/rollout"
	"github.com/kogge-fleet/kogge/fleet-server/store"
	"github.com/kogge-fleet/kogge/fleet-server/twin"
)

// ShutdownTimeout bounds the graceful shutdown of the HTTP servers.
const ShutdownTimeout = 10 * time.Second

// lastSeenEvery is how often the ingest writes a device's last-heard time
// at most; presence allows for that lag in its heartbeat deadline.
const lastSeenEvery = time.Second

// App is a fleet server: every component wired together.
type App struct {
	cfg     Config
	log     *slog.Logger
	db      *store.DB
	metrics *prometheus.Registry

	token          string
	tokenGenerated bool

	registry *registry.Registry
	broker   mqttBroker // embedded, or external: see app_cluster.go
	cluster  *cluster

	api       *api.Handler
	apiLn     net.Listener
	apiSrv    *http.Server
	enrollLn  net.Listener
	enrollSrv *http.Server

	ingest   *ingest.Ingest
	presence *presence.Tracker
	commands *commands.Service
	twin     *twin.Service
	brokerUp atomic.Bool
	ingestUp atomic.Bool

	// audit, delivery, retention and the bridge API: see app_delivery.go.
	audit     *audit.Log
	delivery  *delivery.Queue
	retention *retention.Sweeper
	bridgeAPI http.Handler
	bridges   []inProcessBridge
	built     []*bridgeconfig.Bridge

	// software updates: see app_rollout.go.
	rollout        *rollout.Service
	rolloutDevices http.Handler

	dashboard      *dashboard.Handler
	dashLn         net.Listener
	dashSrv        *http.Server
	alerts         *alerts.Evaluator
	rates          *dashboard.Rates
	adminPassword  string
	adminGenerated bool

	closeOne sync.Once
	closeErr error
}

// New builds the fleet server from cfg: it creates the data directory, opens
// the store (applying migrations), makes sure there is an API token, loads
// the registry with the fleet CA, wires the broker and the other components,
// and binds the HTTP listeners, so that their addresses are known before
// Run. A listen address with port 0 gets a free port. Call Run, or Close if
// Run is never called.
func New(cfg Config, logger *slog.Logger) (*App, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var err error
	if cfg.Broker.Listen, err = pickPort(cfg.Broker.Listen); err != nil {
		return nil, fmt.Errorf("broker.listen: %w", err)
	}
	if cfg.Broker.DevListen != "" {
		if cfg.Broker.DevListen, err = pickPort(cfg.Broker.DevListen); err != nil {
			return nil, fmt.Errorf("broker.dev-listen: %w", err)
		}
	}
	cfg = cfg.Resolve()
	if err := cfg.loadBridges(); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	a := &App{cfg: cfg, log: logger, metrics: prometheus.NewRegistry()}
	ok := false
	defer func() {
		if !ok {
			a.Close()
		}
	}()

	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	if err := a.metrics.Register(collectors.NewGoCollector()); err != nil {
		return nil, fmt.Errorf("register go metrics: %w", err)
	}
	if err := a.metrics.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return nil, fmt.Errorf("register process metrics: %w", err)
	}

	token, generated, err := ensureToken(cfg.API.Token, cfg.TokenPath())
	if err != nil {
		return nil, err
	}
	a.token, a.tokenGenerated = token, generated

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a.db, err = store.Open(ctx, cfg.Database, store.Options{Logger: logger.With("component", "store")})
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}

	a.registry, err = registry.New(ctx, a.db, registry.Options{
		Logger:        logger.With("component", "registry"),
		ServerNames:   cfg.TLS.Names,
		BrokerAddress: cfg.Broker.PublicAddress,
		CertLifetime:  cfg.Enroll.CertLifetime,
		CodeLifetime:  cfg.Enroll.CodeTTL,
	})
	if err != nil {
		return nil, fmt.Errorf("open registry: %w", err)
	}

	if a.broker, err = a.newBroker(cfg, logger); err != nil {
		return nil, err
	}
	a.registry.OnRevoke(func(device string) { a.broker.DisconnectDevice(device) })

	a.commands, err = commands.New(a.db, a.broker, commands.Options{
		Logger: logger.With("component", "commands"),
	})
	if err != nil {
		return nil, fmt.Errorf("commands: %w", err)
	}
	a.twin, err = twin.New(a.db, a.broker, twin.Options{
		Logger: logger.With("component", "twin"),
	})
	if err != nil {
		return nil, fmt.Errorf("twin: %w", err)
	}
	a.ingest, err = ingest.New(a.db, a.broker, ingest.Options{
		Logger:        logger.With("component", "ingest"),
		Registerer:    a.metrics,
		LastSeenEvery: lastSeenEvery,
		OnConnect:     a.deviceConnected,
	})
	if err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	a.presence, err = presence.New(a.db, presence.Options{
		Logger:             logger.With("component", "presence"),
		Keepalive:          cfg.Broker.Keepalive,
		LastSeenResolution: lastSeenEvery,
		Retention:          cfg.Heartbeat.Retention,
	})
	if err != nil {
		return nil, fmt.Errorf("presence: %w", err)
	}

	if err := a.newDelivery(cfg, logger); err != nil {
		return nil, err
	}
	if err := a.newRollout(cfg, logger); err != nil {
		return nil, err
	}

	a.api, err = api.New(token, api.Services{
		Registry: a.registry, Records: a.db, Presence: a.db, Commands: a.commands, Twin: a.twin,
		Audit: a.audit, Deliveries: a.delivery, Erasure: a.retention, BridgeCerts: a.registry, Rollouts: a.rollout,
	}, api.Options{
		Logger:  logger.With("component", "api"),
		Metrics: a.metrics,
		Ready: []api.ReadyCheck{
			{Name: "store", Check: a.db.Ping},
			{Name: "broker", Check: a.brokerReady},
			{Name: "ingest", Check: a.ingestReady},
		},
	})
	if err != nil {
		return nil, err
	}

	if err := a.newDashboard(ctx, logger); err != nil {
		return nil, err
	}

	a.apiLn, err = net.Listen("tcp", cfg.API.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen for the API on %s: %w", cfg.API.Listen, err)
	}
	a.apiSrv = newHTTPServer(a.apiHandler(), logger)
	ln, err := net.Listen("tcp", cfg.Enroll.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen for enrollment on %s: %w", cfg.Enroll.Listen, err)
	}
	a.enrollLn = tls.NewListener(ln, a.registry.HTTPSTLSConfig())
	// The enrollment listener also serves the bridge API (mutual TLS
	// with bridge certificates from the fleet CA).
	enrollMux := http.NewServeMux()
	enrollMux.Handle("/enroll/", a.registry.Handler())
	enrollMux.Handle(delivery.BridgePrefix, a.bridgeAPI)
	a.mountCluster(enrollMux)
	a.mountRolloutDevices(enrollMux)
	a.enrollSrv = newHTTPServer(enrollMux, logger)
	ok = true
	return a, nil
}

func newHTTPServer(h http.Handler, logger *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}

// pickPort turns a listen address with port 0 into one with a free port, so
// that the broker's address can be told to devices before it listens. The
// port is free when checked; something else could take it before the broker
// binds it, which then fails the start with a clear error.
func pickPort(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port != "0" {
		return addr, nil // Validate reports a malformed address
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", err
	}
	defer ln.Close()
	_, port, _ = net.SplitHostPort(ln.Addr().String())
	return net.JoinHostPort(host, port), nil
}

// deviceConnected is called by the ingest when a device starts a session:
// its open commands are sent again, its desired configuration brought up
// to date, and the statuses of its records sent.
func (a *App) deviceConnected(device string) {
	a.commands.Connected(device)
	a.twin.Connected(device)
	a.delivery.Connected(device)
}

func (a *App) ingestReady(context.Context) error {
	if !a.ingestUp.Load() {
		return errors.New("ingest not running")
	}
	return nil
}

func (a *App) brokerReady(context.Context) error {
	if !a.brokerUp.Load() || !a.brokerConnected() {
		return errors.New("MQTT broker not running")
	}
	return nil
}

// Run serves until ctx is cancelled or a component fails, then shuts down
// gracefully: the HTTP servers finish their requests (up to
// ShutdownTimeout); the components stop, the ingest committing and
// acknowledging what it has taken (the broker still runs for its acks); then
// the broker disconnects every device and the store is closed. It returns
// nil after a shutdown asked for by ctx, and the failures otherwise.
func (a *App) Run(ctx context.Context) error {
	defer a.Close()

	// stop ends the serving; the components have their own context, so
	// that they drain after the servers have stopped.
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	compCtx, stopComponents := context.WithCancel(context.Background())
	defer stopComponents()
	var (
		comps    sync.WaitGroup
		servers  sync.WaitGroup
		failMu   sync.Mutex
		failures []error
	)
	fail := func(err error) {
		failMu.Lock()
		failures = append(failures, err)
		failMu.Unlock()
		stop()
	}
	run := func(name string, up *atomic.Bool, fn func(context.Context) error) {
		if up != nil {
			up.Store(true)
		}
		comps.Go(func() {
			err := fn(compCtx)
			if up != nil {
				up.Store(false)
			}
			if err != nil {
				fail(fmt.Errorf("%s: %w", name, err))
			} else if compCtx.Err() == nil {
				fail(fmt.Errorf("%s stopped unexpectedly", name))
			}
		})
	}
	run("registry", nil, a.registry.Run)
	a.runCluster(run)
	run("ingest", &a.ingestUp, a.ingest.Run)
	run("presence", nil, a.presence.Run)
	run("commands", nil, a.commands.Run)
	run("twin", nil, a.twin.Run)
	run("delivery", nil, a.delivery.Run)
	run("retention", nil, a.singleton("retention", a.retention.Run))
	run("rollout", nil, a.singleton("rollout", a.rollout.Run))
	for _, b := range a.bridges {
		run("bridge "+b.office, nil, b.runner.Run)
	}
	if a.dashboard != nil {
		run("alerts", nil, a.singleton("alerts", a.alerts.Run))
		run("rates", nil, a.rates.Run)
		run("dashboard", nil, a.dashboard.Run)
	}

	sctx, scancel := context.WithTimeout(runCtx, 30*time.Second)
	err := a.broker.Start(sctx)
	scancel()
	if err != nil {
		fail(err)
	} else {
		a.brokerUp.Store(true)
		serve := func(name string, srv *http.Server, ln net.Listener) {
			servers.Go(func() {
				if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
					fail(fmt.Errorf("%s server: %w", name, err))
				}
			})
		}
		serve("API", a.apiSrv, a.apiLn)
		serve("enrollment", a.enrollSrv, a.enrollLn)
		if a.dashSrv != nil {
			serve("dashboard", a.dashSrv, a.dashLn)
		}
		a.logStarted()
	}

	<-runCtx.Done()
	a.log.Info("fleet server stopping")

	var errs []error
	shCtx, shCancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer shCancel()
	for _, s := range []struct {
		name string
		srv  *http.Server
	}{{"API", a.apiSrv}, {"enrollment", a.enrollSrv}, {"dashboard", a.dashSrv}} {
		if s.srv == nil {
			continue
		}
		if err := s.srv.Shutdown(shCtx); err != nil {
			errs = append(errs, fmt.Errorf("shut down %s server: %w", s.name, err))
		}
	}
	servers.Wait()
	stopComponents()
	comps.Wait()
	a.brokerUp.Store(false)
	if err := a.broker.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close broker: %w", err))
	}
	if err := a.Close(); err != nil {
		errs = append(errs, err)
	}
	failMu.Lock()
	errs = append(failures, errs...)
	failMu.Unlock()
	st := a.ingest.Stats()
	a.log.Info("fleet server stopped", "records_stored", st.Stored, "commits", st.Commits)
	return errors.Join(errs...)
}

func (a *App) logStarted() {
	a.log.Info("fleet server started",
		"api", "http://"+a.apiLn.Addr().String()+api.Prefix,
		"enroll", "https://"+a.enrollLn.Addr().String()+"/enroll/v1",
		"broker", "mqtts://"+a.broker.Addr().String(),
		"broker_public_address", a.cfg.Broker.PublicAddress,
		"ca_fingerprint", a.registry.CAFingerprint())
	if a.dashboard != nil {
		a.log.Info("dashboard", "url", a.DashboardURL())
	}
	if dev := a.broker.DevAddr(); dev != nil {
		a.log.Warn("plain-TCP development broker listener is on", "broker_dev", "mqtt://"+dev.String())
	}
	a.log.Info("fleet server data",
		"data_dir", absPath(a.cfg.DataDir),
		"database", a.databaseLabel(),
		"api_token_file", a.tokenLabel())
}

// Close releases what New acquired. Run calls it; call it yourself only when
// Run is never called.
func (a *App) Close() error {
	a.closeOne.Do(func() {
		var errs []error
		for _, b := range a.built {
			b.Close()
		}
		for _, ln := range []net.Listener{a.apiLn, a.enrollLn, a.dashLn} {
			if ln != nil {
				if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
					errs = append(errs, err)
				}
			}
		}
		if a.broker != nil {
			if err := a.broker.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close broker: %w", err))
			}
		}
		if a.db != nil {
			if err := a.db.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close database: %w", err))
			}
		}
		a.closeErr = errors.Join(errs...)
	})
	return a.closeErr
}

// Config returns the resolved configuration the app runs with.
func (a *App) Config() Config { return a.cfg }

// APIAddr is the address the REST API listens on.
func (a *App) APIAddr() net.Addr { return a.apiLn.Addr() }

// APIURL is the base URL of the REST API, e.g. http://127.0.0.1:8080.
func (a *App) APIURL() string { return "http://" + a.apiLn.Addr().String() }

// EnrollURL is the base URL of the enrollment endpoint, e.g.
// https://127.0.0.1:8443.
func (a *App) EnrollURL() string { return "https://" + a.enrollLn.Addr().String() }

// BrokerAddr is the address of the broker's TLS listener (as configured,
// with a port 0 resolved).
func (a *App) BrokerAddr() string { return a.cfg.Broker.Listen }

// CAFingerprint is the fleet CA's fingerprint, which devices pin.
func (a *App) CAFingerprint() string { return a.registry.CAFingerprint() }

// Registry is the app's registry, for tests.
func (a *App) Registry() *registry.Registry { return a.registry }

// Token is the API token.
func (a *App) Token() string { return a.token }

// TokenGenerated reports whether New generated the API token now (first
// start), so that the caller can show it once.
func (a *App) TokenGenerated() bool { return a.tokenGenerated }

// Store is the app's store, for tests.
func (a *App) Store() *store.DB { return a.db }

// Metrics is the app's Prometheus registry.
func (a *App) Metrics() *prometheus.Registry { return a.metrics }

func (a *App) tokenLabel() string {
	if a.cfg.API.Token != "" {
		return "(configured, no file)"
	}
	return absPath(a.cfg.TokenPath())
}

func (a *App) databaseLabel() string {
	if strings.Contains(a.cfg.Database, "://") {
		return redactURL(a.cfg.Database)
	}
	return absPath(a.cfg.Database)
}

func absPath(p string) string {
	if abs, err := filepath.Abs(p); err == nil {
		return abs
	}
	return p
}

// ensureToken returns the configured token, or the one stored in file, or
// generates one and stores it in file with mode 0600. generated is true only
// in the last case.
func ensureToken(configured, file string) (token string, generated bool, err error) {
	if configured != "" {
		return configured, false, nil
	}
	b, err := os.ReadFile(file)
	switch {
	case err == nil:
		token = strings.TrimSpace(string(b))
		if len(token) < 16 {
			return "", false, fmt.Errorf("API token file %s holds %d characters, at least 16 needed: delete it to have a new token generated", file, len(token))
		}
		if fi, err := os.Stat(file); err == nil && fi.Mode().Perm()&0o077 != 0 {
			return "", false, fmt.Errorf("API token file %s is readable by others (mode %v): chmod 600 it", file, fi.Mode().Perm())
		}
		return token, false, nil
	case !errors.Is(err, fs.ErrNotExist):
		return "", false, fmt.Errorf("read API token: %w", err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", false, fmt.Errorf("generate API token: %w", err)
	}
	token = base64.RawURLEncoding.EncodeToString(raw)
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", false, fmt.Errorf("store API token: %w", err)
	}
	_, werr := f.WriteString(token + "\n")
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		os.Remove(file)
		return "", false, fmt.Errorf("store API token in %s: %w", file, err)
	}
	return token, true, nil
}
