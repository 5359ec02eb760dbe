package registry

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kogge-fleet/kogge/fleet-server/store"
)

// Group is a device group.
type Group struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	// Devices is the number of devices in the group.
	Devices int `json:"devices"`
}

// MaxGroupIDLen bounds a group id, so that a device id made of it and a
// suffix stays within protocol.MaxDeviceIDLen.
const MaxGroupIDLen = 40

// MaxGroupNameLen bounds a group name, in bytes.
const MaxGroupNameLen = 200

// CreateGroup creates a device group. An empty id is derived from the name
// ("Bürgeramt Mitte kiosks" → "buergeramt-mitte-kiosks"). A group id holds
// a-z, 0-9 and '-', starts with a letter or digit, and at most MaxGroupIDLen
// characters; devices enrolled without an id of their own are named after it.
func (r *Registry) CreateGroup(ctx context.Context, id, name string) (Group, error) {
	name = strings.TrimSpace(name)
	if err := checkText("group name", name, MaxGroupNameLen); err != nil {
		return Group{}, err
	}
	if name == "" {
		return Group{}, fmt.Errorf("%w: a group needs a name", ErrInvalid)
	}
	if id == "" {
		id = slug(name)
		if id == "" {
			return Group{}, fmt.Errorf("%w: cannot make a group id from %q; give one (a-z, 0-9, '-')", ErrInvalid, name)
		}
	}
	if err := validGroupID(id); err != nil {
		return Group{}, err
	}
	g := store.Group{ID: id, Name: name, CreatedAt: r.now().UnixMilli()}
	err := r.db.CreateGroup(ctx, g)
	if errors.Is(err, store.ErrGroupExists) {
		return Group{}, fmt.Errorf("%w: a group with id %q or name %q exists", ErrExists, id, name)
	}
	if err != nil {
		return Group{}, err
	}
	r.log.Info("created device group", "group", id, "name", name)
	return groupFrom(g), nil
}

// Groups returns all device groups, ordered by name.
func (r *Registry) Groups(ctx context.Context) ([]Group, error) {
	gs, err := r.db.Groups(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Group, 0, len(gs))
	for _, g := range gs {
		out = append(out, groupFrom(g))
	}
	return out, nil
}

// Group returns a device group.
func (r *Registry) Group(ctx context.Context, id string) (Group, error) {
	g, err := r.db.Group(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return Group{}, fmt.Errorf("%w: no group %q", ErrNotFound, id)
	}
	if err != nil {
		return Group{}, err
	}
	return groupFrom(g), nil
}

// RenameGroup gives a group a new name; its id stays.
func (r *Registry) RenameGroup(ctx context.Context, id, name string) (Group, error) {
	name = strings.TrimSpace(name)
	if err := checkText("group name", name, MaxGroupNameLen); err != nil {
		return Group{}, err
	}
	if name == "" {
		return Group{}, fmt.Errorf("%w: a group needs a name", ErrInvalid)
	}
	switch err := r.db.RenameGroup(ctx, id, name); {
	case errors.Is(err, store.ErrNotFound):
		return Group{}, fmt.Errorf("%w: no group %q", ErrNotFound, id)
	case errors.Is(err, store.ErrGroupExists):
		return Group{}, fmt.Errorf("%w: another group is named %q", ErrExists, name)
	case err != nil:
		return Group{}, err
	}
	r.log.Info("renamed device group", "group", id, "name", name)
	return r.Group(ctx, id)
}

// DeleteGroup deletes a group that has no devices, with its enrollment
// codes.
func (r *Registry) DeleteGroup(ctx context.Context, id string) error {
	switch err := r.db.DeleteGroup(ctx, id); {
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("%w: no group %q", ErrNotFound, id)
	case errors.Is(err, store.ErrGroupNotEmpty):
		return fmt.Errorf("%w: group %q still has devices; move or revoke them first", ErrGroupNotEmpty, id)
	case err != nil:
		return err
	}
	r.log.Info("deleted device group", "group", id)
	return nil
}

func groupFrom(g store.Group) Group {
	return Group{ID: g.ID, Name: g.Name, CreatedAt: time.UnixMilli(g.CreatedAt).UTC(), Devices: g.Devices}
}

