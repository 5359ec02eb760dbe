package protocol

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"
)

// Type identifies a message type. The numbers are part of the wire contract.
type Type uint16

// The message types of capability version 1.
const (
	TypeRecord        Type = 1  // device → server: a capture
	TypeBlobChunk     Type = 2  // device → server: part of a blob
	TypeAck           Type = 3  // server → device: stored, duplicate or rejected
	TypeSyncHello     Type = 4  // device → server: what the device holds
	TypeSyncState     Type = 5  // server → device: what the server lacks
	TypeHeartbeat     Type = 6  // device → server: health
	TypeTwinDesired   Type = 7  // server → device, retained: configuration
	TypeTwinReported  Type = 8  // device → server: applied configuration
	TypeCommand       Type = 9  // server → device
	TypeCommandResult Type = 10 // device → server
	TypePresence      Type = 11 // device, retained (the last will): online or offline
	TypeRecordStatus  Type = 12 // server → device: what the office did with records
)

// typeInfo is what the contract says about one message type: its name and
// the topic suffix (after kogge/v1/d/{device}/) that carries it.
type typeInfo struct {
	name   string
	suffix string
	new    func() Message
}

var typeTable = map[Type]typeInfo{
	TypeRecord:        {"record", "up/record", func() Message { return new(Record) }},
	TypeBlobChunk:     {"chunk", "up/chunk", func() Message { return new(BlobChunk) }},
	TypeAck:           {"ack", "down/ack", func() Message { return new(Ack) }},
	TypeSyncHello:     {"hello", "up/hello", func() Message { return new(SyncHello) }},
	TypeSyncState:     {"sync", "down/sync", func() Message { return new(SyncState) }},
	TypeHeartbeat:     {"heartbeat", "up/heartbeat", func() Message { return new(Heartbeat) }},
	TypeTwinDesired:   {"twin.desired", "twin", func() Message { return new(TwinDesired) }},
	TypeTwinReported:  {"twin.reported", "up/twin", func() Message { return new(TwinReported) }},
	TypeCommand:       {"command", "down/command", func() Message { return new(Command) }},
	TypeCommandResult: {"result", "up/result", func() Message { return new(CommandResult) }},
	TypePresence:      {"presence", "state", func() Message { return new(Presence) }},
	TypeRecordStatus:  {"status", "down/status", func() Message { return new(RecordStatus) }},
}

// Types lists the known message types in numeric order.
func Types() []Type {
	ts := make([]Type, 0, len(typeTable))
	for t := Type(1); int(t) <= len(typeTable); t++ {
		ts = append(ts, t)
	}
	return ts
}

// Known reports whether this build knows the message type.
func (t Type) Known() bool { _, ok := typeTable[t]; return ok }

// String returns the type's name, or "type(N)" for an unknown one.
func (t Type) String() string {
	if info, ok := typeTable[t]; ok {
		return info.name
	}
	return "type(" + strconv.Itoa(int(t)) + ")"
}

// MarshalText renders the type by name (JSON).
func (t Type) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// FromDevice reports whether devices send this type (they publish under up/
// and to their state topic); all others are sent by the server.
func (t Type) FromDevice() bool {
	switch t {
	case TypeRecord, TypeBlobChunk, TypeSyncHello, TypeHeartbeat, TypeTwinReported,
		TypeCommandResult, TypePresence:
		return true
	}
	return false
}

// Message is the body of an envelope.
type Message interface {
	// Type returns the message type.
	Type() Type
	// Validate checks the message against the contract's rules and limits.
	Validate() error
}

// Timestamp is a point in time on the wire: milliseconds since the Unix epoch,
// UTC. Zero means "not set".
type Timestamp int64

// At returns the Timestamp of t.
func At(t time.Time) Timestamp {
	if t.IsZero() {
		return 0
	}
	return Timestamp(t.UnixMilli())
}

// Time returns the time, or the zero time for a zero Timestamp.
func (ts Timestamp) Time() time.Time {
	if ts == 0 {
		return time.Time{}
	}
	return time.UnixMilli(int64(ts)).UTC()
}

// MarshalJSON renders the time as RFC 3339, or null when not set.
func (ts Timestamp) MarshalJSON() ([]byte, error) {
	if ts == 0 {
		return []byte("null"), nil
	}
	return []byte(strconv.Quote(ts.Time().Format(time.RFC3339Nano))), nil
}

// Sum is a SHA-256 digest. It travels as a 32-byte string.
type Sum [sha256.Size]byte

// SumOf returns the SHA-256 digest of b.
func SumOf(b []byte) Sum { return sha256.Sum256(b) }

// IsZero reports whether no digest is set.
func (s Sum) IsZero() bool { return s == Sum{} }

// String returns the digest in hex.
func (s Sum) String() string { return hex.EncodeToString(s[:]) }

// MarshalBinary implements encoding.BinaryMarshaler (the CBOR form).
func (s Sum) MarshalBinary() ([]byte, error) { return s[:], nil }

// UnmarshalBinary implements encoding.BinaryUnmarshaler.
func (s *Sum) UnmarshalBinary(b []byte) error {
	if len(b) != len(s) {
		return fmt.Errorf("sha-256 digest has %d bytes, want %d", len(b), len(s))
	}
	copy(s[:], b)
	return nil
}

// MarshalText renders the digest in hex (JSON).
func (s Sum) MarshalText() ([]byte, error) { return []byte(s.String()), nil }
