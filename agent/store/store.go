package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"sync"
	"sync/atomic"
	"time"

	"github.com/kogge-fleet/kogge/protocol"
)

// Errors that callers act on.
var (
	// ErrFull: a capture was refused because the budget or the disk is
	// used up. Nothing of it was written. The wrapping error says how full
	// the store is, in words for a person.
	ErrFull = errors.New("storage full")
	// ErrNotFound: no such record, blob or command.
	ErrNotFound = errors.New("not found")
	// ErrClosed: the store is closed.
	ErrClosed = errors.New("store closed")
)

const (
	// segmentSize is the size of one row of blob data.
	segmentSize = 64 << 10
	// vacuumThreshold is how many free pages (4 KiB each) the file may hold
	// before the writer gives them back to the file system.
	vacuumThreshold = 1024
	// vacuumStep bounds the pages one incremental vacuum gives back, so
	// that captures never wait long behind it.
	vacuumStep = 2048
	// vacuumPause is how long an idle writer waits before the next step.
	vacuumPause = 50 * time.Millisecond
	// watchBuffer is the buffer of a watcher's channel.
	watchBuffer = 256
	// readers bounds the read-only connections.
	readers = 4
)

// Store is a device's durable outbox. All its methods are safe for
// concurrent use. Open one Store per file, in one process.
type Store struct {
	path  string
	opts  Options
	log   *slog.Logger
	moved string

	wdb   *sql.DB   // the writer's pool, with its one connection
	wconn *sql.Conn // held by the writer goroutine
	lazy  bool      // wconn is at synchronous=NORMAL (writer goroutine only)
	rdb   *sql.DB   // read-only connections

	reqs    chan *op
	quit    chan struct{}
	done    chan struct{}
	closing atomic.Bool
	once    sync.Once
	err     error

	// refused is set when a capture was refused for lack of space and
	// cleared when one succeeds or space is freed.
	refused atomic.Bool

	watchMu  sync.Mutex
	watchers map[*watcher]struct{}

	// owned by the writer goroutine
	vacuumDue       bool
	vacuumThreshold int64
	vacuumStep      int64
}

