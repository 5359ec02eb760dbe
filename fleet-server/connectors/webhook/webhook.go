// Package webhook delivers cases as a versioned JSON document in an HTTPS
// POST, for procedures that take a webhook.
//
// The request:
//
//	POST <url>
//	Content-Type: application/json
//	Idempotency-Key: <record id>
//	X-Kogge-Timestamp: <Unix seconds>
//	X-Kogge-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">
//
// with a [Document] as body. The receiver verifies the signature (see
// [Verify]), must create at most one case per idempotency key, and answers
// 2xx with {"reference": "…"} (or the X-Reference header) for the receipt.
// 4xx means the receiver refuses the document for good (except 408, 425 and
// 429); 5xx, timeouts and unreadable answers are retried, first by the
// client with backoff and jitter, then by the delivery queue.
//
// The connection may use mTLS: the bridge then presents its client
// certificate (ClientConfig.TLS).
package webhook

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/fleet-server/bridge"
	"github.com/kogge-fleet/kogge/protocol/casefile"
)

// DocumentVersion is the version of Document this build writes.
//
// History:
//
//	1  2026-12-01  first version.
const DocumentVersion = 1

// MaxDocument bounds a document a parser reads: the largest record (16
// blobs of 32 MiB sealed) in base64, with room.
const MaxDocument = 768 << 20

// Document is the JSON body of a webhook delivery.
type Document struct {
	Version   int               `json:"version"`
	ID        uuid.UUID         `json:"id"`
	Kind      string            `json:"kind"`
	Office    string            `json:"office"`
	Device    string            `json:"device"`
	Seq       uint64            `json:"seq"`
	CreatedAt time.Time         `json:"created_at"`
	Attempt   int               `json:"attempt"`
	Meta      map[string]string `json:"meta,omitempty"`
	// Case is the casefile document in its JSON form (the field names are
	// the casefile package's JSON names; v is its version).
	Case json.RawMessage `json:"case,omitempty"`
	// Body is the opened document as CBOR, for kinds this build does not
	// know (Case is then absent).
	Body  []byte `json:"body_cbor,omitempty"`
	Blobs []Blob `json:"blobs,omitempty"`
}

// Blob is one opened blob of a document.
type Blob struct {
	ID          uuid.UUID `json:"id"`
	Role        string    `json:"role"`
	ContentType string    `json:"content_type"`
	Size        int       `json:"size"`
	// SHA256 is the hex digest of Data (the opened content).
	SHA256 string `json:"sha256"`
	Data   []byte `json:"data"`
}

// NewDocument builds the document of an opened case.
func NewDocument(c *bridge.Case) (*Document, error) {
	d := &Document{
		Version: DocumentVersion, ID: c.ID, Kind: c.Kind, Office: c.Office, Device: c.Device, Seq: c.Seq,
		CreatedAt: c.CreatedAt.UTC(), Attempt: c.Attempt, Meta: c.Meta,
	}
	if c.Doc != nil {
		b, err := json.Marshal(c.Doc)
		if err != nil {
			return nil, fmt.Errorf("render the %s document as JSON: %w", c.Kind, err)
		}
		d.Case = b
	} else {
		d.Body = c.Body
	}
	for _, b := range c.Blobs {
		sum := sha256.Sum256(b.Data)
		d.Blobs = append(d.Blobs, Blob{
			ID: b.Ref.ID, Role: b.Ref.Role, ContentType: b.ContentType(), Size: len(b.Data),
			SHA256: hex.EncodeToString(sum[:]), Data: b.Data,
		})
	}
	return d, nil
}

// ParseDocument reads and checks a document as a receiver: the version is
// known, the id is set, the case is a valid casefile document of the kind
// (when the kind is known), and every blob matches its size and digest.
func ParseDocument(b []byte) (*Document, error) {
	if len(b) > MaxDocument {
		return nil, fmt.Errorf("document of %d bytes, at most %d", len(b), MaxDocument)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	var d Document
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("document is not the JSON expected: %w", err)
	}
	if dec.More() {
		return nil, errors.New("trailing data after the document")
	}
	if d.Version < 1 {
		return nil, fmt.Errorf("document version %d, want 1 or more", d.Version)
	}
	if d.ID == uuid.Nil {
		return nil, errors.New("document has no record id")
	}
	if d.Kind == "" {
		return nil, errors.New("document has no kind")
	}
	if doc, known := casefile.New(d.Kind); known {
		if len(d.Case) == 0 {
			return nil, fmt.Errorf("document of kind %s has no case", d.Kind)
		}
		if err := json.Unmarshal(d.Case, doc); err != nil {
			return nil, fmt.Errorf("case is not a %s document: %w", d.Kind, err)
		}
		if err := doc.Validate(); err != nil {
			return nil, fmt.Errorf("case: %w", err)
		}
		have := map[uuid.UUID]bool{}
		for _, bl := range d.Blobs {
			have[bl.ID] = true
		}
		for _, id := range doc.Blobs() {
			if !have[id] {
				return nil, fmt.Errorf("case names blob %v, which the document does not carry", id)
			}
		}
	}
	seen := map[uuid.UUID]bool{}
	for i, bl := range d.Blobs {
		if bl.ID == uuid.Nil || seen[bl.ID] {
			return nil, fmt.Errorf("blob %d: id missing or repeated", i)
		}
		seen[bl.ID] = true
		sum := sha256.Sum256(bl.Data)
		if bl.Size != len(bl.Data) || bl.SHA256 != hex.EncodeToString(sum[:]) {
			return nil, fmt.Errorf("blob %v does not match its size and SHA-256", bl.ID)
		}
	}
	return &d, nil
}

// Config configures the webhook connector.
type Config struct {
	ClientConfig
}

// Connector delivers cases of every kind to one webhook.
type Connector struct {
	client *Client
}

var _ bridge.Connector = (*Connector)(nil)

// New returns a webhook connector. A 2xx answer without a reference is
// retried unless cfg.RequireReference is false; set it explicitly.
func New(cfg Config) (*Connector, error) {
	c, err := NewClient(cfg.ClientConfig)
	if err != nil {
		return nil, fmt.Errorf("webhook: %w", err)
	}
	return &Connector{client: c}, nil
}

// Close releases idle connections.
func (w *Connector) Close() { w.client.Close() }

// Deliver posts the case's document with the record id as idempotency key.
func (w *Connector) Deliver(ctx context.Context, c *bridge.Case) (bridge.Receipt, error) {
	doc, err := NewDocument(c)
	if err != nil {
		return bridge.Receipt{}, bridge.Permanent(err)
	}
	body, err := json.Marshal(doc)
	if err != nil {
		return bridge.Receipt{}, bridge.Permanent(fmt.Errorf("encode the webhook document: %w", err))
	}
	defer clear(body)
	rc, err := w.client.Post(ctx, c.ID.String(), "application/json", body)
	if err != nil {
		return rc, fmt.Errorf("webhook: %w", err)
	}
	return rc, nil
}
