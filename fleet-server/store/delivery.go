package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/protocol"
)

// Delivery tables (migration 0040): deliveries, one durable queue per
// destination office, and bridge_certs, the client certificates of the
// bridges. The ingest enqueues through IngestTx.EnqueueDelivery inside its
// group commit; fleet-server/delivery is the one other writer of
// deliveries; fleet-server/registry writes bridge_certs.

// Delivery states (deliveries.state).
const (
	DeliveryQueued    = "queued"
	DeliveryLeased    = "leased"
	DeliveryDelivered = "delivered"
	DeliveryAccepted  = "accepted"
	DeliveryDead      = "dead"
	DeliveryDiscarded = "discarded"
	DeliveryErased    = "erased"
)

// DeliveryStates lists the states in their usual order.
var DeliveryStates = []string{DeliveryQueued, DeliveryLeased, DeliveryDelivered, DeliveryAccepted,
	DeliveryDead, DeliveryDiscarded, DeliveryErased}

// Errors of the delivery methods that callers act on.
var (
	// ErrLeaseLost: the lease named by its attempt is no longer the
	// record's current one (it expired and the record was leased again),
	// or the record left the queue.
	ErrLeaseLost = errors.New("lease lost")
	// ErrNotDeadLetter: the record is not a dead letter (any more).
	ErrNotDeadLetter = errors.New("not a dead letter")
)

// Delivery is a record's place in its office's queue, without the body.
type Delivery struct {
	// N orders the queue (the paging cursor).
	N           int64
	Record      uuid.UUID
	Device      string
	Office      string
	Kind        string
	State       string
	Attempt     int
	LeasedUntil int64
	AvailableAt int64
	LastError   string
	// Reference is the procedure's receipt, once it gave one.
	Reference  string
	Note       string
	EnqueuedAt int64
	UpdatedAt  int64
	AcceptedAt int64
	DeadAt     int64
	// Status is what the device was last told (0: nothing yet).
	Status       protocol.DeliveryState
	StatusNote   string
	StatusAt     int64
	StatusSentAt int64
}

const deliveryColumns = `n, record_id, device_id, office, kind, state, attempt, leased_until, available_at,
	last_error, reference, note, enqueued_at, updated_at, COALESCE(accepted_at, 0), COALESCE(dead_at, 0),
	status, status_note, status_at, COALESCE(status_sent_at, 0)`

const deliverySelect = `SELECT ` + deliveryColumns + ` FROM deliveries`

func deliveryScan(rows interface{ Scan(...any) error }) (Delivery, error) {
	var d Delivery
	var status int64
	err := rows.Scan(&d.N, &d.Record, &d.Device, &d.Office, &d.Kind, &d.State, &d.Attempt, &d.LeasedUntil,
		&d.AvailableAt, &d.LastError, &d.Reference, &d.Note, &d.EnqueuedAt, &d.UpdatedAt, &d.AcceptedAt, &d.DeadAt,
		&status, &d.StatusNote, &d.StatusAt, &d.StatusSentAt)
	d.Status = protocol.DeliveryState(status)
	return d, err
}

