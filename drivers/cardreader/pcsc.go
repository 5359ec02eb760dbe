package cardreader

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ebfe/scard"

	"github.com/kogge-fleet/kogge/drivers"
)

// pnpReader is PC/SC's pseudo reader that reports readers coming and
// going.
const pnpReader = `\\?PnP?\Notification`

// Options tune [PCSC]. The zero value means the defaults.
type Options struct {
	// Exclusive connects cards exclusively (default: shared with other
	// PC/SC clients).
	Exclusive bool
	// Logger receives the driver's log lines (slog.Default()).
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// PCSC is the PC/SC implementation of [Service]. Its PC/SC context is
// established on first use and again after pcscd restarted. Waits run on
// contexts of their own, so a wait does not block APDU exchange.
type PCSC struct {
	opts Options
	log  *slog.Logger

	mu     sync.Mutex
	sc     *scard.Context
	status drivers.Status
	closed bool
}

// New returns a PCSC; it does not reach pcscd until it is used.
func New(opts Options) *PCSC {
	opts = opts.withDefaults()
	return &PCSC{opts: opts, log: opts.Logger.With("driver", "cardreader"),
		status: drivers.Status{State: drivers.StateMissing, Reason: "not checked yet"}}
}

// context returns a valid PC/SC context; the caller holds p.mu.
func (p *PCSC) contextLocked() (*scard.Context, error) {
	if p.closed {
		return nil, errors.New("card reader driver closed")
	}
	if p.sc != nil {
		if ok, _ := p.sc.IsValid(); ok {
			return p.sc, nil
		}
		p.sc.Release()
		p.sc = nil
	}
	sc, err := scard.EstablishContext()
	if err != nil {
		return nil, mapErr(err, "")
	}
	p.sc = sc
	return sc, nil
}

// Readers lists the attached readers; none is not an error.
func (p *PCSC) Readers(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	rs, err := p.listLocked()
	if err != nil {
		p.setLocked(err)
		return nil, fmt.Errorf("list card readers: %w", err)
	}
	if len(rs) == 0 {
		p.status = drivers.Status{State: drivers.StateMissing, Reason: "no card reader attached: plug in the reader"}
	} else {
		p.status = drivers.Status{State: drivers.StateOK}
	}
	return rs, nil
}

func (p *PCSC) listLocked() ([]string, error) {
	sc, err := p.contextLocked()
	if err != nil {
		return nil, err
	}
	rs, err := sc.ListReaders()
	if errors.Is(err, scard.ErrNoReadersAvailable) {
		return nil, nil
	}
	if err != nil {
		if errors.Is(err, scard.ErrInvalidHandle) || errors.Is(err, scard.ErrNoService) || errors.Is(err, scard.ErrServiceStopped) {
			sc.Release()
			p.sc = nil
		}
		return nil, mapErr(err, "")
	}
	return rs, nil
}

// WaitCard blocks until a card is in reader ("" for any reader, also one
// plugged in later) and returns the reader and the card's ATR. It ends
// with drivers.ErrTimeout when ctx's deadline passes, ErrNoReader when the
// named reader is missing or unplugged.
func (p *PCSC) WaitCard(ctx context.Context, reader string) (Presence, error) {
	var found Presence
	err := p.watch(ctx, reader, func(name string, st scard.StateFlag, atr []byte) bool {
		if st&scard.StatePresent != 0 && st&scard.StateMute == 0 {
			found = Presence{Reader: name, ATR: bytes.Clone(atr)}
			return true
		}
		return false
	})
	if err != nil {
		return Presence{}, fmt.Errorf("wait for a card: %w", err)
	}
	return found, nil
}

// WaitRemoved blocks until reader holds no card.
func (p *PCSC) WaitRemoved(ctx context.Context, reader string) error {
	if reader == "" {
		return errors.New("wait for the card's removal: name the reader")
	}
	err := p.watch(ctx, reader, func(_ string, st scard.StateFlag, _ []byte) bool {
		return st&scard.StateEmpty != 0
	})
	if err != nil {
		return fmt.Errorf("wait for the card's removal: %w", err)
	}
	return nil
}

// watch follows reader states on a PC/SC context of its own until done
// says so. ctx's end cancels the blocking call.
func (p *PCSC) watch(ctx context.Context, reader string, done func(string, scard.StateFlag, []byte) bool) error {
	if err := ctx.Err(); err != nil {
		return ctxErr(err)
	}
	sc, err := scard.EstablishContext()
	if err != nil {
		err = mapErr(err, reader)
		p.set(err)
		return err
	}
	defer sc.Release()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-ctx.Done():
			sc.Cancel()
		case <-stop:
		}
	}()
	defer wg.Wait()
	defer close(stop)

	states, err := p.states(sc, reader)
	if err != nil {
		p.set(err)
		return err
	}
	for {
		timeout := time.Duration(-1) // cancelled through ctx
		if d, ok := ctx.Deadline(); ok {
			timeout = max(time.Until(d), 0)
		}
		err := sc.GetStatusChange(states, timeout)
		switch {
		case errors.Is(err, scard.ErrCancelled), errors.Is(err, scard.ErrTimeout):
			if ctx.Err() != nil {
				return ctxErr(ctx.Err())
			}
			if errors.Is(err, scard.ErrTimeout) {
				return fmt.Errorf("no change at reader: %w", drivers.ErrTimeout)
			}
			continue
		case err != nil:
			err = mapErr(err, reader)
			p.set(err)
			return err
		}
		rescan := false
		for i := range states {
			st := &states[i]
			if st.Reader == pnpReader {
				rescan = rescan || st.EventState&scard.StateChanged != 0
				st.CurrentState = st.EventState &^ scard.StateChanged
				continue
			}
			if st.EventState&(scard.StateUnknown|scard.StateUnavailable) != 0 {
				if reader != "" {
					err := fmt.Errorf("%w: %q", ErrNoReader, reader)
					p.set(err)
					return err
				}
				rescan = true
			}
			if done(st.Reader, st.EventState, st.Atr) {
				p.set(nil)
				return nil
			}
			st.CurrentState = st.EventState &^ scard.StateChanged
		}
		if rescan && reader == "" {
			if states, err = p.states(sc, ""); err != nil {
				return err
			}
		}
	}
}

