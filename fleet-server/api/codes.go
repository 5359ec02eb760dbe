package api

import (
	"net/http"

	"github.com/kogge-fleet/kogge/fleet-server/registry"
)

type codeList struct {
	Codes []registry.Code `json:"codes"`
}

func (h *Handler) listCodes(w http.ResponseWriter, r *http.Request) error {
	q := newQuery(r, "group")
	group := q.str("group")
	if q.err != nil {
		return q.err
	}
	cs, err := h.svc.Registry.Codes(r.Context(), group)
	if err != nil {
		return mapError(err)
	}
	if cs == nil {
		cs = []registry.Code{}
	}
	return writeJSON(w, http.StatusOK, codeList{Codes: cs})
}

// createCode answers with the code itself; it is shown only here. The
// response carries the CA fingerprint, which the device pins.
func (h *Handler) createCode(w http.ResponseWriter, r *http.Request) error {
	b, err := readBody(r)
	if err != nil {
		return err
	}
	req, ttl, err := decodeCreateCode(b)
	if err != nil {
		return err
	}
	c, err := h.svc.Registry.CreateCode(r.Context(), req.Group, registry.CodeOptions{TTL: ttl, Note: req.Note})
	if err != nil {
		return mapError(err)
	}
	// The audit line names the code by id, never the code.
	h.audit(r, "enroll_code.create", "code_id", c.ID, "group", c.Group, "expires_at", c.ExpiresAt)
	w.Header().Set("Cache-Control", "no-store")
	return writeJSON(w, http.StatusCreated, c)
}

func (h *Handler) revokeCode(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("code")
	if err := h.svc.Registry.RevokeCode(r.Context(), id); err != nil {
		return mapError(err)
	}
	h.audit(r, "enroll_code.revoke", "code_id", id)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
