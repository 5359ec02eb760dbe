package protocol

import (
	"encoding/hex"
	"encoding/json"
	"strconv"

	"github.com/google/uuid"
)

// Record is one capture: a kiosk application, an enforcement notice, a road
// report. Its body is sealed for the destination office; everything else is
// non-personal routing metadata that the fleet server may read.
type Record struct {
	// ID is a UUIDv7, chosen by the device; the server dedupes on
	// (device, ID).
	ID uuid.UUID `cbor:"1,keyasint" json:"id"`
	// Seq is the device's monotonic sequence number, from 1.
	Seq uint64 `cbor:"2,keyasint" json:"seq"`
	// Kind names the record type, for example "kiosk.application".
	Kind string `cbor:"3,keyasint" json:"kind"`
	// Office is the destination office that can open the sealed body.
	Office string `cbor:"4,keyasint" json:"office"`
	// KeyID names the office key the body and blobs are sealed for.
	KeyID string `cbor:"5,keyasint,omitempty" json:"key_id,omitempty"`
	// CreatedAt is when the capture was saved on the device.
	CreatedAt Timestamp `cbor:"6,keyasint" json:"created_at"`
	// Meta is non-personal metadata (for example the service or the
	// terminal's location label). Never personal data.
	Meta map[string]string `cbor:"7,keyasint,omitempty" json:"meta,omitempty"`
	// Sealed is the sealed personal body, opaque to everyone but the office.
	Sealed []byte `cbor:"8,keyasint,omitempty" json:"sealed,omitempty"`
	// Blobs are the large parts (photos, fingerprints) that follow as
	// BlobChunks.
	Blobs []BlobRef `cbor:"9,keyasint,omitempty" json:"blobs,omitempty"`
}

// BlobRef names a blob of a record with its size and digest.
type BlobRef struct {
	ID uuid.UUID `cbor:"1,keyasint" json:"id"`
	// Role says what the blob is, for example "photo" or "finger-2".
	Role   string `cbor:"2,keyasint" json:"role"`
	Size   uint64 `cbor:"3,keyasint" json:"size"`
	SHA256 Sum    `cbor:"4,keyasint" json:"sha256"`
}

func (*Record) Type() Type { return TypeRecord }

func (r *Record) Validate() error {
	if r.ID == uuid.Nil || r.ID.Version() != 7 {
		return invalid("record.id", "must be a UUIDv7, got %v", r.ID)
	}
	if r.Seq == 0 {
		return invalid("record.seq", "must be 1 or more")
	}
	if err := validateName("record.kind", r.Kind, MaxNameLen, false); err != nil {
		return err
	}
	if err := validateName("record.office", r.Office, MaxNameLen, true); err != nil {
		return err
	}
	if r.KeyID != "" {
		if err := validateName("record.key_id", r.KeyID, MaxNameLen, true); err != nil {
			return err
		}
	}
	if r.CreatedAt <= 0 {
		return invalid("record.created_at", "not set")
	}
	if len(r.Meta) > MaxMetaEntries {
		return fieldErr("record.meta", ErrTooLarge, "%d entries, at most %d", len(r.Meta), MaxMetaEntries)
	}
	for k, v := range r.Meta {
		if err := validateName("record.meta key", k, MaxMetaKeyLen, true); err != nil {
			return err
		}
		if len(v) > MaxMetaValueLen {
			return fieldErr("record.meta."+k, ErrTooLarge, "%d bytes, at most %d", len(v), MaxMetaValueLen)
		}
	}
	if len(r.Sealed) > MaxSealedBody {
		return fieldErr("record.sealed", ErrTooLarge, "%d bytes, at most %d", len(r.Sealed), MaxSealedBody)
	}
	if len(r.Blobs) > MaxBlobsPerRecord {
		return fieldErr("record.blobs", ErrTooLarge, "%d blobs, at most %d", len(r.Blobs), MaxBlobsPerRecord)
	}
	for i, b := range r.Blobs {
		field := "record.blobs[" + strconv.Itoa(i) + "]"
		if b.ID == uuid.Nil {
			return invalid(field+".id", "not set")
		}
		for _, other := range r.Blobs[:i] {
			if other.ID == b.ID {
				return invalid(field+".id", "%v appears twice", b.ID)
			}
		}
		if err := validateName(field+".role", b.Role, MaxNameLen, false); err != nil {
			return err
		}
		if b.Size == 0 || b.Size > MaxBlobSize {
			return fieldErr(field+".size", ErrTooLarge, "%d bytes, must be 1 to %d", b.Size, MaxBlobSize)
		}
		if b.SHA256.IsZero() {
			return invalid(field+".sha256", "not set")
		}
	}
	return nil
}

