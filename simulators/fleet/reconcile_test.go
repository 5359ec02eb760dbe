package fleet

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestReconcile(t *testing.T) {
	id := func(n byte) uuid.UUID { return uuid.UUID{0x01, 0x9a, 0, 0, 0, 0, 0x70, 0, 0x80, 0, 0, 0, 0, 0, 0, n} }
	entry := func(n byte) Entry {
		return Entry{Record: id(n), Device: "d1", Kind: "roadwork.report", Office: "strassenbau", Seq: uint64(n)}
	}
	srv := func(n byte, complete bool, delivery string) ServerRecord {
		return ServerRecord{Device: "d1", ID: id(n), Seq: uint64(n), Complete: complete, Delivery: delivery}
	}
	queued := func(ns ...byte) func(string, uuid.UUID) DeviceState {
		return func(_ string, u uuid.UUID) DeviceState {
			for _, n := range ns {
				if u == id(n) {
					return DeviceQueued
				}
			}
			return DeviceUnknown
		}
	}
	tests := []struct {
		name string
		in   Inputs
		// want
		done, stored, once     int
		lost, duplicated       []byte
		pending                map[string]int
		unledgered, ledgerDups int
	}{
		{
			name: "everything stored, no delivery",
			in:   Inputs{Ledger: []Entry{entry(1), entry(2)}, Server: []ServerRecord{srv(1, true, ""), srv(2, true, "")}},
			done: 2, stored: 2,
		},
		{
			name: "planted loss: not on the server, unknown to the device",
			in:   Inputs{Ledger: []Entry{entry(1), entry(2)}, Server: []ServerRecord{srv(1, true, "")}, Device: queued()},
			done: 1, stored: 1, lost: []byte{2},
		},
		{
			name: "no device view: what the server lacks is lost",
			in:   Inputs{Ledger: []Entry{entry(1)}},
			lost: []byte{1},
		},
		{
			name: "queued on the device is pending, not lost",
			in:   Inputs{Ledger: []Entry{entry(1), entry(2)}, Server: []ServerRecord{srv(1, true, "")}, Device: queued(2)},
			done: 1, stored: 1,
			pending: map[string]int{PendingDeviceQueue: 1},
		},
		{
			name:    "blobs still arriving",
			in:      Inputs{Ledger: []Entry{entry(1)}, Server: []ServerRecord{srv(1, false, "")}},
			pending: map[string]int{PendingBlobs: 1},
		},
		{
			name: "planted duplicate at a procedure",
			in: Inputs{Ledger: []Entry{entry(1), entry(2)}, Server: []ServerRecord{srv(1, true, "delivered"), srv(2, true, "delivered")},
				Delivery: true, Deliveries: []Delivered{{Record: id(1)}, {Record: id(2)}, {Record: id(1), Duplicate: true}}},
			done: 1, stored: 2, once: 1, duplicated: []byte{1},
		},
		{
			name: "a duplicate flagged by the procedure whose first delivery is not in the log",
			in: Inputs{Ledger: []Entry{entry(1)}, Server: []ServerRecord{srv(1, true, "")},
				Delivery: true, Deliveries: []Delivered{{Record: id(1), Duplicate: true}}},
			stored: 1, duplicated: []byte{1},
		},
		{
			name:       "listed twice by the server",
			in:         Inputs{Ledger: []Entry{entry(1)}, Server: []ServerRecord{srv(1, true, ""), srv(1, true, "")}},
			stored:     1,
			duplicated: []byte{1},
		},
		{
			name: "delivery: stored but not delivered, by the server's state",
			in: Inputs{Ledger: []Entry{entry(1), entry(2), entry(3), entry(4)},
				Server:   []ServerRecord{srv(1, true, "queued"), srv(2, true, "dead"), srv(3, true, ""), srv(4, true, "delivered")},
				Delivery: true, Deliveries: []Delivered{{Record: id(4)}}},
			stored: 4, once: 1, done: 1,
			pending: map[string]int{PendingServerQueue: 1, PendingDeadLetter: 1, PendingNotDelivered: 1},
		},
		{
			name: "server records and deliveries of no receipt, receipts twice in the ledger",
			in: Inputs{Ledger: []Entry{entry(1), entry(1)}, Server: []ServerRecord{srv(1, true, ""), srv(9, true, "")},
				Delivery: true, Deliveries: []Delivered{{Record: id(1)}, {Record: id(8)}}},
			stored: 1, once: 1, done: 1, unledgered: 1, ledgerDups: 1,
		},
	}
	ids := func(es []Entry) []byte {
		var out []byte
		for _, e := range es {
			out = append(out, e.Record[15])
		}
		return out
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Reconcile(tt.in)
			if r.Done != tt.done || r.Stored != tt.stored || r.DeliveredOnce != tt.once ||
				!bytes.Equal(ids(r.Lost), tt.lost) || !bytes.Equal(ids(r.Duplicated), tt.duplicated) ||
				r.Unledgered != tt.unledgered || r.LedgerDuplicates != tt.ledgerDups {
				t.Errorf("got done %d stored %d once %d lost %v duplicated %v unledgered %d ledger dups %d",
					r.Done, r.Stored, r.DeliveredOnce, ids(r.Lost), ids(r.Duplicated), r.Unledgered, r.LedgerDuplicates)
			}
			if r.OK() != (len(tt.lost) == 0 && len(tt.duplicated) == 0) {
				t.Errorf("OK() = %v", r.OK())
			}
			for reason, n := range tt.pending {
				if len(r.Pending[reason]) != n {
					t.Errorf("pending %q: %d, want %d", reason, len(r.Pending[reason]), n)
				}
			}
			if want := sum(tt.pending); r.PendingCount() != want {
				t.Errorf("pending %d, want %d", r.PendingCount(), want)
			}
			var out strings.Builder
			r.Print(&out, tt.in.Delivery)
			if len(tt.lost) > 0 && !strings.Contains(out.String(), "LOST (") {
				t.Errorf("the printed report does not list the loss:\n%s", out.String())
			}
		})
	}
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func TestLedgerFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.jsonl")
	l, err := OpenLedger(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{
		{Record: uuid.Must(uuid.NewV7()), Device: "kiosk-1", Kind: "kiosk.application", Office: "buergeramt-mitte", Seq: 1, Blobs: 4, Bytes: 1000, At: time.UnixMilli(1_800_000_000_000).UTC()},
		{Record: uuid.Must(uuid.NewV7()), Device: "crew-1", Kind: "roadwork.report", Office: "strassenbau", Seq: 7, At: time.UnixMilli(1_800_000_001_000).UTC()},
	}
	for _, e := range want {
		if err := l.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		data    string
		entries int
		torn    int
		ok      bool
	}{
		{"as written", string(b), 2, 0, true},
		{"last line cut short", string(b) + `{"record":"019a`, 2, 1, true},
		{"bad line in the middle", `{"record":` + "\n" + string(b), 0, 0, false},
		{"entry without a device", `{"record":"019a0000-0000-7000-8000-000000000001","kind":"k","office":"o"}` + "\n", 0, 0, false},
		{"empty", "", 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, torn, err := ReadLedger(strings.NewReader(tt.data))
			if (err == nil) != tt.ok || len(got) != tt.entries || torn != tt.torn {
				t.Fatalf("ReadLedger: %d entries, %d torn, %v", len(got), torn, err)
			}
			for i := range got {
				if got[i] != want[i] {
					t.Errorf("entry %d: %+v, want %+v", i, got[i], want[i])
				}
			}
		})
	}
}

func FuzzReadLedger(f *testing.F) {
	f.Add([]byte(`{"record":"019a0000-0000-7000-8000-000000000001","device":"d","kind":"k","office":"o","seq":1,"at":"2026-01-01T00:00:00Z"}` + "\n"))
	f.Add([]byte("{\n{}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		entries, torn, err := ReadLedger(bytes.NewReader(b))
		if err != nil {
			return
		}
		if torn > 1 {
			t.Fatalf("%d torn lines", torn)
		}
		for _, e := range entries {
			if e.Validate() != nil {
				t.Fatalf("invalid entry returned: %+v", e)
			}
		}
	})
}
