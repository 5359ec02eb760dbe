package protocol

import (
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/google/uuid"
)

// Envelope is what travels in every MQTT payload.
type Envelope struct {
	// Version is the sender's capability version.
	Version uint16
	// ID is a UUIDv7 chosen by the sender, unique per message.
	ID uuid.UUID
	// Device is the device the message is from or for. The server refuses
	// a message whose envelope device is not its topic device.
	Device string
	// Seq is the sender's message counter; it orders diagnostics only.
	// Records carry their durable device sequence in Record.Seq.
	Seq uint64
	// SentAt is the sender's clock when it sent the message.
	SentAt Timestamp
	// Body is the message; its Type is the envelope's type.
	Body Message
}

// NewEnvelope wraps body for device with a fresh message id.
func NewEnvelope(device string, seq uint64, sentAt time.Time, body Message) *Envelope {
	return &Envelope{
		Version: CurrentCapabilityVersion,
		ID:      uuid.Must(uuid.NewV7()),
		Device:  device,
		Seq:     seq,
		SentAt:  At(sentAt),
		Body:    body,
	}
}

// Type returns the type of the body.
func (e *Envelope) Type() Type { return e.Body.Type() }

// Topic returns the topic this envelope travels on.
func (e *Envelope) Topic() (string, error) { return TopicFor(e.Device, e.Type()) }

// wireEnvelope is the envelope's CBOR form. The body is nested CBOR, decoded
// by type once the envelope is known to be sound.
type wireEnvelope struct {
	V    uint16          `cbor:"1,keyasint" json:"version"`
	T    Type            `cbor:"2,keyasint" json:"type"`
	ID   uuid.UUID       `cbor:"3,keyasint" json:"id"`
	Dev  string          `cbor:"4,keyasint" json:"device"`
	Seq  uint64          `cbor:"5,keyasint,omitempty" json:"seq"`
	At   Timestamp       `cbor:"6,keyasint" json:"sent_at"`
	Body cbor.RawMessage `cbor:"7,keyasint" json:"body"`
}

var (
	encMode = mustEncMode()
	decMode = mustDecMode()
)

func mustEncMode() cbor.EncMode {
	em, err := cbor.EncOptions{
		Sort:          cbor.SortCoreDeterministic,
		ShortestFloat: cbor.ShortestFloat16,
		IndefLength:   cbor.IndefLengthForbidden,
		TagsMd:        cbor.TagsForbidden,
	}.EncMode()
	if err != nil {
		panic(err)
	}
	return em
}

func mustDecMode() cbor.DecMode {
	dm, err := cbor.DecOptions{
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		IndefLength:      cbor.IndefLengthForbidden,
		TagsMd:           cbor.TagsForbidden,
		MaxNestedLevels:  maxNesting,
		MaxArrayElements: maxArray,
		MaxMapPairs:      maxMapPairs,
		DefaultMapType:   reflect.TypeFor[map[string]any](),
		NaN:              cbor.NaNDecodeForbidden,
		Inf:              cbor.InfDecodeForbidden,
	}.DecMode()
	if err != nil {
		panic(err)
	}
	return dm
}

func (e *Envelope) validate() error {
	switch {
	case e.Body == nil:
		return invalid("envelope.body", "not set")
	case e.Version < MinCapabilityVersion:
		return fieldErr("envelope.version", ErrVersion, "version %d, this build reads %d to %d",
			e.Version, MinCapabilityVersion, CurrentCapabilityVersion)
	case e.ID == uuid.Nil:
		return invalid("envelope.id", "not set")
	case e.SentAt <= 0:
		return invalid("envelope.sent_at", "not set")
	}
	if err := ValidateDeviceID(e.Device); err != nil {
		err.(*Error).Field = "envelope.device"
		return err
	}
	return e.Body.Validate()
}

// Encode validates e and returns its wire form.
func Encode(e *Envelope) ([]byte, error) {
	if err := e.validate(); err != nil {
		return nil, err
	}
	var body []byte
	if u, ok := e.Body.(*Unknown); ok {
		body = u.Raw
	} else {
		var err error
		if body, err = encMode.Marshal(e.Body); err != nil {
			return nil, fieldErr(e.Type().String(), ErrMalformed, "%v", err)
		}
	}
	b, err := encMode.Marshal(wireEnvelope{
		V: e.Version, T: e.Type(), ID: e.ID, Dev: e.Device, Seq: e.Seq, At: e.SentAt, Body: body,
	})
	if err != nil {
		return nil, fieldErr("envelope", ErrMalformed, "%v", err)
	}
	if len(b) > MaxMessageSize {
		return nil, fieldErr("envelope", ErrTooLarge, "%d bytes, at most %d", len(b), MaxMessageSize)
	}
	return b, nil
}

