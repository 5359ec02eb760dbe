package fingerprint

import (
	"context"
	"fmt"
	"image"
	"sync"
	"time"

	"github.com/kogge-fleet/kogge/drivers"
)

// Fake is an in-memory [Scanner] for unit tests: put a finger (an image)
// on it, take it off, unplug it.
type Fake struct {
	mu      sync.Mutex
	finger  *image.Gray
	status  drivers.Status
	changed chan struct{} // closed and replaced on every change
	now     func() time.Time
}

// NewFake returns a working scanner without a finger on it.
func NewFake() *Fake {
	return &Fake{status: drivers.Status{State: drivers.StateOK}, changed: make(chan struct{}), now: time.Now}
}

// Place puts a finger on the sensor; Capture returns img. nil lifts it.
func (f *Fake) Place(img *image.Gray) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.finger = img
	f.notifyLocked()
}

// SetStatus makes the scanner report st; any state but ok makes Capture
// and FingerPresent fail with drivers.ErrDisconnected.
func (f *Fake) SetStatus(st drivers.Status) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.status = st
	f.notifyLocked()
}

func (f *Fake) notifyLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

// Capture waits for a finger.
func (f *Fake) Capture(ctx context.Context) (Image, error) {
	for {
		f.mu.Lock()
		img, st, ch := f.finger, f.status, f.changed
		f.mu.Unlock()
		if !st.OK() {
			return Image{}, fmt.Errorf("capture: %w: %s", drivers.ErrDisconnected, st.Reason)
		}
		if img != nil {
			cp := *img
			cp.Pix = append([]byte(nil), img.Pix...)
			return Image{Gray: &cp, PPI: SensorPPI, Time: f.now()}, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return Image{}, fmt.Errorf("capture: %w: %w", ErrNoFinger, ctxErr(ctx.Err()))
		}
	}
}

// FingerPresent reports whether a finger is placed.
func (f *Fake) FingerPresent(ctx context.Context) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.status.OK() {
		return false, fmt.Errorf("detect a finger: %w: %s", drivers.ErrDisconnected, f.status.Reason)
	}
	return f.finger != nil, ctx.Err()
}

// Status is what SetStatus set (ok at first).
func (f *Fake) Status() drivers.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status
}

// Close does nothing.
func (f *Fake) Close() error { return nil }
