package delivery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/fleet-server/store"
	"github.com/kogge-fleet/kogge/protocol"
)

func TestLeaseAckDeletesBodyAndTellsDevice(t *testing.T) {
	backends(t, nil, func(t *testing.T, e *env) {
		ctx := context.Background()
		photo, finger := bytes.Repeat([]byte("photo "), 500), []byte("finger-2 minutiae")
		p := e.store(t, rec{device: "d1", seq: 1, blobs: [][]byte{photo, finger}})

		if ds, err := e.q.Lease(ctx, "amt-b", 10, time.Minute); err != nil || len(ds) != 0 {
			t.Fatalf("another office's lease: %v %v", ds, err)
		}
		ds, err := e.q.Lease(ctx, "amt-a", 10, 30*time.Second)
		if err != nil || len(ds) != 1 {
			t.Fatalf("Lease = %v, %v; want the record", ds, err)
		}
		d := ds[0]
		want := Delivery{ID: p.ID, Attempt: 1, LeasedUntil: e.clock.Now().Add(30 * time.Second), Device: "d1", Seq: 1,
			Kind: p.Kind, Office: "amt-a", KeyID: p.KeyID, CreatedAt: p.CreatedAt.Time(), Meta: p.Meta, Sealed: p.Sealed, Blobs: p.Blobs}
		if fmt.Sprint(d) != fmt.Sprint(want) {
			t.Errorf("leased\n%+v\nwant\n%+v", d, want)
		}
		for i, data := range [][]byte{photo, finger} {
			var buf bytes.Buffer
			if err := e.q.Blob(ctx, p.ID, d.Blobs[i].ID, &buf); err != nil || !bytes.Equal(buf.Bytes(), data) {
				t.Errorf("blob %d: %d bytes, %v", i, buf.Len(), err)
			}
		}
		if err := e.q.Blob(ctx, p.ID, uuid.New(), &bytes.Buffer{}); !errors.Is(err, ErrNotFound) {
			t.Errorf("unknown blob: %v", err)
		}

		if err := e.q.Ack(ctx, p.ID, 1, Receipt{Reference: "PA-2026-004711", Note: "in the queue of desk 3"}); err != nil {
			t.Fatal(err)
		}
		got := e.delivery(t, p.ID)
		if got.State != store.DeliveryAccepted || got.Reference != "PA-2026-004711" || got.AcceptedAt == 0 {
			t.Errorf("after ack: %+v", got)
		}
		if _, err := e.db.RecordSealed(ctx, "d1", p.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("sealed body after ack: %v", err)
		}
		if n := e.chunkBytes(t, "d1", p.ID); n != 0 {
			t.Errorf("%d blob bytes left after ack", n)
		}
		r, err := e.db.Record(ctx, "d1", p.ID)
		if err != nil || !r.Erased || len(r.Blobs) != 2 || r.Blobs[0].Size != uint64(len(photo)) || r.Blobs[0].SHA256 != p.Blobs[0].SHA256 {
			t.Errorf("metadata after ack: %+v, %v", r, err)
		}
		if err := e.q.Blob(ctx, p.ID, d.Blobs[0].ID, &bytes.Buffer{}); !errors.Is(err, ErrNotFound) {
			t.Errorf("blob after ack: %v", err)
		}
		st := e.broker.last("d1", p.ID)
		if st.State != protocol.Accepted || st.Reference != "PA-2026-004711" || st.Note != "in the queue of desk 3" {
			t.Errorf("device told %+v", st)
		}
		if got := e.auditActions(t, "record:"+p.ID.String()); !slices.Equal(got, []string{"bridge.amt-a delivery.accepted"}) {
			t.Errorf("audit: %q", got)
		}
		// A second ack, of any attempt, is harmless.
		if err := e.q.Ack(ctx, p.ID, 1, Receipt{Reference: "PA-2026-004711"}); err != nil {
			t.Errorf("second ack: %v", err)
		}
		if err := e.q.Ack(ctx, uuid.New(), 1, Receipt{Reference: "x"}); !errors.Is(err, ErrNotFound) {
			t.Errorf("ack of an unknown record: %v", err)
		}
		if ds, err := e.q.Lease(ctx, "amt-a", 10, time.Minute); err != nil || len(ds) != 0 {
			t.Errorf("lease after ack: %v %v", ds, err)
		}
		if n := len(e.auditActions(t, "record:"+p.ID.String())); n != 1 {
			t.Errorf("%d audit entries after a second ack", n)
		}
	})
}

