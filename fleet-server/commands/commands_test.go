package commands

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/fleet-server/store"
	"github.com/kogge-fleet/kogge/protocol"
)

// fakeBroker records the commands published, per device.
type fakeBroker struct {
	mu   sync.Mutex
	sent map[string][]*protocol.Command
	fail bool
}

func (f *fakeBroker) Publish(topic string, payload []byte, retained bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail {
		return errors.New("broker down")
	}
	env, err := protocol.DecodeOn(topic, payload)
	if err != nil {
		return err
	}
	if retained {
		return errors.New("commands must not be retained")
	}
	if f.sent == nil {
		f.sent = map[string][]*protocol.Command{}
	}
	f.sent[env.Device] = append(f.sent[env.Device], env.Body.(*protocol.Command))
	return nil
}

func (f *fakeBroker) to(device string) []*protocol.Command {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*protocol.Command(nil), f.sent[device]...)
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }
func quiet() *slog.Logger            { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
func newClock() *clock               { return &clock{t: time.UnixMilli(1_800_000_000_000)} }
func (c *clock) ms() int64           { return c.Now().UnixMilli() }
func exec(db *store.DB, q string, args ...any) error {
	return db.Tx(context.Background(), func(tx *sql.Tx) error { _, err := tx.Exec(q, args...); return err })
}

func openStore(t *testing.T, file string) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), file, store.Options{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// setup opens a store with group g of devices on, off and gone (revoked).
func setup(t *testing.T) (*store.DB, string) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "kogge.db")
	db := openStore(t, file)
	for _, q := range []string{
		`INSERT INTO groups (id, name, created_at) VALUES ('g', 'g', 1)`,
		`INSERT INTO devices (id, group_id, created_at, inventory_at) VALUES ('on', 'g', 1, 1), ('off', 'g', 1, 1)`,
		`INSERT INTO devices (id, group_id, created_at, inventory_at, revoked_at) VALUES ('gone', 'g', 1, 1, 5)`,
	} {
		if err := exec(db, q); err != nil {
			t.Fatal(err)
		}
	}
	return db, file
}

// online marks a device online at the clock's time, as the ingest does.
func online(t *testing.T, db *store.DB, device string, at int64) {
	t.Helper()
	ctx := context.Background()
	if err := db.Ingest(ctx, func(tx *store.IngestTx) error { return tx.Touch(ctx, device, at) }); err != nil {
		t.Fatal(err)
	}
}

