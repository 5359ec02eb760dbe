// Package payment simulates a card payment terminal that speaks ZVT, for
// the tests of drivers/payment and for manual runs of the kiosk. It
// listens on TCP (like port 20007 of a real terminal) and, optionally, on
// a serial line (a pseudo-terminal behind a stable link) with the serial
// transport's DLE STX frames, CRC and ACK/NAK.
//
// It answers registration (06 00), status enquiry (05 01), authorisation
// (06 01), repeat receipt (06 20, the last transaction), end of day
// (06 50) and, while it waits for a card, the cash register's abort
// (06 B0). An authorisation's fate is chosen by the last two digits of the
// amount in cents:
//
//	…01  declined by the issuer: 04 0F with result 05, receipt, 06 1E 05
//	…02  approved and booked, then the terminal goes silent (timeout)
//	…03  approved and booked, then the line drops
//	…04  the customer presses Stop: 06 1E 6C
//	…05  waits for a card ("insert card" again and again) until the cash
//	     register sends 06 B0; then 06 1E 6C
//	…06  goes silent before anything is booked
//	…07  refuses the command: 84 9C 00 (busy)
//	else approved: 04 FF, 04 0F with result 00, receipt lines, 06 0F
//
// A silent terminal ignores everything until it is registered again
// (06 00), as after a restart. Receipts go to the cash register when it
// registered with config bit 02: the customer copy as 06 D1 lines, the
// merchant copy as a 06 D3 text block.
package payment

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/kogge-fleet/kogge/drivers/payment/zvt"
	"github.com/kogge-fleet/kogge/simulators/devices/ptyline"
)

// Options configure a simulator. The zero value is usable.
type Options struct {
	// Addr is the TCP listen address. Default "127.0.0.1:0" (a free
	// port); ":20007" is a real terminal's port.
	Addr string
	// Serial also offers the terminal on a pseudo-terminal.
	Serial bool
	// Dir holds the serial link. Default: a new temporary directory,
	// removed by Close.
	Dir string
	// Name is the serial link's name in Dir. Default "zvt0".
	Name string
	// Password is the terminal's ECR password. Default "000000".
	Password string
	// TerminalID is the terminal's id, eight digits. Default "52500001".
	TerminalID string
	// Interval is the pause between "insert card" prompts while waiting
	// for a card. Default 1 s.
	Interval time.Duration
	// Log receives what the simulator does. Default: discard.
	Log *slog.Logger
}

func (o *Options) setDefaults() {
	if o.Addr == "" {
		o.Addr = "127.0.0.1:0"
	}
	if o.Name == "" {
		o.Name = "zvt0"
	}
	if o.Password == "" {
		o.Password = "000000"
	}
	if o.TerminalID == "" {
		o.TerminalID = "52500001"
	}
	if o.Interval == 0 {
		o.Interval = time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
}

// Validate reports options that cannot work.
func (o *Options) Validate() error {
	if _, err := zvt.Password(o.Password); err != nil {
		return err
	}
	if len(o.TerminalID) != 8 {
		return fmt.Errorf("terminal id %q is not eight digits", o.TerminalID)
	}
	for _, c := range o.TerminalID {
		if c < '0' || c > '9' {
			return fmt.Errorf("terminal id %q is not eight digits", o.TerminalID)
		}
	}
	if o.Interval < 0 {
		return errors.New("interval must not be negative")
	}
	return nil
}

// Transaction is one authorisation the terminal decided.
type Transaction struct {
	Amount    int64
	Result    byte // 0 approved
	Trace     int
	ReceiptNo int
	Time      time.Time
	Behaviour Behaviour
}

// Simulator is a running terminal.
type Simulator struct {
	opts     Options
	log      *slog.Logger
	password []byte
	ln       net.Listener
	link     string
	tempDir  string

	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	closed   bool
	conns    map[ptLink]struct{}
	line     *ptyline.Line
	txs      []Transaction
	trace    int
	batch    int64 // approved since the last end of day
	commands []string
}

// Start switches the terminal on. It runs until ctx is done or Close.
func Start(ctx context.Context, opts Options) (*Simulator, error) {
	opts.setDefaults()
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("payment simulator: %w", err)
	}
	pw, _ := zvt.Password(opts.Password)
	s := &Simulator{opts: opts, log: opts.Log, password: pw, conns: make(map[ptLink]struct{})}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("payment simulator: %w", err)
	}
	s.ln = ln
	if opts.Serial {
		dir := opts.Dir
		if dir == "" {
			if dir, err = os.MkdirTemp("", "kogge-zvt-"); err != nil {
				ln.Close()
				return nil, fmt.Errorf("payment simulator: %w", err)
			}
			s.tempDir = dir
		}
		s.link = filepath.Join(dir, opts.Name)
	}
	ctx, s.cancel = context.WithCancel(ctx)
	s.wg.Add(2)
	go s.accept(ctx)
	go func() {
		defer s.wg.Done()
		<-ctx.Done()
		s.shutdown()
	}()
	if opts.Serial {
		if err := s.plugSerial(); err != nil {
			s.Close()
			return nil, fmt.Errorf("payment simulator: %w", err)
		}
		s.wg.Add(1)
		go s.serveSerial(ctx)
	}
	return s, nil
}

