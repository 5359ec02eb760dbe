package delivery

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/protocol"
)

// The JSON bodies of the bridge API (see http.go). The server decodes the
// requests and bridgeclient the lease response with the strict decoders
// below: one JSON value within its size bound, no unknown fields, nothing
// after it. Every decoding error wraps ErrInvalid.

// Size bounds of the bridge API's bodies.
const (
	// MaxRequestBody bounds a request body.
	MaxRequestBody = 64 << 10
	// MaxLeaseResponse bounds a lease response: up to MaxLeaseLimit
	// records of up to protocol.MaxSealedBody each, in base64, with their
	// metadata.
	MaxLeaseResponse = MaxLeaseLimit * (protocol.MaxSealedBody*4/3 + 16<<10)
)

// LeaseRequest is the body of POST /bridge/v1/lease.
type LeaseRequest struct {
	Office       string `json:"office"`
	Max          int    `json:"max"`
	VisibilityMS int64  `json:"visibility_ms"`
}

// LeaseResponse is the answer to a lease.
type LeaseResponse struct {
	Deliveries []Delivery `json:"deliveries"`
}

// AckRequest is the body of POST /bridge/v1/records/{id}/ack.
type AckRequest struct {
	Attempt   int    `json:"attempt"`
	Reference string `json:"reference"`
	Note      string `json:"note,omitempty"`
}

// FailRequest is the body of POST /bridge/v1/records/{id}/fail.
type FailRequest struct {
	Attempt   int    `json:"attempt"`
	Reason    string `json:"reason"`
	Permanent bool   `json:"permanent"`
}

// StatusRequest is the body of POST /bridge/v1/records/{id}/status. State
// is a protocol.DeliveryState by name: delivered, in-progress, closed or
// failed.
type StatusRequest struct {
	State     string `json:"state"`
	Reference string `json:"reference,omitempty"`
	Note      string `json:"note,omitempty"`
}

// ErrorResponse is the body of every 4xx and 5xx answer.
type ErrorResponse struct {
	Error string `json:"error"`
}

// deliveryJSON is Delivery on the wire: times in RFC 3339, the sealed
// body in base64, blob digests in hex.
type deliveryJSON struct {
	ID          uuid.UUID         `json:"id"`
	Attempt     int               `json:"attempt"`
	LeasedUntil time.Time         `json:"leased_until"`
	Device      string            `json:"device"`
	Seq         uint64            `json:"seq"`
	Kind        string            `json:"kind"`
	Office      string            `json:"office"`
	KeyID       string            `json:"key_id,omitempty"`
	CreatedAt   time.Time         `json:"created_at"`
	Meta        map[string]string `json:"meta,omitempty"`
	Sealed      []byte            `json:"sealed"`
	Blobs       []blobJSON        `json:"blobs,omitempty"`
}

type blobJSON struct {
	ID     uuid.UUID `json:"id"`
	Role   string    `json:"role"`
	Size   uint64    `json:"size"`
	SHA256 string    `json:"sha256"`
}

// MarshalJSON renders a delivery as the bridge API sends it.
func (d Delivery) MarshalJSON() ([]byte, error) {
	j := deliveryJSON{
		ID: d.ID, Attempt: d.Attempt, LeasedUntil: d.LeasedUntil.UTC(), Device: d.Device, Seq: d.Seq, Kind: d.Kind,
		Office: d.Office, KeyID: d.KeyID, CreatedAt: d.CreatedAt.UTC(), Meta: d.Meta, Sealed: d.Sealed,
	}
	if j.Sealed == nil {
		j.Sealed = []byte{}
	}
	for _, b := range d.Blobs {
		j.Blobs = append(j.Blobs, blobJSON{ID: b.ID, Role: b.Role, Size: b.Size, SHA256: hex.EncodeToString(b.SHA256[:])})
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads a delivery strictly: no unknown fields, a digest of
// 64 hex digits per blob.
func (d *Delivery) UnmarshalJSON(b []byte) error {
	var j deliveryJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return err
	}
	out := Delivery{
		ID: j.ID, Attempt: j.Attempt, LeasedUntil: j.LeasedUntil, Device: j.Device, Seq: j.Seq, Kind: j.Kind,
		Office: j.Office, KeyID: j.KeyID, CreatedAt: j.CreatedAt, Meta: j.Meta, Sealed: j.Sealed,
	}
	if len(j.Blobs) > protocol.MaxBlobsPerRecord {
		return fmt.Errorf("delivery %v: %d blobs, at most %d", j.ID, len(j.Blobs), protocol.MaxBlobsPerRecord)
	}
	for i, bj := range j.Blobs {
		sum, err := hex.DecodeString(bj.SHA256)
		if err != nil || len(sum) != len(protocol.Sum{}) {
			return fmt.Errorf("delivery %v: blob %d: sha256 must be 64 hex digits", j.ID, i)
		}
		ref := protocol.BlobRef{ID: bj.ID, Role: bj.Role, Size: bj.Size}
		copy(ref.SHA256[:], sum)
		out.Blobs = append(out.Blobs, ref)
	}
	*d = out
	return nil
}

// decodeStrict decodes exactly one JSON value of at most limit bytes into v.
func decodeStrict(b []byte, limit int, v any) error {
	if len(b) > limit {
		return fmt.Errorf("%w: body of %d bytes, at most %d", ErrInvalid, len(b), limit)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return fmt.Errorf("%w: empty body: send a JSON object", ErrInvalid)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: body is not the expected JSON object: %v", ErrInvalid, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: data after the JSON object", ErrInvalid)
	}
	return nil
}

