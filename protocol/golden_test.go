package protocol

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/google/uuid"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// t0 is 2026-11-29T08:00:00Z, the instant the fixtures are made at.
const t0 = Timestamp(1795939200000)

func fixedID(last byte) uuid.UUID {
	// A valid UUIDv7 layout with a fixed time and a distinguishing last byte.
	return uuid.UUID{0x01, 0x9a, 0xcd, 0x6e, 0x64, 0x00, 0x70, 0x00, 0x80, 0, 0, 0, 0, 0, 0, last}
}

// goldenEnvelopes holds one envelope per message type, as stored in
// testdata/<name>.cbor.
func goldenEnvelopes() map[string]*Envelope {
	env := func(seq uint64, body Message) *Envelope {
		return &Envelope{Version: 1, ID: fixedID(0xf0 + byte(body.Type())), Device: "kiosk-mitte-01", Seq: seq, SentAt: t0 + 5, Body: body}
	}
	photo := []byte("not really a photo, but 40 bytes of it.")
	return map[string]*Envelope{
		"record": env(1, &Record{
			ID: fixedID(1), Seq: 42, Kind: "kiosk.application", Office: "buergeramt-mitte", KeyID: "mitte-2026-1",
			CreatedAt: t0, Meta: map[string]string{"service": "id-card", "terminal": "Mitte 1"},
			Sealed: []byte("age-encryption.org/v1 sealed body stand-in"),
			Blobs: []BlobRef{
				{ID: fixedID(2), Role: "photo", Size: 307200, SHA256: SumOf([]byte("photo"))},
				{ID: fixedID(3), Role: "finger-2", Size: 102400, SHA256: SumOf([]byte("finger"))},
			},
		}),
		"chunk": env(2, &BlobChunk{Record: fixedID(1), Blob: fixedID(2), Offset: 65536, Total: 307200, Data: photo, SHA256: SumOf(photo)}),
		"ack": env(3, &Ack{
			Records: []RecordAck{
				{ID: fixedID(1), Status: AckStored},
				{ID: fixedID(4), Status: AckDuplicate},
				{ID: fixedID(5), Status: AckRejected, Reason: "unknown office \"nowhere\""},
			},
			Chunks:  []ChunkAck{{Blob: fixedID(2), Offset: 65536, Status: AckStored, Complete: true}},
			Results: []uuid.UUID{fixedID(7)},
		}),
		"hello": env(4, &SyncHello{Session: fixedID(6), Lowest: 40, Highest: 57}),
		"sync": env(5, &SyncState{
			Session: fixedID(6), Missing: []SeqRange{{From: 43, To: 45}, {From: 50, To: 57}},
			Blobs:      []BlobProgress{{Record: fixedID(1), Blob: fixedID(2), Have: 131072}},
			ServerTime: t0 + 7,
			Stored:     42,
		}),
		"heartbeat": env(6, &Heartbeat{
			QueueDepth: 3, OldestUnsentMillis: 90000, DiskFree: 12 << 30, BudgetUsed: 40 << 20, BudgetTotal: 512 << 20,
			Battery: -1, Software: "kogge-kiosk 0.1.0", Clock: t0 + 4, LastSync: t0 - 60000, ClockOffsetMillis: -120,
			Peripherals: []Peripheral{
				{Name: "camera", Kind: "camera", State: PeripheralOK},
				{Name: "printer", Kind: "printer", State: PeripheralDegraded, Reason: "paper low"},
			},
		}),
		"twin.desired": env(7, &TwinDesired{Version: 3, Config: map[string]any{
			"heartbeat_seconds": uint64(30), "log_level": "info", "languages": []any{"de", "en", "tr"},
		}}),
		"twin.reported": env(8, &TwinReported{Version: 2, Rejected: 3, Reason: "heartbeat_seconds: must be 5 to 3600"}),
		"command": env(9, &Command{
			ID: fixedID(7), Name: "set-log-level", Args: map[string]string{"level": "debug"},
			IssuedAt: t0, ExpiresAt: t0 + 3600000,
		}),
		"result":   env(10, &CommandResult{ID: fixedID(7), Outcome: OutcomeOK, Message: "log level is debug", At: t0 + 9}),
		"presence": env(0, &Presence{State: Offline, Session: fixedID(6), Software: "kogge-kiosk 0.1.0", At: t0}),
		"status": env(11, &RecordStatus{Items: []StatusItem{
			{Record: fixedID(1), State: Accepted, Reference: "PA-2026-004711", At: t0 + 60000},
		}}),
	}
}

func TestGolden(t *testing.T) {
	envs := goldenEnvelopes()
	if len(envs) != len(Types()) {
		t.Fatalf("%d golden envelopes for %d message types", len(envs), len(Types()))
	}
	for name, want := range envs {
		t.Run(name, func(t *testing.T) {
			if want.Type().String() != name {
				t.Fatalf("fixture %q holds a %v", name, want.Type())
			}
			path := filepath.Join("testdata", name+".cbor")
			got, err := Encode(want)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			golden, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./protocol -run TestGolden -update to create it)", err)
			}
			if !bytes.Equal(got, golden) {
				t.Errorf("Encode differs from %s:\n got %x\nwant %x", path, got, golden)
			}
			dec, err := Decode(golden)
			if err != nil {
				t.Fatalf("Decode(%s): %v", path, err)
			}
			if !reflect.DeepEqual(dec, want) {
				t.Errorf("Decode(%s) =\n%#v\nwant\n%#v", path, dec.Body, want.Body)
			}
		})
	}
}
