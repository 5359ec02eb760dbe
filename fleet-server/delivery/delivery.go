// Package delivery keeps one durable queue per destination office and leases
// its records to that office's bridge.
//
// # The queue
//
// The ingest queues a record (store.IngestTx.EnqueueDelivery) in the
// transaction that stores it, or that completes its last blob: a record is
// deliverable once it and all its blobs are stored. A bridge leases a batch
// of its office's records ([Queue.Lease]) for a visibility timeout; each
// lease counts an attempt. On PostgreSQL the lease takes the rows with
// SELECT … FOR UPDATE SKIP LOCKED, so that bridges on several replicas never
// get the same record; on SQLite the single writer makes one conditional
// UPDATE enough. A lease that expires is leased again, unless its attempt
// was the last (Options.MaxAttempts): then the record becomes a dead letter.
//
// The bridge ends a lease with [Queue.Ack] and the procedure's receipt: the
// record is accepted, its sealed body and its blobs' bytes are deleted at
// once in the same transaction (metadata, sizes, digests and the reference
// stay), an audit entry is written, and the device is told (RecordStatus
// Accepted with the reference). Or it reports a failure ([Queue.Fail]): a
// temporary one puts the record back, due again after a backoff with
// jitter; a permanent one (the procedure refused it; the record is sealed
// for a key the office no longer holds: "unknown key") or the last attempt
// makes a dead letter, and the device is told Failed. Later news from the
// procedure ([Queue.Update]: in progress, closed) goes to the device too.
//
// Admins list, inspect (metadata only, never the sealed body), replay
// (back into the queue with attempts reset) and discard (body and blobs
// deleted) dead letters; replay and discard are audited.
//
// # Status to devices
//
// Devices keep clean MQTT sessions, so a status published while a device
// is offline would be lost. Every status is stored with the delivery and
// counts as sent only once it was published while the device was online;
// when a device connects ([Queue.Connected]) it gets its unsent statuses
// and, against a disconnect that presence has not noticed yet, those of
// the last Options.StatusResend again. Run publishes what is left over.
//
// # Bridges over HTTPS
//
// [NewHandler] serves the same operations under /bridge/v1 for bridges in
// their own process (kogge-bridge) with a client certificate from the fleet
// CA; fleet-server/delivery/bridgeclient is their client. See http.go.
package delivery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kogge-fleet/kogge/fleet-server/audit"
	"github.com/kogge-fleet/kogge/fleet-server/store"
	"github.com/kogge-fleet/kogge/protocol"
)

// Errors that callers act on.
var (
	// ErrLeaseLost: the lease expired and the record was leased again (to
	// this or another bridge), or the record left the queue. Drop the
	// delivery; whoever holds it now finishes it.
	ErrLeaseLost = errors.New("lease lost")
	// ErrNotFound: no such record in any queue, or no such blob.
	ErrNotFound = errors.New("not found")
	// ErrInvalid: the call's arguments are not acceptable.
	ErrInvalid = errors.New("invalid")
	// ErrNotDeadLetter: replay or discard of a record that is no dead
	// letter.
	ErrNotDeadLetter = errors.New("not a dead letter")
)

// Delivery is one record leased to a bridge.
type Delivery struct {
	// ID is the record id (one record has one destination office). It is
	// the idempotency key for the procedure: a redelivery of the same
	// record must never create a second case.
	ID uuid.UUID
	// Attempt is 1 for the first lease and counts every lease.
	Attempt     int
	LeasedUntil time.Time
	Device      string
	Seq         uint64
	Kind        string
	Office      string
	KeyID       string
	CreatedAt   time.Time
	// Meta is non-personal metadata.
	Meta map[string]string
	// Sealed is the sealed body, opaque to the server.
	Sealed []byte
	// Blobs are the sealed blobs, fetched with Blob.
	Blobs []protocol.BlobRef
}

// Receipt is the procedure's answer to a delivery.
type Receipt struct {
	// Reference is the procedure's reference number (its case id).
	Reference string
	Note      string
}

// Publisher sends messages to devices: the broker.
type Publisher interface {
	Publish(topic string, payload []byte, retained bool) error
}

// MaxLeaseLimit bounds Options.MaxLease, so that a lease response stays
// within MaxLeaseResponse.
const MaxLeaseLimit = 128

