// Package printer simulates an ESC/POS receipt printer for the tests of
// drivers/printer and for manual runs: it listens on TCP (like port 9100
// of a network printer) and, optionally, on a serial line (a
// pseudo-terminal behind a stable link), interprets what it receives as
// an Epson TM printer does, and hands out each receipt at the cut as a
// golden-text rendering and as a PNG image of the paper.
//
// It answers real-time status requests (DLE EOT n, GS r) and can be told
// to run out of paper after some lines or to have its cover open; then
// what it receives is not printed (Receipt.Dropped counts the lines) and
// the status bytes say why.
package printer

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

	"github.com/kogge-fleet/kogge/simulators/devices/ptyline"
)

// Options configure a simulator. The zero value is usable.
type Options struct {
	// Addr is the TCP listen address. Default "127.0.0.1:0" (a free
	// port); use ":9100" for a real network printer's port.
	Addr string
	// Serial also offers the printer on a pseudo-terminal.
	Serial bool
	// Dir holds the serial link. Default: a new temporary directory,
	// removed by Close.
	Dir string
	// Name is the serial link's name in Dir. Default "printer0".
	Name string
	// Columns is the paper width in characters of font A: 48 for 80 mm
	// paper (the default), 32 for 58 mm.
	Columns int
	// PaperLines is the paper left on the roll, in lines; 0 means
	// endless.
	PaperLines int
	// NearEndLines is the paper left when the near-end sensor trips.
	// Default 40.
	NearEndLines int
	// OutDir, if set, receives every receipt as receipt-NNNN.txt and
	// receipt-NNNN.png.
	OutDir string
	// Log receives what the simulator does. Default: discard.
	Log *slog.Logger
}

func (o *Options) setDefaults() {
	if o.Addr == "" {
		o.Addr = "127.0.0.1:0"
	}
	if o.Name == "" {
		o.Name = "printer0"
	}
	if o.Columns == 0 {
		o.Columns = 48
	}
	if o.NearEndLines == 0 {
		o.NearEndLines = 40
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
}

// Validate reports options that cannot work.
func (o *Options) Validate() error {
	switch {
	case o.Columns < 8 || o.Columns > 96:
		return fmt.Errorf("%d columns: want 8–96", o.Columns)
	case o.PaperLines < 0 || o.NearEndLines < 0:
		return errors.New("paper lines must not be negative")
	}
	return nil
}

// Simulator is a running printer.
type Simulator struct {
	opts    Options
	log     *slog.Logger
	ln      net.Listener
	line    *ptyline.Line
	link    string
	tempDir string

	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	conns     map[net.Conn]struct{}
	paperLeft int // -1: endless
	coverOpen bool
	receipts  []Receipt
	numbered  int // receipts numbered for OutDir
	taken     int
	changed   chan struct{} // closed and replaced when a receipt arrives
}

// Start switches the printer on. It runs until ctx is done or Close.
func Start(ctx context.Context, opts Options) (*Simulator, error) {
	opts.setDefaults()
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("printer simulator: %w", err)
	}
	s := &Simulator{
		opts: opts, log: opts.Log,
		conns:     make(map[net.Conn]struct{}),
		paperLeft: -1,
		changed:   make(chan struct{}),
	}
	if opts.PaperLines > 0 {
		s.paperLeft = opts.PaperLines
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("printer simulator: %w", err)
	}
	s.ln = ln
	if opts.Serial {
		if err := s.openSerial(); err != nil {
			ln.Close()
			return nil, fmt.Errorf("printer simulator: %w", err)
		}
	}
	ctx, s.cancel = context.WithCancel(ctx)
	s.wg.Add(2)
	go s.accept(ctx)
	go func() {
		defer s.wg.Done()
		<-ctx.Done()
		s.shutdown()
	}()
	if s.line != nil {
		s.wg.Add(1)
		go s.serveSerial(ctx)
	}
	return s, nil
}

func (s *Simulator) openSerial() error {
	dir := s.opts.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "kogge-printer-")
		if err != nil {
			return err
		}
		s.tempDir, dir = d, d
	}
	l, err := ptyline.Open()
	if err != nil {
		return err
	}
	s.link = filepath.Join(dir, s.opts.Name)
	if err := ptyline.PointLink(s.link, l.Path); err != nil {
		l.Close()
		return err
	}
	s.line = l
	return nil
}

