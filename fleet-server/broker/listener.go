package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/mochi-mqtt/server/v2/listeners"
)

// listener is a mochi listener over a bound net.Listener. With a TLS
// configuration it completes the handshake, bounded by the connect timeout,
// before it hands the connection to mochi, so that refused handshakes are
// counted and never reach the MQTT layer. The deadline it sets also bounds
// the wait for CONNECT; mochi replaces it with the keepalive afterwards.
type listener struct {
	id      string
	ln      net.Listener
	tls     *tls.Config
	timeout time.Duration
	metrics *metrics
	log     *slog.Logger
	// disconnect disconnects the listener's MQTT clients on Close.
	disconnect func(listenerID string)

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

var _ listeners.Listener = (*listener)(nil)

func newListener(id string, ln net.Listener, cfg *tls.Config, timeout time.Duration, m *metrics, log *slog.Logger,
	disconnect func(listenerID string)) *listener {
	ctx, cancel := context.WithCancel(context.Background())
	return &listener{id: id, ln: ln, tls: cfg, timeout: timeout, metrics: m, log: log, disconnect: disconnect,
		ctx: ctx, cancel: cancel, conns: map[net.Conn]struct{}{}}
}

func (l *listener) ID() string      { return l.id }
func (l *listener) Address() string { return l.ln.Addr().String() }
func (l *listener) Protocol() string {
	if l.tls != nil {
		return "tls"
	}
	return "tcp"
}

func (l *listener) Init(*slog.Logger) error { return nil }

// Serve accepts connections until Close. Each connection runs on its own
// goroutine; wait waits for them and for Serve. track(nil) registers Serve
// itself, unless Close came first.
func (l *listener) Serve(establish listeners.EstablishFn) {
	if !l.track(nil) {
		return
	}
	defer l.wg.Done()
	backoff := 5 * time.Millisecond
	for {
		conn, err := l.ln.Accept()
		if err != nil {
			if l.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: wait and retry.
			l.log.Warn("MQTT listener cannot accept connections; retrying", "listener", l.id, "error", err)
			select {
			case <-l.ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		if !l.track(conn) {
			conn.Close()
			return
		}
		go l.handle(conn, establish)
	}
}

// handle completes the TLS handshake, then runs the MQTT session on the
// same goroutine. (Running the session on a fresh goroutine does not save
// stack: the runtime starts new goroutines at the average stack size.)
func (l *listener) handle(raw net.Conn, establish listeners.EstablishFn) {
	defer l.untrack(raw)
	raw.SetDeadline(time.Now().Add(l.timeout))
	conn := raw
	if l.tls != nil {
		tc := tls.Server(raw, l.tls)
		if err := tc.HandshakeContext(l.ctx); err != nil {
			raw.Close()
			reason := refusedTLS
			if strings.Contains(err.Error(), "didn't provide a certificate") {
				reason = refusedNoCertificate
			}
			l.metrics.refused.WithLabelValues(reason).Inc()
			l.log.Debug("TLS handshake refused", "listener", l.id, "remote", raw.RemoteAddr().String(), "error", err)
			return
		}
		conn = tc
	}
	// establish runs the whole MQTT session and closes the connection.
	if err := establish(l.id, conn); err != nil {
		l.log.Debug("MQTT connection ended", "listener", l.id, "remote", raw.RemoteAddr().String(), "error", err)
	}
}

func (l *listener) track(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conns == nil {
		return false
	}
	l.wg.Add(1)
	if c != nil {
		l.conns[c] = struct{}{}
	}
	return true
}

func (l *listener) untrack(c net.Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.conns, c)
	l.wg.Done()
}

// Close stops accepting, disconnects the MQTT clients, closes the
// connections that have not become clients yet and waits for the accept
// loop and every connection goroutine. It does not call mochi's
// own closeClients: that one (Clients.GetByListener in v2.7.9) takes the
// clients' read lock twice and deadlocks the broker for good when a client
// connects or leaves in between (mochi-mqtt/server#488).
func (l *listener) Close(listeners.CloseFn) {
	l.cancel()
	l.ln.Close()
	l.disconnect(l.id)
	l.mu.Lock()
	conns := l.conns
	l.conns = nil
	l.mu.Unlock()
	for c := range conns {
		c.Close()
	}
	// Return only when no connection goroutine can still call establish:
	// mochi's Server.Close waits for its sessions after the listeners have
	// closed, and a session that begins during that wait panics it
	// ("WaitGroup is reused before previous Wait has returned").
	l.wg.Wait()
}
