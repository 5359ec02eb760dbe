package api

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/fleet-server/rollout"
	"github.com/kogge-fleet/kogge/protocol/artifact"
)

// Rollouts is what the API needs of fleet-server/rollout: artifacts and
// rollouts. It is optional; without it the software-update endpoints are
// not served.
type Rollouts interface {
	Upload(ctx context.Context, signed []byte, binary io.Reader, actor string) (rollout.Artifact, error)
	Artifacts(ctx context.Context) ([]rollout.Artifact, error)
	Artifact(ctx context.Context, id uuid.UUID) (rollout.Artifact, error)
	DeleteArtifact(ctx context.Context, id uuid.UUID, actor string) error
	MaxArtifactSize() int64

	Create(ctx context.Context, spec rollout.Spec, actor string) (rollout.Rollout, error)
	Rollouts(ctx context.Context, f rollout.RolloutFilter) ([]rollout.Rollout, error)
	Rollout(ctx context.Context, id uuid.UUID) (rollout.Rollout, error)
	Events(ctx context.Context, id uuid.UUID) ([]rollout.Event, error)
	Devices(ctx context.Context, id uuid.UUID, f rollout.DeviceFilter) ([]rollout.Device, error)
	Pause(ctx context.Context, id uuid.UUID, actor string) (rollout.Rollout, error)
	Resume(ctx context.Context, id uuid.UUID, actor string) (rollout.Rollout, error)
	Abort(ctx context.Context, id uuid.UUID, reason, actor string) (rollout.Rollout, error)
}

// openAPIRollouts documents the software-update endpoints; it is merged
// into the OpenAPI document when they are served.
//
//go:embed openapi_rollouts.json
var openAPIRollouts []byte

func (h *Handler) registerRollouts() {
	h.handle("GET "+Prefix+"/artifacts", h.listArtifacts)
	h.handle("POST "+Prefix+"/artifacts", h.uploadArtifact)
	h.handle("GET "+Prefix+"/artifacts/{artifact}", h.showArtifact)
	h.handle("DELETE "+Prefix+"/artifacts/{artifact}", h.deleteArtifact)

	h.handle("GET "+Prefix+"/rollouts", h.listRollouts)
	h.handle("POST "+Prefix+"/rollouts", h.createRollout)
	h.handle("GET "+Prefix+"/rollouts/{rollout}", h.showRollout)
	h.handle("GET "+Prefix+"/rollouts/{rollout}/devices", h.rolloutDevices)
	h.handle("POST "+Prefix+"/rollouts/{rollout}/pause", h.pauseRollout)
	h.handle("POST "+Prefix+"/rollouts/{rollout}/resume", h.resumeRollout)
	h.handle("POST "+Prefix+"/rollouts/{rollout}/abort", h.abortRollout)
}

// rolloutError turns the rollout service's errors into HTTP errors.
func rolloutError(err error) error {
	status := 0
	switch {
	case errors.Is(err, rollout.ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, rollout.ErrInvalid):
		status = http.StatusBadRequest
	case errors.Is(err, rollout.ErrExists), errors.Is(err, rollout.ErrConflict):
		status = http.StatusConflict
	case errors.Is(err, rollout.ErrRefused):
		status = http.StatusUnprocessableEntity
	}
	if status == 0 {
		return mapError(err)
	}
	return &httpError{status: status, msg: err.Error()}
}

func pathUUID(r *http.Request, name string) (uuid.UUID, error) {
	id, err := uuid.Parse(r.PathValue(name))
	if err != nil {
		return uuid.Nil, errorf(http.StatusNotFound, "no %s %s: not an id", name, describe(r.PathValue(name)))
	}
	return id, nil
}

func (h *Handler) listArtifacts(w http.ResponseWriter, r *http.Request) error {
	if err := newQuery(r).err; err != nil {
		return err
	}
	list, err := h.svc.Rollouts.Artifacts(r.Context())
	if err != nil {
		return rolloutError(err)
	}
	if list == nil {
		list = []rollout.Artifact{}
	}
	return writeJSON(w, http.StatusOK, map[string]any{"artifacts": list})
}

// maxManifestPart bounds the manifest part of an upload.
const maxManifestPart = artifact.MaxSignedSize

// decodeUpload reads the parts of an artifact upload: multipart/form-data
// with the part "manifest" (the signed manifest) first and the part
// "binary" after it, which is returned unread for streaming.
func decodeUpload(contentType string, body io.Reader) ([]byte, io.Reader, error) {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		return nil, nil, errorf(http.StatusUnsupportedMediaType,
			"an artifact upload is multipart/form-data with the parts manifest and binary (koggectl artifact upload sends one)")
	}
	mr := multipart.NewReader(body, params["boundary"])
	p, err := mr.NextPart()
	if err != nil || p.FormName() != "manifest" {
		return nil, nil, badRequest("the first part of the upload must be the manifest")
	}
	manifest, err := io.ReadAll(io.LimitReader(p, maxManifestPart+1))
	if err != nil {
		return nil, nil, badRequest("read the manifest: %v", err)
	}
	if len(manifest) > maxManifestPart {
		return nil, nil, badRequest("the manifest is larger than %d bytes", maxManifestPart)
	}
	if p, err = mr.NextPart(); err != nil || p.FormName() != "binary" {
		return nil, nil, badRequest("the second part of the upload must be the binary")
	}
	return manifest, p, nil
}

