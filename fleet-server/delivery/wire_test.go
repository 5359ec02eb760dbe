package delivery

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/protocol"
)

func TestDeliveryJSONRoundTrip(t *testing.T) {
	d := Delivery{
		ID: uuid.Must(uuid.NewV7()), Attempt: 3, LeasedUntil: time.UnixMilli(1_800_000_030_000).UTC(), Device: "kiosk-7",
		Seq: 42, Kind: "kiosk.application", Office: "amt-a", KeyID: "amt-a-2026", CreatedAt: time.UnixMilli(1_799_999_000_000).UTC(),
		Meta: map[string]string{"service": "id-card"}, Sealed: []byte{0, 1, 2, 0xff},
		Blobs: []protocol.BlobRef{{ID: uuid.Must(uuid.NewV7()), Role: "photo", Size: 51200, SHA256: protocol.SumOf([]byte("x"))}},
	}
	b, err := json.Marshal(LeaseResponse{Deliveries: []Delivery{d}})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"sealed":"AAEC/w=="`, `"sha256":"` + protocol.SumOf([]byte("x")).String() + `"`,
		`"leased_until":"2027-01-15T08:00:30Z"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("%s lacks %s", b, want)
		}
	}
	got, err := DecodeLeaseResponse(b)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got.Deliveries[0]) != fmt.Sprint(d) {
		t.Errorf("round trip:\n%+v\nwant\n%+v", got.Deliveries[0], d)
	}
}

func TestDecoders(t *testing.T) {
	tests := []struct {
		name   string
		decode func([]byte) error
		body   string
		ok     bool
	}{
		{"lease", decodeLease, `{"office":"amt-a","max":16,"visibility_ms":30000}`, true},
		{"lease unknown field", decodeLease, `{"office":"amt-a","max":16,"visibility_ms":30000,"x":1}`, false},
		{"lease bad office", decodeLease, `{"office":"amt/a","max":16,"visibility_ms":30000}`, false},
		{"lease max 0", decodeLease, `{"office":"amt-a","max":0,"visibility_ms":30000}`, false},
		{"lease no visibility", decodeLease, `{"office":"amt-a","max":1}`, false},
		{"lease two values", decodeLease, `{"office":"amt-a","max":1,"visibility_ms":1}{}`, false},
		{"lease array", decodeLease, `[]`, false},
		{"lease empty", decodeLease, ``, false},
		{"ack", decodeAck, `{"attempt":1,"reference":"PA-1","note":"ok"}`, true},
		{"ack no reference", decodeAck, `{"attempt":1}`, false},
		{"ack attempt 0", decodeAck, `{"attempt":0,"reference":"PA-1"}`, false},
		{"ack attempt string", decodeAck, `{"attempt":"1","reference":"PA-1"}`, false},
		{"ack long note", decodeAck, `{"attempt":1,"reference":"r","note":"` + strings.Repeat("n", 1025) + `"}`, false},
		{"fail", decodeFail, `{"attempt":2,"reason":"503","permanent":false}`, true},
		{"fail no reason", decodeFail, `{"attempt":2,"permanent":true}`, false},
		{"status", decodeStatus, `{"state":"in-progress","reference":"SR-1"}`, true},
		{"status closed", decodeStatus, `{"state":"closed"}`, true},
		{"status unknown", decodeStatus, `{"state":"done"}`, false},
		{"response", decodeResponse, `{"deliveries":[]}`, true},
		{"response bad digest", decodeResponse, `{"deliveries":[{"id":"` + uuid.NewString() + `","attempt":1,"leased_until":"2026-01-01T00:00:00Z",` +
			`"device":"d","seq":1,"kind":"k","office":"o","created_at":"2026-01-01T00:00:00Z","sealed":"","blobs":[{"id":"` +
			uuid.NewString() + `","role":"photo","size":1,"sha256":"abc"}]}]}`, false},
		{"response unknown field", decodeResponse, `{"deliveries":[{"id":"` + uuid.NewString() + `","attempt":1,"secret":1}]}`, false},
		{"response no attempt", decodeResponse, `{"deliveries":[{"id":"` + uuid.NewString() + `"}]}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.decode([]byte(tt.body))
			if (err == nil) != tt.ok {
				t.Fatalf("err %v, want ok %v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
		})
	}
}

func decodeLease(b []byte) error    { _, err := DecodeLeaseRequest(b); return err }
func decodeAck(b []byte) error      { _, err := DecodeAckRequest(b); return err }
func decodeFail(b []byte) error     { _, err := DecodeFailRequest(b); return err }
func decodeStatus(b []byte) error   { _, _, err := DecodeStatusRequest(b); return err }
func decodeResponse(b []byte) error { _, err := DecodeLeaseResponse(b); return err }

// fuzzDecoder checks that a decoder of outside input never panics, that
// every refusal wraps ErrInvalid, and that what it accepts encodes and
// decodes again to the same.
func fuzzDecoder[T any](f *testing.F, decode func([]byte) (T, error), seeds ...string) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := decode(b)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		again, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		w, err := decode(again)
		if err != nil {
			t.Fatalf("re-encoded %s: %v", again, err)
		}
		if fmt.Sprint(w) != fmt.Sprint(v) {
			t.Fatalf("round trip changed %+v to %+v", v, w)
		}
	})
}

func FuzzDecodeLeaseRequest(f *testing.F) {
	fuzzDecoder(f, DecodeLeaseRequest, `{"office":"amt-a","max":16,"visibility_ms":30000}`, `{"office":""}`, `{`)
}

func FuzzDecodeAckRequest(f *testing.F) {
	fuzzDecoder(f, DecodeAckRequest, `{"attempt":1,"reference":"PA-1","note":"n"}`, `{"attempt":-1}`)
}

func FuzzDecodeFailRequest(f *testing.F) {
	fuzzDecoder(f, DecodeFailRequest, `{"attempt":1,"reason":"unknown key","permanent":true}`, `null`)
}

func FuzzDecodeStatusRequest(f *testing.F) {
	fuzzDecoder(f, func(b []byte) (StatusRequest, error) {
		v, _, err := DecodeStatusRequest(b)
		return v, err
	}, `{"state":"closed","reference":"SR-1","note":"fixed"}`, `{"state":""}`)
}

func FuzzDecodeLeaseResponse(f *testing.F) {
	b, _ := json.Marshal(LeaseResponse{Deliveries: []Delivery{{ID: uuid.Must(uuid.NewV7()), Attempt: 1, Sealed: []byte("s"),
		Blobs: []protocol.BlobRef{{ID: uuid.New(), Role: "photo", Size: 3}}}}})
	fuzzDecoder(f, DecodeLeaseResponse, string(b), `{"deliveries":null}`, `{"deliveries":[{}]}`)
}
