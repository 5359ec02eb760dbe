// Package audit is the fleet server's audit log: every admin action, every
// deletion of personal data (after acceptance, by retention, by erasure, by
// discarding a dead letter) and every access to personal data lands in it.
//
// The log lives in the store (store/audit.go, migration 0041). It is
// append-only (database triggers refuse changes) and hash chained: entry n
// holds the SHA-256 of entry n−1 (prev_hash) and its own hash over a
// canonical encoding of seq, time, actor, action, target, details and
// prev_hash (store.AuditHash); a head row holds the last entry's number and
// hash. [Log.Verify] walks the chain and names the first entry that does not
// fit: changed, missing, or missing at the end.
//
// What the chain proves: that no entry was changed, removed or inserted
// since it was written, unless the head and every later hash were rewritten
// too, which needs the canonical encoding and write access to the
// database. Anchoring the head elsewhere from time to time (print
// `koggectl audit verify` into a ticket) closes that gap.
//
// Entries name their subject in Target ("record:<id>", "device:<id>",
// "group:<id>", "office:<name>", …) and carry details as a JSON object,
// which must never hold personal data: ids, counts, states and reasons
// only.
//
// Actors: "api-token:<id>" for the REST API (see [APIToken]), "system" for
// the server's own work (retention), "bridge.<office>" for a bridge (see
// [Bridge]). Deletions made inside another component's transaction
// (delivery acceptance, dead letters, retention, erasure) are appended by
// the store in that transaction; this package appends the rest.
package audit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/kogge-fleet/kogge/fleet-server/store"
)

// System is the actor of the server's own work.
const System = "system"

// ActionPersonalDataAccess is the action of an access to personal data.
const ActionPersonalDataAccess = "personal_data.access"

// APIToken returns the actor for requests authenticated with an API token:
// "api-token:" and the first 12 hex digits of the token's SHA-256, so that
// the entry names the token without revealing it.
func APIToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return "api-token:" + hex.EncodeToString(sum[:6])
}

// Bridge returns the actor of an office's bridge: "bridge.<office>", the
// common name of its certificate.
func Bridge(office string) string { return "bridge." + office }

type actorKey struct{}

// WithActor returns ctx carrying actor, for components that audit on behalf
// of whoever called them.
func WithActor(ctx context.Context, actor string) context.Context {
	return context.WithValue(ctx, actorKey{}, actor)
}

// ActorFrom returns the actor ctx carries, or "".
func ActorFrom(ctx context.Context) string {
	a, _ := ctx.Value(actorKey{}).(string)
	return a
}

// Entry is one entry of the log.
type Entry struct {
	Seq     int64           `json:"seq"`
	At      time.Time       `json:"at"`
	Actor   string          `json:"actor"`
	Action  string          `json:"action"`
	Target  string          `json:"target,omitempty"`
	Details json.RawMessage `json:"details"`
	// PrevHash and Hash are hex.
	PrevHash string `json:"prev_hash"`
	Hash     string `json:"hash"`
}

func entryFrom(e store.AuditEntry) Entry {
	details := json.RawMessage(e.Details)
	if !json.Valid(details) {
		// A damaged entry is still shown; Verify says what is wrong.
		details, _ = json.Marshal(e.Details)
	}
	return Entry{
		Seq: e.Seq, At: time.UnixMilli(e.At).UTC(), Actor: e.Actor, Action: e.Action, Target: e.Target,
		Details: details, PrevHash: hex.EncodeToString(e.PrevHash), Hash: hex.EncodeToString(e.Hash),
	}
}

// Options are the optional settings of New.
type Options struct {
	Logger *slog.Logger
	// Clock is the time of new entries; default time.Now.
	Clock func() time.Time
}

// Log is the audit log.
type Log struct {
	db    *store.DB
	log   *slog.Logger
	clock func() time.Time
}

