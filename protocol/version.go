package protocol

// CurrentCapabilityVersion is the capability version this build speaks. It is
// sent in every envelope. Raise it for every change of the wire contract, and
// add a line to the history; never reuse a number.
//
// Changes within the v1 topic tree must be additive: new message types and new
// fields, which older peers skip. Anything else needs a new topic root.
//
// History:
//
//	1  2026-11-29  first version: envelope; Record, BlobChunk, Ack, SyncHello,
//	               SyncState, Heartbeat, TwinDesired, TwinReported, Command,
//	               CommandResult, Presence, RecordStatus.
const CurrentCapabilityVersion = 1

// MinCapabilityVersion is the oldest capability version this build decodes.
// Envelopes from newer versions are decoded; their unknown parts are skipped.
const MinCapabilityVersion = 1
