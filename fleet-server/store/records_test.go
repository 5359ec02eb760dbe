package store

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/protocol"
)

// addTestDevices inserts a group and devices with plain SQL, so that the
// ingest, twin, command and health tests do not depend on the registry's
// methods.
func addTestDevices(t *testing.T, db *DB, group string, ids ...string) {
	t.Helper()
	ctx := context.Background()
	if _, err := db.write.ExecContext(ctx, `INSERT INTO groups (id, name, created_at) VALUES ($1, $2, 1)
		ON CONFLICT DO NOTHING`, group, "group "+group); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if _, err := db.write.ExecContext(ctx, `INSERT INTO devices (id, group_id, created_at, inventory_at)
			VALUES ($1, $2, 1, 1)`, id, group); err != nil {
			t.Fatal(err)
		}
	}
}

func testRecord(seq uint64, blobs ...[]byte) *protocol.Record {
	r := &protocol.Record{
		ID: uuid.Must(uuid.NewV7()), Seq: seq, Kind: "kiosk.application", Office: "buergeramt-mitte",
		CreatedAt: protocol.At(time.UnixMilli(1_700_000_000_000)), Meta: map[string]string{"service": "passport"},
		Sealed: []byte("sealed body"),
	}
	for i, b := range blobs {
		r.Blobs = append(r.Blobs, protocol.BlobRef{ID: uuid.Must(uuid.NewV7()), Role: "photo-" + string(rune('a'+i)),
			Size: uint64(len(b)), SHA256: protocol.SumOf(b)})
	}
	return r
}

func ingest(t *testing.T, db *DB, fn func(ctx context.Context, tx *IngestTx) error) {
	t.Helper()
	ctx := context.Background()
	if err := db.Ingest(ctx, func(tx *IngestTx) error { return fn(ctx, tx) }); err != nil {
		t.Fatal(err)
	}
}

func TestIngestWatermark(t *testing.T) {
	backends(t, func(t *testing.T, db *DB) {
		addTestDevices(t, db, "g", "d1", "d2")
		ingest(t, db, func(ctx context.Context, tx *IngestTx) error {
			got, err := tx.IngestDevices(ctx, []string{"d1", "d2", "nobody"})
			if err != nil {
				return err
			}
			if len(got) != 2 || got["d1"] != 0 || got["d2"] != 0 {
				t.Errorf("IngestDevices = %v, want d1 and d2 at 0", got)
			}
			for _, c := range []struct {
				from, to uint64
				want     bool
			}{{0, 3, true}, {0, 5, false}, {2, 5, false}, {3, 5, true}, {5, 6, true}} {
				ok, err := tx.AdvanceHigh(ctx, "d1", c.from, c.to, 10)
				if err != nil {
					return err
				}
				if ok != c.want {
					t.Errorf("AdvanceHigh(%d → %d) = %v, want %v", c.from, c.to, ok, c.want)
				}
			}
			got, err = tx.IngestDevices(ctx, []string{"d1"})
			if err != nil {
				return err
			}
			if got["d1"] != 6 {
				t.Errorf("watermark = %d, want 6", got["d1"])
			}
			return nil
		})
		s, err := db.DeviceSync(context.Background(), "d1")
		if err != nil || s.High != 6 || s.UpdatedAt != 10 {
			t.Errorf("DeviceSync = %+v, %v; want high 6 at 10", s, err)
		}
		if _, err := db.DeviceSync(context.Background(), "nobody"); !errors.Is(err, ErrNotFound) {
			t.Errorf("DeviceSync(nobody) = %v, want ErrNotFound", err)
		}
	})
}