// EnqueueDelivery puts a stored record into its office's queue once it and
// all its blobs are complete; the ingest calls it after storing a record
// and after completing a blob, in the same transaction. A record queued
// already, erased, or with a blob still arriving is left alone.
//
// It returns another device's id when the record id is queued for that
// device already: then this record is not queued. Record ids are UUIDv7
// chosen by the devices, so this means a broken or hostile device; the
// caller logs it.
func (t *IngestTx) EnqueueDelivery(ctx context.Context, device string, record uuid.UUID, at int64) (string, error) {
	res, err := t.exec(ctx, `INSERT INTO deliveries (record_id, device_id, office, kind, state, available_at, enqueued_at, updated_at)
		SELECT r.id, r.device_id, r.office, r.kind, 'queued', $1, $1, $1 FROM records r
		WHERE r.device_id = $2 AND r.id = $3 AND r.sealed IS NOT NULL
		AND NOT EXISTS (SELECT 1 FROM blobs b WHERE b.device_id = r.device_id AND b.record_id = r.id AND b.complete_at IS NULL)
		ON CONFLICT (record_id) DO NOTHING`, at, device, record)
	if err != nil {
		return "", fmt.Errorf("queue record %v for delivery: %w", record, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 1 {
		return "", err
	}
	// Not queued: incomplete, erased, queued already, or its id is taken.
	return t.otherDevice(ctx, device, record)
}

// EnqueueRecord queues a record without blobs that this transaction has
// just stored: EnqueueDelivery without reading the record back. Its result
// is EnqueueDelivery's.
func (t *IngestTx) EnqueueRecord(ctx context.Context, device string, r *protocol.Record, at int64) (string, error) {
	if len(r.Blobs) > 0 {
		return t.EnqueueDelivery(ctx, device, r.ID, at)
	}
	res, err := t.exec(ctx, `INSERT INTO deliveries (record_id, device_id, office, kind, state, available_at, enqueued_at, updated_at)
		VALUES ($1, $2, $3, $4, 'queued', $5, $5, $5) ON CONFLICT (record_id) DO NOTHING`, r.ID, device, r.Office, r.Kind, at)
	if err != nil {
		return "", fmt.Errorf("queue record %v for delivery: %w", r.ID, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 1 {
		return "", err
	}
	return t.otherDevice(ctx, device, r.ID)
}

// otherDevice returns the device whose delivery holds record, when it is
// not device.
func (t *IngestTx) otherDevice(ctx context.Context, device string, record uuid.UUID) (string, error) {
	row, err := t.queryRow(ctx, `SELECT device_id FROM deliveries WHERE record_id = $1`, record)
	if err != nil {
		return "", fmt.Errorf("queue record %v for delivery: %w", record, err)
	}
	var other string
	switch err := row.Scan(&other); {
	case errors.Is(err, sql.ErrNoRows):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("queue record %v for delivery: %w", record, err)
	case other != device:
		return other, nil
	}
	return "", nil
}

// LeasedDelivery is a delivery leased to a bridge, with what it needs to
// deliver the record.
type LeasedDelivery struct {
	Delivery
	Seq       uint64
	KeyID     string
	CreatedAt int64
	Meta      map[string]string
	Sealed    []byte
	Blobs     []protocol.BlobRef
}

// LeaseOptions are the parameters of one lease.
type LeaseOptions struct {
	Office string
	Max    int
	// Until is when the lease expires.
	Until int64
	// MaxAttempts: a record whose lease expires with this many attempts
	// becomes a dead letter instead of being leased again.
	MaxAttempts int
	Now         int64
}

// LeaseDeliveries leases up to o.Max deliveries of o.Office in queue order:
// queued ones that are due and ones whose lease expired. Each gets its
// attempt counted. Records whose lease expired after their last attempt
// become dead letters first; they are returned in dead.
func (db *DB) LeaseDeliveries(ctx context.Context, o LeaseOptions) (leased []LeasedDelivery, dead []Delivery, err error) {
	err = db.Tx(ctx, func(tx *sql.Tx) error {
		leased, dead = nil, nil
		var err error
		if dead, err = expireLeases(ctx, tx, o.Office, o.MaxAttempts, o.Now); err != nil {
			return err
		}
		// SQLite numbers $N parameters in the order they first appear:
		// keep them ascending in the text.
		pick := `SELECT n FROM deliveries WHERE office = $3 AND ((state = 'queued' AND available_at <= $2)
			OR (state IN ('leased', 'delivered') AND leased_until <= $2 AND attempt < $4)) ORDER BY n LIMIT $5`
		var q string
		if db.dialect == Postgres {
			q = `WITH picked AS (` + pick + ` FOR UPDATE SKIP LOCKED)
				UPDATE deliveries d SET state = 'leased', attempt = d.attempt + 1, leased_until = $1, updated_at = $2
				FROM picked WHERE d.n = picked.n RETURNING d.n`
		} else {
			q = `UPDATE deliveries SET state = 'leased', attempt = attempt + 1, leased_until = $1, updated_at = $2
				WHERE n IN (` + pick + `) RETURNING n`
		}
		var ns []int64
		err = queryEach(ctx, tx, q, []any{o.Until, o.Now, o.Office, o.MaxAttempts, o.Max}, func(rows *sql.Rows) error {
			var n int64
			if err := rows.Scan(&n); err != nil {
				return err
			}
			ns = append(ns, n)
			return nil
		})
		if err != nil {
			return fmt.Errorf("lease deliveries of office %s: %w", o.Office, err)
		}
		if len(ns) == 0 {
			return nil
		}
		leased, err = leasedBodies(ctx, tx, ns)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	return leased, dead, nil
}

// leasedBodies reads the deliveries numbered ns with their records.
func leasedBodies(ctx context.Context, tx *sql.Tx, ns []int64) ([]LeasedDelivery, error) {
	args := make([]any, len(ns))
	for i, n := range ns {
		args[i] = n
	}
	var out []LeasedDelivery
	byRecord := map[uuid.UUID]int{}
	err := queryEach(ctx, tx, `SELECT d.n, d.record_id, d.device_id, d.office, d.kind, d.state, d.attempt, d.leased_until,
		d.available_at, d.last_error, d.reference, d.note, d.enqueued_at, d.updated_at, COALESCE(d.accepted_at, 0),
		COALESCE(d.dead_at, 0), d.status, d.status_note, d.status_at, COALESCE(d.status_sent_at, 0),
		r.seq, r.key_id, r.created_at, r.meta, r.sealed
		FROM deliveries d JOIN records r ON r.device_id = d.device_id AND r.id = d.record_id
		WHERE d.n IN (`+placeholders(1, len(ns))+`) ORDER BY d.n`, args, func(rows *sql.Rows) error {
		var l LeasedDelivery
		var status, seq int64
		var meta string
		if err := rows.Scan(&l.N, &l.Record, &l.Device, &l.Office, &l.Kind, &l.State, &l.Attempt, &l.LeasedUntil,
			&l.AvailableAt, &l.LastError, &l.Reference, &l.Note, &l.EnqueuedAt, &l.UpdatedAt, &l.AcceptedAt, &l.DeadAt,
			&status, &l.StatusNote, &l.StatusAt, &l.StatusSentAt, &seq, &l.KeyID, &l.CreatedAt, &meta, &l.Sealed); err != nil {
			return err
		}
		l.Status, l.Seq = protocol.DeliveryState(status), uint64(seq)
		if meta != "{}" && meta != "" {
			if err := json.Unmarshal([]byte(meta), &l.Meta); err != nil {
				return fmt.Errorf("metadata of record %v: %w", l.Record, err)
			}
		}
		if l.Sealed == nil {
			l.Sealed = []byte{}
		}
		byRecord[l.Record] = len(out)
		out = append(out, l)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read leased records: %w", err)
	}
	err = queryEach(ctx, tx, `SELECT b.record_id, b.id, b.role, b.size, b.sha256 FROM blobs b
		JOIN deliveries d ON d.device_id = b.device_id AND d.record_id = b.record_id
		WHERE d.n IN (`+placeholders(1, len(ns))+`) ORDER BY b.record_id, b.idx`, args, func(rows *sql.Rows) error {
		var rec uuid.UUID
		var b protocol.BlobRef
		var size int64
		var sum []byte
		if err := rows.Scan(&rec, &b.ID, &b.Role, &size, &sum); err != nil {
			return err
		}
		b.Size = uint64(size)
		copy(b.SHA256[:], sum)
		if i, ok := byRecord[rec]; ok {
			out[i].Blobs = append(out[i].Blobs, b)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read blobs of leased records: %w", err)
	}
	return out, nil
}

// expireLeases turns the deliveries (of office, or of all offices for "")
// whose lease expired after their last attempt into dead letters, and tells
// their devices that delivery failed.
func expireLeases(ctx context.Context, tx *sql.Tx, office string, maxAttempts int, now int64) ([]Delivery, error) {
	reason := fmt.Sprintf("lease expired after attempt %d of %d without an ack or a failure from the bridge",
		maxAttempts, maxAttempts)
	q := `UPDATE deliveries SET state = 'dead', dead_at = $1, updated_at = $1, leased_until = 0,
		last_error = CASE WHEN last_error = '' THEN CAST($2 AS TEXT) ELSE CAST($2 AS TEXT) || '; last failure: ' || last_error END,
		status = $3, status_note = $4, status_at = $1, status_sent_at = NULL
		WHERE state IN ('leased', 'delivered') AND leased_until <= $1 AND attempt >= $5`
	args := []any{now, reason, int(protocol.Failed), reason, maxAttempts}
	if office != "" {
		q += ` AND office = $6`
		args = append(args, office)
	}
	var out []Delivery
	err := queryEach(ctx, tx, q+` RETURNING `+deliveryColumns, args, func(rows *sql.Rows) error {
		d, err := deliveryScan(rows)
		if err != nil {
			return err
		}
		out = append(out, d)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("dead-letter expired leases: %w", err)
	}
	return out, nil
}

// ExpireLeases turns deliveries of every office whose lease expired after
// their last attempt into dead letters and returns them.
func (db *DB) ExpireLeases(ctx context.Context, maxAttempts int, now int64) ([]Delivery, error) {
	var out []Delivery
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		var err error
		out, err = expireLeases(ctx, tx, "", maxAttempts, now)
		return err
	})
	return out, err
}

// lockDelivery reads a delivery for change: on PostgreSQL its row stays
// locked until tx ends.
func (db *DB) lockDelivery(ctx context.Context, tx *sql.Tx, record uuid.UUID) (Delivery, error) {
	q := deliverySelect + ` WHERE record_id = $1`
	if db.dialect == Postgres {
		q += ` FOR UPDATE`
	}
	d, err := deliveryScan(tx.QueryRowContext(ctx, q, record))
	if errors.Is(err, sql.ErrNoRows) {
		return Delivery{}, ErrNotFound
	}
	if err != nil {
		return Delivery{}, fmt.Errorf("read delivery of record %v: %w", record, err)
	}
	return d, nil
}

// dropBody deletes a record's sealed body and its blobs' bytes, keeping the
// metadata, the blobs' sizes and digests; blobs still arriving are closed
// so that nothing more of them is stored. It returns the bytes deleted.
func dropBody(ctx context.Context, tx *sql.Tx, device string, record uuid.UUID, now int64) (int64, error) {
	var sealed, chunks int64
	err := tx.QueryRowContext(ctx, `SELECT COALESCE((SELECT length(sealed) FROM records WHERE device_id = $1 AND id = $2), 0),
		COALESCE((SELECT SUM(length(data)) FROM blob_chunks WHERE device_id = $1 AND record_id = $2), 0)`,
		device, record).Scan(&sealed, &chunks)
	if err != nil {
		return 0, fmt.Errorf("delete body of record %v: %w", record, err)
	}
	for _, q := range []string{
		`UPDATE records SET sealed = NULL WHERE device_id = $1 AND id = $2`,
		`DELETE FROM blob_chunks WHERE device_id = $1 AND record_id = $2`,
	} {
		if _, err := tx.ExecContext(ctx, q, device, record); err != nil {
			return 0, fmt.Errorf("delete body of record %v: %w", record, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE blobs SET complete_at = $1 WHERE device_id = $2 AND record_id = $3 AND complete_at IS NULL`,
		now, device, record); err != nil {
		return 0, fmt.Errorf("delete body of record %v: %w", record, err)
	}
	return sealed + chunks, nil
}

// AckResult is what an ack did.
type AckResult struct {
	Delivery Delivery
	// Accepted is set when this ack accepted the record (not a repeated
	// ack); BytesDeleted is what it deleted of body and blobs.
	Accepted     bool
	BytesDeleted int64
}

// AckDelivery records the procedure's receipt for the lease attempt:
// state accepted, the sealed body and the blobs' bytes deleted, the device
// to be told, and an audit entry by actor, all in one transaction. An ack
// of an accepted record changes nothing and is no error. ErrLeaseLost when
// the record was leased again since (another attempt holds it) or left
// the queue; ErrNotFound when it is not queued at all. An empty actor
// stands for the office's bridge, "bridge.<office>".
func (db *DB) AckDelivery(ctx context.Context, record uuid.UUID, attempt int, reference, note, actor string, now int64) (AckResult, error) {
	var res AckResult
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		res = AckResult{}
		d, err := db.lockDelivery(ctx, tx, record)
		if err != nil {
			return err
		}
		if actor == "" {
			actor = "bridge." + d.Office
		}
		switch {
		case d.State == DeliveryAccepted:
			res.Delivery = d
			return nil
		case d.Attempt != attempt:
			return fmt.Errorf("%w: record %v is at attempt %d, the ack is for attempt %d", ErrLeaseLost, record, d.Attempt, attempt)
		case d.State == DeliveryDiscarded || d.State == DeliveryErased:
			// Delivered before its body went: keep the receipt, so that
			// the record can be traced to its case.
			_, err := tx.ExecContext(ctx, `UPDATE deliveries SET reference = $1, note = $2, accepted_at = $3, updated_at = $3
				WHERE record_id = $4`, reference, note, now, record)
			if err != nil {
				return fmt.Errorf("store receipt of record %v: %w", record, err)
			}
			res.Delivery, err = db.lockDelivery(ctx, tx, record)
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE deliveries SET state = 'accepted', reference = $1, note = $2, accepted_at = $3,
			updated_at = $3, leased_until = 0, status = $4, status_note = $2, status_at = $3, status_sent_at = NULL
			WHERE record_id = $5`, reference, note, now, int(protocol.Accepted), record); err != nil {
			return fmt.Errorf("accept record %v: %w", record, err)
		}
		if res.BytesDeleted, err = dropBody(ctx, tx, d.Device, record, now); err != nil {
			return err
		}
		if _, err := db.appendAudit(ctx, tx, AuditEvent{
			Actor: actor, Action: "delivery.accepted", Target: "record:" + record.String(),
			Details: map[string]any{"device": d.Device, "office": d.Office, "kind": d.Kind, "attempt": attempt,
				"reference": reference, "deleted": "sealed body and blobs", "bytes_deleted": res.BytesDeleted},
		}, now); err != nil {
			return err
		}
		res.Accepted = true
		res.Delivery, err = db.lockDelivery(ctx, tx, record)
		return err
	})
	return res, err
}

// FailOptions describe a failure a bridge reported for a lease attempt.
type FailOptions struct {
	Attempt   int
	Reason    string
	Permanent bool
	// MaxAttempts: a failed attempt numbered this or higher makes a dead
	// letter.
	MaxAttempts int
	// RetryAt is when a record that is not dead may be leased again.
	RetryAt int64
	Now     int64
}

// FailDelivery records a failed attempt: the record goes back into the
// queue (due at o.RetryAt), or becomes a dead letter when the failure is
// permanent or the attempts are used up; then its device is told. A
// failure reported for a record that is a dead letter or queued already
// (the same attempt) only updates the reason. ErrLeaseLost and ErrNotFound
// as for AckDelivery.
func (db *DB) FailDelivery(ctx context.Context, record uuid.UUID, o FailOptions) (FailResult, error) {
	var out FailResult
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		out = FailResult{}
		d, err := db.lockDelivery(ctx, tx, record)
		if err != nil {
			return err
		}
		switch {
		case d.Attempt != o.Attempt:
			return fmt.Errorf("%w: record %v is at attempt %d, the failure is for attempt %d", ErrLeaseLost, record, d.Attempt, o.Attempt)
		case d.State == DeliveryAccepted || d.State == DeliveryDiscarded || d.State == DeliveryErased:
			return fmt.Errorf("%w: record %v is %s", ErrLeaseLost, record, d.State)
		case d.State == DeliveryDead || d.State == DeliveryQueued:
			_, err = tx.ExecContext(ctx, `UPDATE deliveries SET last_error = $1, updated_at = $2 WHERE record_id = $3`,
				o.Reason, o.Now, record)
		case o.Permanent || o.Attempt >= o.MaxAttempts:
			out.Dead = true
			why := o.Reason
			if !o.Permanent {
				why = fmt.Sprintf("attempt %d of %d failed: %s", o.Attempt, o.MaxAttempts, o.Reason)
			}
			_, err = tx.ExecContext(ctx, `UPDATE deliveries SET state = 'dead', last_error = $1, dead_at = $2, updated_at = $2,
				leased_until = 0, status = $3, status_note = $1, status_at = $2, status_sent_at = NULL WHERE record_id = $4`,
				why, o.Now, int(protocol.Failed), record)
		default:
			_, err = tx.ExecContext(ctx, `UPDATE deliveries SET state = 'queued', last_error = $1, available_at = $2,
				updated_at = $3, leased_until = 0 WHERE record_id = $4`, o.Reason, o.RetryAt, o.Now, record)
		}
		if err != nil {
			return fmt.Errorf("record failure of record %v: %w", record, err)
		}
		out.Delivery, err = db.lockDelivery(ctx, tx, record)
		return err
	})
	return out, err
}

// FailResult is what a failure report did.
type FailResult struct {
	Delivery Delivery
	// Dead is set when this report made the record a dead letter.
	Dead bool
}

// SetDeliveryStatus records a later status from the procedure (in
// progress, closed, …) for the device; a reference replaces the stored one.
// Delivered marks a leased record as handed over (it stays leased).
func (db *DB) SetDeliveryStatus(ctx context.Context, record uuid.UUID, state protocol.DeliveryState, reference, note string, now int64) (Delivery, error) {
	var out Delivery
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		d, err := db.lockDelivery(ctx, tx, record)
		if err != nil {
			return err
		}
		queue := d.State
		if state == protocol.Delivered && d.State == DeliveryLeased {
			queue = DeliveryDelivered
		}
		if reference == "" {
			reference = d.Reference
		}
		if _, err := tx.ExecContext(ctx, `UPDATE deliveries SET state = $1, reference = $2, updated_at = $3,
			status = $4, status_note = $5, status_at = $3, status_sent_at = NULL WHERE record_id = $6`,
			queue, reference, now, int(state), note, record); err != nil {
			return fmt.Errorf("store status of record %v: %w", record, err)
		}
		out, err = db.lockDelivery(ctx, tx, record)
		return err
	})
	return out, err
}

// ReplayDeadLetter puts a dead letter back into its queue with its attempts
// reset, and appends an audit entry by actor.
func (db *DB) ReplayDeadLetter(ctx context.Context, record uuid.UUID, actor string, now int64) (Delivery, error) {
	var out Delivery
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		d, err := db.lockDelivery(ctx, tx, record)
		if err != nil {
			return err
		}
		if d.State != DeliveryDead {
			return fmt.Errorf("%w: record %v is %s", ErrNotDeadLetter, record, d.State)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE deliveries SET state = 'queued', attempt = 0, available_at = $1, updated_at = $1,
			leased_until = 0, dead_at = NULL WHERE record_id = $2`, now, record); err != nil {
			return fmt.Errorf("replay record %v: %w", record, err)
		}
		if _, err := db.appendAudit(ctx, tx, AuditEvent{
			Actor: actor, Action: "dead_letter.replay", Target: "record:" + record.String(),
			Details: map[string]any{"device": d.Device, "office": d.Office, "kind": d.Kind, "attempts": d.Attempt,
				"last_error": d.LastError},
		}, now); err != nil {
			return err
		}
		out, err = db.lockDelivery(ctx, tx, record)
		return err
	})
	return out, err
}

// DiscardDeadLetter drops a dead letter: state discarded, the sealed body
// and the blobs' bytes deleted, and an audit entry by actor with reason.
func (db *DB) DiscardDeadLetter(ctx context.Context, record uuid.UUID, reason, actor string, now int64) (Delivery, int64, error) {
	var out Delivery
	var deleted int64
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		d, err := db.lockDelivery(ctx, tx, record)
		if err != nil {
			return err
		}
		if d.State != DeliveryDead {
			return fmt.Errorf("%w: record %v is %s", ErrNotDeadLetter, record, d.State)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE deliveries SET state = 'discarded', updated_at = $1, leased_until = 0
			WHERE record_id = $2`, now, record); err != nil {
			return fmt.Errorf("discard record %v: %w", record, err)
		}
		if deleted, err = dropBody(ctx, tx, d.Device, record, now); err != nil {
			return err
		}
		if _, err := db.appendAudit(ctx, tx, AuditEvent{
			Actor: actor, Action: "dead_letter.discard", Target: "record:" + record.String(),
			Details: map[string]any{"device": d.Device, "office": d.Office, "kind": d.Kind, "reason": reason,
				"last_error": d.LastError, "deleted": "sealed body and blobs", "bytes_deleted": deleted},
		}, now); err != nil {
			return err
		}
		out, err = db.lockDelivery(ctx, tx, record)
		return err
	})
	return out, deleted, err
}

// DeliveryOf returns the delivery of a record, or ErrNotFound.
func (db *DB) DeliveryOf(ctx context.Context, record uuid.UUID) (Delivery, error) {
	d, err := deliveryScan(db.read.QueryRowContext(ctx, deliverySelect+` WHERE record_id = $1`, record))
	if errors.Is(err, sql.ErrNoRows) {
		return Delivery{}, ErrNotFound
	}
	if err != nil {
		return Delivery{}, fmt.Errorf("read delivery of record %v: %w", record, err)
	}
	return d, nil
}

// DeliveryFilter selects deliveries of one office and one state (each ""
// for any), in queue order after the one with N After, at most Limit
// (default 100, at most 1000).
type DeliveryFilter struct {
	Office string
	State  string
	After  int64
	Limit  int
}

// Deliveries returns the deliveries f selects.
func (db *DB) Deliveries(ctx context.Context, f DeliveryFilter) ([]Delivery, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	f.Limit = min(f.Limit, 1000)
	args := []any{f.After}
	where := "n > $1"
	for _, c := range []struct{ col, v string }{{"state", f.State}, {"office", f.Office}} {
		if c.v != "" {
			args = append(args, c.v)
			where += " AND " + c.col + " = $" + strconv.Itoa(len(args))
		}
	}
	args = append(args, f.Limit)
	var out []Delivery
	err := queryEach(ctx, db.read, deliverySelect+" WHERE "+where+" ORDER BY n LIMIT $"+strconv.Itoa(len(args)), args,
		func(rows *sql.Rows) error {
			d, err := deliveryScan(rows)
			if err != nil {
				return err
			}
			out = append(out, d)
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("list deliveries: %w", err)
	}
	return out, nil
}

// OfficeStats is the state of one office's queue.
type OfficeStats struct {
	Office string
	// Counts holds the number of deliveries per open state (queued,
	// leased, delivered) and of dead letters.
	Counts map[string]int64
	// OldestQueued is the enqueue time of the oldest delivery not yet
	// accepted or dead (0 when there is none).
	OldestQueued int64
}

// DeliveryStats returns the queues of every office that has open
// deliveries or dead letters, by office.
func (db *DB) DeliveryStats(ctx context.Context) ([]OfficeStats, error) {
	var out []OfficeStats
	byOffice := map[string]int{}
	err := queryEach(ctx, db.read, `SELECT office, state, count(*), MIN(enqueued_at) FROM deliveries
		WHERE state IN ('queued', 'leased', 'delivered', 'dead') GROUP BY office, state ORDER BY office, state`, nil,
		func(rows *sql.Rows) error {
			var office, state string
			var n, oldest int64
			if err := rows.Scan(&office, &state, &n, &oldest); err != nil {
				return err
			}
			i, ok := byOffice[office]
			if !ok {
				i = len(out)
				byOffice[office] = i
				out = append(out, OfficeStats{Office: office, Counts: map[string]int64{}})
			}
			s := &out[i]
			s.Counts[state] = n
			if state != DeliveryDead && (s.OldestQueued == 0 || oldest < s.OldestQueued) {
				s.OldestQueued = oldest
			}
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("read delivery statistics: %w", err)
	}
	return out, nil
}

// DeliveryBlob writes the bytes of a blob of a queued record to w, from one
// snapshot: ErrNotFound when the record is not queued, its body is deleted
// or it has no such blob.
func (db *DB) DeliveryBlob(ctx context.Context, record, blob uuid.UUID, w io.Writer) (int64, error) {
	opts := &sql.TxOptions{ReadOnly: true}
	if db.dialect == Postgres {
		opts.Isolation = sql.LevelRepeatableRead
	}
	tx, err := db.read.BeginTx(ctx, opts)
	if err != nil {
		return 0, fmt.Errorf("read blob %v: %w", blob, err)
	}
	defer tx.Rollback()
	var device string
	var complete bool
	err = tx.QueryRowContext(ctx, `SELECT d.device_id, b.complete_at IS NOT NULL FROM deliveries d
		JOIN records r ON r.device_id = d.device_id AND r.id = d.record_id
		JOIN blobs b ON b.device_id = d.device_id AND b.record_id = d.record_id
		WHERE d.record_id = $1 AND b.id = $2 AND r.sealed IS NOT NULL`, record, blob).Scan(&device, &complete)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, ErrNotFound
	}
	if err != nil {
		return 0, fmt.Errorf("read blob %v: %w", blob, err)
	}
	if !complete {
		return 0, ErrBlobIncomplete
	}
	return copyChunks(ctx, tx, device, record, blob, w)
}

// StatusUpdate is a status a device is to be told.
type StatusUpdate struct {
	Device    string
	Record    uuid.UUID
	State     protocol.DeliveryState
	Reference string
	Note      string
	At        int64
}

const statusSelect = `SELECT d.device_id, d.record_id, d.status, d.reference, d.status_note, d.status_at FROM deliveries d`

func (db *DB) statuses(ctx context.Context, q string, args ...any) ([]StatusUpdate, error) {
	var out []StatusUpdate
	err := queryEach(ctx, db.read, statusSelect+" "+q, args, func(rows *sql.Rows) error {
		var s StatusUpdate
		var state int64
		if err := rows.Scan(&s.Device, &s.Record, &state, &s.Reference, &s.Note, &s.At); err != nil {
			return err
		}
		s.State = protocol.DeliveryState(state)
		out = append(out, s)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list status updates: %w", err)
	}
	return out, nil
}

// UnsentStatuses returns up to limit statuses not yet sent to devices that
// are online now, by device.
func (db *DB) UnsentStatuses(ctx context.Context, limit int) ([]StatusUpdate, error) {
	return db.statuses(ctx, `JOIN device_presence p ON p.device_id = d.device_id AND p.online
		WHERE d.status <> 0 AND d.status_sent_at IS NULL ORDER BY d.device_id, d.status_at LIMIT $1`, limit)
}

// DeviceStatuses returns up to limit statuses of a device that were never
// sent or changed at or after since, oldest first.
func (db *DB) DeviceStatuses(ctx context.Context, device string, since int64, limit int) ([]StatusUpdate, error) {
	return db.statuses(ctx, `WHERE d.device_id = $1 AND d.status <> 0 AND (d.status_sent_at IS NULL OR d.status_at >= $2)
		ORDER BY d.status_at LIMIT $3`, device, since, limit)
}

// MarkStatusesSent notes that the statuses were published; a status that
// changed since is left unsent.
func (db *DB) MarkStatusesSent(ctx context.Context, sent []StatusUpdate, at int64) error {
	if len(sent) == 0 {
		return nil
	}
	return db.Tx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `UPDATE deliveries SET status_sent_at = $1
			WHERE record_id = $2 AND status = $3 AND status_at = $4`)
		if err != nil {
			return fmt.Errorf("mark statuses sent: %w", err)
		}
		defer stmt.Close()
		for _, s := range sent {
			if _, err := stmt.ExecContext(ctx, at, s.Record, int(s.State), s.At); err != nil {
				return fmt.Errorf("mark status of record %v sent: %w", s.Record, err)
			}
		}
		return nil
	})
}

// BridgeCert is a client certificate the fleet CA issued to an office's
// bridge. Zero RevokedAt means not revoked.
type BridgeCert struct {
	Serial    string
	Office    string
	NotBefore int64
	NotAfter  int64
	CreatedAt int64
	RevokedAt int64
}

// AddBridgeCert stores an issued bridge certificate.
func (db *DB) AddBridgeCert(ctx context.Context, c BridgeCert) error {
	return db.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO bridge_certs (serial, office, not_before, not_after, created_at)
			VALUES ($1, $2, $3, $4, $5)`, c.Serial, c.Office, c.NotBefore, c.NotAfter, c.CreatedAt); err != nil {
			return fmt.Errorf("store bridge certificate %s: %w", c.Serial, err)
		}
		return nil
	})
}

const bridgeCertSelect = `SELECT serial, office, not_before, not_after, created_at, COALESCE(revoked_at, 0) FROM bridge_certs`

func bridgeCertScan(rows interface{ Scan(...any) error }) (BridgeCert, error) {
	var c BridgeCert
	err := rows.Scan(&c.Serial, &c.Office, &c.NotBefore, &c.NotAfter, &c.CreatedAt, &c.RevokedAt)
	return c, err
}

// BridgeCert returns a bridge certificate by serial, or ErrNotFound.
func (db *DB) BridgeCert(ctx context.Context, serial string) (BridgeCert, error) {
	c, err := bridgeCertScan(db.read.QueryRowContext(ctx, bridgeCertSelect+` WHERE serial = $1`, serial))
	if errors.Is(err, sql.ErrNoRows) {
		return BridgeCert{}, ErrNotFound
	}
	if err != nil {
		return BridgeCert{}, fmt.Errorf("read bridge certificate %s: %w", serial, err)
	}
	return c, nil
}

// BridgeCerts returns the bridge certificates of an office ("" for all),
// newest first.
func (db *DB) BridgeCerts(ctx context.Context, office string) ([]BridgeCert, error) {
	q, args := bridgeCertSelect, []any{}
	if office != "" {
		q += ` WHERE office = $1`
		args = append(args, office)
	}
	var out []BridgeCert
	err := queryEach(ctx, db.read, q+` ORDER BY created_at DESC, serial`, args, func(rows *sql.Rows) error {
		c, err := bridgeCertScan(rows)
		if err != nil {
			return err
		}
		out = append(out, c)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list bridge certificates: %w", err)
	}
	return out, nil
}

// RevokeBridgeCert revokes a bridge certificate (ErrNotFound when there is
// none with this serial); revoking it again keeps the first time.
func (db *DB) RevokeBridgeCert(ctx context.Context, serial string, at int64) (BridgeCert, error) {
	var c BridgeCert
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE bridge_certs SET revoked_at = COALESCE(revoked_at, $1) WHERE serial = $2`,
			at, serial); err != nil {
			return fmt.Errorf("revoke bridge certificate %s: %w", serial, err)
		}
		var err error
		c, err = bridgeCertScan(tx.QueryRowContext(ctx, bridgeCertSelect+` WHERE serial = $1`, serial))
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		return err
	})
	return c, err
}
