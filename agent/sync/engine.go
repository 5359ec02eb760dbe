// Package sync moves a device's outbox to the fleet server and keeps it
// moving across cuts, restarts and a flaky server.
//
// A session starts with every connection: the engine sends a SyncHello with
// the range of sequence numbers it still holds, marks as stored whatever the
// server's SyncState says it already has, and then sends the rest in sequence
// order with a window of records in flight. A record leaves the outbox only on
// the server's application-level Ack; without one it is sent again after a
// timeout that backs off, starting over from the oldest unacknowledged record
// (the server stores a device's records only in sequence order, so everything
// after a lost record must follow it again). Blobs follow their record in
// chunks, each with its digest, resuming at the offset the server reports.
// Command results are sent until the server acknowledges them.
//
// A SyncState whose Stored (the server's watermark) lies above the highest
// sequence the hello named says that the store was reset (a damaged file
// moved aside) and numbers from 1 again, under numbers that name other
// records at the server: the engine marks nothing from it, renumbers the
// outbox above the watermark (Outbox.Rebase) and says hello again.
//
// The engine runs on one goroutine (Run); it declares what it needs from the
// store (Outbox) and from the network (Transport).
package sync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	gosync "sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/agent/store"
	"github.com/kogge-fleet/kogge/protocol"
)

// Outbox is what the engine needs from the device store. *store.Store
// satisfies it.
type Outbox interface {
	// Bounds returns the lowest unacknowledged sequence (0 if none) and the
	// highest assigned.
	Bounds(ctx context.Context) (lowest, highest uint64, err error)
	// Pending returns unacknowledged, unrejected records with a sequence
	// above afterSeq, ascending.
	Pending(ctx context.Context, afterSeq uint64, limit int) ([]protocol.Record, error)
	MarkStored(ctx context.Context, ids ...uuid.UUID) error
	MarkRejected(ctx context.Context, id uuid.UUID, reason string) error
	// PendingBlobs returns blobs not yet complete at the server.
	PendingBlobs(ctx context.Context, limit int) ([]store.PendingBlob, error)
	ReadBlob(ctx context.Context, blob uuid.UUID, off int64, p []byte) (int, error)
	MarkBlobComplete(ctx context.Context, blob uuid.UUID) error
	// UnreportedResults returns encoded CommandResult envelopes by command
	// id; the engine publishes them as they are.
	UnreportedResults(ctx context.Context, limit int) (map[uuid.UUID][]byte, error)
	MarkResultsReported(ctx context.Context, ids ...uuid.UUID) error
	// Rebase renumbers every record above+1, above+2, … in sequence
	// order, with the counter following, unless every record lies above
	// above already and the counter is not below it; it returns how many
	// it renumbered. The engine calls it when the server's watermark lies
	// above the highest sequence the hello named (the store was reset).
	Rebase(ctx context.Context, above uint64) (int, error)
}

// Engine is the sync engine of one device.
type Engine struct {
	device string
	box    Outbox
	tr     Transport
	opts   Options
	log    *slog.Logger
	topics map[protocol.Type]string

	poke   chan struct{} // new records or results
	kick   chan struct{} // sync now: no waiting for timers
	resync chan struct{} // start a new session (the outbox changed under us)
	msgSeq atomic.Uint64

	mu    gosync.Mutex
	stats Stats

	// Everything below belongs to Run's goroutine.
	online     bool
	session    uuid.UUID
	synced     bool
	hello      protocol.SyncHello
	helloSent  time.Time
	helloDue   time.Time // when to say hello (again); zero: not due
	helloTries int
	rehello    uint64 // after a truncated SyncState: say hello again once the cursor passed this

	cursor   uint64   // highest sequence sent in this session
	flights  []flight // records in flight, ascending
	recTries int
	maxSent  uint64 // highest sequence ever sent by this engine, for EventSent
	recDirty bool   // Pending may have more

	uploads    []*upload
	chunkBytes int
	blobsDirty bool
	skipBlobs  map[uuid.UUID]time.Time // refused or unreadable: not before then
	serverHave map[uuid.UUID]uint64

	results      map[uuid.UUID]time.Time // sent, not acknowledged: when to send again
	resultTries  int
	resultsDirty bool

	retryAt time.Time // after a store or publish error
	storeQ  []flight  // acknowledged as stored, to be marked
	limits  map[string]time.Time
}

