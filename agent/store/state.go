package store

import (
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/protocol"
)

// State is where a record stands, from "saved" on the device to what the
// office did with it. The numbers are stored in the database: never reuse
// or renumber them.
type State uint8

const (
	// Saved: durable on the device, not yet acknowledged by the server.
	Saved State = 1
	// Stored: the server acknowledged it; the sealed body is gone from the
	// device.
	Stored State = 2
	// Delivered: the office's bridge handed it to the procedure.
	Delivered State = 3
	// Accepted: the procedure confirmed it, usually with a reference.
	Accepted State = 4
	// Closed: the case is closed.
	Closed State = 5
	// InProgress: the procedure is working on it.
	InProgress State = 6
	// Failed: delivery failed for good; the office follows up.
	Failed State = 7
	// Erased: the body was erased downstream, or the record was wiped from
	// the device before it was sent (see WipeUnsent).
	Erased State = 8
	// Rejected: the server refused the record; it stays on the device with
	// the reason and is not sent again.
	Rejected State = 9
)

var stateNames = [...]string{
	Saved: "saved", Stored: "stored", Delivered: "delivered", Accepted: "accepted",
	Closed: "closed", InProgress: "in-progress", Failed: "failed", Erased: "erased",
	Rejected: "rejected",
}

// String returns the state's name, for example "in-progress".
func (s State) String() string {
	if s.valid() {
		return stateNames[s]
	}
	return "state(" + strconv.Itoa(int(s)) + ")"
}

// MarshalText renders the state by name (JSON).
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

func (s State) valid() bool { return s >= Saved && int(s) < len(stateNames) }

// atServer reports whether the state implies that the server holds the
// record.
func (s State) atServer() bool { return s >= Stored && s <= Erased }

// StateOf maps a downstream state from the server to a State.
func StateOf(d protocol.DeliveryState) (State, bool) {
	switch d {
	case protocol.Delivered:
		return Delivered, true
	case protocol.Accepted:
		return Accepted, true
	case protocol.Closed:
		return Closed, true
	case protocol.Failed:
		return Failed, true
	case protocol.Erased:
		return Erased, true
	case protocol.InProgress:
		return InProgress, true
	}
	return 0, false
}

// Entry is what the device keeps about a record for its user interface: the
// non-personal metadata and the record's state. It never holds the sealed
// body.
type Entry struct {
	ID        uuid.UUID
	Seq       uint64
	Kind      string
	Office    string
	CreatedAt time.Time
	Meta      map[string]string
	State     State
	// Reference is the procedure's reference number, once it gave one.
	Reference string
	// Reason says why the server rejected the record.
	Reason string
	// Note is the server's last note on the record's state.
	Note      string
	UpdatedAt time.Time
}
