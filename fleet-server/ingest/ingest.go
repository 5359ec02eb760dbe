// Package ingest takes what devices publish (records, blob chunks, sync
// hellos, heartbeats, twin reports, command results, presence), stores it
// and acknowledges it.
//
// # Data path
//
// The ingest subscribes to protocol.UpFilter and protocol.StateFilter through
// the broker's inline client. A handler, called on the broker's goroutine,
// only checks the topic, the device's byte rate and the payload, decodes it
// and puts it on a bounded queue; it never touches the store. When the
// queue is full (by count or by bytes) the message is dropped and counted
// (kogge_ingest_rejected_total{reason="queue_full"}): the handler never
// holds up the broker for long, and a device sends everything again that it
// has not seen acknowledged, so a drop costs time, never data.
//
// One committer goroutine takes batches from the queue (up to
// Options.BatchSize messages: under load what queued up during the last
// commit, otherwise what arrives within Options.Linger of the first) from
// many devices at once, stores the whole batch in one
// transaction (group commit), and only after the commit publishes one Ack per
// device (records, chunks and command results together) and answers the
// sync hellos of the batch. A record is queued for delivery to its office
// (store.IngestTx.EnqueueDelivery, fleet-server/delivery) in the same
// transaction that stores it, or that completes its last blob.
//
// # Order and idempotence
//
// Records of a device are stored in sequence order: a record is stored only
// when its sequence is the device's contiguous high watermark plus one. A
// record at or below the watermark is answered from what is stored
// (duplicate, or rejected when its id or sequence was used otherwise); a
// record above watermark+1 is set aside unanswered, and the device's
// retransmission, oldest first, fills the gap. Refused records (by the
// Validator, or unreadable but nameable) keep their place in the sequence,
// so the device's later records proceed. The watermark lives in the store
// (device_sync) and is cached here; every change is a compare-and-set in the
// batch's transaction, and a failed one (another replica moved it) rolls
// the batch back, forgets the cached watermarks and runs it again.
//
// Every SyncState carries the watermark (Stored). A hello whose highest lies
// below it comes from a device that lost its store and numbers from 1 again:
// its answer names nothing missing, so the device marks nothing stored, and
// the device renumbers its unsent records above the watermark and says hello
// again. Otherwise a hello's lowest moves the watermark past sequences the
// device wiped.
//
// A blob arrives chunk by chunk and is stored only at the offset up to which
// it is complete; its last chunk triggers a check of the whole blob's SHA-256
// over the stored chunks. A mismatch rejects that chunk and resets the blob
// to offset 0.
//
// # Bad input
//
// Everything refused is counted by reason in kogge_ingest_rejected_total,
// answered with a rejection where a record or chunk can be named, and logged
// at a limited rate. One device's bad input never stops the others: a batch
// whose transaction fails is retried device by device.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/fxamacker/cbor/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kogge-fleet/kogge/fleet-server/store"
	"github.com/kogge-fleet/kogge/protocol"
)

// Broker is the part of the MQTT broker the ingest uses: the embedded
// broker's inline client, or a client of an external broker.
type Broker interface {
	// Subscribe calls handler for every message on a topic matching filter.
	Subscribe(filter string, handler func(topic string, payload []byte)) error
	// Publish sends payload on topic (QoS 1).
	Publish(topic string, payload []byte, retained bool) error
}

// Validator decides whether the server accepts a record, for example
// whether it knows its kind and office. A non-nil error refuses the record;
// its text is the reason the device receives. It runs on the committer
// goroutine inside the batch's transaction, so it must be quick and must not
// touch the store.
type Validator func(device string, r *protocol.Record) error

