package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/google/uuid"
)

// Record is a record's metadata; the sealed body is never served.
type Record struct {
	Device     string            `json:"device"`
	ID         uuid.UUID         `json:"id"`
	Seq        uint64            `json:"seq"`
	Kind       string            `json:"kind"`
	Office     string            `json:"office"`
	KeyID      string            `json:"key_id,omitempty"`
	CreatedAt  time.Time         `json:"created_at"`
	ReceivedAt time.Time         `json:"received_at"`
	Meta       map[string]string `json:"meta,omitempty"`
	SealedSize int64             `json:"sealed_size"`
	// Status is complete, incomplete (blobs still arriving) or erased.
	Status string `json:"status"`
	Blobs  []Blob `json:"blobs,omitempty"`
}

// Blob is a blob of a record and how much of it has arrived.
type Blob struct {
	ID       uuid.UUID `json:"id"`
	Role     string    `json:"role"`
	Size     uint64    `json:"size"`
	SHA256   string    `json:"sha256"`
	Have     uint64    `json:"have"`
	Complete bool      `json:"complete"`
}

// RecordQuery selects records; zero fields select all.
type RecordQuery struct {
	Device, Kind, Office string
	Status               string // complete, incomplete, erased
	After                string // cursor from the previous page
	Limit                int
}

// RecordPage is one page of records.
type RecordPage struct {
	Records []Record `json:"records"`
	Next    string   `json:"next,omitempty"`
}

// Records lists one page of records in the order the server stored them.
func (c *Client) Records(ctx context.Context, q RecordQuery) (RecordPage, error) {
	v := url.Values{}
	for k, s := range map[string]string{"device": q.Device, "kind": q.Kind, "office": q.Office, "status": q.Status, "after": q.After} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	var out RecordPage
	err := c.do(ctx, http.MethodGet, "api/v1/records", v, nil, &out)
	return out, err
}

// Record returns one record's metadata.
func (c *Client) Record(ctx context.Context, device string, id uuid.UUID) (Record, error) {
	var r Record
	err := c.do(ctx, http.MethodGet, "api/v1/devices/"+url.PathEscape(device)+"/records/"+id.String(), nil, nil, &r)
	return r, err
}