// BlobChunk carries bytes [Offset, Offset+len(Data)) of a blob of Total bytes.
type BlobChunk struct {
	Record uuid.UUID `cbor:"1,keyasint" json:"record"`
	Blob   uuid.UUID `cbor:"2,keyasint" json:"blob"`
	Offset uint64    `cbor:"3,keyasint" json:"offset"`
	Total  uint64    `cbor:"4,keyasint" json:"total"`
	Data   []byte    `cbor:"5,keyasint" json:"data"`
	// SHA256 is the digest of Data; see Verify.
	SHA256 Sum `cbor:"6,keyasint" json:"sha256"`
}

func (*BlobChunk) Type() Type { return TypeBlobChunk }

func (c *BlobChunk) Validate() error {
	switch {
	case c.Record == uuid.Nil:
		return invalid("chunk.record", "not set")
	case c.Blob == uuid.Nil:
		return invalid("chunk.blob", "not set")
	case c.Total == 0 || c.Total > MaxBlobSize:
		return fieldErr("chunk.total", ErrTooLarge, "%d bytes, must be 1 to %d", c.Total, MaxBlobSize)
	case len(c.Data) == 0:
		return invalid("chunk.data", "empty")
	case len(c.Data) > MaxChunkData:
		return fieldErr("chunk.data", ErrTooLarge, "%d bytes, at most %d", len(c.Data), MaxChunkData)
	case c.Offset >= c.Total || uint64(len(c.Data)) > c.Total-c.Offset:
		return invalid("chunk.offset", "bytes %d+%d lie outside a blob of %d bytes", c.Offset, len(c.Data), c.Total)
	case c.SHA256.IsZero():
		return invalid("chunk.sha256", "not set")
	}
	return nil
}

// Verify checks the chunk's data against its digest. It is separate from
// Validate so that a receiver can answer a corrupt chunk with a rejection
// that names the chunk.
func (c *BlobChunk) Verify() error {
	if SumOf(c.Data) != c.SHA256 {
		return invalid("chunk.sha256", "data of blob %v at offset %d does not match its digest", c.Blob, c.Offset)
	}
	return nil
}

// AckStatus is the server's verdict on a record or a chunk.
type AckStatus uint8

const (
	// AckStored: durably stored now.
	AckStored AckStatus = 1
	// AckDuplicate: stored before; the device may treat it as stored.
	AckDuplicate AckStatus = 2
	// AckRejected: refused for a reason; the device keeps the record, marks
	// it and reports it, and does not retry blindly.
	AckRejected AckStatus = 3
)

var ackStatusNames = map[AckStatus]string{AckStored: "stored", AckDuplicate: "duplicate", AckRejected: "rejected"}

func (s AckStatus) String() string               { return enumName(ackStatusNames, s) }
func (s AckStatus) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Ack is the server's application-level acknowledgement, sent only after the
// acknowledged data is durably stored. It batches records, chunks and command
// results.
//
// The server stores a device's records in sequence order: a record whose
// predecessor it lacks is neither stored nor acknowledged, and the device's
// retransmission (oldest unacknowledged first) fills the gap. Likewise a
// chunk is stored only at the offset up to which the blob is complete.
type Ack struct {
	Records []RecordAck `cbor:"1,keyasint,omitempty" json:"records,omitempty"`
	Chunks  []ChunkAck  `cbor:"2,keyasint,omitempty" json:"chunks,omitempty"`
	// Results names the command results the server has stored; the device
	// stops resending them.
	Results []uuid.UUID `cbor:"3,keyasint,omitempty" json:"results,omitempty"`
}

