package leader

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kogge-fleet/kogge/fleet-server/store"
	"github.com/kogge-fleet/kogge/fleet-server/store/pgtest"
)

func openStore(t *testing.T, dsn string) *store.DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := store.Open(ctx, dsn, store.Options{Logger: slog.New(slog.DiscardHandler), MaxOpenConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v (last: %s)", what, timeout, last)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// replica is an elector running in the test.
type replica struct {
	e      *Elector
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan struct{}
	// running counts the singleton's runs now going on here.
	running atomic.Int32
	runs    atomic.Int32
}

func startReplica(t *testing.T, db *store.DB, partitions bool, singleton string) *replica {
	t.Helper()
	r := &replica{reg: prometheus.NewRegistry(), done: make(chan struct{})}
	var err error
	r.e, err = New(db, Options{Logger: slog.New(slog.DiscardHandler), Registerer: r.reg, Poll: 50 * time.Millisecond,
		CheckTimeout: time.Second, Partitions: partitions})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	var wg sync.WaitGroup
	if singleton != "" {
		fn := r.e.Singleton(singleton, func(ctx context.Context) error {
			r.running.Add(1)
			r.runs.Add(1)
			defer r.running.Add(-1)
			<-ctx.Done()
			return nil
		})
		wg.Go(func() {
			if err := fn(ctx); err != nil {
				t.Errorf("singleton: %v", err)
			}
		})
	}
	wg.Go(func() {
		if err := r.e.Run(ctx); err != nil {
			t.Errorf("elector: %v", err)
		}
	})
	go func() {
		wg.Wait()
		close(r.done)
	}()
	t.Cleanup(r.stop)
	return r
}

func (r *replica) stop() {
	r.cancel()
	<-r.done
}

func TestSQLiteRunsEverything(t *testing.T) {
	db := openStore(t, filepath.Join(t.TempDir(), "kogge.db"))
	e, err := New(db, Options{Partitions: true})
	if err != nil {
		t.Fatal(err)
	}
	ran := make(chan struct{})
	fn := e.Singleton("retention", func(ctx context.Context) error {
		close(ran)
		return errors.New("boom")
	})
	if err := fn(context.Background()); err == nil || err.Error() != "boom" {
		t.Errorf("singleton with SQLite returned %v, want fn's own error", err)
	}
	<-ran
	if !e.IsLeader("retention") || e.Owned() != Partitions || !e.Owns("kiosk-1") {
		t.Errorf("SQLite: leader %v, %d partitions owned", e.IsLeader("retention"), e.Owned())
	}

	// Notifications reach the process's listeners.
	n, err := NewNotifier(db, "live", nil)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	listening := make(chan struct{})
	go func() {
		close(listening)
		done <- n.Listen(ctx, func(p []byte) { got <- string(p) })
	}()
	<-listening
	eventually(t, "listener registered", 5*time.Second, func() (bool, string) {
		n.mu.Lock()
		defer n.mu.Unlock()
		return len(n.handlers) == 1, ""
	})
	if err := n.Notify(ctx, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if p := <-got; p != "hello" {
		t.Errorf("got %q", p)
	}
	cancel()
	if err := <-done; err != nil {
		t.Error(err)
	}
}

// leaders returns which of rs run the singleton now.
func leaders(rs ...*replica) []int {
	var out []int
	for i, r := range rs {
		if r.running.Load() > 0 {
			out = append(out, i)
		}
	}
	return out
}

func TestSingletonFailover(t *testing.T) {
	dsn := pgtest.URL(t)
	a := startReplica(t, openStore(t, dsn), false, "retention")
	b := startReplica(t, openStore(t, dsn), false, "retention")
	one := func() (bool, string) {
		l := leaders(a, b)
		return len(l) == 1, fmt.Sprint("running on ", l)
	}
	eventually(t, "one leader", 10*time.Second, one)
	first := a
	second := b
	if leaders(a, b)[0] == 1 {
		first, second = b, a
	}
	if !first.e.IsLeader("retention") || second.e.IsLeader("retention") {
		t.Errorf("IsLeader: first %v, second %v", first.e.IsLeader("retention"), second.e.IsLeader("retention"))
	}
	if g := gauge(t, first.reg, "kogge_cluster_leader"); g != 1 {
		t.Errorf("kogge_cluster_leader on the leader = %v", g)
	}
	eventually(t, "both replicas counted", 10*time.Second, func() (bool, string) {
		g := gauge(t, first.reg, "kogge_cluster_replicas")
		return g == 2, fmt.Sprint(g)
	})

	// The leader's lock connection dies (as when its process is killed):
	// it stops running, the other takes over.
	terminateLockSessions(t, dsn, first)
	eventually(t, "takeover after the connection died", 10*time.Second, func() (bool, string) {
		return first.running.Load() == 0 && second.running.Load() == 1, fmt.Sprint("running on ", leaders(a, b))
	})
	eventually(t, "still one leader", time.Second, one)

	// The old leader reconnects and waits; stopping the new leader hands
	// the singleton back.
	eventually(t, "old leader reconnected", 10*time.Second, func() (bool, string) {
		return first.e.Replicas() == 2, fmt.Sprint(first.e.Replicas(), " replicas seen")
	})
	second.stop()
	eventually(t, "handed back after a clean stop", 10*time.Second, func() (bool, string) {
		return first.running.Load() == 1, fmt.Sprint("running on ", leaders(a, b))
	})
	if n := first.runs.Load(); n != 2 {
		t.Errorf("first replica ran the singleton %d times, want 2", n)
	}
}

// terminateLockSessions ends the database sessions that hold r's locks, as
// PostgreSQL does when a replica's process dies.
func terminateLockSessions(t *testing.T, dsn string, r *replica) {
	t.Helper()
	db := openStore(t, dsn)
	ctx := context.Background()
	var schema string
	if err := db.Reader().QueryRowContext(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		t.Fatal(err)
	}
	class := hash31("kogge-singleton:" + schema)
	res, err := db.Reader().ExecContext(ctx, `SELECT pg_terminate_backend(pid) FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND objsubid = 2 AND classid::bigint = $1`, int64(class))
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("terminated %d sessions, want the leader's one", n)
	}
}

func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.Metric) > 0 {
			return mf.Metric[0].GetGauge().GetValue()
		}
	}
	return -1
}