func TestDeliverableOnlyWhenComplete(t *testing.T) {
	backends(t, nil, func(t *testing.T, e *env) {
		ctx := context.Background()
		a, b := []byte("first blob"), []byte("second blob, arriving slowly")
		p := e.store(t, rec{device: "d1", seq: 1, blobs: [][]byte{a, b}, partial: true})
		plain := e.store(t, rec{device: "d1", seq: 2})
		ds, err := e.q.Lease(ctx, "amt-a", 10, time.Minute)
		if err != nil || len(ds) != 1 || ds[0].ID != plain.ID {
			t.Fatalf("Lease = %v, %v; want only the record without blobs", ds, err)
		}
		e.completeBlob(t, "d1", p, b)
		ds, err = e.q.Lease(ctx, "amt-a", 10, time.Minute)
		if err != nil || len(ds) != 1 || ds[0].ID != p.ID || len(ds[0].Blobs) != 2 {
			t.Fatalf("Lease = %v, %v; want the completed record", ds, err)
		}
	})
}

func TestLeaseExpiresAndIsLeasedAgain(t *testing.T) {
	backends(t, nil, func(t *testing.T, e *env) {
		ctx := context.Background()
		p := e.store(t, rec{device: "d1", seq: 1})
		if ds, err := e.q.Lease(ctx, "amt-a", 1, 30*time.Second); err != nil || len(ds) != 1 || ds[0].Attempt != 1 {
			t.Fatalf("first lease: %v %v", ds, err)
		}
		e.clock.Add(29 * time.Second)
		if ds, err := e.q.Lease(ctx, "amt-a", 1, 30*time.Second); err != nil || len(ds) != 0 {
			t.Fatalf("lease while leased: %v %v", ds, err)
		}
		e.clock.Add(time.Second)
		ds, err := e.q.Lease(ctx, "amt-a", 1, 30*time.Second)
		if err != nil || len(ds) != 1 || ds[0].ID != p.ID || ds[0].Attempt != 2 {
			t.Fatalf("lease after expiry: %v %v; want attempt 2", ds, err)
		}
		for _, attempt := range []int{1, 3} {
			if err := e.q.Ack(ctx, p.ID, attempt, Receipt{Reference: "R-1"}); !errors.Is(err, ErrLeaseLost) {
				t.Errorf("ack of attempt %d: %v, want ErrLeaseLost", attempt, err)
			}
			if err := e.q.Fail(ctx, p.ID, attempt, "timeout", false); !errors.Is(err, ErrLeaseLost) {
				t.Errorf("fail of attempt %d: %v, want ErrLeaseLost", attempt, err)
			}
		}
		// The lease of attempt 2 expired, but nobody took it since: its
		// ack still counts.
		e.clock.Add(time.Hour)
		if err := e.q.Ack(ctx, p.ID, 2, Receipt{Reference: "R-1"}); err != nil {
			t.Fatalf("ack of an expired, untaken lease: %v", err)
		}
		if got := e.delivery(t, p.ID); got.State != store.DeliveryAccepted || got.Attempt != 2 {
			t.Errorf("after ack: %+v", got)
		}
		wantMetric(t, e.reg, 1, "kogge_delivery_redelivered_total", "office", "amt-a")
	})
}