func validGroupID(id string) error {
	if id == "" || len(id) > MaxGroupIDLen {
		return fmt.Errorf("%w: group id %q must have 1 to %d characters", ErrInvalid, id, MaxGroupIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' && i > 0) {
			return fmt.Errorf("%w: group id %q: allowed are a-z, 0-9 and '-', starting with a letter or digit", ErrInvalid, id)
		}
	}
	return nil
}

// slug makes a group id from a name: lower case, German umlauts spelled
// out, every other run of characters a '-'.
func slug(name string) string {
	var b strings.Builder
	dash := false
	for _, c := range strings.ToLower(name) {
		var s string
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
			s = string(c)
		case c == 'ä':
			s = "ae"
		case c == 'ö':
			s = "oe"
		case c == 'ü':
			s = "ue"
		case c == 'ß':
			s = "ss"
		default:
			dash = b.Len() > 0
			continue
		}
		if dash {
			b.WriteByte('-')
			dash = false
		}
		b.WriteString(s)
	}
	out := b.String()
	if len(out) > MaxGroupIDLen {
		out = strings.TrimRight(out[:MaxGroupIDLen], "-")
	}
	return out
}

// Enrollment codes are 16 characters of Crockford's base32 (80 bits) in
// groups of four, e.g. "7KQ2-M9XD-4HTN-B3WE". Input is read leniently: case,
// dashes and spaces do not matter, and O, I and L count as 0, 1 and 1.
const (
	codeAlphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
	codeLen      = 16
)

// CodeOptions are the optional settings of CreateCode.
type CodeOptions struct {
	// TTL is the code's lifetime; 0 means Options.CodeLifetime (default
	// 24 h); at most MaxCodeLifetime.
	TTL time.Duration
	// Note says what the code is for ("kiosk 3, Rathaus EG").
	Note string
}

// MaxNoteLen bounds a code's note and a revocation reason, in bytes.
const MaxNoteLen = 500