// DecodeLeaseRequest reads a lease request and checks its values.
func DecodeLeaseRequest(b []byte) (LeaseRequest, error) {
	var v LeaseRequest
	if err := decodeStrict(b, MaxRequestBody, &v); err != nil {
		return LeaseRequest{}, err
	}
	if err := ValidateOffice(v.Office); err != nil {
		return LeaseRequest{}, err
	}
	if v.Max < 1 || v.Max > 1000 {
		return LeaseRequest{}, invalidf("max %d: want 1 to 1000", v.Max)
	}
	if v.VisibilityMS < 1 || v.VisibilityMS > int64(24*time.Hour/time.Millisecond) {
		return LeaseRequest{}, invalidf("visibility_ms %d: want 1 to %d", v.VisibilityMS, int64(24*time.Hour/time.Millisecond))
	}
	return v, nil
}

// DecodeAckRequest reads an ack and checks its values.
func DecodeAckRequest(b []byte) (AckRequest, error) {
	var v AckRequest
	if err := decodeStrict(b, MaxRequestBody, &v); err != nil {
		return AckRequest{}, err
	}
	if v.Attempt < 1 {
		return AckRequest{}, invalidf("attempt %d: from 1", v.Attempt)
	}
	if v.Reference == "" {
		return AckRequest{}, invalidf("reference: an ack carries the procedure's reference number")
	}
	for _, f := range []struct{ name, v string }{{"reference", v.Reference}, {"note", v.Note}} {
		if err := checkText(f.name, f.v); err != nil {
			return AckRequest{}, err
		}
	}
	return v, nil
}

// DecodeFailRequest reads a failure report and checks its values.
func DecodeFailRequest(b []byte) (FailRequest, error) {
	var v FailRequest
	if err := decodeStrict(b, MaxRequestBody, &v); err != nil {
		return FailRequest{}, err
	}
	if v.Attempt < 1 {
		return FailRequest{}, invalidf("attempt %d: from 1", v.Attempt)
	}
	if v.Reason == "" {
		return FailRequest{}, invalidf("reason: say why the delivery failed")
	}
	if len(v.Reason) > 4*protocol.MaxTextLen {
		return FailRequest{}, invalidf("reason: %d bytes, at most %d", len(v.Reason), 4*protocol.MaxTextLen)
	}
	return v, nil
}

// DecodeStatusRequest reads a status update and returns it with its state.
func DecodeStatusRequest(b []byte) (StatusRequest, protocol.DeliveryState, error) {
	var v StatusRequest
	if err := decodeStrict(b, MaxRequestBody, &v); err != nil {
		return StatusRequest{}, 0, err
	}
	st, err := ParseState(v.State)
	if err != nil {
		return StatusRequest{}, 0, err
	}
	for _, f := range []struct{ name, v string }{{"reference", v.Reference}, {"note", v.Note}} {
		if err := checkText(f.name, f.v); err != nil {
			return StatusRequest{}, 0, err
		}
	}
	return v, st, nil
}

// DecodeLeaseResponse reads a lease response (bridgeclient).
func DecodeLeaseResponse(b []byte) (LeaseResponse, error) {
	var v LeaseResponse
	if err := decodeStrict(b, MaxLeaseResponse, &v); err != nil {
		return LeaseResponse{}, err
	}
	for i, d := range v.Deliveries {
		if d.ID == uuid.Nil || d.Attempt < 1 {
			return LeaseResponse{}, invalidf("delivery %d: needs an id and an attempt from 1", i)
		}
	}
	return v, nil
}

// ParseState returns the delivery state named s (protocol.DeliveryState's
// String form).
func ParseState(s string) (protocol.DeliveryState, error) {
	for _, st := range []protocol.DeliveryState{protocol.Delivered, protocol.Accepted, protocol.Closed,
		protocol.Failed, protocol.Erased, protocol.InProgress} {
		if st.String() == s {
			return st, nil
		}
	}
	return 0, invalidf("state %q: want delivered, in-progress, closed or failed", clip(s))
}
