package sync

import (
	"time"

	"github.com/google/uuid"
)

// EventKind says what an Event reports.
type EventKind uint8

const (
	// EventSynced: the server answered a SyncHello; a session is running.
	EventSynced EventKind = iota + 1
	// EventSent: a record went out for the first time since the engine started.
	EventSent
	// EventStored: the server stored a record (or had it already); its
	// sealed body is gone from the device.
	EventStored
	// EventRejected: the server refused a record for Reason. It stays on
	// the device, marked, and is not sent again.
	EventRejected
	// EventBlobComplete: the server holds a whole blob, verified.
	EventBlobComplete
	// EventBlobRejected: the server refused a chunk of a blob for Reason;
	// the blob is tried again after MaxBackoff or in the next session.
	EventBlobRejected
)

var eventNames = map[EventKind]string{
	EventSynced: "synced", EventSent: "sent", EventStored: "stored", EventRejected: "rejected",
	EventBlobComplete: "blob-complete", EventBlobRejected: "blob-rejected",
}

func (k EventKind) String() string {
	if n, ok := eventNames[k]; ok {
		return n
	}
	return "unknown"
}

// Event is something that happened to a record, a blob or the session.
type Event struct {
	Kind   EventKind
	Record uuid.UUID // record events and blob events
	Seq    uint64    // record events
	Blob   uuid.UUID // blob events
	Reason string    // rejections
}

// Stats are the engine's counters since it started.
type Stats struct {
	// Online is set while the transport is connected; Synced once the
	// server has answered the session's SyncHello.
	Online, Synced bool
	// Sessions counts the SyncStates accepted.
	Sessions uint64
	// InFlight is the number of records sent and not yet acknowledged.
	InFlight int

	RecordsSent     uint64 // record publishes, retransmissions included
	RecordsStored   uint64 // records acknowledged as stored or duplicate
	Duplicates      uint64 // of those, acknowledged as duplicate
	RecordsRejected uint64
	MarkedBySync    uint64 // records a SyncState showed the server already had
	Retransmits     uint64 // times the engine went back to the oldest unacknowledged record or chunk
	ChunksSent      uint64
	ChunkBytesSent  uint64
	BlobsComplete   uint64
	BlobsRejected   uint64
	ResultsSent     uint64
	ResultsReported uint64

	// Malformed counts downlink messages that failed to decode or did not
	// fit their topic; Foreign those meant for another device; Stale acks
	// and SyncStates that answer nothing in flight.
	Malformed, Foreign, Stale uint64

	// LastSync is when the server last acknowledged something or answered
	// a hello.
	LastSync time.Time
	// ClockOffset estimates server clock − device clock, from the last
	// SyncState; ClockKnown says whether there was one.
	ClockOffset time.Duration
	ClockKnown  bool
}
