// Package eid simulates the AusweisApp SDK for the eID driver: the same
// JSON on ws://127.0.0.1:<port>/eID-Kernel, one client at a time (a second
// gets HTTP 429, as from the real app), with scripted cards and readers
// from drivers/eid's [eid.Emulator] (PIN retry counter 3 → CAN at 1 → PUK
// at 0, deactivated cards, cards pulled mid-read, unplugged readers).
package eid

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/kogge-fleet/kogge/drivers/eid"
)

// Path is the SDK's WebSocket path.
const Path = "/eID-Kernel"

// Options configure the simulator. The zero value means the defaults.
type Options struct {
	// Addr to listen on ("127.0.0.1:0": a free loopback port).
	Addr string
	// Emulator describes the readers, the SET_CARD card and the service.
	Emulator eid.EmulatorOptions
	// Card, if set, is in the first reader from the start.
	Card *eid.EmulatedCard
	// Logger receives the simulator's log lines (slog.Default()).
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.Addr == "" {
		o.Addr = "127.0.0.1:0"
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Validate checks the options after defaults are filled in.
func (o Options) Validate() error {
	if _, _, err := net.SplitHostPort(o.Addr); err != nil {
		return fmt.Errorf("listen address %q: %w", o.Addr, err)
	}
	return nil
}

// Simulator is a running simulated AusweisApp.
type Simulator struct {
	emu      *eid.Emulator
	log      *slog.Logger
	srv      *http.Server
	url      string
	upgrader websocket.Upgrader
	wg       sync.WaitGroup
	stop     chan struct{}
	stopOnce sync.Once

	mu   sync.Mutex
	conn *websocket.Conn // the one client
}

// Start listens and serves until Close or until ctx ends.
func Start(ctx context.Context, opts Options) (*Simulator, error) {
	opts = opts.withDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("eid simulator: listen on %s: %w", opts.Addr, err)
	}
	s := &Simulator{
		emu:  eid.NewEmulator(opts.Emulator),
		log:  opts.Logger.With("sim", "eid"),
		url:  "ws://" + ln.Addr().String() + Path,
		stop: make(chan struct{}),
	}
	if opts.Card != nil {
		r := opts.Emulator.Readers
		name := "Kogge Virtual Reader"
		if len(r) > 0 {
			name = r[0].Name
		}
		if err := s.emu.InsertCard(name, *opts.Card); err != nil {
			ln.Close()
			return nil, fmt.Errorf("eid simulator: %w", err)
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc(Path, s.serveWS)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("eid simulator: serve", "err", err)
		}
	}()
	go func() {
		defer s.wg.Done()
		select {
		case <-ctx.Done():
			s.shutdown()
		case <-s.stop:
		}
	}()
	return s, nil
}

// Endpoint is the WebSocket URL to give the driver.
func (s *Simulator) Endpoint() string { return s.url }

// Emulator scripts the cards and readers: InsertCard, RemoveCard, Unplug,
// InternalError.
func (s *Simulator) Emulator() *eid.Emulator { return s.emu }

// Drop cuts the current client's connection without a close frame, as when
// the app crashes.
func (s *Simulator) Drop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != nil {
		s.conn.NetConn().Close()
	}
}

// Close stops the simulator and waits for its goroutines.
func (s *Simulator) Close() error {
	s.shutdown()
	s.wg.Wait()
	return nil
}

func (s *Simulator) shutdown() {
	s.stopOnce.Do(func() {
		close(s.stop)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		s.Drop()
		if err := s.srv.Shutdown(ctx); err != nil {
			s.srv.Close()
		}
	})
}

func (s *Simulator) serveWS(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	busy := s.conn != nil
	s.mu.Unlock()
	if busy {
		http.Error(w, "", http.StatusTooManyRequests)
		return
	}
	conn, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // Upgrade answered the client
	}
	s.mu.Lock()
	if s.conn != nil { // lost a race with another client
		s.mu.Unlock()
		conn.Close()
		return
	}
	s.conn = conn
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.conn = nil
		s.mu.Unlock()
	}()
	s.session(conn)
}

// session serves one client until it leaves.
func (s *Simulator) session(conn *websocket.Conn) {
	conn.SetReadLimit(eid.MaxMessageSize)
	out := &outbox{wake: make(chan struct{}, 1), quit: make(chan struct{})}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		out.run(conn, s.log)
	}()
	if err := s.emu.Attach(out.push); err == nil {
		for {
			typ, data, err := conn.ReadMessage()
			if err != nil {
				break
			}
			if typ == websocket.TextMessage {
				s.emu.HandleRaw(data)
			}
		}
		s.emu.Detach()
	}
	close(out.quit)
	conn.Close()
	wg.Wait()
}

// outbox queues the emulator's messages for the connection's writer.
type outbox struct {
	mu    sync.Mutex
	queue []eid.Message
	wake  chan struct{}
	quit  chan struct{}
}

func (o *outbox) push(m eid.Message) {
	o.mu.Lock()
	o.queue = append(o.queue, m)
	o.mu.Unlock()
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

func (o *outbox) run(conn *websocket.Conn, log *slog.Logger) {
	for {
		o.mu.Lock()
		q := o.queue
		o.queue = nil
		o.mu.Unlock()
		for _, m := range q {
			b, err := eid.EncodeMessage(m)
			if err != nil {
				log.Error("eid simulator: encode", "msg", m.Type, "err", err)
				continue
			}
			conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if err := conn.WriteMessage(websocket.TextMessage, b); err != nil {
				return
			}
		}
		select {
		case <-o.wake:
		case <-o.quit:
			return
		}
	}
}
