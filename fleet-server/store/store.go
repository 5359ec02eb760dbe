// Package store is the fleet server's durable state: registry, records,
// blobs, twins, commands, health. One Go type serves two backends, SQLite
// (the embedded default) and PostgreSQL (pgx, for several replicas), through
// database/sql. Statements are written once in the SQL both dialects share
// ($1 placeholders work in both); where the dialects differ, a method asks
// db.Dialect. Both backends pass one shared test suite (see backends_test.go).
//
// Schema migrations are embedded, numbered and applied in order at Open, per
// dialect, under migrations/{sqlite,postgres}/NNNN_name.sql. Number ranges
// belong to areas so that they never collide: 0001–0009 core, 0010–0019
// registry, 0020–0029 ingest and records, 0030–0039 twin, commands, health,
// 0040–0059 delivery, audit and retention.
//
// Placeholders: SQLite numbers $N parameters in the order they first appear
// in the statement text, not by N; so keep them ascending in the text
// ($1 before $2 before $3), reusing a number as often as needed.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	"github.com/mattn/go-sqlite3"
)

// Dialect names a backend.
type Dialect string

const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// ErrNotFound is returned when a looked-up row does not exist.
var ErrNotFound = errors.New("not found")

//go:embed migrations
var migrations embed.FS

// Options are the optional settings of Open.
type Options struct {
	// Logger receives migration and slow-query messages.
	Logger *slog.Logger
	// MaxOpenConns bounds the PostgreSQL pool; default 16.
	MaxOpenConns int
}

// DB is the fleet server's store.
type DB struct {
	dialect Dialect
	// write serialises writers on SQLite (one connection, BEGIN IMMEDIATE);
	// on PostgreSQL it is the same pool as read.
	write *sql.DB
	read  *sql.DB
	log   *slog.Logger
}

// Open opens the store named by dsn and applies pending migrations. A dsn
// starting with postgres:// or postgresql:// is PostgreSQL; anything else is
// the path of a SQLite file (created if missing).
func Open(ctx context.Context, dsn string, opts Options) (*DB, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxOpenConns <= 0 {
		opts.MaxOpenConns = 16
	}
	var db *DB
	var err error
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		db, err = openPostgres(dsn, opts)
	} else {
		db, err = openSQLite(dsn, opts)
	}
	if err != nil {
		return nil, err
	}
	if err := db.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

func openPostgres(dsn string, opts Options) (*DB, error) {
	pool, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	pool.SetMaxOpenConns(opts.MaxOpenConns)
	pool.SetMaxIdleConns(opts.MaxOpenConns)
	pool.SetConnMaxIdleTime(5 * time.Minute)
	return &DB{dialect: Postgres, write: pool, read: pool, log: opts.Logger}, nil
}

func openSQLite(file string, opts Options) (*DB, error) {
	file = strings.TrimPrefix(file, "sqlite:")
	if file == "" {
		return nil, errors.New("open sqlite: empty path")
	}
	// The store holds the fleet CA's key and sealed personal data: only the
	// server's user may read it. SQLite gives the -wal and -shm files the
	// main file's mode.
	f, err := os.OpenFile(file, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", file, err)
	}
	f.Close()
	// synchronous=FULL: a commit is on disk before the server acks.
	params := "?_journal_mode=WAL&_synchronous=FULL&_busy_timeout=10000&_foreign_keys=on"
	write, err := sql.Open("sqlite3", "file:"+file+params+"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", file, err)
	}
	write.SetMaxOpenConns(1)
	read, err := sql.Open("sqlite3", "file:"+file+params+"&mode=ro")
	if err != nil {
		write.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", file, err)
	}
	read.SetMaxOpenConns(4)
	// The writer creates the file and sets WAL before readers open it.
	if err := write.Ping(); err != nil {
		write.Close()
		read.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", file, err)
	}
	return &DB{dialect: SQLite, write: write, read: read, log: opts.Logger}, nil
}

// Dialect returns the backend in use.
func (db *DB) Dialect() Dialect { return db.dialect }