func result(t *testing.T, db *store.DB, device string, id uuid.UUID, o protocol.Outcome) {
	t.Helper()
	ctx := context.Background()
	err := db.Ingest(ctx, func(tx *store.IngestTx) error {
		_, err := tx.PutCommandResult(ctx, device, &protocol.CommandResult{ID: id, Outcome: o, At: 1}, 2)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestSendOnlineOnceUntilResult(t *testing.T) {
	db, _ := setup(t)
	clk := newClock()
	fb := &fakeBroker{}
	s, err := New(db, fb, Options{Logger: quiet(), Clock: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	online(t, db, "on", clk.ms())
	c, err := s.Send(ctx, "on", "reboot", map[string]string{"delay": "5s"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if got := fb.to("on"); len(got) != 1 || got[0].ID != c.ID || got[0].Name != "reboot" || got[0].Args["delay"] != "5s" ||
		int64(got[0].ExpiresAt) != clk.ms()+time.Hour.Milliseconds() {
		t.Fatalf("published %+v", got)
	}
	if c.State() != store.CommandSent || c.SentCount != 1 {
		t.Errorf("state %s, sent %d", c.State(), c.SentCount)
	}
	// A reconnect sends it again; so does the resend interval.
	if err := s.deliverOpen(ctx, "on"); err != nil {
		t.Fatal(err)
	}
	clk.Add(3 * time.Minute)
	online(t, db, "on", clk.ms())
	s.sweep(ctx)
	if got := fb.to("on"); len(got) != 3 || got[2].ID != c.ID {
		t.Fatalf("after a reconnect and the resend interval: %d sends, want 3", len(got))
	}
	// The result ends it: no more sends.
	result(t, db, "on", c.ID, protocol.OutcomeOK)
	if err := s.deliverOpen(ctx, "on"); err != nil {
		t.Fatal(err)
	}
	clk.Add(3 * time.Minute)
	s.sweep(ctx)
	if got := fb.to("on"); len(got) != 3 {
		t.Errorf("%d sends after the result, want 3", len(got))
	}
	got, err := s.Command(ctx, c.ID)
	if err != nil || got.State() != store.CommandDone || got.Result.Outcome != protocol.OutcomeOK || got.SentCount != 3 {
		t.Errorf("command = %+v, %v", got, err)
	}
}

func TestQueuedWhileOfflineSurvivesRestart(t *testing.T) {
	db, file := setup(t)
	clk := newClock()
	fb := &fakeBroker{}
	s, _ := New(db, fb, Options{Logger: quiet(), Clock: clk.Now})
	ctx := context.Background()
	first, err := s.Send(ctx, "off", "upload-logs", nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	second, err := s.Send(ctx, "off", "reboot", nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(fb.to("off")) != 0 || first.State() != store.CommandQueued {
		t.Fatalf("sent to an offline device: %+v (%s)", fb.to("off"), first.State())
	}
	db.Close()

	// A new server on the same database: the device reconnects.
	db = openStore(t, file)
	s, _ = New(db, fb, Options{Logger: quiet(), Clock: clk.Now})
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	online(t, db, "off", clk.ms())
	s.Connected("off")
	deadline := time.Now().Add(10 * time.Second)
	for len(fb.to("off")) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("open commands were not sent after the reconnect")
		}
		time.Sleep(2 * time.Millisecond) // polling a condition
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := fb.to("off"); got[0].ID != first.ID || got[1].ID != second.ID {
		t.Errorf("sent out of order: %v, %v", got[0].Name, got[1].Name)
	}
}

func TestExpiry(t *testing.T) {
	db, _ := setup(t)
	clk := newClock()
	fb := &fakeBroker{}
	s, _ := New(db, fb, Options{Logger: quiet(), Clock: clk.Now})
	ctx := context.Background()
	unsent, err := s.Send(ctx, "off", "reboot", nil, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	online(t, db, "on", clk.ms())
	sent, err := s.Send(ctx, "on", "reboot", nil, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	clk.Add(2 * time.Minute)
	s.sweep(ctx)
	if c, _ := s.Command(ctx, unsent.ID); c.State() != store.CommandExpired {
		t.Errorf("unsent command after its TTL: %s, want expired", c.State())
	}
	if c, _ := s.Command(ctx, sent.ID); c.State() != store.CommandSent {
		t.Errorf("sent command after its TTL: %s, want sent (waiting for a result)", c.State())
	}
	// Neither is sent again, not even on a reconnect.
	online(t, db, "off", clk.ms())
	online(t, db, "on", clk.ms())
	if err := s.deliverOpen(ctx, "off"); err != nil {
		t.Fatal(err)
	}
	if err := s.deliverOpen(ctx, "on"); err != nil {
		t.Fatal(err)
	}
	s.sweep(ctx)
	if n := len(fb.to("off")) + len(fb.to("on")); n != 1 {
		t.Errorf("%d sends, want only the first one", n)
	}
}

func TestSendGroupFansOut(t *testing.T) {
	db, _ := setup(t)
	clk := newClock()
	fb := &fakeBroker{}
	s, _ := New(db, fb, Options{Logger: quiet(), Clock: clk.Now})
	ctx := context.Background()
	online(t, db, "on", clk.ms())
	fan, cmds, err := s.SendGroup(ctx, "g", "sync-now", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(cmds) != 2 || cmds[0].Device != "off" || cmds[1].Device != "on" || cmds[0].ID == cmds[1].ID {
		t.Fatalf("fan-out = %+v, want one command each for off and on (not the revoked device)", cmds)
	}
	for _, c := range cmds {
		if c.Fanout != fan || c.ExpiresAt-c.IssuedAt != (24*time.Hour).Milliseconds() {
			t.Errorf("command %+v", c)
		}
	}
	if len(fb.to("on")) != 1 || len(fb.to("off")) != 0 || len(fb.to("gone")) != 0 {
		t.Errorf("sent to on %d, off %d, gone %d; want 1, 0, 0", len(fb.to("on")), len(fb.to("off")), len(fb.to("gone")))
	}
	if _, _, err := s.SendGroup(ctx, "nogroup", "x", nil, 0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown group: %v", err)
	}
	got, err := s.Fanout(ctx, fan)
	if err != nil || len(got) != 2 {
		t.Errorf("Fanout = %d, %v", len(got), err)
	}
	h, err := s.History(ctx, store.CommandFilter{Device: "on"})
	if err != nil || len(h) != 1 || h[0].Name != "sync-now" {
		t.Errorf("History = %+v, %v", h, err)
	}
}

func TestSendRefuses(t *testing.T) {
	db, _ := setup(t)
	fb := &fakeBroker{}
	s, _ := New(db, fb, Options{Logger: quiet()})
	ctx := context.Background()
	for _, c := range []struct {
		device, name string
		args         map[string]string
		ttl          time.Duration
		want         error
	}{
		{"on", "Bad Name", nil, 0, ErrInvalid},
		{"on", "ok", map[string]string{"-bad": "x"}, 0, ErrInvalid},
		{"on", "ok", nil, 365 * 24 * time.Hour, ErrInvalid},
		{"on", "ok", nil, time.Millisecond, ErrInvalid},
		{"nobody", "ok", nil, 0, store.ErrNotFound},
		{"gone", "ok", nil, 0, store.ErrDeviceRevoked},
	} {
		if _, err := s.Send(ctx, c.device, c.name, c.args, c.ttl); !errors.Is(err, c.want) {
			t.Errorf("Send(%s, %q, %v, %v) = %v, want %v", c.device, c.name, c.args, c.ttl, err, c.want)
		}
	}
	// A broker failure does not lose the command.
	online(t, db, "on", time.Now().UnixMilli())
	fb.fail = true
	c, err := s.Send(ctx, "on", "reboot", nil, 0)
	if err != nil || c.State() != store.CommandQueued {
		t.Errorf("Send with the broker down = %s, %v; want queued", c.State(), err)
	}
}
