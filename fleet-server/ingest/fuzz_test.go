package ingest

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/protocol"
)

// FuzzHandle feeds arbitrary payloads on arbitrary topics through the
// ingest's handler and a commit. It must never panic, never publish a
// message that does not decode, and never break the store's invariant: a
// device's stored and refused records lie within the sequences 1 to its
// watermark, filling them but for what a hello reported wiped.
func FuzzHandle(f *testing.F) {
	db := openStore(f, "", "d1", "d2")
	fb := &fakeBroker{}
	in, err := New(db, fb, Options{Logger: quietLogger(), Linger: time.Millisecond})
	if err != nil {
		f.Fatal(err)
	}
	blob := []byte("a small photo")
	r1 := newRecord(1, blob)
	enc := func(dev string, m protocol.Message) []byte {
		b, err := protocol.Encode(protocol.NewEnvelope(dev, 1, time.UnixMilli(1_800_000_000_000), m))
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	up := "kogge/v1/d/d1/up/"
	for _, s := range []struct {
		topic   string
		payload []byte
	}{
		{up + "record", enc("d1", r1)},
		{up + "record", enc("d1", newRecord(2))},
		{up + "record", enc("d2", newRecord(1))},
		{up + "chunk", enc("d1", chunk(r1, 0, blob, 0, 5))},
		{up + "chunk", enc("d1", chunk(r1, 0, blob, 5, 100))},
		{up + "hello", enc("d1", &protocol.SyncHello{Session: uuid.New(), Lowest: 1, Highest: 9})},
		{up + "heartbeat", enc("d1", &protocol.Heartbeat{Battery: 50, Software: "1", Clock: 1})},
		{up + "twin", enc("d1", &protocol.TwinReported{Version: 1, Config: map[string]any{"a": []any{1, "b"}}})},
		{up + "result", enc("d1", &protocol.CommandResult{ID: uuid.New(), Outcome: protocol.OutcomeOK, At: 1})},
		{"kogge/v1/d/d1/state", enc("d1", &protocol.Presence{State: protocol.Online, Session: uuid.New(), At: 1})},
		{"kogge/v1/d/nobody/up/record", enc("nobody", newRecord(1))},
		{up + "record", []byte{0xa7, 0x01, 0x01}},
		{"kogge/v1/d/d1/down/ack", []byte{}},
	} {
		f.Add(s.topic, s.payload)
	}
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		in.handle(topic, payload)
		in.flush(ctx)
		for _, p := range fb.take() {
			if _, err := protocol.Decode(p.payload); err != nil {
				t.Fatalf("published an undecodable %s: %v", p.topic, err)
			}
		}
		for _, dev := range []string{"d1", "d2"} {
			var high, stored, refused, maxSeq int64
			err := db.Reader().QueryRow(`SELECT COALESCE((SELECT high FROM device_sync WHERE device_id = $1), 0),
				(SELECT count(*) FROM records WHERE device_id = $1),
				(SELECT count(*) FROM record_rejections WHERE device_id = $1),
				(SELECT COALESCE(MAX(seq), 0) FROM (SELECT seq FROM records WHERE device_id = $1
					UNION ALL SELECT seq FROM record_rejections WHERE device_id = $1) s)`, dev).
				Scan(&high, &stored, &refused, &maxSeq)
			if err != nil {
				t.Fatal(err)
			}
			if stored+refused > high || maxSeq > high {
				t.Fatalf("%s: watermark %d, %d stored and %d refused up to %d", dev, high, stored, refused, maxSeq)
			}
		}
	})
}