type flight struct {
	id       uuid.UUID
	seq      uint64
	blobs    bool // the record has blobs to upload once it is stored
	deadline time.Time
}

type upload struct {
	record, blob uuid.UUID
	seq          uint64
	size         uint64
	sum          protocol.Sum
	acked        uint64 // the server holds [0, acked)
	next         uint64 // next offset to send
	sent         []sentChunk
	tries        int
	deadline     time.Time // for a missing Complete when everything is acked
}

type sentChunk struct {
	off, n   uint64
	deadline time.Time
}

// New returns an engine for device that sends from box over tr.
func New(device string, box Outbox, tr Transport, opts Options) (*Engine, error) {
	opts = opts.withDefaults()
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("sync options: %w", err)
	}
	if err := protocol.ValidateDeviceID(device); err != nil {
		return nil, fmt.Errorf("sync: %w", err)
	}
	topics := map[protocol.Type]string{}
	for _, t := range protocol.Types() {
		if t.FromDevice() {
			topics[t], _ = protocol.TopicFor(device, t)
		}
	}
	return &Engine{
		device: device,
		box:    box,
		tr:     tr,
		opts:   opts,
		log:    opts.Logger.With("device", device),
		topics: topics,
		poke:   make(chan struct{}, 1),
		kick:   make(chan struct{}, 1),
		resync: make(chan struct{}, 1),
		limits: map[string]time.Time{},
	}, nil
}

// Poke tells the engine that there is something new to send (a capture or a
// command result). It never blocks.
func (e *Engine) Poke() { signal(e.poke) }

// SyncNow makes the engine try at once what it would otherwise try after a
// timeout. It never blocks.
func (e *Engine) SyncNow() { signal(e.kick) }

// Resync starts a new session on the current connection, for when the
// outbox changed under the engine (unsent records were wiped). It never
// blocks.
func (e *Engine) Resync() { signal(e.resync) }

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Stats returns the engine's counters.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stats
}

func (e *Engine) count(f func(*Stats)) {
	e.mu.Lock()
	f(&e.stats)
	e.mu.Unlock()
}

// Send publishes a message that needs no ack (heartbeat, twin report,
// a command result sent again) with a fresh envelope. Without a connection
// it returns an error wrapping ErrOffline. It is safe for concurrent use.
func (e *Engine) Send(ctx context.Context, msg protocol.Message) error {
	topic, ok := e.topics[msg.Type()]
	if !ok {
		return fmt.Errorf("send %v: devices do not send this message type", msg.Type())
	}
	b, err := e.encode(msg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, e.opts.OpTimeout)
	defer cancel()
	if err := e.tr.Publish(ctx, topic, b, false); err != nil {
		return fmt.Errorf("send %v: %w", msg.Type(), err)
	}
	return nil
}

func (e *Engine) encode(msg protocol.Message) ([]byte, error) {
	env := protocol.NewEnvelope(e.device, e.msgSeq.Add(1), e.opts.Now(), msg)
	b, err := protocol.Encode(env)
	if err != nil {
		return nil, fmt.Errorf("encode %v: %w", msg.Type(), err)
	}
	return b, nil
}

// Run runs the engine until ctx ends. It returns nil then; it returns an
// error only if the transport closes its Incoming channel.
func (e *Engine) Run(ctx context.Context) error {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	in := e.tr.Incoming()
	for {
		e.step(ctx)
		if d, ok := e.nextWake(); ok {
			timer.Reset(max(d.Sub(e.opts.Now()), 0))
		} else {
			timer.Stop()
		}
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-in:
			if !ok {
				return errors.New("sync: the transport closed")
			}
			e.handle(ctx, ev)
			// Take what else is waiting, so that acks are marked in one
			// store call.
		drain:
			for range 256 {
				select {
				case ev, ok := <-in:
					if !ok {
						break drain
					}
					e.handle(ctx, ev)
				default:
					break drain
				}
			}
			e.flushStored(ctx)
		case <-e.poke:
			// New captures' blobs wait for their record's ack, which
			// marks the blobs dirty.
			e.recDirty, e.resultsDirty = true, true
		case <-e.kick:
			e.recDirty, e.blobsDirty, e.resultsDirty = true, true, true
			e.retryAt = time.Time{}
			if e.online && !e.synced {
				e.helloDue = e.opts.Now()
			}
			e.expireAll()
		case <-e.resync:
			if e.online {
				e.startSession()
			}
		case <-timer.C:
		}
	}
}

func (e *Engine) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, e.opts.OpTimeout)
}

