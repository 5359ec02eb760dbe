package bridge

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kogge-fleet/kogge/fleet-server/delivery"
	"github.com/kogge-fleet/kogge/protocol"
	"github.com/kogge-fleet/kogge/protocol/casefile"
	"github.com/kogge-fleet/kogge/protocol/seal"
)

// Options are the settings of a Runner. Office is required; everything else
// has a default.
type Options struct {
	// Office is the office whose deliveries the runner leases; it must be
	// the office of the keyring.
	Office string
	Logger *slog.Logger
	// Registerer receives the runner's metrics (labelled with the office);
	// nil registers none.
	Registerer prometheus.Registerer
	// Concurrency bounds the deliveries in flight; default 4.
	Concurrency int
	// Visibility is the lease time asked for; a delivery must finish
	// within it. Default 5 min.
	Visibility time.Duration
	// DeliverTimeout bounds one connector call; default 2 min. The call
	// also ends 5 % of the visibility before the lease does.
	DeliverTimeout time.Duration
	// CallTimeout bounds one call to the source (lease, blob, ack, fail,
	// update); default 30 s.
	CallTimeout time.Duration
	// IdleWait is how long the runner waits after an empty lease before
	// it leases again; default 1 s.
	IdleWait time.Duration
	// ErrorBackoff is the first wait after a failed lease; it doubles up
	// to 30 s while leasing keeps failing. Default 500 ms.
	ErrorBackoff time.Duration
	// DrainTimeout bounds the drain after Run's context ends; default 30 s.
	DrainTimeout time.Duration
	// PollInterval is how often a StatusPoller connector is polled;
	// default 1 min.
	PollInterval time.Duration
	// AckAttempts is how often an ack or fail is tried before the runner
	// leaves the record to its lease's expiry; default 5.
	AckAttempts int
	// Clock returns the current time; default time.Now.
	Clock func() time.Time
}

// Defaults of Options.
const (
	DefaultConcurrency    = 4
	DefaultVisibility     = 5 * time.Minute
	DefaultDeliverTimeout = 2 * time.Minute
	DefaultCallTimeout    = 30 * time.Second
	DefaultIdleWait       = time.Second
	DefaultErrorBackoff   = 500 * time.Millisecond
	DefaultDrainTimeout   = 30 * time.Second
	DefaultPollInterval   = time.Minute
	DefaultAckAttempts    = 5
	maxErrorBackoff       = 30 * time.Second
)

func (o *Options) setDefaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Concurrency == 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.Visibility == 0 {
		o.Visibility = DefaultVisibility
	}
	if o.DeliverTimeout == 0 {
		o.DeliverTimeout = DefaultDeliverTimeout
	}
	if o.CallTimeout == 0 {
		o.CallTimeout = DefaultCallTimeout
	}
	if o.IdleWait == 0 {
		o.IdleWait = DefaultIdleWait
	}
	if o.ErrorBackoff == 0 {
		o.ErrorBackoff = DefaultErrorBackoff
	}
	if o.DrainTimeout == 0 {
		o.DrainTimeout = DefaultDrainTimeout
	}
	if o.PollInterval == 0 {
		o.PollInterval = DefaultPollInterval
	}
	if o.AckAttempts == 0 {
		o.AckAttempts = DefaultAckAttempts
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
}

// Validate checks the options after defaults are applied.
func (o *Options) Validate() error {
	switch {
	case o.Office == "":
		return errors.New("bridge: the office is not set")
	case o.Concurrency < 1 || o.Concurrency > 256:
		return fmt.Errorf("bridge: concurrency %d, must be 1 to 256", o.Concurrency)
	case o.Visibility < time.Second:
		return fmt.Errorf("bridge: lease visibility %v, must be at least 1s", o.Visibility)
	case o.DeliverTimeout <= 0 || o.CallTimeout <= 0 || o.IdleWait <= 0 || o.ErrorBackoff <= 0 ||
		o.DrainTimeout <= 0 || o.PollInterval <= 0:
		return errors.New("bridge: timeouts and intervals must be positive")
	case o.AckAttempts < 1:
		return fmt.Errorf("bridge: ack attempts %d, must be 1 or more", o.AckAttempts)
	}
	return nil
}

