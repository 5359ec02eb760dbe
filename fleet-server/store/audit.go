package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Audit tables (migration 0041): audit_log, append-only and hash chained,
// and audit_head, the last entry's number and hash. fleet-server/audit
// reads and verifies the log; every component appends through AppendAudit,
// or inside its own transaction through the methods here that take an
// AuditEvent (delivery, retention, erasure), so that a deletion and its
// entry commit together.

// AuditEntry is one entry of the audit log as stored.
type AuditEntry struct {
	// Seq numbers the entries from 1 without gaps.
	Seq int64
	// At is the server's clock, Unix milliseconds.
	At     int64
	Actor  string
	Action string
	Target string
	// Details is a JSON object, exactly the bytes that were hashed.
	Details  string
	PrevHash []byte
	Hash     []byte
}

// AuditEvent is what a caller appends: the store numbers, chains and hashes
// it. Details must not hold personal data.
type AuditEvent struct {
	Actor   string
	Action  string
	Target  string
	Details map[string]any
}

// auditDomain starts the canonical encoding; a new encoding gets a new one.
const auditDomain = "kogge-audit-v1\x00"

// AuditHash returns the SHA-256 of an entry's canonical encoding: the domain
// string, Seq and At as 8-byte big-endian integers, then Actor, Action,
// Target, Details and PrevHash, each as a 4-byte big-endian length and its
// bytes. Hash itself is not part of it.
func AuditHash(e AuditEntry) []byte {
	h := sha256.New()
	h.Write([]byte(auditDomain))
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(e.Seq))
	h.Write(n[:])
	binary.BigEndian.PutUint64(n[:], uint64(e.At))
	h.Write(n[:])
	for _, f := range [][]byte{[]byte(e.Actor), []byte(e.Action), []byte(e.Target), []byte(e.Details), e.PrevHash} {
		binary.BigEndian.PutUint32(n[:4], uint32(len(f)))
		h.Write(n[:4])
		h.Write(f)
	}
	return h.Sum(nil)
}

// AppendAudit appends one entry in its own transaction and returns it.
func (db *DB) AppendAudit(ctx context.Context, ev AuditEvent, at int64) (AuditEntry, error) {
	var e AuditEntry
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		var err error
		e, err = db.appendAudit(ctx, tx, ev, at)
		return err
	})
	return e, err
}

// appendAudit appends an entry inside tx. On PostgreSQL it locks the head
// row until tx ends, which orders the appends of all replicas; so call it
// last in a transaction that locks other rows too.
func (db *DB) appendAudit(ctx context.Context, tx *sql.Tx, ev AuditEvent, at int64) (AuditEntry, error) {
	if ev.Actor == "" || ev.Action == "" {
		return AuditEntry{}, errors.New("append audit entry: actor and action are required")
	}
	details := "{}"
	if len(ev.Details) > 0 {
		b, err := json.Marshal(ev.Details)
		if err != nil {
			return AuditEntry{}, fmt.Errorf("append audit entry %s: details: %w", ev.Action, err)
		}
		details = string(b)
	}
	q := `SELECT seq, hash FROM audit_head WHERE id = 1`
	if db.dialect == Postgres {
		q += ` FOR UPDATE`
	}
	e := AuditEntry{At: at, Actor: ev.Actor, Action: ev.Action, Target: ev.Target, Details: details}
	if err := tx.QueryRowContext(ctx, q).Scan(&e.Seq, &e.PrevHash); err != nil {
		return AuditEntry{}, fmt.Errorf("append audit entry %s: read head: %w", ev.Action, err)
	}
	e.Seq++
	e.Hash = AuditHash(e)
	if _, err := tx.ExecContext(ctx, `INSERT INTO audit_log (seq, at, actor, action, target, details, prev_hash, hash)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, e.Seq, e.At, e.Actor, e.Action, e.Target, e.Details, e.PrevHash, e.Hash); err != nil {
		return AuditEntry{}, fmt.Errorf("append audit entry %s: %w", ev.Action, err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1`, e.Seq, e.Hash); err != nil {
		return AuditEntry{}, fmt.Errorf("append audit entry %s: move head: %w", ev.Action, err)
	}
	return e, nil
}

// AuditHead returns the number and hash of the last entry (0 and 32 zero
// bytes for an empty log).
func (db *DB) AuditHead(ctx context.Context) (int64, []byte, error) {
	var seq int64
	var hash []byte
	if err := db.read.QueryRowContext(ctx, `SELECT seq, hash FROM audit_head WHERE id = 1`).Scan(&seq, &hash); err != nil {
		return 0, nil, fmt.Errorf("read audit head: %w", err)
	}
	return seq, hash, nil
}

// AuditFilter selects audit entries: of one action and one target (each ""
// for any), at or after Since (Unix ms, 0 for any). Oldest first after the
// entry with seq After; with Newest, newest first before the entry with
// seq Before (0 for the newest). At most Limit (default 100, at most 1000).
type AuditFilter struct {
	Action string
	Target string
	Since  int64
	After  int64
	Before int64
	Newest bool
	Limit  int
}

const auditSelect = `SELECT seq, at, actor, action, target, details, prev_hash, hash FROM audit_log`

func auditScan(rows interface{ Scan(...any) error }) (AuditEntry, error) {
	var e AuditEntry
	err := rows.Scan(&e.Seq, &e.At, &e.Actor, &e.Action, &e.Target, &e.Details, &e.PrevHash, &e.Hash)
	return e, err
}

// AuditEntries returns the entries f selects.
func (db *DB) AuditEntries(ctx context.Context, f AuditFilter) ([]AuditEntry, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	f.Limit = min(f.Limit, 1000)
	var cond []string
	var args []any
	add := func(c string, v any) {
		args = append(args, v)
		cond = append(cond, strings.ReplaceAll(c, "?", "$"+strconv.Itoa(len(args))))
	}
	if f.Action != "" {
		add("action = ?", f.Action)
	}
	if f.Target != "" {
		add("target = ?", f.Target)
	}
	if f.Since > 0 {
		add("at >= ?", f.Since)
	}
	order := "seq"
	if f.Newest {
		if f.Before > 0 {
			add("seq < ?", f.Before)
		}
		order = "seq DESC"
	} else {
		add("seq > ?", f.After)
	}
	q := auditSelect
	if len(cond) > 0 {
		q += " WHERE " + strings.Join(cond, " AND ")
	}
	args = append(args, f.Limit)
	q += " ORDER BY " + order + " LIMIT $" + strconv.Itoa(len(args))
	var out []AuditEntry
	err := queryEach(ctx, db.read, q, args, func(rows *sql.Rows) error {
		e, err := auditScan(rows)
		if err != nil {
			return err
		}
		out = append(out, e)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list audit entries: %w", err)
	}
	return out, nil
}

// WalkAudit calls fn for every entry in seq order, reading a page at a
// time, until fn returns an error (which WalkAudit returns) or the log ends.
func (db *DB) WalkAudit(ctx context.Context, fn func(AuditEntry) error) error {
	const page = 1000
	var after int64
	for {
		es, err := db.AuditEntries(ctx, AuditFilter{After: after, Limit: page})
		if err != nil {
			return err
		}
		for _, e := range es {
			if err := fn(e); err != nil {
				return err
			}
			after = e.Seq
		}
		if len(es) < page {
			return nil
		}
	}
}