// Endpoint is the TCP address, host:port.
func (s *Simulator) Endpoint() string { return s.ln.Addr().String() }

// SerialEndpoint is the serial device path, "" without Options.Serial.
func (s *Simulator) SerialEndpoint() string { return s.link }

// Close switches the printer off and waits for its goroutines.
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
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	if s.line != nil {
		s.line.Close()
	}
}

// SetCoverOpen opens or closes the cover.
func (s *Simulator) SetCoverOpen(open bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.coverOpen = open
}

// SetPaper loads a roll with lines of paper left; 0 is paper out, a
// negative value an endless roll.
func (s *Simulator) SetPaper(lines int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.paperLeft = max(lines, -1)
}

// Receipts returns every receipt printed so far.
func (s *Simulator) Receipts() []Receipt {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Receipt(nil), s.receipts...)
}

// Next waits for the next receipt that Next has not returned yet.
func (s *Simulator) Next(ctx context.Context) (Receipt, error) {
	for {
		s.mu.Lock()
		if s.taken < len(s.receipts) {
			r := s.receipts[s.taken]
			s.taken++
			s.mu.Unlock()
			return r, nil
		}
		changed := s.changed
		s.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return Receipt{}, fmt.Errorf("no receipt printed: %w", ctx.Err())
		}
	}
}

// mech is the paper and cover of the simulator.
type mech struct{ s *Simulator }

func (m mech) state() printerState {
	m.s.mu.Lock()
	defer m.s.mu.Unlock()
	return printerState{
		coverOpen: m.s.coverOpen,
		paperOut:  m.s.paperLeft == 0,
		nearEnd:   m.s.paperLeft > 0 && m.s.paperLeft <= m.s.opts.NearEndLines,
	}
}

func (m mech) advance(n int) bool {
	m.s.mu.Lock()
	defer m.s.mu.Unlock()
	if m.s.coverOpen || m.s.paperLeft == 0 {
		return false
	}
	if m.s.paperLeft > 0 {
		m.s.paperLeft = max(m.s.paperLeft-n, 0)
	}
	return true
}

func (s *Simulator) printed(r Receipt) {
	s.mu.Lock()
	s.numbered++
	n := s.numbered
	s.mu.Unlock()
	s.log.Info("printer simulator printed a receipt", "lines", len(r.Lines), "cut", r.Cut, "dropped", r.Dropped)
	if s.opts.OutDir != "" { // before Next hands it out: the files are there
		base := filepath.Join(s.opts.OutDir, fmt.Sprintf("receipt-%04d", n))
		if err := os.WriteFile(base+".txt", []byte(r.Text), 0o644); err != nil {
			s.log.Error("printer simulator: write receipt", "err", err)
		}
		if png, err := r.PNG(); err != nil {
			s.log.Error("printer simulator: render receipt", "err", err)
		} else if err := os.WriteFile(base+".png", png, 0o644); err != nil {
			s.log.Error("printer simulator: write receipt", "err", err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.receipts = append(s.receipts, r)
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *Simulator) accept(ctx context.Context) {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if ctx.Err() == nil {
				s.log.Error("printer simulator: accept", "err", err)
			}
			return
		}
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go s.serveConn(c)
	}
}

func (s *Simulator) serveConn(c net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.Close()
	}()
	reply := func(b []byte) {
		c.SetWriteDeadline(time.Now().Add(time.Second))
		c.Write(b)
	}
	in := newInterp(s.opts.Columns, mech{s}, reply, s.printed)
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		in.write(buf[:n])
		if err != nil {
			in.flush()
			return
		}
	}
}

func (s *Simulator) serveSerial(ctx context.Context) {
	defer s.wg.Done()
	m := s.line.Master
	reply := func(b []byte) {
		m.SetWriteDeadline(time.Now().Add(time.Second))
		m.Write(b)
	}
	in := newInterp(s.opts.Columns, mech{s}, reply, s.printed)
	buf := make([]byte, 4096)
	for {
		// A serial printer sees no end of a job: a pause flushes.
		m.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		n, err := m.Read(buf)
		in.write(buf[:n])
		switch {
		case err == nil:
		case errors.Is(err, os.ErrDeadlineExceeded):
			in.flush()
		default:
			in.flush()
			if ctx.Err() == nil {
				s.log.Error("printer simulator: serial line", "err", err)
			}
			return
		}
	}
}
