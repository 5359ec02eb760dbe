package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"

	"github.com/mattn/go-sqlite3"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migration is one embedded schema step.
type migration struct {
	version int
	name    string
	sql     string
}

// migrations returns the embedded migrations in version order. Their file
// names are NNNN_name.sql with consecutive versions from 1.
func migrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, fmt.Errorf("read embedded migrations: %w", err)
	}
	var ms []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v != len(ms)+1 {
			return nil, fmt.Errorf("embedded migration %s: want version %d first in its name", e.Name(), len(ms)+1)
		}
		b, err := fs.ReadFile(migrationFiles, path.Join("migrations", e.Name()))
		if err != nil {
			return nil, fmt.Errorf("read embedded migration %s: %w", e.Name(), err)
		}
		ms = append(ms, migration{version: v, name: e.Name(), sql: string(b)})
	}
	return ms, nil
}

// dsn returns the go-sqlite3 data source name for the file at p with the
// given parameters. The path is escaped as SQLite's URI syntax demands.
func dsn(p string, params ...string) string {
	esc := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(p)
	return "file:" + esc + "?" + strings.Join(params, "&")
}

// isCorrupt reports whether err is SQLite saying the file is not a database
// or is damaged.
func isCorrupt(err error) bool {
	var se sqlite3.Error
	return errors.As(err, &se) && (se.Code == sqlite3.ErrNotADB || se.Code == sqlite3.ErrCorrupt)
}

// sqliteHeader starts every SQLite database file.
const sqliteHeader = "SQLite format 3\x00"

// checkFile checks an existing store file without changing it or its -wal
// and -shm files. It returns a description of the damage if the file is not
// a SQLite database or fails PRAGMA quick_check, "" if it is sound or does
// not exist, and an error if the check itself could not run (permissions,
// I/O).
//
// The header is read directly, so that SQLite never opens a file that is
// not a database: it would take a -wal file lying next to it for its own
// and delete it on close. quick_check runs on a read-only connection, which
// reads the -wal file (a crash in the middle of a checkpoint leaves a main
// file that is sound only together with it) but never checkpoints or
// deletes it.
func checkFile(ctx context.Context, p string) (damage string, err error) {
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("check store file: %w", err)
	}
	header := make([]byte, len(sqliteHeader))
	n, err := io.ReadFull(f, header)
	f.Close()
	switch {
	case n == 0 && (err == io.EOF || err == nil):
		// An empty file is an empty database, unless a write-ahead log
		// holds data that SQLite would throw away.
		if fi, err := os.Stat(p + "-wal"); err == nil && fi.Size() > 0 {
			return "the file is empty but its write-ahead log is not", nil
		}
		return "", nil
	case err != nil && err != io.ErrUnexpectedEOF:
		return "", fmt.Errorf("check store file %s: %w", p, err)
	case string(header[:n]) != sqliteHeader:
		return "not a SQLite database: its header is wrong", nil
	}
	db, err := sql.Open("sqlite3", dsn(p, "mode=ro", "_busy_timeout=5000"))
	if err != nil {
		return "", fmt.Errorf("check store file %s: %w", p, err)
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, "PRAGMA quick_check")
	if err != nil {
		if isCorrupt(err) {
			return err.Error(), nil
		}
		return "", fmt.Errorf("check store file %s: %w", p, err)
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return "", fmt.Errorf("check store file %s: %w", p, err)
		}
		if line != "ok" && len(problems) < 5 {
			problems = append(problems, line)
		}
	}
	if err := rows.Err(); err != nil {
		if isCorrupt(err) {
			return err.Error(), nil
		}
		return "", fmt.Errorf("check store file %s: %w", p, err)
	}
	return strings.Join(problems, "; "), nil
}