// Code is an enrollment code as listed: everything but the code itself,
// which is stored only as a hash.
type Code struct {
	ID        string    `json:"id"`
	Group     string    `json:"group"`
	Note      string    `json:"note,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	// UsedAt and Device are set once a device enrolled with the code.
	UsedAt *time.Time `json:"used_at,omitempty"`
	Device string     `json:"device,omitempty"`
	// RevokedAt is set when an admin revoked the code.
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
	// State is "active", "used", "expired" or "revoked".
	State string `json:"state"`
}

// NewCode is a newly created code: the only time the code is shown.
type NewCode struct {
	Code
	// Secret is the code to type on the device.
	Secret string `json:"code"`
	// CAFingerprint is the fleet CA's fingerprint, to give the device with
	// the code.
	CAFingerprint string `json:"ca_fingerprint"`
}

// CreateCode creates a one-time enrollment code for a group.
func (r *Registry) CreateCode(ctx context.Context, group string, o CodeOptions) (NewCode, error) {
	ttl := o.TTL
	if ttl == 0 {
		ttl = r.opts.CodeLifetime
	}
	if ttl < time.Minute || ttl > MaxCodeLifetime {
		return NewCode{}, fmt.Errorf("%w: code lifetime %v is outside 1 minute to %v", ErrInvalid, ttl, MaxCodeLifetime)
	}
	if err := checkText("note", o.Note, MaxNoteLen); err != nil {
		return NewCode{}, err
	}
	secret, err := randomCode()
	if err != nil {
		return NewCode{}, err
	}
	id, err := randomID(12)
	if err != nil {
		return NewCode{}, err
	}
	now := r.now()
	c := store.EnrollCode{
		ID: id, Hash: codeHash(secret), GroupID: group, Note: o.Note,
		CreatedAt: now.UnixMilli(), ExpiresAt: now.Add(ttl).UnixMilli(),
	}
	switch err := r.db.CreateEnrollCode(ctx, c); {
	case errors.Is(err, store.ErrNotFound):
		return NewCode{}, fmt.Errorf("%w: no group %q", ErrNotFound, group)
	case err != nil:
		return NewCode{}, err
	}
	r.log.Info("created enrollment code", "code_id", id, "group", group, "expires", time.UnixMilli(c.ExpiresAt).UTC())
	return NewCode{Code: r.codeFrom(c), Secret: formatCode(secret), CAFingerprint: r.CAFingerprint()}, nil
}

// Codes lists the enrollment codes of a group ("" for all), newest first.
func (r *Registry) Codes(ctx context.Context, group string) ([]Code, error) {
	cs, err := r.db.EnrollCodes(ctx, group)
	if err != nil {
		return nil, err
	}
	out := make([]Code, 0, len(cs))
	for _, c := range cs {
		out = append(out, r.codeFrom(c))
	}
	return out, nil
}

// RevokeCode revokes an unused enrollment code.
func (r *Registry) RevokeCode(ctx context.Context, id string) error {
	switch err := r.db.RevokeEnrollCode(ctx, id, r.now().UnixMilli()); {
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("%w: no enrollment code %q", ErrNotFound, id)
	case errors.Is(err, store.ErrCodeUsed):
		return fmt.Errorf("%w: code %q was used already; revoke the device instead", ErrCodeUsed, id)
	case err != nil:
		return err
	}
	r.log.Info("revoked enrollment code", "code_id", id)
	return nil
}

func (r *Registry) codeFrom(c store.EnrollCode) Code {
	out := Code{
		ID: c.ID, Group: c.GroupID, Note: c.Note, Device: c.DeviceID,
		CreatedAt: time.UnixMilli(c.CreatedAt).UTC(), ExpiresAt: time.UnixMilli(c.ExpiresAt).UTC(),
		State: "active",
	}
	if c.UsedAt != 0 {
		t := time.UnixMilli(c.UsedAt).UTC()
		out.UsedAt, out.State = &t, "used"
	}
	if c.RevokedAt != 0 {
		t := time.UnixMilli(c.RevokedAt).UTC()
		out.RevokedAt = &t
		if out.State == "active" {
			out.State = "revoked"
		}
	}
	if out.State == "active" && c.ExpiresAt <= r.now().UnixMilli() {
		out.State = "expired"
	}
	return out
}

// randomCode returns codeLen characters of codeAlphabet (5 bits each).
func randomCode() (string, error) {
	b := make([]byte, codeLen)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("make enrollment code: %w", err)
	}
	for i := range b {
		b[i] = codeAlphabet[b[i]&31]
	}
	return string(b), nil
}

// randomID returns n lower-case characters of codeAlphabet.
func randomID(n int) (string, error) {
	s, err := randomCode()
	if err != nil {
		return "", err
	}
	for len(s) < n {
		more, err := randomCode()
		if err != nil {
			return "", err
		}
		s += more
	}
	return strings.ToLower(s[:n]), nil
}

func formatCode(c string) string {
	return c[0:4] + "-" + c[4:8] + "-" + c[8:12] + "-" + c[12:16]
}

// normalizeCode reads a code as a person typed it.
func normalizeCode(s string) (string, error) {
	var b strings.Builder
	for _, c := range strings.ToUpper(s) {
		switch {
		case c == '-' || c == ' ':
			continue
		case c == 'O':
			c = '0'
		case c == 'I' || c == 'L':
			c = '1'
		}
		if c > 127 || !strings.ContainsRune(codeAlphabet, c) {
			return "", fmt.Errorf("%w: the enrollment code holds %q; codes use 0-9 and A-Z without U", ErrInvalid, c)
		}
		if b.Len() == codeLen {
			return "", fmt.Errorf("%w: the enrollment code is longer than %d characters", ErrInvalid, codeLen)
		}
		b.WriteRune(c)
	}
	if b.Len() != codeLen {
		return "", fmt.Errorf("%w: the enrollment code has %d characters, want %d (like 7KQ2-M9XD-4HTN-B3WE)", ErrInvalid, b.Len(), codeLen)
	}
	return b.String(), nil
}

// codeHash is what the store keeps of a code. The code carries 80 random
// bits, so a fast hash does not make guessing feasible.
func codeHash(normalized string) []byte {
	h := sha256.Sum256([]byte("kogge-enroll-code-v1:" + normalized))
	return h[:]
}

// Inventory is what a device tells about itself.
type Inventory struct {
	Model       string       `json:"model"`
	Serial      string       `json:"serial"`
	Software    string       `json:"software"`
	Peripherals []Peripheral `json:"peripherals,omitempty"`
	Location    string       `json:"location,omitempty"`
}

// Peripheral is a peripheral of a device.
type Peripheral struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
}

// Limits on inventory fields, in bytes.
const (
	MaxInventoryText = 200
	MaxPeripherals   = 32
)

// Validate checks the inventory against its limits.
func (inv Inventory) Validate() error {
	for _, f := range []struct{ name, v string }{
		{"inventory.model", inv.Model}, {"inventory.serial", inv.Serial},
		{"inventory.software", inv.Software}, {"inventory.location", inv.Location},
	} {
		if err := checkText(f.name, f.v, MaxInventoryText); err != nil {
			return err
		}
	}
	if len(inv.Peripherals) > MaxPeripherals {
		return fmt.Errorf("%w: inventory.peripherals: %d entries, at most %d", ErrInvalid, len(inv.Peripherals), MaxPeripherals)
	}
	for i, p := range inv.Peripherals {
		field := fmt.Sprintf("inventory.peripherals[%d]", i)
		if p.Name == "" {
			return fmt.Errorf("%w: %s.name is empty", ErrInvalid, field)
		}
		if err := checkText(field+".name", p.Name, 64); err != nil {
			return err
		}
		if err := checkText(field+".kind", p.Kind, 64); err != nil {
			return err
		}
	}
	return nil
}

// checkText accepts valid UTF-8 without control characters, up to max bytes.
func checkText(field, s string, max int) error {
	if len(s) > max {
		return fmt.Errorf("%w: %s has %d bytes, at most %d", ErrInvalid, field, len(s), max)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalid, field)
	}
	for _, c := range s {
		if c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0) {
			return fmt.Errorf("%w: %s holds the control character %U", ErrInvalid, field, c)
		}
	}
	return nil
}

// Device is a device as the registry knows it.
type Device struct {
	ID        string     `json:"id"`
	Group     string     `json:"group"`
	Inventory Inventory  `json:"inventory"`
	CreatedAt time.Time  `json:"created_at"`
	LastSeen  *time.Time `json:"last_seen,omitempty"`
	// InventoryAt is when the inventory was last reported.
	InventoryAt   time.Time  `json:"inventory_at"`
	RevokedAt     *time.Time `json:"revoked_at,omitempty"`
	RevokedReason string     `json:"revoked_reason,omitempty"`
	// Certificates are the device's certificates, newest first; only
	// Device fills them, not Devices.
	Certificates []Certificate `json:"certificates,omitempty"`
}

// Certificate is a certificate issued to a device.
type Certificate struct {
	Serial    string     `json:"serial"` // lower-case hex
	NotBefore time.Time  `json:"not_before"`
	NotAfter  time.Time  `json:"not_after"`
	IssuedAt  time.Time  `json:"issued_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// DeviceFilter selects devices: of one group ("" for all), ordered by id,
// after the id After (for paging), at most Limit (0 for all).
type DeviceFilter struct {
	Group string
	After string
	Limit int
}

// Devices lists devices.
func (r *Registry) Devices(ctx context.Context, f DeviceFilter) ([]Device, error) {
	if f.Limit < 0 {
		return nil, fmt.Errorf("%w: negative limit", ErrInvalid)
	}
	ds, err := r.db.Devices(ctx, store.DeviceFilter{GroupID: f.Group, After: f.After, Limit: f.Limit})
	if err != nil {
		return nil, err
	}
	out := make([]Device, 0, len(ds))
	for _, d := range ds {
		out = append(out, r.deviceFrom(d))
	}
	return out, nil
}

// Device returns a device with its certificates.
func (r *Registry) Device(ctx context.Context, id string) (Device, error) {
	d, err := r.db.Device(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return Device{}, fmt.Errorf("%w: no device %q", ErrNotFound, id)
	}
	if err != nil {
		return Device{}, err
	}
	out := r.deviceFrom(d)
	certs, err := r.db.DeviceCerts(ctx, id)
	if err != nil {
		return Device{}, err
	}
	for _, c := range certs {
		cert := Certificate{
			Serial:    c.Serial,
			NotBefore: time.UnixMilli(c.NotBefore).UTC(),
			NotAfter:  time.UnixMilli(c.NotAfter).UTC(),
			IssuedAt:  time.UnixMilli(c.CreatedAt).UTC(),
		}
		if c.RevokedAt != 0 {
			t := time.UnixMilli(c.RevokedAt).UTC()
			cert.RevokedAt = &t
		}
		out.Certificates = append(out.Certificates, cert)
	}
	return out, nil
}

func (r *Registry) deviceFrom(d store.Device) Device {
	out := Device{
		ID: d.ID, Group: d.GroupID, RevokedReason: d.RevokedReason,
		CreatedAt:   time.UnixMilli(d.CreatedAt).UTC(),
		InventoryAt: time.UnixMilli(d.InventoryAt).UTC(),
		Inventory: Inventory{
			Model: d.Model, Serial: d.SerialNumber, Software: d.SoftwareVersion, Location: d.LocationLabel,
		},
	}
	if err := json.Unmarshal([]byte(d.Peripherals), &out.Inventory.Peripherals); err != nil {
		r.log.Warn("device has unreadable peripherals in the store", "device", d.ID, "error", err)
	}
	if d.LastSeen != 0 {
		t := time.UnixMilli(d.LastSeen).UTC()
		out.LastSeen = &t
	}
	if d.RevokedAt != 0 {
		t := time.UnixMilli(d.RevokedAt).UTC()
		out.RevokedAt = &t
	}
	return out
}

// UpdateInventory replaces a device's inventory (from a heartbeat or a
// renewal).
func (r *Registry) UpdateInventory(ctx context.Context, device string, inv Inventory) error {
	if err := inv.Validate(); err != nil {
		return err
	}
	si, err := storeInventory(inv)
	if err != nil {
		return err
	}
	if err := r.db.UpdateDeviceInventory(ctx, device, si, r.now().UnixMilli()); errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w: no device %q", ErrNotFound, device)
	} else if err != nil {
		return err
	}
	return nil
}

