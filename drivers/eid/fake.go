package eid

import (
	"context"
	"errors"
	"sync"
)

// Fake is a [Kernel] for unit tests: the real [Client] over an in-memory
// [Emulator], every message passing through the JSON codec. Script it
// through Emulator: insert and remove cards, set their PIN retry counters,
// deactivate them or pull them mid-read.
type Fake struct {
	*Client
	Emulator *Emulator
}

// NewFake returns a connected fake with the emulator's default reader and
// no card inserted (SET_CARD or Emulator.InsertCard put one in).
func NewFake(emu EmulatorOptions, opts Options) (*Fake, error) {
	opts = opts.withDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	e := NewEmulator(emu)
	t := &memTransport{wake: make(chan struct{}, 1), closed: make(chan struct{}), emu: e}
	if err := e.Attach(t.push); err != nil {
		return nil, err
	}
	c := newClient(t, opts)
	if err := c.setAPILevel(context.Background()); err != nil {
		c.Close()
		return nil, err
	}
	return &Fake{Client: c, Emulator: e}, nil
}

// memTransport hands commands to the emulator and queues its messages.
type memTransport struct {
	emu       *Emulator
	mu        sync.Mutex
	queue     [][]byte
	wake      chan struct{}
	closed    chan struct{}
	closeOnce sync.Once
}

func (t *memTransport) push(m Message) {
	b, err := EncodeMessage(m)
	if err != nil {
		b, _ = EncodeMessage(Message{Type: MsgInternalError, Error: err.Error()})
	}
	t.mu.Lock()
	t.queue = append(t.queue, b)
	t.mu.Unlock()
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

func (t *memTransport) ReadMessage() ([]byte, error) {
	for {
		t.mu.Lock()
		if len(t.queue) > 0 {
			b := t.queue[0]
			t.queue = t.queue[1:]
			t.mu.Unlock()
			return b, nil
		}
		t.mu.Unlock()
		select {
		case <-t.wake:
		case <-t.closed:
			return nil, errors.New("fake connection closed")
		}
	}
}

func (t *memTransport) WriteMessage(ctx context.Context, data []byte) error {
	select {
	case <-t.closed:
		return errors.New("fake connection closed")
	case <-ctx.Done():
		return ctx.Err()
	default:
	}
	t.emu.HandleRaw(data)
	return nil
}

func (t *memTransport) Close() error {
	t.closeOnce.Do(func() {
		close(t.closed)
		t.emu.Detach()
	})
	return nil
}

// Drop cuts the connection as if the app died: the running workflow ends
// with drivers.ErrDisconnected and Status turns missing.
func (f *Fake) Drop() { f.Client.t.Close() }