// backoff returns base doubled tries times, capped, with ±25 % jitter.
func (e *Engine) backoff(base time.Duration, tries int) time.Duration {
	d := base
	for range min(tries, 30) {
		d *= 2
		if d >= e.opts.MaxBackoff {
			d = e.opts.MaxBackoff
			break
		}
	}
	return time.Duration(float64(d) * (0.75 + 0.5*rand.Float64()))
}

// warn logs a problem at most once per LogEvery for each key.
func (e *Engine) warn(key, msg string, args ...any) {
	now := e.opts.Now()
	if last, ok := e.limits[key]; ok && now.Sub(last) < e.opts.LogEvery {
		return
	}
	e.limits[key] = now
	e.log.Warn(msg, args...)
}

func (e *Engine) handle(ctx context.Context, ev Incoming) {
	switch ev.Kind {
	case Connected:
		e.online = true
		e.count(func(s *Stats) { s.Online = true })
		e.startSession()
	case Disconnected:
		e.online = false
		e.resetSession()
		e.count(func(s *Stats) { s.Online = false })
	case Message:
		e.receive(ctx, ev.Topic, ev.Payload)
	}
}

// resetSession forgets what was in flight: it is lost with the connection.
// Blob progress the server confirmed is kept as the point to resume from.
func (e *Engine) resetSession() {
	e.synced = false
	e.session = uuid.Nil
	e.helloDue = time.Time{}
	e.helloTries = 0
	e.rehello = 0
	e.flights = nil
	e.cursor = 0
	e.recTries = 0
	e.chunkBytes = 0
	for _, u := range e.uploads {
		u.sent, u.next, u.tries, u.deadline = nil, u.acked, 0, time.Time{}
	}
	e.skipBlobs = nil
	e.serverHave = nil
	e.results = nil
	e.resultTries = 0
	e.retryAt = time.Time{}
	e.count(func(s *Stats) { s.Synced, s.InFlight = false, 0 })
}

func (e *Engine) startSession() {
	e.resetSession()
	e.session = uuid.Must(uuid.NewV7())
	e.helloDue = e.opts.Now()
}

// step does whatever is due: a hello, retransmissions, new records, chunks
// and results.
func (e *Engine) step(ctx context.Context) {
	if !e.online {
		return
	}
	now := e.opts.Now()
	if !e.synced {
		if !e.helloDue.IsZero() && !now.Before(e.helloDue) {
			e.sendHello(ctx, now)
		}
		return
	}
	if e.rehello > 0 && len(e.flights) == 0 && e.cursor >= e.rehello {
		e.startSession()
		e.sendHello(ctx, now)
		return
	}
	e.expire(now)
	if now.Before(e.retryAt) {
		return
	}
	e.retryAt = time.Time{}
	e.fillWindow(ctx)
	e.fillChunks(ctx)
	e.sendResults(ctx)
}

func (e *Engine) sendHello(ctx context.Context, now time.Time) {
	octx, cancel := e.opCtx(ctx)
	defer cancel()
	lowest, highest, err := e.box.Bounds(octx)
	if err != nil {
		e.warn("store", "sync cannot read the outbox; trying again", "err", err)
		e.helloDue = now.Add(e.backoff(e.opts.HelloTimeout, e.helloTries))
		e.helloTries++
		return
	}
	e.hello = protocol.SyncHello{Session: e.session, Lowest: lowest, Highest: highest}
	e.helloSent = now
	e.helloDue = now.Add(e.backoff(e.opts.HelloTimeout, e.helloTries))
	e.helloTries++
	b, err := e.encode(&e.hello)
	if err == nil {
		err = e.tr.Publish(octx, e.topics[protocol.TypeSyncHello], b, false)
	}
	if err != nil {
		e.warn("publish", "sync cannot say hello to the server; trying again", "err", err)
	}
}

// nextWake returns when step has something to do without any event.
func (e *Engine) nextWake() (time.Time, bool) {
	if !e.online {
		return time.Time{}, false
	}
	var t time.Time
	at := func(d time.Time) {
		if !d.IsZero() && (t.IsZero() || d.Before(t)) {
			t = d
		}
	}
	if !e.synced {
		at(e.helloDue)
		return t, !t.IsZero()
	}
	at(e.retryAt)
	for _, f := range e.flights {
		at(f.deadline)
	}
	for _, u := range e.uploads {
		if len(u.sent) > 0 {
			at(u.sent[0].deadline)
		}
		at(u.deadline)
	}
	for _, d := range e.results {
		at(d)
	}
	for _, d := range e.skipBlobs {
		at(d)
	}
	return t, !t.IsZero()
}

