package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/google/uuid"
)

// Delivery is a record's place in its office's delivery queue; never the
// sealed body.
type Delivery struct {
	Record uuid.UUID `json:"record"`
	Device string    `json:"device"`
	Office string    `json:"office"`
	Kind   string    `json:"kind"`
	// State is queued, leased, delivered, accepted, dead, discarded or
	// erased.
	State        string     `json:"state"`
	Attempt      int        `json:"attempt"`
	LeasedUntil  *time.Time `json:"leased_until,omitempty"`
	AvailableAt  time.Time  `json:"available_at"`
	LastError    string     `json:"last_error,omitempty"`
	Reference    string     `json:"reference,omitempty"`
	Note         string     `json:"note,omitempty"`
	EnqueuedAt   time.Time  `json:"enqueued_at"`
	UpdatedAt    time.Time  `json:"updated_at"`
	AcceptedAt   *time.Time `json:"accepted_at,omitempty"`
	DeadAt       *time.Time `json:"dead_at,omitempty"`
	Status       string     `json:"status,omitempty"`
	StatusNote   string     `json:"status_note,omitempty"`
	StatusAt     *time.Time `json:"status_at,omitempty"`
	StatusSentAt *time.Time `json:"status_sent_at,omitempty"`
}

// DeliveryDetail is a delivery with its record's metadata.
type DeliveryDetail struct {
	Delivery Delivery `json:"delivery"`
	Record   Record   `json:"record"`
}

// DeliveryQuery selects deliveries; zero fields select all.
type DeliveryQuery struct {
	Office string
	State  string
	After  string // cursor from the previous page
	Limit  int
}

// DeliveryPage is one page of deliveries.
type DeliveryPage struct {
	Deliveries []Delivery `json:"deliveries"`
	Next       string     `json:"next,omitempty"`
}

func (q DeliveryQuery) values() url.Values {
	v := url.Values{}
	for k, s := range map[string]string{"office": q.Office, "state": q.State, "after": q.After} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	return v
}

// Deliveries lists one page of deliveries in queue order.
func (c *Client) Deliveries(ctx context.Context, q DeliveryQuery) (DeliveryPage, error) {
	var out DeliveryPage
	err := c.do(ctx, http.MethodGet, "api/v1/deliveries", q.values(), nil, &out)
	return out, err
}

// Delivery returns a record's delivery and the record's metadata.
func (c *Client) Delivery(ctx context.Context, id uuid.UUID) (DeliveryDetail, error) {
	var out DeliveryDetail
	err := c.do(ctx, http.MethodGet, "api/v1/deliveries/"+id.String(), nil, nil, &out)
	return out, err
}

// OfficeQueue is the state of one office's delivery queue.
type OfficeQueue struct {
	Office         string     `json:"office"`
	Queued         int64      `json:"queued"`
	Leased         int64      `json:"leased"`
	Delivered      int64      `json:"delivered"`
	Dead           int64      `json:"dead"`
	OldestQueuedAt *time.Time `json:"oldest_queued_at,omitempty"`
	LagSeconds     float64    `json:"lag_seconds"`
}

// Queues returns the queue of every office with open deliveries or dead
// letters.
func (c *Client) Queues(ctx context.Context) ([]OfficeQueue, error) {
	var out struct {
		Offices []OfficeQueue `json:"offices"`
	}
	err := c.do(ctx, http.MethodGet, "api/v1/queues", nil, nil, &out)
	return out.Offices, err
}

// DeadLetters lists one page of dead letters (of an office, "" for all).
func (c *Client) DeadLetters(ctx context.Context, office, after string, limit int) (DeliveryPage, error) {
	var out DeliveryPage
	err := c.do(ctx, http.MethodGet, "api/v1/dead-letters", DeliveryQuery{Office: office, After: after, Limit: limit}.values(), nil, &out)
	return out, err
}

// DeadLetter inspects a dead letter.
func (c *Client) DeadLetter(ctx context.Context, id uuid.UUID) (DeliveryDetail, error) {
	var out DeliveryDetail
	err := c.do(ctx, http.MethodGet, "api/v1/dead-letters/"+id.String(), nil, nil, &out)
	return out, err
}

// ReplayDeadLetter puts a dead letter back into its queue.
func (c *Client) ReplayDeadLetter(ctx context.Context, id uuid.UUID) (Delivery, error) {
	var out Delivery
	err := c.do(ctx, http.MethodPost, "api/v1/dead-letters/"+id.String()+"/replay", nil, nil, &out)
	return out, err
}

// DiscardDeadLetter drops a dead letter, deleting its body and blobs.
func (c *Client) DiscardDeadLetter(ctx context.Context, id uuid.UUID, reason string) (Delivery, error) {
	var out Delivery
	err := c.do(ctx, http.MethodPost, "api/v1/dead-letters/"+id.String()+"/discard", nil, map[string]string{"reason": reason}, &out)
	return out, err
}

