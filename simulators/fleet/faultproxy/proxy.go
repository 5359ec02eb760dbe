// Package faultproxy is a small TCP proxy that puts network faults between
// one device and the broker: added latency, a bandwidth limit, connection
// resets, a blackhole and a cut link. The fleet simulator runs one proxy per
// device, so that it can break and heal each device's link on its own.
//
// Faults apply to the bytes, not to MQTT: the proxy never looks into the
// stream (it carries TLS). A blackhole holds the bytes in both directions
// without closing anything, as a dead mobile network does: the peers notice
// only through their own timeouts (MQTT keepalive), and a link that heals
// before they give up carries on where it stopped. A cut link ("down")
// refuses new connections and resets the open ones, as a switched-off
// modem does.
//
// The package was written instead of using toxiproxy (github.com/Shopify/
// toxiproxy/v2) because the simulator needs a proxy per device without a
// control server, with faults switched from Go, a blackhole that holds the
// stream intact and heals, every goroutine owned and stopped with a context,
// and no package-level state (toxiproxy keeps its toxic registry and logger
// in package variables).
package faultproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Faults are the faults a proxy applies. The zero value passes every byte
// through at once.
type Faults struct {
	// Latency delays every byte by this much, in each direction (the round
	// trip grows by twice Latency). It does not limit the throughput.
	Latency time.Duration
	// Bandwidth limits each direction of each connection to this many
	// bytes per second; 0 means no limit.
	Bandwidth int64
	// Blackhole holds all bytes in both directions and opens no upstream
	// connection for new clients, without closing anything; when it is
	// lifted, the held bytes go on.
	Blackhole bool
	// Down refuses new connections (accepted and reset at once) and resets
	// the open ones when it is set.
	Down bool
}

// String describes the faults for progress lines and logs.
func (f Faults) String() string {
	switch {
	case f.Down:
		return "down"
	case f.Blackhole:
		return "blackhole"
	}
	s := "up"
	if f.Latency > 0 {
		s += fmt.Sprintf(" latency=%v", f.Latency)
	}
	if f.Bandwidth > 0 {
		s += fmt.Sprintf(" bandwidth=%dB/s", f.Bandwidth)
	}
	return s
}

// Options are the optional settings of New.
type Options struct {
	// Listen is the address the proxy listens on; default 127.0.0.1:0.
	Listen string
	// DialTimeout bounds connecting to the target; default 5 s.
	DialTimeout time.Duration
	// HoldTimeout bounds how long a new connection waits for a blackhole
	// to lift before the proxy closes it; default 2 min.
	HoldTimeout time.Duration
	// BufferSize is the read size per direction; default 32 KiB.
	BufferSize int
	// Logger receives the proxy's debug lines; default none.
	Logger *slog.Logger
}

