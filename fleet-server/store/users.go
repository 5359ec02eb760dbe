package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Dashboard users (migration 0060). fleet-server/dashboard decides who may
// sign in and what a role may do; the store keeps the accounts and counts
// failed sign-ins.

// ErrUserExists is returned when a user name or OIDC subject is taken.
var ErrUserExists = errors.New("user already exists")

// User is a dashboard account.
type User struct {
	ID          string
	Name        string // login name, lower case
	DisplayName string
	Email       string
	Role        string
	// PasswordHash is an argon2id PHC string; "" for a user who signs in
	// only through OIDC.
	PasswordHash string
	TOTPSecret   string // base32; "" when none
	TOTPEnabled  bool
	// TOTPLast is the last TOTP time step accepted.
	TOTPLast int64
	// OIDCSubject is "ISSUER SUBJECT" for a user who signs in through
	// OIDC, "" otherwise.
	OIDCSubject  string
	Lang         string
	DisabledAt   int64
	FailedLogins int
	LockedUntil  int64
	CreatedAt    int64
	UpdatedAt    int64
	LastLoginAt  int64
}

const userSelect = `SELECT id, name, display_name, email, role, password_hash, totp_secret, totp_enabled,
	totp_last, COALESCE(oidc_subject, ''), lang, COALESCE(disabled_at, 0), failed_logins, locked_until,
	created_at, updated_at, COALESCE(last_login_at, 0) FROM dashboard_users`

func userScan(row interface{ Scan(...any) error }) (User, error) {
	var u User
	err := row.Scan(&u.ID, &u.Name, &u.DisplayName, &u.Email, &u.Role, &u.PasswordHash, &u.TOTPSecret,
		&u.TOTPEnabled, &u.TOTPLast, &u.OIDCSubject, &u.Lang, &u.DisabledAt, &u.FailedLogins, &u.LockedUntil,
		&u.CreatedAt, &u.UpdatedAt, &u.LastLoginAt)
	return u, err
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// CreateUser stores a new user; ErrUserExists when the name or the OIDC
// subject is taken.
func (db *DB) CreateUser(ctx context.Context, u User) error {
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO dashboard_users (id, name, display_name, email, role,
			password_hash, totp_secret, totp_enabled, oidc_subject, lang, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)`,
			u.ID, u.Name, u.DisplayName, u.Email, u.Role, u.PasswordHash, u.TOTPSecret, u.TOTPEnabled,
			nullString(u.OIDCSubject), u.Lang, u.CreatedAt)
		return err
	})
	if IsUniqueViolation(err) {
		return ErrUserExists
	}
	if err != nil {
		return fmt.Errorf("create user %s: %w", u.Name, err)
	}
	return nil
}

func (db *DB) userWhere(ctx context.Context, what, where string, arg any) (User, error) {
	u, err := userScan(db.read.QueryRowContext(ctx, userSelect+` WHERE `+where, arg))
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, ErrNotFound
	}
	if err != nil {
		return User{}, fmt.Errorf("read user %s: %w", what, err)
	}
	return u, nil
}

// User returns the user with id, or ErrNotFound.
func (db *DB) User(ctx context.Context, id string) (User, error) {
	return db.userWhere(ctx, id, `id = $1`, id)
}

// UserByName returns the user with the login name, or ErrNotFound.
func (db *DB) UserByName(ctx context.Context, name string) (User, error) {
	return db.userWhere(ctx, name, `name = $1`, name)
}

// UserByOIDC returns the user with the OIDC subject, or ErrNotFound.
func (db *DB) UserByOIDC(ctx context.Context, subject string) (User, error) {
	if subject == "" {
		return User{}, ErrNotFound
	}
	return db.userWhere(ctx, subject, `oidc_subject = $1`, subject)
}

// Users returns every user, by name.
func (db *DB) Users(ctx context.Context) ([]User, error) {
	var out []User
	err := queryEach(ctx, db.read, userSelect+` ORDER BY name`, nil, func(rows *sql.Rows) error {
		u, err := userScan(rows)
		if err != nil {
			return err
		}
		out = append(out, u)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return out, nil
}

// CountUsers returns how many users there are, and how many of them are
// enabled admins.
func (db *DB) CountUsers(ctx context.Context) (users, admins int, err error) {
	err = db.read.QueryRowContext(ctx, `SELECT COUNT(*),
		COALESCE(SUM(CASE WHEN role = 'admin' AND disabled_at IS NULL THEN 1 ELSE 0 END), 0)
		FROM dashboard_users`).Scan(&users, &admins)
	if err != nil {
		return 0, 0, fmt.Errorf("count users: %w", err)
	}
	return users, admins, nil
}

// UserUpdate is a change of a user's profile; nil fields stay as they are.
type UserUpdate struct {
	DisplayName *string
	Email       *string
	Role        *string
	Lang        *string
	// Disabled disables (true) or enables (false) the account.
	Disabled *bool
}

// UpdateUser applies u to the user with id at the time at; ErrLastAdmin when
// it would leave no enabled admin.
func (db *DB) UpdateUser(ctx context.Context, id string, u UserUpdate, at int64) error {
	return db.Tx(ctx, func(tx *sql.Tx) error {
		cur, err := userScan(tx.QueryRowContext(ctx, userSelect+` WHERE id = $1`, id))
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("update user %s: %w", id, err)
		}
		if u.DisplayName != nil {
			cur.DisplayName = *u.DisplayName
		}
		if u.Email != nil {
			cur.Email = *u.Email
		}
		if u.Role != nil {
			cur.Role = *u.Role
		}
		if u.Lang != nil {
			cur.Lang = *u.Lang
		}
		if u.Disabled != nil {
			switch {
			case *u.Disabled && cur.DisabledAt == 0:
				cur.DisabledAt = at
			case !*u.Disabled:
				cur.DisabledAt = 0
			}
		}
		disabled := any(nil)
		if cur.DisabledAt != 0 {
			disabled = cur.DisabledAt
		}
		return keepAdmin(ctx, tx, func() error {
			if _, err := tx.ExecContext(ctx, `UPDATE dashboard_users SET display_name = $1, email = $2, role = $3,
				lang = $4, disabled_at = $5, updated_at = $6 WHERE id = $7`,
				cur.DisplayName, cur.Email, cur.Role, cur.Lang, disabled, at, id); err != nil {
				return fmt.Errorf("update user %s: %w", id, err)
			}
			return nil
		})
	})
}

// ErrLastAdmin is returned by a change that would leave no enabled admin.
var ErrLastAdmin = errors.New("the last enabled admin cannot be removed, disabled or demoted")

// enabledAdmins counts the enabled admins.
func enabledAdmins(ctx context.Context, tx *sql.Tx) (int, error) {
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM dashboard_users WHERE role = 'admin' AND disabled_at IS NULL`).
		Scan(&n); err != nil {
		return 0, fmt.Errorf("count admins: %w", err)
	}
	return n, nil
}