// RecordAck is the verdict on one record.
type RecordAck struct {
	ID     uuid.UUID `cbor:"1,keyasint" json:"id"`
	Status AckStatus `cbor:"2,keyasint" json:"status"`
	Reason string    `cbor:"3,keyasint,omitempty" json:"reason,omitempty"`
}

// ChunkAck is the verdict on one chunk, named by blob and offset. Complete
// is set on the ack that finds the whole blob assembled and verified.
type ChunkAck struct {
	Blob     uuid.UUID `cbor:"1,keyasint" json:"blob"`
	Offset   uint64    `cbor:"2,keyasint" json:"offset"`
	Status   AckStatus `cbor:"3,keyasint" json:"status"`
	Reason   string    `cbor:"4,keyasint,omitempty" json:"reason,omitempty"`
	Complete bool      `cbor:"5,keyasint,omitempty" json:"complete,omitempty"`
}

func (*Ack) Type() Type { return TypeAck }

func (a *Ack) Validate() error {
	if len(a.Records)+len(a.Chunks)+len(a.Results) == 0 {
		return invalid("ack", "acknowledges nothing")
	}
	if len(a.Results) > MaxAckItems {
		return fieldErr("ack.results", ErrTooLarge, "%d entries, at most %d", len(a.Results), MaxAckItems)
	}
	for i, id := range a.Results {
		if id == uuid.Nil {
			return invalid("ack.results["+strconv.Itoa(i)+"]", "not set")
		}
	}
	if len(a.Records) > MaxAckItems {
		return fieldErr("ack.records", ErrTooLarge, "%d entries, at most %d", len(a.Records), MaxAckItems)
	}
	if len(a.Chunks) > MaxAckItems {
		return fieldErr("ack.chunks", ErrTooLarge, "%d entries, at most %d", len(a.Chunks), MaxAckItems)
	}
	for i, r := range a.Records {
		field := "ack.records[" + strconv.Itoa(i) + "]"
		if r.ID == uuid.Nil {
			return invalid(field+".id", "not set")
		}
		if err := validateVerdict(field, r.Status, r.Reason); err != nil {
			return err
		}
	}
	for i, c := range a.Chunks {
		field := "ack.chunks[" + strconv.Itoa(i) + "]"
		if c.Blob == uuid.Nil {
			return invalid(field+".blob", "not set")
		}
		if err := validateVerdict(field, c.Status, c.Reason); err != nil {
			return err
		}
	}
	return nil
}

func validateVerdict(field string, s AckStatus, reason string) error {
	if _, ok := ackStatusNames[s]; !ok {
		return invalid(field+".status", "unknown status %d", s)
	}
	if s == AckRejected && reason == "" {
		return invalid(field+".reason", "a rejection needs a reason")
	}
	return validateText(field+".reason", reason)
}

// SyncHello opens every session: the device says which of its sequence
// numbers it still holds unacknowledged, and the server answers with a
// SyncState.
type SyncHello struct {
	// Session identifies the connection; the SyncState echoes it.
	Session uuid.UUID `cbor:"1,keyasint" json:"session"`
	// Lowest is the lowest sequence the device still holds unacknowledged,
	// 0 if none. The device never sends a sequence below it again: what
	// the server lacks below it was wiped on the device (the wipe-unsent
	// command), and the server moves past that gap instead of waiting.
	Lowest uint64 `cbor:"2,keyasint,omitempty" json:"lowest,omitempty"`
	// Highest is the highest sequence the device has assigned, 0 if none.
	Highest uint64 `cbor:"3,keyasint,omitempty" json:"highest,omitempty"`
}

func (*SyncHello) Type() Type { return TypeSyncHello }

func (h *SyncHello) Validate() error {
	if h.Session == uuid.Nil {
		return invalid("hello.session", "not set")
	}
	if h.Lowest > h.Highest {
		return invalid("hello.lowest", "%d is above highest %d", h.Lowest, h.Highest)
	}
	return nil
}

// SeqRange is the closed range of sequence numbers [From, To].
type SeqRange struct {
	From uint64 `cbor:"1,keyasint" json:"from"`
	To   uint64 `cbor:"2,keyasint" json:"to"`
}

// Contains reports whether seq lies in the range.
func (r SeqRange) Contains(seq uint64) bool { return seq >= r.From && seq <= r.To }