// Options are the optional settings of the ingest.
type Options struct {
	Logger *slog.Logger
	// Registerer receives the ingest's metrics; nil registers none.
	Registerer prometheus.Registerer
	// Clock returns the current time; default time.Now.
	Clock func() time.Time
	// Validator refuses records; nil accepts every valid record.
	Validator Validator
	// OnConnect is called after the commit of a device's SyncHello or of
	// its Presence online, that is when a device starts a session (the
	// commands and the twin resend to it then). It runs on the committer
	// goroutine and must not block.
	OnConnect func(device string)

	// QueueSize bounds the messages waiting for a commit; default 8192.
	QueueSize int
	// QueueBytes bounds the payload bytes waiting; default 256 MiB.
	QueueBytes int64
	// EnqueueWait is how long a handler waits for room in a full queue
	// before it drops the message; default 20 ms.
	EnqueueWait time.Duration
	// BatchSize bounds the messages of one group commit; default 1024.
	BatchSize int
	// Linger is how long the committer waits for more messages after the
	// first of a batch, unless a sixteenth of BatchSize is queued already;
	// default 2 ms.
	Linger time.Duration
	// CommitTimeout bounds one commit; default 30 s.
	CommitTimeout time.Duration
	// DrainTimeout bounds the final commits after Run's context ends;
	// default 15 s.
	DrainTimeout time.Duration

	// DeviceRate and DeviceBurst bound the bytes per second one device may
	// send (a token bucket); defaults 8 MiB/s and 32 MiB. DeviceBurst is
	// at least protocol.MaxMessageSize.
	DeviceRate  float64
	DeviceBurst float64
	// MaxIncompleteBytes bounds, per device, the declared sizes of the
	// blobs that have begun to arrive and are not complete. A chunk that
	// would begin another blob beyond it is set aside until one completes;
	// default 256 MiB, at least protocol.MaxBlobSize.
	MaxIncompleteBytes uint64

	// LastSeenEvery is how often a device's last-seen time is written at
	// most; default 1 s.
	LastSeenEvery time.Duration
	// HealthSampleEvery is the interval of the heartbeat time series; a
	// heartbeat in between only updates the latest health, unless
	// something material changed (software, storage full, a peripheral's
	// state). Default 5 min.
	HealthSampleEvery time.Duration
	// LogRate and LogBurst bound the warnings about bad input; defaults 2
	// per second and 20.
	LogRate  float64
	LogBurst float64
}

func (o *Options) defaults() {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	set := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	setD := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	setF := func(v *float64, d float64) {
		if *v == 0 {
			*v = d
		}
	}
	set(&o.QueueSize, 8192)
	set(&o.BatchSize, 1024)
	if o.QueueBytes == 0 {
		o.QueueBytes = 256 << 20
	}
	if o.MaxIncompleteBytes == 0 {
		o.MaxIncompleteBytes = 256 << 20
	}
	setD(&o.EnqueueWait, 20*time.Millisecond)
	setD(&o.Linger, 2*time.Millisecond)
	setD(&o.CommitTimeout, 30*time.Second)
	setD(&o.DrainTimeout, 15*time.Second)
	setD(&o.LastSeenEvery, time.Second)
	setD(&o.HealthSampleEvery, 5*time.Minute)
	setF(&o.DeviceRate, 8<<20)
	setF(&o.DeviceBurst, 32<<20)
	setF(&o.LogRate, 2)
	setF(&o.LogBurst, 20)
}

// Validate checks the options after defaults are filled in.
func (o *Options) Validate() error {
	switch {
	case o.QueueSize < 1 || o.BatchSize < 1:
		return fmt.Errorf("ingest queue size %d and batch size %d must be 1 or more", o.QueueSize, o.BatchSize)
	case o.QueueBytes < protocol.MaxMessageSize:
		return fmt.Errorf("ingest queue bytes %d must hold at least one message of %d bytes", o.QueueBytes, protocol.MaxMessageSize)
	case o.EnqueueWait < 0 || o.Linger < 0 || o.CommitTimeout < 0 || o.DrainTimeout < 0 ||
		o.LastSeenEvery < 0 || o.HealthSampleEvery < 0:
		return errors.New("ingest durations must not be negative")
	case o.DeviceRate <= 0:
		return fmt.Errorf("ingest device rate %.0f bytes/s must be positive", o.DeviceRate)
	case o.DeviceBurst < protocol.MaxMessageSize:
		return fmt.Errorf("ingest device burst %.0f bytes must hold at least one message of %d bytes",
			o.DeviceBurst, protocol.MaxMessageSize)
	case o.MaxIncompleteBytes < protocol.MaxBlobSize:
		return fmt.Errorf("ingest limit of incomplete blob bytes %d must hold at least one blob of %d bytes",
			o.MaxIncompleteBytes, protocol.MaxBlobSize)
	case o.LogRate <= 0 || o.LogBurst < 1:
		return errors.New("ingest log rate must be positive and its burst at least 1")
	}
	return nil
}

// Stats are the ingest's running totals.
type Stats struct {
	// Received counts the messages taken from the broker.
	Received uint64
	// Rejected counts the input refused or dropped, Ignored the input set
	// aside (out of order, ahead of its record).
	Rejected uint64
	Ignored  uint64
	// Commits counts the group commits; Committed the messages in them.
	Commits   uint64
	Committed uint64
	// Stored counts the records stored.
	Stored uint64
	// Queued is the number of messages waiting now.
	Queued int
}

