// Package bridgetest provides stand-ins for testing bridges and connectors:
// an in-memory delivery queue that satisfies bridge.Source, sealed sample
// records for an office, and opened sample cases.
package bridgetest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/fleet-server/bridge"
	"github.com/kogge-fleet/kogge/protocol"
)

// State is where a record stands in the Source.
type State int

const (
	Pending State = iota // waiting for a lease
	Leased               // leased to a bridge
	Acked                // acknowledged with a receipt
	Dead                 // failed permanently, or too often
)

func (s State) String() string {
	return [...]string{"pending", "leased", "acked", "dead"}[s]
}

// Update is one Source.Update call.
type Update struct {
	ID        uuid.UUID
	State     protocol.DeliveryState
	Reference string
	Note      string
}

// Entry is what the Source knows about one record.
type Entry struct {
	Delivery bridge.Delivery // the last lease (Attempt counts every lease)
	State    State
	Receipt  bridge.Receipt
	Reason   string // of the last failure
	Failures int
	Acks     int // Ack calls, including harmless repeats
}

// Source is an in-memory delivery queue with the semantics of the fleet
// server's: leases with a visibility timeout, redelivery after expiry,
// attempts counted, dead letters after MaxAttempts or a permanent failure.
// Its methods are safe for concurrent use.
type Source struct {
	// MaxAttempts makes a record dead after this many failed attempts;
	// 0 means never.
	MaxAttempts int
	// Clock returns the current time; default time.Now.
	Clock func() time.Time

	mu        sync.Mutex
	changed   chan struct{}
	order     []uuid.UUID
	entries   map[uuid.UUID]*entry
	updates   []Update
	leaseErrs []error
	leases    int
}

type entry struct {
	Entry
	blobs map[uuid.UUID][]byte
	until time.Time
}

// NewSource returns an empty Source.
func NewSource() *Source {
	return &Source{changed: make(chan struct{}), entries: map[uuid.UUID]*entry{}}
}

var _ bridge.Source = (*Source)(nil)

func (s *Source) now() time.Time {
	if s.Clock != nil {
		return s.Clock()
	}
	return time.Now()
}

// notify wakes the waiters; s.mu is held.
func (s *Source) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Add queues a sealed record. Blobs maps blob ids to their sealed bytes.
func (s *Source) Add(r Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := r.Delivery
	d.Attempt = 0
	s.entries[d.ID] = &entry{Entry: Entry{Delivery: d}, blobs: r.Blobs}
	s.order = append(s.order, d.ID)
	s.notify()
}

// FailLeases makes the next Lease calls return these errors, one each.
func (s *Source) FailLeases(errs ...error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.leaseErrs = append(s.leaseErrs, errs...)
}

// Tamper flips a byte of a stored blob.
func (s *Source) Tamper(id, blob uuid.UUID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.entries[id].blobs[blob]
	b[len(b)/2] ^= 0x40
}

// TakeOver ends the lease of a record and leases it to another holder for
// visibility, in one step, as if its lease ran out and another bridge
// leased it at once.
func (s *Source) TakeOver(id uuid.UUID, visibility time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entries[id]
	e.State = Leased
	e.Delivery.Attempt++
	e.until = s.now().Add(visibility)
	e.Delivery.LeasedUntil = e.until
	s.notify()
}

func (s *Source) Lease(ctx context.Context, office string, max int, visibility time.Duration) ([]bridge.Delivery, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.leases++
	if len(s.leaseErrs) > 0 {
		err := s.leaseErrs[0]
		s.leaseErrs = s.leaseErrs[1:]
		return nil, err
	}
	now := s.now()
	var out []bridge.Delivery
	for _, id := range s.order {
		if len(out) >= max {
			break
		}
		e := s.entries[id]
		if e.Delivery.Office != office {
			continue
		}
		if e.State == Pending || e.State == Leased && !now.Before(e.until) {
			e.State = Leased
			e.Delivery.Attempt++
			e.until = now.Add(visibility)
			e.Delivery.LeasedUntil = e.until
			d := e.Delivery
			d.Sealed = slices.Clone(d.Sealed)
			out = append(out, d)
		}
	}
	if len(out) > 0 {
		s.notify()
	}
	return out, nil
}

func (s *Source) Blob(ctx context.Context, id, blob uuid.UUID, w io.Writer) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	e, ok := s.entries[id]
	var b []byte
	if ok {
		b, ok = e.blobs[blob]
	}
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("blob %v of record %v: %w", blob, id, bridge.ErrNotFound)
	}
	_, err := io.Copy(w, bytes.NewReader(b))
	return err
}

// current reports whether attempt holds the lease of e (or held it last).
func (s *Source) current(e *entry, attempt int) bool {
	return e.Delivery.Attempt == attempt
}

func (s *Source) Ack(ctx context.Context, id uuid.UUID, attempt int, r bridge.Receipt) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[id]
	if !ok {
		return bridge.ErrNotFound
	}
	e.Acks++
	s.notify() // every ack counts, also a refused one
	switch {
	case e.State == Acked:
		return nil
	case e.State == Dead || !s.current(e, attempt):
		return bridge.ErrLeaseLost
	}
	e.State, e.Receipt = Acked, r
	return nil
}

func (s *Source) Fail(ctx context.Context, id uuid.UUID, attempt int, reason string, permanent bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[id]
	if !ok {
		return bridge.ErrNotFound
	}
	if e.State != Leased || !s.current(e, attempt) {
		return bridge.ErrLeaseLost
	}
	e.Failures++
	e.Reason = reason
	if permanent || s.MaxAttempts > 0 && e.Failures >= s.MaxAttempts {
		e.State = Dead
	} else {
		e.State = Pending
	}
	s.notify()
	return nil
}

func (s *Source) Update(ctx context.Context, id uuid.UUID, state protocol.DeliveryState, reference, note string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.entries[id]; !ok {
		return bridge.ErrNotFound
	}
	s.updates = append(s.updates, Update{ID: id, State: state, Reference: reference, Note: note})
	s.notify()
	return nil
}

// Entry returns what the Source knows about a record.
func (s *Source) Entry(id uuid.UUID) (Entry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[id]
	if !ok {
		return Entry{}, false
	}
	return e.Entry, true
}

// Updates returns the Update calls so far.
func (s *Source) Updates() []Update {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.updates)
}

// Leases returns the number of Lease calls so far.
func (s *Source) Leases() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.leases
}

// WaitFor waits until cond holds or ctx ends. cond may call the Source's
// methods; it is checked again after every change.
func (s *Source) WaitFor(ctx context.Context, cond func(s *Source) bool) error {
	for {
		s.mu.Lock()
		ch := s.changed
		s.mu.Unlock()
		if cond(s) {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("waiting for the delivery queue: %w", ctx.Err())
		}
	}
}

// Settled reports whether every record is acked or dead.
func (s *Source) Settled() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.entries {
		if e.State != Acked && e.State != Dead {
			return false
		}
	}
	return true
}

// Count returns the number of records in state st.
func (s *Source) Count(st State) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, e := range s.entries {
		if e.State == st {
			n++
		}
	}
	return n
}
