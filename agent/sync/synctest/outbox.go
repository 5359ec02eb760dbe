package synctest

import (
	"context"
	"fmt"
	"io"
	"slices"
	gosync "sync"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/agent/store"
	"github.com/kogge-fleet/kogge/agent/sync"
	"github.com/kogge-fleet/kogge/protocol"
)

// Outbox is an in-memory sync.Outbox with the semantics of agent/store:
// records in sequence order, sealed bodies dropped on MarkStored, blob data
// dropped on MarkBlobComplete. It is safe for concurrent use.
type Outbox struct {
	mu      gosync.Mutex
	seq     uint64
	recs    []*entry // ascending seq
	byID    map[uuid.UUID]*entry
	blobs   map[uuid.UUID][]byte // present blob data
	results map[uuid.UUID][]byte // unreported
	calls   map[string]int
	fail    map[string]error
	after   map[string]hook
}

type hook struct {
	call int
	f    func()
}

type entry struct {
	rec      protocol.Record
	stored   bool
	rejected string
}

var _ sync.Outbox = (*Outbox)(nil)

// NewOutbox returns an empty outbox.
func NewOutbox() *Outbox {
	return &Outbox{
		byID:    map[uuid.UUID]*entry{},
		blobs:   map[uuid.UUID][]byte{},
		results: map[uuid.UUID][]byte{},
		calls:   map[string]int{},
		fail:    map[string]error{},
		after:   map[string]hook{},
	}
}

// Add saves a capture like store.Save and returns its record.
func (o *Outbox) Add(c store.Capture) protocol.Record {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.seq++
	r := protocol.Record{
		ID: uuid.Must(uuid.NewV7()), Seq: o.seq, Kind: c.Kind, Office: c.Office, KeyID: c.KeyID,
		CreatedAt: protocol.At(time.Now()), Meta: c.Meta, Sealed: c.Sealed,
	}
	for _, b := range c.Blobs {
		id := uuid.Must(uuid.NewV7())
		r.Blobs = append(r.Blobs, protocol.BlobRef{ID: id, Role: b.Role, Size: uint64(len(b.Data)), SHA256: protocol.SumOf(b.Data)})
		o.blobs[id] = slices.Clone(b.Data)
	}
	e := &entry{rec: r}
	o.recs = append(o.recs, e)
	o.byID[r.ID] = e
	return r
}

// AddResult queues an encoded CommandResult envelope as unreported.
func (o *Outbox) AddResult(id uuid.UUID, payload []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.results[id] = payload
}

// FailNext makes the next call of the named method fail with err.
func (o *Outbox) FailNext(method string, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.fail[method] = err
}

// After runs f once the named method's call number n has returned (counting
// from 1), on the caller's goroutine: a way to make things happen between
// two calls.
func (o *Outbox) After(method string, n int, f func()) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.after[method] = hook{call: n, f: f}
}

// Calls returns how often the named method was called.
func (o *Outbox) Calls(method string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.calls[method]
}

// hook schedules the After hook of method if this call is the one; it
// runs once o.mu is released (deferred before the unlock, so it runs after
// it).
func (o *Outbox) hook(method string) {
	h, ok := o.after[method]
	if !ok || h.call != o.calls[method] {
		return
	}
	delete(o.after, method)
	o.mu.Unlock()
	h.f()
	o.mu.Lock()
}

func (o *Outbox) enter(method string) error {
	o.calls[method]++
	if err, ok := o.fail[method]; ok {
		delete(o.fail, method)
		return err
	}
	return nil
}

// Unsent returns the records neither stored nor rejected.
func (o *Outbox) Unsent() []protocol.Record {
	o.mu.Lock()
	defer o.mu.Unlock()
	var rs []protocol.Record
	for _, e := range o.recs {
		if !e.stored && e.rejected == "" {
			rs = append(rs, e.rec)
		}
	}
	return rs
}

// Stored reports whether a record was marked stored.
func (o *Outbox) Stored(id uuid.UUID) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	e, ok := o.byID[id]
	return ok && e.stored
}

// Rejected returns the reason a record was rejected with, "" if it was not.
func (o *Outbox) Rejected(id uuid.UUID) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if e, ok := o.byID[id]; ok {
		return e.rejected
	}
	return ""
}

// BlobsLeft returns how many blobs still have their data on the device.
func (o *Outbox) BlobsLeft() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.blobs)
}

// SealedLeft returns how many records still hold a sealed body.
func (o *Outbox) SealedLeft() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, e := range o.recs {
		if e.rec.Sealed != nil {
			n++
		}
	}
	return n
}

// ResultsLeft returns how many command results are unreported.
func (o *Outbox) ResultsLeft() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.results)
}