func (h *Handler) uploadArtifact(w http.ResponseWriter, r *http.Request) error {
	if err := newQuery(r).err; err != nil {
		return err
	}
	r.Body = http.MaxBytesReader(w, r.Body, h.svc.Rollouts.MaxArtifactSize()+2*maxManifestPart)
	manifest, binary, err := decodeUpload(r.Header.Get("Content-Type"), r.Body)
	if err != nil {
		return err
	}
	a, err := h.svc.Rollouts.Upload(r.Context(), manifest, binary, h.actor)
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return errorf(http.StatusRequestEntityTooLarge, "upload larger than %d bytes", tooLarge.Limit)
	}
	if err != nil {
		return rolloutError(err)
	}
	return writeJSON(w, http.StatusCreated, a)
}

func (h *Handler) showArtifact(w http.ResponseWriter, r *http.Request) error {
	id, err := pathUUID(r, "artifact")
	if err != nil {
		return err
	}
	if err := newQuery(r).err; err != nil {
		return err
	}
	a, err := h.svc.Rollouts.Artifact(r.Context(), id)
	if err != nil {
		return rolloutError(err)
	}
	return writeJSON(w, http.StatusOK, a)
}

func (h *Handler) deleteArtifact(w http.ResponseWriter, r *http.Request) error {
	id, err := pathUUID(r, "artifact")
	if err != nil {
		return err
	}
	if err := newQuery(r).err; err != nil {
		return err
	}
	if err := h.svc.Rollouts.DeleteArtifact(r.Context(), id, h.actor); err != nil {
		return rolloutError(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// createRolloutRequest is the body of POST /api/v1/rollouts.
type createRolloutRequest struct {
	Name     string         `json:"name"`
	Artifact uuid.UUID      `json:"artifact"`
	Target   rollout.Target `json:"target"`
	Waves    []string       `json:"waves"`
	// SuccessThreshold and ErrorThreshold are shares from 0 to 1; absent
	// for the defaults.
	SuccessThreshold *float64 `json:"success_threshold"`
	ErrorThreshold   *float64 `json:"error_threshold"`
	// Soak is a Go duration such as "10m"; empty for the default.
	Soak             string `json:"soak"`
	Window           string `json:"window"`
	UpdateWithUnsent bool   `json:"update_with_unsent"`
	AllowDowngrade   bool   `json:"allow_downgrade"`
}

func decodeCreateRollout(b []byte) (rollout.Spec, error) {
	var v createRolloutRequest
	if err := decodeStrict(b, &v); err != nil {
		return rollout.Spec{}, err
	}
	if v.Artifact == uuid.Nil {
		return rollout.Spec{}, badRequest("artifact: name the artifact to roll out by its id")
	}
	for _, c := range []struct {
		field, s string
	}{{"name", v.Name}, {"target.group", v.Target.Group}, {"target.model", v.Target.Model}, {"target.software", v.Target.Software},
		{"window", v.Window}, {"soak", v.Soak}} {
		if err := checkText(c.field, c.s, maxNameLen); err != nil {
			return rollout.Spec{}, err
		}
	}
	spec := rollout.Spec{Name: v.Name, Artifact: v.Artifact, Target: v.Target, Waves: v.Waves,
		SuccessThreshold: v.SuccessThreshold, ErrorThreshold: v.ErrorThreshold, Window: v.Window,
		UpdateWithUnsent: v.UpdateWithUnsent, AllowDowngrade: v.AllowDowngrade}
	if v.Soak != "" {
		d, err := time.ParseDuration(v.Soak)
		if err != nil {
			return rollout.Spec{}, badRequest("soak: %s is not a duration such as 10m", describe(v.Soak))
		}
		spec.Soak = &d
	}
	return spec, nil
}

func (h *Handler) createRollout(w http.ResponseWriter, r *http.Request) error {
	if err := newQuery(r).err; err != nil {
		return err
	}
	b, err := readBody(r)
	if err != nil {
		return err
	}
	spec, err := decodeCreateRollout(b)
	if err != nil {
		return err
	}
	ro, err := h.svc.Rollouts.Create(r.Context(), spec, h.actor)
	if err != nil {
		return rolloutError(err)
	}
	return writeJSON(w, http.StatusCreated, ro)
}

func (h *Handler) listRollouts(w http.ResponseWriter, r *http.Request) error {
	q := newQuery(r, "state", "limit")
	f := rollout.RolloutFilter{Limit: q.limit()}
	if s := q.str("state"); s != "" {
		f.States = strings.Split(s, ",")
	}
	if q.err != nil {
		return q.err
	}
	list, err := h.svc.Rollouts.Rollouts(r.Context(), f)
	if err != nil {
		return rolloutError(err)
	}
	if list == nil {
		list = []rollout.Rollout{}
	}
	return writeJSON(w, http.StatusOK, map[string]any{"rollouts": list})
}

// rolloutDetail is a rollout with its events.
type rolloutDetail struct {
	rollout.Rollout
	Events []rollout.Event `json:"events"`
}

func (h *Handler) showRollout(w http.ResponseWriter, r *http.Request) error {
	id, err := pathUUID(r, "rollout")
	if err != nil {
		return err
	}
	if err := newQuery(r).err; err != nil {
		return err
	}
	ro, err := h.svc.Rollouts.Rollout(r.Context(), id)
	if err != nil {
		return rolloutError(err)
	}
	events, err := h.svc.Rollouts.Events(r.Context(), id)
	if err != nil {
		return rolloutError(err)
	}
	if events == nil {
		events = []rollout.Event{}
	}
	return writeJSON(w, http.StatusOK, rolloutDetail{Rollout: ro, Events: events})
}

func (h *Handler) rolloutDevices(w http.ResponseWriter, r *http.Request) error {
	id, err := pathUUID(r, "rollout")
	if err != nil {
		return err
	}
	q := newQuery(r, "state")
	var f rollout.DeviceFilter
	if s := q.str("state"); s != "" {
		f.States = strings.Split(s, ",")
	}
	if q.err != nil {
		return q.err
	}
	devs, err := h.svc.Rollouts.Devices(r.Context(), id, f)
	if err != nil {
		return rolloutError(err)
	}
	if devs == nil {
		devs = []rollout.Device{}
	}
	return writeJSON(w, http.StatusOK, map[string]any{"devices": devs})
}

func (h *Handler) pauseRollout(w http.ResponseWriter, r *http.Request) error {
	return h.rolloutAction(w, r, func(ctx context.Context, id uuid.UUID, _ string) (rollout.Rollout, error) {
		return h.svc.Rollouts.Pause(ctx, id, h.actor)
	})
}

func (h *Handler) resumeRollout(w http.ResponseWriter, r *http.Request) error {
	return h.rolloutAction(w, r, func(ctx context.Context, id uuid.UUID, _ string) (rollout.Rollout, error) {
		return h.svc.Rollouts.Resume(ctx, id, h.actor)
	})
}

func (h *Handler) abortRollout(w http.ResponseWriter, r *http.Request) error {
	return h.rolloutAction(w, r, func(ctx context.Context, id uuid.UUID, reason string) (rollout.Rollout, error) {
		return h.svc.Rollouts.Abort(ctx, id, reason, h.actor)
	})
}

// rolloutActionRequest is the optional body of pause, resume and abort.
type rolloutActionRequest struct {
	Reason string `json:"reason"`
}

func (h *Handler) rolloutAction(w http.ResponseWriter, r *http.Request, act func(context.Context, uuid.UUID, string) (rollout.Rollout, error)) error {
	id, err := pathUUID(r, "rollout")
	if err != nil {
		return err
	}
	if err := newQuery(r).err; err != nil {
		return err
	}
	b, err := readBody(r)
	if err != nil {
		return err
	}
	var v rolloutActionRequest
	if len(strings.TrimSpace(string(b))) > 0 {
		if err := decodeStrict(b, &v); err != nil {
			return err
		}
		if err := checkText("reason", v.Reason, maxReasonLen); err != nil {
			return err
		}
	}
	ro, err := act(r.Context(), id, v.Reason)
	if err != nil {
		return rolloutError(err)
	}
	return writeJSON(w, http.StatusOK, ro)
}

// mergeOpenAPI returns the document with the rollout endpoints added.
func mergeOpenAPI(base, extra []byte) ([]byte, error) {
	var doc, add map[string]any
	if err := json.Unmarshal(base, &doc); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(extra, &add); err != nil {
		return nil, err
	}
	merge := func(dst, src map[string]any, key string) error {
		d, _ := dst[key].(map[string]any)
		s, _ := src[key].(map[string]any)
		if d == nil {
			return fmt.Errorf("openapi: no %s to merge into", key)
		}
		for k, v := range s {
			if _, dup := d[k]; dup {
				return fmt.Errorf("openapi: %s %s is documented twice", key, k)
			}
			d[k] = v
		}
		return nil
	}
	comps, _ := doc["components"].(map[string]any)
	addComps, _ := add["components"].(map[string]any)
	errs := []error{merge(doc, add, "paths")}
	for _, k := range []string{"schemas", "parameters", "responses"} {
		if _, ok := addComps[k]; ok {
			errs = append(errs, merge(comps, addComps, k))
		}
	}
	if tags, ok := add["tags"].([]any); ok {
		doc["tags"] = append(doc["tags"].([]any), tags...)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return json.MarshalIndent(doc, "", "  ")
}
