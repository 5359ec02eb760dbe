package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Dashboard sessions (migration 0060). Only a hash of the session token is
// stored: a copy of the database does not let anyone sign in.

// Session stages.
const (
	// SessionFull is a signed-in session.
	SessionFull = "full"
	// SessionTOTP is a session whose password was right and whose second
	// factor is still due.
	SessionTOTP = "totp"
)

// Session is a dashboard session.
type Session struct {
	IDHash    string // hex SHA-256 of the session token
	User      string
	Stage     string
	CreatedAt int64
	LastSeen  int64
	ExpiresAt int64
	Remote    string
	UserAgent string
}

// CreateSession stores a new session.
func (db *DB) CreateSession(ctx context.Context, s Session) error {
	return db.Tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO dashboard_sessions (id_hash, user_id, stage, created_at,
			last_seen, expires_at, remote, user_agent) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
			s.IDHash, s.User, s.Stage, s.CreatedAt, s.LastSeen, s.ExpiresAt, s.Remote, s.UserAgent)
		if err != nil {
			return fmt.Errorf("create session: %w", err)
		}
		return nil
	})
}

// Session returns the session with the token hash, or ErrNotFound; an
// expired session is not found.
func (db *DB) Session(ctx context.Context, idHash string, now int64) (Session, error) {
	var s Session
	err := db.read.QueryRowContext(ctx, `SELECT id_hash, user_id, stage, created_at, last_seen, expires_at,
		remote, user_agent FROM dashboard_sessions WHERE id_hash = $1 AND expires_at > $2`, idHash, now).
		Scan(&s.IDHash, &s.User, &s.Stage, &s.CreatedAt, &s.LastSeen, &s.ExpiresAt, &s.Remote, &s.UserAgent)
	if errors.Is(err, sql.ErrNoRows) {
		return Session{}, ErrNotFound
	}
	if err != nil {
		return Session{}, fmt.Errorf("read session: %w", err)
	}
	return s, nil
}

// UserSessions returns a user's unexpired sessions, newest first.
func (db *DB) UserSessions(ctx context.Context, user string, now int64) ([]Session, error) {
	var out []Session
	err := queryEach(ctx, db.read, `SELECT id_hash, user_id, stage, created_at, last_seen, expires_at, remote,
		user_agent FROM dashboard_sessions WHERE user_id = $1 AND expires_at > $2 ORDER BY created_at DESC`,
		[]any{user, now}, func(rows *sql.Rows) error {
			var s Session
			if err := rows.Scan(&s.IDHash, &s.User, &s.Stage, &s.CreatedAt, &s.LastSeen, &s.ExpiresAt, &s.Remote,
				&s.UserAgent); err != nil {
				return err
			}
			out = append(out, s)
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("list sessions of %s: %w", user, err)
	}
	return out, nil
}

// TouchSession records activity on a session and moves its expiry.
func (db *DB) TouchSession(ctx context.Context, idHash string, lastSeen, expiresAt int64) error {
	return db.Tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE dashboard_sessions SET last_seen = $1, expires_at = $2
			WHERE id_hash = $3 AND expires_at > $1`, lastSeen, expiresAt, idHash)
		if err != nil {
			return fmt.Errorf("touch session: %w", err)
		}
		return nil
	})
}

// DeleteSession ends a session; ending a missing one is no error.
func (db *DB) DeleteSession(ctx context.Context, idHash string) error {
	return db.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM dashboard_sessions WHERE id_hash = $1`, idHash); err != nil {
			return fmt.Errorf("delete session: %w", err)
		}
		return nil
	})
}

// DeleteUserSessions ends every session of a user but keep (a token hash,
// or "" for none), and returns how many it ended.
func (db *DB) DeleteUserSessions(ctx context.Context, user, keep string) (int64, error) {
	var n int64
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM dashboard_sessions WHERE user_id = $1 AND id_hash <> $2`, user, keep)
		if err != nil {
			return fmt.Errorf("delete sessions of %s: %w", user, err)
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}

// DeleteExpiredSessions deletes the sessions expired at now and returns how
// many.
func (db *DB) DeleteExpiredSessions(ctx context.Context, now int64) (int64, error) {
	var n int64
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM dashboard_sessions WHERE expires_at <= $1`, now)
		if err != nil {
			return fmt.Errorf("delete expired sessions: %w", err)
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}