// Runner is one office's bridge loop.
type Runner struct {
	src  Source
	keys *seal.Keyring
	conn Connector
	opts Options
	log  *slog.Logger
	m    *metrics

	running atomic.Bool
	limiter errorLimiter
}

// New returns a runner that leases opts.Office's deliveries from src, opens
// them with keys and delivers them through conn.
func New(src Source, keys *seal.Keyring, conn Connector, opts Options) (*Runner, error) {
	if src == nil || keys == nil || conn == nil {
		return nil, errors.New("bridge: source, keyring and connector are required")
	}
	opts.setDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	m, err := newMetrics(opts.Registerer, opts.Office)
	if err != nil {
		return nil, err
	}
	return &Runner{
		src: src, keys: keys, conn: conn, opts: opts, m: m,
		log: opts.Logger.With("office", opts.Office),
	}, nil
}

// Stats are the runner's counters since New.
type Stats struct {
	Acked     uint64 // delivered and acknowledged
	Failed    uint64 // failed, to be retried by the queue
	Dead      uint64 // failed permanently
	LeaseLost uint64 // delivered, but the ack found the lease taken over
	Abandoned uint64 // neither acked nor failed (source unreachable, drain timeout); the lease expires
	Updates   uint64 // status changes reported
}

// Stats returns the runner's counters.
func (r *Runner) Stats() Stats {
	return Stats{
		Acked: r.m.nAcked.Load(), Failed: r.m.nFailed.Load(), Dead: r.m.nDead.Load(),
		LeaseLost: r.m.nLeaseLost.Load(), Abandoned: r.m.nAbandoned.Load(), Updates: r.m.nUpdates.Load(),
	}
}

// Run leases and delivers until ctx ends, then drains the deliveries in
// flight and returns nil. It returns an error only when called twice.
func (r *Runner) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return errors.New("bridge: Run called twice")
	}
	// Deliveries in flight run on a context that outlives ctx by the
	// drain, so that a shutdown finishes them instead of cutting them off.
	work, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWork()

	var wg sync.WaitGroup
	if p, ok := r.conn.(StatusPoller); ok {
		wg.Go(func() { r.pollLoop(ctx, p) })
	}
	slots := make(chan struct{}, r.opts.Concurrency)
	backoff := r.opts.ErrorBackoff
	r.log.Info("bridge started", "concurrency", r.opts.Concurrency, "visibility", r.opts.Visibility)
	for ctx.Err() == nil {
		// Take one slot (waiting for it), then every other free one.
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			continue
		}
		free := 1
	more:
		for free < r.opts.Concurrency {
			select {
			case slots <- struct{}{}:
				free++
			default:
				break more
			}
		}
		ds, err := r.lease(ctx, free)
		for range free - len(ds) {
			<-slots
		}
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			r.m.leaseErrors.Inc()
			if r.limiter.allow(err.Error(), r.opts.Clock()) {
				r.log.Warn("cannot lease deliveries; retrying", "err", err, "retry_in", backoff)
			}
			wait(ctx, jitter(backoff))
			backoff = min(2*backoff, maxErrorBackoff)
			continue
		}
		backoff = r.opts.ErrorBackoff
		for _, d := range ds {
			r.m.inFlight.Inc()
			wg.Go(func() {
				defer func() { <-slots; r.m.inFlight.Dec() }()
				r.handle(work, d)
			})
		}
		if len(ds) == 0 {
			wait(ctx, r.opts.IdleWait)
		}
	}

	drained := make(chan struct{})
	go func() { wg.Wait(); close(drained) }()
	timer := time.NewTimer(r.opts.DrainTimeout)
	defer timer.Stop()
	select {
	case <-drained:
	case <-timer.C:
		r.log.Warn("drain timeout: cancelling deliveries in flight; their leases expire and they are delivered again",
			"drain_timeout", r.opts.DrainTimeout)
		stopWork()
		<-drained
	}
	r.log.Info("bridge stopped")
	return nil
}

