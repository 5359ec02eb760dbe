package protocol

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error from this package wraps exactly one of them, so
// that callers can tell the problem with errors.Is.
var (
	// ErrTruncated: the payload ends before the item it started.
	ErrTruncated = errors.New("truncated")
	// ErrTooLarge: the payload, a field or a collection exceeds its limit.
	ErrTooLarge = errors.New("too large")
	// ErrVersion: the capability version is older than MinCapabilityVersion.
	ErrVersion = errors.New("unsupported capability version")
	// ErrMalformed: the bytes are not the CBOR this field expects.
	ErrMalformed = errors.New("malformed")
	// ErrInvalid: the value decodes but breaks a rule of the contract.
	ErrInvalid = errors.New("invalid")
	// ErrTopic: the MQTT topic is not a Kogge topic or not valid for the
	// message.
	ErrTopic = errors.New("invalid topic")
)

// Error is a problem with one field of a payload or topic.
type Error struct {
	// Field names the field, for example "record.kind" or "envelope".
	Field string
	// Err is one of the sentinel errors.
	Err error
	// Detail says what is wrong in words a person understands.
	Detail string
}

func (e *Error) Error() string {
	if e.Detail == "" {
		return fmt.Sprintf("%s: %v", e.Field, e.Err)
	}
	return fmt.Sprintf("%s: %v: %s", e.Field, e.Err, e.Detail)
}

func (e *Error) Unwrap() error { return e.Err }

func fieldErr(field string, sentinel error, format string, args ...any) *Error {
	return &Error{Field: field, Err: sentinel, Detail: fmt.Sprintf(format, args...)}
}

func invalid(field, format string, args ...any) *Error {
	return fieldErr(field, ErrInvalid, format, args...)
}
