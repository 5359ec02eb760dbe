package gnss

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/kogge-fleet/kogge/drivers"
)

var _ Receiver = (*Fake)(nil)

// Fake is a scriptable [Receiver] for unit tests of code that uses
// positions. The zero value has no fix and reports StateMissing.
type Fake struct {
	mu       sync.Mutex
	pos      Position // Received is zero without a fix
	status   drivers.Status
	changed  chan struct{} // closed and replaced on every change
	watchers map[chan Position]struct{}
}

// NewFake returns a fake without a fix.
func NewFake() *Fake {
	return &Fake{
		status:   drivers.Status{State: drivers.StateMissing, Reason: "fake receiver: no fix set"},
		changed:  make(chan struct{}),
		watchers: make(map[chan Position]struct{}),
	}
}

// SetFix makes f a receiver with fix, received now, state OK, and delivers
// it to watchers.
func (f *Fake) SetFix(fix Fix) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pos = Position{Fix: fix, Received: time.Now()}
	f.status = drivers.Status{State: drivers.StateOK}
	for ch := range f.watchers {
		select {
		case <-ch:
		default:
		}
		ch <- f.pos
	}
	close(f.changed)
	f.changed = make(chan struct{})
}

// SetStatus sets the state Status reports.
func (f *Fake) SetStatus(s drivers.Status) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.status = s
}

// Position implements [Receiver].
func (f *Fake) Position(ctx context.Context) (Position, error) {
	for {
		f.mu.Lock()
		p, changed := f.pos, f.changed
		f.mu.Unlock()
		if !p.Received.IsZero() {
			p.Age = time.Since(p.Received)
			return p, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return Position{}, fmt.Errorf("%w: %w", ErrNoFix, ctx.Err())
		}
	}
}

// Watch implements [Receiver].
func (f *Fake) Watch(ctx context.Context) <-chan Position {
	ch := make(chan Position, 1)
	f.mu.Lock()
	defer f.mu.Unlock()
	if ctx.Err() != nil {
		close(ch)
		return ch
	}
	f.watchers[ch] = struct{}{}
	context.AfterFunc(ctx, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		delete(f.watchers, ch)
		close(ch)
	})
	return ch
}

// Status implements [Receiver].
func (f *Fake) Status() drivers.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status
}
