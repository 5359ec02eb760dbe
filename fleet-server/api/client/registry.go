package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Group is a device group.
type Group struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	Devices   int       `json:"devices"`
}

// CreateGroup creates a group; an empty id lets the server derive one from
// the name.
func (c *Client) CreateGroup(ctx context.Context, id, name string) (Group, error) {
	var g Group
	err := c.do(ctx, http.MethodPost, "api/v1/groups", nil, map[string]string{"id": id, "name": name}, &g)
	return g, err
}

// Groups lists the groups.
func (c *Client) Groups(ctx context.Context) ([]Group, error) {
	var out struct {
		Groups []Group `json:"groups"`
	}
	err := c.do(ctx, http.MethodGet, "api/v1/groups", nil, nil, &out)
	return out.Groups, err
}

// Group returns one group.
func (c *Client) Group(ctx context.Context, id string) (Group, error) {
	var g Group
	err := c.do(ctx, http.MethodGet, "api/v1/groups/"+url.PathEscape(id), nil, nil, &g)
	return g, err
}

// RenameGroup renames a group.
func (c *Client) RenameGroup(ctx context.Context, id, name string) (Group, error) {
	var g Group
	err := c.do(ctx, http.MethodPatch, "api/v1/groups/"+url.PathEscape(id), nil, map[string]string{"name": name}, &g)
	return g, err
}

// DeleteGroup deletes a group without devices.
func (c *Client) DeleteGroup(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "api/v1/groups/"+url.PathEscape(id), nil, nil, nil)
}

// Code is an enrollment code as listed.
type Code struct {
	ID        string     `json:"id"`
	Group     string     `json:"group"`
	Note      string     `json:"note,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt time.Time  `json:"expires_at"`
	UsedAt    *time.Time `json:"used_at,omitempty"`
	Device    string     `json:"device,omitempty"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
	// State is active, used, expired or revoked.
	State string `json:"state"`
}

// NewCode is a created enrollment code: the one time the code is shown.
type NewCode struct {
	Code
	Secret        string `json:"code"`
	CAFingerprint string `json:"ca_fingerprint"`
}

// CodeRequest asks for an enrollment code.
type CodeRequest struct {
	Group string
	// TTL is the code's lifetime; 0 for the server's default.
	TTL  time.Duration
	Note string
}

// CreateCode creates a one-time enrollment code.
func (c *Client) CreateCode(ctx context.Context, r CodeRequest) (NewCode, error) {
	body := map[string]string{"group": r.Group, "note": r.Note}
	if r.TTL > 0 {
		body["ttl"] = r.TTL.String()
	}
	var out NewCode
	err := c.do(ctx, http.MethodPost, "api/v1/enroll-codes", nil, body, &out)
	return out, err
}

// Codes lists the enrollment codes of a group ("" for all).
func (c *Client) Codes(ctx context.Context, group string) ([]Code, error) {
	q := url.Values{}
	if group != "" {
		q.Set("group", group)
	}
	var out struct {
		Codes []Code `json:"codes"`
	}
	err := c.do(ctx, http.MethodGet, "api/v1/enroll-codes", q, nil, &out)
	return out.Codes, err
}

// RevokeCode revokes an unused enrollment code.
func (c *Client) RevokeCode(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodPost, "api/v1/enroll-codes/"+url.PathEscape(id)+"/revoke", nil, nil, nil)
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

// Certificate is a certificate issued to a device.
type Certificate struct {
	Serial    string     `json:"serial"`
	NotBefore time.Time  `json:"not_before"`
	NotAfter  time.Time  `json:"not_after"`
	IssuedAt  time.Time  `json:"issued_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// Device is a device as listed.
type Device struct {
	ID            string        `json:"id"`
	Group         string        `json:"group"`
	Inventory     Inventory     `json:"inventory"`
	CreatedAt     time.Time     `json:"created_at"`
	LastSeen      *time.Time    `json:"last_seen,omitempty"`
	InventoryAt   time.Time     `json:"inventory_at"`
	RevokedAt     *time.Time    `json:"revoked_at,omitempty"`
	RevokedReason string        `json:"revoked_reason,omitempty"`
	Certificates  []Certificate `json:"certificates,omitempty"`
	// State is revoked, online, offline or never-connected.
	State string `json:"state"`
}

// DeviceQuery selects devices; zero fields select all.
type DeviceQuery struct {
	Group    string
	State    string // active, revoked, online, offline, never-connected
	Software string // exact, or a prefix ending in *
	// SeenAfter and SeenBefore bound the last-seen time.
	SeenAfter, SeenBefore time.Time
	// After is the cursor from the previous page; Limit bounds the page
	// (server default 100).
	After string
	Limit int
}

// DevicePage is one page of devices; Next is the cursor of the next page,
// empty on the last.
type DevicePage struct {
	Devices []Device `json:"devices"`
	Next    string   `json:"next,omitempty"`
}

// Devices lists one page of devices.
func (c *Client) Devices(ctx context.Context, q DeviceQuery) (DevicePage, error) {
	v := url.Values{}
	set := func(k, s string) {
		if s != "" {
			v.Set(k, s)
		}
	}
	set("group", q.Group)
	set("state", q.State)
	set("software", q.Software)
	set("after", q.After)
	if !q.SeenAfter.IsZero() {
		v.Set("seen_after", q.SeenAfter.UTC().Format(time.RFC3339))
	}
	if !q.SeenBefore.IsZero() {
		v.Set("seen_before", q.SeenBefore.UTC().Format(time.RFC3339))
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	var out DevicePage
	err := c.do(ctx, http.MethodGet, "api/v1/devices", v, nil, &out)
	return out, err
}

// RevokeDevice revokes a device; the broker disconnects it at once.
func (c *Client) RevokeDevice(ctx context.Context, id, reason string) (Device, error) {
	var d Device
	err := c.do(ctx, http.MethodPost, "api/v1/devices/"+url.PathEscape(id)+"/revoke", nil,
		map[string]string{"reason": reason}, &d)
	return d, err
}

// DeviceDetail is one device with everything the server knows about it.
type DeviceDetail struct {
	Device
	// Presence is nil for a device that never connected.
	Presence *Presence `json:"presence"`
	// Health is the latest heartbeat, nil before the first.
	Health *HealthSample `json:"health"`
	Sync   Sync          `json:"sync"`
}

// Sync is a device's sync position.
type Sync struct {
	High            uint64     `json:"high"`
	UpdatedAt       *time.Time `json:"updated_at,omitempty"`
	Rejected        int64      `json:"rejected"`
	IncompleteBlobs int        `json:"incomplete_blobs"`
}

// Device returns one device with its certificates, presence, health and
// sync state.
func (c *Client) Device(ctx context.Context, id string) (DeviceDetail, error) {
	var d DeviceDetail
	err := c.do(ctx, http.MethodGet, "api/v1/devices/"+url.PathEscape(id), nil, nil, &d)
	return d, err
}
