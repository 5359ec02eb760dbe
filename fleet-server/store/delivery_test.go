package store

import (
	"context"
	"encoding/hex"
	"errors"
	"log/slog"
	"testing"

	"github.com/google/uuid"
)

// The queue's behaviour is tested in fleet-server/delivery and
// fleet-server/retention on both backends; these tests pin what those
// packages take for granted.

func TestEnqueueDelivery(t *testing.T) {
	backends(t, func(t *testing.T, db *DB) {
		addTestDevices(t, db, "g", "d1", "d2")
		ctx := context.Background()
		plain := testRecord(1)
		withBlob := testRecord(2, []byte("photo"))
		ingest(t, db, func(ctx context.Context, tx *IngestTx) error {
			if _, err := tx.InsertRecord(ctx, "d1", plain, 10); err != nil {
				return err
			}
			if _, err := tx.InsertRecord(ctx, "d1", withBlob, 10); err != nil {
				return err
			}
			if other, err := tx.EnqueueRecord(ctx, "d1", plain, 10); err != nil || other != "" {
				t.Errorf("EnqueueRecord = %q, %v", other, err)
			}
			for _, id := range []uuid.UUID{withBlob.ID, plain.ID} {
				if other, err := tx.EnqueueDelivery(ctx, "d1", id, 10); err != nil || other != "" {
					t.Errorf("EnqueueDelivery(%v) = %q, %v", id, other, err)
				}
			}
			return nil
		})
		if d, err := db.DeliveryOf(ctx, plain.ID); err != nil || d.State != DeliveryQueued || d.Office != plain.Office ||
			d.Kind != plain.Kind || d.EnqueuedAt != 10 {
			t.Errorf("plain record: %+v %v", d, err)
		}
		if _, err := db.DeliveryOf(ctx, withBlob.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("record with a blob still arriving is queued: %v", err)
		}
		// Another device's record with the same id is stored, not queued,
		// and named.
		ingest(t, db, func(ctx context.Context, tx *IngestTx) error {
			clash := *plain
			if _, err := tx.InsertRecord(ctx, "d2", &clash, 11); err != nil {
				return err
			}
			if other, err := tx.EnqueueRecord(ctx, "d2", &clash, 11); err != nil || other != "d1" {
				t.Errorf("colliding id: %q, %v; want d1 named", other, err)
			}
			if other, err := tx.EnqueueDelivery(ctx, "d2", clash.ID, 11); err != nil || other != "d1" {
				t.Errorf("colliding id after its blobs: %q, %v; want d1 named", other, err)
			}
			return nil
		})
		if d, err := db.DeliveryOf(ctx, plain.ID); err != nil || d.Device != "d1" {
			t.Errorf("collision changed the delivery: %+v %v", d, err)
		}
	})
}

func TestBridgeCerts(t *testing.T) {
	backends(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		for i, c := range []BridgeCert{{Serial: "0a", Office: "amt-a", NotBefore: 1, NotAfter: 2, CreatedAt: 5},
			{Serial: "0b", Office: "amt-b", NotBefore: 1, NotAfter: 2, CreatedAt: 6}} {
			if err := db.AddBridgeCert(ctx, c); err != nil {
				t.Fatalf("cert %d: %v", i, err)
			}
		}
		if err := db.AddBridgeCert(ctx, BridgeCert{Serial: "0a", Office: "amt-a"}); err == nil {
			t.Error("serial stored twice")
		}
		if all, err := db.BridgeCerts(ctx, ""); err != nil || len(all) != 2 || all[0].Serial != "0b" {
			t.Errorf("BridgeCerts = %+v %v", all, err)
		}
		if a, err := db.BridgeCerts(ctx, "amt-a"); err != nil || len(a) != 1 || a[0].Serial != "0a" {
			t.Errorf("BridgeCerts(amt-a) = %+v %v", a, err)
		}
		c, err := db.RevokeBridgeCert(ctx, "0a", 7)
		if err != nil || c.RevokedAt != 7 {
			t.Fatalf("revoke: %+v %v", c, err)
		}
		if c, err := db.RevokeBridgeCert(ctx, "0a", 9); err != nil || c.RevokedAt != 7 {
			t.Errorf("second revoke: %+v %v; want the first time kept", c, err)
		}
		if _, err := db.RevokeBridgeCert(ctx, "ff", 9); !errors.Is(err, ErrNotFound) {
			t.Errorf("revoke unknown: %v", err)
		}
		if c, err := db.BridgeCert(ctx, "0a"); err != nil || c.Office != "amt-a" || c.RevokedAt != 7 {
			t.Errorf("BridgeCert = %+v %v", c, err)
		}
	})
}

// TestAuditHashGolden pins the canonical encoding: a change would make
// every stored log fail verification. The expected hash was computed
// independently of this code (Python: hashlib.sha256 over the documented
// encoding).
func TestAuditHashGolden(t *testing.T) {
	e := AuditEntry{Seq: 1, At: 1_800_000_000_000, Actor: "api-token:0123456789ab", Action: "group.create",
		Target: "group:kiosks", Details: `{"name":"Kiosks"}`, PrevHash: make([]byte, 32)}
	const want = "3da0f999f078723c3ba78ee2a9c94905e021fc4f5db79ed72b88ff587dde24ec"
	got := hex.EncodeToString(AuditHash(e))
	if got != want {
		t.Errorf("AuditHash = %s, want %s", got, want)
	}
	e.Details = `{"name":"Kiosks "}`
	if hex.EncodeToString(AuditHash(e)) == got {
		t.Error("details do not change the hash")
	}
	// Length prefixes keep fields from running into each other.
	a := AuditEntry{Actor: "ab", Action: "c", PrevHash: make([]byte, 32)}
	b := AuditEntry{Actor: "a", Action: "bc", PrevHash: make([]byte, 32)}
	if hex.EncodeToString(AuditHash(a)) == hex.EncodeToString(AuditHash(b)) {
		t.Error("field boundaries do not change the hash")
	}
}

// BenchmarkInsertAndEnqueue measures what queueing adds to the ingest's
// group commit: 500 records without blobs stored in one transaction, with
// and without EnqueueRecord, on SQLite. Per op: one record.
func BenchmarkInsertAndEnqueue(b *testing.B) {
	for _, enqueue := range []bool{false, true} {
		b.Run(map[bool]string{false: "store", true: "store+enqueue"}[enqueue], func(b *testing.B) {
			db, err := Open(context.Background(), b.TempDir()+"/kogge.db", Options{Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			if _, err := db.write.Exec(`INSERT INTO groups (id, name, created_at) VALUES ('g', 'g', 1)`); err != nil {
				b.Fatal(err)
			}
			if _, err := db.write.Exec(`INSERT INTO devices (id, group_id, created_at, inventory_at) VALUES ('d1', 'g', 1, 1)`); err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			seq := uint64(0)
			for done := 0; done < b.N; {
				n := min(500, b.N-done)
				err := db.Ingest(ctx, func(tx *IngestTx) error {
					for range n {
						seq++
						r := testRecord(seq)
						if _, err := tx.InsertRecord(ctx, "d1", r, 10); err != nil {
							return err
						}
						if enqueue {
							if _, err := tx.EnqueueRecord(ctx, "d1", r, 10); err != nil {
								return err
							}
						}
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
				done += n
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
