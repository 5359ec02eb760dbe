package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Registry tables (migration 0010): groups, devices with their inventory,
// enrollment codes (only their hash) and the certificates issued to devices.
// fleet-server/registry is their one writer; other components read groups
// and devices and call TouchDevices and UpdateDeviceInventory through it.

// Errors of the registry methods that callers act on.
var (
	// ErrGroupExists: a group with this id or name exists already.
	ErrGroupExists = errors.New("group exists")
	// ErrGroupNotEmpty: the group still has devices.
	ErrGroupNotEmpty = errors.New("group has devices")
	// ErrDeviceExists: a device with this id exists already.
	ErrDeviceExists = errors.New("device exists")
	// ErrDeviceRevoked: the device is revoked.
	ErrDeviceRevoked = errors.New("device revoked")
	// ErrCodeUnknown: no enrollment code has this hash.
	ErrCodeUnknown = errors.New("unknown enrollment code")
	// ErrCodeUsed: the enrollment code was used already.
	ErrCodeUsed = errors.New("enrollment code used")
	// ErrCodeExpired: the enrollment code has expired.
	ErrCodeExpired = errors.New("enrollment code expired")
	// ErrCodeRevoked: the enrollment code was revoked.
	ErrCodeRevoked = errors.New("enrollment code revoked")
)

// Group is a device group. Devices is the number of its devices (read only).
type Group struct {
	ID        string
	Name      string
	CreatedAt int64
	Devices   int
}

// Device is a device and its inventory. Zero RevokedAt and LastSeen mean
// "not revoked" and "never seen". Peripherals is a JSON array.
type Device struct {
	ID              string
	GroupID         string
	CreatedAt       int64
	RevokedAt       int64
	RevokedReason   string
	LastSeen        int64
	Model           string
	SerialNumber    string
	SoftwareVersion string
	Peripherals     string
	LocationLabel   string
	InventoryAt     int64
	EnrollCodeID    string
}

// DeviceInventory is the part of a device that the device reports.
type DeviceInventory struct {
	Model           string
	SerialNumber    string
	SoftwareVersion string
	Peripherals     string // JSON array
	LocationLabel   string
}

// DeviceFilter selects devices: of one group ("" for all), ordered by id,
// after the id After, at most Limit (0 for all).
type DeviceFilter struct {
	GroupID string
	After   string
	Limit   int
}

// EnrollCode is a one-time enrollment code; only the SHA-256 of the code is
// stored. Zero UsedAt and RevokedAt mean "not used" and "not revoked".
type EnrollCode struct {
	ID        string
	Hash      []byte
	GroupID   string
	Note      string
	CreatedAt int64
	ExpiresAt int64
	UsedAt    int64
	DeviceID  string
	RevokedAt int64
}

// DeviceCert is a certificate issued to a device. Serial is lower-case hex.
type DeviceCert struct {
	Serial    string
	DeviceID  string
	NotBefore int64
	NotAfter  int64
	CreatedAt int64
	RevokedAt int64
}

// CreateGroup adds a group; ErrGroupExists when its id or name is taken.
func (db *DB) CreateGroup(ctx context.Context, g Group) error {
	return db.Tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO groups (id, name, created_at) VALUES ($1, $2, $3)`,
			g.ID, g.Name, g.CreatedAt)
		if IsUniqueViolation(err) {
			return ErrGroupExists
		}
		if err != nil {
			return fmt.Errorf("create group %s: %w", g.ID, err)
		}
		return nil
	})
}

const registryGroupSelect = `SELECT g.id, g.name, g.created_at,
	(SELECT count(*) FROM devices d WHERE d.group_id = g.id) FROM groups g`

// Group returns a group, or ErrNotFound.
func (db *DB) Group(ctx context.Context, id string) (Group, error) {
	var g Group
	err := db.read.QueryRowContext(ctx, registryGroupSelect+` WHERE g.id = $1`, id).
		Scan(&g.ID, &g.Name, &g.CreatedAt, &g.Devices)
	if errors.Is(err, sql.ErrNoRows) {
		return Group{}, ErrNotFound
	}
	if err != nil {
		return Group{}, fmt.Errorf("read group %s: %w", id, err)
	}
	return g, nil
}

// Groups returns all groups ordered by name.
func (db *DB) Groups(ctx context.Context) ([]Group, error) {
	rows, err := db.read.QueryContext(ctx, registryGroupSelect+` ORDER BY g.name`)
	if err != nil {
		return nil, fmt.Errorf("list groups: %w", err)
	}
	defer rows.Close()
	var gs []Group
	for rows.Next() {
		var g Group
		if err := rows.Scan(&g.ID, &g.Name, &g.CreatedAt, &g.Devices); err != nil {
			return nil, fmt.Errorf("list groups: %w", err)
		}
		gs = append(gs, g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list groups: %w", err)
	}
	return gs, nil
}

// RenameGroup changes a group's name: ErrNotFound, or ErrGroupExists when
// another group has the name.
func (db *DB) RenameGroup(ctx context.Context, id, name string) error {
	return db.Tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE groups SET name = $1 WHERE id = $2`, name, id)
		if IsUniqueViolation(err) {
			return ErrGroupExists
		}
		if err != nil {
			return fmt.Errorf("rename group %s: %w", id, err)
		}
		return registryOneRow(res, "rename group "+id)
	})
}