// moveAside renames the store file and its -wal and -shm files to
// <p>.corrupt-<stamp> (with a counter if that name is taken), never
// overwriting anything. It returns the new name of the main file.
func moveAside(p, stamp string) (string, error) {
	target := p + ".corrupt-" + stamp
	for n := 2; taken(target); n++ {
		target = p + ".corrupt-" + stamp + "-" + strconv.Itoa(n)
	}
	if err := os.Rename(p, target); err != nil {
		return "", fmt.Errorf("move corrupt store aside: %w", err)
	}
	for _, suffix := range []string{"-wal", "-shm"} {
		if err := os.Rename(p+suffix, target+suffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
			// The main file is already aside; a stale -wal left behind
			// would be replayed into the fresh store, so stop here.
			return target, fmt.Errorf("move corrupt store's %s file aside: %w", suffix, err)
		}
	}
	return target, nil
}

// taken reports whether any of the files of a store at p exists.
func taken(p string) bool {
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if _, err := os.Lstat(p + suffix); !errors.Is(err, fs.ErrNotExist) {
			return true
		}
	}
	return false
}

// setup configures the writer connection and brings the schema up to date.
// auto_vacuum must be set before the first table exists, so it is set only
// on a fresh file.
func setup(ctx context.Context, c *sql.Conn) error {
	var tables int
	if err := c.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema").Scan(&tables); err != nil {
		return fmt.Errorf("read schema: %w", err)
	}
	if tables == 0 {
		if _, err := c.ExecContext(ctx, "PRAGMA auto_vacuum = INCREMENTAL"); err != nil {
			return fmt.Errorf("enable incremental vacuum: %w", err)
		}
	}
	var mode string
	if err := c.QueryRowContext(ctx, "PRAGMA journal_mode = WAL").Scan(&mode); err != nil {
		return fmt.Errorf("enable write-ahead log: %w", err)
	}
	if mode != "wal" {
		return fmt.Errorf("enable write-ahead log: journal mode is %q", mode)
	}
	for _, pragma := range []string{
		"PRAGMA synchronous = FULL",
		// Overwrite deleted content with zeros: a sealed body or a
		// fingerprint deleted after the server's ack must not linger in
		// free pages. The WAL keeps the old frames only until the next
		// checkpoint truncates it (journal_size_limit below).
		"PRAGMA secure_delete = ON",
		// Truncate the WAL after a checkpoint so that a burst of large
		// blobs does not keep its space.
		"PRAGMA journal_size_limit = 16777216",
	} {
		if _, err := c.ExecContext(ctx, pragma); err != nil {
			return fmt.Errorf("%s: %w", pragma, err)
		}
	}
	return migrate(ctx, c)
}

// migrate applies the embedded migrations that the file lacks, each in its
// own transaction together with its schema_version update.
func migrate(ctx context.Context, c *sql.Conn) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	if _, err := c.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"); err != nil {
		return fmt.Errorf("create schema_version: %w", err)
	}
	var current int
	if err := c.QueryRowContext(ctx, "SELECT coalesce(max(version), 0) FROM schema_version").Scan(&current); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if current > len(ms) {
		return fmt.Errorf("store schema version %d is newer than this software knows (%d): it was written by a newer agent", current, len(ms))
	}
	for _, m := range ms[current:] {
		if err := applyMigration(ctx, c, m); err != nil {
			return err
		}
	}
	return nil
}

func applyMigration(ctx context.Context, c *sql.Conn, m migration) error {
	tx, err := c.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migration %s: %w", m.name, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return fmt.Errorf("migration %s: %w", m.name, err)
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM schema_version"); err != nil {
		return fmt.Errorf("migration %s: %w", m.name, err)
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO schema_version (version) VALUES (?)", m.version); err != nil {
		return fmt.Errorf("migration %s: %w", m.name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migration %s: %w", m.name, err)
	}
	return nil
}

// isDiskFull reports whether err is SQLite saying the disk is full.
func isDiskFull(err error) bool {
	var se sqlite3.Error
	return errors.As(err, &se) && se.Code == sqlite3.ErrFull
}
