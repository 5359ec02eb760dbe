// Package pgtest gives tests a PostgreSQL schema of their own in the
// database named by KOGGE_TEST_POSTGRES_URL (see DEVELOPERS.md), and a
// store on it, or on both backends in turn. Without the variable a test
// skips, under CI=true it fails.
package pgtest

import (
	"context"
	"database/sql"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"

	"github.com/kogge-fleet/kogge/fleet-server/store"
)

// EnvURL is the variable that names the test database.
const EnvURL = "KOGGE_TEST_POSTGRES_URL"

// URL creates a fresh schema, drops it when the test ends, and returns a
// URL of the test database whose search_path is that schema.
func URL(t testing.TB) string {
	t.Helper()
	base := os.Getenv(EnvURL)
	if base == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not set; CI needs PostgreSQL (see .ci/run)", EnvURL)
		}
		t.Skipf("%s not set; set it to a PostgreSQL database to run this test", EnvURL)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := admin.PingContext(ctx); err != nil {
		t.Fatalf("PostgreSQL at %s does not answer: %v", EnvURL, err)
	}
	schema := "t_" + strings.ReplaceAll(uuid.NewString(), "-", "")
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		a, err := sql.Open("pgx", base)
		if err == nil {
			a.ExecContext(ctx, "DROP SCHEMA "+schema+" CASCADE")
			a.Close()
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// Open opens a store on a fresh schema (see URL) with at most four
// connections and no log; it is closed when the test ends.
func Open(t testing.TB) *store.DB {
	t.Helper()
	return open(t, URL(t))
}

// Stores runs fn twice, as the subtests "sqlite", on a fresh SQLite store,
// and "postgres", on a store in a fresh schema (see URL: it skips without
// PostgreSQL, or fails under CI=true).
func Stores(t *testing.T, fn func(t *testing.T, db *store.DB)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) { fn(t, open(t, filepath.Join(t.TempDir(), "kogge.db"))) })
	t.Run("postgres", func(t *testing.T) { fn(t, Open(t)) })
}

func open(t testing.TB, dsn string) *store.DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := store.Open(ctx, dsn, store.Options{MaxOpenConns: 4, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