// expire goes back to the oldest unacknowledged record or chunk whose ack is
// overdue.
func (e *Engine) expire(now time.Time) {
	for _, f := range e.flights {
		if !now.Before(f.deadline) {
			e.rewindRecords()
			break
		}
	}
	for _, u := range e.uploads {
		if len(u.sent) > 0 && !now.Before(u.sent[0].deadline) ||
			!u.deadline.IsZero() && !now.Before(u.deadline) {
			e.rewindUpload(u)
		}
	}
	for blob, until := range e.skipBlobs {
		if !now.Before(until) {
			delete(e.skipBlobs, blob)
			e.blobsDirty = true
		}
	}
	expired := false
	for id, d := range e.results {
		if !now.Before(d) {
			delete(e.results, id)
			expired = true
		}
	}
	if expired {
		e.resultsDirty = true
		e.resultTries++
	}
}

// expireAll treats every ack as overdue (sync now).
func (e *Engine) expireAll() {
	if !e.synced {
		return
	}
	if len(e.flights) > 0 {
		e.rewindRecords()
	}
	for _, u := range e.uploads {
		if len(u.sent) > 0 {
			e.rewindUpload(u)
		}
	}
	e.recTries = 0
	clear(e.results)
}

func (e *Engine) rewindRecords() {
	e.cursor = e.flights[0].seq - 1
	e.flights = e.flights[:0]
	e.recTries++
	e.recDirty = true
	e.count(func(s *Stats) { s.Retransmits++; s.InFlight = 0 })
}

func (e *Engine) rewindUpload(u *upload) {
	for _, c := range u.sent {
		e.chunkBytes -= int(c.n)
	}
	u.sent = nil
	u.next = u.acked
	if u.acked >= u.size {
		// Everything is acknowledged but the Complete was lost: send the
		// last chunk again, the server answers it with Complete.
		u.next = u.size - min(u.size, uint64(e.opts.ChunkSize))
	}
	u.deadline = time.Time{}
	u.tries++
	e.count(func(s *Stats) { s.Retransmits++ })
}

// fillWindow sends pending records until the window is full.
func (e *Engine) fillWindow(ctx context.Context) {
	for e.recDirty && len(e.flights) < e.opts.Window {
		want := e.opts.Window - len(e.flights)
		octx, cancel := e.opCtx(ctx)
		recs, err := e.box.Pending(octx, e.cursor, want)
		cancel()
		if err != nil {
			e.storeTrouble(err)
			return
		}
		if len(recs) < want {
			e.recDirty = false
		}
		if len(recs) == 0 {
			return
		}
		for i := range recs {
			if !e.sendRecord(ctx, &recs[i]) {
				e.recDirty = true
				return
			}
		}
	}
}

func (e *Engine) sendRecord(ctx context.Context, r *protocol.Record) bool {
	b, err := e.encode(r)
	if err != nil {
		// The store holds a record the contract does not allow; the server
		// would refuse it too. Refuse it here and tell the server by a new
		// hello that the sequence is given up.
		reason := "cannot be sent: " + err.Error()
		octx, cancel := e.opCtx(ctx)
		defer cancel()
		if err := e.box.MarkRejected(octx, r.ID, reason); err != nil {
			e.storeTrouble(err)
			return false
		}
		e.rejected(r.ID, r.Seq, reason)
		e.cursor = r.Seq
		e.rehello = r.Seq
		return true
	}
	octx, cancel := e.opCtx(ctx)
	defer cancel()
	if err := e.tr.Publish(octx, e.topics[protocol.TypeRecord], b, false); err != nil {
		e.publishTrouble(err)
		return false
	}
	now := e.opts.Now()
	e.flights = append(e.flights, flight{id: r.ID, seq: r.Seq, blobs: len(r.Blobs) > 0, deadline: now.Add(e.backoff(e.opts.AckTimeout, e.recTries))})
	e.cursor = r.Seq
	e.count(func(s *Stats) { s.RecordsSent++; s.InFlight = len(e.flights) })
	if r.Seq > e.maxSent {
		e.maxSent = r.Seq
		e.emit(Event{Kind: EventSent, Record: r.ID, Seq: r.Seq})
	}
	return true
}

