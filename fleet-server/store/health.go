package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/fxamacker/cbor/v2"
	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/protocol"
)

// Presence and health tables (migration 0032). The ingest writes them
// through IngestTx (Touch, ApplyPresence, PutHeartbeat); fleet-server/presence
// applies the heartbeat deadline (ExpireOnline) and trims the time series
// (TrimHeartbeats).

// Offline reasons in Presence.Reason.
const (
	// OfflineDisconnected: the device's retained presence says offline (its
	// last will, or a clean disconnect).
	OfflineDisconnected = "disconnected"
	// OfflineDeadline: nothing heard from the device within the deadline.
	OfflineDeadline = "heartbeat deadline"
)

// Presence is whether a device is connected.
type Presence struct {
	Device string
	Online bool
	// Reason says why an offline device is offline.
	Reason string
	// Session is the session of the last Presence the device announced.
	Session     uuid.UUID
	AnnouncedAt int64 // the device's clock in that Presence
	Software    string
	ChangedAt   int64 // when Online last changed (server clock)
	LastHeard   int64 // the last message from the device (server clock)
}

// Touch records that a message from the device arrived at: the device is
// online and was last heard then. It also raises devices.last_seen.
func (t *IngestTx) Touch(ctx context.Context, device string, at int64) error {
	if _, err := t.exec(ctx, `INSERT INTO device_presence (device_id, online, reason, changed_at, last_heard)
		VALUES ($1, TRUE, '', $2, $2)
		ON CONFLICT (device_id) DO UPDATE SET last_heard = excluded.last_heard,
			changed_at = CASE WHEN device_presence.online THEN device_presence.changed_at ELSE excluded.changed_at END,
			online = TRUE, reason = ''
		WHERE device_presence.last_heard <= excluded.last_heard`, device, at); err != nil {
		return fmt.Errorf("update presence of %s: %w", device, err)
	}
	if _, err := t.exec(ctx, `UPDATE devices SET last_seen = $1 WHERE id = $2 AND (last_seen IS NULL OR last_seen < $1)`,
		at, device); err != nil {
		return fmt.Errorf("update last seen of %s: %w", device, err)
	}
	return nil
}

// ApplyPresence applies a device's announced presence, received at, and
// reports whether it did: a Presence of an older session than the one
// recorded (an old last will that arrives after the device reconnected) is
// ignored.
func (t *IngestTx) ApplyPresence(ctx context.Context, device string, p *protocol.Presence, at int64) (bool, error) {
	row, err := t.queryRow(ctx, `SELECT session, announced_at FROM device_presence WHERE device_id = $1`, device)
	if err != nil {
		return false, fmt.Errorf("read presence of %s: %w", device, err)
	}
	var session string
	var announced int64
	switch err := row.Scan(&session, &announced); {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return false, fmt.Errorf("read presence of %s: %w", device, err)
	case session != p.Session.String() && int64(p.At) < announced:
		return false, nil
	}
	online := p.State == protocol.Online
	reason := ""
	if !online {
		reason = OfflineDisconnected
	}
	// An online announcement is a message from the device; the last will
	// is the broker's, so it leaves last_heard alone.
	if _, err := t.exec(ctx, `INSERT INTO device_presence (device_id, online, reason, session, announced_at, software,
		changed_at, last_heard) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (device_id) DO UPDATE SET online = excluded.online, reason = excluded.reason,
			session = excluded.session, announced_at = excluded.announced_at,
			software = CASE WHEN excluded.software = '' THEN device_presence.software ELSE excluded.software END,
			changed_at = CASE WHEN device_presence.online = excluded.online THEN device_presence.changed_at
				ELSE excluded.changed_at END,
			last_heard = CASE WHEN excluded.online AND excluded.last_heard > device_presence.last_heard
				THEN excluded.last_heard ELSE device_presence.last_heard END`,
		device, online, reason, p.Session.String(), int64(p.At), p.Software, at, at); err != nil {
		return false, fmt.Errorf("store presence of %s: %w", device, err)
	}
	return true, nil
}

const presenceSelect = `SELECT device_id, online, reason, session, announced_at, software, changed_at, last_heard
	FROM device_presence`

func presenceScan(row interface{ Scan(...any) error }) (Presence, error) {
	var p Presence
	var session string
	if err := row.Scan(&p.Device, &p.Online, &p.Reason, &session, &p.AnnouncedAt, &p.Software, &p.ChangedAt,
		&p.LastHeard); err != nil {
		return Presence{}, err
	}
	if session != "" {
		id, err := uuid.Parse(session)
		if err != nil {
			return Presence{}, fmt.Errorf("presence of %s: session: %w", p.Device, err)
		}
		p.Session = id
	}
	return p, nil
}

// Presence returns a device's presence, or ErrNotFound when it has never
// been heard from.
func (db *DB) Presence(ctx context.Context, device string) (Presence, error) {
	p, err := presenceScan(db.read.QueryRowContext(ctx, presenceSelect+` WHERE device_id = $1`, device))
	if errors.Is(err, sql.ErrNoRows) {
		return Presence{}, ErrNotFound
	}
	if err != nil {
		return Presence{}, fmt.Errorf("read presence of %s: %w", device, err)
	}
	return p, nil
}

