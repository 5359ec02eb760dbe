package retention

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kogge-fleet/kogge/fleet-server/audit"
	"github.com/kogge-fleet/kogge/fleet-server/delivery"
	"github.com/kogge-fleet/kogge/fleet-server/store"
	"github.com/kogge-fleet/kogge/fleet-server/store/pgtest"
	"github.com/kogge-fleet/kogge/protocol"
)

// env is a store with device d1 (online), a real delivery queue that
// publishes to a fake broker, a fake clock and a sweeper.
type env struct {
	db     *store.DB
	clock  *fakeClock
	broker *fakeBroker
	q      *delivery.Queue
	s      *Sweeper
	reg    *prometheus.Registry
}

func backends(t *testing.T, edit func(*Options), fn func(t *testing.T, e *env)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, newEnv(t, filepath.Join(t.TempDir(), "kogge.db"), edit)) })
	t.Run("postgres", func(t *testing.T) { fn(t, newEnv(t, pgtest.URL(t), edit)) })
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func newEnv(t *testing.T, dsn string, edit func(*Options)) *env {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, dsn, store.Options{Logger: quiet(), MaxOpenConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e := &env{db: db, clock: &fakeClock{t: time.UnixMilli(1_800_000_000_000)}, broker: &fakeBroker{}, reg: prometheus.NewRegistry()}
	err = db.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.Exec(`INSERT INTO groups (id, name, created_at) VALUES ('g', 'g', 1)`); err != nil {
			return err
		}
		_, err := tx.Exec(`INSERT INTO devices (id, group_id, created_at, inventory_at) VALUES ('d1', 'g', 1, 1)`)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Ingest(ctx, func(tx *store.IngestTx) error {
		_, err := tx.ApplyPresence(ctx, "d1", &protocol.Presence{State: protocol.Online, Session: uuid.New(), Software: "1",
			At: protocol.At(e.clock.Now())}, e.clock.Now().UnixMilli())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if e.q, err = delivery.New(db, e.broker, delivery.Options{Logger: quiet(), Clock: e.clock.Now}); err != nil {
		t.Fatal(err)
	}
	opts := Options{Logger: quiet(), Clock: e.clock.Now, Registerer: e.reg, Batch: 2}
	if edit != nil {
		edit(&opts)
	}
	if e.s, err = New(db, e.q, opts); err != nil {
		t.Fatal(err)
	}
	return e
}

// record stores a record of kind with one blob, complete or not, and
// queues it when complete, as the ingest does.
func (e *env) record(t *testing.T, seq uint64, kind string, complete bool) *protocol.Record {
	t.Helper()
	ctx := context.Background()
	blob := bytes.Repeat([]byte{byte(seq)}, 1000)
	r := &protocol.Record{ID: uuid.Must(uuid.NewV7()), Seq: seq, Kind: kind, Office: "amt-a", KeyID: "k1",
		CreatedAt: protocol.At(e.clock.Now()), Sealed: []byte("SEALED-PERSONAL-DATA"),
		Blobs: []protocol.BlobRef{{ID: uuid.Must(uuid.NewV7()), Role: "photo", Size: uint64(len(blob)), SHA256: protocol.SumOf(blob)}}}
	now := e.clock.Now().UnixMilli()
	err := e.db.Ingest(ctx, func(tx *store.IngestTx) error {
		if _, err := tx.InsertRecord(ctx, "d1", r, now); err != nil {
			return err
		}
		n := len(blob)
		if !complete {
			n /= 2
		}
		if err := tx.AppendChunk(ctx, "d1", r.ID, r.Blobs[0].ID, 0, blob[:n], now); err != nil {
			return err
		}
		if !complete {
			return nil
		}
		if err := tx.CompleteBlob(ctx, "d1", r.ID, r.Blobs[0].ID, now); err != nil {
			return err
		}
		_, err := tx.EnqueueDelivery(ctx, "d1", r.ID, now)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// held reports whether the server still holds any of the record's body or
// blob bytes.
func (e *env) held(t *testing.T, id uuid.UUID) bool {
	t.Helper()
	var n int
	if err := e.db.Reader().QueryRow(`SELECT (SELECT count(*) FROM records WHERE id = $1 AND sealed IS NOT NULL) +
		(SELECT count(*) FROM blob_chunks WHERE record_id = $1)`, id).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n > 0
}

func (e *env) state(t *testing.T, id uuid.UUID) string {
	t.Helper()
	d, err := e.db.DeliveryOf(context.Background(), id)
	if errors.Is(err, store.ErrNotFound) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return d.State
}

func (e *env) actions(t *testing.T, target string) []string {
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

func TestRetentionExpiry(t *testing.T) {
	backends(t, nil, func(t *testing.T, e *env) {
		ctx := context.Background()
		bio := e.record(t, 1, "kiosk.application", true)         // queued
		bioPartial := e.record(t, 2, "kiosk.application", false) // blobs still arriving
		notice := e.record(t, 3, "enforcement.notice", true)
		accepted := e.record(t, 4, "kiosk.application", true)
		leased, err := e.q.Lease(ctx, "amt-a", 10, time.Hour)
		if err != nil || len(leased) != 3 {
			t.Fatalf("lease: %v %v", leased, err)
		}
		var acceptedAttempt int
		for _, d := range leased {
			if d.ID == accepted.ID {
				acceptedAttempt = d.Attempt
			}
		}
		if err := e.q.Ack(ctx, accepted.ID, acceptedAttempt, delivery.Receipt{Reference: "PA-9"}); err != nil {
			t.Fatal(err)
		}

		e.clock.Add(96*time.Hour - time.Millisecond)
		if rep, err := e.s.Sweep(ctx); err != nil || len(rep.Expired) != 0 {
			t.Fatalf("sweep before the limit: %+v %v", rep, err)
		}
		e.clock.Add(time.Millisecond)
		rep, err := e.s.Sweep(ctx)
		if err != nil || rep.Expired["kiosk.application"] != 2 || len(rep.Expired) != 1 {
			t.Fatalf("sweep at 96 h: %+v %v", rep, err)
		}
		for _, r := range []*protocol.Record{bio, bioPartial} {
			if e.held(t, r.ID) {
				t.Errorf("record %d: body or blobs still held at 96 h", r.Seq)
			}
			if st := e.state(t, r.ID); st != store.DeliveryErased {
				t.Errorf("record %d: delivery state %q, want erased", r.Seq, st)
			}
			if it := e.broker.last("d1", r.ID); it.State != protocol.Erased {
				t.Errorf("record %d: device told %+v", r.Seq, it)
			}
			if got := e.actions(t, "record:"+r.ID.String()); !slices.Equal(got, []string{"system retention.expired"}) {
				t.Errorf("record %d: audit %q", r.Seq, got)
			}
			rec, err := e.db.Record(ctx, "d1", r.ID)
			if err != nil || !rec.Erased || len(rec.Blobs) != 1 || rec.Blobs[0].SHA256 != r.Blobs[0].SHA256 {
				t.Errorf("record %d: metadata %+v %v", r.Seq, rec, err)
			}
		}
		if !e.held(t, notice.ID) {
			t.Error("the notice (14 days) went at 96 h")
		}
		// The erased partial record never becomes deliverable, and its
		// blob takes no more bytes.
		if ds, err := e.q.Lease(ctx, "amt-a", 10, time.Hour); err != nil || len(ds) != 1 || ds[0].ID != notice.ID {
			t.Errorf("lease after the sweep: %v %v; want only the notice (its lease expired)", ds, err)
		}
		var complete bool
		if err := e.db.Reader().QueryRow(`SELECT complete_at IS NOT NULL FROM blobs WHERE record_id = $1`, bioPartial.ID).Scan(&complete); err != nil || !complete {
			t.Errorf("the erased record's blob still takes chunks: %v", err)
		}
		if v := counter(t, e.reg, "kogge_retention_expired_total", "kiosk.application"); v != 2 {
			t.Errorf("kogge_retention_expired_total %v", v)
		}

		e.clock.Add(14*24*time.Hour - 96*time.Hour)
		if rep, err := e.s.Sweep(ctx); err != nil || rep.Expired["enforcement.notice"] != 1 {
			t.Fatalf("sweep at 14 days: %+v %v", rep, err)
		}
		if e.held(t, notice.ID) {
			t.Error("the notice is held beyond 14 days")
		}
		// A leased record's bridge that acks late keeps its receipt.
		if st := e.state(t, notice.ID); st != store.DeliveryErased {
			t.Errorf("notice state %q", st)
		}

		// Metadata goes after 400 days, audited once per batch.
		e.clock.Add(400 * 24 * time.Hour)
		rep, err = e.s.Sweep(ctx)
		if err != nil || rep.MetadataRecords != 4 {
			t.Fatalf("metadata sweep: %+v %v", rep, err)
		}
		if _, err := e.db.Record(ctx, "d1", bio.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("metadata after 400 days: %v", err)
		}
		es, err := e.db.AuditEntries(ctx, store.AuditFilter{Action: ActionMetadataDeleted})
		if err != nil || len(es) != 2 || !strings.Contains(es[0].Details, `"records":2`) {
			t.Errorf("metadata audit (batch 2): %+v %v", es, err)
		}
		if n, err := audit.New(e.db, audit.Options{}); err != nil {
			t.Fatal(err)
		} else if k, err := n.Verify(ctx); err != nil || k == 0 {
			t.Errorf("audit chain after the sweeps: %d %v", k, err)
		}
	})
}

func TestPerKindLimitsAndValidation(t *testing.T) {
	backends(t, func(o *Options) { o.Limits = map[string]time.Duration{"roadwork.report": 48 * time.Hour} }, func(t *testing.T, e *env) {
		ctx := context.Background()
		road := e.record(t, 1, "roadwork.report", true)
		notice := e.record(t, 2, "enforcement.notice", true)
		e.clock.Add(48 * time.Hour)
		if rep, err := e.s.Sweep(ctx); err != nil || rep.Expired["roadwork.report"] != 1 || len(rep.Expired) != 1 {
			t.Fatalf("sweep at 48 h: %+v %v", rep, err)
		}
		if e.held(t, road.ID) || !e.held(t, notice.ID) {
			t.Error("per-kind limit not applied")
		}
	})
	for name, o := range map[string]Options{
		"limit above metadata":   {Undelivered: 500 * 24 * time.Hour},
		"biometric in limits":    {Limits: map[string]time.Duration{"kiosk.application": time.Hour}},
		"limit below a minute":   {Biometric: time.Second},
		"metadata below 14 days": {Metadata: 10 * 24 * time.Hour},
	} {
		o.defaults()
		if err := o.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestErasure(t *testing.T) {
	backends(t, nil, func(t *testing.T, e *env) {
		ctx := context.Background()
		byID := e.record(t, 1, "kiosk.application", true)
		byRef := e.record(t, 2, "enforcement.notice", true)
		accepted := e.record(t, 3, "enforcement.notice", true)
		ds, err := e.q.Lease(ctx, "amt-a", 10, time.Hour)
		if err != nil || len(ds) != 3 {
			t.Fatal(ds, err)
		}
		attempt := map[uuid.UUID]int{}
		for _, d := range ds {
			attempt[d.ID] = d.Attempt
		}
		if err := e.q.Update(ctx, byRef.ID, protocol.Delivered, "OWI-77", "in the drop directory"); err != nil {
			t.Fatal(err)
		}
		if err := e.q.Ack(ctx, accepted.ID, attempt[accepted.ID], delivery.Receipt{Reference: "OWI-78"}); err != nil {
			t.Fatal(err)
		}

		res, err := e.s.Erase(ctx, Request{Record: byID.ID, Actor: "api-token:abc"})
		if err != nil || res.Erased != 1 || len(res.Records) != 1 || !res.Records[0].Erased || res.Records[0].Device != "d1" {
			t.Fatalf("erase by id: %+v %v", res, err)
		}
		res, err = e.s.Erase(ctx, Request{Reference: "OWI-77", Actor: "api-token:abc"})
		if err != nil || res.Erased != 1 || len(res.Records) != 1 || res.Records[0].ID != byRef.ID {
			t.Fatalf("erase by reference: %+v %v", res, err)
		}
		// Accepted already: nothing held, nothing erased, still audited.
		res, err = e.s.Erase(ctx, Request{Reference: "OWI-78", Actor: "api-token:abc"})
		if err != nil || res.Erased != 0 || len(res.Records) != 1 || res.Records[0].Erased {
			t.Fatalf("erase of an accepted record: %+v %v", res, err)
		}
		res, err = e.s.Erase(ctx, Request{Record: uuid.New(), Actor: "api-token:abc"})
		if err != nil || res.Erased != 0 || len(res.Records) != 0 {
			t.Fatalf("erase of an unknown record: %+v %v", res, err)
		}
		for _, r := range []*protocol.Record{byID, byRef} {
			if e.held(t, r.ID) || e.state(t, r.ID) != store.DeliveryErased {
				t.Errorf("record %d held %v, state %s", r.Seq, e.held(t, r.ID), e.state(t, r.ID))
			}
			if it := e.broker.last("d1", r.ID); it.State != protocol.Erased {
				t.Errorf("record %d: device told %+v", r.Seq, it)
			}
		}
		if got := e.actions(t, "record:"+byID.ID.String()); !slices.Equal(got, []string{"api-token:abc erasure.record", "api-token:abc erasure.request"}) {
			t.Errorf("audit of the erasure by id: %q", got)
		}
		if got := e.actions(t, "reference:OWI-77"); !slices.Equal(got, []string{"api-token:abc erasure.request"}) {
			t.Errorf("audit of the erasure by reference: %q", got)
		}
		if got := e.actions(t, "reference:OWI-78"); len(got) != 1 {
			t.Errorf("audit of the empty erasure: %q", got)
		}
		// The bridge that held the erased record's lease cannot deliver
		// it any more; an ack it had on its way is kept as the receipt.
		if _, err := e.q.Lease(ctx, "amt-a", 10, time.Hour); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := e.q.Blob(ctx, byID.ID, byID.Blobs[0].ID, &buf); !errors.Is(err, delivery.ErrNotFound) {
			t.Errorf("blob of an erased record: %v", err)
		}
		for name, req := range map[string]Request{
			"neither": {Actor: "a"}, "both": {Record: uuid.New(), Reference: "x", Actor: "a"},
			"no actor": {Record: uuid.New()}, "blank reference": {Reference: "  ", Actor: "a"},
		} {
			if _, err := e.s.Erase(ctx, req); !errors.Is(err, ErrInvalid) {
				t.Errorf("%s: %v, want ErrInvalid", name, err)
			}
		}
	})
}

func TestRunSweepsOnTicks(t *testing.T) {
	ticks := make(chan time.Time)
	e := newEnv(t, filepath.Join(t.TempDir(), "kogge.db"), func(o *Options) { o.Ticks = ticks })
	r := e.record(t, 1, "kiosk.application", true)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.s.Run(ctx) }()
	e.clock.Add(97 * time.Hour)
	ticks <- time.Now() // taken after the first sweep; the second one erases
	ticks <- time.Now() // taken after the second sweep
	if e.held(t, r.ID) {
		t.Error("Run did not sweep")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func counter(t *testing.T, reg *prometheus.Registry, name, kind string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "kind" && l.GetValue() == kind {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return -1
}

type fakeBroker struct {
	mu   sync.Mutex
	sent map[string][]protocol.StatusItem
}

func (b *fakeBroker) Publish(topic string, payload []byte, retained bool) error {
	env, err := protocol.DecodeOn(topic, payload)
	if err != nil {
		return err
	}
	st, ok := env.Body.(*protocol.RecordStatus)
	if !ok {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.sent == nil {
		b.sent = map[string][]protocol.StatusItem{}
	}
	b.sent[env.Device] = append(b.sent[env.Device], st.Items...)
	return nil
}

func (b *fakeBroker) last(device string, id uuid.UUID) protocol.StatusItem {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out protocol.StatusItem
	for _, it := range b.sent[device] {
		if it.Record == id {
			out = it
		}
	}
	return out
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

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