// Options are the optional settings of New.
type Options struct {
	Logger *slog.Logger
	// Registerer receives the metrics; nil registers none.
	Registerer prometheus.Registerer
	// Clock returns the current time; default time.Now.
	Clock func() time.Time
	// MaxAttempts is how many leases a record gets before it becomes a
	// dead letter; default 10.
	MaxAttempts int
	// RetryBase and RetryMax bound the wait after a temporary failure:
	// RetryBase·2^(attempt−1), at most RetryMax, with up to a quarter of
	// jitter; defaults 5 s and 10 min.
	RetryBase time.Duration
	RetryMax  time.Duration
	// MaxLease bounds the records of one lease; default 64, at most
	// MaxLeaseLimit.
	MaxLease int
	// MinVisibility and MaxVisibility bound a lease's visibility timeout;
	// defaults 1 s and 1 h.
	MinVisibility time.Duration
	MaxVisibility time.Duration
	// StatusResend is how far back a connecting device gets its statuses
	// again; default 10 min.
	StatusResend time.Duration
	// SweepEvery is how often Run dead-letters expired last attempts and
	// publishes unsent statuses; default 5 s.
	SweepEvery time.Duration
	// PublishTimeout bounds a status publication; default 10 s.
	PublishTimeout time.Duration
	// Jitter returns a random duration in [0, d); default math/rand.
	Jitter func(d time.Duration) time.Duration
}

func (o *Options) defaults() {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Jitter == nil {
		o.Jitter = func(d time.Duration) time.Duration {
			if d <= 0 {
				return 0
			}
			return rand.N(d)
		}
	}
	set := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	if o.MaxAttempts == 0 {
		o.MaxAttempts = 10
	}
	if o.MaxLease == 0 {
		o.MaxLease = 64
	}
	set(&o.RetryBase, 5*time.Second)
	set(&o.RetryMax, 10*time.Minute)
	set(&o.MinVisibility, time.Second)
	set(&o.MaxVisibility, time.Hour)
	set(&o.StatusResend, 10*time.Minute)
	set(&o.SweepEvery, 5*time.Second)
	set(&o.PublishTimeout, 10*time.Second)
}

// Validate checks the options after defaults are filled in.
func (o *Options) Validate() error {
	switch {
	case o.MaxAttempts < 1 || o.MaxAttempts > 1000:
		return fmt.Errorf("delivery max attempts %d: want 1 to 1000", o.MaxAttempts)
	case o.MaxLease < 1 || o.MaxLease > MaxLeaseLimit:
		return fmt.Errorf("delivery max lease %d: want 1 to %d", o.MaxLease, MaxLeaseLimit)
	case o.RetryBase <= 0 || o.RetryMax < o.RetryBase:
		return fmt.Errorf("delivery retry base %v and max %v: want 0 < base <= max", o.RetryBase, o.RetryMax)
	case o.MinVisibility <= 0 || o.MaxVisibility < o.MinVisibility:
		return fmt.Errorf("delivery visibility bounds %v to %v: want 0 < min <= max", o.MinVisibility, o.MaxVisibility)
	case o.StatusResend < 0 || o.SweepEvery <= 0 || o.PublishTimeout <= 0:
		return errors.New("delivery status resend must not be negative, sweep and publish timeout must be positive")
	}
	return nil
}

// Queue is the delivery queues of all offices. Its methods are safe for
// concurrent use; several Queues (on several replicas) may share one
// PostgreSQL store.
type Queue struct {
	db   *store.DB
	pub  Publisher
	opts Options
	log  *slog.Logger
	m    *metrics

	connected chan string
	seq       atomic.Uint64
}

// New returns the queues kept in db; statuses go to devices through pub.
func New(db *store.DB, pub Publisher, opts Options) (*Queue, error) {
	if db == nil || pub == nil {
		return nil, errors.New("delivery: store and publisher are required")
	}
	opts.defaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	q := &Queue{db: db, pub: pub, opts: opts, log: opts.Logger, connected: make(chan string, 1024)}
	var err error
	if q.m, err = newMetrics(opts.Registerer, db, opts.Clock, opts.Logger); err != nil {
		return nil, err
	}
	return q, nil
}

// sentinelError gives a store error the sentinel of this package.
type sentinelError struct {
	kind error
	err  error
}

func (e *sentinelError) Error() string        { return e.err.Error() }
func (e *sentinelError) Unwrap() error        { return e.err }
func (e *sentinelError) Is(target error) bool { return target == e.kind }