// states builds the reader states to watch: the named reader, or every
// reader and the PnP pseudo reader.
func (p *PCSC) states(sc *scard.Context, reader string) ([]scard.ReaderState, error) {
	if reader != "" {
		return []scard.ReaderState{{Reader: reader, CurrentState: scard.StateUnaware}}, nil
	}
	rs, err := sc.ListReaders()
	if err != nil && !errors.Is(err, scard.ErrNoReadersAvailable) {
		return nil, mapErr(err, "")
	}
	states := make([]scard.ReaderState, 0, len(rs)+1)
	for _, r := range rs {
		states = append(states, scard.ReaderState{Reader: r, CurrentState: scard.StateUnaware})
	}
	return append(states, scard.ReaderState{Reader: pnpReader, CurrentState: scard.StateUnaware}), nil
}

// Connect opens the card in reader over T=1.
func (p *PCSC) Connect(ctx context.Context, reader string) (Card, error) {
	if err := ctx.Err(); err != nil {
		return nil, ctxErr(err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	sc, err := p.contextLocked()
	if err != nil {
		p.setLocked(err)
		return nil, fmt.Errorf("connect to the card in %q: %w", reader, err)
	}
	mode := scard.ShareShared
	if p.opts.Exclusive {
		mode = scard.ShareExclusive
	}
	card, err := sc.Connect(reader, mode, scard.ProtocolT1)
	if err != nil {
		err = mapErr(err, reader)
		p.setLocked(err)
		return nil, fmt.Errorf("connect to the card in %q: %w", reader, err)
	}
	st, err := card.Status()
	if err != nil {
		card.Disconnect(scard.LeaveCard)
		err = mapErr(err, reader)
		p.setLocked(err)
		return nil, fmt.Errorf("read the status of the card in %q: %w", reader, err)
	}
	p.setLocked(nil)
	return &pcscCard{p: p, card: card, reader: reader, atr: st.Atr, turn: make(chan struct{}, 1)}, nil
}

// Status is the state the last call found: ok when PC/SC and the reader
// answered, missing without pcscd or a reader, error otherwise.
func (p *PCSC) Status() drivers.Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.status
}

// Close releases the PC/SC context.
func (p *PCSC) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	if p.sc == nil {
		return nil
	}
	err := p.sc.Release()
	p.sc = nil
	return err
}

func (p *PCSC) set(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.setLocked(err)
}

