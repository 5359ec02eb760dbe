package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/protocol"
)

// Capture is what an app saves. Sealed and the blobs' data are already
// sealed for the office; the store treats them as opaque bytes.
type Capture struct {
	Kind, Office, KeyID string
	Meta                map[string]string
	Sealed              []byte
	Blobs               []BlobData
}

// BlobData is one large part of a capture, for example a photo.
type BlobData struct {
	// ID names the blob in the capture's document; zero means the store
	// assigns a new one.
	ID   uuid.UUID
	Role string
	Data []byte
}

// pendingSave is a validated capture on its way to the writer.
type pendingSave struct {
	rec  protocol.Record // without ID, Seq and CreatedAt
	meta []byte          // rec.Meta as JSON, nil if none
	data [][]byte        // the blobs' data, in the order of rec.Blobs
	size int64           // estimated bytes on disk
}

// Save stores a capture durably and returns its record. It returns only
// once the record and all its blobs are committed in one transaction and
// fsynced. The record gets a fresh UUIDv7 and the next sequence number; it
// passes protocol.Record.Validate.
//
// If the budget or the disk reserve would be exceeded, Save returns an
// error wrapping ErrFull and writes nothing. Once the writer has taken the
// capture, Save waits for the outcome even if ctx ends.
func (s *Store) Save(ctx context.Context, c Capture) (protocol.Record, error) {
	ps, err := prepare(c)
	if err != nil {
		return protocol.Record{}, err
	}
	res := s.write(ctx, &op{save: ps})
	if res.err != nil {
		return protocol.Record{}, fmt.Errorf("save %s capture: %w", c.Kind, res.err)
	}
	return res.rec, nil
}

// prepare validates a capture and computes its blobs' references.
func prepare(c Capture) (*pendingSave, error) {
	ps := &pendingSave{rec: protocol.Record{
		Kind:   c.Kind,
		Office: c.Office,
		KeyID:  c.KeyID,
		Sealed: c.Sealed,
	}}
	if len(c.Meta) > 0 {
		ps.rec.Meta = maps.Clone(c.Meta)
		var err error
		if ps.meta, err = json.Marshal(ps.rec.Meta); err != nil {
			return nil, fmt.Errorf("save %s capture: encode metadata: %w", c.Kind, err)
		}
	}
	ps.size = int64(len(c.Sealed) + len(ps.meta))
	for _, b := range c.Blobs {
		id := b.ID
		if id == uuid.Nil {
			var err error
			if id, err = uuid.NewV7(); err != nil {
				return nil, fmt.Errorf("save %s capture: new blob id: %w", c.Kind, err)
			}
		}
		ps.rec.Blobs = append(ps.rec.Blobs, protocol.BlobRef{
			ID: id, Role: b.Role, Size: uint64(len(b.Data)), SHA256: protocol.SumOf(b.Data),
		})
		ps.data = append(ps.data, b.Data)
		ps.size += int64(len(b.Data))
	}
	// A 64 KiB segment takes 16 overflow pages and about 500 bytes on a
	// leaf page; rows and index entries need a little more.
	ps.size += ps.size/64 + 1024 + 512*int64(len(c.Blobs))
	probe := ps.rec
	probe.ID = uuid.UUID{6: 0x70, 8: 0x80} // any UUIDv7; the writer assigns the real one
	probe.Seq = 1
	probe.CreatedAt = 1
	if err := probe.Validate(); err != nil {
		return nil, fmt.Errorf("save capture: %w", err)
	}
	return ps, nil
}

