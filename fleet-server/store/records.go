package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/protocol"
)

// Ingest tables (migration 0020): device_sync (each device's contiguous high
// watermark), records (metadata and the sealed body, which the server never
// opens), record_rejections (refused records keep their place in the
// sequence), blobs and blob_chunks. fleet-server/ingest is their one writer,
// through IngestTx; the queries below serve the API and delivery.

var (
	// ErrBlobIncomplete is returned when a blob is read before it is
	// assembled and verified.
	ErrBlobIncomplete = errors.New("blob incomplete")
	// ErrConflict means that another writer (another replica) changed the
	// row first; read again and retry.
	ErrConflict = errors.New("changed by another writer")
)

// IngestTx is one write transaction of the ingest's group commit. The ingest
// decides what to store (records in sequence order, chunks at the offset up
// to which a blob is complete) and calls these building blocks, all in one
// transaction per batch. Statements are prepared once per transaction.
type IngestTx struct {
	tx    *sql.Tx
	stmts map[string]*sql.Stmt
}

// Ingest runs fn in a write transaction and commits it. Like Tx, it runs fn
// again when the backend reports a conflict, so fn must start from scratch
// each time.
func (db *DB) Ingest(ctx context.Context, fn func(tx *IngestTx) error) error {
	return db.Tx(ctx, func(tx *sql.Tx) error {
		return fn(&IngestTx{tx: tx, stmts: map[string]*sql.Stmt{}})
	})
}

// stmt returns q prepared in the transaction; it closes with it.
func (t *IngestTx) stmt(ctx context.Context, q string) (*sql.Stmt, error) {
	if s, ok := t.stmts[q]; ok {
		return s, nil
	}
	s, err := t.tx.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	t.stmts[q] = s
	return s, nil
}

func (t *IngestTx) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	s, err := t.stmt(ctx, q)
	if err != nil {
		return nil, err
	}
	return s.ExecContext(ctx, args...)
}

func (t *IngestTx) queryRow(ctx context.Context, q string, args ...any) (*sql.Row, error) {
	s, err := t.stmt(ctx, q)
	if err != nil {
		return nil, err
	}
	return s.QueryRowContext(ctx, args...), nil
}

// placeholders returns "$from, $from+1, …" for n arguments.
func placeholders(from, n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("$" + strconv.Itoa(from+i))
	}
	return b.String()
}

// maxInList bounds the ids in one IN list.
const maxInList = 500

// IngestDevices returns, of ids, the devices the registry knows, each with
// its watermark (0 when it has stored nothing yet). Unknown ids are absent.
func (t *IngestTx) IngestDevices(ctx context.Context, ids []string) (map[string]uint64, error) {
	out := make(map[string]uint64, len(ids))
	for len(ids) > 0 {
		part := ids[:min(len(ids), maxInList)]
		ids = ids[len(part):]
		args := make([]any, len(part))
		for i, id := range part {
			args[i] = id
		}
		rows, err := t.tx.QueryContext(ctx, `SELECT d.id, COALESCE(s.high, 0) FROM devices d
			LEFT JOIN device_sync s ON s.device_id = d.id WHERE d.id IN (`+placeholders(1, len(part))+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("read sync state: %w", err)
		}
		for rows.Next() {
			var id string
			var high int64
			if err := rows.Scan(&id, &high); err != nil {
				rows.Close()
				return nil, fmt.Errorf("read sync state: %w", err)
			}
			out[id] = uint64(high)
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return nil, fmt.Errorf("read sync state: %w", err)
		}
	}
	return out, nil
}