// DeleteGroup deletes a group without devices and its enrollment codes:
// ErrNotFound, or ErrGroupNotEmpty while devices belong to it.
func (db *DB) DeleteGroup(ctx context.Context, id string) error {
	return db.Tx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM devices WHERE group_id = $1`, id).Scan(&n); err != nil {
			return fmt.Errorf("delete group %s: %w", id, err)
		}
		if n > 0 {
			return ErrGroupNotEmpty
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM enroll_codes WHERE group_id = $1`, id); err != nil {
			return fmt.Errorf("delete group %s: codes: %w", id, err)
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM groups WHERE id = $1`, id)
		if err != nil {
			return fmt.Errorf("delete group %s: %w", id, err)
		}
		return registryOneRow(res, "delete group "+id)
	})
}

// CreateEnrollCode stores a new enrollment code; ErrNotFound when its group
// does not exist.
func (db *DB) CreateEnrollCode(ctx context.Context, c EnrollCode) error {
	return db.Tx(ctx, func(tx *sql.Tx) error {
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM groups WHERE id = $1`, c.GroupID).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("create enrollment code: %w", err)
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO enroll_codes (id, hash, group_id, note, created_at, expires_at)
			VALUES ($1, $2, $3, $4, $5, $6)`, c.ID, c.Hash, c.GroupID, c.Note, c.CreatedAt, c.ExpiresAt)
		if err != nil {
			return fmt.Errorf("create enrollment code: %w", err)
		}
		return nil
	})
}

const registryCodeSelect = `SELECT id, hash, group_id, note, created_at, expires_at,
	COALESCE(used_at, 0), COALESCE(device_id, ''), COALESCE(revoked_at, 0) FROM enroll_codes`

func registryScanCode(s interface{ Scan(...any) error }) (EnrollCode, error) {
	var c EnrollCode
	err := s.Scan(&c.ID, &c.Hash, &c.GroupID, &c.Note, &c.CreatedAt, &c.ExpiresAt, &c.UsedAt, &c.DeviceID, &c.RevokedAt)
	return c, err
}

// EnrollCode returns an enrollment code by id, or ErrNotFound.
func (db *DB) EnrollCode(ctx context.Context, id string) (EnrollCode, error) {
	c, err := registryScanCode(db.read.QueryRowContext(ctx, registryCodeSelect+` WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return EnrollCode{}, ErrNotFound
	}
	if err != nil {
		return EnrollCode{}, fmt.Errorf("read enrollment code %s: %w", id, err)
	}
	return c, nil
}