// Endpoint is the TCP address, host:port.
func (s *Simulator) Endpoint() string { return s.ln.Addr().String() }

// SerialEndpoint is the serial device path, "" without Options.Serial.
func (s *Simulator) SerialEndpoint() string { return s.link }

// Close switches the terminal off and waits for its goroutines.
func (s *Simulator) Close() error {
	s.cancel()
	s.wg.Wait()
	if s.link != "" {
		os.Remove(s.link)
	}
	if s.tempDir != "" {
		os.RemoveAll(s.tempDir)
	}
	return nil
}

func (s *Simulator) shutdown() {
	s.ln.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for l := range s.conns {
		l.close()
	}
	if s.line != nil {
		s.line.Close()
		s.line = nil
	}
}

// Transactions returns the authorisations decided so far.
func (s *Simulator) Transactions() []Transaction {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Transaction(nil), s.txs...)
}

// Commands returns the control fields received so far ("06 01", …).
func (s *Simulator) Commands() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.commands...)
}

func (s *Simulator) accept(ctx context.Context) {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if ctx.Err() == nil {
				s.log.Error("payment simulator: accept", "err", err)
			}
			return
		}
		l := newStreamLink(c)
		if !s.track(l) {
			l.close()
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serve(ctx, l)
			s.untrack(l)
			l.close()
		}()
	}
}

func (s *Simulator) track(l ptLink) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[l] = struct{}{}
	return true
}

func (s *Simulator) untrack(l ptLink) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, l)
}

// ptyConn is the master side of the serial line as a connection; closing
// it unplugs the line.
type ptyConn struct{ l *ptyline.Line }

func (p ptyConn) Read(b []byte) (int, error)         { return p.l.Master.Read(b) }
func (p ptyConn) Write(b []byte) (int, error)        { return p.l.Master.Write(b) }
func (p ptyConn) SetWriteDeadline(t time.Time) error { return p.l.Master.SetWriteDeadline(t) }
func (p ptyConn) Close() error                       { return p.l.Close() }

func (s *Simulator) plugSerial() error {
	l, err := ptyline.Open()
	if err != nil {
		return err
	}
	if err := ptyline.PointLink(s.link, l.Path); err != nil {
		l.Close()
		return err
	}
	s.mu.Lock()
	s.line = l
	s.mu.Unlock()
	return nil
}

// serveSerial runs sessions on the serial line; a dropped line is
// replaced by a new pseudo-terminal behind the same link.
func (s *Simulator) serveSerial(ctx context.Context) {
	defer s.wg.Done()
	for ctx.Err() == nil {
		s.mu.Lock()
		line := s.line
		s.mu.Unlock()
		if line == nil {
			return
		}
		l := newFrameLink(ptyConn{line})
		dropped := s.serve(ctx, l)
		if !dropped || ctx.Err() != nil {
			l.close()
			return
		}
		// The new line is behind the link before the old one goes, so
		// that the device path never dangles.
		err := s.plugSerial()
		l.close()
		if err != nil {
			s.log.Error("payment simulator: replug serial line", "err", err)
			return
		}
	}
}
