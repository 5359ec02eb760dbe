package bridgetest

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	"github.com/kogge-fleet/kogge/fleet-server/store"
	"github.com/kogge-fleet/kogge/protocol"
)

// AddDevice registers a device (in a group "g") in the store, so that its
// records can be stored.
func AddDevice(t testing.TB, db *store.DB, device string) {
	t.Helper()
	err := db.Tx(context.Background(), func(tx *sql.Tx) error {
		if _, err := tx.Exec(`INSERT INTO groups (id, name, created_at) VALUES ('g', 'group g', 1) ON CONFLICT DO NOTHING`); err != nil {
			return err
		}
		_, err := tx.Exec(`INSERT INTO devices (id, group_id, created_at, inventory_at) VALUES ($1, 'g', 1, 1)`, device)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Enqueue stores a sealed record with its blobs as the ingest does, with
// sequence seq of its device, and queues it for delivery.
func Enqueue(t testing.TB, db *store.DB, r Record, seq uint64) {
	t.Helper()
	ctx := context.Background()
	d := r.Delivery
	p := &protocol.Record{
		ID: d.ID, Seq: seq, Kind: d.Kind, Office: d.Office, KeyID: d.KeyID, CreatedAt: protocol.At(d.CreatedAt),
		Meta: d.Meta, Sealed: d.Sealed, Blobs: d.Blobs,
	}
	now := time.Now().UnixMilli()
	err := db.Ingest(ctx, func(tx *store.IngestTx) error {
		if ok, err := tx.InsertRecord(ctx, d.Device, p, now); err != nil || !ok {
			return errors.Join(err, errors.New("record not inserted"))
		}
		for _, b := range d.Blobs {
			if err := tx.AppendChunk(ctx, d.Device, d.ID, b.ID, 0, r.Blobs[b.ID], now); err != nil {
				return err
			}
			if err := tx.CompleteBlob(ctx, d.Device, d.ID, b.ID, now); err != nil {
				return err
			}
		}
		_, err := tx.EnqueueDelivery(ctx, d.Device, d.ID, now)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}
