package presence

import (
	"context"
	"database/sql"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kogge-fleet/kogge/fleet-server/store"
	"github.com/kogge-fleet/kogge/protocol"
)

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

func openStore(t *testing.T, devices ...string) *store.DB {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "kogge.db"), store.Options{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	err = db.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.Exec(`INSERT INTO groups (id, name, created_at) VALUES ('g', 'g', 1)`); err != nil {
			return err
		}
		for _, d := range devices {
			if _, err := tx.Exec(`INSERT INTO devices (id, group_id, created_at, inventory_at) VALUES ($1, 'g', 1, 1)`, d); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// heard records a message from device at, as the ingest does.
func heard(t *testing.T, db *store.DB, device string, at time.Time) {
	t.Helper()
	err := db.Ingest(context.Background(), func(tx *store.IngestTx) error { return tx.Touch(context.Background(), device, at.UnixMilli()) })
	if err != nil {
		t.Fatal(err)
	}
}

func online(t *testing.T, db *store.DB, device string) bool {
	t.Helper()
	on, err := db.DeviceOnline(context.Background(), device)
	if err != nil {
		t.Fatal(err)
	}
	return on
}

func TestHeartbeatDeadline(t *testing.T) {
	db := openStore(t, "quiet", "chatty")
	t0 := time.UnixMilli(1_800_000_000_000)
	clk := &clock{t: t0}
	var offline []string
	tr, err := New(db, Options{Logger: quiet(), Clock: clk.Now, Keepalive: 30 * time.Second,
		OnOffline: func(d string) { offline = append(offline, d) }})
	if err != nil {
		t.Fatal(err)
	}
	if tr.Deadline() != time.Minute {
		t.Fatalf("deadline %v, want 2 × keepalive", tr.Deadline())
	}
	heard(t, db, "quiet", t0)
	for _, c := range []struct {
		at            time.Duration // since quiet's last message
		chattySpeaks  bool
		quiet, chatty bool // online afterwards
	}{
		{57 * time.Second, true, true, true},                   // never before 2 × keepalive − 2 × resolution
		{59*time.Second + time.Millisecond, true, false, true}, // quiet is past the deadline (less the resolution)
		{119 * time.Second, true, false, true},                 // chatty keeps talking
		{119*time.Second + time.Minute, false, false, false},   // chatty has been silent for the deadline
	} {
		clk.Set(t0.Add(c.at))
		if c.chattySpeaks {
			heard(t, db, "chatty", clk.Now())
		}
		if _, err := tr.Expire(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got := online(t, db, "quiet"); got != c.quiet {
			t.Errorf("at %v: quiet online = %v, want %v", c.at, got, c.quiet)
		}
		if got := online(t, db, "chatty"); got != c.chatty {
			t.Errorf("at %v: chatty online = %v, want %v", c.at, got, c.chatty)
		}
	}
	if len(offline) != 2 || offline[0] != "quiet" || offline[1] != "chatty" {
		t.Errorf("OnOffline calls = %v", offline)
	}
	p, err := db.Presence(context.Background(), "quiet")
	if err != nil || p.Reason != store.OfflineDeadline {
		t.Errorf("presence = %+v, %v", p, err)
	}
	// A message brings the device back.
	heard(t, db, "quiet", clk.Now())
	if !online(t, db, "quiet") {
		t.Error("quiet still offline after a message")
	}
}

func TestRunExpiresOverdueDevices(t *testing.T) {
	db := openStore(t, "d1", "d2")
	t0 := time.UnixMilli(1_800_000_000_000)
	clk := &clock{t: t0}
	heard(t, db, "d1", t0)
	heard(t, db, "d2", t0.Add(time.Hour))
	// d1 is overdue as Run starts; d2 is not.
	clk.Set(t0.Add(time.Hour))
	tr, err := New(db, Options{Logger: quiet(), Clock: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tr.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for online(t, db, "d1") {
		if time.Now().After(deadline) {
			t.Fatal("Run did not mark the overdue device offline")
		}
		time.Sleep(5 * time.Millisecond) // polling a condition
	}
	if !online(t, db, "d2") {
		t.Error("Run marked a device offline that was heard from just now")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestTrim(t *testing.T) {
	db := openStore(t, "d1")
	t0 := time.UnixMilli(1_800_000_000_000)
	clk := &clock{t: t0}
	tr, err := New(db, Options{Logger: quiet(), Clock: clk.Now, Retention: time.Hour, MaxSamples: 3})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 6 {
		at := t0.Add(time.Duration(i) * 20 * time.Minute)
		err := db.Ingest(ctx, func(tx *store.IngestTx) error {
			return tx.PutHeartbeat(ctx, "d1", &protocol.Heartbeat{QueueDepth: uint32(i), Battery: -1, Software: "1", Clock: 1},
				at.UnixMilli(), 0)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	clk.Set(t0.Add(100 * time.Minute)) // samples at 0, 20, …, 100 min; the first two are older than an hour
	n, err := tr.Trim(ctx)
	if err != nil || n != 3 {
		t.Fatalf("Trim = %d, %v; want 3 (two by age, one by count)", n, err)
	}
	h, err := db.HealthHistory(ctx, store.HealthFilter{Device: "d1"})
	if err != nil || len(h) != 3 || h[0].Heartbeat.QueueDepth != 5 || h[2].Heartbeat.QueueDepth != 3 {
		t.Errorf("kept %+v, %v", h, err)
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, o := range []Options{
		{Keepalive: time.Millisecond},
		{Keepalive: 2 * time.Second, LastSeenResolution: time.Second},
		{Retention: time.Second},
		{MaxSamples: -1},
	} {
		if _, err := New(nil, o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
}
