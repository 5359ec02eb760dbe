package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/kogge-fleet/kogge/protocol"
)

// Twin tables (migration 0030). Configurations are JSON objects, stored as
// the caller serialised them; fleet-server/twin merges them and decides the
// versions. The ingest stores what devices report through
// IngestTx.PutTwinReported.

// TwinGroup is the desired configuration of a group.
type TwinGroup struct {
	Group string
	// Config is a JSON object.
	Config    []byte
	Version   uint64
	UpdatedAt int64
}

// TwinDesired is a device's effective desired configuration: its group's
// merged with its override.
type TwinDesired struct {
	Device string
	// Version rises by one whenever Config changes.
	Version   uint64
	Config    []byte // JSON object
	UpdatedAt int64
	// Published is the highest version handed to the broker.
	Published uint64
}

// TwinReported is what a device last reported about its configuration.
type TwinReported struct {
	Device   string
	Version  uint64
	Rejected uint64
	Reason   string
	// Config is the device's effective configuration as a JSON object, nil
	// when it does not report it.
	Config     []byte
	ReportedAt int64
}

// TwinInputs is what a device's desired configuration is made of.
type TwinInputs struct {
	Device      string
	Group       string
	GroupConfig []byte // nil when the group has none
	Override    []byte // nil when the device has none
	Desired     TwinDesired
}

// PutTwinGroup replaces a group's desired configuration and returns its new
// version (ErrNotFound for an unknown group).
func (db *DB) PutTwinGroup(ctx context.Context, group string, config []byte, at int64) (uint64, error) {
	var version int64
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM groups WHERE id = $1`, group).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("set configuration of group %s: %w", group, err)
		}
		err = tx.QueryRowContext(ctx, `INSERT INTO twin_groups (group_id, config, version, updated_at) VALUES ($1, $2, 1, $3)
			ON CONFLICT (group_id) DO UPDATE SET config = excluded.config, version = twin_groups.version + 1,
			updated_at = excluded.updated_at RETURNING version`, group, string(config), at).Scan(&version)
		if err != nil {
			return fmt.Errorf("set configuration of group %s: %w", group, err)
		}
		return nil
	})
	return uint64(version), err
}

// TwinGroup returns a group's desired configuration, or ErrNotFound when it
// has none.
func (db *DB) TwinGroup(ctx context.Context, group string) (TwinGroup, error) {
	g := TwinGroup{Group: group}
	var cfg string
	var version int64
	err := db.read.QueryRowContext(ctx, `SELECT config, version, updated_at FROM twin_groups WHERE group_id = $1`, group).
		Scan(&cfg, &version, &g.UpdatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return TwinGroup{}, ErrNotFound
	}
	if err != nil {
		return TwinGroup{}, fmt.Errorf("read configuration of group %s: %w", group, err)
	}
	g.Config, g.Version = []byte(cfg), uint64(version)
	return g, nil
}

// PutTwinOverride sets a device's override (a JSON object), or removes it
// when config is nil. ErrNotFound for an unknown device.
func (db *DB) PutTwinOverride(ctx context.Context, device string, config []byte, at int64) error {
	return db.Tx(ctx, func(tx *sql.Tx) error {
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM devices WHERE id = $1`, device).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("set configuration override of %s: %w", device, err)
		}
		if config == nil {
			_, err = tx.ExecContext(ctx, `DELETE FROM twin_overrides WHERE device_id = $1`, device)
		} else {
			_, err = tx.ExecContext(ctx, `INSERT INTO twin_overrides (device_id, config, updated_at) VALUES ($1, $2, $3)
				ON CONFLICT (device_id) DO UPDATE SET config = excluded.config, updated_at = excluded.updated_at`,
				device, string(config), at)
		}
		if err != nil {
			return fmt.Errorf("set configuration override of %s: %w", device, err)
		}
		return nil
	})
}

// TwinInputs returns a device's group configuration, override and current
// desired document (zero Version when none yet). ErrNotFound for an unknown
// device.
func (db *DB) TwinInputs(ctx context.Context, device string) (TwinInputs, error) {
	in := TwinInputs{Device: device, Desired: TwinDesired{Device: device}}
	var gcfg, over, dcfg sql.NullString
	var version, updated, published sql.NullInt64
	err := db.read.QueryRowContext(ctx, `SELECT d.group_id, g.config, o.config, t.version, t.config, t.updated_at, t.published
		FROM devices d
		LEFT JOIN twin_groups g ON g.group_id = d.group_id
		LEFT JOIN twin_overrides o ON o.device_id = d.id
		LEFT JOIN twin_desired t ON t.device_id = d.id
		WHERE d.id = $1`, device).Scan(&in.Group, &gcfg, &over, &version, &dcfg, &updated, &published)
	if errors.Is(err, sql.ErrNoRows) {
		return TwinInputs{}, ErrNotFound
	}
	if err != nil {
		return TwinInputs{}, fmt.Errorf("read configuration of %s: %w", device, err)
	}
	if gcfg.Valid {
		in.GroupConfig = []byte(gcfg.String)
	}
	if over.Valid {
		in.Override = []byte(over.String)
	}
	if dcfg.Valid {
		in.Desired.Config = []byte(dcfg.String)
	}
	in.Desired.Version, in.Desired.UpdatedAt, in.Desired.Published = uint64(version.Int64), updated.Int64, uint64(published.Int64)
	return in, nil
}

