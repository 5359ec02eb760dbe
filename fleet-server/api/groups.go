package api

import (
	"net/http"

	"github.com/kogge-fleet/kogge/fleet-server/registry"
)

type groupList struct {
	Groups []registry.Group `json:"groups"`
}

func (h *Handler) listGroups(w http.ResponseWriter, r *http.Request) error {
	if q := newQuery(r); q.err != nil {
		return q.err
	}
	gs, err := h.svc.Registry.Groups(r.Context())
	if err != nil {
		return mapError(err)
	}
	if gs == nil {
		gs = []registry.Group{}
	}
	return writeJSON(w, http.StatusOK, groupList{Groups: gs})
}

func (h *Handler) createGroup(w http.ResponseWriter, r *http.Request) error {
	b, err := readBody(r)
	if err != nil {
		return err
	}
	req, err := decodeCreateGroup(b)
	if err != nil {
		return err
	}
	g, err := h.svc.Registry.CreateGroup(r.Context(), req.ID, req.Name)
	if err != nil {
		return mapError(err)
	}
	h.audit(r, "group.create", "group", g.ID, "name", g.Name)
	w.Header().Set("Location", Prefix+"/groups/"+g.ID)
	return writeJSON(w, http.StatusCreated, g)
}

func (h *Handler) showGroup(w http.ResponseWriter, r *http.Request) error {
	g, err := h.svc.Registry.Group(r.Context(), r.PathValue("group"))
	if err != nil {
		return mapError(err)
	}
	return writeJSON(w, http.StatusOK, g)
}

func (h *Handler) renameGroup(w http.ResponseWriter, r *http.Request) error {
	b, err := readBody(r)
	if err != nil {
		return err
	}
	req, err := decodeRenameGroup(b)
	if err != nil {
		return err
	}
	g, err := h.svc.Registry.RenameGroup(r.Context(), r.PathValue("group"), req.Name)
	if err != nil {
		return mapError(err)
	}
	h.audit(r, "group.rename", "group", g.ID, "name", g.Name)
	return writeJSON(w, http.StatusOK, g)
}

func (h *Handler) deleteGroup(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("group")
	if err := h.svc.Registry.DeleteGroup(r.Context(), id); err != nil {
		return mapError(err)
	}
	h.audit(r, "group.delete", "group", id)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