// Ingest stores what devices publish and acknowledges it.
type Ingest struct {
	db     *store.DB
	broker Broker
	opts   Options
	log    *slog.Logger
	warn   *rateLog
	m      *metrics
	limit  *deviceLimiter
	dm     cbor.DecMode

	queue       chan item
	queuedBytes atomic.Int64
	// closing guards the queue's closing: handlers hold it for reading
	// while they enqueue; the committer takes it to stop them.
	closing sync.RWMutex
	closed  bool
	running atomic.Bool
	seq     atomic.Uint64

	// cache holds the watermark and the last Touch per device; only the
	// committer goroutine uses it.
	cache map[string]deviceState
}

// item is one message on its way to the committer.
type item struct {
	device string
	at     time.Time
	size   int
	msg    protocol.Message
	// reject, when set, refuses msg (a record or a chunk) for this reason
	// (metric reason why) instead of storing it.
	reject string
	why    string
	up     bool // from an up/ topic (not the state topic)
}

// deviceState is what the committer knows about a device between batches.
type deviceState struct {
	high    uint64
	touched int64
}

const maxCachedDevices = 200_000

// New returns an ingest that stores into db and talks through b. Run starts
// it.
func New(db *store.DB, b Broker, opts Options) (*Ingest, error) {
	opts.defaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	dm, err := salvageMode()
	if err != nil {
		return nil, fmt.Errorf("ingest decoder: %w", err)
	}
	in := &Ingest{
		db: db, broker: b, opts: opts, log: opts.Logger, dm: dm,
		warn:  &rateLog{log: opts.Logger, perSecond: opts.LogRate, burst: opts.LogBurst},
		limit: newDeviceLimiter(opts.DeviceRate, opts.DeviceBurst),
		queue: make(chan item, opts.QueueSize),
		cache: map[string]deviceState{},
	}
	if in.m, err = newMetrics(opts.Registerer, func() float64 { return float64(len(in.queue)) }); err != nil {
		return nil, err
	}
	return in, nil
}

// Stats returns the running totals.
func (in *Ingest) Stats() Stats {
	return Stats{
		Received: in.m.nReceived.Load(), Rejected: in.m.nRejected.Load(), Ignored: in.m.nIgnored.Load(),
		Commits: in.m.nCommits.Load(), Committed: in.m.nCommitted.Load(), Stored: in.m.nStored.Load(),
		Queued: len(in.queue),
	}
}

// Run subscribes and commits until ctx ends. Then it drains: it stops taking
// messages (later ones are dropped and counted; devices send them again),
// commits and acknowledges everything it has taken, and returns. Run may be
// called once.
func (in *Ingest) Run(ctx context.Context) error {
	if !in.running.CompareAndSwap(false, true) {
		return errors.New("ingest: Run called twice")
	}
	// The committer runs before the subscriptions, because subscribing
	// delivers the retained presence of every device at once.
	done := make(chan struct{})
	loopCtx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		defer close(done)
		in.loop(loopCtx)
	}()
	for _, f := range []string{protocol.UpFilter, protocol.StateFilter} {
		if err := in.broker.Subscribe(f, in.handle); err != nil {
			stop()
			<-done
			return fmt.Errorf("ingest: subscribe to %s: %w", f, err)
		}
	}
	in.log.Info("ingest running", "batch", in.opts.BatchSize, "linger", in.opts.Linger, "queue", in.opts.QueueSize)
	<-done
	return nil
}

// handle is the broker's callback. It must be quick: it runs on the
// publishing client's goroutine.
func (in *Ingest) handle(topic string, payload []byte) {
	now := in.opts.Clock()
	in.m.nReceived.Add(1)
	t, err := protocol.ParseTopic(topic)
	if err != nil || !t.Type.FromDevice() {
		in.m.received.WithLabelValues("unknown").Inc()
		in.refuse(now, "", reasonTopic, "not an uplink topic of a device", "topic", clip(topic))
		return
	}
	in.m.byType[t.Type].Inc()
	if len(payload) > protocol.MaxMessageSize {
		in.refuse(now, t.Device, reasonTooLarge, "payload too large", "bytes", len(payload))
		return
	}
	if !in.limit.allow(t.Device, len(payload), now) {
		in.refuse(now, t.Device, reasonRate, "device beyond its byte rate; message dropped", "type", t.Type)
		return
	}
	it := item{device: t.Device, at: now, size: len(payload), up: t.Type != protocol.TypePresence}
	env, err := protocol.DecodeOn(topic, payload)
	if err != nil {
		it.why = decodeReason(err)
		it.reject = clipText(err.Error())
		in.refuse(now, t.Device, it.why, "undecodable message", "type", t.Type, "err", err)
		switch {
		case env != nil && (env.Type() == protocol.TypeRecord || env.Type() == protocol.TypeBlobChunk):
			// Decoded, but on the wrong topic: refuse it by name.
			it.msg = env.Body
		case t.Type == protocol.TypeRecord:
			id, seq, ok := salvageRecord(in.dm, payload)
			if !ok {
				return
			}
			it.msg = &protocol.Record{ID: id, Seq: seq}
		default:
			return
		}
		in.enqueue(it)
		return
	}
	if _, ok := env.Body.(*protocol.Unknown); ok {
		in.m.ignore(reasonUnknownType, 1)
		return
	}
	it.msg = env.Body
	in.enqueue(it)
}