// PutTwinDesired stores a device's new desired document as version from+1
// and reports whether it did: false means the stored version is not from
// (someone else changed it first; read again and retry).
func (db *DB) PutTwinDesired(ctx context.Context, device string, from uint64, config []byte, at int64) (bool, error) {
	var ok bool
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		var res sql.Result
		var err error
		if from == 0 {
			res, err = tx.ExecContext(ctx, `INSERT INTO twin_desired (device_id, version, config, updated_at) VALUES ($1, 1, $2, $3)
				ON CONFLICT (device_id) DO NOTHING`, device, string(config), at)
		} else {
			res, err = tx.ExecContext(ctx, `UPDATE twin_desired SET version = version + 1, config = $1, updated_at = $2
				WHERE device_id = $3 AND version = $4`, string(config), at, device, int64(from))
		}
		if err != nil {
			return fmt.Errorf("store desired configuration of %s: %w", device, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("store desired configuration of %s: %w", device, err)
		}
		ok = n == 1
		return nil
	})
	return ok, err
}

// MarkTwinPublished records that version of a device's desired document was
// handed to the broker; it never lowers the mark.
func (db *DB) MarkTwinPublished(ctx context.Context, device string, version uint64) error {
	return db.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE twin_desired SET published = $1 WHERE device_id = $2 AND published < $1`,
			int64(version), device); err != nil {
			return fmt.Errorf("mark configuration of %s published: %w", device, err)
		}
		return nil
	})
}

const twinDesiredSelect = `SELECT device_id, version, config, updated_at, published FROM twin_desired`

func twinScanDesired(row interface{ Scan(...any) error }) (TwinDesired, error) {
	var d TwinDesired
	var version, published int64
	var cfg string
	if err := row.Scan(&d.Device, &version, &cfg, &d.UpdatedAt, &published); err != nil {
		return TwinDesired{}, err
	}
	d.Version, d.Config, d.Published = uint64(version), []byte(cfg), uint64(published)
	return d, nil
}

// TwinDesired returns a device's desired document, or ErrNotFound when it
// has none yet.
func (db *DB) TwinDesired(ctx context.Context, device string) (TwinDesired, error) {
	d, err := twinScanDesired(db.read.QueryRowContext(ctx, twinDesiredSelect+` WHERE device_id = $1`, device))
	if errors.Is(err, sql.ErrNoRows) {
		return TwinDesired{}, ErrNotFound
	}
	if err != nil {
		return TwinDesired{}, fmt.Errorf("read desired configuration of %s: %w", device, err)
	}
	return d, nil
}

// TwinDesiredPage returns up to limit desired documents of devices with ids
// after after, in id order; with unpublished only those not yet handed to
// the broker in their latest version.
func (db *DB) TwinDesiredPage(ctx context.Context, after string, limit int, unpublished bool) ([]TwinDesired, error) {
	q := twinDesiredSelect + ` WHERE device_id > $1`
	if unpublished {
		q += ` AND published < version`
	}
	var out []TwinDesired
	err := queryEach(ctx, db.read, q+` ORDER BY device_id LIMIT $2`, []any{after, limit}, func(rows *sql.Rows) error {
		d, err := twinScanDesired(rows)
		if err != nil {
			return err
		}
		out = append(out, d)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list desired configurations: %w", err)
	}
	return out, nil
}

// TwinReported returns what a device last reported, or ErrNotFound when it
// has reported nothing.
func (db *DB) TwinReported(ctx context.Context, device string) (TwinReported, error) {
	r := TwinReported{Device: device}
	var version, rejected int64
	var cfg sql.NullString
	err := db.read.QueryRowContext(ctx, `SELECT version, rejected, reason, config, reported_at FROM twin_reported
		WHERE device_id = $1`, device).Scan(&version, &rejected, &r.Reason, &cfg, &r.ReportedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return TwinReported{}, ErrNotFound
	}
	if err != nil {
		return TwinReported{}, fmt.Errorf("read reported configuration of %s: %w", device, err)
	}
	r.Version, r.Rejected = uint64(version), uint64(rejected)
	if cfg.Valid {
		r.Config = []byte(cfg.String)
	}
	return r, nil
}

// PutTwinReported stores what a device reports about its configuration; the
// latest report replaces the one before.
func (t *IngestTx) PutTwinReported(ctx context.Context, device string, r *protocol.TwinReported, at int64) error {
	var cfg sql.NullString
	if r.Config != nil {
		// A configuration JSON cannot hold is kept as not reported rather
		// than failing the device's whole batch.
		if b, err := json.Marshal(jsonSafe(r.Config)); err == nil {
			cfg = sql.NullString{String: string(b), Valid: true}
		}
	}
	if _, err := t.exec(ctx, `INSERT INTO twin_reported (device_id, version, rejected, reason, config, reported_at)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (device_id) DO UPDATE SET version = excluded.version,
		rejected = excluded.rejected, reason = excluded.reason, config = excluded.config, reported_at = excluded.reported_at`,
		device, int64(min(r.Version, 1<<62)), int64(min(r.Rejected, 1<<62)), r.Reason, cfg, at); err != nil {
		return fmt.Errorf("store reported configuration of %s: %w", device, err)
	}
	return nil
}

// jsonSafe turns what CBOR decodes into something encoding/json can write:
// maps with non-string keys become maps with their keys printed.
func jsonSafe(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[k] = jsonSafe(x)
		}
		return out
	case map[any]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[fmt.Sprint(k)] = jsonSafe(x)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = jsonSafe(x)
		}
		return out
	}
	return v
}
