package api

import (
	"net/http"
	"strings"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/fleet-server/retention"
)

// eraseRequest is the body of POST /api/v1/erasures: a record id or a
// procedure reference number.
type eraseRequest struct {
	Record    string `json:"record"`
	Reference string `json:"reference"`
}

func decodeErase(b []byte) (retention.Request, error) {
	var v eraseRequest
	if err := decodeStrict(b, &v); err != nil {
		return retention.Request{}, err
	}
	if (v.Record == "") == (v.Reference == "") {
		return retention.Request{}, badRequest(`name either "record" (a record id) or "reference" (the procedure's reference number), not both`)
	}
	if v.Record != "" {
		id, err := uuid.Parse(v.Record)
		if err != nil || id == uuid.Nil {
			return retention.Request{}, badRequest("record: %s is not a UUID", describe(v.Record))
		}
		return retention.Request{Record: id}, nil
	}
	if strings.TrimSpace(v.Reference) == "" {
		return retention.Request{}, badRequest("reference: empty")
	}
	return retention.Request{Reference: v.Reference}, checkText("reference", v.Reference, maxReasonLen)
}

type erasedJSON struct {
	Device string    `json:"device"`
	ID     uuid.UUID `json:"id"`
	// Erased is set when the body and blobs were deleted now; otherwise
	// the server held none of them any more.
	Erased bool `json:"erased"`
}

type erasureJSON struct {
	Records []erasedJSON `json:"records"`
	Erased  int          `json:"erased"`
}

// erase serves an erasure request. The erasure audits itself (each erased
// record and the request) with this request's actor.
func (h *Handler) erase(w http.ResponseWriter, r *http.Request) error {
	b, err := readBody(r)
	if err != nil {
		return err
	}
	req, err := decodeErase(b)
	if err != nil {
		return err
	}
	req.Actor = h.actor
	res, err := h.svc.Erasure.Erase(r.Context(), req)
	if err != nil {
		return mapError(err)
	}
	out := erasureJSON{Records: []erasedJSON{}, Erased: res.Erased}
	for _, e := range res.Records {
		out.Records = append(out.Records, erasedJSON{Device: e.Device, ID: e.ID, Erased: e.Erased})
	}
	return writeJSON(w, http.StatusOK, out)
}
