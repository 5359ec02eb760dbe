// Command kogge-bridge is one office's bridge in its own process, in the
// office's network zone: it holds the office's private keys, leases the
// office's sealed deliveries from the fleet server's bridge API (mutual
// TLS with its certificate from the fleet CA), opens them, delivers them
// into the office's procedure through a connector (webhook, idpass, owi or
// open311) and reports the receipts.
//
//	kogge-bridge [--config FILE] [--print-config] [--SETTING=VALUE ...]
//
// Every setting is also a KOGGE_* environment variable; see --help.
// SIGTERM or SIGINT drain: deliveries in flight finish (up to
// bridge.drain-timeout), nothing new is leased. A second signal ends the
// process at once; what was in flight is delivered again after its lease
// expires, idempotently.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kogge-fleet/kogge/fleet-server/bridge/bridgeconfig"
	"github.com/kogge-fleet/kogge/fleet-server/delivery/bridgeclient"
	"github.com/kogge-fleet/kogge/internal/config"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	context.AfterFunc(ctx, stop) // a second signal kills the process
	code := run(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run returns the exit code: 0 after a clean shutdown, 1 when the bridge
// failed, 2 for a bad command line or configuration.
func run(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	cfg := DefaultConfig()
	res, code, exit := config.Command(&cfg, "kogge-bridge", config.Source{Args: args, Environ: environ}, stdout, stderr, func() error { return cfg.Validate() })
	if exit {
		return code
	}
	log, err := cfg.Log.Logger(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "kogge-bridge: %v\n", err)
		return 2
	}
	if res.File != "" {
		log.Info("configuration file read", "file", res.File)
	}
	if err := serve(ctx, cfg, log); err != nil {
		log.Error("bridge failed", "err", err)
		return 1
	}
	return 0
}

// serve builds the bridge from cfg and runs it until ctx ends.
func serve(ctx context.Context, cfg Config, log *slog.Logger) error {
	bc := cfg.bridge()
	keys, err := bc.Keyring()
	if err != nil {
		return err
	}
	tc, err := fleetTLS(cfg.TLS)
	if err != nil {
		return err
	}
	client, err := bridgeclient.New(cfg.Server, tc, bridgeclient.Options{Logger: log})
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	runner, err := bridgeconfig.Build(bc, client, bridgeconfig.Options{Logger: log, Registerer: reg, Keys: keys})
	if err != nil {
		return err
	}
	defer runner.Close()

	var metricsDone chan error
	var srv *http.Server
	if cfg.Metrics.Listen != "" {
		ln, err := net.Listen("tcp", cfg.Metrics.Listen)
		if err != nil {
			return fmt.Errorf("metrics listener: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
		srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		metricsDone = make(chan error, 1)
		go func() { metricsDone <- srv.Serve(ln) }()
		log.Info("metrics listening", "addr", ln.Addr().String())
	}
	log.Info("kogge-bridge running", "office", cfg.Office, "server", cfg.Server, "connector", cfg.Connector)
	err = runner.Run(ctx)
	if srv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		srv.Shutdown(sctx)
		cancel()
		if serr := <-metricsDone; !errors.Is(serr, http.ErrServerClosed) {
			err = errors.Join(err, fmt.Errorf("metrics server: %w", serr))
		}
	}
	s := runner.Stats()
	log.Info("kogge-bridge stopped", "acked", s.Acked, "failed", s.Failed, "dead", s.Dead, "abandoned", s.Abandoned)
	return err
}

// fleetTLS is the bridge's TLS towards the fleet server.
func fleetTLS(c TLSConfig) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(c.Cert, c.Key)
	if err != nil {
		return nil, fmt.Errorf("bridge certificate: %w", err)
	}
	pool, err := bridgeconfig.LoadPool(c.CA)
	if err != nil {
		return nil, fmt.Errorf("fleet CA: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}
