package api

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/kogge-fleet/kogge/fleet-server/audit"
)

type auditList struct {
	Entries []audit.Entry `json:"entries"`
	// Next is the cursor of the next page: the after parameter, or the
	// before parameter with order=desc. Empty on the last page.
	Next string `json:"next,omitempty"`
}

// listAudit serves GET /api/v1/audit: entries oldest first after the
// cursor, or newest first (order=desc) before it; filtered by action,
// target and since.
func (h *Handler) listAudit(w http.ResponseWriter, r *http.Request) error {
	q := newQuery(r, "action", "target", "since", "after", "before", "order", "limit")
	f := audit.Filter{Action: q.str("action"), Target: q.str("target"), After: q.int64("after"), Before: q.int64("before")}
	since := q.time("since")
	order := q.str("order")
	limit := q.limit()
	if q.err != nil {
		return q.err
	}
	switch order {
	case "", "asc":
		if f.Before != 0 {
			return badRequest("before: only with order=desc; use after")
		}
	case "desc":
		if f.After != 0 {
			return badRequest("after: only with order=asc; use before")
		}
		f.Newest = true
	default:
		return badRequest("order: %s; want asc or desc", describe(order))
	}
	if !since.IsZero() {
		f.Since = since.UnixMilli()
	}
	f.Limit = limit + 1
	es, err := h.svc.Audit.List(r.Context(), f)
	if err != nil {
		return mapError(err)
	}
	out := auditList{Entries: []audit.Entry{}}
	for i, e := range es {
		if i == limit {
			out.Next = strconv.FormatInt(es[i-1].Seq, 10)
			break
		}
		out.Entries = append(out.Entries, e)
	}
	return writeJSON(w, http.StatusOK, out)
}

// verifyJSON is the result of POST /api/v1/audit/verify.
type verifyJSON struct {
	// OK is set when the whole chain checks out.
	OK bool `json:"ok"`
	// Entries counts the entries that check out, from the first.
	Entries int `json:"entries"`
	// BrokenAt is the first entry that does not fit, Reason why.
	BrokenAt int64  `json:"broken_at,omitempty"`
	Reason   string `json:"reason,omitempty"`
}

// verifyAudit walks the chain. A broken chain is a result (200 with ok
// false), not a failure of the request.
func (h *Handler) verifyAudit(w http.ResponseWriter, r *http.Request) error {
	q := newQuery(r)
	if q.err != nil {
		return q.err
	}
	n, err := h.svc.Audit.Verify(r.Context())
	var be *audit.BrokenError
	switch {
	case errors.As(err, &be):
		h.log.Error("audit log verification failed: the log was tampered with", "entry", be.Seq, "reason", be.Reason)
		return writeJSON(w, http.StatusOK, verifyJSON{Entries: n, BrokenAt: be.Seq, Reason: be.Reason})
	case err != nil:
		return mapError(err)
	}
	return writeJSON(w, http.StatusOK, verifyJSON{OK: true, Entries: n})
}
