package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	fleetserver "github.com/kogge-fleet/kogge/fleet-server"
	"github.com/kogge-fleet/kogge/fleet-server/api/client"
)

// ServerConfig configures the in-process fleet server.
type ServerConfig struct {
	// DataDir is the server's data directory (database, token, blobs).
	DataDir string
	// API, Enroll and Broker are the preferred listen addresses; each
	// falls back to a free loopback port when it is taken. Empty means a
	// free loopback port.
	API, Enroll, Broker string
	// Keepalive is the MQTT keepalive the devices use; default 10 s.
	Keepalive time.Duration
	// Logger receives the server's log lines; default none.
	Logger *slog.Logger
	// Customize, if set, may change the server configuration before each
	// start (the simulator's choices are filled in already).
	Customize func(*fleetserver.Config)
}

// Server runs the real fleet server (fleetserver.App with its embedded
// broker and SQLite) in this process, and can restart it on the same
// ports and data, as an operator restarting kogge-server would.
type Server struct {
	cfg    fleetserver.Config
	log    *slog.Logger
	hooks  []ServerHook
	api    *client.Client
	apiURL string

	mu       sync.Mutex
	app      *fleetserver.App
	cancel   context.CancelFunc
	done     chan error
	cleanups []func() error
	restarts int
}

// ServerHook prepares every start of the server: it is called after the
// app is built and before it runs, for example to add in-process bridges
// (App.AddBridge); the function it returns is called once the app has
// stopped.
type ServerHook func(app *fleetserver.App) (cleanup func() error, err error)

// StartServer starts the fleet server and waits until its API answers.
func StartServer(ctx context.Context, sc ServerConfig, hooks ...ServerHook) (*Server, error) {
	if sc.DataDir == "" {
		return nil, errors.New("server: no data directory")
	}
	if sc.Logger == nil {
		sc.Logger = slog.New(slog.DiscardHandler)
	}
	if sc.Keepalive == 0 {
		sc.Keepalive = 10 * time.Second
	}
	cfg := fleetserver.DefaultConfig()
	cfg.DataDir = sc.DataDir
	cfg.TLS.Names = []string{"127.0.0.1", "localhost"}
	cfg.Broker.Keepalive = sc.Keepalive
	var err error
	for _, l := range []struct {
		dst       *string
		preferred string
	}{{&cfg.API.Listen, sc.API}, {&cfg.Enroll.Listen, sc.Enroll}, {&cfg.Broker.Listen, sc.Broker}} {
		if *l.dst, err = FreeAddr(l.preferred); err != nil {
			return nil, fmt.Errorf("server: %w", err)
		}
	}
	if sc.Customize != nil {
		sc.Customize(&cfg)
	}
	s := &Server{cfg: cfg, log: sc.Logger, hooks: hooks}
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// FreeAddr returns preferred if it can be listened on now, else a free
// loopback port. An empty preferred address means a free loopback port.
// A port checked free may be taken by someone else before the server binds
// it; the server's start then fails with a clear error.
func FreeAddr(preferred string) (string, error) {
	if preferred != "" {
		if ln, err := net.Listen("tcp", preferred); err == nil {
			addr := ln.Addr().String()
			ln.Close()
			return addr, nil
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free loopback port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// start builds and runs the app, then the hooks; s.mu is not held.
func (s *Server) start(ctx context.Context) error {
	var app *fleetserver.App
	var err error
	// The ports were free a moment ago; after a restart the old sockets
	// may linger for a moment.
	for attempt := 0; ; attempt++ {
		app, err = fleetserver.New(s.cfg, s.log)
		if err == nil || attempt == 20 {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	if err != nil {
		return fmt.Errorf("start fleet server: %w", err)
	}
	var cleanups []func() error
	for _, h := range s.hooks {
		cleanup, err := h(app)
		if cleanup != nil {
			cleanups = append(cleanups, cleanup)
		}
		if err != nil {
			app.Close()
			for _, c := range cleanups {
				c()
			}
			return fmt.Errorf("prepare the fleet server: %w", err)
		}
	}
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(runCtx) }()
	if s.api == nil {
		s.apiURL = app.APIURL()
		if s.api, err = client.New(s.apiURL, app.Token(), client.Options{Timeout: 30 * time.Second}); err != nil {
			cancel()
			<-done
			return err
		}
	}
	s.mu.Lock()
	s.app, s.cancel, s.done, s.cleanups = app, cancel, done, cleanups
	s.mu.Unlock()
	if err := s.waitReady(ctx); err != nil {
		s.Stop()
		return err
	}
	return nil
}

// waitReady polls the API until it answers, or the app stops, or 60 s.
func (s *Server) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(time.Minute)
	s.mu.Lock()
	done := s.done
	s.mu.Unlock()
	for {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := s.api.Groups(rctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case err := <-done:
			done <- err
			return fmt.Errorf("fleet server stopped while starting: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("fleet server API not ready after 1m: %w", err)
		}
	}
}

// Stop drains and stops the server, then cleans up after the hooks. It is
// safe to call more than once.
func (s *Server) Stop() error {
	s.mu.Lock()
	app, cancel, done, cleanups := s.app, s.cancel, s.done, s.cleanups
	s.app, s.cancel, s.done, s.cleanups = nil, nil, nil, nil
	s.mu.Unlock()
	if app == nil {
		return nil
	}
	var errs []error
	cancel()
	select {
	case err := <-done:
		errs = append(errs, err)
	case <-time.After(time.Minute):
		errs = append(errs, errors.New("fleet server did not stop within 1m"))
	}
	for i := len(cleanups) - 1; i >= 0; i-- {
		errs = append(errs, cleanups[i]())
	}
	return errors.Join(errs...)
}

// Restart stops the server (and with it its embedded broker; every device
// loses its connection) and starts it again on the same ports and data.
func (s *Server) Restart(ctx context.Context) error {
	if err := s.Stop(); err != nil {
		s.log.Warn("fleet server stopped with an error before its restart", "err", err)
	}
	s.mu.Lock()
	s.restarts++
	s.mu.Unlock()
	return s.start(ctx)
}

// Restarts is how often the server was restarted.
func (s *Server) Restarts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.restarts
}

// App is the running app, nil while stopped.
func (s *Server) App() *fleetserver.App {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.app
}

// API is a client of the server's REST API; it survives restarts.
func (s *Server) API() *client.Client { return s.api }

// APIURL is the base URL of the REST API.
func (s *Server) APIURL() string { return s.apiURL }

// Config is the server's resolved configuration.
func (s *Server) Config() fleetserver.Config { return s.cfg }

// BrokerAddr is the broker's TLS address (host:port).
func (s *Server) BrokerAddr() string { return s.cfg.Broker.Listen }

// EnrollURL is the HTTPS base URL of enrollment.
func (s *Server) EnrollURL() string { return "https://" + s.cfg.Enroll.Listen }
