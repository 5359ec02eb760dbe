package gnss

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.bug.st/serial"

	"github.com/kogge-fleet/kogge/drivers"
)

var _ Receiver = (*Serial)(nil)

// Options tune a [Serial] receiver. The zero value is usable.
type Options struct {
	// Baud is the line speed; NMEA receivers default to 9600.
	Baud int
	// UERE is the user-equivalent range error in metres used to turn HDOP
	// into an accuracy estimate (see the package documentation). Default 5.
	UERE float64
	// SilenceTimeout is how long the line may stay without a valid
	// sentence before the receiver counts as broken and the port is
	// reopened. Default 5 s.
	SilenceTimeout time.Duration
	// StaleAfter is the age after which the latest fix makes the state
	// degraded. Default 10 s.
	StaleAfter time.Duration
	// MaxHDOP is the HDOP above which the state is degraded ("poor
	// accuracy"). Default 5.
	MaxHDOP float64
	// MinBackoff and MaxBackoff bound the wait between attempts to reopen
	// the port after it failed or vanished (unplugged). Defaults 200 ms and
	// 10 s; the wait doubles after each failed attempt.
	MinBackoff, MaxBackoff time.Duration
	// Log receives state changes (connected, fix lost, …). Default: discard.
	Log *slog.Logger
}

func (o *Options) setDefaults() {
	if o.Baud == 0 {
		o.Baud = 9600
	}
	if o.UERE == 0 {
		o.UERE = 5
	}
	if o.SilenceTimeout == 0 {
		o.SilenceTimeout = 5 * time.Second
	}
	if o.StaleAfter == 0 {
		o.StaleAfter = 10 * time.Second
	}
	if o.MaxHDOP == 0 {
		o.MaxHDOP = 5
	}
	if o.MinBackoff == 0 {
		o.MinBackoff = 200 * time.Millisecond
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = 10 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
}

// Validate reports options that cannot work.
func (o *Options) Validate() error {
	switch {
	case o.Baud < 0:
		return fmt.Errorf("baud rate %d is negative", o.Baud)
	case o.UERE < 0 || o.MaxHDOP < 0:
		return errors.New("UERE and MaxHDOP must not be negative")
	case o.SilenceTimeout < 0 || o.StaleAfter < 0:
		return errors.New("timeouts must not be negative")
	case o.MinBackoff < 0 || o.MaxBackoff < o.MinBackoff:
		return fmt.Errorf("backoff %v..%v is not a range", o.MinBackoff, o.MaxBackoff)
	}
	return nil
}

// Counters are running totals of what the line delivered.
type Counters struct {
	Sentences uint64 // valid NMEA sentences
	Garbled   uint64 // lines that were not valid NMEA
	Fixes     uint64 // fixes handed out
	Opens     uint64 // successful opens of the port
}

// Serial is a receiver on a serial port. Run reads it; the other methods
// may be called from any goroutine, before, during and after Run.
type Serial struct {
	path string
	opts Options
	log  *slog.Logger

	mu        sync.Mutex
	connected bool
	openErr   error     // why the port is not open, if it is not
	opened    time.Time // when the port was last opened
	lastValid time.Time // last valid sentence
	garbled   int       // garbled lines since the last valid sentence
	validNow  bool      // the receiver reports a fix at the moment
	lostAt    time.Time // when the receiver last reported losing its fix
	latest    Position  // latest valid fix; Received is zero if none
	firstFix  chan struct{}
	watchers  map[chan Position]struct{}
	done      bool // Run has returned
	counters  Counters
}

// NewSerial returns a receiver on the serial port at path (for example
// /dev/ttyACM0 or a stable /dev/serial/by-id/… link). Nothing is opened
// before Run.
func NewSerial(path string, opts Options) (*Serial, error) {
	if path == "" {
		return nil, errors.New("gnss: no serial port given")
	}
	opts.setDefaults()
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("gnss: %w", err)
	}
	return &Serial{
		path:     path,
		opts:     opts,
		log:      opts.Log.With("port", path),
		openErr:  errors.New("not opened yet"),
		firstFix: make(chan struct{}),
		watchers: make(map[chan Position]struct{}),
	}, nil
}

// Run reads the receiver until ctx is done. It reopens the port with
// backoff whenever it fails, goes silent or vanishes (unplugged), so it
// returns only when ctx is done, with nil. Watch channels are closed when
// Run returns.
func (s *Serial) Run(ctx context.Context) error {
	defer s.finish()
	backoff := s.opts.MinBackoff
	for {
		gotData, err := s.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		s.disconnected(err)
		if gotData {
			backoff = s.opts.MinBackoff
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(2*backoff, s.opts.MaxBackoff)
	}
}

// session opens the port and reads it until an error, silence or ctx.
// gotData reports whether a valid sentence arrived.
func (s *Serial) session(ctx context.Context) (gotData bool, err error) {
	port, err := serial.Open(s.path, &serial.Mode{BaudRate: s.opts.Baud})
	if err != nil {
		return false, fmt.Errorf("open %s: %w", s.path, err)
	}
	stop := context.AfterFunc(ctx, func() { port.Close() })
	defer func() {
		if stop() {
			port.Close()
		}
	}()
	// Bytes queued while nobody listened are stale positions.
	if err := port.ResetInputBuffer(); err != nil {
		return false, fmt.Errorf("reset %s: %w", s.path, err)
	}
	// Read in slices so that silence is noticed.
	if err := port.SetReadTimeout(min(s.opts.SilenceTimeout/4, time.Second)); err != nil {
		return false, fmt.Errorf("configure %s: %w", s.path, err)
	}
	s.connectedNow()

	dec := newDecoder(s.opts.UERE)
	buf := make([]byte, 512)
	lastValid := time.Now()
	for {
		n, err := port.Read(buf)
		if ctx.Err() != nil {
			return gotData, ctx.Err()
		}
		if err != nil {
			return gotData, fmt.Errorf("read %s: %w", s.path, err)
		}
		now := time.Now()
		dec.feed(buf[:n], func(r result) {
			if r.kind != lineGarbage {
				lastValid = now
				gotData = true
			}
			s.handle(r, now)
		})
		if now.Sub(lastValid) > s.opts.SilenceTimeout {
			return gotData, fmt.Errorf("no valid NMEA sentence from %s for %v", s.path, s.opts.SilenceTimeout)
		}
	}
}

func (s *Serial) connectedNow() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.connected = true
	s.openErr = nil
	s.opened = time.Now()
	s.garbled = 0
	s.counters.Opens++
	s.log.Info("gnss receiver connected")
}