// Open opens the store at path, creating it if needed. A file that is not a
// SQLite database or fails PRAGMA quick_check is moved aside (see
// MovedAside) and a fresh store is created in its place.
func Open(path string, opts Options) (*Store, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	s := &Store{
		path:            abs,
		opts:            opts,
		log:             opts.Logger.With("store", abs),
		reqs:            make(chan *op),
		quit:            make(chan struct{}),
		done:            make(chan struct{}),
		watchers:        make(map[*watcher]struct{}),
		vacuumThreshold: vacuumThreshold,
		vacuumStep:      vacuumStep,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	damage, err := checkFile(ctx, abs)
	if err != nil {
		return nil, err
	}
	if damage != "" {
		stamp := opts.Now().UTC().Format("20060102T150405Z")
		moved, err := moveAside(abs, stamp)
		if err != nil {
			return nil, fmt.Errorf("store %s is damaged (%s) and could not be moved aside: %w", abs, damage, err)
		}
		s.moved = moved
		s.log.Error("store file is damaged; moved it aside and started a fresh store",
			"damage", damage, "moved_to", moved)
	}
	if err := s.openConns(ctx); err != nil {
		s.closeConns()
		return nil, fmt.Errorf("open store %s: %w", abs, err)
	}
	go s.run()
	return s, nil
}

func (s *Store) openConns(ctx context.Context) error {
	var err error
	s.wdb, err = sql.Open("sqlite3", dsn(s.path,
		"_txlock=immediate", "_sync=FULL", "_busy_timeout=10000", "_stmt_cache_size=32"))
	if err != nil {
		return err
	}
	s.wdb.SetMaxOpenConns(1)
	s.wdb.SetMaxIdleConns(1)
	s.wdb.SetConnMaxLifetime(0)
	s.wconn, err = s.wdb.Conn(ctx)
	if err != nil {
		return err
	}
	if err := setup(ctx, s.wconn); err != nil {
		return err
	}
	s.rdb, err = sql.Open("sqlite3", dsn(s.path,
		"mode=ro", "_txlock=deferred", "_busy_timeout=10000", "_stmt_cache_size=16"))
	if err != nil {
		return err
	}
	s.rdb.SetMaxOpenConns(readers)
	s.rdb.SetMaxIdleConns(readers)
	return s.rdb.PingContext(ctx)
}

func (s *Store) closeConns() error {
	var errs []error
	if s.rdb != nil {
		errs = append(errs, s.rdb.Close())
	}
	if s.wconn != nil {
		errs = append(errs, s.wconn.Close())
	}
	if s.wdb != nil {
		errs = append(errs, s.wdb.Close())
	}
	return errors.Join(errs...)
}

// MovedAside returns where Open moved a damaged store file, or "" if it
// found none.
func (s *Store) MovedAside() string { return s.moved }

// Path returns the absolute path of the store file.
func (s *Store) Path() string { return s.path }

// Close finishes the writes already queued, stops the writer, closes the
// watchers' channels and the database. Saves that arrive later get
// ErrClosed. Close is safe to call more than once.
func (s *Store) Close() error {
	s.once.Do(func() {
		s.closing.Store(true)
		close(s.quit)
		<-s.done
		s.watchMu.Lock()
		for w := range s.watchers {
			close(w.ch)
			delete(s.watchers, w)
		}
		s.watchMu.Unlock()
		if err := s.closeConns(); err != nil {
			s.err = fmt.Errorf("close store %s: %w", s.path, err)
		}
	})
	return s.err
}

// op is one write for the writer goroutine: a capture or any other change.
type op struct {
	ctx  context.Context
	save *pendingSave
	fn   func(w *wtx) error
	// lazy marks a write that need not be on disk when it returns (see
	// changeLazy).
	lazy bool
	done chan result
}

type result struct {
	rec protocol.Record
	err error
}

// write hands o to the writer and waits for its outcome. Once the writer
// has taken o, the outcome is final: write waits for it even if ctx ends,
// so that an error always means "not written".
func (s *Store) write(ctx context.Context, o *op) result {
	if s.closing.Load() {
		return result{err: ErrClosed}
	}
	o.ctx = ctx
	o.done = make(chan result, 1)
	select {
	case s.reqs <- o:
	case <-s.quit:
		return result{err: ErrClosed}
	case <-ctx.Done():
		return result{err: ctx.Err()}
	}
	return <-o.done
}

// change runs fn in the writer's transaction.
func (s *Store) change(ctx context.Context, fn func(w *wtx) error) error {
	return s.write(ctx, &op{fn: fn}).err
}

// changeLazy runs fn in the writer's transaction, which need not wait for
// the disk: for writes that record what the server has confirmed and that
// a crash may undo without harm (the device sends again, the server
// answers that it has it). A batch of only such writes commits with
// synchronous=NORMAL, so it costs no fsync; the next durable commit
// fsyncs the write-ahead log, and these writes with it.
func (s *Store) changeLazy(ctx context.Context, fn func(w *wtx) error) error {
	return s.write(ctx, &op{fn: fn, lazy: true}).err
}

// setLazy switches the writer's connection between synchronous=NORMAL
// (lazy) and FULL, between transactions. Only the writer goroutine calls it.
func (s *Store) setLazy(lazy bool) error {
	if lazy == s.lazy {
		return nil
	}
	mode := "FULL"
	if lazy {
		mode = "NORMAL"
	}
	if _, err := s.wconn.ExecContext(context.Background(), "PRAGMA synchronous = "+mode); err != nil {
		return s.writeErr("set synchronous "+mode, err)
	}
	s.lazy = lazy
	return nil
}

// run is the writer goroutine: it owns every write. It takes one op, adds
// whatever else is already waiting (up to MaxBatch) and commits them in one
// transaction, so that concurrent saves share one fsync.
func (s *Store) run() {
	defer close(s.done)
	limit := s.opts.MaxBatch
	if s.opts.NoGroupCommit {
		limit = 1
	}
	pause := time.NewTimer(vacuumPause)
	pause.Stop()
	defer pause.Stop()
	for {
		var idle <-chan time.Time
		if s.vacuumDue {
			pause.Reset(vacuumPause)
			idle = pause.C
		}
		select {
		case o := <-s.reqs:
			s.apply(s.collect(o, limit))
			if s.vacuumDue {
				s.vacuum()
			}
		case <-idle:
			s.vacuum()
		case <-s.quit:
			for {
				batch := s.collect(nil, limit)
				if len(batch) == 0 {
					return
				}
				s.apply(batch)
			}
		}
	}
}

// collect returns first (if any) and the ops already waiting, up to limit.
func (s *Store) collect(first *op, limit int) []*op {
	var batch []*op
	if first != nil {
		batch = append(batch, first)
	}
	for len(batch) < limit {
		select {
		case o := <-s.reqs:
			batch = append(batch, o)
		default:
			return batch
		}
	}
	return batch
}

// wtx is the writer's transaction, shared by the ops of one batch.
type wtx struct {
	s      *Store
	tx     *sql.Tx
	now    time.Time
	seq    uint64 // the last sequence number assigned
	events []Entry
	freed  bool // the batch deleted data
	room   *room
}

// apply runs a batch of ops in one transaction with one commit.
//
// Other writes run each in a savepoint, so that one failing write (an
// unknown id, say) does not undo the others. Captures run without one: they
// fail only when SQLite does (I/O, a full disk), and the savepoints would
// cost a quarter of the writer's time. If a capture fails anyway, the whole
// transaction is rolled back and the batch runs again with every op in a
// savepoint, so that the failure stays the failing capture's own.
func (s *Store) apply(batch []*op) {
	results, retry := s.attempt(batch, false)
	if retry {
		results, _ = s.attempt(batch, true)
	}
	for i, o := range batch {
		o.done <- results[i]
	}
}

// attempt runs the batch in one transaction. With careful unset, it gives
// up on the first failing capture and asks to be retried with careful
// set, in which every op runs in its own savepoint. Nothing of an attempt
// that returns retry or an error for all is committed.
func (s *Store) attempt(batch []*op, careful bool) (results []result, retry bool) {
	ctx := context.Background()
	results = make([]result, len(batch))
	failAll := func(err error) ([]result, bool) {
		for i := range results {
			if results[i].err == nil {
				results[i] = result{err: err}
			}
		}
		return results, false
	}
	lazy := true
	for _, o := range batch {
		lazy = lazy && o.lazy
	}
	if err := s.setLazy(lazy); err != nil {
		return failAll(err)
	}
	tx, err := s.wconn.BeginTx(ctx, nil)
	if err != nil {
		return failAll(s.writeErr("begin transaction", err))
	}
	defer tx.Rollback()
	w := &wtx{s: s, tx: tx, now: s.opts.Now()}
	if err := tx.QueryRowContext(ctx, "SELECT value FROM counters WHERE name = 'seq'").Scan(&w.seq); err != nil {
		return failAll(s.writeErr("read sequence", err))
	}
	firstSeq := w.seq
	saved, refused := false, false
	for i, o := range batch {
		if err := o.ctx.Err(); err != nil {
			results[i].err = err
			continue
		}
		if o.save != nil {
			if err := w.reserve(o.save); err != nil {
				results[i].err = err
				refused = refused || errors.Is(err, ErrFull)
				continue
			}
		}
		if o.save != nil && !careful {
			if results[i].rec, err = w.insert(o.save); err != nil {
				return nil, true
			}
			saved = true
			continue
		}
		if _, err := tx.ExecContext(ctx, "SAVEPOINT op"); err != nil {
			return failAll(s.writeErr("savepoint", err))
		}
		mark, seq := len(w.events), w.seq
		if o.save != nil {
			results[i].rec, err = w.insert(o.save)
			saved = saved || err == nil
		} else {
			err = o.fn(w)
		}
		if err != nil {
			results[i] = result{err: err}
			w.events, w.seq = w.events[:mark], seq
			if _, rerr := tx.ExecContext(ctx, "ROLLBACK TO op"); rerr != nil {
				return failAll(s.writeErr("roll back", rerr))
			}
		}
		if _, err := tx.ExecContext(ctx, "RELEASE op"); err != nil {
			return failAll(s.writeErr("release savepoint", err))
		}
	}
	if w.seq != firstSeq {
		if _, err := tx.ExecContext(ctx, "UPDATE counters SET value = ? WHERE name = 'seq'", w.seq); err != nil {
			return failAll(s.writeErr("store sequence", err))
		}
	}
	if err := tx.Commit(); err != nil {
		return failAll(s.writeErr("commit", err))
	}
	switch {
	case saved || w.freed:
		s.refused.Store(false)
	case refused:
		s.refused.Store(true)
	}
	if w.freed {
		s.vacuumDue = true
	}
	s.publish(w.events)
	return results, false
}

// writeErr wraps an error of the writer's transaction. SQLite's "database
// or disk is full" becomes ErrFull.
func (s *Store) writeErr(what string, err error) error {
	if isDiskFull(err) {
		s.refused.Store(true)
		return fmt.Errorf("%w: the disk is full, nothing was saved (%s: %v); captures paused until space is freed", ErrFull, what, err)
	}
	return fmt.Errorf("store %s: %s: %w", s.path, what, err)
}

// vacuum gives free pages back to the file system, at most vacuumStep at a
// time. It runs in its own transaction on the writer.
func (s *Store) vacuum() {
	ctx := context.Background()
	var free int64
	if err := s.wconn.QueryRowContext(ctx, "PRAGMA freelist_count").Scan(&free); err != nil {
		s.log.Warn("could not read the store's free pages", "err", err)
		s.vacuumDue = false
		return
	}
	if free < s.vacuumThreshold {
		s.vacuumDue = false
		return
	}
	// incremental_vacuum frees one page per step: read all its rows.
	if err := drain(s.wconn.QueryContext(ctx, fmt.Sprintf("PRAGMA incremental_vacuum(%d)", s.vacuumStep))); err != nil {
		s.log.Warn("could not give free space back to the file system", "err", err)
		s.vacuumDue = false
		return
	}
	s.vacuumDue = free-s.vacuumStep >= s.vacuumThreshold
}

// drain reads and discards all rows.
func drain(rows *sql.Rows, err error) error {
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
	}
	return rows.Err()
}
