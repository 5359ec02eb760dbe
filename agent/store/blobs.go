package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/protocol"
)

// PendingBlob is a blob whose data is still on the device.
type PendingBlob struct {
	Record, Blob uuid.UUID
	Role         string
	Size         uint64
	SHA256       protocol.Sum
	// Seq is the record's sequence number.
	Seq uint64
}

// PendingBlobs returns up to limit blobs whose data is still on the device
// (the server has not confirmed them complete), in the order of their
// records' seq and then their order in the record. Blobs of rejected
// records are left out: they are kept, not sent.
func (s *Store) PendingBlobs(ctx context.Context, limit int) ([]PendingBlob, error) {
	if err := checkLimit(limit); err != nil {
		return nil, fmt.Errorf("pending blobs: %w", err)
	}
	var bs []PendingBlob
	err := s.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT b.seq, r.id, b.id, b.role, b.size, b.sha256
			FROM blobs AS b JOIN records AS r ON r.seq = b.seq
			WHERE b.present = 1 AND r.state != ? ORDER BY b.seq, b.ord LIMIT ?`, Rejected, limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var b PendingBlob
			var rid, bid, sum []byte
			if err := rows.Scan(&b.Seq, &rid, &bid, &b.Role, &b.Size, &sum); err != nil {
				return err
			}
			if b.Record, err = uuid.FromBytes(rid); err != nil {
				return err
			}
			if b.Blob, err = uuid.FromBytes(bid); err != nil {
				return err
			}
			if err := b.SHA256.UnmarshalBinary(sum); err != nil {
				return err
			}
			bs = append(bs, b)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("pending blobs: %w", err)
	}
	return bs, nil
}

// ReadBlob reads len(p) bytes of a blob's data from offset off, with the
// semantics of io.ReaderAt: fewer bytes only at the end, together with
// io.EOF. It loads only the segments it needs. A blob whose data was
// already deleted (MarkBlobComplete) or that does not exist gives
// ErrNotFound.
func (s *Store) ReadBlob(ctx context.Context, blob uuid.UUID, off int64, p []byte) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read blob %v: negative offset %d", blob, off)
	}
	var n int
	var eof bool
	err := s.read(ctx, func(tx *sql.Tx) error {
		var bid, size int64
		var present bool
		err := tx.QueryRowContext(ctx, "SELECT bid, size, present FROM blobs WHERE id = ?", blob[:]).Scan(&bid, &size, &present)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if !present {
			return fmt.Errorf("its data is no longer on the device, the server confirmed it complete: %w", ErrNotFound)
		}
		if off >= size {
			eof = true
			return nil
		}
		end := min(off+int64(len(p)), size)
		eof = end < off+int64(len(p))
		if end == off {
			return nil
		}
		first, last := off/segmentSize, (end-1)/segmentSize
		rows, err := tx.QueryContext(ctx, "SELECT idx, data FROM segments WHERE bid = ? AND idx BETWEEN ? AND ? ORDER BY idx", bid, first, last)
		if err != nil {
			return err
		}
		defer rows.Close()
		want := first
		for rows.Next() {
			var idx int64
			var data sql.RawBytes
			if err := rows.Scan(&idx, &data); err != nil {
				return err
			}
			start := idx * segmentSize
			if idx != want || int64(len(data)) != min(segmentSize, size-start) {
				return fmt.Errorf("blob data is damaged at segment %d", want)
			}
			from := max(off, start) - start
			to := min(end, start+int64(len(data))) - start
			n += copy(p[start+from-off:], data[from:to])
			want++
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if want != last+1 {
			return fmt.Errorf("blob data is damaged: segment %d is missing", want)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("read blob %v: %w", blob, err)
	}
	if eof {
		return n, io.EOF
	}
	return n, nil
}

// MarkBlobComplete records that the server holds the whole blob: its data
// is deleted from the device and the space is given back to the file
// system in batches (incremental vacuum once enough pages are free).
// Unknown blobs and repeated calls are ignored. It does not wait for the
// disk (see the package documentation).
func (s *Store) MarkBlobComplete(ctx context.Context, blob uuid.UUID) error {
	err := s.changeLazy(ctx, func(w *wtx) error {
		ctx := context.Background()
		var bid int64
		err := w.tx.QueryRowContext(ctx, "SELECT bid FROM blobs WHERE id = ? AND present = 1", blob[:]).Scan(&bid)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		if _, err := w.tx.ExecContext(ctx, "DELETE FROM segments WHERE bid = ?", bid); err != nil {
			return err
		}
		if _, err := w.tx.ExecContext(ctx, "UPDATE blobs SET present = 0 WHERE bid = ?", bid); err != nil {
			return err
		}
		w.freed = true
		return nil
	})
	if err != nil {
		return fmt.Errorf("mark blob %v complete: %w", blob, err)
	}
	return nil
}