// ErasedRecord is a record an erasure request named.
type ErasedRecord struct {
	Device string    `json:"device"`
	ID     uuid.UUID `json:"id"`
	// Erased is set when its body and blobs were deleted now.
	Erased bool `json:"erased"`
}

// Erasure is what an erasure request named and erased.
type Erasure struct {
	Records []ErasedRecord `json:"records"`
	Erased  int            `json:"erased"`
}

// EraseRecord erases the body and blobs of a record everywhere on the
// server.
func (c *Client) EraseRecord(ctx context.Context, id uuid.UUID) (Erasure, error) {
	var out Erasure
	err := c.do(ctx, http.MethodPost, "api/v1/erasures", nil, map[string]string{"record": id.String()}, &out)
	return out, err
}

// EraseReference erases the bodies and blobs of the records with the
// procedure's reference number.
func (c *Client) EraseReference(ctx context.Context, reference string) (Erasure, error) {
	var out Erasure
	err := c.do(ctx, http.MethodPost, "api/v1/erasures", nil, map[string]string{"reference": reference}, &out)
	return out, err
}

// AuditEntry is one entry of the audit log.
type AuditEntry struct {
	Seq      int64           `json:"seq"`
	At       time.Time       `json:"at"`
	Actor    string          `json:"actor"`
	Action   string          `json:"action"`
	Target   string          `json:"target,omitempty"`
	Details  json.RawMessage `json:"details"`
	PrevHash string          `json:"prev_hash"`
	Hash     string          `json:"hash"`
}

// AuditQuery selects audit entries; zero fields select all, oldest first.
type AuditQuery struct {
	Action, Target string
	Since          time.Time
	// Newest lists newest first; the cursor is then Before.
	Newest        bool
	After, Before string
	Limit         int
}

// AuditPage is one page of audit entries.
type AuditPage struct {
	Entries []AuditEntry `json:"entries"`
	Next    string       `json:"next,omitempty"`
}

// Audit lists one page of the audit log.
func (c *Client) Audit(ctx context.Context, q AuditQuery) (AuditPage, error) {
	v := url.Values{}
	for k, s := range map[string]string{"action": q.Action, "target": q.Target, "after": q.After, "before": q.Before} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if !q.Since.IsZero() {
		v.Set("since", q.Since.UTC().Format(time.RFC3339))
	}
	if q.Newest {
		v.Set("order", "desc")
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	var out AuditPage
	err := c.do(ctx, http.MethodGet, "api/v1/audit", v, nil, &out)
	return out, err
}

// AuditVerification is the result of walking the audit log's chain.
type AuditVerification struct {
	OK       bool   `json:"ok"`
	Entries  int    `json:"entries"`
	BrokenAt int64  `json:"broken_at,omitempty"`
	Reason   string `json:"reason,omitempty"`
}

// VerifyAudit walks the audit log's hash chain on the server.
func (c *Client) VerifyAudit(ctx context.Context) (AuditVerification, error) {
	var out AuditVerification
	err := c.do(ctx, http.MethodPost, "api/v1/audit/verify", nil, nil, &out)
	return out, err
}

// BridgeCertificate is a certificate issued to an office's bridge.
// Certificate and CA (PEM) are set only in the answer to the issue.
type BridgeCertificate struct {
	Serial      string     `json:"serial"`
	Office      string     `json:"office"`
	CommonName  string     `json:"common_name"`
	NotBefore   time.Time  `json:"not_before"`
	NotAfter    time.Time  `json:"not_after"`
	IssuedAt    time.Time  `json:"issued_at"`
	RevokedAt   *time.Time `json:"revoked_at,omitempty"`
	Certificate string     `json:"certificate,omitempty"`
	CA          string     `json:"ca,omitempty"`
}

// IssueBridgeCertificate has the fleet CA sign a bridge's CSR (PEM) for
// office.
func (c *Client) IssueBridgeCertificate(ctx context.Context, office string, csr []byte) (BridgeCertificate, error) {
	var out BridgeCertificate
	err := c.do(ctx, http.MethodPost, "api/v1/bridge-certificates", nil, map[string]string{"office": office, "csr": string(csr)}, &out)
	return out, err
}

// BridgeCertificates lists the bridge certificates of office ("" for all).
func (c *Client) BridgeCertificates(ctx context.Context, office string) ([]BridgeCertificate, error) {
	v := url.Values{}
	if office != "" {
		v.Set("office", office)
	}
	var out struct {
		Certificates []BridgeCertificate `json:"certificates"`
	}
	err := c.do(ctx, http.MethodGet, "api/v1/bridge-certificates", v, nil, &out)
	return out.Certificates, err
}

// RevokeBridgeCertificate revokes a bridge certificate by serial.
func (c *Client) RevokeBridgeCertificate(ctx context.Context, serial string) (BridgeCertificate, error) {
	var out BridgeCertificate
	err := c.do(ctx, http.MethodPost, "api/v1/bridge-certificates/"+url.PathEscape(serial)+"/revoke", nil, nil, &out)
	return out, err
}