func TestSingletonErrorReleases(t *testing.T) {
	dsn := pgtest.URL(t)
	db := openStore(t, dsn)
	e, err := New(db, Options{Logger: slog.New(slog.DiscardHandler), Poll: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	fn := e.Singleton("alerts", func(ctx context.Context) error { return errors.New("evaluator broke") })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	if err := fn(ctx); err == nil || err.Error() != "singleton alerts: evaluator broke" {
		t.Fatalf("singleton returned %v", err)
	}
	// Another process takes the lock once this one released it.
	other := openStore(t, dsn)
	var ran atomic.Bool
	rctx, rcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer rcancel()
	err = Run(rctx, other, "alerts", func(ctx context.Context) error {
		ran.Store(true)
		rcancel()
		<-ctx.Done()
		return nil
	}, Options{Logger: slog.New(slog.DiscardHandler), Poll: 50 * time.Millisecond})
	if err != nil || !ran.Load() {
		t.Errorf("the other process: %v, ran %v", err, ran.Load())
	}
	cancel()
	if err := <-done; err != nil {
		t.Error(err)
	}
}

func TestPartitionsBalance(t *testing.T) {
	dsn := pgtest.URL(t)
	rs := []*replica{
		startReplica(t, openStore(t, dsn), true, ""),
		startReplica(t, openStore(t, dsn), true, ""),
		startReplica(t, openStore(t, dsn), true, ""),
	}
	// Every partition has exactly one owner, and each holds its share.
	balanced := func(rs []*replica, share int) func() (bool, string) {
		return func() (bool, string) {
			var union uint64
			counts := []int{}
			for _, r := range rs {
				o := r.e.owned.Load()
				if union&o != 0 {
					return false, "two replicas own a partition"
				}
				union |= o
				counts = append(counts, popcount(o))
			}
			for _, c := range counts {
				if c > share {
					return false, fmt.Sprint("owned ", counts)
				}
			}
			return union == allPartitions, fmt.Sprint("owned ", counts)
		}
	}
	eventually(t, "three replicas share the partitions", 20*time.Second, balanced(rs, 22))
	// Each device is taken by exactly one replica.
	for i := range 200 {
		device := fmt.Sprintf("kiosk-%d", i)
		n := 0
		for _, r := range rs {
			if r.e.Owns(device) {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("%s is taken by %d replicas", device, n)
		}
	}
	rs[1].stop()
	eventually(t, "two replicas take over the third's partitions", 20*time.Second, balanced([]*replica{rs[0], rs[2]}, 32))
	if g := gauge(t, rs[0].reg, "kogge_cluster_partitions_owned"); g != 32 {
		t.Errorf("kogge_cluster_partitions_owned = %v, want 32", g)
	}
}

func TestPartitionSpread(t *testing.T) {
	counts := make([]int, Partitions)
	for i := range 6400 {
		counts[Partition(fmt.Sprintf("kiosk-%05d", i))]++
	}
	for p, c := range counts {
		if c < 50 || c > 150 {
			t.Errorf("partition %d holds %d of 6400 devices; the hash spreads badly", p, c)
		}
	}
}

func TestNotifierAcrossReplicas(t *testing.T) {
	dsn := pgtest.URL(t)
	otherSchema := pgtest.URL(t)
	type listener struct {
		got  chan string
		done chan error
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	listen := func(dsn string) (*Notifier, *listener) {
		n, err := NewNotifier(openStore(t, dsn), "live", slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		l := &listener{got: make(chan string, 16), done: make(chan error, 1)}
		go func() { l.done <- n.Listen(ctx, func(p []byte) { l.got <- string(p) }) }()
		return n, l
	}
	na, la := listen(dsn)
	_, lb := listen(dsn)
	_, lc := listen(otherSchema)
	// LISTEN takes effect asynchronously: send until both replicas hear.
	heard := map[*listener]bool{}
	eventually(t, "both replicas hear a notification", 20*time.Second, func() (bool, string) {
		if err := na.Notify(ctx, []byte("ping")); err != nil {
			return false, err.Error()
		}
		for _, l := range []*listener{la, lb} {
			select {
			case p := <-l.got:
				heard[l] = heard[l] || p == "ping"
			case <-time.After(50 * time.Millisecond):
			}
		}
		return heard[la] && heard[lb], fmt.Sprint(len(heard), " heard")
	})
	if err := na.Notify(ctx, []byte(`{"type":"alert","id":"a1"}`)); err != nil {
		t.Fatal(err)
	}
	for _, l := range []*listener{la, lb} {
		eventually(t, "the alert arrives", 10*time.Second, func() (bool, string) {
			select {
			case p := <-l.got:
				return p == `{"type":"alert","id":"a1"}`, p
			default:
				return false, ""
			}
		})
	}
	select {
	case p := <-lc.got:
		t.Errorf("a notifier of another schema heard %q", p)
	default:
	}
	if err := na.Notify(ctx, make([]byte, MaxPayload+1)); err == nil {
		t.Error("an oversized payload was sent")
	}
	cancel()
	for _, l := range []*listener{la, lb, lc} {
		if err := <-l.done; err != nil {
			t.Error(err)
		}
	}
}