func TestIngestRecords(t *testing.T) {
	backends(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		addTestDevices(t, db, "g", "d1", "d2")
		r1, r2 := testRecord(1), testRecord(2, []byte("photo"))
		r2.Sealed = nil
		ingest(t, db, func(ctx context.Context, tx *IngestTx) error {
			for _, c := range []struct {
				device string
				r      *protocol.Record
				want   bool
			}{
				{"d1", r1, true},
				{"d1", r2, true},
				{"d1", r1, false}, // same id
				{"d1", &protocol.Record{ID: uuid.Must(uuid.NewV7()), Seq: 1, Kind: "k", Office: "o", CreatedAt: 1}, false}, // same seq
				{"d2", r1, true}, // another device's sequence
			} {
				ok, err := tx.InsertRecord(ctx, c.device, c.r, 100)
				if err != nil {
					return err
				}
				if ok != c.want {
					t.Errorf("InsertRecord(%s, seq %d) = %v, want %v", c.device, c.r.Seq, ok, c.want)
				}
			}
			other := uuid.Must(uuid.NewV7())
			if err := tx.InsertRejection(ctx, "d1", 3, other, "unknown office", 100); err != nil {
				return err
			}
			ix, err := tx.LookupRecords(ctx, "d1", []uuid.UUID{r1.ID, other}, []uint64{2, 3, 4})
			if err != nil {
				return err
			}
			if ix.SeqOf[r1.ID] != 1 || ix.IDAt[2] != r2.ID || len(ix.SeqOf) != 2 {
				t.Errorf("LookupRecords: %+v", ix)
			}
			if rj := ix.RejectedAt[3]; rj.ID != other || rj.Reason != "unknown office" || ix.RejectedID[other].Seq != 3 {
				t.Errorf("LookupRecords rejections: %+v", ix)
			}
			return nil
		})

		recs, err := db.Records(ctx, RecordFilter{Device: "d1"})
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 2 || recs[0].ID != r1.ID || recs[1].ID != r2.ID {
			t.Fatalf("Records(d1) = %+v", recs)
		}
		if recs[0].Meta["service"] != "passport" || recs[0].SealedSize != int64(len(r1.Sealed)) || recs[0].ReceivedAt != 100 ||
			recs[0].CreatedAt != int64(r1.CreatedAt) || recs[0].Kind != r1.Kind || recs[0].Office != r1.Office {
			t.Errorf("record 1 = %+v", recs[0])
		}
		if len(recs[1].Blobs) != 1 || recs[1].Blobs[0].ID != r2.Blobs[0].ID || recs[1].Blobs[0].SHA256 != r2.Blobs[0].SHA256 ||
			recs[1].Blobs[0].Size != 5 || recs[1].Blobs[0].Have != 0 {
			t.Errorf("record 2 blobs = %+v", recs[1].Blobs)
		}
		// Paging and filters.
		page, err := db.Records(ctx, RecordFilter{Kind: "kiosk.application", Limit: 2})
		if err != nil || len(page) != 2 {
			t.Fatalf("page 1 = %v, %v", page, err)
		}
		rest, err := db.Records(ctx, RecordFilter{Kind: "kiosk.application", After: page[1].N})
		if err != nil || len(rest) != 1 || rest[0].Device != "d2" {
			t.Fatalf("page 2 = %+v, %v", rest, err)
		}
		if none, err := db.Records(ctx, RecordFilter{Office: "elsewhere"}); err != nil || len(none) != 0 {
			t.Errorf("Records(other office) = %v, %v", none, err)
		}
		body, err := db.RecordSealed(ctx, "d1", r1.ID)
		if err != nil || string(body) != "sealed body" {
			t.Errorf("RecordSealed = %q, %v", body, err)
		}
		if _, err := db.Record(ctx, "d1", uuid.Must(uuid.NewV7())); !errors.Is(err, ErrNotFound) {
			t.Errorf("Record(unknown) = %v, want ErrNotFound", err)
		}
		rj, err := db.RecordRejections(ctx, "d1", 0, 0)
		if err != nil || len(rj) != 1 || rj[0].Seq != 3 {
			t.Errorf("RecordRejections = %+v, %v", rj, err)
		}
	})
}