func (o *Options) setDefaults() {
	if o.Listen == "" {
		o.Listen = "127.0.0.1:0"
	}
	if o.DialTimeout == 0 {
		o.DialTimeout = 5 * time.Second
	}
	if o.HoldTimeout == 0 {
		o.HoldTimeout = 2 * time.Minute
	}
	if o.BufferSize == 0 {
		o.BufferSize = 32 << 10
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate checks the options after the defaults are filled in.
func (o *Options) Validate() error {
	var errs []error
	if o.DialTimeout < 0 || o.HoldTimeout < 0 {
		errs = append(errs, errors.New("timeouts must not be negative"))
	}
	if o.BufferSize < 512 {
		errs = append(errs, fmt.Errorf("buffer size %d: at least 512 bytes", o.BufferSize))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("fault proxy options: %w", err)
	}
	return nil
}

// Stats are a proxy's counters.
type Stats struct {
	Accepted  uint64 // client connections accepted
	Refused   uint64 // client connections reset at once because the link was down
	Resets    uint64 // open connections reset (Reset, Down)
	DialFails uint64 // upstream connections that failed
	Active    int    // connections open now
	BytesUp   uint64 // client → target
	BytesDown uint64 // target → client
}

// Proxy forwards TCP connections from its address to a target address,
// applying the faults set with Set.
type Proxy struct {
	target string
	opts   Options
	ln     net.Listener
	log    *slog.Logger

	mu      sync.Mutex
	faults  Faults
	changed chan struct{} // closed and replaced on every Set
	conns   map[*link]struct{}

	accepted, refused, resets, dialFails atomic.Uint64
	bytesUp, bytesDown                   atomic.Uint64

	runOnce sync.Once
	closed  atomic.Bool
}

// New binds the proxy's listener in front of target (host:port). Run
// serves it.
func New(target string, opts Options) (*Proxy, error) {
	opts.setDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if _, _, err := net.SplitHostPort(target); err != nil {
		return nil, fmt.Errorf("fault proxy target %q: want host:port", target)
	}
	ln, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		return nil, fmt.Errorf("fault proxy: listen on %s: %w", opts.Listen, err)
	}
	return &Proxy{
		target:  target,
		opts:    opts,
		ln:      ln,
		log:     opts.Logger.With("proxy", ln.Addr().String(), "target", target),
		changed: make(chan struct{}),
		conns:   map[*link]struct{}{},
	}, nil
}

// Addr is the address clients connect to.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Target is the address the proxy forwards to.
func (p *Proxy) Target() string { return p.target }

// Set replaces the faults. Setting Down resets the open connections;
// lifting a blackhole lets the held bytes go on.
func (p *Proxy) Set(f Faults) {
	if f.Bandwidth < 0 {
		f.Bandwidth = 0
	}
	if f.Latency < 0 {
		f.Latency = 0
	}
	p.mu.Lock()
	p.faults = f
	close(p.changed)
	p.changed = make(chan struct{})
	var open []*link
	if f.Down {
		open = p.openLinks()
	}
	p.mu.Unlock()
	n := 0
	for _, l := range open {
		if l.reset() {
			n++
		}
	}
	p.resets.Add(uint64(n))
	p.log.Debug("faults set", "faults", f.String(), "reset", n)
}

// Faults returns the faults in effect.
func (p *Proxy) Faults() Faults {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.faults
}

// Reset resets every open connection (both sides get a TCP RST) and
// returns how many there were. New connections are not affected.
func (p *Proxy) Reset() int {
	p.mu.Lock()
	open := p.openLinks()
	p.mu.Unlock()
	n := 0
	for _, l := range open {
		if l.reset() {
			n++
		}
	}
	p.resets.Add(uint64(n))
	return n
}

// openLinks returns the open connections; p.mu is held.
func (p *Proxy) openLinks() []*link {
	out := make([]*link, 0, len(p.conns))
	for l := range p.conns {
		out = append(out, l)
	}
	return out
}

// Stats returns the proxy's counters.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	active := len(p.conns)
	p.mu.Unlock()
	return Stats{
		Accepted: p.accepted.Load(), Refused: p.refused.Load(), Resets: p.resets.Load(),
		DialFails: p.dialFails.Load(), Active: active,
		BytesUp: p.bytesUp.Load(), BytesDown: p.bytesDown.Load(),
	}
}

// state returns the faults and the channel that is closed at their next
// change.
func (p *Proxy) state() (Faults, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.faults, p.changed
}

// Close closes the listener: a running proxy stops as if its context had
// ended, one that never ran releases its port.
func (p *Proxy) Close() error {
	p.closed.Store(true)
	if err := p.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}

// Run serves until ctx ends or Close is called, then closes the listener
// and every connection and returns when all of its goroutines have ended.
// It can be called once.
func (p *Proxy) Run(ctx context.Context) error {
	err := errors.New("fault proxy: Run called twice")
	p.runOnce.Do(func() { err = p.serve(ctx) })
	return err
}

func (p *Proxy) serve(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { p.ln.Close() })
	defer stop()
	defer p.ln.Close()
	var tempDelay time.Duration
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if ctx.Err() != nil || p.closed.Load() {
				p.closeAll()
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) {
				tempDelay = min(max(2*tempDelay, 5*time.Millisecond), time.Second)
				if !wait(ctx, nil, tempDelay) {
					p.closeAll()
					return nil
				}
				continue
			}
			p.closeAll()
			return fmt.Errorf("fault proxy %s: accept: %w", p.Addr(), err)
		}
		tempDelay = 0
		p.accepted.Add(1)
		if f, _ := p.state(); f.Down {
			p.refused.Add(1)
			resetConn(c)
			continue
		}
		l := &link{client: c, done: make(chan struct{})}
		p.mu.Lock()
		p.conns[l] = struct{}{}
		p.mu.Unlock()
		wg.Go(func() {
			defer func() {
				l.close()
				p.mu.Lock()
				delete(p.conns, l)
				p.mu.Unlock()
			}()
			p.handle(ctx, l)
		})
	}
}

// closeAll closes every open connection.
func (p *Proxy) closeAll() {
	p.mu.Lock()
	open := p.openLinks()
	p.mu.Unlock()
	for _, l := range open {
		l.close()
	}
}