// Wipe deletes the unsent records and their blobs, like store.WipeUnsent.
func (o *Outbox) Wipe() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	o.recs = slices.DeleteFunc(o.recs, func(e *entry) bool {
		if e.stored || e.rejected != "" {
			return false
		}
		for _, b := range e.rec.Blobs {
			delete(o.blobs, b.ID)
		}
		delete(o.byID, e.rec.ID)
		n++
		return true
	})
	return n
}

func (o *Outbox) Bounds(ctx context.Context) (lowest, highest uint64, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.enter("Bounds"); err != nil {
		return 0, 0, err
	}
	defer o.hook("Bounds")
	for _, e := range o.recs {
		if !e.stored && e.rejected == "" {
			lowest = e.rec.Seq
			break
		}
	}
	return lowest, o.seq, nil
}

func (o *Outbox) Pending(ctx context.Context, afterSeq uint64, limit int) ([]protocol.Record, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.enter("Pending"); err != nil {
		return nil, err
	}
	if limit < 1 {
		return nil, fmt.Errorf("limit %d", limit)
	}
	var rs []protocol.Record
	for _, e := range o.recs {
		if e.rec.Seq > afterSeq && !e.stored && e.rejected == "" {
			rs = append(rs, e.rec)
			if len(rs) == limit {
				break
			}
		}
	}
	return rs, nil
}

func (o *Outbox) MarkStored(ctx context.Context, ids ...uuid.UUID) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.enter("MarkStored"); err != nil {
		return err
	}
	for _, id := range ids {
		if e, ok := o.byID[id]; ok {
			e.stored = true
			e.rejected = ""
			e.rec.Sealed = nil
		}
	}
	return nil
}

func (o *Outbox) MarkRejected(ctx context.Context, id uuid.UUID, reason string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.enter("MarkRejected"); err != nil {
		return err
	}
	e, ok := o.byID[id]
	if !ok {
		return fmt.Errorf("record %v: %w", id, store.ErrNotFound)
	}
	if !e.stored {
		e.rejected = reason
	}
	return nil
}

func (o *Outbox) PendingBlobs(ctx context.Context, limit int) ([]store.PendingBlob, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.enter("PendingBlobs"); err != nil {
		return nil, err
	}
	var bs []store.PendingBlob
	for _, e := range o.recs {
		if e.rejected != "" {
			continue
		}
		for _, b := range e.rec.Blobs {
			if _, ok := o.blobs[b.ID]; !ok {
				continue
			}
			if len(bs) == limit {
				return bs, nil
			}
			bs = append(bs, store.PendingBlob{Record: e.rec.ID, Blob: b.ID, Role: b.Role, Size: b.Size, SHA256: b.SHA256, Seq: e.rec.Seq})
		}
	}
	return bs, nil
}

func (o *Outbox) ReadBlob(ctx context.Context, blob uuid.UUID, off int64, p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.enter("ReadBlob"); err != nil {
		return 0, err
	}
	data, ok := o.blobs[blob]
	if !ok {
		return 0, fmt.Errorf("read blob %v: %w", blob, store.ErrNotFound)
	}
	if off >= int64(len(data)) {
		return 0, io.EOF
	}
	n := copy(p, data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (o *Outbox) MarkBlobComplete(ctx context.Context, blob uuid.UUID) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.enter("MarkBlobComplete"); err != nil {
		return err
	}
	delete(o.blobs, blob)
	return nil
}

func (o *Outbox) UnreportedResults(ctx context.Context, limit int) (map[uuid.UUID][]byte, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.enter("UnreportedResults"); err != nil {
		return nil, err
	}
	m := map[uuid.UUID][]byte{}
	for id, b := range o.results {
		if len(m) == limit {
			break
		}
		m[id] = b
	}
	return m, nil
}

func (o *Outbox) MarkResultsReported(ctx context.Context, ids ...uuid.UUID) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.enter("MarkResultsReported"); err != nil {
		return err
	}
	for _, id := range ids {
		delete(o.results, id)
	}
	return nil
}

// Rebase renumbers every record above+1, above+2, … in sequence order, like
// store.Rebase, unless every record lies above above already and the
// counter is not below it.
func (o *Outbox) Rebase(ctx context.Context, above uint64) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.enter("Rebase"); err != nil {
		return 0, err
	}
	defer o.hook("Rebase")
	if o.seq >= above && (len(o.recs) == 0 || o.recs[0].rec.Seq > above) {
		return 0, nil
	}
	next := above
	for _, e := range o.recs {
		next++
		e.rec.Seq = next
	}
	o.seq = max(o.seq, next)
	return len(o.recs), nil
}
