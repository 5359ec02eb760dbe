package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"strconv"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/protocol"
)

// Retention and erasure (migration 0042 indexes records for them):
// fleet-server/retention finds bodies held past their limit and record
// metadata past its age, and erases bodies on request. Every deletion
// appends its audit entry in the same transaction.

// RecordKey names a stored record.
type RecordKey struct {
	Device string
	ID     uuid.UUID
}

// HeldRecord is a record whose sealed body the server still holds.
type HeldRecord struct {
	RecordKey
	Kind       string
	Office     string
	ReceivedAt int64
}

// HeldRecords returns up to limit records received at or before before
// whose body is still held, oldest first: of the given kinds, or with except
// set, of every kind but these.
func (db *DB) HeldRecords(ctx context.Context, kinds []string, except bool, before int64, limit int) ([]HeldRecord, error) {
	// SQLite numbers $N parameters in the order they first appear: keep
	// them ascending in the text.
	args := []any{before}
	cond := ""
	if len(kinds) > 0 {
		for _, k := range kinds {
			args = append(args, k)
		}
		op := "IN"
		if except {
			op = "NOT IN"
		}
		cond = " AND kind " + op + " (" + placeholders(2, len(kinds)) + ")"
	} else if !except {
		return nil, nil
	}
	args = append(args, limit)
	var out []HeldRecord
	err := queryEach(ctx, db.read, `SELECT device_id, id, kind, office, received_at FROM records
		WHERE sealed IS NOT NULL AND received_at <= $1`+cond+` ORDER BY received_at LIMIT $`+strconv.Itoa(len(args)), args,
		func(rows *sql.Rows) error {
			var h HeldRecord
			if err := rows.Scan(&h.Device, &h.ID, &h.Kind, &h.Office, &h.ReceivedAt); err != nil {
				return err
			}
			out = append(out, h)
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("list held records: %w", err)
	}
	return out, nil
}

// RecordsByID returns the records stored with this id (of any device; ids
// are unique in practice).
func (db *DB) RecordsByID(ctx context.Context, id uuid.UUID) ([]RecordKey, error) {
	return db.recordKeys(ctx, `SELECT device_id, id FROM records WHERE id = $1 ORDER BY device_id`, id)
}

// RecordsByReference returns the records whose delivery carries this
// procedure reference.
func (db *DB) RecordsByReference(ctx context.Context, reference string) ([]RecordKey, error) {
	return db.recordKeys(ctx, `SELECT device_id, record_id FROM deliveries WHERE reference = $1 ORDER BY n`, reference)
}

func (db *DB) recordKeys(ctx context.Context, q string, args ...any) ([]RecordKey, error) {
	var out []RecordKey
	err := queryEach(ctx, db.read, q, args, func(rows *sql.Rows) error {
		var k RecordKey
		if err := rows.Scan(&k.Device, &k.ID); err != nil {
			return err
		}
		out = append(out, k)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("look up records: %w", err)
	}
	return out, nil
}

// Erasure says who erases and why, for the audit entries.
type Erasure struct {
	Actor string
	// Action is the audit action of each erased record, e.g.
	// "retention.expired" or "erasure.record".
	Action string
	// Details are added to each record's audit details.
	Details map[string]any
}

// ErasedRecord is a record whose body EraseRecords deleted.
type ErasedRecord struct {
	RecordKey
	Kind   string
	Office string
	// Delivery is the delivery state before (empty: none yet, blobs were
	// still arriving).
	Delivery     string
	BytesDeleted int64
}

// EraseRecords deletes the sealed bodies and blob bytes of the records
// that still hold any, marks their deliveries erased (creating the
// delivery row for a record not yet queued, so that it is never queued),
// sets the status Erased for their devices, and appends one audit entry per
// record, each record in its own transaction. Records without a body left
// are skipped. It returns the records erased.
func (db *DB) EraseRecords(ctx context.Context, keys []RecordKey, e Erasure, now int64) ([]ErasedRecord, error) {
	var out []ErasedRecord
	for _, k := range keys {
		var er *ErasedRecord
		err := db.Tx(ctx, func(tx *sql.Tx) error {
			er = nil
			var kind, office string
			var held bool
			var chunks int64
			err := tx.QueryRowContext(ctx, `SELECT kind, office, sealed IS NOT NULL,
				(SELECT count(*) FROM blob_chunks c WHERE c.device_id = r.device_id AND c.record_id = r.id)
				FROM records r WHERE device_id = $1 AND id = $2`, k.Device, k.ID).Scan(&kind, &office, &held, &chunks)
			if errors.Is(err, sql.ErrNoRows) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("erase record %v: %w", k.ID, err)
			}
			if !held && chunks == 0 {
				return nil
			}
			state := ""
			d, err := db.lockDelivery(ctx, tx, k.ID)
			switch {
			case errors.Is(err, ErrNotFound):
				_, err = tx.ExecContext(ctx, `INSERT INTO deliveries (record_id, device_id, office, kind, state, available_at,
					enqueued_at, updated_at, status, status_note, status_at) VALUES ($1, $2, $3, $4, 'erased', $5, $5, $5, $6, $7, $5)`,
					k.ID, k.Device, office, kind, now, int(protocol.Erased), e.Action)
			case err != nil:
			case d.Device != k.Device:
				// Another device's record with the same id holds the
				// delivery row; this one was never queued.
				err = nil
			case d.State == DeliveryAccepted:
				// Its body went at acceptance; chunks that arrived
				// since go now, the state stays.
				state = d.State
			default:
				state = d.State
				_, err = tx.ExecContext(ctx, `UPDATE deliveries SET state = 'erased', updated_at = $1, leased_until = 0,
					status = $2, status_note = $3, status_at = $1, status_sent_at = NULL WHERE record_id = $4`,
					now, int(protocol.Erased), e.Action, k.ID)
			}
			if err != nil {
				return fmt.Errorf("erase record %v: %w", k.ID, err)
			}
			n, err := dropBody(ctx, tx, k.Device, k.ID, now)
			if err != nil {
				return err
			}
			details := map[string]any{"device": k.Device, "office": office, "kind": kind,
				"deleted": "sealed body and blobs", "bytes_deleted": n}
			if state != "" {
				details["delivery_state"] = state
			}
			maps.Copy(details, e.Details)
			if _, err := db.appendAudit(ctx, tx, AuditEvent{Actor: e.Actor, Action: e.Action,
				Target: "record:" + k.ID.String(), Details: details}, now); err != nil {
				return err
			}
			er = &ErasedRecord{RecordKey: k, Kind: kind, Office: office, Delivery: state, BytesDeleted: n}
			return nil
		})
		if err != nil {
			return out, err
		}
		if er != nil {
			out = append(out, *er)
		}
	}
	return out, nil
}

// MetadataDeleted is what DeleteRecordMetadata removed.
type MetadataDeleted struct {
	Records    int
	Rejections int
}

// DeleteRecordMetadata deletes up to limit records received before before
// whose body is gone already, with their blobs' metadata and deliveries,
// and up to limit refused records of that age, in one transaction with one
// audit entry by actor for all of them. Records still holding a body are
// left for EraseRecords.
func (db *DB) DeleteRecordMetadata(ctx context.Context, before int64, limit int, actor string, now int64) (MetadataDeleted, error) {
	var out MetadataDeleted
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		out = MetadataDeleted{}
		var keys []RecordKey
		err := queryEach(ctx, tx, `SELECT device_id, id FROM records WHERE received_at < $1 AND sealed IS NULL
			ORDER BY received_at LIMIT $2`, []any{before, limit}, func(rows *sql.Rows) error {
			var k RecordKey
			if err := rows.Scan(&k.Device, &k.ID); err != nil {
				return err
			}
			keys = append(keys, k)
			return nil
		})
		if err != nil {
			return fmt.Errorf("list old records: %w", err)
		}
		for _, k := range keys {
			for _, q := range []string{
				`DELETE FROM blob_chunks WHERE device_id = $1 AND record_id = $2`,
				`DELETE FROM deliveries WHERE device_id = $1 AND record_id = $2`,
				`DELETE FROM blobs WHERE device_id = $1 AND record_id = $2`,
				`DELETE FROM records WHERE device_id = $1 AND id = $2`,
			} {
				if _, err := tx.ExecContext(ctx, q, k.Device, k.ID); err != nil {
					return fmt.Errorf("delete metadata of record %v: %w", k.ID, err)
				}
			}
		}
		out.Records = len(keys)
		res, err := tx.ExecContext(ctx, `DELETE FROM record_rejections WHERE (device_id, seq) IN
			(SELECT device_id, seq FROM record_rejections WHERE rejected_at < $1 LIMIT $2)`, before, limit)
		if err != nil {
			return fmt.Errorf("delete old refusals: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("delete old refusals: %w", err)
		}
		out.Rejections = int(n)
		if out.Records == 0 && out.Rejections == 0 {
			return nil
		}
		_, err = db.appendAudit(ctx, tx, AuditEvent{Actor: actor, Action: "retention.metadata_deleted",
			Details: map[string]any{"records": out.Records, "rejections": out.Rejections, "received_before": before}}, now)
		return err
	})
	return out, err
}