// insert writes a capture in the writer's transaction.
func (w *wtx) insert(ps *pendingSave) (protocol.Record, error) {
	ctx := context.Background()
	id, err := uuid.NewV7()
	if err != nil {
		return protocol.Record{}, fmt.Errorf("new record id: %w", err)
	}
	rec := ps.rec
	rec.ID, rec.Seq, rec.CreatedAt = id, w.seq+1, protocol.At(w.now)
	var meta any
	if ps.meta != nil {
		meta = string(ps.meta)
	}
	now := ms(w.now)
	if _, err := w.tx.ExecContext(ctx, `INSERT INTO records
		(seq, id, kind, office, key_id, created_at, meta, sealed, outbox, state, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?)`,
		rec.Seq, rec.ID[:], rec.Kind, rec.Office, rec.KeyID, int64(rec.CreatedAt), meta, rec.Sealed, Saved, now); err != nil {
		return protocol.Record{}, w.s.writeErr("insert record", err)
	}
	for i, b := range rec.Blobs {
		res, err := w.tx.ExecContext(ctx, `INSERT INTO blobs (id, seq, ord, role, size, sha256, present)
			VALUES (?, ?, ?, ?, ?, ?, 1)`, b.ID[:], rec.Seq, i, b.Role, int64(b.Size), b.SHA256[:])
		if err != nil {
			return protocol.Record{}, w.s.writeErr("insert blob", err)
		}
		bid, err := res.LastInsertId()
		if err != nil {
			return protocol.Record{}, w.s.writeErr("insert blob", err)
		}
		data := ps.data[i]
		for idx := 0; len(data) > 0; idx++ {
			n := min(len(data), segmentSize)
			if _, err := w.tx.ExecContext(ctx, "INSERT INTO segments (bid, idx, data) VALUES (?, ?, ?)", bid, idx, data[:n]); err != nil {
				return protocol.Record{}, w.s.writeErr("insert blob data", err)
			}
			data = data[n:]
		}
	}
	w.seq = rec.Seq
	w.events = append(w.events, Entry{
		ID: rec.ID, Seq: rec.Seq, Kind: rec.Kind, Office: rec.Office, CreatedAt: rec.CreatedAt.Time(),
		Meta: maps.Clone(rec.Meta), State: Saved, UpdatedAt: time.UnixMilli(now).UTC(),
	})
	return rec, nil
}