// BlobProgress says how much of a blob the server holds: the first Have bytes.
type BlobProgress struct {
	Record uuid.UUID `cbor:"1,keyasint" json:"record"`
	Blob   uuid.UUID `cbor:"2,keyasint" json:"blob"`
	Have   uint64    `cbor:"3,keyasint" json:"have"`
}

// SyncState answers a SyncHello. Of the sequences in [hello.Lowest,
// hello.Highest], the server lacks exactly those in Missing and holds all
// others, so the device may mark those stored. Blobs lists the incomplete
// blobs of stored records, so that uploads resume where they stopped.
// Truncated is set when the lists were cut at MaxGaps; the device then sends
// another SyncHello once it has sent what was listed.
//
// Stored is the server's watermark for the device: every sequence up to it
// is stored, refused or wiped. A device whose highest sequence is below it
// has lost its store (a damaged file moved aside) and numbers anew from
// 1: it must not mark anything stored from this answer, but renumber its
// unacknowledged records above Stored and say hello again.
type SyncState struct {
	Session   uuid.UUID      `cbor:"1,keyasint" json:"session"`
	Missing   []SeqRange     `cbor:"2,keyasint,omitempty" json:"missing,omitempty"`
	Blobs     []BlobProgress `cbor:"3,keyasint,omitempty" json:"blobs,omitempty"`
	Truncated bool           `cbor:"4,keyasint,omitempty" json:"truncated,omitempty"`
	// ServerTime lets the device measure its clock offset.
	ServerTime Timestamp `cbor:"5,keyasint" json:"server_time"`
	Stored     uint64    `cbor:"6,keyasint,omitempty" json:"stored,omitempty"`
}

func (*SyncState) Type() Type { return TypeSyncState }

func (s *SyncState) Validate() error {
	if s.Session == uuid.Nil {
		return invalid("sync.session", "not set")
	}
	if len(s.Missing) > MaxGaps {
		return fieldErr("sync.missing", ErrTooLarge, "%d ranges, at most %d", len(s.Missing), MaxGaps)
	}
	if len(s.Blobs) > MaxGaps {
		return fieldErr("sync.blobs", ErrTooLarge, "%d entries, at most %d", len(s.Blobs), MaxGaps)
	}
	var prev uint64
	for i, r := range s.Missing {
		if r.From == 0 || r.From > r.To || (i > 0 && r.From <= prev) {
			return invalid("sync.missing["+strconv.Itoa(i)+"]", "ranges must be ascending, disjoint and start at 1 or more")
		}
		prev = r.To
	}
	for i, b := range s.Blobs {
		if b.Record == uuid.Nil || b.Blob == uuid.Nil {
			return invalid("sync.blobs["+strconv.Itoa(i)+"]", "record and blob must be set")
		}
	}
	if s.ServerTime <= 0 {
		return invalid("sync.server_time", "not set")
	}
	return nil
}

// PeripheralState is the state of a device's peripheral.
type PeripheralState uint8

const (
	PeripheralOK       PeripheralState = 1
	PeripheralDegraded PeripheralState = 2
	PeripheralMissing  PeripheralState = 3
	PeripheralError    PeripheralState = 4
)

var peripheralStateNames = map[PeripheralState]string{
	PeripheralOK: "ok", PeripheralDegraded: "degraded", PeripheralMissing: "missing", PeripheralError: "error",
}

func (s PeripheralState) String() string               { return enumName(peripheralStateNames, s) }
func (s PeripheralState) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Peripheral is the state of one peripheral (camera, printer, …).
type Peripheral struct {
	Name   string          `cbor:"1,keyasint" json:"name"`
	Kind   string          `cbor:"2,keyasint" json:"kind"`
	State  PeripheralState `cbor:"3,keyasint" json:"state"`
	Reason string          `cbor:"4,keyasint,omitempty" json:"reason,omitempty"`
}

