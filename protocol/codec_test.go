package protocol

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/google/uuid"
)

// rawEnvelope builds an envelope's CBOR by hand, so that tests can break it.
func rawEnvelope(t *testing.T, fields map[int]any) []byte {
	t.Helper()
	b, err := cbor.Marshal(fields)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func helloFields(t *testing.T) map[int]any {
	body, err := cbor.Marshal(map[int]any{1: idBytes(6), 2: 1, 3: 2})
	if err != nil {
		t.Fatal(err)
	}
	return map[int]any{1: 1, 2: 4, 3: idBytes(0xf4), 4: "kiosk-1", 6: int64(t0), 7: cbor.RawMessage(body)}
}

func TestDecodeRejects(t *testing.T) {
	golden, err := os.ReadFile(filepath.Join("testdata", "record.cbor"))
	if err != nil {
		t.Fatal(err)
	}
	with := func(change func(map[int]any)) []byte {
		f := helloFields(t)
		change(f)
		return rawEnvelope(t, f)
	}
	tests := []struct {
		name    string
		payload []byte
		want    error
		field   string
	}{
		{"empty", nil, ErrTruncated, "envelope"},
		{"truncated", golden[:len(golden)-3], ErrTruncated, "envelope"},
		{"oversized", make([]byte, MaxMessageSize+1), ErrTooLarge, "envelope"},
		{"not a map", []byte{0x01}, ErrMalformed, "envelope"},
		{"trailing bytes", append(bytes.Clone(golden), 0x00), ErrMalformed, "envelope"},
		{"invalid cbor", []byte{0xff}, ErrMalformed, "envelope"},
		{"version missing", with(func(f map[int]any) { delete(f, 1) }), ErrVersion, "envelope.version"},
		{"type missing", with(func(f map[int]any) { delete(f, 2) }), ErrInvalid, "envelope.type"},
		{"body missing", with(func(f map[int]any) { delete(f, 7) }), ErrInvalid, "envelope.body"},
		{"id missing", with(func(f map[int]any) { delete(f, 3) }), ErrInvalid, "envelope.id"},
		{"id too short", with(func(f map[int]any) { f[3] = []byte{1, 2, 3} }), ErrMalformed, "envelope"},
		{"sent_at missing", with(func(f map[int]any) { delete(f, 6) }), ErrInvalid, "envelope.sent_at"},
		{"device with slash", with(func(f map[int]any) { f[4] = "a/b" }), ErrInvalid, "envelope.device"},
		{"device with wildcard", with(func(f map[int]any) { f[4] = "dev+" }), ErrInvalid, "envelope.device"},
		{"device too long", with(func(f map[int]any) { f[4] = strings.Repeat("d", MaxDeviceIDLen+1) }), ErrTooLarge, "envelope.device"},
		{"version as text", with(func(f map[int]any) { f[1] = "one" }), ErrMalformed, "envelope.version"},
		{"body of wrong shape", with(func(f map[int]any) { f[7] = cbor.RawMessage{0x63, 'a', 'b', 'c'} }), ErrMalformed, "hello"},
		{"body field of wrong type", with(func(f map[int]any) {
			b, _ := cbor.Marshal(map[int]any{1: idBytes(6), 2: "low", 3: 2})
			f[7] = cbor.RawMessage(b)
		}), ErrMalformed, "hello.lowest"},
		{"nested field of wrong type", with(func(f map[int]any) {
			b, _ := cbor.Marshal(map[int]any{1: idBytes(6), 2: []map[int]any{{1: "one", 2: 2}}, 5: 1})
			f[2] = 5
			f[7] = cbor.RawMessage(b)
		}), ErrMalformed, "sync.missing"},
		{"body breaks a rule", with(func(f map[int]any) {
			b, _ := cbor.Marshal(map[int]any{1: idBytes(6), 2: 9, 3: 2})
			f[7] = cbor.RawMessage(b)
		}), ErrInvalid, "hello.lowest"},
		{"deep nesting", with(func(f map[int]any) {
			f[2] = 7
			f[7] = cbor.RawMessage(append([]byte{0xa2, 0x01, 0x01, 0x02, 0xa1, 0x61, 'k'}, append(bytes.Repeat([]byte{0x81}, 40), 0x01)...))
		}), ErrTooLarge, "envelope"},
		{"indefinite length", append([]byte{0xbf}, golden[1:]...), ErrMalformed, "envelope"},
		{"duplicate key", []byte{0xa2, 0x01, 0x01, 0x01, 0x02}, ErrMalformed, "envelope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := Decode(tt.payload)
			if err == nil {
				t.Fatalf("Decode succeeded: %+v", e)
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("error %q does not wrap %q", err, tt.want)
			}
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("error %T is not a *protocol.Error", err)
			}
			if pe.Field != tt.field {
				t.Errorf("error names field %q, want %q (%v)", pe.Field, tt.field, err)
			}
		})
	}
}

// Every proper prefix of every golden payload fails cleanly.
func TestDecodePrefixes(t *testing.T) {
	for name := range goldenEnvelopes() {
		b, err := os.ReadFile(filepath.Join("testdata", name+".cbor"))
		if err != nil {
			t.Fatal(err)
		}
		for n := range len(b) {
			if _, err := Decode(b[:n]); err == nil {
				t.Fatalf("%s: prefix of %d bytes decoded", name, n)
			} else if pe := (*Error)(nil); !errors.As(err, &pe) {
				t.Fatalf("%s: prefix of %d bytes: %T is not a *protocol.Error", name, n, err)
			}
		}
	}
}

