package cardreader

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/kogge-fleet/kogge/drivers"
)

// Fake is an in-memory [Service] for unit tests: attach readers, insert
// cards that answer APDUs through a function, pull them out again.
type Fake struct {
	mu      sync.Mutex
	readers map[string]*fakeSlot
	order   []string
	changed chan struct{} // closed and replaced on every change
	down    bool          // PC/SC "not running"
}

type fakeSlot struct {
	atr    []byte
	handle func(apdu []byte) []byte
	gen    int // card generation: a card removed and inserted is a new card
}

// NewFake returns a fake with no readers.
func NewFake() *Fake {
	return &Fake{readers: map[string]*fakeSlot{}, changed: make(chan struct{})}
}

// Attach adds an empty reader.
func (f *Fake) Attach(reader string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.readers[reader]; !ok {
		f.readers[reader] = &fakeSlot{}
		f.order = append(f.order, reader)
	}
	f.notifyLocked()
}

// Detach unplugs a reader with its card.
func (f *Fake) Detach(reader string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.readers, reader)
	f.order = slices.DeleteFunc(f.order, func(r string) bool { return r == reader })
	f.notifyLocked()
}

// Insert puts a card with atr into reader; handle answers its APDUs with
// response APDUs.
func (f *Fake) Insert(reader string, atr []byte, handle func(apdu []byte) []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.readers[reader]
	if !ok {
		return fmt.Errorf("insert: %w: %q", ErrNoReader, reader)
	}
	s.atr, s.handle = bytes.Clone(atr), handle
	s.gen++
	f.notifyLocked()
	return nil
}

// Remove pulls the card out of reader.
func (f *Fake) Remove(reader string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s, ok := f.readers[reader]; ok {
		s.atr, s.handle = nil, nil
		s.gen++
	}
	f.notifyLocked()
}

// SetDown makes the fake behave as if pcscd was not running.
func (f *Fake) SetDown(down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = down
	f.notifyLocked()
}

func (f *Fake) notifyLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

var errFakeDown = fmt.Errorf("%w: the PC/SC service (pcscd) is not running", drivers.ErrDisconnected)

// Readers lists the attached readers.
func (f *Fake) Readers(ctx context.Context) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return nil, fmt.Errorf("list card readers: %w", errFakeDown)
	}
	return slices.Clone(f.order), ctx.Err()
}

// WaitCard blocks until a card is in reader ("" for any).
func (f *Fake) WaitCard(ctx context.Context, reader string) (Presence, error) {
	for {
		f.mu.Lock()
		ch, down := f.changed, f.down
		var found *Presence
		for _, name := range f.order {
			if s := f.readers[name]; (reader == "" || name == reader) && s.handle != nil {
				found = &Presence{Reader: name, ATR: bytes.Clone(s.atr)}
				break
			}
		}
		_, known := f.readers[reader]
		f.mu.Unlock()
		switch {
		case down:
			return Presence{}, fmt.Errorf("wait for a card: %w", errFakeDown)
		case found != nil:
			return *found, nil
		case reader != "" && !known:
			return Presence{}, fmt.Errorf("wait for a card: %w: %q", ErrNoReader, reader)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return Presence{}, fmt.Errorf("wait for a card: %w", ctxErr(ctx.Err()))
		}
	}
}

// WaitRemoved blocks until reader holds no card.
func (f *Fake) WaitRemoved(ctx context.Context, reader string) error {
	for {
		f.mu.Lock()
		ch := f.changed
		s, ok := f.readers[reader]
		empty := ok && s.handle == nil
		f.mu.Unlock()
		switch {
		case !ok:
			return fmt.Errorf("wait for the card's removal: %w: %q", ErrNoReader, reader)
		case empty:
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("wait for the card's removal: %w", ctxErr(ctx.Err()))
		}
	}
}

// Connect opens the card in reader.
func (f *Fake) Connect(ctx context.Context, reader string) (Card, error) {
	if err := ctx.Err(); err != nil {
		return nil, ctxErr(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.readers[reader]
	switch {
	case f.down:
		return nil, fmt.Errorf("connect: %w", errFakeDown)
	case !ok:
		return nil, fmt.Errorf("connect: %w: %q", ErrNoReader, reader)
	case s.handle == nil:
		return nil, fmt.Errorf("connect: %w", ErrNoCard)
	}
	return &fakeCard{f: f, reader: reader, gen: s.gen, atr: bytes.Clone(s.atr)}, nil
}

// Status: missing when "down" or without readers, ok otherwise.
func (f *Fake) Status() drivers.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.down:
		return drivers.Status{State: drivers.StateMissing, Reason: "PC/SC service not running: start pcscd"}
	case len(f.order) == 0:
		return drivers.Status{State: drivers.StateMissing, Reason: "no card reader attached: plug in the reader"}
	}
	return drivers.Status{State: drivers.StateOK}
}

// Close does nothing.
func (f *Fake) Close() error { return nil }

type fakeCard struct {
	f      *Fake
	reader string
	gen    int
	atr    []byte
	closed bool
}

func (c *fakeCard) ATR() []byte { return bytes.Clone(c.atr) }

func (c *fakeCard) Transmit(ctx context.Context, apdu []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, ctxErr(err)
	}
	if len(apdu) < 4 {
		return nil, fmt.Errorf("transmit: command APDU of %d bytes: at least 4", len(apdu))
	}
	c.f.mu.Lock()
	s, ok := c.f.readers[c.reader]
	var handle func([]byte) []byte
	if ok && s.gen == c.gen {
		handle = s.handle
	}
	c.f.mu.Unlock()
	switch {
	case c.closed:
		return nil, errors.New("transmit: card closed")
	case !ok:
		return nil, fmt.Errorf("transmit: %w: %q", ErrNoReader, c.reader)
	case handle == nil:
		return nil, fmt.Errorf("transmit: %w", ErrCardRemoved)
	}
	rsp := handle(bytes.Clone(apdu))
	if len(rsp) < 2 {
		return nil, fmt.Errorf("transmit: response of %d bytes has no status word", len(rsp))
	}
	return rsp, nil
}

func (c *fakeCard) Close() error {
	c.closed = true
	return nil
}
