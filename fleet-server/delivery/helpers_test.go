package delivery

import (
	"context"
	"database/sql"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kogge-fleet/kogge/fleet-server/store"
	"github.com/kogge-fleet/kogge/fleet-server/store/pgtest"
	"github.com/kogge-fleet/kogge/protocol"
)

// env is a store with devices d1 and d2 (d1 online, d2 offline), a fake
// broker, a fake clock and a queue over them.
type env struct {
	db     *store.DB
	dsn    string // how to open another store on the same database
	broker *fakeBroker
	clock  *fakeClock
	reg    *prometheus.Registry
	q      *Queue
}

// backends runs fn on SQLite in a temporary file and on PostgreSQL in a
// fresh schema when KOGGE_TEST_POSTGRES_URL is set (under CI=true a
// missing PostgreSQL fails the test).
func backends(t *testing.T, edit func(*Options), fn func(t *testing.T, e *env)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "kogge.db")
		fn(t, newEnv(t, openStore(t, file), file, edit))
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := postgresDSN(t)
		fn(t, newEnv(t, openStore(t, dsn), dsn, edit))
	})
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func openStore(t testing.TB, dsn string) *store.DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := store.Open(ctx, dsn, store.Options{Logger: quiet(), MaxOpenConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// postgresDSN returns the URL of a fresh schema of KOGGE_TEST_POSTGRES_URL.
func postgresDSN(t testing.TB) string {
	t.Helper()
	return pgtest.URL(t)
}

func newEnv(t *testing.T, db *store.DB, dsn string, edit func(*Options)) *env {
	t.Helper()
	e := &env{db: db, dsn: dsn, broker: &fakeBroker{}, clock: newClock(), reg: prometheus.NewRegistry()}
	addDevices(t, db, "d1", "d2")
	setPresence(t, db, "d1", true, e.clock.Now())
	e.q = e.newQueue(t, db, edit)
	return e
}

// newQueue returns another queue over db with the env's broker and clock.
func (e *env) newQueue(t *testing.T, db *store.DB, edit func(*Options)) *Queue {
	t.Helper()
	opts := Options{Logger: quiet(), Clock: e.clock.Now, MaxAttempts: 3, RetryBase: time.Second, RetryMax: time.Minute,
		Jitter: func(time.Duration) time.Duration { return 0 }}
	if e.q == nil {
		opts.Registerer = e.reg
	}
	if edit != nil {
		edit(&opts)
	}
	q, err := New(db, e.broker, opts)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func addDevices(t testing.TB, db *store.DB, ids ...string) {
	t.Helper()
	err := db.Tx(context.Background(), func(tx *sql.Tx) error {
		if _, err := tx.Exec(`INSERT INTO groups (id, name, created_at) VALUES ('g', 'group g', 1) ON CONFLICT DO NOTHING`); err != nil {
			return err
		}
		for _, id := range ids {
			if _, err := tx.Exec(`INSERT INTO devices (id, group_id, created_at, inventory_at) VALUES ($1, 'g', 1, 1)`, id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// setPresence stores a device's presence as its retained Presence would.
func setPresence(t testing.TB, db *store.DB, device string, online bool, now time.Time) {
	t.Helper()
	st := protocol.Offline
	if online {
		st = protocol.Online
	}
	err := db.Ingest(context.Background(), func(tx *store.IngestTx) error {
		_, err := tx.ApplyPresence(context.Background(), device, &protocol.Presence{State: st, Session: uuid.New(),
			Software: "1.0.0", At: protocol.At(now)}, now.UnixMilli())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// rec describes a record to store.
type rec struct {
	device string
	seq    uint64
	kind   string
	office string
	key    string
	blobs  [][]byte
	// partial stores the blobs' bytes only up to the last one, which
	// stays incomplete.
	partial bool
}

// store stores a record as the ingest does: the record, then its blobs
// chunk by chunk, each step in its own transaction with EnqueueDelivery
// after storing the record and after completing a blob.
func (e *env) store(t testing.TB, r rec) *protocol.Record {
	t.Helper()
	if r.kind == "" {
		r.kind = "kiosk.application"
	}
	if r.office == "" {
		r.office = "amt-a"
	}
	if r.key == "" {
		r.key = "amt-a-2026"
	}
	p := &protocol.Record{
		ID: uuid.Must(uuid.NewV7()), Seq: r.seq, Kind: r.kind, Office: r.office, KeyID: r.key,
		CreatedAt: protocol.At(e.clock.Now()), Meta: map[string]string{"service": "passport"},
		Sealed: []byte("age-sealed body of seq " + string(rune('0'+r.seq%10))),
	}
	for i, b := range r.blobs {
		p.Blobs = append(p.Blobs, protocol.BlobRef{ID: uuid.Must(uuid.NewV7()), Role: "photo-" + string(rune('a'+i)),
			Size: uint64(len(b)), SHA256: protocol.SumOf(b)})
	}
	ctx := context.Background()
	now := e.clock.Now().UnixMilli()
	e.ingest(t, func(tx *store.IngestTx) error {
		ok, err := tx.InsertRecord(ctx, r.device, p, now)
		if err != nil || !ok {
			t.Fatalf("store record: %v %v", ok, err)
		}
		_, err = tx.EnqueueDelivery(ctx, r.device, p.ID, now)
		return err
	})
	for i, b := range r.blobs {
		last := r.partial && i == len(r.blobs)-1
		e.ingest(t, func(tx *store.IngestTx) error {
			half := len(b) / 2
			if err := tx.AppendChunk(ctx, r.device, p.ID, p.Blobs[i].ID, 0, b[:half], now); err != nil {
				return err
			}
			if last {
				return nil
			}
			if err := tx.AppendChunk(ctx, r.device, p.ID, p.Blobs[i].ID, uint64(half), b[half:], now); err != nil {
				return err
			}
			if err := tx.CompleteBlob(ctx, r.device, p.ID, p.Blobs[i].ID, now); err != nil {
				return err
			}
			_, err := tx.EnqueueDelivery(ctx, r.device, p.ID, now)
			return err
		})
	}
	return p
}

// completeBlob stores the rest of a partial record's last blob.
func (e *env) completeBlob(t testing.TB, device string, p *protocol.Record, data []byte) {
	t.Helper()
	ctx := context.Background()
	now := e.clock.Now().UnixMilli()
	b := p.Blobs[len(p.Blobs)-1]
	e.ingest(t, func(tx *store.IngestTx) error {
		half := len(data) / 2
		if err := tx.AppendChunk(ctx, device, p.ID, b.ID, uint64(half), data[half:], now); err != nil {
			return err
		}
		if err := tx.CompleteBlob(ctx, device, p.ID, b.ID, now); err != nil {
			return err
		}
		_, err := tx.EnqueueDelivery(ctx, device, p.ID, now)
		return err
	})
}

func (e *env) ingest(t testing.TB, fn func(tx *store.IngestTx) error) {
	t.Helper()
	if err := e.db.Ingest(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
}

// chunkBytes returns the blob bytes the store holds for a record.
func (e *env) chunkBytes(t testing.TB, device string, id uuid.UUID) int64 {
	t.Helper()
	var n int64
	if err := e.db.Reader().QueryRow(`SELECT COALESCE(SUM(length(data)), 0) FROM blob_chunks WHERE device_id = $1 AND record_id = $2`,
		device, id).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// delivery returns a record's queue row.
func (e *env) delivery(t testing.TB, id uuid.UUID) store.Delivery {
	t.Helper()
	d, err := e.db.DeliveryOf(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// auditActions returns the actions of the audit entries with target.
func (e *env) auditActions(t testing.TB, target string) []string {
	t.Helper()
	es, err := e.db.AuditEntries(context.Background(), store.AuditFilter{Target: target})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, x := range es {
		out = append(out, x.Actor+" "+x.Action)
	}
	return out
}

// fakeBroker keeps the statuses published, per device.
type fakeBroker struct {
	mu   sync.Mutex
	sent map[string][]protocol.StatusItem
	msgs int
}

func (b *fakeBroker) Publish(topic string, payload []byte, retained bool) error {
	env, err := protocol.DecodeOn(topic, payload)
	if err != nil {
		return err
	}
	st, ok := env.Body.(*protocol.RecordStatus)
	if !ok || retained {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.sent == nil {
		b.sent = map[string][]protocol.StatusItem{}
	}
	b.sent[env.Device] = append(b.sent[env.Device], st.Items...)
	b.msgs++
	return nil
}

// statuses returns what device was told, in order.
func (b *fakeBroker) statuses(device string) []protocol.StatusItem {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]protocol.StatusItem(nil), b.sent[device]...)
}

// last returns the last state device was told about record (0: none).
func (b *fakeBroker) last(device string, record uuid.UUID) protocol.StatusItem {
	var out protocol.StatusItem
	for _, it := range b.statuses(device) {
		if it.Record == record {
			out = it
		}
	}
	return out
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.UnixMilli(1_800_000_000_000).UTC()} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// metric returns the value of the gauge, counter or histogram count named
// name with exactly labels in reg, and whether it exists.
func metric(t testing.TB, reg *prometheus.Registry, name string, labels ...string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != len(want) {
				continue
			}
			for _, l := range m.GetLabel() {
				if want[l.GetName()] != l.GetValue() {
					continue next
				}
			}
			switch {
			case m.Gauge != nil:
				return m.Gauge.GetValue(), true
			case m.Counter != nil:
				return m.Counter.GetValue(), true
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount()), true
			}
		}
	}
	return 0, false
}

// wantMetric fails unless the metric exists with value v.
func wantMetric(t testing.TB, reg *prometheus.Registry, v float64, name string, labels ...string) {
	t.Helper()
	got, ok := metric(t, reg, name, labels...)
	if !ok || got != v {
		t.Errorf("%s%v = %v (exists %v), want %v", name, labels, got, ok, v)
	}
}