func (r *Runner) lease(ctx context.Context, n int) ([]Delivery, error) {
	cctx, cancel := context.WithTimeout(ctx, r.opts.CallTimeout)
	defer cancel()
	ds, err := r.src.Lease(cctx, r.opts.Office, n, r.opts.Visibility)
	if err != nil {
		return nil, fmt.Errorf("lease: %w", err)
	}
	if len(ds) > n {
		// A source that hands out more than asked breaks the bound; the
		// extra leases expire and are handed out again.
		r.log.Warn("source leased more deliveries than asked for; ignoring the rest", "asked", n, "got", len(ds))
		ds = ds[:n]
	}
	return ds, nil
}

// outcome is how one delivery ended.
type outcome struct {
	receipt   Receipt
	err       error
	permanent bool
}

// handle delivers one leased record and reports the result.
func (r *Runner) handle(ctx context.Context, d Delivery) {
	start := r.opts.Clock()
	log := r.log.With("record", d.ID, "kind", d.Kind, "attempt", d.Attempt)
	c, res := r.open(ctx, d)
	if res.err == nil {
		res = r.deliver(ctx, d, c)
	}
	if c != nil {
		c.wipe()
	}
	if ctx.Err() != nil && res.err != nil {
		// Cancelled at the drain timeout: the lease expires and the
		// record is delivered again.
		r.m.count(outcomeAbandoned)
		log.Warn("delivery abandoned at shutdown; it is delivered again after its lease", "err", res.err)
		return
	}
	if res.err != nil {
		reason := reasonText(res.err)
		err := r.retry(ctx, func(cctx context.Context) error {
			return r.src.Fail(cctx, d.ID, d.Attempt, reason, res.permanent)
		})
		switch {
		case errors.Is(err, ErrLeaseLost):
			r.m.count(outcomeLeaseLost)
			log.Info("delivery failed, and its lease was taken over meanwhile", "reason", reason)
		case err != nil:
			r.m.count(outcomeAbandoned)
			log.Error("cannot report a failed delivery; it is delivered again after its lease", "reason", reason, "err", err)
		case res.permanent:
			r.m.count(outcomeDead)
			log.Warn("delivery failed permanently; it is a dead letter now", "reason", reason)
		default:
			r.m.count(outcomeFailed)
			log.Info("delivery failed; the queue retries it", "reason", reason)
		}
		return
	}
	rc := Receipt{Reference: clip(res.receipt.Reference), Note: clip(res.receipt.Note)}
	err := r.retry(ctx, func(cctx context.Context) error { return r.src.Ack(cctx, d.ID, d.Attempt, rc) })
	switch {
	case errors.Is(err, ErrLeaseLost):
		r.m.count(outcomeLeaseLost)
		log.Info("delivered, but the lease was taken over meanwhile; the other lease acks it", "reference", rc.Reference)
	case err != nil:
		r.m.count(outcomeAbandoned)
		log.Error("delivered, but the ack failed; the record is delivered again (idempotently) after its lease",
			"reference", rc.Reference, "err", err)
	default:
		r.m.count(outcomeAcked)
		r.m.seconds.Observe(r.opts.Clock().Sub(start).Seconds())
		log.Debug("delivered", "reference", rc.Reference)
	}
}