func TestIngestBlobs(t *testing.T) {
	backends(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		addTestDevices(t, db, "g", "d1")
		photo := bytes.Repeat([]byte("0123456789"), 10)
		r := testRecord(1, photo, []byte("second"))
		b := r.Blobs[0]
		ingest(t, db, func(ctx context.Context, tx *IngestTx) error {
			if _, err := tx.InsertRecord(ctx, "d1", r, 100); err != nil {
				return err
			}
			if _, err := tx.BlobState(ctx, "d1", r.ID, uuid.Must(uuid.NewV7())); !errors.Is(err, ErrNotFound) {
				t.Errorf("BlobState(unknown) = %v, want ErrNotFound", err)
			}
			if n, err := tx.StartedBlobBytes(ctx, "d1"); err != nil || n != 0 {
				t.Errorf("StartedBlobBytes before = %d, %v", n, err)
			}
			return tx.AppendChunk(ctx, "d1", r.ID, b.ID, 0, photo[:40], 101)
		})
		err := db.Ingest(ctx, func(tx *IngestTx) error {
			return tx.AppendChunk(ctx, "d1", r.ID, b.ID, 0, photo[:40], 101)
		})
		if !errors.Is(err, ErrConflict) {
			t.Errorf("AppendChunk at an offset below have = %v, want ErrConflict", err)
		}
		ingest(t, db, func(ctx context.Context, tx *IngestTx) error {
			st, err := tx.BlobState(ctx, "d1", r.ID, b.ID)
			if err != nil {
				return err
			}
			if st.Have != 40 || st.Size != 100 || st.Complete || st.SHA256 != b.SHA256 {
				t.Errorf("BlobState = %+v", st)
			}
			if n, err := tx.StartedBlobBytes(ctx, "d1"); err != nil || n != 100 {
				t.Errorf("StartedBlobBytes = %d, %v; want 100", n, err)
			}
			inc, err := tx.IncompleteBlobs(ctx, "d1", 10)
			if err != nil {
				return err
			}
			if len(inc) != 2 || inc[0].Blob != b.ID || inc[0].Have != 40 || inc[1].Have != 0 {
				t.Errorf("IncompleteBlobs = %+v", inc)
			}
			if inc, _ := tx.IncompleteBlobs(ctx, "d1", 1); len(inc) != 1 {
				t.Errorf("IncompleteBlobs(limit 1) = %d entries", len(inc))
			}
			if err := tx.AppendChunk(ctx, "d1", r.ID, b.ID, 40, photo[40:], 102); err != nil {
				return err
			}
			sum, n, err := tx.BlobDigest(ctx, "d1", r.ID, b.ID)
			if err != nil || n != 100 || sum != b.SHA256 {
				t.Errorf("BlobDigest = %v, %d, %v", sum, n, err)
			}
			return tx.CompleteBlob(ctx, "d1", r.ID, b.ID, 103)
		})
		var buf bytes.Buffer
		if n, err := db.CopyBlob(ctx, "d1", r.ID, b.ID, &buf); err != nil || n != 100 || !bytes.Equal(buf.Bytes(), photo) {
			t.Errorf("CopyBlob = %d, %v", n, err)
		}
		if _, err := db.CopyBlob(ctx, "d1", r.ID, r.Blobs[1].ID, &buf); !errors.Is(err, ErrBlobIncomplete) {
			t.Errorf("CopyBlob(incomplete) = %v, want ErrBlobIncomplete", err)
		}
		s, err := db.DeviceSync(ctx, "d1")
		if err != nil || len(s.Incomplete) != 1 || s.Incomplete[0].Blob != r.Blobs[1].ID {
			t.Errorf("DeviceSync = %+v, %v", s, err)
		}
		ingest(t, db, func(ctx context.Context, tx *IngestTx) error {
			if err := tx.ResetBlob(ctx, "d1", r.ID, b.ID); err != nil {
				return err
			}
			st, err := tx.BlobState(ctx, "d1", r.ID, b.ID)
			if err != nil || st.Have != 0 || st.Complete {
				t.Errorf("after reset: %+v, %v", st, err)
			}
			return nil
		})
	})
}