// Heartbeat is the device's health, sent every few seconds and on change.
type Heartbeat struct {
	// QueueDepth is the number of records not yet acknowledged.
	QueueDepth uint32 `cbor:"1,keyasint" json:"queue_depth"`
	// OldestUnsentMillis is the age of the oldest unacknowledged record.
	OldestUnsentMillis uint64 `cbor:"2,keyasint,omitempty" json:"oldest_unsent_ms,omitempty"`
	// DiskFree is free space on the store's file system, in bytes.
	DiskFree uint64 `cbor:"3,keyasint" json:"disk_free"`
	// BudgetUsed and BudgetTotal are the store's size budget, in bytes.
	BudgetUsed  uint64 `cbor:"4,keyasint" json:"budget_used"`
	BudgetTotal uint64 `cbor:"5,keyasint" json:"budget_total"`
	// Full is set while new captures are refused for lack of space.
	Full bool `cbor:"6,keyasint,omitempty" json:"full,omitempty"`
	// Battery is the charge in percent, or -1 without a battery.
	Battery     int8         `cbor:"7,keyasint" json:"battery"`
	Peripherals []Peripheral `cbor:"8,keyasint,omitempty" json:"peripherals,omitempty"`
	Software    string       `cbor:"9,keyasint" json:"software"`
	// Clock is the device's clock when the heartbeat was made.
	Clock Timestamp `cbor:"10,keyasint" json:"clock"`
	// LastSync is when the server last acknowledged something.
	LastSync Timestamp `cbor:"11,keyasint,omitempty" json:"last_sync,omitempty"`
	// ClockOffsetMillis is the device's estimate of server clock − device
	// clock.
	ClockOffsetMillis int64 `cbor:"12,keyasint,omitempty" json:"clock_offset_ms,omitempty"`
}

func (*Heartbeat) Type() Type { return TypeHeartbeat }

func (h *Heartbeat) Validate() error {
	if h.BudgetTotal > 0 && h.BudgetUsed > h.BudgetTotal {
		return invalid("heartbeat.budget_used", "%d exceeds the budget of %d", h.BudgetUsed, h.BudgetTotal)
	}
	if h.Battery < -1 || h.Battery > 100 {
		return invalid("heartbeat.battery", "%d is not a percentage (or -1)", h.Battery)
	}
	if len(h.Peripherals) > MaxPeripherals {
		return fieldErr("heartbeat.peripherals", ErrTooLarge, "%d entries, at most %d", len(h.Peripherals), MaxPeripherals)
	}
	for i, p := range h.Peripherals {
		field := "heartbeat.peripherals[" + strconv.Itoa(i) + "]"
		if err := validateName(field+".name", p.Name, MaxNameLen, true); err != nil {
			return err
		}
		if err := validateName(field+".kind", p.Kind, MaxNameLen, false); err != nil {
			return err
		}
		if _, ok := peripheralStateNames[p.State]; !ok {
			return invalid(field+".state", "unknown state %d", p.State)
		}
		if err := validateText(field+".reason", p.Reason); err != nil {
			return err
		}
	}
	if h.Software == "" {
		return invalid("heartbeat.software", "not set")
	}
	if err := validateText("heartbeat.software", h.Software); err != nil {
		return err
	}
	if h.Clock <= 0 {
		return invalid("heartbeat.clock", "not set")
	}
	return nil
}

// TwinDesired is the configuration the server wants a device to run,
// published retained. Config is free-form; its schema belongs to the app.
type TwinDesired struct {
	Version uint64         `cbor:"1,keyasint" json:"version"`
	Config  map[string]any `cbor:"2,keyasint,omitempty" json:"config,omitempty"`
}

func (*TwinDesired) Type() Type { return TypeTwinDesired }

func (t *TwinDesired) Validate() error {
	if t.Version == 0 {
		return invalid("twin.version", "must be 1 or more")
	}
	return nil
}

// TwinReported is what the device runs: the applied version, or the version it
// refused and why.
type TwinReported struct {
	// Version is the applied configuration's version, 0 if none yet.
	Version uint64 `cbor:"1,keyasint" json:"version"`
	// Rejected is a desired version the device refused, with Reason.
	Rejected uint64 `cbor:"2,keyasint,omitempty" json:"rejected,omitempty"`
	Reason   string `cbor:"3,keyasint,omitempty" json:"reason,omitempty"`
	// Config is the effective configuration, if the device reports it.
	Config map[string]any `cbor:"4,keyasint,omitempty" json:"config,omitempty"`
}

