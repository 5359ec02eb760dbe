package audit

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/fleet-server/store"
	"github.com/kogge-fleet/kogge/fleet-server/store/pgtest"
)

// backends runs fn on SQLite and, with KOGGE_TEST_POSTGRES_URL, on
// PostgreSQL; tamper changes the stored log behind the store's back, as
// someone with the database would.
func backends(t *testing.T, fn func(t *testing.T, l *Log, db *store.DB, tamper func(q string, args ...any))) {
	t.Run("sqlite", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "kogge.db")
		db := open(t, file)
		raw, err := sql.Open("sqlite3", "file:"+file+"?_busy_timeout=10000")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { raw.Close() })
		fn(t, newLog(t, db), db, func(q string, args ...any) {
			t.Helper()
			for _, trig := range []string{"audit_log_no_update", "audit_log_no_delete"} {
				if _, err := raw.Exec("DROP TRIGGER IF EXISTS " + trig); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := raw.Exec(q, args...); err != nil {
				t.Fatal(err)
			}
		})
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := pgtest.URL(t)
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatal(err)
		}
		schema := u.Query().Get("search_path")
		raw, err := sql.Open("pgx", dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { raw.Close() })
		db := open(t, dsn)
		fn(t, newLog(t, db), db, func(q string, args ...any) {
			t.Helper()
			q = strings.ReplaceAll(q, "audit_log", schema+".audit_log")
			if _, err := raw.Exec("ALTER TABLE " + schema + ".audit_log DISABLE TRIGGER USER"); err != nil {
				t.Fatal(err)
			}
			if _, err := raw.Exec(q, args...); err != nil {
				t.Fatal(err)
			}
		})
	})
}