func (e *Engine) storeTrouble(err error) {
	e.warn("store", "sync cannot use the outbox; trying again shortly", "err", err)
	e.retryAt = e.opts.Now().Add(time.Second)
}

func (e *Engine) publishTrouble(err error) {
	if !errors.Is(err, ErrOffline) {
		e.warn("publish", "sync cannot publish; trying again shortly", "err", err)
	}
	e.retryAt = e.opts.Now().Add(e.backoff(time.Second, e.recTries))
}

func (e *Engine) emit(ev Event) {
	if e.opts.OnEvent != nil {
		e.opts.OnEvent(ev)
	}
}

func (e *Engine) rejected(id uuid.UUID, seq uint64, reason string) {
	e.log.Warn("the server refused a record; it stays on the device, marked, and is not sent again",
		"record", id, "seq", seq, "reason", reason)
	e.count(func(s *Stats) { s.RecordsRejected++ })
	e.emit(Event{Kind: EventRejected, Record: id, Seq: seq, Reason: reason})
}

// fillChunks sends blob chunks of stored records, as far as the bound on
// chunk bytes in flight allows.
func (e *Engine) fillChunks(ctx context.Context) {
	if e.blobsDirty && len(e.uploads) < e.opts.Uploads {
		e.loadUploads(ctx)
	}
	for e.chunkBytes < e.opts.ChunkBytesInFlight {
		var u *upload
		for _, c := range e.uploads {
			if c.next < c.size {
				u = c
				break
			}
		}
		if u == nil {
			return
		}
		if !e.sendChunk(ctx, u) {
			return
		}
	}
}

// loadUploads starts uploads for pending blobs whose record the server has.
// Records are acknowledged in sequence order, so those are exactly the
// blobs below the lowest unacknowledged sequence, or up to the highest
// assigned if nothing is unacknowledged (a record saved after Bounds has a
// higher sequence).
func (e *Engine) loadUploads(ctx context.Context) {
	octx, cancel := e.opCtx(ctx)
	defer cancel()
	lowest, highest, err := e.box.Bounds(octx)
	if err != nil {
		e.storeTrouble(err)
		return
	}
	limit := len(e.uploads) + len(e.skipBlobs) + e.opts.Uploads
	pbs, err := e.box.PendingBlobs(octx, limit)
	if err != nil {
		e.storeTrouble(err)
		return
	}
	e.blobsDirty = false
	for _, pb := range pbs {
		if len(e.uploads) >= e.opts.Uploads {
			e.blobsDirty = true
			return
		}
		_, skipped := e.skipBlobs[pb.Blob]
		stored := pb.Seq < lowest || (lowest == 0 && pb.Seq <= highest)
		if skipped || !stored || e.findUpload(pb.Blob) != nil {
			continue
		}
		u := &upload{record: pb.Record, blob: pb.Blob, seq: pb.Seq, size: pb.Size, sum: pb.SHA256}
		if have, ok := e.serverHave[pb.Blob]; ok && have <= u.size {
			u.acked, u.next = have, have
			if have == u.size {
				u.next = u.size - min(u.size, uint64(e.opts.ChunkSize))
			}
		}
		e.uploads = append(e.uploads, u)
	}
}

func (e *Engine) findUpload(blob uuid.UUID) *upload {
	for _, u := range e.uploads {
		if u.blob == blob {
			return u
		}
	}
	return nil
}

func (e *Engine) dropUpload(u *upload) {
	for _, c := range u.sent {
		e.chunkBytes -= int(c.n)
	}
	e.uploads = slices.DeleteFunc(e.uploads, func(x *upload) bool { return x == u })
	e.blobsDirty = true
}

func (e *Engine) sendChunk(ctx context.Context, u *upload) bool {
	n := min(uint64(e.opts.ChunkSize), u.size-u.next)
	data := make([]byte, n)
	octx, cancel := e.opCtx(ctx)
	defer cancel()
	got, err := e.box.ReadBlob(octx, u.blob, int64(u.next), data)
	if (err != nil && !errors.Is(err, io.EOF)) || uint64(got) != n {
		e.warn("blob", "sync cannot read a blob from the outbox; trying it again later",
			"blob", u.blob, "record", u.record, "offset", u.next, "read", got, "err", err)
		e.skip(u)
		return true
	}
	b, err := e.encode(&protocol.BlobChunk{
		Record: u.record, Blob: u.blob, Offset: u.next, Total: u.size, Data: data, SHA256: protocol.SumOf(data),
	})
	if err != nil {
		e.warn("blob", "sync cannot encode a chunk; trying the blob again later", "blob", u.blob, "err", err)
		e.skip(u)
		return true
	}
	if err := e.tr.Publish(octx, e.topics[protocol.TypeBlobChunk], b, false); err != nil {
		e.publishTrouble(err)
		return false
	}
	u.sent = append(u.sent, sentChunk{off: u.next, n: n, deadline: e.opts.Now().Add(e.backoff(e.opts.AckTimeout, u.tries))})
	u.next += n
	u.deadline = time.Time{}
	e.chunkBytes += int(n)
	e.count(func(s *Stats) { s.ChunksSent++; s.ChunkBytesSent += n })
	return true
}

