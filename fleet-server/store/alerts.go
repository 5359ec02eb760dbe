package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Alert tables (migration 0061): rules, the alerts they raise and the
// notifications about them. fleet-server/alerts evaluates the rules.
//
// This file also holds the fleet-wide reads that the alert evaluator and the
// live dashboard run: presence changes, every device's latest health,
// expiring certificates and record counts.

// AlertRule is a rule as stored; fleet-server/alerts gives Params and Notify
// (JSON) their meaning.
type AlertRule struct {
	ID        string
	Name      string
	Kind      string
	Group     string // "" for every group
	Params    string // JSON object
	Notify    string // JSON object
	Enabled   bool
	CreatedAt int64
	UpdatedAt int64
}

const alertRuleSelect = `SELECT id, name, kind, group_id, params, notify, enabled, created_at, updated_at FROM alert_rules`

func alertRuleScan(row interface{ Scan(...any) error }) (AlertRule, error) {
	var r AlertRule
	err := row.Scan(&r.ID, &r.Name, &r.Kind, &r.Group, &r.Params, &r.Notify, &r.Enabled, &r.CreatedAt, &r.UpdatedAt)
	return r, err
}

// PutAlertRule creates the rule or replaces the one with its id (keeping
// its creation time).
func (db *DB) PutAlertRule(ctx context.Context, r AlertRule) error {
	return db.Tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO alert_rules (id, name, kind, group_id, params, notify, enabled,
			created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)
			ON CONFLICT (id) DO UPDATE SET name = excluded.name, kind = excluded.kind, group_id = excluded.group_id,
			params = excluded.params, notify = excluded.notify, enabled = excluded.enabled,
			updated_at = excluded.updated_at`,
			r.ID, r.Name, r.Kind, r.Group, r.Params, r.Notify, r.Enabled, r.UpdatedAt)
		if err != nil {
			return fmt.Errorf("store alert rule %s: %w", r.ID, err)
		}
		return nil
	})
}

// AlertRule returns a rule, or ErrNotFound.
func (db *DB) AlertRule(ctx context.Context, id string) (AlertRule, error) {
	r, err := alertRuleScan(db.read.QueryRowContext(ctx, alertRuleSelect+` WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return AlertRule{}, ErrNotFound
	}
	if err != nil {
		return AlertRule{}, fmt.Errorf("read alert rule %s: %w", id, err)
	}
	return r, nil
}