func TestFailuresBackoffAndDeadLetter(t *testing.T) {
	backends(t, nil, func(t *testing.T, e *env) {
		ctx := context.Background()
		p := e.store(t, rec{device: "d1", seq: 1})
		// MaxAttempts is 3, RetryBase 1 s without jitter: waits 750 ms
		// (a quarter is jitter, here 0), 1.5 s.
		waits := []time.Duration{750 * time.Millisecond, 1500 * time.Millisecond}
		for attempt := 1; attempt <= 3; attempt++ {
			ds, err := e.q.Lease(ctx, "amt-a", 5, time.Minute)
			if err != nil || len(ds) != 1 || ds[0].Attempt != attempt {
				t.Fatalf("lease %d: %v %v", attempt, ds, err)
			}
			if err := e.q.Fail(ctx, p.ID, attempt, fmt.Sprintf("procedure answered 503 (%d)", attempt), false); err != nil {
				t.Fatal(err)
			}
			if attempt == 3 {
				break
			}
			got := e.delivery(t, p.ID)
			if got.State != store.DeliveryQueued || got.LastError != fmt.Sprintf("procedure answered 503 (%d)", attempt) {
				t.Fatalf("after failure %d: %+v", attempt, got)
			}
			e.clock.Add(waits[attempt-1] - time.Millisecond)
			if ds, err := e.q.Lease(ctx, "amt-a", 5, time.Minute); err != nil || len(ds) != 0 {
				t.Fatalf("leased before its backoff ended: %v %v", ds, err)
			}
			e.clock.Add(time.Millisecond)
		}
		got := e.delivery(t, p.ID)
		if got.State != store.DeliveryDead || !strings.Contains(got.LastError, "attempt 3 of 3 failed: procedure answered 503 (3)") {
			t.Fatalf("after the last attempt: %+v", got)
		}
		if st := e.broker.last("d1", p.ID); st.State != protocol.Failed || !strings.Contains(st.Note, "attempt 3 of 3") {
			t.Errorf("device told %+v", st)
		}
		e.clock.Add(time.Hour)
		if ds, err := e.q.Lease(ctx, "amt-a", 5, time.Minute); err != nil || len(ds) != 0 {
			t.Errorf("dead letter leased: %v %v", ds, err)
		}
		// A repeated report of the last attempt keeps it dead.
		if err := e.q.Fail(ctx, p.ID, 3, "again", false); err != nil {
			t.Errorf("repeated failure: %v", err)
		}
		wantMetric(t, e.reg, 1, "kogge_delivery_dead_letters_total", "office", "amt-a")
		wantMetric(t, e.reg, 4, "kogge_delivery_failures_total", "office", "amt-a", "kind", failTemporary)
	})
}

func TestExpiredLastAttemptIsDeadLetter(t *testing.T) {
	backends(t, nil, func(t *testing.T, e *env) {
		ctx := context.Background()
		p := e.store(t, rec{device: "d2", seq: 1})
		for attempt := 1; attempt <= 3; attempt++ {
			ds, err := e.q.Lease(ctx, "amt-a", 5, 10*time.Second)
			if err != nil || len(ds) != 1 || ds[0].Attempt != attempt {
				t.Fatalf("lease %d: %v %v", attempt, ds, err)
			}
			e.clock.Add(10 * time.Second)
		}
		// Nobody leases any more; the sweep finds the expired last
		// attempt.
		e.q.Sweep(ctx)
		got := e.delivery(t, p.ID)
		if got.State != store.DeliveryDead || !strings.Contains(got.LastError, "lease expired after attempt 3 of 3") {
			t.Fatalf("after the last lease expired: %+v", got)
		}
		// d2 is offline: nothing published yet; it gets the status when it
		// connects.
		if st := e.broker.statuses("d2"); len(st) != 0 {
			t.Errorf("published to an offline device: %v", st)
		}
		wantMetric(t, e.reg, 1, "kogge_delivery_failures_total", "office", "amt-a", "kind", failLeaseExpired)
	})
}