// keepAdmin runs change and refuses it with ErrLastAdmin when it takes the
// number of enabled admins from some to none.
func keepAdmin(ctx context.Context, tx *sql.Tx, change func() error) error {
	before, err := enabledAdmins(ctx, tx)
	if err != nil {
		return err
	}
	if err := change(); err != nil {
		return err
	}
	after, err := enabledAdmins(ctx, tx)
	if err != nil {
		return err
	}
	if before > 0 && after == 0 {
		return ErrLastAdmin
	}
	return nil
}

// DeleteUser deletes a user and its sessions; ErrLastAdmin when it is the
// last enabled admin.
func (db *DB) DeleteUser(ctx context.Context, id string) error {
	return db.Tx(ctx, func(tx *sql.Tx) error {
		return keepAdmin(ctx, tx, func() error {
			res, err := tx.ExecContext(ctx, `DELETE FROM dashboard_users WHERE id = $1`, id)
			if err != nil {
				return fmt.Errorf("delete user %s: %w", id, err)
			}
			if n, err := res.RowsAffected(); err != nil {
				return fmt.Errorf("delete user %s: %w", id, err)
			} else if n == 0 {
				return ErrNotFound
			}
			return nil
		})
	})
}

func (db *DB) userExec(ctx context.Context, what, q string, args ...any) error {
	return db.Tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, q, args...)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if n == 0 {
			return ErrNotFound
		}
		return nil
	})
}

// SetPassword replaces a user's password hash, unlocks the account and
// resets the failed sign-ins.
func (db *DB) SetPassword(ctx context.Context, id, hash string, at int64) error {
	return db.userExec(ctx, "set password of "+id, `UPDATE dashboard_users SET password_hash = $1,
		failed_logins = 0, locked_until = 0, updated_at = $2 WHERE id = $3`, hash, at, id)
}

// SetTOTP stores a user's TOTP secret and whether it is enabled; an empty
// secret removes the second factor.
func (db *DB) SetTOTP(ctx context.Context, id, secret string, enabled bool, at int64) error {
	return db.userExec(ctx, "set second factor of "+id, `UPDATE dashboard_users SET totp_secret = $1,
		totp_enabled = $2, totp_last = 0, updated_at = $3 WHERE id = $4`, secret, enabled && secret != "", at, id)
}

// UseTOTPStep records that a TOTP code of time step step was accepted, and
// reports false when a code of that step or a later one was accepted before
// (a replay).
func (db *DB) UseTOTPStep(ctx context.Context, id string, step int64) (bool, error) {
	err := db.userExec(ctx, "record second factor of "+id,
		`UPDATE dashboard_users SET totp_last = $1 WHERE id = $2 AND totp_last < $1`, step, id)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// LoginFailed counts a failed sign-in of a user at the time at. When the
// count reaches maxFailures the account is locked until at+lockFor (ms),
// and the count starts again. It returns the lock's end, 0 when not locked.
func (db *DB) LoginFailed(ctx context.Context, id string, at int64, maxFailures int, lockFor int64) (int64, error) {
	var until int64
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		until = 0
		var failed int
		var locked int64
		err := tx.QueryRowContext(ctx, `SELECT failed_logins, locked_until FROM dashboard_users WHERE id = $1`, id).
			Scan(&failed, &locked)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("count failed sign-in of %s: %w", id, err)
		}
		failed++
		if locked > at {
			until = locked
		}
		if failed >= maxFailures {
			failed, until = 0, at+lockFor
		}
		_, err = tx.ExecContext(ctx, `UPDATE dashboard_users SET failed_logins = $1, locked_until = $2 WHERE id = $3`,
			failed, max(until, locked), id)
		if err != nil {
			return fmt.Errorf("count failed sign-in of %s: %w", id, err)
		}
		return nil
	})
	return until, err
}

// LoginSucceeded resets a user's failed sign-ins and records the sign-in.
func (db *DB) LoginSucceeded(ctx context.Context, id string, at int64) error {
	return db.userExec(ctx, "record sign-in of "+id, `UPDATE dashboard_users SET failed_logins = 0,
		last_login_at = $1 WHERE id = $2`, at, id)
}

// UnlockUser lifts a lock-out.
func (db *DB) UnlockUser(ctx context.Context, id string, at int64) error {
	return db.userExec(ctx, "unlock user "+id, `UPDATE dashboard_users SET failed_logins = 0, locked_until = 0,
		updated_at = $1 WHERE id = $2`, at, id)
}