// Pending returns up to limit records that the server has neither
// acknowledged nor rejected, with seq > afterSeq, in ascending seq order,
// with their sealed bodies and blob references.
func (s *Store) Pending(ctx context.Context, afterSeq uint64, limit int) ([]protocol.Record, error) {
	if err := checkLimit(limit); err != nil {
		return nil, fmt.Errorf("pending records: %w", err)
	}
	var recs []protocol.Record
	err := s.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT seq, id, kind, office, key_id, created_at, meta, sealed
			FROM records WHERE outbox = 1 AND seq > ? ORDER BY seq LIMIT ?`, afterSeq, limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		index := make(map[uint64]int)
		for rows.Next() {
			var r protocol.Record
			var id []byte
			var meta sql.NullString
			var created int64
			if err := rows.Scan(&r.Seq, &id, &r.Kind, &r.Office, &r.KeyID, &created, &meta, &r.Sealed); err != nil {
				return err
			}
			if r.ID, err = uuid.FromBytes(id); err != nil {
				return err
			}
			r.CreatedAt = protocol.Timestamp(created)
			if r.Meta, err = decodeMeta(meta); err != nil {
				return fmt.Errorf("record %d: %w", r.Seq, err)
			}
			index[r.Seq] = len(recs)
			recs = append(recs, r)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if len(recs) == 0 {
			return nil
		}
		rows, err = tx.QueryContext(ctx, `SELECT seq, id, role, size, sha256 FROM blobs
			WHERE seq IN (SELECT seq FROM records WHERE outbox = 1 AND seq > ? ORDER BY seq LIMIT ?)
			ORDER BY seq, ord`, afterSeq, limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var seq uint64
			var id, sum []byte
			var b protocol.BlobRef
			if err := rows.Scan(&seq, &id, &b.Role, &b.Size, &sum); err != nil {
				return err
			}
			i, ok := index[seq]
			if !ok {
				return fmt.Errorf("blob of record %d that is not in the snapshot", seq)
			}
			if b.ID, err = uuid.FromBytes(id); err != nil {
				return err
			}
			if err := b.SHA256.UnmarshalBinary(sum); err != nil {
				return err
			}
			recs[i].Blobs = append(recs[i].Blobs, b)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("pending records: %w", err)
	}
	return recs, nil
}

// Bounds returns the lowest sequence number still unacknowledged (0 if
// none) and the highest ever assigned (0 if none).
func (s *Store) Bounds(ctx context.Context) (lowest, highest uint64, err error) {
	err = s.read(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `SELECT
			coalesce((SELECT min(seq) FROM records WHERE outbox = 1), 0),
			(SELECT value FROM counters WHERE name = 'seq')`).Scan(&lowest, &highest)
	})
	if err != nil {
		return 0, 0, fmt.Errorf("sequence bounds: %w", err)
	}
	return lowest, highest, nil
}

const entryCols = "seq, id, kind, office, created_at, meta, state, reference, reason, note, updated_at"

// scanner is a *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

func scanEntry(sc scanner) (Entry, error) {
	var e Entry
	var id []byte
	var meta sql.NullString
	var created, updated int64
	if err := sc.Scan(&e.Seq, &id, &e.Kind, &e.Office, &created, &meta, &e.State,
		&e.Reference, &e.Reason, &e.Note, &updated); err != nil {
		return Entry{}, err
	}
	var err error
	if e.ID, err = uuid.FromBytes(id); err != nil {
		return Entry{}, err
	}
	if e.Meta, err = decodeMeta(meta); err != nil {
		return Entry{}, fmt.Errorf("record %d: %w", e.Seq, err)
	}
	e.CreatedAt = time.UnixMilli(created).UTC()
	e.UpdatedAt = time.UnixMilli(updated).UTC()
	return e, nil
}

// updateEntries runs an UPDATE or DELETE … RETURNING entryCols in the
// writer's transaction and queues an event for every row it returns.
func (w *wtx) updateEntries(query string, args ...any) (int, error) {
	rows, err := w.tx.QueryContext(context.Background(), query+" RETURNING "+entryCols, args...)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		e, err := scanEntry(rows)
		if err != nil {
			return n, err
		}
		w.events = append(w.events, e)
		n++
	}
	return n, rows.Err()
}

// exists reports whether a record with the id exists, in the writer's
// transaction.
func (w *wtx) exists(id uuid.UUID) (bool, error) {
	var n int
	err := w.tx.QueryRowContext(context.Background(), "SELECT count(*) FROM records WHERE id = ?", id[:]).Scan(&n)
	return n > 0, err
}

// MarkStored records that the server durably stored these records: their
// sealed bodies are deleted at once, their metadata stays. Blob data stays
// until MarkBlobComplete. Unknown ids and repeated acks are ignored. It
// does not wait for the disk (see the package documentation).
func (s *Store) MarkStored(ctx context.Context, ids ...uuid.UUID) error {
	if len(ids) == 0 {
		return nil
	}
	err := s.changeLazy(ctx, func(w *wtx) error {
		for _, id := range ids {
			n, err := w.updateEntries(`UPDATE records SET sealed = NULL, outbox = 0,
				state = CASE WHEN state IN (?, ?) THEN ? ELSE state END, updated_at = ?
				WHERE id = ? AND (outbox = 1 OR sealed IS NOT NULL OR state IN (?, ?))`,
				Saved, Rejected, Stored, ms(w.now), id[:], Saved, Rejected)
			if err != nil {
				return err
			}
			w.freed = w.freed || n > 0
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("mark %d records stored: %w", len(ids), err)
	}
	return nil
}

// MarkRejected records that the server refused the record: it stays on the
// device with the reason and is no longer pending. A record the server
// already stored is left as it is. Unknown ids give ErrNotFound.
func (s *Store) MarkRejected(ctx context.Context, id uuid.UUID, reason string) error {
	err := s.change(ctx, func(w *wtx) error {
		n, err := w.updateEntries(`UPDATE records SET outbox = 0, state = ?, reason = ?, updated_at = ?
			WHERE id = ? AND state = ?`, Rejected, reason, ms(w.now), id[:], Saved)
		if err != nil || n > 0 {
			return err
		}
		return w.mustExist(id)
	})
	if err != nil {
		return fmt.Errorf("mark record %v rejected: %w", id, err)
	}
	return nil
}

func (w *wtx) mustExist(id uuid.UUID) error {
	ok, err := w.exists(id)
	if err == nil && !ok {
		err = fmt.Errorf("record %v: %w", id, ErrNotFound)
	}
	return err
}

// SetState records what became of a record downstream, as the server
// reports it. A state that implies the server holds the record (Stored to
// Erased) also takes it out of the outbox and deletes its sealed body. A
// late Stored never moves a record back from a later state. Rejected sets
// the reason to note. Unknown ids give ErrNotFound.
func (s *Store) SetState(ctx context.Context, id uuid.UUID, st State, reference, note string) error {
	if !st.valid() || st == Saved {
		return fmt.Errorf("set state of record %v: %v is not a state the server can report", id, st)
	}
	err := s.change(ctx, func(w *wtx) error {
		var n int
		var err error
		switch {
		case st == Rejected:
			n, err = w.updateEntries(`UPDATE records SET outbox = 0, state = ?, reason = ?, note = ?, updated_at = ?
				WHERE id = ? AND state != ?`, Rejected, note, note, ms(w.now), id[:], Rejected)
		case st == Stored:
			n, err = w.updateEntries(`UPDATE records SET sealed = NULL, outbox = 0, state = ?,
				reference = CASE WHEN ? = '' THEN reference ELSE ? END, note = ?, updated_at = ?
				WHERE id = ? AND state IN (?, ?)`, Stored, reference, reference, note, ms(w.now), id[:], Saved, Rejected)
		default:
			n, err = w.updateEntries(`UPDATE records SET sealed = NULL, outbox = 0, state = ?,
				reference = CASE WHEN ? = '' THEN reference ELSE ? END, note = ?, updated_at = ?
				WHERE id = ?`, st, reference, reference, note, ms(w.now), id[:])
			w.freed = w.freed || n > 0
		}
		if err != nil || n > 0 {
			return err
		}
		return w.mustExist(id)
	})
	if err != nil {
		return fmt.Errorf("set state of record %v to %v: %w", id, st, err)
	}
	return nil
}

// Get returns what the device keeps about a record, or ErrNotFound.
func (s *Store) Get(ctx context.Context, id uuid.UUID) (Entry, error) {
	var e Entry
	err := s.read(ctx, func(tx *sql.Tx) error {
		var err error
		e, err = scanEntry(tx.QueryRowContext(ctx, "SELECT "+entryCols+" FROM records WHERE id = ?", id[:]))
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		return err
	})
	if err != nil {
		return Entry{}, fmt.Errorf("record %v: %w", id, err)
	}
	return e, nil
}

// List returns up to limit records with seq > afterSeq in ascending order,
// whatever their state: the device's history for its user interface.
func (s *Store) List(ctx context.Context, afterSeq uint64, limit int) ([]Entry, error) {
	if err := checkLimit(limit); err != nil {
		return nil, fmt.Errorf("list records: %w", err)
	}
	var es []Entry
	err := s.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, "SELECT "+entryCols+" FROM records WHERE seq > ? ORDER BY seq LIMIT ?", afterSeq, limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			e, err := scanEntry(rows)
			if err != nil {
				return err
			}
			es = append(es, e)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("list records: %w", err)
	}
	return es, nil
}

// WipeUnsent deletes every record that the server has not acknowledged
// (nor rejected), with its blobs, and returns how many. Watchers see each
// wiped record once more, in state Erased. The sequence numbers of wiped
// records are never assigned again; the server will never see them.
func (s *Store) WipeUnsent(ctx context.Context) (int, error) {
	var n int
	err := s.change(ctx, func(w *wtx) error {
		ctx := context.Background()
		if _, err := w.tx.ExecContext(ctx, `DELETE FROM segments WHERE bid IN
			(SELECT bid FROM blobs WHERE seq IN (SELECT seq FROM records WHERE outbox = 1))`); err != nil {
			return err
		}
		if _, err := w.tx.ExecContext(ctx, "DELETE FROM blobs WHERE seq IN (SELECT seq FROM records WHERE outbox = 1)"); err != nil {
			return err
		}
		mark := len(w.events)
		var err error
		if n, err = w.updateEntries("DELETE FROM records WHERE outbox = 1"); err != nil {
			return err
		}
		for i := mark; i < len(w.events); i++ {
			w.events[i].State = Erased
			w.events[i].Note = "wiped from the device before it was sent"
			w.events[i].UpdatedAt = time.UnixMilli(ms(w.now)).UTC()
		}
		w.freed = w.freed || n > 0
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("wipe unsent records: %w", err)
	}
	return n, nil
}

// read runs fn in a read-only transaction: one consistent snapshot.
func (s *Store) read(ctx context.Context, fn func(tx *sql.Tx) error) error {
	if s.closing.Load() {
		return ErrClosed
	}
	tx, err := s.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return s.readErr(err)
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return s.readErr(err)
	}
	return nil
}

func (s *Store) readErr(err error) error {
	if s.closing.Load() && (errors.Is(err, sql.ErrConnDone) || strings.Contains(err.Error(), "database is closed")) {
		return ErrClosed
	}
	return err
}

func decodeMeta(meta sql.NullString) (map[string]string, error) {
	if !meta.Valid {
		return nil, nil
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(meta.String), &m); err != nil {
		return nil, fmt.Errorf("stored metadata: %w", err)
	}
	return m, nil
}

func checkLimit(limit int) error {
	if limit < 1 {
		return fmt.Errorf("limit %d: must be 1 or more", limit)
	}
	return nil
}

// ms is t in Unix milliseconds.
func ms(t time.Time) int64 { return t.UnixMilli() }