// translate maps the store's errors to this package's sentinels.
func translate(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrLeaseLost):
		return &sentinelError{ErrLeaseLost, err}
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrBlobIncomplete):
		return &sentinelError{ErrNotFound, err}
	case errors.Is(err, store.ErrNotDeadLetter):
		return &sentinelError{ErrNotDeadLetter, err}
	}
	return err
}

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// ValidateOffice checks an office name: what protocol.Record accepts, 1 to
// 64 characters of A–Z, a–z, 0–9, '.', '_' and '-', starting with a letter
// or digit.
func ValidateOffice(office string) error {
	// The rules of device ids and office names are the same (protocol).
	if err := protocol.ValidateDeviceID(office); err != nil {
		detail := err.Error()
		var pe *protocol.Error
		if errors.As(err, &pe) && pe.Detail != "" {
			detail = pe.Detail
		}
		return invalidf("office %q: %s", clip(office), detail)
	}
	return nil
}

// checkText accepts UTF-8 text that fits a status (protocol.MaxTextLen).
func checkText(field, s string) error {
	if len(s) > protocol.MaxTextLen {
		return invalidf("%s: %d bytes, at most %d", field, len(s), protocol.MaxTextLen)
	}
	if !utf8.ValidString(s) {
		return invalidf("%s: not valid UTF-8", field)
	}
	return nil
}

// clipText bounds free text to what a status may carry.
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

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// Lease leases up to max of office's records for visibility (clamped to
// Options.MinVisibility..MaxVisibility; max to Options.MaxLease), oldest
// first: queued ones that are due and ones whose lease expired.
func (q *Queue) Lease(ctx context.Context, office string, max int, visibility time.Duration) ([]Delivery, error) {
	if err := ValidateOffice(office); err != nil {
		return nil, err
	}
	if max < 1 {
		return nil, invalidf("max %d: lease at least one record", max)
	}
	if visibility <= 0 {
		return nil, invalidf("visibility %v: must be positive", visibility)
	}
	max = min(max, q.opts.MaxLease)
	visibility = min(q.opts.MaxVisibility, visibility)
	visibility = maxDuration(q.opts.MinVisibility, visibility)
	now := q.opts.Clock()
	leased, dead, err := q.db.LeaseDeliveries(ctx, store.LeaseOptions{
		Office: office, Max: max, Until: now.Add(visibility).UnixMilli(),
		MaxAttempts: q.opts.MaxAttempts, Now: now.UnixMilli(),
	})
	if err != nil {
		return nil, err
	}
	q.deadLettered(ctx, dead)
	out := make([]Delivery, len(leased))
	for i, l := range leased {
		out[i] = Delivery{
			ID: l.Record, Attempt: l.Attempt, LeasedUntil: time.UnixMilli(l.LeasedUntil).UTC(),
			Device: l.Device, Seq: l.Seq, Kind: l.Kind, Office: l.Office, KeyID: l.KeyID,
			CreatedAt: time.UnixMilli(l.CreatedAt).UTC(), Meta: l.Meta, Sealed: l.Sealed, Blobs: l.Blobs,
		}
		if l.Attempt > 1 {
			q.m.redelivered.WithLabelValues(office).Inc()
		}
	}
	q.m.leased.WithLabelValues(office).Add(float64(len(out)))
	return out, nil
}

func maxDuration(a, b time.Duration) time.Duration {
	if a > b {
		return a
	}
	return b
}

// deadLettered counts, logs and tells the devices of records that became
// dead letters because their last lease expired.
func (q *Queue) deadLettered(ctx context.Context, dead []store.Delivery) {
	if len(dead) == 0 {
		return
	}
	var devices []string
	for _, d := range dead {
		q.m.failures.WithLabelValues(d.Office, failLeaseExpired).Inc()
		q.m.deadLetters.WithLabelValues(d.Office).Inc()
		q.log.Warn("delivery: record is a dead letter: its last lease expired", "record", d.Record, "office", d.Office,
			"device", d.Device, "attempts", d.Attempt)
		devices = append(devices, d.Device)
	}
	q.Notify(ctx, devices...)
}

// Blob writes the bytes of a sealed blob of a queued record to w.
// ErrNotFound when there is no such record or blob, or the body is deleted.
func (q *Queue) Blob(ctx context.Context, id, blob uuid.UUID, w io.Writer) error {
	_, err := q.db.DeliveryBlob(ctx, id, blob, w)
	return translate(err)
}