func TestPermanentFailureUnknownKey(t *testing.T) {
	backends(t, nil, func(t *testing.T, e *env) {
		ctx := context.Background()
		p := e.store(t, rec{device: "d1", seq: 1, key: "amt-a-2019", blobs: [][]byte{[]byte("photo")}})
		ds, err := e.q.Lease(ctx, "amt-a", 5, time.Minute)
		if err != nil || len(ds) != 1 {
			t.Fatal(ds, err)
		}
		const reason = `unknown key "amt-a-2019": the office holds no such key (retired?)`
		if err := e.q.Fail(ctx, p.ID, 1, reason, true); err != nil {
			t.Fatal(err)
		}
		got := e.delivery(t, p.ID)
		if got.State != store.DeliveryDead || got.LastError != reason || got.Attempt != 1 {
			t.Fatalf("after a permanent failure: %+v", got)
		}
		dead, err := e.q.Deliveries(ctx, store.DeliveryFilter{Office: "amt-a", State: store.DeliveryDead})
		if err != nil || len(dead) != 1 || dead[0].Record != p.ID {
			t.Fatalf("dead letters: %v %v", dead, err)
		}
		info, err := e.q.Inspect(ctx, p.ID)
		if err != nil || info.Delivery.LastError != reason || info.Record.KeyID != "amt-a-2019" || info.Record.SealedSize != int64(len(p.Sealed)) ||
			len(info.Record.Blobs) != 1 || info.Record.Erased {
			t.Errorf("inspect: %+v, %v", info, err)
		}
		if st := e.broker.last("d1", p.ID); st.State != protocol.Failed || st.Note != reason {
			t.Errorf("device told %+v", st)
		}
		wantMetric(t, e.reg, 1, "kogge_delivery_failures_total", "office", "amt-a", "kind", failPermanent)
	})
}

