package api

import (
	"errors"
	"net/http"
	"time"

	"github.com/kogge-fleet/kogge/fleet-server/store"
	"github.com/kogge-fleet/kogge/fleet-server/twin"
)

// groupTwinJSON is a group's desired configuration.
type groupTwinJSON struct {
	Group string `json:"group"`
	// Version is 0 while the group has no configuration.
	Version uint64         `json:"version"`
	Config  map[string]any `json:"config"`
}

func (h *Handler) showGroupTwin(w http.ResponseWriter, r *http.Request) error {
	group := r.PathValue("group")
	if _, err := h.svc.Registry.Group(r.Context(), group); err != nil {
		return mapError(err)
	}
	cfg, version, err := h.svc.Twin.Group(r.Context(), group)
	switch {
	case errors.Is(err, store.ErrNotFound):
		cfg, version = map[string]any{}, 0
	case err != nil:
		return mapError(err)
	}
	return writeJSON(w, http.StatusOK, groupTwinJSON{Group: group, Version: version, Config: cfg})
}

// setGroupTwin replaces a group's configuration; the devices whose desired
// document changes get it at once (retained).
func (h *Handler) setGroupTwin(w http.ResponseWriter, r *http.Request) error {
	group := r.PathValue("group")
	b, err := readBody(r)
	if err != nil {
		return err
	}
	req, err := decodeTwin(b)
	if err != nil {
		return err
	}
	version, err := h.svc.Twin.SetGroup(r.Context(), group, req.Config)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return errorf(http.StatusNotFound, "no group %q", group)
	case errors.Is(err, twin.ErrInvalid):
		return badRequest("%v", err)
	case err != nil && version == 0:
		return mapError(err)
	case err != nil:
		// Stored; some devices' documents were not updated. The twin
		// service retries publishing; say so.
		h.log.Warn("group configuration stored, some devices not updated yet", "group", group, "err", err)
	}
	h.audit(r, "twin.set_group", "group", group, "version", version)
	cfg, version, err := h.svc.Twin.Group(r.Context(), group)
	if err != nil {
		return mapError(err)
	}
	return writeJSON(w, http.StatusOK, groupTwinJSON{Group: group, Version: version, Config: cfg})
}

// overrideJSON is a device's configuration override.
type overrideJSON struct {
	Device string `json:"device"`
	// Override is null when the device has none.
	Override map[string]any `json:"override"`
}

func (h *Handler) showOverride(w http.ResponseWriter, r *http.Request) error {
	v, err := h.deviceTwinView(r)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, overrideJSON{Device: v.Device, Override: v.Override})
}

func (h *Handler) setOverride(w http.ResponseWriter, r *http.Request) error {
	b, err := readBody(r)
	if err != nil {
		return err
	}
	req, err := decodeTwin(b)
	if err != nil {
		return err
	}
	return h.putOverride(w, r, req.Config)
}

func (h *Handler) deleteOverride(w http.ResponseWriter, r *http.Request) error {
	return h.putOverride(w, r, nil)
}

func (h *Handler) putOverride(w http.ResponseWriter, r *http.Request, cfg map[string]any) error {
	device := r.PathValue("device")
	if _, err := h.svc.Registry.Device(r.Context(), device); err != nil {
		return mapError(err)
	}
	switch err := h.svc.Twin.SetDevice(r.Context(), device, cfg); {
	case errors.Is(err, store.ErrNotFound):
		return errorf(http.StatusNotFound, "no device %q", device)
	case errors.Is(err, twin.ErrInvalid):
		return badRequest("%v", err)
	case err != nil:
		return mapError(err)
	}
	if cfg == nil {
		h.audit(r, "twin.remove_override", "device", device)
	} else {
		h.audit(r, "twin.set_override", "device", device)
	}
	v, err := h.deviceTwinView(r)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, twinViewFrom(v))
}

// twinViewJSON is a device's configuration: its parts, the merged desired
// document, what the device reported and the difference.
type twinViewJSON struct {
	Device      string         `json:"device"`
	Group       string         `json:"group"`
	GroupConfig map[string]any `json:"group_config"`
	Override    map[string]any `json:"override"`
	// Desired is null while the device has no desired document.
	Desired   map[string]any `json:"desired"`
	Version   uint64         `json:"version"`
	Published uint64         `json:"published"`
	UpdatedAt *time.Time     `json:"updated_at,omitempty"`
	// Reported is null until the device reports.
	Reported *reportedJSON `json:"reported"`
	Diff     diffJSON      `json:"diff"`
}

type reportedJSON struct {
	Version  uint64         `json:"version"`
	Rejected uint64         `json:"rejected,omitempty"`
	Reason   string         `json:"reason,omitempty"`
	Config   map[string]any `json:"config,omitempty"`
	At       time.Time      `json:"at"`
}

type diffJSON struct {
	DesiredVersion uint64   `json:"desired_version"`
	AppliedVersion uint64   `json:"applied_version"`
	InSync         bool     `json:"in_sync"`
	Rejected       bool     `json:"rejected"`
	Reason         string   `json:"reason,omitempty"`
	Keys           []string `json:"keys,omitempty"`
}

func twinViewFrom(v twin.View) twinViewJSON {
	out := twinViewJSON{Device: v.Device, Group: v.Group, GroupConfig: v.GroupConfig, Override: v.Override,
		Desired: v.Desired, Version: v.Version, Published: v.Published, UpdatedAt: msTime(v.UpdatedAt),
		Diff: diffJSON{DesiredVersion: v.Diff.DesiredVersion, AppliedVersion: v.Diff.AppliedVersion, InSync: v.Diff.InSync,
			Rejected: v.Diff.Rejected, Reason: v.Diff.Reason, Keys: v.Diff.Keys}}
	if r := v.Reported; r != nil {
		out.Reported = &reportedJSON{Version: r.Version, Rejected: r.Rejected, Reason: r.Reason, Config: r.Config,
			At: time.UnixMilli(r.At).UTC()}
	}
	return out
}

func (h *Handler) deviceTwinView(r *http.Request) (twin.View, error) {
	device := r.PathValue("device")
	v, err := h.svc.Twin.Device(r.Context(), device)
	if errors.Is(err, store.ErrNotFound) {
		return twin.View{}, errorf(http.StatusNotFound, "no device %q", device)
	}
	if err != nil {
		return twin.View{}, mapError(err)
	}
	return v, nil
}

func (h *Handler) showDeviceTwin(w http.ResponseWriter, r *http.Request) error {
	v, err := h.deviceTwinView(r)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, twinViewFrom(v))
}
