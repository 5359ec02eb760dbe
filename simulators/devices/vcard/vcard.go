// Package vcard is a virtual smart card for vsmartcard's vpcd, the virtual
// reader driver of pcscd: the card connects to vpcd's TCP port (35963 by
// default) and answers its frames (a 2-byte big-endian length, then a
// payload; a 1-byte payload is a control command: 0 power off, 1 power
// on, 2 reset, 4 get ATR; anything longer is a command APDU). Through pcscd
// the card is then a real card in a real PC/SC reader for
// drivers/cardreader.
//
// The card is T=1 only, answers SELECT by AID and by file identifier and
// READ BINARY (also by short file identifier) with ISO 7816-4 status
// words. Insert and Remove connect and disconnect it, as a citizen puts a
// card on the reader and pulls it off.
package vcard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"
)

// DefaultAddr is where vpcd listens by default (/etc/reader.conf.d/vpcd:
// DEVICENAME /dev/null:0x8C7B).
const DefaultAddr = "127.0.0.1:35963"

// Options configure the virtual card. The zero value means the defaults.
type Options struct {
	// Addr of vpcd (DefaultAddr).
	Addr string
	// ATR of the card (ATR of "KoggeVCard").
	ATR []byte
	// Applets on the card (DefaultApplets()).
	Applets []Applet
	// Removed starts the card out of the reader; Insert puts it in.
	Removed bool
	// Retry is the pause between attempts to reach vpcd (200 ms).
	Retry time.Duration
	// Logger receives the card's log lines (slog.Default()).
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.Addr == "" {
		o.Addr = DefaultAddr
	}
	if o.ATR == nil {
		o.ATR = ATR(defaultHistorical)
	}
	if o.Applets == nil {
		o.Applets = DefaultApplets()
	}
	if o.Retry == 0 {
		o.Retry = 200 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Validate checks the options after defaults are filled in.
func (o Options) Validate() error {
	if _, _, err := net.SplitHostPort(o.Addr); err != nil {
		return fmt.Errorf("vpcd address %q: %w", o.Addr, err)
	}
	if len(o.ATR) < 2 || len(o.ATR) > 33 {
		return fmt.Errorf("ATR of %d bytes: must be 2 to 33", len(o.ATR))
	}
	if o.Retry <= 0 {
		return fmt.Errorf("retry %v: must be positive", o.Retry)
	}
	return nil
}

// Simulator is a running virtual card.
type Simulator struct {
	opts Options
	card *Card
	log  *slog.Logger
	wg   sync.WaitGroup
	stop chan struct{}

	mu        sync.Mutex
	inserted  bool
	changed   chan struct{} // closed and replaced on every insert, remove and connection change
	conn      net.Conn
	connected bool
	closeOnce sync.Once
}

// Start runs the card until Close or until ctx ends. The card keeps trying
// to reach vpcd while it is inserted, so pcscd may start later.
func Start(ctx context.Context, opts Options) (*Simulator, error) {
	opts = opts.withDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	s := &Simulator{
		opts: opts, card: NewCard(opts.ATR, opts.Applets), log: opts.Logger.With("sim", "vcard"),
		stop: make(chan struct{}), inserted: !opts.Removed, changed: make(chan struct{}),
	}
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		s.run()
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

// Endpoint is the vpcd address the card connects to.
func (s *Simulator) Endpoint() string { return s.opts.Addr }

// ATR is the card's ATR.
func (s *Simulator) ATR() []byte { return append([]byte(nil), s.opts.ATR...) }

// Insert puts the card on the reader: it connects to vpcd.
func (s *Simulator) Insert() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.inserted {
		s.inserted = true
		s.notifyLocked()
	}
}

// Remove pulls the card off the reader: it disconnects from vpcd.
func (s *Simulator) Remove() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inserted {
		s.inserted = false
		if s.conn != nil {
			s.conn.Close()
		}
		s.notifyLocked()
	}
}

// WaitConnected blocks until the card is connected to vpcd (inserted and
// vpcd reached), or ctx ends.
func (s *Simulator) WaitConnected(ctx context.Context) error {
	for {
		s.mu.Lock()
		ok, ch := s.connected, s.changed
		s.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("virtual card not connected to vpcd at %s: %w", s.opts.Addr, ctx.Err())
		case <-s.stop:
			return errors.New("virtual card closed")
		}
	}
}

// Close removes the card and stops the simulator.
func (s *Simulator) Close() error {
	s.shutdown()
	s.wg.Wait()
	return nil
}

func (s *Simulator) shutdown() {
	s.closeOnce.Do(func() {
		close(s.stop)
		s.mu.Lock()
		if s.conn != nil {
			s.conn.Close()
		}
		s.mu.Unlock()
	})
}

func (s *Simulator) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// run connects while inserted and serves vpcd.
func (s *Simulator) run() {
	retry := time.NewTimer(0)
	defer retry.Stop()
	<-retry.C
	for {
		s.mu.Lock()
		inserted, ch := s.inserted, s.changed
		s.mu.Unlock()
		if !inserted {
			select {
			case <-ch:
				continue
			case <-s.stop:
				return
			}
		}
		d := net.Dialer{Timeout: 2 * time.Second}
		conn, err := d.Dial("tcp", s.opts.Addr)
		if err != nil {
			s.log.Debug("vcard: vpcd not reachable yet", "addr", s.opts.Addr, "err", err)
			retry.Reset(s.opts.Retry)
			select {
			case <-retry.C:
				continue
			case <-ch: // removed meanwhile
				retry.Stop()
				continue
			case <-s.stop:
				return
			}
		}
		s.mu.Lock()
		select {
		case <-s.stop:
			s.mu.Unlock()
			conn.Close()
			return
		default:
		}
		if !s.inserted {
			s.mu.Unlock()
			conn.Close()
			continue
		}
		s.conn, s.connected = conn, true
		s.notifyLocked()
		s.mu.Unlock()

		err = s.serve(conn)
		s.mu.Lock()
		s.conn, s.connected = nil, false
		s.notifyLocked()
		s.mu.Unlock()
		conn.Close()
		s.log.Debug("vcard: disconnected from vpcd", "err", err)
		s.mu.Lock()
		inserted, ch = s.inserted, s.changed
		s.mu.Unlock()
		if inserted { // vpcd went away: do not hammer it
			retry.Reset(s.opts.Retry)
			select {
			case <-retry.C:
			case <-ch:
				retry.Stop()
			case <-s.stop:
				return
			}
		}
	}
}

// serve answers vpcd until the connection ends.
func (s *Simulator) serve(conn net.Conn) error {
	for {
		p, err := ReadFrame(conn)
		if err != nil {
			return err
		}
		if rsp := s.card.Handle(p); rsp != nil {
			conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if err := WriteFrame(conn, rsp); err != nil {
				return err
			}
		}
	}
}
