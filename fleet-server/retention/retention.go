// Package retention enforces how long the fleet server keeps what devices
// send, and erases on request.
//
// # Policy
//
// Sealed bodies and blobs leave the server when the procedure accepts the
// record (fleet-server/delivery deletes them in the ack's transaction).
// What stays undelivered is deleted at a hard limit per record kind,
// counted from the server's receipt of the record: biometric kinds
// (kiosk.application) after Options.Biometric (default 96 h), others after
// Options.Limits[kind] or Options.Undelivered (default 14 days). Deleting a
// body keeps the record's metadata, marks the record erased (its delivery
// too, so that it is never leased again), tells the device (RecordStatus
// Erased), writes an audit entry, counts kogge_retention_expired_total and
// logs an alert. Record metadata (no personal data) goes after
// Options.Metadata (default 400 days), audited in aggregate.
//
// [Sweeper.Run] enforces the policy every Options.Every; [Sweeper.Sweep]
// is one pass, for tests and tools.
//
// # Erasure
//
// [Sweeper.Erase] removes the body and blobs of a record, by record id or by
// the procedure's reference number, everywhere on the server: the record,
// its blob chunks, and its delivery if still pending (state erased). The
// device is told and every erased record is audited, as is the request.
package retention

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kogge-fleet/kogge/fleet-server/audit"
	"github.com/kogge-fleet/kogge/fleet-server/store"
)

// Defaults of the policy.
const (
	DefaultBiometric   = 96 * time.Hour
	DefaultUndelivered = 14 * 24 * time.Hour
	DefaultMetadata    = 400 * 24 * time.Hour
	DefaultEvery       = 5 * time.Minute
)

// DefaultBiometricKinds are the record kinds that carry biometrics.
var DefaultBiometricKinds = []string{"kiosk.application"}

// Audit actions of this package.
const (
	ActionExpired         = "retention.expired"
	ActionMetadataDeleted = "retention.metadata_deleted"
	ActionErasure         = "erasure.request"
	ActionErased          = "erasure.record"
)

// ErrInvalid is returned for an erasure request that names nothing usable.
var ErrInvalid = errors.New("invalid erasure request")

// Notifier tells devices the statuses stored for them (delivery.Queue).
type Notifier interface {
	Notify(ctx context.Context, devices ...string)
}

// Options are the optional settings of New.
type Options struct {
	Logger *slog.Logger
	// Registerer receives the metrics; nil registers none.
	Registerer prometheus.Registerer
	// Clock returns the current time; default time.Now.
	Clock func() time.Time
	// BiometricKinds are the kinds held at most Biometric; default
	// DefaultBiometricKinds.
	BiometricKinds []string
	// Biometric is the hard limit for undelivered biometric records;
	// default 96 h.
	Biometric time.Duration
	// Limits sets the limit of other kinds by kind.
	Limits map[string]time.Duration
	// Undelivered is the limit of every other kind; default 14 days.
	Undelivered time.Duration
	// Metadata is how long record metadata is kept; default 400 days. It
	// must exceed every body limit.
	Metadata time.Duration
	// Every is the sweep interval of Run; default 5 min.
	Every time.Duration
	// Ticks, when set, drives Run instead of a ticker of Every (tests).
	Ticks <-chan time.Time
	// Batch bounds the records of one step; default 500.
	Batch int
}

func (o *Options) defaults() {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.BiometricKinds == nil {
		o.BiometricKinds = slices.Clone(DefaultBiometricKinds)
	}
	set := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	set(&o.Biometric, DefaultBiometric)
	set(&o.Undelivered, DefaultUndelivered)
	set(&o.Metadata, DefaultMetadata)
	set(&o.Every, DefaultEvery)
	if o.Batch == 0 {
		o.Batch = 500
	}
}

// Validate checks the options after defaults are filled in.
func (o *Options) Validate() error {
	var errs []error
	limits := map[string]time.Duration{}
	for _, k := range o.BiometricKinds {
		limits[k] = o.Biometric
	}
	for k, d := range o.Limits {
		if slices.Contains(o.BiometricKinds, k) {
			errs = append(errs, fmt.Errorf("retention of kind %s: it is biometric; set the biometric limit instead", k))
		}
		limits[k] = d
	}
	limits["(others)"] = o.Undelivered
	for k, d := range limits {
		if d < time.Minute {
			errs = append(errs, fmt.Errorf("retention of kind %s: %v, at least 1m", k, d))
		}
		if d >= o.Metadata {
			errs = append(errs, fmt.Errorf("retention of kind %s: %v is not below the metadata retention %v", k, d, o.Metadata))
		}
	}
	if o.Every <= 0 || o.Batch < 0 {
		errs = append(errs, errors.New("retention sweep interval must be positive, batch not negative"))
	}
	return errors.Join(errs...)
}

