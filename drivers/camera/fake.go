package camera

import (
	"context"
	"fmt"
	"image"
	"sync"
	"time"

	"github.com/kogge-fleet/kogge/drivers"
)

// Fake is an in-memory [Camera] for unit tests: it offers modes, and
// renders each frame with a function of the frame number, at once (no
// pacing).
type Fake struct {
	modes  []Mode
	render func(seq uint64, m Mode) image.Image
	now    func() time.Time

	mu      sync.Mutex
	mode    Mode
	started bool
	seq     uint64
	status  drivers.Status
}

// NewFake returns a camera offering modes whose frames render draws.
func NewFake(modes []Mode, render func(seq uint64, m Mode) image.Image) *Fake {
	return &Fake{modes: modes, render: render, now: time.Now, status: drivers.Status{State: drivers.StateOK}}
}

// SetStatus makes the camera report st; any state but ok makes Start and
// Next fail with drivers.ErrDisconnected.
func (f *Fake) SetStatus(st drivers.Status) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.status = st
}

// Start picks the nearest offered mode.
func (f *Fake) Start(ctx context.Context, want Mode) (Mode, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.status.OK() {
		return Mode{}, fmt.Errorf("start camera: %w: %s", drivers.ErrDisconnected, f.status.Reason)
	}
	f.mode, f.started, f.seq = Nearest(f.modes, want), true, 0
	return f.mode, ctx.Err()
}

// Next renders the next frame.
func (f *Fake) Next(ctx context.Context) (Frame, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case !f.started:
		return Frame{}, ErrNotStarted
	case !f.status.OK():
		return Frame{}, fmt.Errorf("next frame: %w: %s", drivers.ErrDisconnected, f.status.Reason)
	}
	if err := ctx.Err(); err != nil {
		return Frame{}, ctxErr(err)
	}
	f.seq++
	return Frame{Image: f.render(f.seq, f.mode), Time: f.now(), Seq: f.seq}, nil
}

// Stop stops the stream.
func (f *Fake) Stop() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.started = false
	return nil
}

// Status is what SetStatus set (ok at first).
func (f *Fake) Status() drivers.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status
}
