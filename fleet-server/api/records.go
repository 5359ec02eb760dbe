package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/fleet-server/store"
)

// Record states in lists and filters.
const (
	recordComplete   = "complete"   // stored with all its blobs
	recordIncomplete = "incomplete" // blobs still arriving
	recordErased     = "erased"     // sealed body deleted
)

// recordJSON is a record's metadata. The sealed body is never served.
type recordJSON struct {
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
	Status     string            `json:"status"`
	Blobs      []blobJSON        `json:"blobs,omitempty"`

	n int64 // the paging cursor
}

type blobJSON struct {
	ID       uuid.UUID `json:"id"`
	Role     string    `json:"role"`
	Size     uint64    `json:"size"`
	SHA256   string    `json:"sha256"` // hex
	Have     uint64    `json:"have"`
	Complete bool      `json:"complete"`
}

type recordList struct {
	Records []recordJSON `json:"records"`
	// Next is the cursor of the next page; empty on the last page.
	Next string `json:"next,omitempty"`
}

func recordFrom(r store.Record) recordJSON {
	out := recordJSON{
		Device: r.Device, ID: r.ID, Seq: r.Seq, Kind: r.Kind, Office: r.Office, KeyID: r.KeyID,
		CreatedAt: time.UnixMilli(r.CreatedAt).UTC(), ReceivedAt: time.UnixMilli(r.ReceivedAt).UTC(),
		Meta: r.Meta, SealedSize: r.SealedSize, Status: recordComplete, n: r.N,
	}
	for _, b := range r.Blobs {
		out.Blobs = append(out.Blobs, blobJSON{ID: b.ID, Role: b.Role, Size: b.Size, SHA256: b.SHA256.String(),
			Have: b.Have, Complete: b.CompleteAt != 0})
		if b.CompleteAt == 0 {
			out.Status = recordIncomplete
		}
	}
	if r.Erased {
		out.Status = recordErased
	}
	return out
}

func (h *Handler) listRecords(w http.ResponseWriter, r *http.Request) error {
	q := newQuery(r, "device", "kind", "office", "status", "after", "limit")
	f := store.RecordFilter{Device: q.str("device"), Kind: q.str("kind"), Office: q.str("office"), After: q.int64("after")}
	status := q.str("status")
	limit := q.limit()
	if q.err != nil {
		return q.err
	}
	switch status {
	case "", recordComplete, recordIncomplete, recordErased:
	default:
		return badRequest("status: %s; want complete, incomplete or erased", describe(status))
	}
	// One match more than the page holds tells whether there is a next page.
	out := recordList{Records: []recordJSON{}}
	const batch = 500
	for {
		// Pages of the store stay below its cap, so that a short page
		// always means the end.
		f.Limit = batch
		if status == "" {
			f.Limit = min(limit+1, batch)
		}
		rs, err := h.svc.Records.Records(r.Context(), f)
		if err != nil {
			return mapError(err)
		}
		for _, rec := range rs {
			f.After = rec.N
			j := recordFrom(rec)
			if status != "" && j.Status != status {
				continue
			}
			if len(out.Records) == limit {
				last := out.Records[limit-1]
				out.Next = strconv.FormatInt(last.n, 10)
				return writeJSON(w, http.StatusOK, out)
			}
			out.Records = append(out.Records, j)
		}
		if len(rs) < f.Limit {
			return writeJSON(w, http.StatusOK, out)
		}
	}
}

func (h *Handler) showRecord(w http.ResponseWriter, r *http.Request) error {
	id, err := uuid.Parse(r.PathValue("record"))
	if err != nil {
		return badRequest("record: %s is not a UUID", describe(r.PathValue("record")))
	}
	rec, err := h.svc.Records.Record(r.Context(), r.PathValue("device"), id)
	if err != nil {
		return mapError(err)
	}
	return writeJSON(w, http.StatusOK, recordFrom(rec))
}