// decodeReason names a decoding error for the metric.
func decodeReason(err error) string {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		switch pe.Field {
		case "envelope.device":
			if errors.Is(err, protocol.ErrTopic) {
				return reasonDeviceMismatch
			}
		case "envelope.type":
			if errors.Is(err, protocol.ErrTopic) {
				return reasonTypeMismatch
			}
		}
	}
	switch {
	case errors.Is(err, protocol.ErrTruncated):
		return reasonTruncated
	case errors.Is(err, protocol.ErrTooLarge):
		return reasonTooLarge
	case errors.Is(err, protocol.ErrVersion):
		return reasonVersion
	case errors.Is(err, protocol.ErrMalformed):
		return reasonMalformed
	case errors.Is(err, protocol.ErrTopic):
		return reasonTopic
	}
	return reasonInvalid
}

// refuse counts and logs input that is dropped here.
func (in *Ingest) refuse(now time.Time, device, reason, msg string, args ...any) {
	in.m.reject(reason, 1)
	in.warn.Warn(now, "ingest: "+msg, append([]any{"device", device, "reason", reason}, args...)...)
}

// enqueue puts it on the queue, waiting at most EnqueueWait for room.
func (in *Ingest) enqueue(it item) {
	in.closing.RLock()
	defer in.closing.RUnlock()
	if in.closed {
		in.m.reject(reasonShutdown, 1)
		return
	}
	if in.queuedBytes.Add(int64(it.size)) > in.opts.QueueBytes {
		in.queuedBytes.Add(-int64(it.size))
		in.refuse(it.at, it.device, reasonQueueFull, "ingest queue full (bytes); message dropped")
		return
	}
	select {
	case in.queue <- it:
		return
	default:
	}
	t := time.NewTimer(in.opts.EnqueueWait)
	defer t.Stop()
	select {
	case in.queue <- it:
	case <-t.C:
		in.queuedBytes.Add(-int64(it.size))
		in.refuse(it.at, it.device, reasonQueueFull, "ingest queue full; message dropped")
	}
}

// loop collects batches and commits them until ctx ends, then drains.
func (in *Ingest) loop(ctx context.Context) {
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	batch := make([]item, 0, in.opts.BatchSize)
	for {
		select {
		case it := <-in.queue:
			batch = append(batch[:0], it)
		case <-ctx.Done():
			in.drain()
			return
		}
		// Take what is queued. Under load that is a batch already (it
		// queued up during the last commit): commit it at once. Otherwise
		// linger for more, so that a trickle does not cost a commit each.
	drain:
		for len(batch) < in.opts.BatchSize {
			select {
			case it := <-in.queue:
				batch = append(batch, it)
			default:
				break drain
			}
		}
		if len(batch) < in.minBatch() {
			linger.Reset(in.opts.Linger)
		collect:
			for len(batch) < in.opts.BatchSize {
				select {
				case it := <-in.queue:
					batch = append(batch, it)
				case <-linger.C:
					break collect
				case <-ctx.Done():
					break collect
				}
			}
			linger.Stop()
		}
		in.commit(context.WithoutCancel(ctx), batch)
	}
}

// minBatch is the batch the committer commits without lingering.
func (in *Ingest) minBatch() int { return max(1, in.opts.BatchSize/16) }

// drain stops the handlers from enqueueing and commits what is queued.
func (in *Ingest) drain() {
	in.closing.Lock()
	in.closed = true
	in.closing.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), in.opts.DrainTimeout)
	defer cancel()
	n := 0
	for {
		batch := make([]item, 0, in.opts.BatchSize)
	take:
		for len(batch) < in.opts.BatchSize {
			select {
			case it := <-in.queue:
				batch = append(batch, it)
			default:
				break take
			}
		}
		if len(batch) == 0 {
			break
		}
		n += len(batch)
		in.commit(ctx, batch)
	}
	in.log.Info("ingest drained", "messages", n)
}

func clip(s string) string {
	if len(s) > 120 {
		return s[:120] + "…"
	}
	return s
}

// clipText bounds a reason to what an Ack may carry, as valid UTF-8 (a
// CBOR text string must be).
func clipText(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= protocol.MaxTextLen {
		return s
	}
	cut := protocol.MaxTextLen - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
