package store

import (
	"context"
	"database/sql"
	"fmt"
	"math"
)

// Rebase renumbers the store above the server's watermark for the device.
// Call it when the server says that it holds sequences up to above (the
// SyncState's Stored) while this store had assigned fewer: the store was
// lost (a damaged file moved aside) and numbering started again at 1, so its
// numbers name other records at the server.
//
// Every record (whatever its state: unsent ones so that they can be sent,
// rejected and acknowledged ones so that no number is ever held twice) gets
// a new sequence above+1, above+2, … in the order of its current one, and
// its blobs move with it. Rejected records stay rejected. The counter
// continues after the last (or stays where it is, if that is higher), so
// that the next Save gets the next number. All records move, not only those
// at or below above, because captures saved between the hello and the
// answer may already lie above it, and their order must hold. Watchers see
// every renumbered record once more, with its new sequence and its state
// unchanged. Rebase returns how many records it renumbered.
//
// If every record lies above above already and the counter is not below
// it, Rebase changes nothing and returns 0: a second call with the same
// watermark is harmless. Like every write, Rebase runs in the writer's
// transaction and is committed with fsync: it happens completely or not at
// all.
func (s *Store) Rebase(ctx context.Context, above uint64) (int, error) {
	var n int
	err := s.change(ctx, func(w *wtx) error {
		var err error
		n, err = w.rebase(above)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("renumber the records above the server's sequence %d: %w", above, err)
	}
	return n, nil
}

// rebase renumbers the records in the writer's transaction; see Rebase.
func (w *wtx) rebase(above uint64) (int, error) {
	if above > math.MaxInt64 {
		return 0, fmt.Errorf("sequence %d is beyond what the store can number", above)
	}
	ctx := context.Background()
	var count int
	var lowest sql.NullInt64
	if err := w.tx.QueryRowContext(ctx, "SELECT count(*), min(seq) FROM records").Scan(&count, &lowest); err != nil {
		return 0, err
	}
	if w.seq >= above && (!lowest.Valid || uint64(lowest.Int64) > above) {
		return 0, nil
	}
	if above > math.MaxInt64-uint64(count) {
		return 0, fmt.Errorf("the server's sequence %d leaves no room for %d records", above, count)
	}
	// Old and new numbers may overlap (a record saved after the hello may
	// hold a number the renumbering gives to an older one), so move every
	// record to the negative of its number first and from there to its new
	// one: the unique sequence holds at every step. Sequences are at least
	// 1, so the negatives are free.
	if _, err := w.tx.ExecContext(ctx, "UPDATE blobs SET seq = -seq WHERE seq IN (SELECT seq FROM records)"); err != nil {
		return 0, err
	}
	if _, err := w.tx.ExecContext(ctx, "UPDATE records SET seq = -seq"); err != nil {
		return 0, err
	}
	rows, err := w.tx.QueryContext(ctx, "SELECT -seq FROM records ORDER BY seq DESC")
	if err != nil {
		return 0, err
	}
	var olds []int64
	for rows.Next() {
		var old int64
		if err := rows.Scan(&old); err != nil {
			rows.Close()
			return 0, err
		}
		olds = append(olds, old)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	next := above
	for _, old := range olds {
		next++
		if _, err := w.updateEntries("UPDATE records SET seq = ? WHERE seq = ?", next, -old); err != nil {
			return 0, err
		}
		if _, err := w.tx.ExecContext(ctx, "UPDATE blobs SET seq = ? WHERE seq = ?", next, -old); err != nil {
			return 0, err
		}
	}
	w.seq = max(w.seq, next)
	return len(olds), nil
}