// Presences returns the presence of up to limit devices (default 100, at
// most 1000) with ids after after, in id order; online only if onlineOnly.
func (db *DB) Presences(ctx context.Context, after string, limit int, onlineOnly bool) ([]Presence, error) {
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, 1000)
	q := presenceSelect + ` WHERE device_id > $1`
	if onlineOnly {
		q += ` AND online`
	}
	var out []Presence
	err := queryEach(ctx, db.read, q+` ORDER BY device_id LIMIT $2`, []any{after, limit}, func(rows *sql.Rows) error {
		p, err := presenceScan(rows)
		if err != nil {
			return err
		}
		out = append(out, p)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list presence: %w", err)
	}
	return out, nil
}

// DeviceOnline reports whether a device is online.
func (db *DB) DeviceOnline(ctx context.Context, device string) (bool, error) {
	var online bool
	err := db.read.QueryRowContext(ctx, `SELECT online FROM device_presence WHERE device_id = $1`, device).Scan(&online)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read presence of %s: %w", device, err)
	}
	return online, nil
}

// OldestOnline returns the earliest last-heard time of the online devices;
// ok is false when no device is online.
func (db *DB) OldestOnline(ctx context.Context) (lastHeard int64, ok bool, err error) {
	var v sql.NullInt64
	if err := db.read.QueryRowContext(ctx, `SELECT MIN(last_heard) FROM device_presence WHERE online`).Scan(&v); err != nil {
		return 0, false, fmt.Errorf("read presence: %w", err)
	}
	return v.Int64, v.Valid, nil
}

// ExpireOnline marks offline, at, every online device last heard before
// heardBefore, and returns them.
func (db *DB) ExpireOnline(ctx context.Context, heardBefore, at int64) ([]string, error) {
	var out []string
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		out = out[:0]
		return queryEach(ctx, tx, `UPDATE device_presence SET online = FALSE, reason = $1, changed_at = $2
			WHERE online AND last_heard < $3 RETURNING device_id`, []any{OfflineDeadline, at, heardBefore},
			func(rows *sql.Rows) error {
				var d string
				if err := rows.Scan(&d); err != nil {
					return err
				}
				out = append(out, d)
				return nil
			})
	})
	if err != nil {
		return nil, fmt.Errorf("apply heartbeat deadline: %w", err)
	}
	sort.Strings(out)
	return out, nil
}

// Health is one heartbeat of a device, as received at ReceivedAt.
type Health struct {
	Device     string
	ReceivedAt int64
	Heartbeat  protocol.Heartbeat
}

// heartbeatKey is what makes a heartbeat worth a sample of its own even
// before the sampling interval has passed: a change of software, of the
// storage-full flag or of a peripheral's state.
func heartbeatKey(hb *protocol.Heartbeat) string {
	parts := make([]string, 0, len(hb.Peripherals)+2)
	parts = append(parts, hb.Software, strconv.FormatBool(hb.Full))
	for _, p := range hb.Peripherals {
		parts = append(parts, p.Name+"="+p.State.String())
	}
	sort.Strings(parts[2:])
	return strings.Join(parts, "|")
}

// PutHeartbeat stores a device's heartbeat as its latest health, and as a
// sample of the time series when sampleEvery (ms) has passed since the last
// sample or something material changed.
func (t *IngestTx) PutHeartbeat(ctx context.Context, device string, hb *protocol.Heartbeat, at, sampleEvery int64) error {
	body, err := cbor.Marshal(hb)
	if err != nil {
		return fmt.Errorf("store heartbeat of %s: %w", device, err)
	}
	key := heartbeatKey(hb)
	row, err := t.queryRow(ctx, `SELECT samples, sampled_at, sample_key FROM device_health WHERE device_id = $1`, device)
	if err != nil {
		return fmt.Errorf("store heartbeat of %s: %w", device, err)
	}
	var samples, sampledAt int64
	var lastKey string
	first := false
	switch err := row.Scan(&samples, &sampledAt, &lastKey); {
	case errors.Is(err, sql.ErrNoRows):
		first = true
	case err != nil:
		return fmt.Errorf("store heartbeat of %s: %w", device, err)
	}
	sample := first || at-sampledAt >= sampleEvery || key != lastKey
	if !sample {
		_, err = t.exec(ctx, `UPDATE device_health SET received_at = $1, heartbeat = $2 WHERE device_id = $3`, at, body, device)
		if err != nil {
			return fmt.Errorf("store heartbeat of %s: %w", device, err)
		}
		return nil
	}
	n := samples + 1
	if _, err := t.exec(ctx, `INSERT INTO device_health (device_id, received_at, heartbeat, samples, sampled_at, sample_key)
		VALUES ($1, $2, $3, $4, $2, $5) ON CONFLICT (device_id) DO UPDATE SET received_at = excluded.received_at,
		heartbeat = excluded.heartbeat, samples = excluded.samples, sampled_at = excluded.sampled_at,
		sample_key = excluded.sample_key`, device, at, body, n, key); err != nil {
		return fmt.Errorf("store heartbeat of %s: %w", device, err)
	}
	if _, err := t.exec(ctx, `INSERT INTO heartbeats (device_id, n, received_at, heartbeat) VALUES ($1, $2, $3, $4)
		ON CONFLICT DO NOTHING`, device, n, at, body); err != nil {
		return fmt.Errorf("store heartbeat of %s: %w", device, err)
	}
	return nil
}