// open opens the body and the blobs of d and decodes the document.
func (r *Runner) open(ctx context.Context, d Delivery) (*Case, outcome) {
	perm := func(format string, args ...any) outcome {
		return outcome{err: fmt.Errorf(format, args...), permanent: true}
	}
	if d.Office != "" && d.Office != r.opts.Office {
		return nil, perm("record is for office %q, this bridge serves %q", d.Office, r.opts.Office)
	}
	if d.KeyID == "" {
		return nil, perm("record names no office key: it cannot have been sealed for this office")
	}
	body, err := r.keys.Open(d.KeyID, d.Sealed)
	switch {
	case errors.Is(err, seal.ErrUnknownKey):
		return nil, perm("sealed for office key %q, which this bridge does not hold: add the key to the bridge, then replay the dead letter", d.KeyID)
	case errors.Is(err, seal.ErrRetired):
		return nil, perm("sealed for office key %q, which the office has retired", d.KeyID)
	case err != nil:
		return nil, perm("sealed body does not open with office key %q: damaged, or sealed for another key", d.KeyID)
	}
	c := &Case{
		ID: d.ID, Attempt: d.Attempt, Device: d.Device, Seq: d.Seq, Kind: d.Kind, Office: d.Office,
		KeyID: d.KeyID, CreatedAt: d.CreatedAt, Meta: d.Meta, Body: body,
	}
	for _, ref := range d.Blobs {
		data, res := r.openBlob(ctx, d, ref)
		if res.err != nil {
			return c, res
		}
		c.Blobs = append(c.Blobs, Blob{Ref: ref, Data: data})
	}
	if _, known := casefile.New(d.Kind); known {
		doc, err := casefile.Decode(d.Kind, body)
		if err != nil {
			return c, perm("body is not a valid %s document: %v", d.Kind, err)
		}
		for _, id := range doc.Blobs() {
			if _, ok := c.Blob(id); !ok {
				return c, perm("the document names blob %v, which the record does not carry", id)
			}
		}
		c.Doc = doc
	}
	return c, outcome{}
}

func (r *Runner) openBlob(ctx context.Context, d Delivery, ref protocol.BlobRef) ([]byte, outcome) {
	if ref.Size > seal.MaxPlaintext+seal.MaxPlaintext/1024+1024 {
		return nil, outcome{err: fmt.Errorf("blob %v (%s) has %d bytes, more than this bridge opens", ref.ID, ref.Role, ref.Size), permanent: true}
	}
	var buf bytes.Buffer
	buf.Grow(int(ref.Size))
	w := &limitWriter{w: &buf, n: int64(ref.Size) + 1}
	cctx, cancel := context.WithTimeout(ctx, r.opts.CallTimeout)
	err := r.src.Blob(cctx, d.ID, ref.ID, w)
	cancel()
	switch {
	case w.n <= 0:
		return nil, outcome{err: fmt.Errorf("blob %v (%s) is longer than the %d bytes the record says: damaged on the server",
			ref.ID, ref.Role, ref.Size), permanent: true}
	case err != nil:
		return nil, outcome{err: fmt.Errorf("fetch blob %v (%s): %w", ref.ID, ref.Role, err), permanent: errors.Is(err, ErrNotFound)}
	}
	if uint64(buf.Len()) != ref.Size {
		return nil, outcome{err: fmt.Errorf("blob %v (%s) has %d bytes, the record says %d: damaged on the server",
			ref.ID, ref.Role, buf.Len(), ref.Size), permanent: true}
	}
	if protocol.Sum(sha256.Sum256(buf.Bytes())) != ref.SHA256 {
		return nil, outcome{err: fmt.Errorf("blob %v (%s) does not match its SHA-256: damaged on the server", ref.ID, ref.Role), permanent: true}
	}
	data, err := r.keys.Open(d.KeyID, buf.Bytes())
	if err != nil {
		return nil, outcome{err: fmt.Errorf("blob %v (%s) does not open with office key %q", ref.ID, ref.Role, d.KeyID), permanent: true}
	}
	return data, outcome{}
}

