package delivery

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/fleet-server/store"
	"github.com/kogge-fleet/kogge/protocol"
)

// BenchmarkLeaseAck measures the queue alone: records of an office leased
// in batches of 32 and acked one by one (each ack deletes the body, writes
// an audit entry and publishes the status), on SQLite. Per op: one record.
func BenchmarkLeaseAck(b *testing.B) {
	file := filepath.Join(b.TempDir(), "kogge.db")
	db := openStore(b, file)
	addDevices(b, db, "d1")
	clock := newClock()
	setPresence(b, db, "d1", true, clock.Now())
	q, err := New(db, &fakeBroker{}, Options{Logger: quiet(), Clock: clock.Now})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	// Store b.N records in batches of 500, as group commits do.
	for stored := 0; stored < b.N; {
		n := min(500, b.N-stored)
		err := db.Ingest(ctx, func(tx *store.IngestTx) error {
			for i := range n {
				r := &protocol.Record{ID: uuid.Must(uuid.NewV7()), Seq: uint64(stored + i + 1), Kind: "enforcement.notice",
					Office: "amt-a", KeyID: "k1", CreatedAt: protocol.At(clock.Now()), Sealed: make([]byte, 2048)}
				if _, err := tx.InsertRecord(ctx, "d1", r, clock.Now().UnixMilli()); err != nil {
					return err
				}
				if _, err := tx.EnqueueRecord(ctx, "d1", r, clock.Now().UnixMilli()); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		stored += n
	}
	b.ResetTimer()
	done := 0
	for done < b.N {
		ds, err := q.Lease(ctx, "amt-a", 32, time.Minute)
		if err != nil {
			b.Fatal(err)
		}
		if len(ds) == 0 {
			b.Fatalf("queue empty after %d of %d", done, b.N)
		}
		for _, d := range ds {
			if err := q.Ack(ctx, d.ID, d.Attempt, Receipt{Reference: "R"}); err != nil {
				b.Fatal(err)
			}
		}
		done += len(ds)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