func open(t *testing.T, dsn string) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), dsn, store.Options{Logger: slog.New(slog.DiscardHandler), MaxOpenConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func newLog(t *testing.T, db *store.DB) *Log {
	t.Helper()
	now := time.UnixMilli(1_800_000_000_000)
	var mu sync.Mutex
	l, err := New(db, Options{Logger: slog.New(slog.DiscardHandler), Clock: func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(time.Second)
		return now
	}})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// fill writes n entries.
func fill(t *testing.T, l *Log, n int) {
	t.Helper()
	for i := 1; i <= n; i++ {
		if _, err := l.Record(context.Background(), APIToken("secret-token-1234567890"), "group.create",
			fmt.Sprintf("group:g%d", i), map[string]any{"name": fmt.Sprintf("Group %d", i)}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestChainAndList(t *testing.T) {
	backends(t, func(t *testing.T, l *Log, db *store.DB, _ func(string, ...any)) {
		ctx := context.Background()
		if n, err := l.Verify(ctx); n != 0 || err != nil {
			t.Fatalf("empty log: %d %v", n, err)
		}
		fill(t, l, 5)
		if err := l.PersonalDataAccess(ctx, "api-token:abc", "record:"+uuid.NewString(), "support case 17"); err != nil {
			t.Fatal(err)
		}
		es, err := l.List(ctx, Filter{})
		if err != nil || len(es) != 6 {
			t.Fatalf("List = %d entries, %v", len(es), err)
		}
		for i, e := range es {
			if e.Seq != int64(i+1) {
				t.Errorf("entry %d has seq %d", i, e.Seq)
			}
			if i > 0 && e.PrevHash != es[i-1].Hash {
				t.Errorf("entry %d does not chain to %d", e.Seq, es[i-1].Seq)
			}
		}
		if es[0].PrevHash != strings.Repeat("00", 32) || es[0].Actor != "api-token:"+es[0].Actor[len("api-token:"):] ||
			strings.Contains(es[0].Actor, "secret") {
			t.Errorf("first entry %+v", es[0])
		}
		var details map[string]string
		if err := json.Unmarshal(es[5].Details, &details); err != nil || details["purpose"] != "support case 17" || es[5].Action != ActionPersonalDataAccess {
			t.Errorf("access entry %+v", es[5])
		}
		for _, c := range []struct {
			f    Filter
			want []int64
		}{
			{Filter{Action: "group.create", Limit: 2}, []int64{1, 2}},
			{Filter{Action: "group.create", After: 3}, []int64{4, 5}},
			{Filter{Target: "group:g3"}, []int64{3}},
			{Filter{Since: 1_800_000_004_000}, []int64{4, 5, 6}},
			{Filter{Newest: true, Limit: 2}, []int64{6, 5}},
			{Filter{Newest: true, Before: 3}, []int64{2, 1}},
		} {
			es, err := l.List(ctx, c.f)
			var got []int64
			for _, e := range es {
				got = append(got, e.Seq)
			}
			if err != nil || fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Errorf("List(%+v) = %v %v, want %v", c.f, got, err, c.want)
			}
		}
		if n, err := l.Verify(ctx); n != 6 || err != nil {
			t.Errorf("Verify = %d, %v", n, err)
		}
	})
}

func TestAppendOnly(t *testing.T) {
	backends(t, func(t *testing.T, l *Log, db *store.DB, _ func(string, ...any)) {
		fill(t, l, 2)
		for _, q := range []string{`UPDATE audit_log SET actor = 'someone else' WHERE seq = 1`, `DELETE FROM audit_log WHERE seq = 2`} {
			err := db.Tx(context.Background(), func(tx *sql.Tx) error { _, err := tx.Exec(q); return err })
			if err == nil || !strings.Contains(err.Error(), "append-only") {
				t.Errorf("%s: %v, want the append-only refusal", q, err)
			}
		}
	})
}

func TestVerifyFindsTampering(t *testing.T) {
	tests := []struct {
		name   string
		tamper string
		args   []any
		seq    int64
		reason string
	}{
		{"flipped byte in details", `UPDATE audit_log SET details = $1 WHERE seq = 3`, []any{`{"name":"Group 4"}`}, 3, "changed after it was written"},
		{"flipped byte in actor", `UPDATE audit_log SET actor = 'api-token:000000000000' WHERE seq = 5`, nil, 5, "changed after it was written"},
		{"deleted in the middle", `DELETE FROM audit_log WHERE seq = 4`, nil, 4, "entry 4 is missing"},
		{"deleted at the end", `DELETE FROM audit_log WHERE seq >= 6`, nil, 6, "entries 6 to 7 are missing"},
		{"rewritten chain", `UPDATE audit_log SET prev_hash = hash WHERE seq = 2`, nil, 2, "changed after it was written"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			backends(t, func(t *testing.T, l *Log, db *store.DB, tamper func(string, ...any)) {
				fill(t, l, 7)
				tamper(tt.tamper, tt.args...)
				n, err := l.Verify(context.Background())
				var be *BrokenError
				if !errors.As(err, &be) || !errors.Is(err, ErrBroken) {
					t.Fatalf("Verify = %d, %v; want a broken chain", n, err)
				}
				if be.Seq != tt.seq || !strings.Contains(be.Reason, tt.reason) || n != int(tt.seq-1) {
					t.Errorf("Verify = %d, %v; want entry %d (%s) after %d good ones", n, err, tt.seq, tt.reason, tt.seq-1)
				}
			})
		})
	}
}

func TestVerifyRecomputedEntryBreaksTheNext(t *testing.T) {
	// Someone who knows the encoding rewrites entry 2 with a valid hash:
	// entry 3 no longer chains.
	backends(t, func(t *testing.T, l *Log, db *store.DB, tamper func(string, ...any)) {
		fill(t, l, 4)
		es, err := db.AuditEntries(context.Background(), store.AuditFilter{})
		if err != nil {
			t.Fatal(err)
		}
		e := es[1]
		e.Details = `{"name":"Innocent"}`
		e.Hash = store.AuditHash(e)
		tamper(`UPDATE audit_log SET details = $1, hash = $2 WHERE seq = 2`, e.Details, e.Hash)
		_, err = l.Verify(context.Background())
		var be *BrokenError
		if !errors.As(err, &be) || be.Seq != 3 || !strings.Contains(be.Reason, "prev_hash") {
			t.Errorf("Verify: %v, want entry 3 not chaining", err)
		}
	})
}

func TestConcurrentAppendsChain(t *testing.T) {
	backends(t, func(t *testing.T, l *Log, db *store.DB, _ func(string, ...any)) {
		ctx := context.Background()
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for w := range 4 {
			wg.Go(func() {
				for i := range 10 {
					if _, err := l.Record(ctx, System, "test.append", fmt.Sprintf("w%d:%d", w, i), nil); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if n, err := l.Verify(ctx); n != 40 || err != nil {
			t.Errorf("Verify after concurrent appends = %d, %v", n, err)
		}
	})
}

func TestActors(t *testing.T) {
	if got := APIToken("token"); !strings.HasPrefix(got, "api-token:") || len(got) != len("api-token:")+12 || strings.Contains(got, "token:token") {
		t.Errorf("APIToken = %q", got)
	}
	if APIToken("a") == APIToken("b") {
		t.Error("two tokens, one actor")
	}
	if got := Bridge("amt-a"); got != "bridge.amt-a" {
		t.Errorf("Bridge = %q", got)
	}
	ctx := WithActor(context.Background(), "api-token:x")
	if ActorFrom(ctx) != "api-token:x" || ActorFrom(context.Background()) != "" {
		t.Error("actor not carried by the context")
	}
}