func TestReplayAndDiscard(t *testing.T) {
	backends(t, nil, func(t *testing.T, e *env) {
		ctx := context.Background()
		blob := []byte("fingerprint")
		p := e.store(t, rec{device: "d1", seq: 1, blobs: [][]byte{blob}})
		kill := func(attempt int) {
			t.Helper()
			ds, err := e.q.Lease(ctx, "amt-a", 5, time.Minute)
			if err != nil || len(ds) != 1 || ds[0].Attempt != attempt {
				t.Fatalf("lease: %v %v, want attempt %d", ds, err, attempt)
			}
			if err := e.q.Fail(ctx, p.ID, attempt, "schema mismatch", true); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := e.q.Replay(ctx, p.ID, "api-token:test"); !errors.Is(err, ErrNotDeadLetter) {
			t.Errorf("replay of a queued record: %v", err)
		}
		kill(1)
		d, err := e.q.Replay(ctx, p.ID, "api-token:test")
		if err != nil || d.State != store.DeliveryQueued || d.Attempt != 0 {
			t.Fatalf("replay: %+v %v", d, err)
		}
		kill(1) // attempts start again
		if _, err := e.q.Discard(ctx, uuid.New(), "", "api-token:test"); !errors.Is(err, ErrNotFound) {
			t.Errorf("discard of an unknown record: %v", err)
		}
		d, err = e.q.Discard(ctx, p.ID, "the applicant withdrew", "api-token:test")
		if err != nil || d.State != store.DeliveryDiscarded {
			t.Fatalf("discard: %+v %v", d, err)
		}
		if _, err := e.db.RecordSealed(ctx, "d1", p.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("sealed body after discard: %v", err)
		}
		if n := e.chunkBytes(t, "d1", p.ID); n != 0 {
			t.Errorf("%d blob bytes after discard", n)
		}
		if _, err := e.q.Replay(ctx, p.ID, "api-token:test"); !errors.Is(err, ErrNotDeadLetter) {
			t.Errorf("replay of a discarded record: %v", err)
		}
		want := []string{"api-token:test dead_letter.replay", "api-token:test dead_letter.discard"}
		if got := e.auditActions(t, "record:"+p.ID.String()); !slices.Equal(got, want) {
			t.Errorf("audit: %q, want %q", got, want)
		}
		es, err := e.db.AuditEntries(ctx, store.AuditFilter{Action: "dead_letter.discard"})
		if err != nil || len(es) != 1 || !strings.Contains(es[0].Details, `"reason":"the applicant withdrew"`) ||
			strings.Contains(es[0].Details, string(p.Sealed)) {
			t.Errorf("discard entry: %+v %v", es, err)
		}
		// A bridge that still held an older lease cannot revive it.
		if err := e.q.Ack(ctx, p.ID, 1, Receipt{Reference: "late"}); err != nil {
			t.Errorf("late ack of a discarded record: %v", err)
		}
		if got := e.delivery(t, p.ID); got.State != store.DeliveryDiscarded || got.Reference != "late" {
			t.Errorf("a late receipt is kept, the state stays: %+v", got)
		}
	})
}

func TestUpdateStatus(t *testing.T) {
	backends(t, nil, func(t *testing.T, e *env) {
		ctx := context.Background()
		p := e.store(t, rec{device: "d1", seq: 1, kind: "roadwork.report", office: "strassenbau"})
		ds, err := e.q.Lease(ctx, "strassenbau", 5, time.Minute)
		if err != nil || len(ds) != 1 {
			t.Fatal(ds, err)
		}
		if err := e.q.Update(ctx, p.ID, protocol.Delivered, "", "handed over"); err != nil {
			t.Fatal(err)
		}
		if got := e.delivery(t, p.ID); got.State != store.DeliveryDelivered {
			t.Errorf("queue state after delivered: %s", got.State)
		}
		if err := e.q.Ack(ctx, p.ID, 1, Receipt{Reference: "token-77"}); err != nil {
			t.Fatal(err)
		}
		e.clock.Add(time.Hour)
		if err := e.q.Update(ctx, p.ID, protocol.InProgress, "SR-1234", "crew on site"); err != nil {
			t.Fatal(err)
		}
		e.clock.Add(time.Hour)
		if err := e.q.Update(ctx, p.ID, protocol.Closed, "", "pothole filled"); err != nil {
			t.Fatal(err)
		}
		var states []string
		for _, it := range e.broker.statuses("d1") {
			states = append(states, it.State.String()+":"+it.Reference)
		}
		want := []string{"delivered:", "accepted:token-77", "in-progress:SR-1234", "closed:SR-1234"}
		if !slices.Equal(states, want) {
			t.Errorf("device told %q, want %q", states, want)
		}
		for _, c := range []struct {
			id    uuid.UUID
			state protocol.DeliveryState
			want  error
		}{
			{p.ID, protocol.Accepted, ErrInvalid},
			{p.ID, protocol.Erased, ErrInvalid},
			{p.ID, protocol.DeliveryState(99), ErrInvalid},
			{uuid.New(), protocol.Closed, ErrNotFound},
		} {
			if err := e.q.Update(ctx, c.id, c.state, "", ""); !errors.Is(err, c.want) {
				t.Errorf("Update(%v): %v, want %v", c.state, err, c.want)
			}
		}
	})
}

func TestStatusWaitsForTheDevice(t *testing.T) {
	backends(t, func(o *Options) { o.SweepEvery = time.Hour }, func(t *testing.T, e *env) {
		ctx, cancel := context.WithCancel(context.Background())
		p := e.store(t, rec{device: "d2", seq: 1})
		ds, err := e.q.Lease(ctx, "amt-a", 5, time.Minute)
		if err != nil || len(ds) != 1 {
			t.Fatal(ds, err)
		}
		if err := e.q.Ack(ctx, p.ID, 1, Receipt{Reference: "PA-1"}); err != nil {
			t.Fatal(err)
		}
		if st := e.broker.statuses("d2"); len(st) != 0 {
			t.Fatalf("published to an offline device: %v", st)
		}
		done := make(chan error, 1)
		go func() { done <- e.q.Run(ctx) }()
		defer func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
		}()
		// A session start sends, whatever presence says (it is still
		// offline here, so Run's sweep leaves the status alone).
		e.q.Connected("d2")
		eventually(t, "the status to reach d2", func() bool { return e.broker.last("d2", p.ID).State == protocol.Accepted })
		eventually(t, "the status to count as sent", func() bool { return e.delivery(t, p.ID).StatusSentAt != 0 })
		// A reconnect within StatusResend gets it again (the device may
		// have dropped before presence noticed); later ones do not.
		e.q.Connected("d2")
		eventually(t, "the status again", func() bool { return len(e.broker.statuses("d2")) == 2 })
		// d1 goes offline and gets a status stored; Run takes connects in
		// order, so once d1 has it, d2's later reconnect was handled.
		setPresence(t, e.db, "d1", false, e.clock.Now())
		marker := e.store(t, rec{device: "d1", seq: 1})
		if ds, err := e.q.Lease(ctx, "amt-a", 5, time.Minute); err != nil || len(ds) != 1 {
			t.Fatal(ds, err)
		}
		if err := e.q.Ack(ctx, marker.ID, 1, Receipt{Reference: "PA-2"}); err != nil {
			t.Fatal(err)
		}
		e.clock.Add(11 * time.Minute)
		e.q.Connected("d2")
		e.q.Connected("d1")
		eventually(t, "d1's status", func() bool { return e.broker.last("d1", marker.ID).State == protocol.Accepted })
		if n := len(e.broker.statuses("d2")); n != 2 {
			t.Errorf("%d statuses after a reconnect beyond StatusResend, want still 2", n)
		}
	})
}