// EnrollCodes returns the enrollment codes of a group ("" for all groups),
// newest first.
func (db *DB) EnrollCodes(ctx context.Context, groupID string) ([]EnrollCode, error) {
	rows, err := db.read.QueryContext(ctx, registryCodeSelect+` WHERE $1 = '' OR group_id = $1 ORDER BY created_at DESC, id`, groupID)
	if err != nil {
		return nil, fmt.Errorf("list enrollment codes: %w", err)
	}
	defer rows.Close()
	var cs []EnrollCode
	for rows.Next() {
		c, err := registryScanCode(rows)
		if err != nil {
			return nil, fmt.Errorf("list enrollment codes: %w", err)
		}
		cs = append(cs, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list enrollment codes: %w", err)
	}
	return cs, nil
}

// RevokeEnrollCode revokes an unused code: ErrNotFound, or ErrCodeUsed when
// it was used already. Revoking a revoked code changes nothing.
func (db *DB) RevokeEnrollCode(ctx context.Context, id string, at int64) error {
	return db.Tx(ctx, func(tx *sql.Tx) error {
		var used, revoked int64
		err := tx.QueryRowContext(ctx, `SELECT COALESCE(used_at, 0), COALESCE(revoked_at, 0) FROM enroll_codes WHERE id = $1`, id).
			Scan(&used, &revoked)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("revoke enrollment code %s: %w", id, err)
		}
		switch {
		case used != 0:
			return ErrCodeUsed
		case revoked != 0:
			return nil
		}
		if _, err := tx.ExecContext(ctx, `UPDATE enroll_codes SET revoked_at = $1 WHERE id = $2`, at, id); err != nil {
			return fmt.Errorf("revoke enrollment code %s: %w", id, err)
		}
		return nil
	})
}

// Enroll consumes the enrollment code with hash codeHash and, in the same
// transaction, creates the device and records its first certificate. build
// gets the code's id and group and returns the device and certificate to
// store (it may run more than once). A code that is unknown, used, expired
// (expires_at <= now) or revoked gives ErrCodeUnknown, ErrCodeUsed,
// ErrCodeExpired or ErrCodeRevoked; a taken device id gives ErrDeviceExists;
// in every error case the code stays as it was. Of concurrent enrollments
// with one code exactly one succeeds.
func (db *DB) Enroll(ctx context.Context, codeHash []byte, now int64,
	build func(codeID, groupID string) (Device, DeviceCert, error)) (Device, DeviceCert, error) {
	var dev Device
	var cert DeviceCert
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		var codeID, groupID string
		// The conditional UPDATE is the single point where concurrent
		// enrollments meet: one of them changes the row, the others find
		// used_at set (PostgreSQL re-checks the WHERE after the row lock;
		// SQLite has one writer).
		err := tx.QueryRowContext(ctx, `UPDATE enroll_codes SET used_at = $1
			WHERE hash = $2 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $1
			RETURNING id, group_id`, now, codeHash).Scan(&codeID, &groupID)
		if errors.Is(err, sql.ErrNoRows) {
			return registryCodeState(ctx, tx, codeHash, now)
		}
		if err != nil {
			return fmt.Errorf("enroll: consume code: %w", err)
		}
		dev, cert, err = build(codeID, groupID)
		if err != nil {
			return err
		}
		dev.GroupID, dev.EnrollCodeID, cert.DeviceID = groupID, codeID, dev.ID
		if _, err := tx.ExecContext(ctx, `UPDATE enroll_codes SET device_id = $1 WHERE id = $2`, dev.ID, codeID); err != nil {
			return fmt.Errorf("enroll: mark code: %w", err)
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO devices (id, group_id, created_at, model, serial_number,
			software_version, peripherals, location_label, inventory_at, enroll_code_id)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			dev.ID, dev.GroupID, dev.CreatedAt, dev.Model, dev.SerialNumber, dev.SoftwareVersion,
			dev.Peripherals, dev.LocationLabel, dev.InventoryAt, dev.EnrollCodeID)
		if IsUniqueViolation(err) {
			return ErrDeviceExists
		}
		if err != nil {
			return fmt.Errorf("enroll: create device %s: %w", dev.ID, err)
		}
		return registryInsertCert(ctx, tx, cert)
	})
	if err != nil {
		return Device{}, DeviceCert{}, err
	}
	return dev, cert, nil
}

// registryCodeState tells why the code with hash h cannot be used.
func registryCodeState(ctx context.Context, tx *sql.Tx, h []byte, now int64) error {
	var used, revoked, expires int64
	err := tx.QueryRowContext(ctx, `SELECT COALESCE(used_at, 0), COALESCE(revoked_at, 0), expires_at
		FROM enroll_codes WHERE hash = $1`, h).Scan(&used, &revoked, &expires)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return ErrCodeUnknown
	case err != nil:
		return fmt.Errorf("enroll: read code: %w", err)
	case used != 0:
		return ErrCodeUsed
	case revoked != 0:
		return ErrCodeRevoked
	case expires <= now:
		return ErrCodeExpired
	}
	return fmt.Errorf("enroll: code neither usable nor refused")
}

