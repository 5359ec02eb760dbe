package ingest

import (
	"github.com/fxamacker/cbor/v2"
	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/protocol"
)

// A record that protocol.Decode refuses (a field beyond its limit, a broken
// rule, a version this build does not read) still has to be answered: the
// server stores a device's records in sequence order, so a record that is
// never answered would hold up every later record of the device for good.
// salvageRecord reads just the record's id and sequence from such a payload,
// so that the ingest can refuse it by name and keep its place in the
// sequence. The field numbers are the contract's (protocol/codec.go and
// protocol/messages.go); protocol does not export a lenient decoder.

type salvageEnvelope struct {
	Type protocol.Type   `cbor:"2,keyasint"`
	Body cbor.RawMessage `cbor:"7,keyasint"`
}

type salvageBody struct {
	ID  uuid.UUID `cbor:"1,keyasint"`
	Seq uint64    `cbor:"2,keyasint"`
}

// salvageMode decodes with the contract's bounds.
func salvageMode() (cbor.DecMode, error) {
	return cbor.DecOptions{
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		IndefLength:      cbor.IndefLengthForbidden,
		TagsMd:           cbor.TagsForbidden,
		MaxNestedLevels:  16,
		MaxArrayElements: 4096,
		MaxMapPairs:      1024,
	}.DecMode()
}

// salvageRecord returns the id and sequence of the record in payload, or
// ok false when they cannot be read with confidence.
func salvageRecord(dm cbor.DecMode, payload []byte) (id uuid.UUID, seq uint64, ok bool) {
	if len(payload) == 0 || len(payload) > protocol.MaxMessageSize {
		return uuid.Nil, 0, false
	}
	var env salvageEnvelope
	if err := dm.Unmarshal(payload, &env); err != nil || env.Type != protocol.TypeRecord || len(env.Body) == 0 {
		return uuid.Nil, 0, false
	}
	var b salvageBody
	if err := dm.Unmarshal(env.Body, &b); err != nil || b.ID == uuid.Nil || b.Seq == 0 {
		return uuid.Nil, 0, false
	}
	return b.ID, b.Seq, true
}