func TestConcurrentLeasersNeverShare(t *testing.T) {
	backends(t, nil, func(t *testing.T, e *env) {
		ctx := context.Background()
		const records = 120
		want := map[uuid.UUID]bool{}
		for i := range records {
			p := e.store(t, rec{device: "d1", seq: uint64(i + 1)})
			want[p.ID] = true
		}
		// Four leasers: on PostgreSQL each with its own store (as on
		// separate replicas), on SQLite sharing the single writer.
		queues := []*Queue{e.q}
		for range 3 {
			db := e.db
			if strings.HasPrefix(e.dsn, "postgres") {
				db = openStore(t, e.dsn)
			}
			queues = append(queues, e.newQueue(t, db, nil))
		}
		var mu sync.Mutex
		got := map[uuid.UUID]int{}
		var wg sync.WaitGroup
		errs := make(chan error, len(queues))
		deadline := time.Now().Add(30 * time.Second)
		for _, q := range queues {
			wg.Go(func() {
				for time.Now().Before(deadline) {
					ds, err := q.Lease(ctx, "amt-a", 7, time.Hour)
					if err != nil {
						errs <- err
						return
					}
					if len(ds) == 0 {
						return
					}
					mu.Lock()
					for _, d := range ds {
						got[d.ID]++
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if len(got) != records {
			t.Errorf("%d of %d records leased", len(got), records)
		}
		for id, n := range got {
			if n != 1 || !want[id] {
				t.Errorf("record %v leased %d times (known %v)", id, n, want[id])
			}
		}
	})
}

func TestQueueMetrics(t *testing.T) {
	backends(t, nil, func(t *testing.T, e *env) {
		ctx := context.Background()
		for i := range 3 {
			e.store(t, rec{device: "d1", seq: uint64(i + 1)})
		}
		dead := e.store(t, rec{device: "d1", seq: 4, office: "amt-b"})
		e.clock.Add(90 * time.Second)
		ds, err := e.q.Lease(ctx, "amt-a", 1, time.Minute)
		if err != nil || len(ds) != 1 {
			t.Fatal(ds, err)
		}
		if err := e.q.Ack(ctx, ds[0].ID, 1, Receipt{Reference: "R"}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.q.Lease(ctx, "amt-a", 1, time.Minute); err != nil {
			t.Fatal(err)
		}
		if ds, err := e.q.Lease(ctx, "amt-b", 1, time.Minute); err != nil || len(ds) != 1 {
			t.Fatal(ds, err)
		}
		if err := e.q.Fail(ctx, dead.ID, 1, "refused", true); err != nil {
			t.Fatal(err)
		}
		wantMetric(t, e.reg, 0, "kogge_delivery_dead_letters", "office", "amt-a")
		wantMetric(t, e.reg, 1, "kogge_delivery_dead_letters", "office", "amt-b")
		wantMetric(t, e.reg, 90, "kogge_delivery_lag_seconds", "office", "amt-a")
		wantMetric(t, e.reg, 0, "kogge_delivery_lag_seconds", "office", "amt-b")
		wantMetric(t, e.reg, 1, "kogge_delivery_queue_depth", "office", "amt-a", "state", "queued")
		wantMetric(t, e.reg, 1, "kogge_delivery_queue_depth", "office", "amt-a", "state", "leased")
		wantMetric(t, e.reg, 0, "kogge_delivery_queue_depth", "office", "amt-b", "state", "queued")
		wantMetric(t, e.reg, 1, "kogge_delivery_accepted_total", "office", "amt-a")
		wantMetric(t, e.reg, 1, "kogge_delivery_latency_seconds", "office", "amt-a")
		wantMetric(t, e.reg, 2, "kogge_delivery_leased_total", "office", "amt-a")
	})
}

func TestBackoff(t *testing.T) {
	q := &Queue{opts: Options{RetryBase: time.Second, RetryMax: 10 * time.Second,
		Jitter: func(d time.Duration) time.Duration { return d - 1 }}}
	for _, c := range []struct {
		attempt  int
		min, max time.Duration
	}{{1, 750 * time.Millisecond, time.Second}, {2, 1500 * time.Millisecond, 2 * time.Second},
		{4, 6 * time.Second, 8 * time.Second}, {5, 7500 * time.Millisecond, 10 * time.Second}, {60, 7500 * time.Millisecond, 10 * time.Second}} {
		got := q.backoff(c.attempt)
		if got < c.min || got > c.max {
			t.Errorf("backoff(%d) = %v, want %v to %v", c.attempt, got, c.min, c.max)
		}
	}
}

func TestInvalidCalls(t *testing.T) {
	backends(t, nil, func(t *testing.T, e *env) {
		ctx := context.Background()
		id := uuid.New()
		for name, err := range map[string]error{
			"lease bad office":   func() error { _, err := e.q.Lease(ctx, "amt/a", 1, time.Minute); return err }(),
			"lease zero":         func() error { _, err := e.q.Lease(ctx, "amt-a", 0, time.Minute); return err }(),
			"lease no time":      func() error { _, err := e.q.Lease(ctx, "amt-a", 1, 0); return err }(),
			"ack attempt 0":      e.q.Ack(ctx, id, 0, Receipt{Reference: "r"}),
			"ack no reference":   e.q.Ack(ctx, id, 1, Receipt{}),
			"ack long reference": e.q.Ack(ctx, id, 1, Receipt{Reference: strings.Repeat("r", protocol.MaxTextLen+1)}),
			"fail no reason":     e.q.Fail(ctx, id, 1, " ", false),
			"fail attempt 0":     e.q.Fail(ctx, id, 0, "x", false),
		} {
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("%s: %v, want ErrInvalid", name, err)
			}
		}
	})
}