// BlobInfo returns the declared size and digest of a blob of a queued
// record whose body is still held: what Blob will write.
func (q *Queue) BlobInfo(ctx context.Context, id, blob uuid.UUID) (protocol.BlobRef, error) {
	d, err := q.db.DeliveryOf(ctx, id)
	if err != nil {
		return protocol.BlobRef{}, translate(err)
	}
	rec, err := q.db.Record(ctx, d.Device, id)
	if err != nil {
		return protocol.BlobRef{}, translate(err)
	}
	if rec.Erased {
		return protocol.BlobRef{}, fmt.Errorf("%w: the body of record %v is deleted", ErrNotFound, id)
	}
	for _, b := range rec.Blobs {
		if b.ID == blob {
			return protocol.BlobRef{ID: b.ID, Role: b.Role, Size: b.Size, SHA256: b.SHA256}, nil
		}
	}
	return protocol.BlobRef{}, fmt.Errorf("%w: record %v has no blob %v", ErrNotFound, id, blob)
}

// Ack records the procedure's receipt for the lease attempt: the record is
// accepted, its sealed body and blobs are deleted, the device is told.
// ErrLeaseLost when the lease expired and the record was leased again
// since; a second Ack of an acked record is harmless (nil). The audit
// entry names the actor ctx carries (audit.WithActor), else the office's
// bridge.
func (q *Queue) Ack(ctx context.Context, id uuid.UUID, attempt int, r Receipt) error {
	if attempt < 1 {
		return invalidf("attempt %d: acks name the attempt of their lease, from 1", attempt)
	}
	if strings.TrimSpace(r.Reference) == "" {
		return invalidf("reference: an ack carries the procedure's reference number")
	}
	if err := checkText("reference", r.Reference); err != nil {
		return err
	}
	if err := checkText("note", r.Note); err != nil {
		return err
	}
	now := q.opts.Clock()
	res, err := q.db.AckDelivery(ctx, id, attempt, r.Reference, r.Note, audit.ActorFrom(ctx), now.UnixMilli())
	if err != nil {
		return translate(err)
	}
	if res.Accepted {
		d := res.Delivery
		q.m.accepted.WithLabelValues(d.Office).Inc()
		q.m.latency.WithLabelValues(d.Office).Observe(float64(now.UnixMilli()-d.EnqueuedAt) / 1000)
		q.log.Debug("delivery: accepted; body and blobs deleted", "record", id, "office", d.Office,
			"reference", r.Reference, "bytes_deleted", res.BytesDeleted)
		q.Notify(ctx, d.Device)
	}
	return nil
}

// Fail records a failed lease attempt. A temporary failure puts the record
// back into the queue after a backoff; a permanent one, or the last
// attempt, makes it a dead letter with reason, and the device is told.
// ErrLeaseLost as for Ack.
func (q *Queue) Fail(ctx context.Context, id uuid.UUID, attempt int, reason string, permanent bool) error {
	if attempt < 1 {
		return invalidf("attempt %d: failures name the attempt of their lease, from 1", attempt)
	}
	if strings.TrimSpace(reason) == "" {
		return invalidf("reason: say why the delivery failed")
	}
	reason = clipText(reason)
	now := q.opts.Clock()
	res, err := q.db.FailDelivery(ctx, id, store.FailOptions{
		Attempt: attempt, Reason: reason, Permanent: permanent, MaxAttempts: q.opts.MaxAttempts,
		RetryAt: now.Add(q.backoff(attempt)).UnixMilli(), Now: now.UnixMilli(),
	})
	if err != nil {
		return translate(err)
	}
	d := res.Delivery
	kind := failTemporary
	if permanent {
		kind = failPermanent
	}
	q.m.failures.WithLabelValues(d.Office, kind).Inc()
	if res.Dead {
		q.m.deadLetters.WithLabelValues(d.Office).Inc()
		q.log.Warn("delivery: record is a dead letter", "record", id, "office", d.Office, "device", d.Device,
			"attempt", attempt, "permanent", permanent, "reason", d.LastError)
		q.Notify(ctx, d.Device)
	}
	return nil
}

// backoff is the wait before a record that failed at attempt is due again.
func (q *Queue) backoff(attempt int) time.Duration {
	d := q.opts.RetryBase
	for i := 1; i < attempt && d < q.opts.RetryMax; i++ {
		d *= 2
	}
	d = min(d, q.opts.RetryMax)
	return d - d/4 + q.opts.Jitter(d/4+1)
}