func (*TwinReported) Type() Type { return TypeTwinReported }

func (t *TwinReported) Validate() error {
	if t.Rejected != 0 && t.Reason == "" {
		return invalid("twin.reason", "a refusal needs a reason")
	}
	return validateText("twin.reason", t.Reason)
}

// Command asks a device to do something once.
type Command struct {
	ID        uuid.UUID         `cbor:"1,keyasint" json:"id"`
	Name      string            `cbor:"2,keyasint" json:"name"`
	Args      map[string]string `cbor:"3,keyasint,omitempty" json:"args,omitempty"`
	IssuedAt  Timestamp         `cbor:"4,keyasint" json:"issued_at"`
	ExpiresAt Timestamp         `cbor:"5,keyasint" json:"expires_at"`
}

func (*Command) Type() Type { return TypeCommand }

func (c *Command) Validate() error {
	if c.ID == uuid.Nil {
		return invalid("command.id", "not set")
	}
	if err := validateName("command.name", c.Name, MaxNameLen, false); err != nil {
		return err
	}
	if len(c.Args) > MaxCommandArgs {
		return fieldErr("command.args", ErrTooLarge, "%d entries, at most %d", len(c.Args), MaxCommandArgs)
	}
	for k, v := range c.Args {
		if err := validateName("command.args key", k, MaxNameLen, true); err != nil {
			return err
		}
		if err := validateText("command.args."+k, v); err != nil {
			return err
		}
	}
	if c.IssuedAt <= 0 {
		return invalid("command.issued_at", "not set")
	}
	if c.ExpiresAt <= c.IssuedAt {
		return invalid("command.expires_at", "must be after issued_at")
	}
	return nil
}

// Outcome is how a command ended.
type Outcome uint8

const (
	OutcomeOK       Outcome = 1
	OutcomeFailed   Outcome = 2
	OutcomeExpired  Outcome = 3 // arrived after ExpiresAt; not run
	OutcomeRejected Outcome = 4 // unknown command, bad arguments, missing confirmation; not run
)

var outcomeNames = map[Outcome]string{
	OutcomeOK: "ok", OutcomeFailed: "failed", OutcomeExpired: "expired", OutcomeRejected: "rejected",
}

func (o Outcome) String() string               { return enumName(outcomeNames, o) }
func (o Outcome) MarshalText() ([]byte, error) { return []byte(o.String()), nil }

// CommandResult reports how a command ended. A device sends it again until the
// server has it; the server keeps the first.
type CommandResult struct {
	ID      uuid.UUID `cbor:"1,keyasint" json:"id"`
	Outcome Outcome   `cbor:"2,keyasint" json:"outcome"`
	Message string    `cbor:"3,keyasint,omitempty" json:"message,omitempty"`
	Output  []byte    `cbor:"4,keyasint,omitempty" json:"output,omitempty"`
	At      Timestamp `cbor:"5,keyasint" json:"at"`
}

func (*CommandResult) Type() Type { return TypeCommandResult }

func (r *CommandResult) Validate() error {
	if r.ID == uuid.Nil {
		return invalid("result.id", "not set")
	}
	if _, ok := outcomeNames[r.Outcome]; !ok {
		return invalid("result.outcome", "unknown outcome %d", r.Outcome)
	}
	if err := validateText("result.message", r.Message); err != nil {
		return err
	}
	if len(r.Output) > MaxCommandOutput {
		return fieldErr("result.output", ErrTooLarge, "%d bytes, at most %d", len(r.Output), MaxCommandOutput)
	}
	if r.At <= 0 {
		return invalid("result.at", "not set")
	}
	return nil
}

// PresenceState says whether a device is connected.
type PresenceState uint8

const (
	Online  PresenceState = 1
	Offline PresenceState = 2
)

var presenceNames = map[PresenceState]string{Online: "online", Offline: "offline"}

func (s PresenceState) String() string               { return enumName(presenceNames, s) }
func (s PresenceState) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Presence is retained on the device's state topic: Online on connect,
// Offline as the last will (and on a clean disconnect).
type Presence struct {
	State    PresenceState `cbor:"1,keyasint" json:"state"`
	Session  uuid.UUID     `cbor:"2,keyasint" json:"session"`
	Software string        `cbor:"3,keyasint,omitempty" json:"software,omitempty"`
	At       Timestamp     `cbor:"4,keyasint" json:"at"`
}