// AdvanceHigh moves a device's watermark from from to to and reports whether
// it did. False (with no error) means the stored watermark is not from:
// another writer moved it, and the caller's view of the device is stale.
func (t *IngestTx) AdvanceHigh(ctx context.Context, device string, from, to uint64, at int64) (bool, error) {
	var res sql.Result
	var err error
	if from == 0 {
		res, err = t.exec(ctx, `INSERT INTO device_sync (device_id, high, updated_at) VALUES ($1, $2, $3)
			ON CONFLICT (device_id) DO UPDATE SET high = excluded.high, updated_at = excluded.updated_at
			WHERE device_sync.high = 0`, device, int64(to), at)
	} else {
		res, err = t.exec(ctx, `UPDATE device_sync SET high = $1, updated_at = $2 WHERE device_id = $3 AND high = $4`,
			int64(to), at, device, int64(from))
	}
	if err != nil {
		return false, fmt.Errorf("advance watermark of %s: %w", device, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("advance watermark of %s: %w", device, err)
	}
	return n == 1, nil
}

// InsertRecord stores a record and its blob references. It reports false,
// storing nothing, when the device has a record with this id or sequence
// already.
func (t *IngestTx) InsertRecord(ctx context.Context, device string, r *protocol.Record, at int64) (bool, error) {
	meta := []byte("{}")
	if len(r.Meta) > 0 {
		var err error
		if meta, err = json.Marshal(r.Meta); err != nil {
			return false, fmt.Errorf("store record %v: %w", r.ID, err)
		}
	}
	sealed := r.Sealed
	if sealed == nil {
		sealed = []byte{}
	}
	res, err := t.exec(ctx, `INSERT INTO records (device_id, id, seq, kind, office, key_id, created_at, received_at,
		meta, sealed, sealed_size) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING`,
		device, r.ID.String(), int64(r.Seq), r.Kind, r.Office, r.KeyID, int64(r.CreatedAt), at, string(meta), sealed, len(r.Sealed))
	if err != nil {
		return false, fmt.Errorf("store record %v of %s: %w", r.ID, device, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return false, err
	}
	for i, b := range r.Blobs {
		if _, err := t.exec(ctx, `INSERT INTO blobs (device_id, record_id, id, idx, role, size, sha256)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			device, r.ID, b.ID, i, b.Role, int64(b.Size), b.SHA256[:]); err != nil {
			return false, fmt.Errorf("store blob %v of record %v: %w", b.ID, r.ID, err)
		}
	}
	return true, nil
}

// Rejection is a record the server refused. It keeps its place in the
// device's sequence.
type Rejection struct {
	Seq    uint64
	ID     uuid.UUID
	Reason string
	At     int64
}

// InsertRejection stores the refusal of a record at seq.
func (t *IngestTx) InsertRejection(ctx context.Context, device string, seq uint64, id uuid.UUID, reason string, at int64) error {
	if _, err := t.exec(ctx, `INSERT INTO record_rejections (device_id, seq, id, reason, rejected_at)
		VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING`, device, int64(seq), id, reason, at); err != nil {
		return fmt.Errorf("store rejection of record %v of %s: %w", id, device, err)
	}
	return nil
}

// RecordIndex is what a device has stored under some ids and sequences.
type RecordIndex struct {
	// SeqOf maps a stored record's id to its sequence.
	SeqOf map[uuid.UUID]uint64
	// IDAt maps a sequence to the stored record's id.
	IDAt map[uint64]uuid.UUID
	// Rejected holds the refused records, by sequence and by id.
	RejectedAt map[uint64]Rejection
	RejectedID map[uuid.UUID]Rejection
}

// LookupRecords returns what the device stored or refused under any of ids
// or seqs.
func (t *IngestTx) LookupRecords(ctx context.Context, device string, ids []uuid.UUID, seqs []uint64) (RecordIndex, error) {
	ix := RecordIndex{
		SeqOf: map[uuid.UUID]uint64{}, IDAt: map[uint64]uuid.UUID{},
		RejectedAt: map[uint64]Rejection{}, RejectedID: map[uuid.UUID]Rejection{},
	}
	for len(ids) > 0 || len(seqs) > 0 {
		pi := ids[:min(len(ids), maxInList)]
		ps := seqs[:min(len(seqs), maxInList)]
		ids, seqs = ids[len(pi):], seqs[len(ps):]
		args := []any{device}
		for _, id := range pi {
			args = append(args, id)
		}
		for _, s := range ps {
			args = append(args, int64(s))
		}
		var cond []string
		if len(pi) > 0 {
			cond = append(cond, "id IN ("+placeholders(2, len(pi))+")")
		}
		if len(ps) > 0 {
			cond = append(cond, "seq IN ("+placeholders(2+len(pi), len(ps))+")")
		}
		where := ` WHERE device_id = $1 AND (` + strings.Join(cond, " OR ") + `)`
		err := queryEach(ctx, t.tx, `SELECT id, seq, '', 0, 0 FROM records`+where+
			` UNION ALL SELECT id, seq, reason, rejected_at, 1 FROM record_rejections`+where, args,
			func(rows *sql.Rows) error {
				var id uuid.UUID
				var seq, at int64
				var reason string
				var rejected int
				if err := rows.Scan(&id, &seq, &reason, &at, &rejected); err != nil {
					return err
				}
				if rejected == 1 {
					r := Rejection{Seq: uint64(seq), ID: id, Reason: reason, At: at}
					ix.RejectedAt[r.Seq] = r
					ix.RejectedID[id] = r
					return nil
				}
				ix.SeqOf[id] = uint64(seq)
				ix.IDAt[uint64(seq)] = id
				return nil
			})
		if err != nil {
			return RecordIndex{}, fmt.Errorf("look up records of %s: %w", device, err)
		}
	}
	return ix, nil
}

// queryEach runs q and calls fn for each row.
func queryEach(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, query string, args []any, fn func(*sql.Rows) error) error {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// BlobState is how far a blob has arrived.
type BlobState struct {
	Size     uint64
	SHA256   protocol.Sum
	Have     uint64
	Complete bool
}

// BlobState returns the state of a blob of a stored record, or ErrNotFound.
func (t *IngestTx) BlobState(ctx context.Context, device string, record, blob uuid.UUID) (BlobState, error) {
	row, err := t.queryRow(ctx, `SELECT size, sha256, have, complete_at IS NOT NULL FROM blobs
		WHERE device_id = $1 AND record_id = $2 AND id = $3`, device, record, blob)
	if err != nil {
		return BlobState{}, fmt.Errorf("read blob %v: %w", blob, err)
	}
	var b BlobState
	var size, have int64
	var sum []byte
	err = row.Scan(&size, &sum, &have, &b.Complete)
	if errors.Is(err, sql.ErrNoRows) {
		return BlobState{}, ErrNotFound
	}
	if err != nil {
		return BlobState{}, fmt.Errorf("read blob %v: %w", blob, err)
	}
	b.Size, b.Have = uint64(size), uint64(have)
	copy(b.SHA256[:], sum)
	return b, nil
}

// HasRecord reports whether the device has stored the record.
func (t *IngestTx) HasRecord(ctx context.Context, device string, id uuid.UUID) (bool, error) {
	row, err := t.queryRow(ctx, `SELECT 1 FROM records WHERE device_id = $1 AND id = $2`, device, id)
	if err != nil {
		return false, fmt.Errorf("look up record %v: %w", id, err)
	}
	var one int
	err = row.Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("look up record %v: %w", id, err)
	}
	return true, nil
}

// StartedBlobBytes returns the declared sizes of the device's blobs that
// have begun to arrive and are not complete: what finishing them will take.
func (t *IngestTx) StartedBlobBytes(ctx context.Context, device string) (uint64, error) {
	row, err := t.queryRow(ctx, `SELECT COALESCE(SUM(size), 0) FROM blobs
		WHERE device_id = $1 AND complete_at IS NULL AND have > 0`, device)
	if err != nil {
		return 0, fmt.Errorf("sum incomplete blobs of %s: %w", device, err)
	}
	var n int64
	if err := row.Scan(&n); err != nil {
		return 0, fmt.Errorf("sum incomplete blobs of %s: %w", device, err)
	}
	return uint64(n), nil
}

// AppendChunk stores data at off, which must be the blob's Have, and moves
// Have past it. ErrConflict means that another writer stored a chunk of
// the blob first.
func (t *IngestTx) AppendChunk(ctx context.Context, device string, record, blob uuid.UUID, off uint64, data []byte, at int64) error {
	res, err := t.exec(ctx, `INSERT INTO blob_chunks (device_id, record_id, blob_id, off, data) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT DO NOTHING`, device, record, blob, int64(off), data)
	if err == nil {
		err = oneRow(res)
	}
	if err != nil {
		return fmt.Errorf("store chunk of blob %v at %d: %w", blob, off, err)
	}
	res, err = t.exec(ctx, `UPDATE blobs SET have = $1, started_at = COALESCE(started_at, $2)
		WHERE device_id = $3 AND record_id = $4 AND id = $5 AND have = $6`,
		int64(off)+int64(len(data)), at, device, record, blob, int64(off))
	if err == nil {
		err = oneRow(res)
	}
	if err != nil {
		return fmt.Errorf("store chunk of blob %v at %d: %w", blob, off, err)
	}
	return nil
}

// oneRow returns ErrConflict unless res changed exactly one row.
func oneRow(res sql.Result) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n != 1 {
		return ErrConflict
	}
	return nil
}

// BlobDigest reads the stored chunks of a blob in order and returns the
// SHA-256 of their bytes and how many there are. Chunks that do not follow
// each other without a gap are an error.
func (t *IngestTx) BlobDigest(ctx context.Context, device string, record, blob uuid.UUID) (protocol.Sum, uint64, error) {
	h := sha256.New()
	n, err := copyChunks(ctx, t.tx, device, record, blob, h)
	if err != nil {
		return protocol.Sum{}, 0, err
	}
	var sum protocol.Sum
	h.Sum(sum[:0])
	return sum, uint64(n), nil
}

type queryer interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}

// copyChunks writes a blob's chunks to w in order, one row at a time.
func copyChunks(ctx context.Context, q queryer, device string, record, blob uuid.UUID, w io.Writer) (int64, error) {
	var n int64
	err := queryEach(ctx, q, `SELECT off, data FROM blob_chunks WHERE device_id = $1 AND record_id = $2 AND blob_id = $3
		ORDER BY off`, []any{device, record, blob}, func(rows *sql.Rows) error {
		var off int64
		var data []byte
		if err := rows.Scan(&off, &data); err != nil {
			return err
		}
		if off != n {
			return fmt.Errorf("chunk at %d where %d was expected", off, n)
		}
		m, err := w.Write(data)
		n += int64(m)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("read blob %v: %w", blob, err)
	}
	return n, nil
}

// CompleteBlob marks a blob assembled and verified.
func (t *IngestTx) CompleteBlob(ctx context.Context, device string, record, blob uuid.UUID, at int64) error {
	if _, err := t.exec(ctx, `UPDATE blobs SET complete_at = $1 WHERE device_id = $2 AND record_id = $3 AND id = $4`,
		at, device, record, blob); err != nil {
		return fmt.Errorf("complete blob %v: %w", blob, err)
	}
	return nil
}

// ResetBlob deletes a blob's chunks, so that it arrives again from offset 0.
func (t *IngestTx) ResetBlob(ctx context.Context, device string, record, blob uuid.UUID) error {
	if _, err := t.exec(ctx, `DELETE FROM blob_chunks WHERE device_id = $1 AND record_id = $2 AND blob_id = $3`,
		device, record, blob); err != nil {
		return fmt.Errorf("reset blob %v: %w", blob, err)
	}
	if _, err := t.exec(ctx, `UPDATE blobs SET have = 0, started_at = NULL, complete_at = NULL
		WHERE device_id = $1 AND record_id = $2 AND id = $3`, device, record, blob); err != nil {
		return fmt.Errorf("reset blob %v: %w", blob, err)
	}
	return nil
}

// IncompleteBlobs returns up to limit of the device's incomplete blobs with
// how much of each is stored, in the order of their records' sequences.
func (t *IngestTx) IncompleteBlobs(ctx context.Context, device string, limit int) ([]protocol.BlobProgress, error) {
	return incompleteBlobs(ctx, t.tx, device, limit)
}

func incompleteBlobs(ctx context.Context, q queryer, device string, limit int) ([]protocol.BlobProgress, error) {
	var out []protocol.BlobProgress
	err := queryEach(ctx, q, `SELECT b.record_id, b.id, b.have FROM blobs b
		JOIN records r ON r.device_id = b.device_id AND r.id = b.record_id
		WHERE b.device_id = $1 AND b.complete_at IS NULL ORDER BY r.seq, b.idx LIMIT $2`,
		[]any{device, limit}, func(rows *sql.Rows) error {
			var p protocol.BlobProgress
			var have int64
			if err := rows.Scan(&p.Record, &p.Blob, &have); err != nil {
				return err
			}
			p.Have = uint64(have)
			out = append(out, p)
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("list incomplete blobs of %s: %w", device, err)
	}
	return out, nil
}

// Record is a stored record's metadata. The sealed body is read separately
// (RecordSealed); the server never opens it.
type Record struct {
	// N orders records as the server stored them; it is the paging cursor.
	N          int64
	Device     string
	ID         uuid.UUID
	Seq        uint64
	Kind       string
	Office     string
	KeyID      string
	CreatedAt  int64 // the device's clock
	ReceivedAt int64 // the server's clock
	Meta       map[string]string
	SealedSize int64
	// Erased is set once the sealed body is deleted.
	Erased bool
	Blobs  []Blob
}

// Blob is a blob of a record and how much of it has arrived.
type Blob struct {
	ID         uuid.UUID
	Role       string
	Size       uint64
	SHA256     protocol.Sum
	Have       uint64
	CompleteAt int64 // 0 until assembled and verified
}

// RecordFilter selects records: of one device, kind and office (each ""
// for any), after the record with N After, at most Limit (default 100, at
// most 1000), ordered by N.
type RecordFilter struct {
	Device string
	Kind   string
	Office string
	After  int64
	Limit  int
}

// Records returns the records f selects with their blobs.
func (db *DB) Records(ctx context.Context, f RecordFilter) ([]Record, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	f.Limit = min(f.Limit, 1000)
	var cond []string
	args := []any{f.After}
	for _, c := range []struct{ col, v string }{{"device_id", f.Device}, {"kind", f.Kind}, {"office", f.Office}} {
		if c.v != "" {
			args = append(args, c.v)
			cond = append(cond, c.col+" = $"+strconv.Itoa(len(args)))
		}
	}
	where := "n > $1"
	if len(cond) > 0 {
		where += " AND " + strings.Join(cond, " AND ")
	}
	args = append(args, f.Limit)
	return db.records(ctx, where+" ORDER BY n LIMIT $"+strconv.Itoa(len(args)), args)
}

// Record returns one record of a device, or ErrNotFound.
func (db *DB) Record(ctx context.Context, device string, id uuid.UUID) (Record, error) {
	rs, err := db.records(ctx, "device_id = $1 AND id = $2", []any{device, id})
	if err != nil {
		return Record{}, err
	}
	if len(rs) == 0 {
		return Record{}, ErrNotFound
	}
	return rs[0], nil
}

func (db *DB) records(ctx context.Context, where string, args []any) ([]Record, error) {
	var out []Record
	byKey := map[[2]string]int{}
	err := queryEach(ctx, db.read, `SELECT r.n, r.device_id, r.id, r.seq, r.kind, r.office, r.key_id, r.created_at,
		r.received_at, r.meta, r.sealed_size, r.erased,
		b.id, b.role, b.size, b.sha256, b.have, b.complete_at
		FROM (SELECT n, device_id, id, seq, kind, office, key_id, created_at, received_at, meta, sealed_size,
			sealed IS NULL AS erased FROM records WHERE `+where+`) r
		LEFT JOIN blobs b ON b.device_id = r.device_id AND b.record_id = r.id
		ORDER BY r.n, b.idx`, args, func(rows *sql.Rows) error {
		var r Record
		var seq int64
		var meta string
		var bid sql.Null[uuid.UUID]
		var role sql.NullString
		var size, have, complete sql.NullInt64
		var sum []byte
		if err := rows.Scan(&r.N, &r.Device, &r.ID, &seq, &r.Kind, &r.Office, &r.KeyID, &r.CreatedAt,
			&r.ReceivedAt, &meta, &r.SealedSize, &r.Erased, &bid, &role, &size, &sum, &have, &complete); err != nil {
			return err
		}
		key := [2]string{r.Device, r.ID.String()}
		i, seen := byKey[key]
		if !seen {
			r.Seq = uint64(seq)
			if meta != "{}" {
				if err := json.Unmarshal([]byte(meta), &r.Meta); err != nil {
					return fmt.Errorf("metadata of record %v: %w", r.ID, err)
				}
			}
			out = append(out, r)
			i = len(out) - 1
			byKey[key] = i
		}
		if bid.Valid {
			b := Blob{ID: bid.V, Role: role.String, Size: uint64(size.Int64), Have: uint64(have.Int64), CompleteAt: complete.Int64}
			copy(b.SHA256[:], sum)
			out[i].Blobs = append(out[i].Blobs, b)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list records: %w", err)
	}
	return out, nil
}

// RecordSealed returns the sealed body of a record: ErrNotFound when there
// is no such record or its body has been erased.
func (db *DB) RecordSealed(ctx context.Context, device string, id uuid.UUID) ([]byte, error) {
	var b []byte
	err := db.read.QueryRowContext(ctx, `SELECT sealed FROM records WHERE device_id = $1 AND id = $2 AND sealed IS NOT NULL`,
		device, id).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read sealed body of record %v: %w", id, err)
	}
	return b, nil
}

// CopyBlob writes a complete blob to w: ErrNotFound when there is no such
// blob, ErrBlobIncomplete while it is still arriving.
func (db *DB) CopyBlob(ctx context.Context, device string, record, blob uuid.UUID, w io.Writer) (int64, error) {
	var complete bool
	err := db.read.QueryRowContext(ctx, `SELECT complete_at IS NOT NULL FROM blobs WHERE device_id = $1 AND record_id = $2 AND id = $3`,
		device, record, blob).Scan(&complete)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, ErrNotFound
	}
	if err != nil {
		return 0, fmt.Errorf("read blob %v: %w", blob, err)
	}
	if !complete {
		return 0, ErrBlobIncomplete
	}
	return copyChunks(ctx, db.read, device, record, blob, w)
}

// DeviceSync is a device's sync position as the server sees it.
type DeviceSync struct {
	Device string
	// High is the contiguous high watermark: every sequence up to it is
	// stored or refused.
	High      uint64
	UpdatedAt int64
	// Rejected counts the device's refused records.
	Rejected int64
	// Incomplete lists up to protocol.MaxGaps blobs still arriving.
	Incomplete []protocol.BlobProgress
}

// DeviceSync returns a device's sync position; a device that has sent
// nothing has High 0 (ErrNotFound only for an unknown device).
func (db *DB) DeviceSync(ctx context.Context, device string) (DeviceSync, error) {
	s := DeviceSync{Device: device}
	var high sql.NullInt64
	var updated sql.NullInt64
	err := db.read.QueryRowContext(ctx, `SELECT s.high, s.updated_at,
		(SELECT count(*) FROM record_rejections WHERE device_id = d.id)
		FROM devices d LEFT JOIN device_sync s ON s.device_id = d.id WHERE d.id = $1`, device).Scan(&high, &updated, &s.Rejected)
	if errors.Is(err, sql.ErrNoRows) {
		return DeviceSync{}, ErrNotFound
	}
	if err != nil {
		return DeviceSync{}, fmt.Errorf("read sync state of %s: %w", device, err)
	}
	s.High, s.UpdatedAt = uint64(high.Int64), updated.Int64
	if s.Incomplete, err = incompleteBlobs(ctx, db.read, device, protocol.MaxGaps); err != nil {
		return DeviceSync{}, err
	}
	return s, nil
}

// RecordRejections returns a device's refused records with sequences above
// afterSeq, at most limit (default 100, at most 1000), in sequence order.
func (db *DB) RecordRejections(ctx context.Context, device string, afterSeq uint64, limit int) ([]Rejection, error) {
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, 1000)
	var out []Rejection
	err := queryEach(ctx, db.read, `SELECT seq, id, reason, rejected_at FROM record_rejections
		WHERE device_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`, []any{device, int64(min(afterSeq, 1<<62)), limit},
		func(rows *sql.Rows) error {
			var r Rejection
			var seq int64
			if err := rows.Scan(&seq, &r.ID, &r.Reason, &r.At); err != nil {
				return err
			}
			r.Seq = uint64(seq)
			out = append(out, r)
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("list rejections of %s: %w", device, err)
	}
	return out, nil
}
