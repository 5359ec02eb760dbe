package payment

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/kogge-fleet/kogge/drivers"
)

var _ Terminal = (*Fake)(nil)

// Fake is a [Terminal] for unit tests. Script the next outcomes with
// Push; without a script every payment is Paid.
type Fake struct {
	mu       sync.Mutex
	script   []Result
	payments []int64
	status   drivers.Status
	trace    int
	booked   map[int64]bool // amounts booked by Unknown outcomes, for Reconcile
	total    int64
}

// NewFake returns a ready fake terminal.
func NewFake() *Fake {
	return &Fake{status: drivers.Status{State: drivers.StateOK}, booked: make(map[int64]bool)}
}

// Push queues the outcome of a coming payment. For an Unknown outcome,
// set Code to 0 to make a later Reconcile find it paid, anything else to
// find it not made.
func (f *Fake) Push(r Result) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.script = append(f.script, r)
}

// SetStatus sets what Status reports.
func (f *Fake) SetStatus(s drivers.Status) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.status = s
}

// Payments returns the amounts asked for so far.
func (f *Fake) Payments() []int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]int64(nil), f.payments...)
}

// Pay implements [Terminal].
func (f *Fake) Pay(ctx context.Context, cents int64) (Result, error) {
	if err := ctx.Err(); err != nil {
		return Result{Outcome: Aborted, Amount: cents, Reason: err.Error()}, errors.Join(drivers.ErrTimeout, err)
	}
	if cents <= 0 {
		return Result{Outcome: Aborted, Amount: cents, Reason: "the amount must be positive"}, errors.New("payment: the amount must be positive")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.payments = append(f.payments, cents)
	r := Result{Outcome: Paid}
	if len(f.script) > 0 {
		r, f.script = f.script[0], f.script[1:]
	}
	r.Amount = cents
	switch r.Outcome {
	case Paid:
		f.trace++
		r.Trace, r.Time = f.trace, time.Now()
		f.total += cents
	case Unknown:
		f.booked[cents] = r.Code == 0
		r.Pending = &Pending{Amount: cents, Started: time.Now(), LastTrace: f.trace}
	}
	return r, nil
}

// Reconcile implements [Terminal].
func (f *Fake) Reconcile(ctx context.Context, p Pending) (Result, error) {
	if err := ctx.Err(); err != nil {
		return Result{Outcome: Unknown, Amount: p.Amount, Pending: &p}, errors.Join(drivers.ErrTimeout, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	paid, ok := f.booked[p.Amount]
	delete(f.booked, p.Amount)
	if ok && paid {
		f.trace++
		f.total += p.Amount
		return Result{Outcome: Paid, Amount: p.Amount, Trace: f.trace, Time: time.Now()}, nil
	}
	return Result{Outcome: Aborted, Amount: p.Amount, Reason: "the terminal has no transaction on record: this payment was not made"}, nil
}

// EndOfDay implements [Terminal].
func (f *Fake) EndOfDay(ctx context.Context) (Batch, error) {
	if err := ctx.Err(); err != nil {
		return Batch{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	b := Batch{Total: f.total, Time: time.Now()}
	f.total = 0
	return b, nil
}

// Status implements [Terminal].
func (f *Fake) Status() drivers.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status
}
