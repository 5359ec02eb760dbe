package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/agent/store"
	"github.com/kogge-fleet/kogge/protocol/seal"
)

// Receipt says that a capture is durable on the device.
type Receipt struct {
	ID        uuid.UUID
	Seq       uint64
	CreatedAt time.Time
	// KeyID names the office key the capture was sealed for.
	KeyID string
}

// Capture is what an app captures for an office. Body and the blobs hold
// personal data in plain; Capture seals them for the office before anything
// touches the disk. Kind, Office and Meta travel unsealed and must hold no
// personal data.
type Capture struct {
	Kind   string
	Office string
	Meta   map[string]string
	Body   []byte
	Blobs  []Blob
}

// Blob is a large part of a capture: a photo, a fingerprint, a signature.
type Blob struct {
	// ID is how the capture's document names the blob (casefile photos,
	// fingers, signatures); zero lets the store assign one.
	ID   uuid.UUID
	Role string
	Data []byte
}

// ErrNoOfficeKey means the device knows no key for the capture's office, so
// it cannot seal for it.
var ErrNoOfficeKey = errors.New("no sealing key for the office")

// Capture seals a capture for its office's current key, saves it durably and
// returns its receipt only then; the sync engine sends it as soon as it can.
// A full store gives an error wrapping store.ErrFull that says how full it
// is. The caller should zero Body and the blobs' data afterwards; Capture
// keeps no reference to them.
func (a *Agent) Capture(ctx context.Context, c Capture) (Receipt, error) {
	key, err := a.officeKey(c.Office)
	if err != nil {
		return Receipt{}, err
	}
	sc := store.Capture{Kind: c.Kind, Office: c.Office, KeyID: key.KeyID, Meta: c.Meta}
	if sc.Sealed, err = seal.Seal(key, c.Body); err != nil {
		return Receipt{}, fmt.Errorf("capture for %s: %w", c.Office, err)
	}
	for _, b := range c.Blobs {
		sealed, err := seal.Seal(key, b.Data)
		if err != nil {
			return Receipt{}, fmt.Errorf("capture for %s: blob %s: %w", c.Office, b.Role, err)
		}
		sc.Blobs = append(sc.Blobs, store.BlobData{ID: b.ID, Role: b.Role, Data: sealed})
	}
	rec, err := a.st.Save(ctx, sc)
	if err != nil {
		a.health.Poke()
		return Receipt{}, err
	}
	a.engine.Poke()
	return Receipt{ID: rec.ID, Seq: rec.Seq, CreatedAt: rec.CreatedAt.Time(), KeyID: key.KeyID}, nil
}

// officeKey is the office's current key: from the twin, else provisioned.
func (a *Agent) officeKey(office string) (seal.Recipient, error) {
	if r, ok := a.twin.Current().Offices[office]; ok {
		return r, nil
	}
	if r, ok := a.offices[office]; ok {
		return r, nil
	}
	return seal.Recipient{}, fmt.Errorf("%w %q: the device's configuration names none yet; "+
		"captures for this office are possible once the fleet server sends its key", ErrNoOfficeKey, office)
}

// State is where a record stands, as the app shows it.
type State uint8

const (
	// Saved: durable on the device.
	Saved State = iota + 1
	// Sent: on its way to the server, not yet acknowledged.
	Sent
	// Stored: the server stored it; its sealed body is gone from the device.
	Stored
	// Delivered: the office's bridge handed it to the procedure.
	Delivered
	// Accepted: the procedure confirmed it, usually with a reference.
	Accepted
	// InProgress: the procedure is working on it.
	InProgress
	// Closed: the case is closed.
	Closed
	// Failed: delivery failed for good; the office follows up.
	Failed
	// Erased: the body was erased, downstream or by a wipe before sending.
	Erased
	// Rejected: the server refused it; Reason says why.
	Rejected
)

var stateNames = map[State]string{
	Saved: "saved", Sent: "sent", Stored: "stored", Delivered: "delivered", Accepted: "accepted",
	InProgress: "in-progress", Closed: "closed", Failed: "failed", Erased: "erased", Rejected: "rejected",
}