// AlertRules returns every rule, by name.
func (db *DB) AlertRules(ctx context.Context) ([]AlertRule, error) {
	var out []AlertRule
	err := queryEach(ctx, db.read, alertRuleSelect+` ORDER BY name, id`, nil, func(rows *sql.Rows) error {
		r, err := alertRuleScan(rows)
		if err != nil {
			return err
		}
		out = append(out, r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list alert rules: %w", err)
	}
	return out, nil
}

// DeleteAlertRule deletes a rule with its alerts and their notifications.
func (db *DB) DeleteAlertRule(ctx context.Context, id string) error {
	return db.Tx(ctx, func(tx *sql.Tx) error {
		// The cascade is spelled out: SQLite enforces it only with
		// foreign keys on, which a tool's connection may lack.
		if _, err := tx.ExecContext(ctx, `DELETE FROM alert_notifications WHERE alert_id IN
			(SELECT id FROM alerts WHERE rule_id = $1)`, id); err != nil {
			return fmt.Errorf("delete alert rule %s: %w", id, err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM alerts WHERE rule_id = $1`, id); err != nil {
			return fmt.Errorf("delete alert rule %s: %w", id, err)
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM alert_rules WHERE id = $1`, id)
		if err != nil {
			return fmt.Errorf("delete alert rule %s: %w", id, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return ErrNotFound
		}
		return nil
	})
}

// Alert is one alert: a rule's condition held for a subject from FiredAt to
// ResolvedAt (0 while it fires).
type Alert struct {
	ID         string
	Rule       string
	Subject    string
	Message    string
	FiredAt    int64
	ResolvedAt int64
}

// Firing reports whether the alert is still firing.
func (a Alert) Firing() bool { return a.ResolvedAt == 0 }

const alertSelect = `SELECT id, rule_id, subject, message, fired_at, COALESCE(resolved_at, 0) FROM alerts`

func alertScan(row interface{ Scan(...any) error }) (Alert, error) {
	var a Alert
	err := row.Scan(&a.ID, &a.Rule, &a.Subject, &a.Message, &a.FiredAt, &a.ResolvedAt)
	return a, err
}

// Alert returns an alert, or ErrNotFound.
func (db *DB) Alert(ctx context.Context, id string) (Alert, error) {
	a, err := alertScan(db.read.QueryRowContext(ctx, alertSelect+` WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Alert{}, ErrNotFound
	}
	if err != nil {
		return Alert{}, fmt.Errorf("read alert %s: %w", id, err)
	}
	return a, nil
}

// AlertFilter selects alerts: only firing ones, or also those resolved at
// or after ResolvedSince; of one rule ("" for all); newest first, at most
// Limit (default 200, at most 5000).
type AlertFilter struct {
	Rule          string
	FiringOnly    bool
	ResolvedSince int64
	Limit         int
}

// Alerts returns the alerts f selects, newest first.
func (db *DB) Alerts(ctx context.Context, f AlertFilter) ([]Alert, error) {
	if f.Limit <= 0 {
		f.Limit = 200
	}
	f.Limit = min(f.Limit, 5000)
	q := alertSelect + ` WHERE ($1 = '' OR rule_id = $1) AND (resolved_at IS NULL OR resolved_at >= $2)
		ORDER BY fired_at DESC, id LIMIT $3`
	args := []any{f.Rule, f.ResolvedSince, f.Limit}
	if f.FiringOnly {
		q = alertSelect + ` WHERE ($1 = '' OR rule_id = $1) AND resolved_at IS NULL ORDER BY fired_at DESC, id LIMIT $2`
		args = []any{f.Rule, f.Limit}
	}
	var out []Alert
	err := queryEach(ctx, db.read, q, args, func(rows *sql.Rows) error {
		a, err := alertScan(rows)
		if err != nil {
			return err
		}
		out = append(out, a)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list alerts: %w", err)
	}
	return out, nil
}

// AlertNotification is a notification about an alert for one target.
type AlertNotification struct {
	ID        string
	Alert     string
	Event     string // "firing" or "resolved"
	Channel   string // "webhook" or "email"
	Target    string // URL or e-mail address
	CreatedAt int64
	NextAt    int64
	Attempts  int
	LastError string
	SentAt    int64
	GivenUpAt int64
}

// AlertChange is one step of the evaluator: alerts that begin to fire and
// alerts that are resolved, each with the notifications to send.
type AlertChange struct {
	Fire    []AlertFire
	Resolve []AlertResolve
}

// AlertFire is an alert that begins to fire, with its notifications (their
// Alert field is filled in).
type AlertFire struct {
	Alert         Alert
	Notifications []AlertNotification
}

// AlertResolve resolves the firing alert of Rule and Subject at At.
type AlertResolve struct {
	Rule          string
	Subject       string
	At            int64
	Notifications []AlertNotification
}

// ApplyAlerts applies a change in one transaction and returns the alerts
// that really began to fire and those that were really resolved: an alert
// already firing for the rule and subject is not raised twice (another
// replica's evaluator may have raised it), and only a firing alert is
// resolved. Notifications are queued only for what changed.
func (db *DB) ApplyAlerts(ctx context.Context, c AlertChange) (fired, resolved []Alert, err error) {
	err = db.Tx(ctx, func(tx *sql.Tx) error {
		fired, resolved = fired[:0], resolved[:0]
		for _, f := range c.Fire {
			a := f.Alert
			res, err := tx.ExecContext(ctx, `INSERT INTO alerts (id, rule_id, subject, message, fired_at)
				VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING`, a.ID, a.Rule, a.Subject, a.Message, a.FiredAt)
			if err != nil {
				return fmt.Errorf("raise alert %s for %s: %w", a.Rule, a.Subject, err)
			}
			if n, err := res.RowsAffected(); err != nil {
				return err
			} else if n == 0 {
				continue
			}
			fired = append(fired, a)
			for _, n := range f.Notifications {
				n.Alert = a.ID
				if err := insertNotification(ctx, tx, n); err != nil {
					return err
				}
			}
		}
		for _, r := range c.Resolve {
			a, err := alertScan(tx.QueryRowContext(ctx, alertSelect+` WHERE rule_id = $1 AND subject = $2
				AND resolved_at IS NULL`, r.Rule, r.Subject))
			if errors.Is(err, sql.ErrNoRows) {
				continue
			}
			if err != nil {
				return fmt.Errorf("resolve alert %s for %s: %w", r.Rule, r.Subject, err)
			}
			if _, err := tx.ExecContext(ctx, `UPDATE alerts SET resolved_at = $1 WHERE id = $2`, r.At, a.ID); err != nil {
				return fmt.Errorf("resolve alert %s for %s: %w", r.Rule, r.Subject, err)
			}
			a.ResolvedAt = r.At
			resolved = append(resolved, a)
			for _, n := range r.Notifications {
				n.Alert = a.ID
				if err := insertNotification(ctx, tx, n); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return fired, resolved, nil
}

func insertNotification(ctx context.Context, tx *sql.Tx, n AlertNotification) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO alert_notifications (id, alert_id, event, channel, target,
		created_at, next_at) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		n.ID, n.Alert, n.Event, n.Channel, n.Target, n.CreatedAt, n.NextAt)
	if err != nil {
		return fmt.Errorf("queue alert notification: %w", err)
	}
	return nil
}

// DueNotifications returns up to limit notifications due at now, oldest
// first, with their alerts.
func (db *DB) DueNotifications(ctx context.Context, now int64, limit int) ([]AlertNotification, error) {
	var out []AlertNotification
	err := queryEach(ctx, db.read, `SELECT id, alert_id, event, channel, target, created_at, next_at, attempts,
		last_error FROM alert_notifications WHERE sent_at IS NULL AND given_up_at IS NULL AND next_at <= $1
		ORDER BY next_at, id LIMIT $2`, []any{now, limit}, func(rows *sql.Rows) error {
		var n AlertNotification
		if err := rows.Scan(&n.ID, &n.Alert, &n.Event, &n.Channel, &n.Target, &n.CreatedAt, &n.NextAt,
			&n.Attempts, &n.LastError); err != nil {
			return err
		}
		out = append(out, n)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list due alert notifications: %w", err)
	}
	return out, nil
}

// NotificationResult is the outcome of one attempt to send a notification:
// sent (SentAt), or failed with Error and tried again at NextAt, or given
// up (GiveUp).
type NotificationResult struct {
	SentAt int64
	Error  string
	NextAt int64
	GiveUp int64
}

// MarkNotification records the outcome of an attempt.
func (db *DB) MarkNotification(ctx context.Context, id string, r NotificationResult) error {
	return db.Tx(ctx, func(tx *sql.Tx) error {
		var sent, gaveUp any
		if r.SentAt != 0 {
			sent = r.SentAt
		}
		if r.GiveUp != 0 {
			gaveUp = r.GiveUp
		}
		_, err := tx.ExecContext(ctx, `UPDATE alert_notifications SET attempts = attempts + 1, last_error = $1,
			next_at = $2, sent_at = $3, given_up_at = $4 WHERE id = $5`, r.Error, r.NextAt, sent, gaveUp, id)
		if err != nil {
			return fmt.Errorf("record alert notification %s: %w", id, err)
		}
		return nil
	})
}

// AlertNotifications returns the notifications about an alert, oldest
// first.
func (db *DB) AlertNotifications(ctx context.Context, alert string) ([]AlertNotification, error) {
	var out []AlertNotification
	err := queryEach(ctx, db.read, `SELECT id, alert_id, event, channel, target, created_at, next_at, attempts,
		last_error, COALESCE(sent_at, 0), COALESCE(given_up_at, 0) FROM alert_notifications WHERE alert_id = $1
		ORDER BY created_at, id`, []any{alert}, func(rows *sql.Rows) error {
		var n AlertNotification
		if err := rows.Scan(&n.ID, &n.Alert, &n.Event, &n.Channel, &n.Target, &n.CreatedAt, &n.NextAt,
			&n.Attempts, &n.LastError, &n.SentAt, &n.GivenUpAt); err != nil {
			return err
		}
		out = append(out, n)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list notifications of alert %s: %w", alert, err)
	}
	return out, nil
}

// PresenceChanges returns the presence of the devices whose online state
// changed at or after since (server clock), in no particular order.
func (db *DB) PresenceChanges(ctx context.Context, since int64) ([]Presence, error) {
	var out []Presence
	err := queryEach(ctx, db.read, presenceSelect+` WHERE changed_at >= $1`, []any{since}, func(rows *sql.Rows) error {
		p, err := presenceScan(rows)
		if err != nil {
			return err
		}
		out = append(out, p)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list presence changes: %w", err)
	}
	return out, nil
}

// LatestHealthPage returns the latest heartbeat of up to limit devices
// (default 500, at most 5000) with ids after after, in id order.
func (db *DB) LatestHealthPage(ctx context.Context, after string, limit int) ([]Health, error) {
	if limit <= 0 {
		limit = 500
	}
	limit = min(limit, 5000)
	var out []Health
	err := queryEach(ctx, db.read, `SELECT device_id, received_at, heartbeat FROM device_health
		WHERE device_id > $1 ORDER BY device_id LIMIT $2`, []any{after, limit}, func(rows *sql.Rows) error {
		var device string
		var at int64
		var body []byte
		if err := rows.Scan(&device, &at, &body); err != nil {
			return err
		}
		h, err := healthDecode(device, at, body)
		if err != nil {
			// One unreadable heartbeat must not hide the others.
			db.log.Warn("unreadable heartbeat in the store; skipped", "device", device, "err", err)
			return nil
		}
		out = append(out, h)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list latest health: %w", err)
	}
	return out, nil
}

// ExpiringCert is the newest valid certificate of a device that is not
// revoked.
type ExpiringCert struct {
	Device   string
	Serial   string
	NotAfter int64
}

// ExpiringCerts returns, for every device that is not revoked, its newest
// unrevoked certificate if that expires before before; by expiry.
func (db *DB) ExpiringCerts(ctx context.Context, before int64) ([]ExpiringCert, error) {
	var out []ExpiringCert
	err := queryEach(ctx, db.read, `SELECT c.device_id, c.serial, c.not_after FROM device_certs c
		JOIN devices d ON d.id = c.device_id
		WHERE d.revoked_at IS NULL AND c.revoked_at IS NULL AND c.not_after < $1
		AND c.not_after = (SELECT MAX(c2.not_after) FROM device_certs c2
			WHERE c2.device_id = c.device_id AND c2.revoked_at IS NULL)
		ORDER BY c.not_after, c.device_id`, []any{before}, func(rows *sql.Rows) error {
		var e ExpiringCert
		if err := rows.Scan(&e.Device, &e.Serial, &e.NotAfter); err != nil {
			return err
		}
		out = append(out, e)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list expiring certificates: %w", err)
	}
	return out, nil
}

// RecordCount is how many records of a kind for an office the server
// holds, and how many of them arrived at or after the Since of the query.
type RecordCount struct {
	Kind   string
	Office string
	Count  int64
	Recent int64
}

// RecordCounts counts the stored records by kind and office; Recent counts
// those received at or after since. It reads every record's row: callers
// cache the answer.
func (db *DB) RecordCounts(ctx context.Context, since int64) ([]RecordCount, error) {
	var out []RecordCount
	err := queryEach(ctx, db.read, `SELECT kind, office, COUNT(*),
		COALESCE(SUM(CASE WHEN received_at >= $1 THEN 1 ELSE 0 END), 0)
		FROM records GROUP BY kind, office ORDER BY kind, office`, []any{since}, func(rows *sql.Rows) error {
		var c RecordCount
		if err := rows.Scan(&c.Kind, &c.Office, &c.Count, &c.Recent); err != nil {
			return err
		}
		out = append(out, c)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("count records: %w", err)
	}
	return out, nil
}