func (*Presence) Type() Type { return TypePresence }

func (p *Presence) Validate() error {
	if _, ok := presenceNames[p.State]; !ok {
		return invalid("presence.state", "unknown state %d", p.State)
	}
	if p.Session == uuid.Nil {
		return invalid("presence.session", "not set")
	}
	if err := validateText("presence.software", p.Software); err != nil {
		return err
	}
	if p.At <= 0 {
		return invalid("presence.at", "not set")
	}
	return nil
}

// DeliveryState is what happened to a record after the server stored it.
type DeliveryState uint8

const (
	// Delivered: the office's bridge handed it to the procedure.
	Delivered DeliveryState = 1
	// Accepted: the procedure confirmed it with a reference number.
	Accepted DeliveryState = 2
	// Closed: the case is closed (for example a road report fixed).
	Closed DeliveryState = 3
	// Failed: delivery failed for good; the office will follow up.
	Failed DeliveryState = 4
	// Erased: the body was erased (retention limit or erasure request).
	Erased DeliveryState = 5
	// InProgress: the procedure is working on it (for example a road report
	// being repaired).
	InProgress DeliveryState = 6
)

var deliveryStateNames = map[DeliveryState]string{
	Delivered: "delivered", Accepted: "accepted", Closed: "closed", Failed: "failed",
	Erased: "erased", InProgress: "in-progress",
}

func (s DeliveryState) String() string               { return enumName(deliveryStateNames, s) }
func (s DeliveryState) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// RecordStatus tells a device what became of its records downstream.
type RecordStatus struct {
	Items []StatusItem `cbor:"1,keyasint" json:"items"`
}

// StatusItem is the state of one record.
type StatusItem struct {
	Record uuid.UUID     `cbor:"1,keyasint" json:"record"`
	State  DeliveryState `cbor:"2,keyasint" json:"state"`
	// Reference is the procedure's reference number, if it gave one.
	Reference string    `cbor:"3,keyasint,omitempty" json:"reference,omitempty"`
	Note      string    `cbor:"4,keyasint,omitempty" json:"note,omitempty"`
	At        Timestamp `cbor:"5,keyasint" json:"at"`
}

func (*RecordStatus) Type() Type { return TypeRecordStatus }

func (s *RecordStatus) Validate() error {
	if len(s.Items) == 0 {
		return invalid("status.items", "empty")
	}
	if len(s.Items) > MaxAckItems {
		return fieldErr("status.items", ErrTooLarge, "%d entries, at most %d", len(s.Items), MaxAckItems)
	}
	for i, it := range s.Items {
		field := "status.items[" + strconv.Itoa(i) + "]"
		if it.Record == uuid.Nil {
			return invalid(field+".record", "not set")
		}
		if _, ok := deliveryStateNames[it.State]; !ok {
			return invalid(field+".state", "unknown state %d", it.State)
		}
		if err := validateText(field+".reference", it.Reference); err != nil {
			return err
		}
		if err := validateText(field+".note", it.Note); err != nil {
			return err
		}
		if it.At <= 0 {
			return invalid(field+".at", "not set")
		}
	}
	return nil
}

// Unknown is the body of a message type this build does not know. Receivers
// skip it; koggectl shows its raw bytes.
type Unknown struct {
	T   Type
	Raw []byte
}

func (u *Unknown) Type() Type    { return u.T }
func (*Unknown) Validate() error { return nil }

// MarshalJSON renders an unknown body as its type number and raw bytes.
func (u *Unknown) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Type int    `json:"unknown_type"`
		Raw  string `json:"raw_hex"`
	}{int(u.T), hex.EncodeToString(u.Raw)})
}

func validateText(field, s string) error {
	if len(s) > MaxTextLen {
		return fieldErr(field, ErrTooLarge, "%d bytes, at most %d", len(s), MaxTextLen)
	}
	return nil
}

func enumName[E ~uint8](names map[E]string, e E) string {
	if n, ok := names[e]; ok {
		return n
	}
	return "unknown(" + strconv.Itoa(int(e)) + ")"
}
