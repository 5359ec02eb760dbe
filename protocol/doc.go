// Package protocol is the wire contract between Kogge devices and the fleet
// server: MQTT topics, the CBOR envelope, the message types and their limits.
//
// Both sides import it and meet nowhere else. It does no I/O and imports only
// the standard library, the CBOR codec and the UUID package (see
// internal/deptest).
//
// Every payload is an [Envelope] encoded with [Encode] and read back with
// [Decode]. Decode checks the size of the payload, the capability version,
// the envelope fields and the body against the limits in limits.go; every
// problem is an [*Error] that names the field and wraps one of the sentinel
// errors ([ErrTruncated], [ErrTooLarge], [ErrVersion], [ErrMalformed],
// [ErrInvalid], [ErrTopic]). Unknown message types decode to [*Unknown] and
// unknown fields are skipped, so that a newer peer never breaks an older one.
package protocol
