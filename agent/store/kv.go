package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/google/uuid"
)

// GetValue returns the value stored under key, and whether there is one.
func (s *Store) GetValue(ctx context.Context, key string) ([]byte, bool, error) {
	var v []byte
	err := s.read(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, "SELECT value FROM kv WHERE key = ?", key).Scan(&v)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read value %q: %w", key, err)
	}
	if v == nil {
		v = []byte{}
	}
	return v, true, nil
}

// PutValue stores value under key, replacing any value there. It returns
// once the value is on disk. It works also when the store is full.
func (s *Store) PutValue(ctx context.Context, key string, value []byte) error {
	if key == "" {
		return errors.New("store value: empty key")
	}
	if value == nil {
		value = []byte{}
	}
	err := s.change(ctx, func(w *wtx) error {
		_, err := w.tx.ExecContext(context.Background(),
			"INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value", key, value)
		return err
	})
	if err != nil {
		return fmt.Errorf("store value %q: %w", key, err)
	}
	return nil
}

// AddCommand remembers a command from the server. isNew is false if the
// command was received before (even in an earlier run): the caller must
// not execute it again.
func (s *Store) AddCommand(ctx context.Context, id uuid.UUID, payload []byte) (isNew bool, err error) {
	if payload == nil {
		payload = []byte{}
	}
	err = s.change(ctx, func(w *wtx) error {
		res, err := w.tx.ExecContext(context.Background(),
			"INSERT INTO commands (id, payload, received_at) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING",
			id[:], payload, ms(w.now))
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		isNew = n == 1
		return err
	})
	if err != nil {
		return false, fmt.Errorf("remember command %v: %w", id, err)
	}
	return isNew, nil
}

// SetCommandResult stores the result of an executed command, durably. The
// first result is kept; later ones are ignored. An unknown command gives
// ErrNotFound.
func (s *Store) SetCommandResult(ctx context.Context, id uuid.UUID, result []byte) error {
	if result == nil {
		result = []byte{}
	}
	err := s.change(ctx, func(w *wtx) error {
		ctx := context.Background()
		var known, open bool
		err := w.tx.QueryRowContext(ctx, "SELECT 1, result IS NULL FROM commands WHERE id = ?", id[:]).Scan(&known, &open)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil || !open {
			return err
		}
		_, err = w.tx.ExecContext(ctx, "UPDATE commands SET result = ?, result_at = ? WHERE id = ?", result, ms(w.now), id[:])
		return err
	})
	if err != nil {
		return fmt.Errorf("store result of command %v: %w", id, err)
	}
	return nil
}

// CommandResult returns the stored result of a command; ok is false if the
// command is unknown or has no result yet.
func (s *Store) CommandResult(ctx context.Context, id uuid.UUID) (result []byte, ok bool, err error) {
	err = s.read(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, "SELECT result FROM commands WHERE id = ?", id[:]).Scan(&result)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("result of command %v: %w", id, err)
	}
	if result == nil {
		return nil, false, nil
	}
	return result, true, nil
}

// UnreportedResults returns up to limit command results that the server
// has not acknowledged yet, oldest first.
func (s *Store) UnreportedResults(ctx context.Context, limit int) (map[uuid.UUID][]byte, error) {
	if err := checkLimit(limit); err != nil {
		return nil, fmt.Errorf("unreported results: %w", err)
	}
	out := make(map[uuid.UUID][]byte)
	err := s.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT id, result FROM commands
			WHERE result IS NOT NULL AND reported = 0 ORDER BY result_at LIMIT ?`, limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var raw, result []byte
			if err := rows.Scan(&raw, &result); err != nil {
				return err
			}
			id, err := uuid.FromBytes(raw)
			if err != nil {
				return err
			}
			out[id] = result
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("unreported results: %w", err)
	}
	return out, nil
}

// MarkResultsReported records that the server stored these results.
// Unknown ids are ignored.
func (s *Store) MarkResultsReported(ctx context.Context, ids ...uuid.UUID) error {
	if len(ids) == 0 {
		return nil
	}
	err := s.change(ctx, func(w *wtx) error {
		for _, id := range ids {
			if _, err := w.tx.ExecContext(context.Background(),
				"UPDATE commands SET reported = 1 WHERE id = ? AND result IS NOT NULL", id[:]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("mark %d results reported: %w", len(ids), err)
	}
	return nil
}

// Commands returns the commands received but without a result, oldest
// first: after a crash, the agent decides what to do with them.
func (s *Store) Commands(ctx context.Context) ([]uuid.UUID, error) {
	var ids []uuid.UUID
	err := s.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, "SELECT id FROM commands WHERE result IS NULL ORDER BY received_at, rowid")
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var raw []byte
			if err := rows.Scan(&raw); err != nil {
				return err
			}
			id, err := uuid.FromBytes(raw)
			if err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("open commands: %w", err)
	}
	return ids, nil
}

// CommandPayload returns the payload of a received command, or
// ErrNotFound.
func (s *Store) CommandPayload(ctx context.Context, id uuid.UUID) ([]byte, error) {
	var p []byte
	err := s.read(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, "SELECT payload FROM commands WHERE id = ?", id[:]).Scan(&p)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("command %v: %w", id, err)
	}
	if p == nil {
		p = []byte{}
	}
	return p, nil
}