// Decode parses and validates a payload. A body of a type this build does
// not know decodes to *Unknown without error; the receiver skips it.
func Decode(b []byte) (*Envelope, error) {
	if len(b) == 0 {
		return nil, fieldErr("envelope", ErrTruncated, "empty payload")
	}
	if len(b) > MaxMessageSize {
		return nil, fieldErr("envelope", ErrTooLarge, "%d bytes, at most %d", len(b), MaxMessageSize)
	}
	var w wireEnvelope
	if err := decMode.Unmarshal(b, &w); err != nil {
		return nil, cborErr("envelope", err)
	}
	if w.V == 0 {
		return nil, fieldErr("envelope.version", ErrVersion, "missing")
	}
	if w.T == 0 {
		return nil, invalid("envelope.type", "missing")
	}
	if len(w.Body) == 0 {
		return nil, invalid("envelope.body", "missing")
	}
	e := &Envelope{Version: w.V, ID: w.ID, Device: w.Dev, Seq: w.Seq, SentAt: w.At}
	info, known := typeTable[w.T]
	if !known {
		e.Body = &Unknown{T: w.T, Raw: w.Body}
	} else {
		msg := info.new()
		if err := decMode.Unmarshal(w.Body, msg); err != nil {
			return nil, cborErr(info.name, err)
		}
		e.Body = msg
	}
	if err := e.validate(); err != nil {
		return nil, err
	}
	return e, nil
}

// DecodeOn decodes a payload received on topic and checks that the topic
// carries the envelope's type for the envelope's device.
func DecodeOn(topic string, b []byte) (*Envelope, error) {
	t, err := ParseTopic(topic)
	if err != nil {
		return nil, err
	}
	e, err := Decode(b)
	if err != nil {
		return nil, err
	}
	if e.Device != t.Device {
		return e, fieldErr("envelope.device", ErrTopic, "envelope names device %q, the topic %q", e.Device, t.Device)
	}
	if e.Type() != t.Type {
		return e, fieldErr("envelope.type", ErrTopic, "a %v message on the %v topic", e.Type(), t.Type)
	}
	return e, nil
}

// cborErr turns a codec error into an *Error naming field.
func cborErr(field string, err error) *Error {
	var (
		syntax   *cbor.SyntaxError
		nested   *cbor.MaxNestedLevelError
		arr      *cbor.MaxArrayElementsError
		pairs    *cbor.MaxMapPairsError
		typeErr  *cbor.UnmarshalTypeError
		extra    *cbor.ExtraneousDataError
		dup      *cbor.DupMapKeyError
		indef    *cbor.IndefiniteLengthError
		tagsMd   *cbor.TagsMdError
		semantic *cbor.SemanticError
	)
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return fieldErr(field, ErrTruncated, "payload ends in the middle of an item")
	case errors.As(err, &nested), errors.As(err, &arr), errors.As(err, &pairs):
		return fieldErr(field, ErrTooLarge, "%v", err)
	case errors.As(err, &typeErr):
		return fieldErr(field+wireFieldName(typeErr.StructFieldName), ErrMalformed,
			"a CBOR %s where %s belongs", typeErr.CBORType, typeErr.GoType)
	case errors.As(err, &extra):
		return fieldErr(field, ErrMalformed, "trailing bytes after the %s", field)
	case errors.As(err, &syntax), errors.As(err, &dup), errors.As(err, &indef),
		errors.As(err, &tagsMd), errors.As(err, &semantic):
		return fieldErr(field, ErrMalformed, "%v", err)
	}
	return fieldErr(field, ErrMalformed, "%v", err)
}

// wireStructs are the structs that travel, by the name the codec gives them
// in errors.
var wireStructs = func() map[string]reflect.Type {
	m := map[string]reflect.Type{}
	for _, v := range []any{wireEnvelope{}, BlobRef{}, RecordAck{}, ChunkAck{}, SeqRange{},
		BlobProgress{}, Peripheral{}, StatusItem{}} {
		t := reflect.TypeOf(v)
		m[t.String()] = t
	}
	for _, info := range typeTable {
		t := reflect.TypeOf(info.new()).Elem()
		m[t.String()] = t
	}
	return m
}()

// wireFieldName turns the codec's "protocol.Record.3" into ".kind": the
// JSON name of the field, prefixed by its struct for nested structs.
func wireFieldName(codecName string) string {
	i := strings.LastIndexByte(codecName, '.')
	if i < 0 {
		return ""
	}
	st, ok := wireStructs[codecName[:i]]
	if !ok {
		return ""
	}
	key := codecName[i+1:]
	for f := range st.Fields() {
		tag, _, _ := strings.Cut(f.Tag.Get("cbor"), ",")
		if tag != key {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if st == reflect.TypeFor[wireEnvelope]() || st.Implements(reflect.TypeFor[Message]()) ||
			reflect.PointerTo(st).Implements(reflect.TypeFor[Message]()) {
			return "." + name
		}
		return "." + strings.ToLower(st.Name()) + "." + name
	}
	return ""
}

// jsonEnvelope is the form people read (koggectl decode).
type jsonEnvelope struct {
	Version uint16    `json:"version"`
	Type    Type      `json:"type"`
	ID      uuid.UUID `json:"id"`
	Device  string    `json:"device"`
	Seq     uint64    `json:"seq,omitempty"`
	SentAt  Timestamp `json:"sent_at"`
	Body    Message   `json:"body"`
}

// MarshalJSON renders the envelope for people; it is not a wire form.
func (e *Envelope) MarshalJSON() ([]byte, error) {
	return json.Marshal(jsonEnvelope{e.Version, e.Type(), e.ID, e.Device, e.Seq, e.SentAt, e.Body})
}
