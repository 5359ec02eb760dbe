// Package leader coordinates the replicas of a fleet server that share one
// PostgreSQL database: it elects the replica that runs each singleton (the
// retention sweeper, the alert evaluator, the rollout scheduler), splits the
// devices' ingest among the replicas in partitions, and fans messages out to
// every replica through LISTEN/NOTIFY.
//
// # Advisory locks on a dedicated connection
//
// An [Elector] takes one connection out of the store's pool and keeps it for
// as long as it runs. Leadership is a session-level advisory lock on that
// connection (pg_try_advisory_lock): PostgreSQL releases it when the session
// ends, so a replica that dies or loses its connection loses every lock it
// held, and nothing else has to expire. The elector asks for the locks it
// lacks every Options.Poll (1 s) and checks its connection with a query each
// time; when the check fails it stops its singletons, closes the connection
// for good (so that a session that is merely slow cannot keep the locks) and
// starts again with a new one.
//
// Takeover time. After a replica is killed (SIGKILL, OOM, crash) its host's
// kernel closes the socket, the session ends at once, and a survivor takes
// the singletons at its next poll: within Options.Poll plus one query. When a
// whole host or its network goes away, PostgreSQL notices the dead session
// through TCP keepalives, which the elector sets on its session to 5 s idle,
// 2 s interval, 3 probes: the locks are free after about 11 s, and a
// survivor holds them within 11 s + Options.Poll. The cut-off replica stops
// its singletons when its own check fails, within Options.Poll +
// Options.CheckTimeout (3 s with the defaults), that is before anybody else
// can take over. Singletons must still tolerate a short overlap (a query
// that was already running when the connection broke finishes on the
// server); the ones in Kogge are idempotent.
//
// Lock keys are the two-integer form: a class for the kind of lock (member,
// singleton, partition) derived from the schema the store uses, so that
// several fleets (or test schemas) in one database never share a lock, and
// an object (the singleton's name hashed, or the partition number).
//
// # SQLite
//
// With SQLite there is one process: singletons just run, every partition is
// owned, and notifications are delivered in the process.
//
// # Metrics
//
// With Options.Registerer: kogge_cluster_leader{singleton} (1 on the replica
// that runs it), kogge_cluster_replicas (replicas seen holding their member
// lock), kogge_cluster_partitions_owned, kogge_cluster_connection_losses_total.
package leader

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kogge-fleet/kogge/fleet-server/store"
)

// Options are the optional settings of an Elector.
type Options struct {
	// Logger receives elections, losses and errors.
	Logger *slog.Logger
	// Registerer receives the metrics; nil registers none.
	Registerer prometheus.Registerer
	// Poll is how often the elector checks its connection and asks for
	// the locks it lacks; default 1 s.
	Poll time.Duration
	// CheckTimeout bounds the connection check; default 2 s.
	CheckTimeout time.Duration
	// Partitions makes the elector take a share of the ingest partitions
	// (see Partitions); off by default.
	Partitions bool
}

func (o *Options) defaults() {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Poll == 0 {
		o.Poll = time.Second
	}
	if o.CheckTimeout == 0 {
		o.CheckTimeout = 2 * time.Second
	}
}

// Validate checks the options after defaults are filled in.
func (o *Options) Validate() error {
	if o.Poll < 10*time.Millisecond || o.CheckTimeout < 10*time.Millisecond {
		return fmt.Errorf("leader poll %v and check timeout %v must be at least 10ms", o.Poll, o.CheckTimeout)
	}
	return nil
}

// Elector holds this replica's advisory locks on one dedicated connection.
// Register singletons with Singleton, then call Run.
type Elector struct {
	db   *store.DB
	opts Options
	log  *slog.Logger
	m    *metrics

	mu      sync.Mutex
	singles map[string]*single
	running bool

	// owned is the bitmap of the partitions held (all with SQLite).
	owned   atomic.Uint64
	members atomic.Int32
}