// setLocked records what a call found for Status.
func (p *PCSC) setLocked(err error) {
	switch {
	case err == nil, errors.Is(err, ErrNoCard), errors.Is(err, ErrCardRemoved), errors.Is(err, drivers.ErrTimeout),
		errors.Is(err, context.Canceled):
		// The reader works; a missing card is the citizen's business.
		p.status = drivers.Status{State: drivers.StateOK}
	case errors.Is(err, ErrNoReader):
		p.status = drivers.Status{State: drivers.StateMissing, Reason: "card reader not attached: plug in the reader"}
	case errors.Is(err, drivers.ErrDisconnected):
		p.status = drivers.Status{State: drivers.StateMissing, Reason: "PC/SC service not running: start pcscd"}
	default:
		p.status = drivers.Status{State: drivers.StateError, Reason: err.Error()}
	}
}

// pcscCard is a connected card. Transmit runs the blocking PC/SC call in a
// goroutine the card owns, so that ctx bounds the caller's wait; a call
// that outlives its ctx still holds the card until PC/SC returns.
type pcscCard struct {
	p      *PCSC
	card   *scard.Card
	reader string
	atr    []byte
	turn   chan struct{} // one PC/SC call at a time
	wg     sync.WaitGroup

	mu     sync.Mutex
	closed bool
}

func (c *pcscCard) ATR() []byte { return bytes.Clone(c.atr) }

func (c *pcscCard) Transmit(ctx context.Context, apdu []byte) ([]byte, error) {
	if len(apdu) < 4 {
		return nil, fmt.Errorf("transmit: command APDU of %d bytes: at least 4", len(apdu))
	}
	select {
	case c.turn <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("transmit: card busy: %w", ctxErr(ctx.Err()))
	}
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		<-c.turn
		return nil, errors.New("transmit: card closed")
	}
	type result struct {
		rsp []byte
		err error
	}
	res := make(chan result, 1)
	cmd := bytes.Clone(apdu)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer func() { <-c.turn }()
		rsp, err := c.card.Transmit(cmd)
		res <- result{rsp, err}
	}()
	select {
	case r := <-res:
		if r.err != nil {
			err := mapErr(r.err, c.reader)
			c.p.set(err)
			return nil, fmt.Errorf("transmit to the card in %q: %w", c.reader, err)
		}
		if len(r.rsp) < 2 {
			return nil, fmt.Errorf("transmit to the card in %q: response of %d bytes has no status word", c.reader, len(r.rsp))
		}
		return r.rsp, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("transmit to the card in %q: %w", c.reader, ctxErr(ctx.Err()))
	}
}

func (c *pcscCard) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	c.wg.Wait()
	err := c.card.Disconnect(scard.LeaveCard)
	if err != nil && !errors.Is(err, scard.ErrRemovedCard) && !errors.Is(err, scard.ErrInvalidHandle) {
		return fmt.Errorf("disconnect the card in %q: %w", c.reader, mapErr(err, c.reader))
	}
	return nil
}

// mapErr translates PC/SC errors into the package's errors.
func mapErr(err error, reader string) error {
	var se scard.Error
	if !errors.As(err, &se) {
		return err
	}
	switch se {
	case scard.ErrNoService, scard.ErrServiceStopped:
		return fmt.Errorf("%w: the PC/SC service (pcscd) is not running", drivers.ErrDisconnected)
	case scard.ErrNoReadersAvailable, scard.ErrUnknownReader, scard.ErrReaderUnavailable:
		if reader == "" {
			return ErrNoReader
		}
		return fmt.Errorf("%w: %q", ErrNoReader, reader)
	case scard.ErrNoSmartcard:
		return ErrNoCard
	case scard.ErrRemovedCard:
		return ErrCardRemoved
	case scard.ErrTimeout:
		return drivers.ErrTimeout
	case scard.ErrProtoMismatch:
		return errors.New("the card does not speak T=1")
	case scard.ErrSharingViolation:
		return errors.New("another program holds the card")
	case scard.ErrResetCard:
		return errors.New("another program reset the card: connect again")
	case scard.ErrUnresponsiveCard, scard.ErrUnpoweredCard:
		return errors.New("the card does not answer: put it on the reader again")
	}
	return fmt.Errorf("PC/SC: %v", se)
}

func ctxErr(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return drivers.ErrTimeout
	}
	return err
}