// Sweeper enforces the retention policy and erases on request.
type Sweeper struct {
	db     *store.DB
	notify Notifier
	opts   Options
	log    *slog.Logger

	expired  *prometheus.CounterVec
	metadata prometheus.Counter
	erasures prometheus.Counter
	erased   prometheus.Counter
}

// New returns a sweeper over db that tells devices through n.
func New(db *store.DB, n Notifier, opts Options) (*Sweeper, error) {
	if db == nil || n == nil {
		return nil, errors.New("retention: store and notifier are required")
	}
	opts.defaults()
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("retention: %w", err)
	}
	s := &Sweeper{
		db: db, notify: n, opts: opts, log: opts.Logger,
		expired: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kogge_retention_expired_total",
			Help: "Records whose body and blobs were deleted undelivered at their retention limit, by kind.",
		}, []string{"kind"}),
		metadata: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kogge_retention_metadata_deleted_total", Help: "Record metadata rows deleted at the metadata retention.",
		}),
		erasures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kogge_erasure_requests_total", Help: "Erasure requests served.",
		}),
		erased: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kogge_erasure_records_total", Help: "Records whose body and blobs an erasure request deleted.",
		}),
	}
	if opts.Registerer != nil {
		for _, c := range []prometheus.Collector{s.expired, s.metadata, s.erasures, s.erased} {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("retention: register metrics: %w", err)
			}
		}
	}
	return s, nil
}

// Run sweeps at once and then every Options.Every (or on each of
// Options.Ticks) until ctx ends.
func (s *Sweeper) Run(ctx context.Context) error {
	ticks := s.opts.Ticks
	if ticks == nil {
		t := time.NewTicker(s.opts.Every)
		defer t.Stop()
		ticks = t.C
	}
	for {
		if _, err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("retention sweep failed; trying again at the next one", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticks:
		}
	}
}

// Report is what one sweep did.
type Report struct {
	// Expired counts the bodies deleted at their limit, by kind.
	Expired map[string]int
	// MetadataRecords and MetadataRejections count the metadata rows
	// deleted.
	MetadataRecords    int
	MetadataRejections int
}

// policy is one limit: for kinds, or (except) for all kinds but these.
type policy struct {
	kinds  []string
	except bool
	limit  time.Duration
	label  string
}

func (s *Sweeper) policies() []policy {
	ps := []policy{{kinds: s.opts.BiometricKinds, limit: s.opts.Biometric, label: "biometric"}}
	named := slices.Clone(s.opts.BiometricKinds)
	for k, d := range s.opts.Limits {
		ps = append(ps, policy{kinds: []string{k}, limit: d, label: k})
		named = append(named, k)
	}
	return append(ps, policy{kinds: named, except: true, limit: s.opts.Undelivered, label: "other kinds"})
}

// Sweep is one pass: it deletes the bodies held past their limit, then the
// metadata past its age.
func (s *Sweeper) Sweep(ctx context.Context) (Report, error) {
	rep := Report{Expired: map[string]int{}}
	now := s.opts.Clock()
	for _, p := range s.policies() {
		for {
			held, err := s.db.HeldRecords(ctx, p.kinds, p.except, now.Add(-p.limit).UnixMilli(), s.opts.Batch)
			if err != nil {
				return rep, err
			}
			if len(held) == 0 {
				break
			}
			keys := make([]store.RecordKey, len(held))
			for i, h := range held {
				keys[i] = h.RecordKey
			}
			erased, err := s.db.EraseRecords(ctx, keys, store.Erasure{
				Actor: audit.System, Action: ActionExpired,
				Details: map[string]any{"policy": p.label, "limit_hours": p.limit.Hours()},
			}, now.UnixMilli())
			s.expiredDone(ctx, erased, p, now, rep.Expired)
			if err != nil {
				return rep, err
			}
			if len(held) < s.opts.Batch {
				break
			}
		}
	}
	for {
		del, err := s.db.DeleteRecordMetadata(ctx, now.Add(-s.opts.Metadata).UnixMilli(), s.opts.Batch, audit.System, now.UnixMilli())
		if err != nil {
			return rep, err
		}
		rep.MetadataRecords += del.Records
		rep.MetadataRejections += del.Rejections
		s.metadata.Add(float64(del.Records))
		if del.Records < s.opts.Batch && del.Rejections < s.opts.Batch {
			break
		}
	}
	if rep.MetadataRecords+rep.MetadataRejections > 0 {
		s.log.Info("retention: deleted old record metadata", "records", rep.MetadataRecords,
			"rejections", rep.MetadataRejections, "older_than", s.opts.Metadata)
	}
	return rep, nil
}

