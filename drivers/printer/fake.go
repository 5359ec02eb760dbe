package printer

import (
	"context"
	"errors"
	"sync"

	"github.com/kogge-fleet/kogge/drivers"
)

var _ Printer = (*Fake)(nil)

// Fake is a [Printer] for unit tests: it keeps the jobs it is given and
// can be told to be out of paper, open or unreachable.
type Fake struct {
	mu          sync.Mutex
	jobs        [][]byte
	paperOut    bool
	paperLow    bool
	coverOpen   bool
	unreachable bool
}

// NewFake returns a ready printer.
func NewFake() *Fake { return &Fake{} }

// SetPaperOut, SetPaperLow, SetCoverOpen and SetUnreachable script the
// printer's state.
func (f *Fake) SetPaperOut(on bool)    { f.set(&f.paperOut, on) }
func (f *Fake) SetPaperLow(on bool)    { f.set(&f.paperLow, on) }
func (f *Fake) SetCoverOpen(on bool)   { f.set(&f.coverOpen, on) }
func (f *Fake) SetUnreachable(on bool) { f.set(&f.unreachable, on) }

func (f *Fake) set(field *bool, on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	*field = on
}

// Jobs returns copies of the jobs printed so far.
func (f *Fake) Jobs() [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([][]byte, len(f.jobs))
	for i, j := range f.jobs {
		out[i] = append([]byte(nil), j...)
	}
	return out
}

// Print implements [Printer].
func (f *Fake) Print(ctx context.Context, job []byte) error {
	if err := ctx.Err(); err != nil {
		return errors.Join(drivers.ErrTimeout, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.unreachable:
		return errors.Join(drivers.ErrDisconnected, errors.New("fake printer unreachable"))
	case f.coverOpen:
		return ErrCoverOpen
	case f.paperOut:
		return ErrPaperOut
	}
	f.jobs = append(f.jobs, append([]byte(nil), job...))
	return nil
}

// Check implements [Printer].
func (f *Fake) Check(ctx context.Context) (drivers.Status, error) {
	if err := ctx.Err(); err != nil {
		return f.Status(), errors.Join(drivers.ErrTimeout, err)
	}
	return f.Status(), nil
}

// Status implements [Printer].
func (f *Fake) Status() drivers.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.unreachable:
		return drivers.Status{State: drivers.StateMissing, Reason: "printer not reachable"}
	case f.coverOpen:
		return drivers.Status{State: drivers.StateError, Reason: "cover open: close the printer cover"}
	case f.paperOut:
		return drivers.Status{State: drivers.StateError, Reason: "paper out: load a new roll"}
	case f.paperLow:
		return drivers.Status{State: drivers.StateDegraded, Reason: "paper low: replace the roll soon"}
	}
	return drivers.Status{State: drivers.StateOK}
}
