package store

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// backends runs fn once per backend: SQLite in a temporary file always, and
// PostgreSQL when KOGGE_TEST_POSTGRES_URL is set, each in a fresh schema.
// Under CI=true a missing or unreachable PostgreSQL fails the test.
func backends(t *testing.T, fn func(t *testing.T, db *DB)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) {
		db, err := Open(context.Background(), filepath.Join(t.TempDir(), "kogge.db"), Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		fn(t, db)
	})
	t.Run("postgres", func(t *testing.T) {
		fn(t, openTestPostgres(t))
	})
}

func openTestPostgres(t *testing.T) *DB {
	t.Helper()
	base := os.Getenv("KOGGE_TEST_POSTGRES_URL")
	if base == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("KOGGE_TEST_POSTGRES_URL is not set; CI needs the PostgreSQL suite (see .ci/run)")
		}
		t.Skip("KOGGE_TEST_POSTGRES_URL not set")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := admin.PingContext(ctx); err != nil {
		t.Fatalf("PostgreSQL at KOGGE_TEST_POSTGRES_URL does not answer: %v", err)
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
	db, err := Open(ctx, u.String(), Options{MaxOpenConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestMigrationsIdempotent(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "kogge.db")
	for i := range 2 {
		db, err := Open(context.Background(), file, Options{})
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
		var n int
		if err := db.Reader().QueryRow(`SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		ms, _ := db.migrations()
		if n != len(ms) {
			t.Errorf("open %d: %d migrations recorded, %d embedded", i, n, len(ms))
		}
		db.Close()
	}
}

func TestMigrationFilesMatch(t *testing.T) {
	// Every migration exists for both dialects under the same name.
	names := map[Dialect][]string{}
	for _, d := range []Dialect{SQLite, Postgres} {
		ms, err := (&DB{dialect: d}).migrations()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			names[d] = append(names[d], m.name)
		}
	}
	if fmt.Sprint(names[SQLite]) != fmt.Sprint(names[Postgres]) {
		t.Errorf("migrations differ:\nsqlite   %v\npostgres %v", names[SQLite], names[Postgres])
	}
}

func TestFileMode(t *testing.T) {
	file := filepath.Join(t.TempDir(), "kogge.db")
	db, err := Open(context.Background(), file, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, name := range []string{file, file + "-wal"} {
		fi, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %v; only the owner may read it", name, fi.Mode().Perm())
		}
	}
}

func TestSettings(t *testing.T) {
	backends(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		if _, err := db.Setting(ctx, "ca"); err != ErrNotFound {
			t.Fatalf("missing setting: %v", err)
		}
		for _, v := range []string{"one", "two"} {
			if err := db.PutSetting(ctx, "ca", []byte(v)); err != nil {
				t.Fatal(err)
			}
			got, err := db.Setting(ctx, "ca")
			if err != nil || string(got) != v {
				t.Fatalf("Setting = %q, %v; want %q", got, err, v)
			}
		}
	})
}