func registryInsertCert(ctx context.Context, tx *sql.Tx, c DeviceCert) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO device_certs (serial, device_id, not_before, not_after, created_at)
		VALUES ($1, $2, $3, $4, $5)`, c.Serial, c.DeviceID, c.NotBefore, c.NotAfter, c.CreatedAt)
	if err != nil {
		return fmt.Errorf("record certificate %s of %s: %w", c.Serial, c.DeviceID, err)
	}
	return nil
}

// AddDeviceCert records a renewed certificate: ErrNotFound for an unknown
// device, ErrDeviceRevoked for a revoked one.
func (db *DB) AddDeviceCert(ctx context.Context, c DeviceCert) error {
	return db.Tx(ctx, func(tx *sql.Tx) error {
		var revoked int64
		err := tx.QueryRowContext(ctx, `SELECT COALESCE(revoked_at, 0) FROM devices WHERE id = $1`, c.DeviceID).Scan(&revoked)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("record certificate of %s: %w", c.DeviceID, err)
		}
		if revoked != 0 {
			return ErrDeviceRevoked
		}
		return registryInsertCert(ctx, tx, c)
	})
}

// DeviceCerts returns the certificates issued to a device, newest first.
func (db *DB) DeviceCerts(ctx context.Context, deviceID string) ([]DeviceCert, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT serial, device_id, not_before, not_after, created_at,
		COALESCE(revoked_at, 0) FROM device_certs WHERE device_id = $1 ORDER BY created_at DESC, serial`, deviceID)
	if err != nil {
		return nil, fmt.Errorf("list certificates of %s: %w", deviceID, err)
	}
	defer rows.Close()
	var cs []DeviceCert
	for rows.Next() {
		var c DeviceCert
		if err := rows.Scan(&c.Serial, &c.DeviceID, &c.NotBefore, &c.NotAfter, &c.CreatedAt, &c.RevokedAt); err != nil {
			return nil, fmt.Errorf("list certificates of %s: %w", deviceID, err)
		}
		cs = append(cs, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list certificates of %s: %w", deviceID, err)
	}
	return cs, nil
}

const registryDeviceSelect = `SELECT id, group_id, created_at, COALESCE(revoked_at, 0), revoked_reason,
	COALESCE(last_seen, 0), model, serial_number, software_version, peripherals, location_label,
	inventory_at, enroll_code_id FROM devices`

func registryScanDevice(s interface{ Scan(...any) error }) (Device, error) {
	var d Device
	err := s.Scan(&d.ID, &d.GroupID, &d.CreatedAt, &d.RevokedAt, &d.RevokedReason, &d.LastSeen, &d.Model,
		&d.SerialNumber, &d.SoftwareVersion, &d.Peripherals, &d.LocationLabel, &d.InventoryAt, &d.EnrollCodeID)
	return d, err
}

// Device returns a device, or ErrNotFound.
func (db *DB) Device(ctx context.Context, id string) (Device, error) {
	d, err := registryScanDevice(db.read.QueryRowContext(ctx, registryDeviceSelect+` WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Device{}, ErrNotFound
	}
	if err != nil {
		return Device{}, fmt.Errorf("read device %s: %w", id, err)
	}
	return d, nil
}

// Devices returns the devices f selects, ordered by id.
func (db *DB) Devices(ctx context.Context, f DeviceFilter) ([]Device, error) {
	q := registryDeviceSelect + ` WHERE ($1 = '' OR group_id = $1) AND id > $2 ORDER BY id`
	args := []any{f.GroupID, f.After}
	if f.Limit > 0 {
		q += ` LIMIT $3`
		args = append(args, f.Limit)
	}
	rows, err := db.read.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list devices: %w", err)
	}
	defer rows.Close()
	var ds []Device
	for rows.Next() {
		d, err := registryScanDevice(rows)
		if err != nil {
			return nil, fmt.Errorf("list devices: %w", err)
		}
		ds = append(ds, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list devices: %w", err)
	}
	return ds, nil
}

// RevokeDevice marks a device and all its certificates revoked (ErrNotFound
// for an unknown device). It reports whether the device was revoked now
// rather than before; a second revocation keeps the first time and reason.
func (db *DB) RevokeDevice(ctx context.Context, id, reason string, at int64) (bool, error) {
	var changed bool
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		changed = false
		var revoked int64
		err := tx.QueryRowContext(ctx, `SELECT COALESCE(revoked_at, 0) FROM devices WHERE id = $1`, id).Scan(&revoked)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("revoke device %s: %w", id, err)
		}
		if revoked != 0 {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `UPDATE devices SET revoked_at = $1, revoked_reason = $2 WHERE id = $3`,
			at, reason, id); err != nil {
			return fmt.Errorf("revoke device %s: %w", id, err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE device_certs SET revoked_at = $1 WHERE device_id = $2 AND revoked_at IS NULL`,
			at, id); err != nil {
			return fmt.Errorf("revoke certificates of %s: %w", id, err)
		}
		changed = true
		return nil
	})
	return changed, err
}

