package store

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"time"
)

// usedQuery computes the bytes the database's pages in use take: all pages
// but the free ones. It is the measure of the budget.
const usedQuery = `SELECT (p.page_count - f.freelist_count) * s.page_size
	FROM pragma_page_count() AS p, pragma_freelist_count() AS f, pragma_page_size() AS s`

// room is what a batch may still write: budget and disk space, measured
// once per batch and reduced by every capture the batch accepts.
type room struct {
	used, free int64
}

// reserve checks that a capture fits into the budget and leaves the disk
// reserve free, and books its size. Nothing is written yet.
func (w *wtx) reserve(ps *pendingSave) error {
	ctx := context.Background()
	s := w.s
	if w.room == nil {
		w.room = &room{}
		if err := w.tx.QueryRowContext(ctx, usedQuery).Scan(&w.room.used); err != nil {
			return fmt.Errorf("measure the store: %w", err)
		}
		free, err := diskFree(filepath.Dir(s.path))
		if err != nil {
			return fmt.Errorf("measure free disk space: %w", err)
		}
		w.room.free = free
	}
	if w.room.used+ps.size > s.opts.Budget {
		var unsent int
		if err := w.tx.QueryRowContext(ctx, "SELECT count(*) FROM records WHERE outbox = 1").Scan(&unsent); err != nil {
			return fmt.Errorf("count unsent records: %w", err)
		}
		if unsent == 0 {
			return fmt.Errorf("%w: %s of the %s budget used, %s more needed; captures paused until space is freed",
				ErrFull, formatBytes(w.room.used), formatBytes(s.opts.Budget), formatBytes(ps.size))
		}
		return fmt.Errorf("%w: %s of the %s budget used by %d unsent %s, %s more needed; captures paused until they are delivered",
			ErrFull, formatBytes(w.room.used), formatBytes(s.opts.Budget), unsent, plural(unsent, "record", "records"), formatBytes(ps.size))
	}
	if w.room.free-ps.size < s.opts.DiskReserve {
		return fmt.Errorf("%w: only %s free on the disk and %s must stay free; captures paused until space is freed",
			ErrFull, formatBytes(max(w.room.free, 0)), formatBytes(s.opts.DiskReserve))
	}
	w.room.used += ps.size
	w.room.free -= ps.size
	return nil
}

// Stats describes the store for the heartbeat and the user interface.
type Stats struct {
	// QueueDepth is the number of records not yet acknowledged (nor
	// rejected) by the server.
	QueueDepth int
	// OldestUnsent is when the oldest of them was saved; zero if none.
	OldestUnsent time.Time
	// BudgetUsed is the bytes of the database's pages in use; BudgetTotal
	// is the budget.
	BudgetUsed, BudgetTotal int64
	// Full is set while captures are refused for lack of space.
	Full bool
	// DiskFree is the free space on the store's file system.
	DiskFree int64
}

// minCapture is the smallest size a capture books against the budget.
const minCapture = 1 << 10

// Stats returns the store's queue depth and space. Full is set when the
// last capture was refused for lack of space and nothing was freed since,
// or when even a small capture would now be refused.
func (s *Store) Stats(ctx context.Context) (Stats, error) {
	st := Stats{BudgetTotal: s.opts.Budget}
	err := s.read(ctx, func(tx *sql.Tx) error {
		var oldest sql.NullInt64
		if err := tx.QueryRowContext(ctx, "SELECT count(*), min(created_at) FROM records WHERE outbox = 1").Scan(&st.QueueDepth, &oldest); err != nil {
			return err
		}
		if oldest.Valid {
			st.OldestUnsent = time.UnixMilli(oldest.Int64).UTC()
		}
		return tx.QueryRowContext(ctx, usedQuery).Scan(&st.BudgetUsed)
	})
	if err != nil {
		return Stats{}, fmt.Errorf("store stats: %w", err)
	}
	if st.DiskFree, err = diskFree(filepath.Dir(s.path)); err != nil {
		return Stats{}, fmt.Errorf("store stats: free disk space: %w", err)
	}
	st.Full = s.refused.Load() ||
		st.BudgetUsed+minCapture > st.BudgetTotal ||
		st.DiskFree-minCapture < s.opts.DiskReserve
	return st, nil
}

// formatBytes renders n for a person: "512 MiB", "1.5 GiB", "300 bytes".
func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d bytes", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	v := float64(n) / float64(div)
	suffix := []string{"KiB", "MiB", "GiB", "TiB", "PiB"}[exp]
	if v == float64(int64(v)) || v >= 100 {
		return fmt.Sprintf("%.0f %s", v, suffix)
	}
	return fmt.Sprintf("%.1f %s", v, suffix)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