func storeInventory(inv Inventory) (store.DeviceInventory, error) {
	ps := inv.Peripherals
	if ps == nil {
		ps = []Peripheral{}
	}
	b, err := json.Marshal(ps)
	if err != nil {
		return store.DeviceInventory{}, fmt.Errorf("encode peripherals: %w", err)
	}
	return store.DeviceInventory{
		Model: inv.Model, SerialNumber: inv.Serial, SoftwareVersion: inv.Software,
		Peripherals: string(b), LocationLabel: inv.Location,
	}, nil
}

// RevokeDevice revokes a device and all its certificates. The broker
// disconnects it at once (through OnRevoke) and refuses it from then on.
// Revoking a revoked device changes nothing but disconnects it again.
func (r *Registry) RevokeDevice(ctx context.Context, id, reason string) error {
	if err := checkText("reason", reason, MaxNoteLen); err != nil {
		return err
	}
	changed, err := r.db.RevokeDevice(ctx, id, reason, r.now().UnixMilli())
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w: no device %q", ErrNotFound, id)
	}
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.revDev[id] = true
	r.mu.Unlock()
	if changed {
		r.log.Info("revoked device", "device", id, "reason", reason)
	}
	r.notifyRevoked(id)
	return nil
}

// RevokeCertificate revokes one certificate of a device (serial in hex, as
// Device lists it); the device is disconnected and may connect again only
// with another, valid certificate.
func (r *Registry) RevokeCertificate(ctx context.Context, serial string) error {
	serial = strings.ToLower(strings.TrimLeft(strings.ReplaceAll(serial, ":", ""), "0"))
	device, err := r.db.RevokeDeviceCert(ctx, serial, r.now().UnixMilli())
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w: no certificate with serial %q", ErrNotFound, serial)
	}
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.revSer[serial] = true
	r.mu.Unlock()
	r.log.Info("revoked device certificate", "device", device, "serial", serial)
	r.notifyRevoked(device)
	return nil
}