// deliver calls the connector within the lease.
func (r *Runner) deliver(ctx context.Context, d Delivery, c *Case) outcome {
	timeout := r.opts.DeliverTimeout
	if !d.LeasedUntil.IsZero() {
		left := d.LeasedUntil.Sub(r.opts.Clock()) - r.opts.Visibility/20
		timeout = min(timeout, max(left, time.Second))
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	rc, err := r.conn.Deliver(cctx, c)
	if err != nil {
		return outcome{err: err, permanent: errors.Is(err, ErrPermanent)}
	}
	if strings.TrimSpace(rc.Reference) == "" {
		// The queue acks only with a reference; the connector's procedure
		// gave none. Retrying is harmless (the connector is idempotent)
		// and may get one; if not, the record ends as a dead letter.
		return outcome{err: errors.New("the procedure accepted the case but gave no reference number")}
	}
	return outcome{receipt: rc}
}

// retry runs a call to the source up to AckAttempts times with backoff,
// stopping at errors that another try cannot change: ErrLeaseLost,
// ErrNotFound, and a refused argument (delivery.ErrInvalid).
func (r *Runner) retry(ctx context.Context, call func(context.Context) error) error {
	backoff := r.opts.ErrorBackoff
	var err error
	for i := range r.opts.AckAttempts {
		if i > 0 {
			if !wait(ctx, jitter(backoff)) {
				return err
			}
			backoff = min(2*backoff, maxErrorBackoff)
		}
		cctx, cancel := context.WithTimeout(ctx, r.opts.CallTimeout)
		err = call(cctx)
		cancel()
		if err == nil || errors.Is(err, ErrLeaseLost) || errors.Is(err, ErrNotFound) || errors.Is(err, delivery.ErrInvalid) {
			return err
		}
	}
	return err
}

// pollLoop polls a StatusPoller until ctx ends.
func (r *Runner) pollLoop(ctx context.Context, p StatusPoller) {
	t := time.NewTicker(r.opts.PollInterval)
	defer t.Stop()
	for {
		err := p.PollStatus(ctx, func(ch StatusChange) error {
			err := r.retry(ctx, func(cctx context.Context) error {
				return r.src.Update(cctx, ch.ID, ch.State, clip(ch.Reference), clip(ch.Note))
			})
			if err == nil {
				r.m.nUpdates.Add(1)
				r.m.updates.Inc()
			}
			return err
		})
		if err != nil && ctx.Err() == nil && r.limiter.allow("poll "+err.Error(), r.opts.Clock()) {
			r.log.Warn("status poll failed; polling again later", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// wait waits for d or until ctx ends; it reports whether d passed.
func wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// jitter returns d ± 25 %.
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return d
	}
	return d*3/4 + rand.N(d/2+1)
}

// reasonText turns an error into a failure reason: valid UTF-8 within the
// protocol's text limit.
func reasonText(err error) string { return clip(err.Error()) }

func clip(s string) string {
	if len(s) <= protocol.MaxTextLen {
		return s
	}
	s = s[:protocol.MaxTextLen-3]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}

// limitWriter fails once more than n bytes are written, so that a blob
// larger than its reference says is not read to its end.
type limitWriter struct {
	w io.Writer
	n int64
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > l.n {
		n, _ := l.w.Write(p[:l.n])
		l.n -= int64(n)
		return n, errBlobTooLong
	}
	n, err := l.w.Write(p)
	l.n -= int64(n)
	return n, err
}

var errBlobTooLong = errors.New("blob is longer than its reference says")

// errorLimiter lets the same error message through once a minute.
type errorLimiter struct {
	mu   sync.Mutex
	last map[string]time.Time
}

func (l *errorLimiter) allow(msg string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last == nil {
		l.last = map[string]time.Time{}
	}
	if t, ok := l.last[msg]; ok && now.Sub(t) < time.Minute {
		return false
	}
	if len(l.last) > 64 {
		clear(l.last)
	}
	l.last[msg] = now
	return true
}