func (s *Serial) disconnected(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.connected {
		s.log.Warn("gnss receiver disconnected; reconnecting", "err", err)
	}
	s.connected = false
	if s.validNow {
		s.lostAt = time.Now()
	}
	s.validNow = false
	s.openErr = err
}

// handle records one line's result and hands out fixes.
func (s *Serial) handle(r result, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.kind == lineGarbage {
		s.counters.Garbled++
		s.garbled++
		if s.garbled == 1 {
			s.log.Debug("gnss: garbled line", "why", r.err)
		}
		return
	}
	s.counters.Sentences++
	s.lastValid = now
	s.garbled = 0
	switch r.kind {
	case lineNoFix:
		if s.validNow {
			s.log.Info("gnss fix lost")
			s.lostAt = now
		}
		s.validNow = false
	case lineFix:
		if !s.validNow && s.latest.Received.IsZero() {
			close(s.firstFix)
		}
		if !s.validNow {
			s.log.Info("gnss fix acquired", "satellites", r.fix.Satellites, "hdop", r.fix.HDOP)
		}
		s.validNow = true
		s.latest = Position{Fix: r.fix, Received: now}
		s.counters.Fixes++
		for ch := range s.watchers {
			select { // keep only the newest for a slow reader
			case <-ch:
			default:
			}
			ch <- s.latest
		}
	}
}

func (s *Serial) finish() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.done = true
	s.connected = false
	s.openErr = errors.New("driver stopped")
	for ch := range s.watchers {
		close(ch)
		delete(s.watchers, ch)
	}
}

// Position implements [Receiver].
func (s *Serial) Position(ctx context.Context) (Position, error) {
	s.mu.Lock()
	first := s.firstFix
	s.mu.Unlock()
	select {
	case <-first:
	case <-ctx.Done():
		return Position{}, fmt.Errorf("%w (%s): %w", ErrNoFix, s.Status().Reason, ctx.Err())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.latest
	p.Age = time.Since(p.Received)
	return p, nil
}

// Watch implements [Receiver].
func (s *Serial) Watch(ctx context.Context) <-chan Position {
	ch := make(chan Position, 1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done || ctx.Err() != nil {
		close(ch)
		return ch
	}
	s.watchers[ch] = struct{}{}
	context.AfterFunc(ctx, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if _, ok := s.watchers[ch]; ok {
			delete(s.watchers, ch)
			close(ch)
		}
	})
	return ch
}

// Status implements [Receiver].
func (s *Serial) Status() drivers.Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	heard := s.lastValid // last sign of life: a valid sentence or the open
	if heard.Before(s.opened) {
		heard = s.opened
	}
	switch {
	case !s.connected:
		return drivers.Status{State: drivers.StateMissing, Reason: "receiver not connected: " + s.openErr.Error()}
	case s.lastValid.Before(s.opened) && now.Sub(s.opened) < s.opts.SilenceTimeout:
		return drivers.Status{State: drivers.StateDegraded, Reason: "connected, waiting for the first NMEA sentence"}
	case now.Sub(heard) > s.opts.SilenceTimeout:
		return drivers.Status{State: drivers.StateError, Reason: fmt.Sprintf(
			"no valid NMEA for %v (%d garbled lines): check the receiver and its baud rate",
			now.Sub(heard).Round(time.Second), s.garbled)}
	case !s.validNow:
		reason := "no satellite fix"
		if !s.lostAt.IsZero() {
			reason += fmt.Sprintf(" for %v", now.Sub(s.lostAt).Round(time.Second))
		}
		if !s.latest.Received.IsZero() {
			reason += fmt.Sprintf("; last fix %v ago", now.Sub(s.latest.Received).Round(time.Second))
		}
		return drivers.Status{State: drivers.StateDegraded, Reason: reason}
	case now.Sub(s.latest.Received) > s.opts.StaleAfter:
		return drivers.Status{State: drivers.StateDegraded, Reason: fmt.Sprintf(
			"last fix %v ago", now.Sub(s.latest.Received).Round(time.Second))}
	case s.latest.HDOP > s.opts.MaxHDOP:
		return drivers.Status{State: drivers.StateDegraded, Reason: fmt.Sprintf(
			"poor accuracy: HDOP %.1f, about %.0f m", s.latest.HDOP, s.latest.Accuracy)}
	}
	return drivers.Status{State: drivers.StateOK}
}

// Counters returns running totals, for metrics and tests.
func (s *Serial) Counters() Counters {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counters
}