// expiredDone alerts, counts and tells the devices of records erased at
// their limit.
func (s *Sweeper) expiredDone(ctx context.Context, erased []store.ErasedRecord, p policy, now time.Time, counts map[string]int) {
	var devices []string
	for _, e := range erased {
		counts[e.Kind]++
		s.expired.WithLabelValues(e.Kind).Inc()
		state := e.Delivery
		if state == "" {
			state = "incomplete (blobs still arriving)"
		}
		s.log.Error("ALERT retention: record not delivered within its limit; its body and blobs are deleted",
			"record", e.ID, "device", e.Device, "kind", e.Kind, "office", e.Office, "limit", p.limit,
			"delivery_state", state)
		devices = append(devices, e.Device)
	}
	s.notify.Notify(ctx, devices...)
}

// Request is an erasure request: by record id or by the procedure's
// reference number (one of them), made by actor.
type Request struct {
	Record    uuid.UUID
	Reference string
	Actor     string
}

// ErasureResult says what an erasure request found and did.
type ErasureResult struct {
	// Records are the records the request names.
	Records []ErasedRecord
	// Erased counts those whose body and blobs were deleted now.
	Erased int
}

// ErasedRecord is one record an erasure request named.
type ErasedRecord struct {
	Device string
	ID     uuid.UUID
	// Erased is set when its body and blobs were deleted now; otherwise
	// the server held none of them any more (accepted, discarded, erased).
	Erased bool
}

// Erase removes the body and blobs of the records req names everywhere on
// the server, tells their devices and audits the request and every erased
// record. A request that names no stored record is no error: it is
// audited and erases nothing.
func (s *Sweeper) Erase(ctx context.Context, req Request) (ErasureResult, error) {
	if (req.Record == uuid.Nil) == (req.Reference == "") {
		return ErasureResult{}, fmt.Errorf("%w: name either a record id or a reference number", ErrInvalid)
	}
	if req.Actor == "" {
		return ErasureResult{}, fmt.Errorf("%w: no actor", ErrInvalid)
	}
	var keys []store.RecordKey
	var err error
	target, by := "record:"+req.Record.String(), "record"
	if req.Reference != "" {
		if len(req.Reference) > 1024 || !utf8.ValidString(req.Reference) || strings.TrimSpace(req.Reference) == "" {
			return ErasureResult{}, fmt.Errorf("%w: reference must be 1 to 1024 bytes of text", ErrInvalid)
		}
		target, by = "reference:"+req.Reference, "reference"
		keys, err = s.db.RecordsByReference(ctx, req.Reference)
	} else {
		keys, err = s.db.RecordsByID(ctx, req.Record)
	}
	if err != nil {
		return ErasureResult{}, err
	}
	now := s.opts.Clock()
	erased, err := s.db.EraseRecords(ctx, keys, store.Erasure{
		Actor: req.Actor, Action: ActionErased, Details: map[string]any{"request": target},
	}, now.UnixMilli())
	res := ErasureResult{Records: []ErasedRecord{}}
	done := map[store.RecordKey]bool{}
	var devices []string
	for _, e := range erased {
		done[e.RecordKey] = true
		devices = append(devices, e.Device)
	}
	for _, k := range keys {
		res.Records = append(res.Records, ErasedRecord{Device: k.Device, ID: k.ID, Erased: done[k]})
	}
	res.Erased = len(erased)
	s.erasures.Inc()
	s.erased.Add(float64(len(erased)))
	s.notify.Notify(ctx, devices...)
	if err != nil {
		return res, err
	}
	if _, aerr := s.db.AppendAudit(ctx, store.AuditEvent{Actor: req.Actor, Action: ActionErasure, Target: target,
		Details: map[string]any{"by": by, "records": len(keys), "erased": len(erased)}}, now.UnixMilli()); aerr != nil {
		return res, fmt.Errorf("erasure done, but its audit entry failed: %w", aerr)
	}
	s.log.Info("erasure request served", "target", target, "records", len(keys), "erased", len(erased), "actor", req.Actor)
	return res, nil
}