func (s State) String() string {
	if n, ok := stateNames[s]; ok {
		return n
	}
	return fmt.Sprintf("state(%d)", s)
}

var fromStore = map[store.State]State{
	store.Saved: Saved, store.Stored: Stored, store.Delivered: Delivered, store.Accepted: Accepted,
	store.InProgress: InProgress, store.Closed: Closed, store.Failed: Failed, store.Erased: Erased,
	store.Rejected: Rejected,
}

// Status is a record's state with what the server said about it.
type Status struct {
	ID        uuid.UUID
	Seq       uint64
	State     State
	Reference string // the procedure's reference number
	Reason    string // why the server rejected it
	Note      string
	At        time.Time
}

// statusOf is a record's state now: a saved record the engine has sent is
// "sent".
func (a *Agent) statusOf(e store.Entry) Status {
	s := entryStatus(e)
	if s.State == Saved {
		a.mu.Lock()
		if a.sent[e.ID] {
			s.State = Sent
		}
		a.mu.Unlock()
	}
	return s
}

// entryStatus is the state a store entry records.
func entryStatus(e store.Entry) Status {
	return Status{ID: e.ID, Seq: e.Seq, State: fromStore[e.State], Reference: e.Reference, Reason: e.Reason, Note: e.Note, At: e.UpdatedAt}
}

// Status returns a record's state; store.ErrNotFound if the device does not
// know it.
func (a *Agent) Status(ctx context.Context, id uuid.UUID) (Status, error) {
	e, err := a.st.Get(ctx, id)
	if err != nil {
		return Status{}, err
	}
	return a.statusOf(e), nil
}

// Watch returns a channel of state changes of every record, and a function
// that ends the subscription. The channel keeps the newest 256 changes; a
// watcher that falls behind misses older ones and can catch up with
// Status. Changes are delivered while Run runs.
func (a *Agent) Watch() (<-chan Status, func()) {
	ch := make(chan Status, 256)
	a.mu.Lock()
	a.watchers[ch] = struct{}{}
	a.mu.Unlock()
	return ch, func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		if _, ok := a.watchers[ch]; ok {
			delete(a.watchers, ch)
			close(ch)
		}
	}
}

// runWatch fans the store's state changes and the engine's "sent" events
// out to the watchers. Each change reports its own state: a record's
// "saved" stays "saved" even if the engine has sent it by the time the
// change is fanned out, and its "sent" follows as an event of its own.
func (a *Agent) runWatch(ctx context.Context) error {
	defer a.unwatch()
	for {
		var s Status
		// A store change goes first when both wait: the store publishes a
		// capture's "saved" when it commits, before the engine is woken to
		// send it.
		select {
		case e, ok := <-a.entries:
			if !ok {
				return nil // the store is closing
			}
			s = a.entryChange(e)
		default:
			select {
			case <-ctx.Done():
				return nil
			case e, ok := <-a.entries:
				if !ok {
					return nil
				}
				s = a.entryChange(e)
			case s = <-a.events:
			}
		}
		a.mu.Lock()
		for ch := range a.watchers {
			for {
				select {
				case ch <- s:
				default:
					select { // full: drop the oldest
					case <-ch:
					default:
					}
					continue
				}
				break
			}
		}
		a.mu.Unlock()
	}
}

// entryChange is the status a store change reports. A record past "saved"
// is no longer in flight.
func (a *Agent) entryChange(e store.Entry) Status {
	if e.State != store.Saved {
		a.mu.Lock()
		delete(a.sent, e.ID)
		a.mu.Unlock()
	}
	return entryStatus(e)
}

// leveled filters a handler by a level that can change at run time.
type leveled struct {
	slog.Handler
	level slog.Leveler
}

func (h leveled) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.level.Level() && h.Handler.Enabled(ctx, l)
}

func (h leveled) WithAttrs(attrs []slog.Attr) slog.Handler {
	return leveled{h.Handler.WithAttrs(attrs), h.level}
}

func (h leveled) WithGroup(name string) slog.Handler {
	return leveled{h.Handler.WithGroup(name), h.level}
}