func healthDecode(device string, at int64, body []byte) (Health, error) {
	h := Health{Device: device, ReceivedAt: at}
	if err := cbor.Unmarshal(body, &h.Heartbeat); err != nil {
		return Health{}, fmt.Errorf("heartbeat of %s: %w", device, err)
	}
	return h, nil
}

// LatestHealth returns a device's latest heartbeat, or ErrNotFound.
func (db *DB) LatestHealth(ctx context.Context, device string) (Health, error) {
	var at int64
	var body []byte
	err := db.read.QueryRowContext(ctx, `SELECT received_at, heartbeat FROM device_health WHERE device_id = $1`, device).
		Scan(&at, &body)
	if errors.Is(err, sql.ErrNoRows) {
		return Health{}, ErrNotFound
	}
	if err != nil {
		return Health{}, fmt.Errorf("read health of %s: %w", device, err)
	}
	return healthDecode(device, at, body)
}

// HealthFilter selects a device's heartbeat samples received in [Since,
// Until) (zero for open ends), newest first, at most Limit (default 100, at
// most 5000).
type HealthFilter struct {
	Device string
	Since  int64
	Until  int64
	Limit  int
}

// HealthHistory returns the samples f selects, newest first.
func (db *DB) HealthHistory(ctx context.Context, f HealthFilter) ([]Health, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	f.Limit = min(f.Limit, 5000)
	until := f.Until
	if until <= 0 {
		until = 1<<63 - 1
	}
	var out []Health
	err := queryEach(ctx, db.read, `SELECT received_at, heartbeat FROM heartbeats
		WHERE device_id = $1 AND received_at >= $2 AND received_at < $3 ORDER BY n DESC LIMIT $4`,
		[]any{f.Device, f.Since, until, f.Limit}, func(rows *sql.Rows) error {
			var at int64
			var body []byte
			if err := rows.Scan(&at, &body); err != nil {
				return err
			}
			h, err := healthDecode(f.Device, at, body)
			if err != nil {
				return err
			}
			out = append(out, h)
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("read health history of %s: %w", f.Device, err)
	}
	return out, nil
}

// TrimHeartbeats deletes the samples received before olderThan and, of each
// device, all but the newest maxPerDevice, in small transactions so that the
// ingest is never held up for long. It returns how many it deleted.
func (db *DB) TrimHeartbeats(ctx context.Context, olderThan, maxPerDevice int64) (int64, error) {
	const step = 1000
	var total int64
	for {
		var n int64
		err := db.Tx(ctx, func(tx *sql.Tx) error {
			res, err := tx.ExecContext(ctx, `DELETE FROM heartbeats WHERE (device_id, n) IN
				(SELECT device_id, n FROM heartbeats WHERE received_at < $1 LIMIT $2)`, olderThan, step)
			if err != nil {
				return err
			}
			n, err = res.RowsAffected()
			return err
		})
		if err != nil {
			return total, fmt.Errorf("delete old heartbeats: %w", err)
		}
		total += n
		if n < step {
			break
		}
	}
	type over struct {
		device string
		upto   int64
	}
	var overs []over
	err := queryEach(ctx, db.read, `SELECT device_id, samples FROM device_health WHERE samples - trimmed > $1`,
		[]any{maxPerDevice}, func(rows *sql.Rows) error {
			var o over
			if err := rows.Scan(&o.device, &o.upto); err != nil {
				return err
			}
			o.upto -= maxPerDevice
			overs = append(overs, o)
			return nil
		})
	if err != nil {
		return total, fmt.Errorf("find devices with too many heartbeats: %w", err)
	}
	for _, o := range overs {
		var n int64
		err := db.Tx(ctx, func(tx *sql.Tx) error {
			res, err := tx.ExecContext(ctx, `DELETE FROM heartbeats WHERE device_id = $1 AND n <= $2`, o.device, o.upto)
			if err != nil {
				return err
			}
			if n, err = res.RowsAffected(); err != nil {
				return err
			}
			_, err = tx.ExecContext(ctx, `UPDATE device_health SET trimmed = $1 WHERE device_id = $2 AND trimmed < $1`,
				o.upto, o.device)
			return err
		})
		if err != nil {
			return total, fmt.Errorf("trim heartbeats of %s: %w", o.device, err)
		}
		total += n
	}
	return total, nil
}