// Update records later news from the procedure about a record (delivered,
// in progress, closed, failed) and tells the device. A reference replaces
// the stored one. Accepted comes only with Ack, Erased only from the
// server.
func (q *Queue) Update(ctx context.Context, id uuid.UUID, state protocol.DeliveryState, reference, note string) error {
	switch state {
	case protocol.Delivered, protocol.InProgress, protocol.Closed, protocol.Failed:
	case protocol.Accepted:
		return invalidf("state accepted: ack the record with its receipt instead")
	default:
		return invalidf("state %v: want delivered, in-progress, closed or failed", state)
	}
	if err := checkText("reference", reference); err != nil {
		return err
	}
	if err := checkText("note", note); err != nil {
		return err
	}
	d, err := q.db.SetDeliveryStatus(ctx, id, state, reference, note, q.opts.Clock().UnixMilli())
	if err != nil {
		return translate(err)
	}
	q.Notify(ctx, d.Device)
	return nil
}

// OfficeOf returns the office a queued record goes to (ErrNotFound).
func (q *Queue) OfficeOf(ctx context.Context, id uuid.UUID) (string, error) {
	d, err := q.db.DeliveryOf(ctx, id)
	if err != nil {
		return "", translate(err)
	}
	return d.Office, nil
}

// Info is what an admin may see of a delivery: the queue state and the
// record's metadata, never its sealed body.
type Info struct {
	Delivery store.Delivery
	Record   store.Record
}

// Inspect returns a delivery with its record's metadata (ErrNotFound).
func (q *Queue) Inspect(ctx context.Context, id uuid.UUID) (Info, error) {
	d, err := q.db.DeliveryOf(ctx, id)
	if err != nil {
		return Info{}, translate(err)
	}
	rec, err := q.db.Record(ctx, d.Device, id)
	if err != nil {
		return Info{}, translate(err)
	}
	return Info{Delivery: d, Record: rec}, nil
}

// Deliveries lists deliveries in queue order (store.DeliveryFilter).
func (q *Queue) Deliveries(ctx context.Context, f store.DeliveryFilter) ([]store.Delivery, error) {
	return q.db.Deliveries(ctx, f)
}

// Stats returns the queue of every office with open deliveries or dead
// letters.
func (q *Queue) Stats(ctx context.Context) ([]store.OfficeStats, error) {
	return q.db.DeliveryStats(ctx)
}

// Replay puts a dead letter back into its queue with its attempts reset;
// actor is audited. ErrNotDeadLetter, ErrNotFound.
func (q *Queue) Replay(ctx context.Context, id uuid.UUID, actor string) (store.Delivery, error) {
	d, err := q.db.ReplayDeadLetter(ctx, id, actor, q.opts.Clock().UnixMilli())
	if err != nil {
		return store.Delivery{}, translate(err)
	}
	q.log.Info("delivery: dead letter replayed", "record", id, "office", d.Office, "actor", actor)
	return d, nil
}

// Discard drops a dead letter: its sealed body and blobs are deleted, the
// state becomes discarded; actor and reason are audited.
func (q *Queue) Discard(ctx context.Context, id uuid.UUID, reason, actor string) (store.Delivery, error) {
	if err := checkText("reason", reason); err != nil {
		return store.Delivery{}, err
	}
	d, n, err := q.db.DiscardDeadLetter(ctx, id, reason, actor, q.opts.Clock().UnixMilli())
	if err != nil {
		return store.Delivery{}, translate(err)
	}
	q.log.Info("delivery: dead letter discarded; body and blobs deleted", "record", id, "office", d.Office,
		"actor", actor, "bytes_deleted", n)
	return d, nil
}

// Connected tells the queue that a device started a session: it gets its
// unsent statuses and those of the last Options.StatusResend. It never
// blocks (Run does the work).
func (q *Queue) Connected(device string) {
	select {
	case q.connected <- device:
	default:
		// Run is behind; its sweep publishes unsent statuses anyway.
	}
}

// Run dead-letters records whose last lease expired and publishes statuses
// to devices that connect and unsent ones to online devices, until ctx
// ends.
func (q *Queue) Run(ctx context.Context) error {
	tick := time.NewTicker(q.opts.SweepEvery)
	defer tick.Stop()
	q.Sweep(ctx)
	for {
		select {
		case <-ctx.Done():
			return nil
		case device := <-q.connected:
			seen := map[string]bool{device: true}
			q.resend(ctx, device)
		more:
			for {
				select {
				case d := <-q.connected:
					if !seen[d] {
						seen[d] = true
						q.resend(ctx, d)
					}
				default:
					break more
				}
			}
		case <-tick.C:
			q.Sweep(ctx)
		}
	}
}