func (e *Engine) skip(u *upload) {
	if e.skipBlobs == nil {
		e.skipBlobs = map[uuid.UUID]time.Time{}
	}
	e.skipBlobs[u.blob] = e.opts.Now().Add(e.backoff(e.opts.MaxBackoff, 0))
	e.dropUpload(u)
}

// sendResults sends the command results the server has not acknowledged.
func (e *Engine) sendResults(ctx context.Context) {
	if !e.resultsDirty {
		return
	}
	const limit = 64
	octx, cancel := e.opCtx(ctx)
	defer cancel()
	m, err := e.box.UnreportedResults(octx, limit+len(e.results))
	if err != nil {
		e.storeTrouble(err)
		return
	}
	e.resultsDirty = false
	topic := e.topics[protocol.TypeCommandResult]
	var bad []uuid.UUID
	for id, payload := range m {
		if _, ok := e.results[id]; ok {
			continue
		}
		if env, err := protocol.DecodeOn(topic, payload); err != nil || env.Device != e.device {
			e.log.Error("a stored command result cannot be sent; dropping it", "command", id, "err", err)
			bad = append(bad, id)
			continue
		}
		if err := e.tr.Publish(octx, topic, payload, false); err != nil {
			e.publishTrouble(err)
			e.resultsDirty = true
			break
		}
		if e.results == nil {
			e.results = map[uuid.UUID]time.Time{}
		}
		e.results[id] = e.opts.Now().Add(e.backoff(e.opts.AckTimeout, e.resultTries))
		e.count(func(s *Stats) { s.ResultsSent++ })
	}
	if len(bad) > 0 {
		if err := e.box.MarkResultsReported(octx, bad...); err != nil {
			e.storeTrouble(err)
		}
	}
}

// receive decodes and dispatches one downlink message.
func (e *Engine) receive(ctx context.Context, topic string, payload []byte) {
	env, err := protocol.DecodeOn(topic, payload)
	if err != nil {
		e.count(func(s *Stats) { s.Malformed++ })
		e.warn("malformed", "dropped a malformed downlink message", "topic", topic, "bytes", len(payload), "err", err)
		return
	}
	if env.Device != e.device {
		e.count(func(s *Stats) { s.Foreign++ })
		e.warn("foreign", "dropped a downlink message meant for another device", "topic", topic, "for", env.Device)
		return
	}
	switch m := env.Body.(type) {
	case *protocol.Ack:
		e.onAck(ctx, m)
	case *protocol.SyncState:
		e.onSyncState(ctx, m)
	case *protocol.TwinDesired, *protocol.Command, *protocol.RecordStatus:
		if e.opts.OnMessage != nil {
			e.opts.OnMessage(env)
		}
	case *protocol.Unknown:
		e.log.Debug("skipped a downlink message of an unknown type", "type", m.T)
	default:
		e.count(func(s *Stats) { s.Malformed++ })
		e.warn("unexpected", "dropped a device message on a downlink topic", "topic", topic, "type", env.Type())
	}
}