// single is one registered singleton. The elector's loop grants and
// revokes it; the Singleton wrapper runs fn while granted.
type single struct {
	name string
	key  int32
	// wants is true while the wrapper is waiting for or running fn.
	wants atomic.Bool

	mu     sync.Mutex
	leader bool
	// grant is closed when leadership is granted; lost when it is lost.
	grant chan struct{}
	lost  chan struct{}
}

// New returns an elector over db. Run starts it.
func New(db *store.DB, opts Options) (*Elector, error) {
	opts.defaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if db == nil {
		return nil, errors.New("leader: no store")
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	e := &Elector{db: db, opts: opts, log: opts.Logger, m: m, singles: map[string]*single{}}
	if db.Dialect() != store.Postgres {
		e.owned.Store(allPartitions)
		e.members.Store(1)
		m.partitions.Set(Partitions)
	}
	return e, nil
}

// Singleton returns fn wrapped so that it runs only while this replica is
// the leader for name: the returned function waits until it is elected,
// runs fn with a context that ends when leadership is lost (or ctx ends),
// and waits again after a loss. It returns nil when ctx ends, and fn's
// error when fn fails while it leads (the lock is released first). With
// SQLite it is fn itself. Call Singleton before Run, once per name.
func (e *Elector) Singleton(name string, fn func(ctx context.Context) error) func(ctx context.Context) error {
	if e.db.Dialect() != store.Postgres {
		return fn
	}
	s := &single{name: name, key: hash31(name), grant: make(chan struct{}), lost: make(chan struct{})}
	e.mu.Lock()
	if _, dup := e.singles[name]; dup {
		e.mu.Unlock()
		return func(context.Context) error { return fmt.Errorf("leader: singleton %q registered twice", name) }
	}
	e.singles[name] = s
	e.mu.Unlock()
	e.m.leader.WithLabelValues(name).Set(0)
	return func(ctx context.Context) error {
		s.wants.Store(true)
		defer s.wants.Store(false)
		for {
			s.mu.Lock()
			grant := s.grant
			s.mu.Unlock()
			select {
			case <-ctx.Done():
				return nil
			case <-grant:
			}
			s.mu.Lock()
			lost := s.lost
			s.mu.Unlock()
			lctx, cancel := context.WithCancel(ctx)
			go func() {
				select {
				case <-lost:
					cancel()
				case <-lctx.Done():
				}
			}()
			e.log.Info("leading singleton", "singleton", name)
			err := fn(lctx)
			lostNow := lctx.Err() != nil && ctx.Err() == nil
			cancel()
			switch {
			case ctx.Err() != nil:
				return nil
			case lostNow:
				e.log.Warn("singleton stopped: leadership lost", "singleton", name)
				continue
			case err != nil:
				return fmt.Errorf("singleton %s: %w", name, err)
			default:
				return fmt.Errorf("singleton %s stopped unexpectedly", name)
			}
		}
	}
}

// IsLeader reports whether this replica leads the singleton name (always
// true with SQLite).
func (e *Elector) IsLeader(name string) bool {
	if e.db.Dialect() != store.Postgres {
		return true
	}
	e.mu.Lock()
	s := e.singles[name]
	e.mu.Unlock()
	if s == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.leader
}

// Replicas returns how many replicas held their member lock at the last
// poll, this one included (1 with SQLite; 0 before the first poll).
func (e *Elector) Replicas() int { return int(e.members.Load()) }

// Run keeps the elector's connection and locks until ctx ends; then it
// stops the singletons' leadership, releases the locks and returns nil.
// With SQLite it only waits for ctx.
func (e *Elector) Run(ctx context.Context) error {
	e.mu.Lock()
	if e.running {
		e.mu.Unlock()
		return errors.New("leader: Run called twice")
	}
	e.running = true
	e.mu.Unlock()
	if e.db.Dialect() != store.Postgres {
		<-ctx.Done()
		return nil
	}
	t := time.NewTicker(e.opts.Poll)
	defer t.Stop()
	var s *session
	defer func() {
		if s != nil {
			e.lose(s, "stopping")
		}
	}()
	failures := 0
	for {
		if s == nil {
			var err error
			if s, err = e.open(ctx); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				failures++
				if failures == 1 || failures%30 == 0 {
					e.log.Warn("leader: no database connection for the locks; retrying", "err", err, "attempts", failures)
				}
			} else {
				failures = 0
			}
		}
		if s != nil {
			if err := e.poll(ctx, s); err != nil && ctx.Err() == nil {
				e.m.losses.Inc()
				e.log.Warn("leader: lock connection lost; this replica gives up its singletons and partitions", "err", err)
				e.lose(s, "connection lost")
				s = nil
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// session is the dedicated connection with what it holds.
type session struct {
	conn   *sql.Conn
	schema string
	// classes of the lock keys
	memberClass, singleClass, partClass int32
	member                              int32
	parts                               uint64
}

// open takes a connection out of the pool for the locks, sets keepalives,
// and takes a member lock.
func (e *Elector) open(ctx context.Context) (*session, error) {
	cctx, cancel := context.WithTimeout(ctx, e.opts.CheckTimeout+5*time.Second)
	defer cancel()
	conn, err := e.db.Reader().Conn(cctx)
	if err != nil {
		return nil, fmt.Errorf("take a connection: %w", err)
	}
	s := &session{conn: conn}
	ok := false
	defer func() {
		if !ok {
			discard(conn)
		}
	}()
	if err := prepareSession(cctx, conn); err != nil {
		return nil, err
	}
	if err := conn.QueryRowContext(cctx, `SELECT current_schema()`).Scan(&s.schema); err != nil {
		return nil, fmt.Errorf("read the schema: %w", err)
	}
	s.memberClass = hash31("kogge-member:" + s.schema)
	s.singleClass = hash31("kogge-singleton:" + s.schema)
	s.partClass = hash31("kogge-partition:" + s.schema)
	for range 10 {
		id := rand.Int32()
		var got bool
		if err := conn.QueryRowContext(cctx, `SELECT pg_try_advisory_lock($1, $2)`, s.memberClass, id).Scan(&got); err != nil {
			return nil, fmt.Errorf("take the member lock: %w", err)
		}
		if got {
			s.member = id
			ok = true
			return s, nil
		}
	}
	return nil, errors.New("take the member lock: no free member id after 10 tries")
}

// prepareSession sets TCP keepalives on the session, so that PostgreSQL
// notices a vanished replica (and frees its locks) within about 11 s.
func prepareSession(ctx context.Context, conn *sql.Conn) error {
	for _, q := range []string{
		`SET tcp_keepalives_idle = 5`, `SET tcp_keepalives_interval = 2`, `SET tcp_keepalives_count = 3`,
	} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("prepare the lock session (%s): %w", q, err)
		}
	}
	return nil
}

// discard closes a dedicated connection for good instead of returning it
// to the pool, where its session (and any lock it still holds) would live
// on.
func discard(conn *sql.Conn) {
	_ = conn.Raw(func(dc any) error {
		if c, ok := dc.(interface{ Close() error }); ok {
			_ = c.Close()
		}
		return driver.ErrBadConn
	})
	_ = conn.Close()
}

// poll checks the connection, updates the singletons and the partitions.
func (e *Elector) poll(ctx context.Context, s *session) error {
	cctx, cancel := context.WithTimeout(ctx, e.opts.CheckTimeout)
	defer cancel()
	if err := s.conn.PingContext(cctx); err != nil {
		return fmt.Errorf("check: %w", err)
	}
	e.mu.Lock()
	singles := make([]*single, 0, len(e.singles))
	for _, x := range e.singles {
		singles = append(singles, x)
	}
	e.mu.Unlock()
	for _, x := range singles {
		x.mu.Lock()
		leader := x.leader
		x.mu.Unlock()
		switch {
		case !leader && x.wants.Load():
			var got bool
			if err := s.conn.QueryRowContext(cctx, `SELECT pg_try_advisory_lock($1, $2)`, s.singleClass, x.key).Scan(&got); err != nil {
				return fmt.Errorf("ask for singleton %s: %w", x.name, err)
			}
			if got {
				e.elected(x)
			}
		case leader && !x.wants.Load():
			// The wrapper returned (its fn failed, or ctx ended): free
			// the lock for another replica.
			if _, err := s.conn.ExecContext(cctx, `SELECT pg_advisory_unlock($1, $2)`, s.singleClass, x.key); err != nil {
				return fmt.Errorf("release singleton %s: %w", x.name, err)
			}
			e.deposed(x, "released")
		}
	}
	members, err := e.countMembers(cctx, s)
	if err != nil {
		return err
	}
	e.members.Store(int32(members))
	e.m.members.Set(float64(members))
	if e.opts.Partitions {
		if err := e.balance(cctx, s, members); err != nil {
			return err
		}
	}
	return nil
}

func (e *Elector) countMembers(ctx context.Context, s *session) (int, error) {
	var n int
	err := s.conn.QueryRowContext(ctx, `SELECT count(DISTINCT pid) FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND objsubid = 2 AND classid::bigint = $1
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`, int64(s.memberClass)).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count replicas: %w", err)
	}
	return max(n, 1), nil
}

// elected grants leadership of x.
func (e *Elector) elected(x *single) {
	x.mu.Lock()
	x.leader = true
	close(x.grant)
	x.lost = make(chan struct{})
	x.mu.Unlock()
	e.m.leader.WithLabelValues(x.name).Set(1)
	e.log.Info("elected leader", "singleton", x.name)
}

// deposed takes leadership of x away.
func (e *Elector) deposed(x *single, why string) {
	x.mu.Lock()
	if !x.leader {
		x.mu.Unlock()
		return
	}
	x.leader = false
	close(x.lost)
	x.grant = make(chan struct{})
	x.mu.Unlock()
	e.m.leader.WithLabelValues(x.name).Set(0)
	e.log.Info("no longer leader", "singleton", x.name, "reason", why)
}

// lose gives up everything s held and closes its connection.
func (e *Elector) lose(s *session, why string) {
	e.mu.Lock()
	singles := make([]*single, 0, len(e.singles))
	for _, x := range e.singles {
		singles = append(singles, x)
	}
	e.mu.Unlock()
	for _, x := range singles {
		e.deposed(x, why)
	}
	if e.opts.Partitions && s.parts != 0 {
		e.log.Info("released ingest partitions", "partitions", popcount(s.parts), "reason", why)
	}
	s.parts = 0
	e.owned.Store(0)
	e.m.partitions.Set(0)
	discard(s.conn)
}

// hash31 maps a name to a non-negative 31-bit lock key.
func hash31(name string) int32 {
	h := fnv.New32a()
	h.Write([]byte(name))
	return int32(h.Sum32() & 0x7fffffff)
}

type metrics struct {
	leader     *prometheus.GaugeVec
	members    prometheus.Gauge
	partitions prometheus.Gauge
	losses     prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		leader: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kogge_cluster_leader",
			Help: "1 while this replica runs the singleton."}, []string{"singleton"}),
		members: prometheus.NewGauge(prometheus.GaugeOpts{Name: "kogge_cluster_replicas",
			Help: "Replicas holding their member lock at the last poll, this one included."}),
		partitions: prometheus.NewGauge(prometheus.GaugeOpts{Name: "kogge_cluster_partitions_owned",
			Help: "Ingest partitions this replica holds (of 64)."}),
		losses: prometheus.NewCounter(prometheus.CounterOpts{Name: "kogge_cluster_connection_losses_total",
			Help: "Times the lock connection failed and every lock was given up."}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.leader, m.members, m.partitions, m.losses} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("leader metrics: %w", err)
			}
		}
	}
	return m, nil
}

// Run runs fn while this process leads name among every process that runs
// it on the same database (a convenience for one singleton: it holds a
// connection of its own; several singletons of one replica are better
// served by one Elector). It returns as Elector.Singleton's wrapper does.
func Run(ctx context.Context, db *store.DB, name string, fn func(ctx context.Context) error, opts Options) error {
	e, err := New(db, opts)
	if err != nil {
		return err
	}
	wrapped := e.Singleton(name, fn)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = e.Run(ctx)
	}()
	err = wrapped(ctx)
	cancel()
	<-done
	return err
}