// Sweep dead-letters records whose last lease expired, in every office, and
// publishes unsent statuses to online devices.
func (q *Queue) Sweep(ctx context.Context) {
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	dead, err := q.db.ExpireLeases(sctx, q.opts.MaxAttempts, q.opts.Clock().UnixMilli())
	if err != nil && ctx.Err() == nil {
		q.log.Warn("delivery: dead-lettering expired leases failed; trying again later", "err", err)
	}
	q.deadLettered(sctx, dead)
	for range 16 {
		ss, err := q.db.UnsentStatuses(sctx, 4*maxStatusItems)
		if err != nil {
			if ctx.Err() == nil {
				q.log.Warn("delivery: reading unsent statuses failed; trying again later", "err", err)
			}
			return
		}
		if q.publish(sctx, ss) == 0 || len(ss) < 4*maxStatusItems {
			return
		}
	}
}

// resend publishes a connecting device's unsent and recent statuses.
func (q *Queue) resend(ctx context.Context, device string) {
	since := q.opts.Clock().Add(-q.opts.StatusResend).UnixMilli()
	ss, err := q.db.DeviceStatuses(ctx, device, since, 8*maxStatusItems)
	if err != nil {
		if ctx.Err() == nil {
			q.log.Warn("delivery: reading statuses of a connecting device failed; they are sent later", "device", device, "err", err)
		}
		return
	}
	q.publish(ctx, ss)
}

// Notify publishes the unsent statuses of devices that are online now.
// Offline devices get them when they connect.
func (q *Queue) Notify(ctx context.Context, devices ...string) {
	seen := map[string]bool{}
	for _, device := range devices {
		if seen[device] {
			continue
		}
		seen[device] = true
		p, err := q.db.Presence(ctx, device)
		if errors.Is(err, store.ErrNotFound) || (err == nil && !p.Online) {
			continue
		}
		if err != nil {
			q.log.Warn("delivery: reading presence failed; the status is sent later", "device", device, "err", err)
			continue
		}
		ss, err := q.db.DeviceStatuses(ctx, device, 1<<62, 8*maxStatusItems)
		if err != nil {
			q.log.Warn("delivery: reading statuses failed; they are sent later", "device", device, "err", err)
			continue
		}
		q.publish(ctx, ss)
	}
}

// maxStatusItems bounds the items of one RecordStatus, well within
// protocol.MaxAckItems and protocol.MaxMessageSize (an item is at most
// about 2 KiB).
const maxStatusItems = 256

// publish sends statuses to their devices, a message per device and up to
// maxStatusItems, and marks what was published sent. It returns how many
// were marked.
func (q *Queue) publish(ctx context.Context, ss []store.StatusUpdate) int {
	var sent []store.StatusUpdate
	now := q.opts.Clock()
	for len(ss) > 0 {
		device := ss[0].Device
		k := 1
		for k < len(ss) && k < maxStatusItems && ss[k].Device == device {
			k++
		}
		part := ss[:k]
		ss = ss[k:]
		msg := &protocol.RecordStatus{}
		for _, s := range part {
			msg.Items = append(msg.Items, protocol.StatusItem{
				Record: s.Record, State: s.State, Reference: s.Reference, Note: clipText(s.Note), At: protocol.Timestamp(s.At),
			})
		}
		if err := q.send(device, msg, now); err != nil {
			q.log.Warn("delivery: publishing a status failed; it is sent again later", "device", device, "err", err)
			continue
		}
		q.m.statuses.Add(float64(len(part)))
		sent = append(sent, part...)
	}
	if len(sent) == 0 {
		return 0
	}
	mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), q.opts.PublishTimeout)
	defer cancel()
	if err := q.db.MarkStatusesSent(mctx, sent, now.UnixMilli()); err != nil {
		q.log.Warn("delivery: noting statuses sent failed; they are sent again", "err", err)
		return 0
	}
	return len(sent)
}

func (q *Queue) send(device string, msg *protocol.RecordStatus, now time.Time) error {
	b, err := protocol.Encode(protocol.NewEnvelope(device, q.seq.Add(1), now, msg))
	if err != nil {
		return fmt.Errorf("encode status: %w", err)
	}
	topic, err := protocol.TopicFor(device, protocol.TypeRecordStatus)
	if err != nil {
		return err
	}
	return q.pub.Publish(topic, b, false)
}