func (e *Engine) onSyncState(ctx context.Context, m *protocol.SyncState) {
	if !e.online || e.synced || m.Session != e.session {
		e.count(func(s *Stats) { s.Stale++ })
		return
	}
	now := e.opts.Now()
	if m.Stored > e.hello.Highest {
		e.rebase(ctx, now, m.Stored)
		return
	}
	// The server's clock stood at ServerTime in the middle of the round
	// trip, roughly.
	offset := m.ServerTime.Time().Sub(e.helloSent.Add(now.Sub(e.helloSent) / 2))

	covered := e.hello.Highest
	if m.Truncated && len(m.Missing) > 0 {
		covered = min(covered, m.Missing[len(m.Missing)-1].To)
	}
	marked := 0
	if e.hello.Lowest > 0 {
		after := e.hello.Lowest - 1
	pages:
		for {
			octx, cancel := e.opCtx(ctx)
			recs, err := e.box.Pending(octx, after, 512)
			if err != nil {
				cancel()
				e.storeTrouble(err)
				e.helloDue = now.Add(time.Second)
				return
			}
			var ids []uuid.UUID
			for _, r := range recs {
				if r.Seq > covered {
					break
				}
				if !missing(m.Missing, r.Seq) {
					ids = append(ids, r.ID)
				}
			}
			if len(ids) > 0 {
				if err := e.box.MarkStored(octx, ids...); err != nil {
					cancel()
					e.storeTrouble(err)
					e.helloDue = now.Add(time.Second)
					return
				}
				marked += len(ids)
				for _, id := range ids {
					e.emit(Event{Kind: EventStored, Record: id})
				}
			}
			cancel()
			if len(recs) < 512 || recs[len(recs)-1].Seq >= covered {
				break pages
			}
			after = recs[len(recs)-1].Seq
		}
	}
	e.serverHave = make(map[uuid.UUID]uint64, len(m.Blobs))
	for _, b := range m.Blobs {
		e.serverHave[b.Blob] = b.Have
	}
	for _, u := range e.uploads {
		if have, ok := e.serverHave[u.blob]; ok && have <= u.size {
			u.acked, u.next = have, have
		}
	}
	if m.Truncated {
		e.rehello = covered
	}
	e.synced = true
	e.helloDue = time.Time{}
	e.helloTries = 0
	e.cursor = 0
	e.recDirty, e.blobsDirty, e.resultsDirty = true, true, true
	e.count(func(s *Stats) {
		s.Synced = true
		s.Sessions++
		s.MarkedBySync += uint64(marked)
		s.LastSync = now
		s.ClockOffset, s.ClockKnown = offset, true
	})
	e.log.Debug("sync session started", "session", e.session, "lowest", e.hello.Lowest, "highest", e.hello.Highest,
		"missing", len(m.Missing), "marked_stored", marked, "incomplete_blobs", len(m.Blobs))
	e.emit(Event{Kind: EventSynced})
}

// rebase answers a SyncState whose watermark lies above the highest
// sequence the hello named: the store was reset and numbers from 1 again,
// and those numbers name other records at the server. Nothing is marked
// stored; the outbox is renumbered above the watermark, which leaves its
// highest sequence at or above it, and a new session says hello with the
// new numbers. If the outbox fails, the hello is repeated and the server's
// answer asks again.
func (e *Engine) rebase(ctx context.Context, now time.Time, stored uint64) {
	octx, cancel := e.opCtx(ctx)
	n, err := e.box.Rebase(octx, stored)
	cancel()
	if err != nil {
		e.storeTrouble(err)
		e.helloDue = now.Add(time.Second)
		return
	}
	e.log.Warn(fmt.Sprintf("store was reset; renumbering %d unsent records after the server's sequence %d", n, stored),
		"renumbered", n, "server_sequence", stored, "highest", e.hello.Highest)
	e.startSession()
}

func missing(ranges []protocol.SeqRange, seq uint64) bool {
	_, found := slices.BinarySearchFunc(ranges, seq, func(r protocol.SeqRange, s uint64) int {
		switch {
		case r.To < s:
			return -1
		case r.From > s:
			return 1
		}
		return 0
	})
	return found
}