func TestUnknownSkipped(t *testing.T) {
	// An unknown message type decodes to *Unknown.
	f := helloFields(t)
	f[2] = 999
	e, err := Decode(rawEnvelope(t, f))
	if err != nil {
		t.Fatalf("unknown type: %v", err)
	}
	u, ok := e.Body.(*Unknown)
	if !ok || u.T != 999 || len(u.Raw) == 0 {
		t.Fatalf("body = %#v, want *Unknown of type 999", e.Body)
	}
	if e.Type().Known() {
		t.Error("type 999 claims to be known")
	}

	// Unknown fields in the envelope and in the body are ignored.
	f = helloFields(t)
	f[99] = "from a newer version"
	body, _ := cbor.Marshal(map[int]any{1: idBytes(6), 2: 1, 3: 2, 42: []int{1, 2, 3}})
	f[7] = cbor.RawMessage(body)
	f[1] = CurrentCapabilityVersion + 5
	e, err = Decode(rawEnvelope(t, f))
	if err != nil {
		t.Fatalf("unknown fields: %v", err)
	}
	h, ok := e.Body.(*SyncHello)
	if !ok || h.Lowest != 1 || h.Highest != 2 {
		t.Fatalf("body = %#v", e.Body)
	}
}

func TestEncodeRejects(t *testing.T) {
	now := time.Date(2026, 11, 29, 8, 0, 0, 0, time.UTC)
	big := &Record{ID: fixedID(1), Seq: 1, Kind: "k.k", Office: "o", CreatedAt: t0, Sealed: make([]byte, MaxSealedBody)}
	blobs := make([]BlobRef, MaxBlobsPerRecord)
	for i := range blobs {
		blobs[i] = BlobRef{ID: fixedID(byte(i + 1)), Role: "photo", Size: 1, SHA256: SumOf(nil)}
	}
	big.Blobs = blobs
	big.Meta = map[string]string{}
	for i := range MaxMetaEntries {
		big.Meta[strings.Repeat("k", 40)+string(rune('a'+i%26))+string(rune('a'+i/26))] = strings.Repeat("v", MaxMetaValueLen)
	}
	tests := []struct {
		name string
		env  *Envelope
		want error
	}{
		{"no body", &Envelope{Version: 1, ID: fixedID(1), Device: "d", SentAt: t0}, ErrInvalid},
		{"bad device", NewEnvelope("a#b", 1, now, &SyncHello{Session: fixedID(1)}), ErrInvalid},
		{"record id not v7", NewEnvelope("d", 1, now, &Record{ID: uuid.MustParse("6ba7b810-9dad-11d1-80b4-00c04fd430c8"), Seq: 1, Kind: "k", Office: "o", CreatedAt: t0}), ErrInvalid},
		{"record kind upper case", NewEnvelope("d", 1, now, &Record{ID: fixedID(1), Seq: 1, Kind: "Kiosk", Office: "o", CreatedAt: t0}), ErrInvalid},
		{"chunk outside blob", NewEnvelope("d", 1, now, &BlobChunk{Record: fixedID(1), Blob: fixedID(2), Offset: 10, Total: 11, Data: []byte("ab"), SHA256: SumOf([]byte("ab"))}), ErrInvalid},
		{"rejection without reason", NewEnvelope("d", 1, now, &Ack{Records: []RecordAck{{ID: fixedID(1), Status: AckRejected}}}), ErrInvalid},
		{"expired at issue", NewEnvelope("d", 1, now, &Command{ID: fixedID(1), Name: "ping", IssuedAt: t0, ExpiresAt: t0}), ErrInvalid},
		{"record at its limits fits", NewEnvelope("d", 1, now, big), nil},
		{"whole message too large", NewEnvelope("d", 1, now, &TwinDesired{Version: 1, Config: map[string]any{"x": make([]byte, MaxMessageSize)}}), ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Encode(tt.env)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Encode = %d bytes, %v; want %v", len(b), err, tt.want)
			}
		})
	}
}

func TestChunkVerify(t *testing.T) {
	data := []byte("chunk data")
	c := &BlobChunk{Record: fixedID(1), Blob: fixedID(2), Total: 10, Data: data, SHA256: SumOf(data)}
	if err := c.Verify(); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	c.Data = []byte("chunk dat!")
	if err := c.Verify(); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Verify of corrupt chunk = %v, want ErrInvalid", err)
	}
}

func TestDecodeOn(t *testing.T) {
	e := NewEnvelope("kiosk-1", 1, time.Now(), &SyncHello{Session: fixedID(1)})
	b, err := Encode(e)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeOn("kogge/v1/d/kiosk-1/up/hello", b); err != nil {
		t.Fatalf("right topic: %v", err)
	}
	for _, topic := range []string{
		"kogge/v1/d/kiosk-2/up/hello",  // another device's topic
		"kogge/v1/d/kiosk-1/up/record", // another type's topic
		"kogge/v1/d/kiosk-1/up/nope",   // no such topic
	} {
		if _, err := DecodeOn(topic, b); !errors.Is(err, ErrTopic) {
			t.Errorf("DecodeOn(%q) = %v, want ErrTopic", topic, err)
		}
	}
}

func TestNewEnvelopeRoundTrip(t *testing.T) {
	now := time.Date(2026, 11, 29, 8, 0, 0, 123e6, time.UTC)
	e := NewEnvelope("handheld-7", 9, now, &Presence{State: Online, Session: fixedID(3), At: At(now)})
	if e.ID.Version() != 7 {
		t.Errorf("message id %v is not a UUIDv7", e.ID)
	}
	b, err := Encode(e)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.SentAt.Time() != now {
		t.Errorf("sent at %v, want %v", got.SentAt.Time(), now)
	}
	topic, err := got.Topic()
	if err != nil || topic != "kogge/v1/d/handheld-7/state" {
		t.Errorf("Topic() = %q, %v", topic, err)
	}
}

func idBytes(last byte) []byte { id := fixedID(last); return id[:] }