// Close closes the store.
func (db *DB) Close() error {
	err := db.write.Close()
	if db.read != db.write {
		err = errors.Join(err, db.read.Close())
	}
	return err
}

// Ping checks that the database answers (for /readyz).
func (db *DB) Ping(ctx context.Context) error {
	return db.write.PingContext(ctx)
}

// Reader returns the pool for queries that do not write.
func (db *DB) Reader() *sql.DB { return db.read }

// Tx runs fn in a write transaction and commits it, retrying a few times when
// the backend reports a conflict (SQLite busy, PostgreSQL serialization
// failure or deadlock). fn must be safe to run again.
func (db *DB) Tx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	const attempts = 5
	var err error
	for i := range attempts {
		if err = db.tx(ctx, fn); err == nil || !retryable(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(time.Duration(i+1) * 20 * time.Millisecond):
		}
	}
	return err
}

func (db *DB) tx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		return errors.Join(err, tx.Rollback())
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

func retryable(err error) bool {
	var se sqlite3.Error
	if errors.As(err, &se) {
		return se.Code == sqlite3.ErrBusy || se.Code == sqlite3.ErrLocked
	}
	var sqlState interface{ SQLState() string }
	if errors.As(err, &sqlState) {
		switch sqlState.SQLState() {
		case "40001", "40P01": // serialization_failure, deadlock_detected
			return true
		}
	}
	return false
}

// IsUniqueViolation reports whether err is a unique-constraint violation.
func IsUniqueViolation(err error) bool {
	var se sqlite3.Error
	if errors.As(err, &se) {
		return se.ExtendedCode == sqlite3.ErrConstraintUnique || se.ExtendedCode == sqlite3.ErrConstraintPrimaryKey
	}
	var sqlState interface{ SQLState() string }
	return errors.As(err, &sqlState) && sqlState.SQLState() == "23505"
}

type migration struct {
	version int
	name    string
	sql     string
}

func (db *DB) migrations() ([]migration, error) {
	dir := path.Join("migrations", string(db.dialect))
	entries, err := fs.ReadDir(migrations, dir)
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || !strings.HasSuffix(e.Name(), ".sql") {
			return nil, fmt.Errorf("migration %s: name must be NNNN_name.sql", e.Name())
		}
		b, err := fs.ReadFile(migrations, path.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: e.Name(), sql: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i := 1; i < len(ms); i++ {
		if ms[i].version == ms[i-1].version {
			return nil, fmt.Errorf("migrations %s and %s share a number", ms[i-1].name, ms[i].name)
		}
	}
	return ms, nil
}

// migrate applies the migrations the database lacks, each in its own
// transaction. On PostgreSQL an advisory lock keeps replicas from migrating
// at the same time.
func (db *DB) migrate(ctx context.Context) error {
	ms, err := db.migrations()
	if err != nil {
		return fmt.Errorf("read migrations: %w", err)
	}
	return db.Tx(ctx, func(tx *sql.Tx) error {
		if db.dialect == Postgres {
			if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(7366101)`); err != nil {
				return fmt.Errorf("lock migrations: %w", err)
			}
		}
		if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`); err != nil {
			return fmt.Errorf("create schema_migrations: %w", err)
		}
		applied := map[int]bool{}
		rows, err := tx.QueryContext(ctx, `SELECT version FROM schema_migrations`)
		if err != nil {
			return err
		}
		for rows.Next() {
			var v int
			if err := rows.Scan(&v); err != nil {
				rows.Close()
				return err
			}
			applied[v] = true
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return err
		}
		for _, m := range ms {
			if applied[m.version] {
				continue
			}
			if _, err := tx.ExecContext(ctx, m.sql); err != nil {
				return fmt.Errorf("migration %s: %w", m.name, err)
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
				m.version, m.name, time.Now().UnixMilli()); err != nil {
				return fmt.Errorf("record migration %s: %w", m.name, err)
			}
			db.log.Info("applied migration", "migration", m.name, "dialect", db.dialect)
		}
		return nil
	})
}