func (e *Engine) onAck(ctx context.Context, m *protocol.Ack) {
	progress := false
	for _, ra := range m.Records {
		i := slices.IndexFunc(e.flights, func(f flight) bool { return f.id == ra.ID })
		if i < 0 {
			e.count(func(s *Stats) { s.Stale++ })
			continue
		}
		f := e.flights[i]
		e.flights = slices.Delete(e.flights, i, i+1)
		progress = true
		switch ra.Status {
		case protocol.AckStored, protocol.AckDuplicate:
			e.storeQ = append(e.storeQ, f)
			if ra.Status == protocol.AckDuplicate {
				e.count(func(s *Stats) { s.Duplicates++ })
			}
		case protocol.AckRejected:
			octx, cancel := e.opCtx(ctx)
			err := e.box.MarkRejected(octx, f.id, ra.Reason)
			cancel()
			if err != nil {
				e.storeTrouble(err)
				continue
			}
			e.rejected(f.id, f.seq, ra.Reason)
		}
	}
	// Acks for one message at a time are batched with the others waiting
	// (flushStored); the store call is made once per batch.
	if len(e.storeQ) >= protocol.MaxAckItems {
		e.flushStored(ctx)
	}
	for _, ca := range m.Chunks {
		if e.onChunkAck(ctx, ca) {
			progress = true
		}
	}
	if len(m.Results) > 0 {
		var ids []uuid.UUID
		for _, id := range m.Results {
			if _, ok := e.results[id]; ok {
				ids = append(ids, id)
				delete(e.results, id)
			}
		}
		if len(ids) > 0 {
			octx, cancel := e.opCtx(ctx)
			err := e.box.MarkResultsReported(octx, ids...)
			cancel()
			if err != nil {
				e.storeTrouble(err)
				e.resultsDirty = true
			} else {
				progress = true
				e.resultTries = 0
				e.count(func(s *Stats) { s.ResultsReported += uint64(len(ids)) })
			}
		} else {
			e.count(func(s *Stats) { s.Stale++ })
		}
	}
	if progress {
		e.recTries = 0
		e.recDirty = true
		now := e.opts.Now()
		e.count(func(s *Stats) { s.LastSync = now; s.InFlight = len(e.flights) })
	}
}

// flushStored marks the records acknowledged since the last call as stored,
// in one store call.
func (e *Engine) flushStored(ctx context.Context) {
	if len(e.storeQ) == 0 {
		return
	}
	ids := make([]uuid.UUID, len(e.storeQ))
	for i, f := range e.storeQ {
		ids[i] = f.id
	}
	octx, cancel := e.opCtx(ctx)
	defer cancel()
	err := e.box.MarkStored(octx, ids...)
	if err != nil {
		// The records stay unacknowledged in the outbox; a new session
		// finds them stored at the server and marks them then.
		e.warn("store", "sync cannot mark acknowledged records as stored; starting a new session", "err", err)
		if e.online {
			e.startSession()
		}
	} else {
		e.count(func(s *Stats) { s.RecordsStored += uint64(len(ids)) })
		for _, f := range e.storeQ {
			e.blobsDirty = e.blobsDirty || f.blobs
			e.emit(Event{Kind: EventStored, Record: f.id, Seq: f.seq})
		}
	}
	e.storeQ = e.storeQ[:0]
}

func (e *Engine) onChunkAck(ctx context.Context, ca protocol.ChunkAck) bool {
	u := e.findUpload(ca.Blob)
	if u == nil {
		e.count(func(s *Stats) { s.Stale++ })
		return false
	}
	switch ca.Status {
	case protocol.AckStored, protocol.AckDuplicate:
		i := slices.IndexFunc(u.sent, func(c sentChunk) bool { return c.off == ca.Offset })
		if i < 0 && !ca.Complete {
			e.count(func(s *Stats) { s.Stale++ })
			return false
		}
		if i >= 0 {
			// The server stores chunks in order: this ack covers every
			// chunk before it as well.
			end := u.sent[i].off + u.sent[i].n
			for _, c := range u.sent[:i+1] {
				e.chunkBytes -= int(c.n)
			}
			u.sent = slices.Delete(u.sent, 0, i+1)
			u.acked = max(u.acked, end)
			u.tries = 0
			if u.acked >= u.size && len(u.sent) == 0 && !ca.Complete {
				u.deadline = e.opts.Now().Add(e.backoff(e.opts.AckTimeout, u.tries))
			}
		}
		if ca.Complete {
			octx, cancel := e.opCtx(ctx)
			err := e.box.MarkBlobComplete(octx, u.blob)
			cancel()
			if err != nil {
				e.storeTrouble(err)
				return true
			}
			e.dropUpload(u)
			e.count(func(s *Stats) { s.BlobsComplete++ })
			e.emit(Event{Kind: EventBlobComplete, Record: u.record, Blob: u.blob})
		}
		return true
	case protocol.AckRejected:
		e.log.Warn("the server refused a chunk; trying the blob again later",
			"blob", u.blob, "record", u.record, "offset", ca.Offset, "reason", ca.Reason)
		e.skip(u)
		e.count(func(s *Stats) { s.BlobsRejected++ })
		e.emit(Event{Kind: EventBlobRejected, Record: u.record, Blob: u.blob, Reason: ca.Reason})
		return true
	}
	return false
}