// RevokeDeviceCert revokes one certificate and returns its device
// (ErrNotFound for an unknown serial).
func (db *DB) RevokeDeviceCert(ctx context.Context, serial string, at int64) (string, error) {
	var device string
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `SELECT device_id FROM device_certs WHERE serial = $1`, serial).Scan(&device)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("revoke certificate %s: %w", serial, err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE device_certs SET revoked_at = $1 WHERE serial = $2 AND revoked_at IS NULL`,
			at, serial); err != nil {
			return fmt.Errorf("revoke certificate %s: %w", serial, err)
		}
		return nil
	})
	return device, err
}

// Revocations returns the ids of all revoked devices and the serials of the
// revoked certificates that have not expired at now.
func (db *DB) Revocations(ctx context.Context, now int64) (devices, serials []string, err error) {
	collect := func(q string, args ...any) ([]string, error) {
		rows, err := db.read.QueryContext(ctx, q, args...)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				return nil, err
			}
			out = append(out, s)
		}
		return out, rows.Err()
	}
	if devices, err = collect(`SELECT id FROM devices WHERE revoked_at IS NOT NULL`); err != nil {
		return nil, nil, fmt.Errorf("read revoked devices: %w", err)
	}
	if serials, err = collect(`SELECT serial FROM device_certs WHERE revoked_at IS NOT NULL AND not_after > $1`, now); err != nil {
		return nil, nil, fmt.Errorf("read revoked certificates: %w", err)
	}
	return devices, serials, nil
}

// UpdateDeviceInventory replaces a device's inventory (ErrNotFound for an
// unknown device).
func (db *DB) UpdateDeviceInventory(ctx context.Context, id string, inv DeviceInventory, at int64) error {
	return db.Tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE devices SET model = $1, serial_number = $2, software_version = $3,
			peripherals = $4, location_label = $5, inventory_at = $6 WHERE id = $7`,
			inv.Model, inv.SerialNumber, inv.SoftwareVersion, inv.Peripherals, inv.LocationLabel, at, id)
		if err != nil {
			return fmt.Errorf("update inventory of %s: %w", id, err)
		}
		return registryOneRow(res, "update inventory of "+id)
	})
}

// TouchDevices raises the last-seen time of each device in seen (id → Unix
// ms) in one transaction; it never lowers one. Unknown ids are ignored.
func (db *DB) TouchDevices(ctx context.Context, seen map[string]int64) error {
	if len(seen) == 0 {
		return nil
	}
	return db.Tx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `UPDATE devices SET last_seen = $1
			WHERE id = $2 AND (last_seen IS NULL OR last_seen < $1)`)
		if err != nil {
			return fmt.Errorf("update last seen: %w", err)
		}
		defer stmt.Close()
		for id, at := range seen {
			if _, err := stmt.ExecContext(ctx, at, id); err != nil {
				return fmt.Errorf("update last seen of %s: %w", id, err)
			}
		}
		return nil
	})
}

// SettingOrPut returns the value stored under key; if there is none it
// stores value and returns it. Of concurrent callers (replicas starting at
// the same time) all get the one value that was stored first.
func (db *DB) SettingOrPut(ctx context.Context, key string, value []byte) ([]byte, error) {
	var got []byte
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3)
			ON CONFLICT (key) DO NOTHING`, key, value, time.Now().UnixMilli()); err != nil {
			return fmt.Errorf("write setting %s: %w", key, err)
		}
		if err := tx.QueryRowContext(ctx, `SELECT value FROM settings WHERE key = $1`, key).Scan(&got); err != nil {
			return fmt.Errorf("read setting %s: %w", key, err)
		}
		return nil
	})
	return got, err
}

func registryOneRow(res sql.Result, what string) error {
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}