// handle connects a client to the target and pipes both directions.
func (p *Proxy) handle(ctx context.Context, l *link) {
	// A new connection in a blackhole waits for it to lift, without
	// reading: the client sees a connection that never answers.
	holdUntil := time.Now().Add(p.opts.HoldTimeout)
	for {
		f, changed := p.state()
		if f.Down {
			return
		}
		if !f.Blackhole {
			break
		}
		left := time.Until(holdUntil)
		if left <= 0 || !wait(ctx, l.done, left, changed) {
			return
		}
	}
	d := net.Dialer{Timeout: p.opts.DialTimeout}
	dctx, cancel := context.WithTimeout(ctx, p.opts.DialTimeout)
	up, err := d.DialContext(dctx, "tcp", p.target)
	cancel()
	if err != nil {
		p.dialFails.Add(1)
		p.log.Debug("cannot reach the target", "err", err)
		resetConn(l.client)
		return
	}
	if !l.setUpstream(up) {
		up.Close()
		return
	}
	var wg sync.WaitGroup
	wg.Go(func() { p.pipe(ctx, l, l.client, up, &p.bytesUp) })
	wg.Go(func() { p.pipe(ctx, l, up, l.client, &p.bytesDown) })
	wg.Wait()
}

// chunk is a piece of the stream on its way, or the end of it.
type chunk struct {
	data []byte
	at   time.Time // when it was read
	eof  bool
}

// pipe copies src to dst with the faults: a reader goroutine reads and
// stamps chunks, the writer holds each until its latency has passed, paces
// to the bandwidth, and holds everything while a blackhole lasts. The end
// of src is passed on as a half close once the bytes before it are out.
func (p *Proxy) pipe(ctx context.Context, l *link, src, dst net.Conn, counter *atomic.Uint64) {
	queue := make(chan chunk, 64)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		defer close(queue)
		for {
			buf := make([]byte, p.opts.BufferSize)
			n, err := src.Read(buf)
			if n > 0 {
				select {
				case queue <- chunk{data: buf[:n], at: time.Now()}:
				case <-l.done:
					return
				}
			}
			if err != nil {
				if errors.Is(err, io.EOF) {
					select {
					case queue <- chunk{eof: true, at: time.Now()}:
					case <-l.done:
					}
				} else {
					l.close()
				}
				return
			}
		}
	})
	var next time.Time // bandwidth pacing: when the next byte may go
	for c := range queue {
		for {
			f, changed := p.state()
			if f.Down {
				l.close()
				return
			}
			if f.Blackhole {
				if !wait(ctx, l.done, time.Hour, changed) {
					l.close()
					return
				}
				continue
			}
			if due := c.at.Add(f.Latency); time.Now().Before(due) {
				if !wait(ctx, l.done, time.Until(due), changed) {
					l.close()
					return
				}
				continue // the faults may have changed meanwhile
			}
			if f.Bandwidth > 0 && time.Now().Before(next) {
				if !wait(ctx, l.done, time.Until(next), changed) {
					l.close()
					return
				}
				continue
			}
			break
		}
		if c.eof {
			if tc, ok := dst.(*net.TCPConn); ok {
				tc.CloseWrite()
			}
			return
		}
		if _, err := dst.Write(c.data); err != nil {
			l.close()
			return
		}
		counter.Add(uint64(len(c.data)))
		if f, _ := p.state(); f.Bandwidth > 0 {
			now := time.Now()
			if next.Before(now) {
				next = now
			}
			next = next.Add(time.Duration(float64(len(c.data)) / float64(f.Bandwidth) * float64(time.Second)))
		}
	}
}

// wait waits for d, and returns false if ctx ends or done is closed first.
// A closed changed channel ends the wait early with true.
func wait(ctx context.Context, done <-chan struct{}, d time.Duration, changed ...<-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	var ch <-chan struct{}
	if len(changed) > 0 {
		ch = changed[0]
	}
	select {
	case <-ctx.Done():
		return false
	case <-done:
		return false
	case <-ch:
		return true
	case <-t.C:
		return true
	}
}

// link is one proxied connection.
type link struct {
	client net.Conn
	done   chan struct{}

	mu       sync.Mutex
	up       net.Conn
	closed   bool
	wasReset bool // reset once already (its removal from the open set may lag)
}

// setUpstream records the upstream connection; false if the link was
// closed meanwhile.
func (l *link) setUpstream(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.up = c
	return true
}

// close closes both sides once.
func (l *link) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	l.closed = true
	close(l.done)
	l.client.Close()
	if l.up != nil {
		l.up.Close()
	}
}

// reset closes both sides with a TCP RST; false when the link was closed
// or reset already, so that a connection is counted once.
func (l *link) reset() bool {
	l.mu.Lock()
	if l.closed || l.wasReset {
		l.mu.Unlock()
		return false
	}
	l.wasReset = true
	for _, c := range []net.Conn{l.client, l.up} {
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
	}
	l.mu.Unlock()
	l.close()
	return true
}

// resetConn closes c with a TCP RST.
func resetConn(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}