// New returns the audit log kept in db.
func New(db *store.DB, opts Options) (*Log, error) {
	if db == nil {
		return nil, errors.New("audit: no store")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	return &Log{db: db, log: opts.Logger, clock: opts.Clock}, nil
}

// Record appends an entry. details must not hold personal data.
func (l *Log) Record(ctx context.Context, actor, action, target string, details map[string]any) (Entry, error) {
	e, err := l.db.AppendAudit(ctx, store.AuditEvent{Actor: actor, Action: action, Target: target, Details: details},
		l.clock().UnixMilli())
	if err != nil {
		return Entry{}, fmt.Errorf("write audit entry %s: %w", action, err)
	}
	return entryFrom(e), nil
}

// PersonalDataAccess records that actor accessed personal data of target
// (e.g. "record:<id>") for purpose. The server holds no readable personal
// data today; whatever comes to show some calls this first.
func (l *Log) PersonalDataAccess(ctx context.Context, actor, target, purpose string) error {
	_, err := l.Record(ctx, actor, ActionPersonalDataAccess, target, map[string]any{"purpose": purpose})
	return err
}

// Filter selects entries: see store.AuditFilter.
type Filter = store.AuditFilter

// List returns the entries f selects.
func (l *Log) List(ctx context.Context, f Filter) ([]Entry, error) {
	es, err := l.db.AuditEntries(ctx, f)
	if err != nil {
		return nil, err
	}
	out := make([]Entry, len(es))
	for i, e := range es {
		out[i] = entryFrom(e)
	}
	return out, nil
}

// BrokenError is a break in the chain: the first entry that does not fit.
type BrokenError struct {
	// Seq is the number of the first broken (or first missing) entry.
	Seq int64
	// Reason says what is wrong with it.
	Reason string
}

func (e *BrokenError) Error() string {
	return fmt.Sprintf("audit log broken at entry %d: %s", e.Seq, e.Reason)
}

// ErrBroken is matched by every *BrokenError (errors.Is).
var ErrBroken = errors.New("audit log broken")

func (e *BrokenError) Is(target error) bool { return target == ErrBroken }

// Verify walks the chain from the first entry and returns the number of
// entries that check out. The first entry that does not fit ends the walk
// with a *BrokenError: one whose content does not match its hash (changed
// after it was written), one whose prev_hash is not its predecessor's hash,
// a gap in the numbering (entries deleted), or a log that ends before the
// head (its last entries deleted). Entries appended while Verify runs are
// checked too.
func (l *Log) Verify(ctx context.Context) (int, error) {
	headSeq, headHash, err := l.db.AuditHead(ctx)
	if err != nil {
		return 0, err
	}
	prev := make([]byte, sha256.Size)
	var next int64 = 1
	n := 0
	err = l.db.WalkAudit(ctx, func(e store.AuditEntry) error {
		switch {
		case e.Seq > next:
			return &BrokenError{Seq: next, Reason: fmt.Sprintf("entry %d is missing: entry %d follows entry %d", next, e.Seq, next-1)}
		case string(store.AuditHash(e)) != string(e.Hash):
			return &BrokenError{Seq: e.Seq, Reason: "its content does not match its hash: it was changed after it was written"}
		case string(e.PrevHash) != string(prev):
			return &BrokenError{Seq: e.Seq, Reason: fmt.Sprintf("its prev_hash is not the hash of entry %d: the chain was rewritten here", e.Seq-1)}
		case e.Seq == headSeq && string(e.Hash) != string(headHash):
			return &BrokenError{Seq: e.Seq, Reason: "it is not the entry the head names: the log was rewritten from here"}
		}
		prev = e.Hash
		next++
		n++
		return nil
	})
	if err != nil {
		return n, err
	}
	if next-1 < headSeq {
		return n, &BrokenError{Seq: next, Reason: fmt.Sprintf("the log ends at entry %d, the head names entry %d: entries %d to %d are missing",
			next-1, headSeq, next, headSeq)}
	}
	return n, nil
}
