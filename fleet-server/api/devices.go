package api

import (
	"net/http"
	"strings"
	"time"

	"github.com/kogge-fleet/kogge/fleet-server/registry"
	"github.com/kogge-fleet/kogge/fleet-server/store"
)

// Device states in lists and filters.
const (
	stateRevoked = "revoked"
	stateOnline  = "online"
	stateOffline = "offline"
	// stateNever: enrolled, never connected.
	stateNever = "never-connected"
)

// deviceSummary is a device in a list.
type deviceSummary struct {
	registry.Device
	// State is revoked, online, offline or never-connected.
	State string `json:"state"`
}

type deviceList struct {
	Devices []deviceSummary `json:"devices"`
	// Next is the cursor of the next page (the after parameter); empty on
	// the last page.
	Next string `json:"next,omitempty"`
}

// deviceFilter is what GET /api/v1/devices selects on besides the group.
type deviceFilter struct {
	state      string
	software   string
	seenAfter  time.Time
	seenBefore time.Time
}

func (f deviceFilter) match(d deviceSummary) bool {
	switch {
	case f.state == "active" && d.State == stateRevoked:
		return false
	case f.state != "" && f.state != "active" && f.state != d.State:
		return false
	case f.software != "" && d.Inventory.Software != f.software &&
		!(strings.HasSuffix(f.software, "*") && strings.HasPrefix(d.Inventory.Software, strings.TrimSuffix(f.software, "*"))):
		return false
	case !f.seenAfter.IsZero() && (d.LastSeen == nil || !d.LastSeen.After(f.seenAfter)):
		return false
	case !f.seenBefore.IsZero() && (d.LastSeen == nil || !d.LastSeen.Before(f.seenBefore)):
		return false
	}
	return true
}

// listDevices pages through the registry by device id and filters each page,
// so that a page holds up to limit matching devices however sparse they are.
func (h *Handler) listDevices(w http.ResponseWriter, r *http.Request) error {
	q := newQuery(r, "group", "state", "software", "seen_after", "seen_before", "after", "limit")
	group := q.str("group")
	f := deviceFilter{
		state:      q.str("state"),
		software:   q.str("software"),
		seenAfter:  q.time("seen_after"),
		seenBefore: q.time("seen_before"),
	}
	after := q.str("after")
	limit := q.limit()
	if q.err != nil {
		return q.err
	}
	switch f.state {
	case "", "active", stateRevoked, stateOnline, stateOffline, stateNever:
	default:
		return badRequest("state: %s; want active, revoked, online, offline or never-connected", describe(f.state))
	}

	// One match more than the page holds tells whether there is a next page.
	out := deviceList{Devices: []deviceSummary{}}
	const batch = 500
	for {
		ds, err := h.svc.Registry.Devices(r.Context(), registry.DeviceFilter{Group: group, After: after, Limit: batch})
		if err != nil {
			return mapError(err)
		}
		states, err := h.deviceStates(r, ds)
		if err != nil {
			return err
		}
		for i, d := range ds {
			after = d.ID
			s := deviceSummary{Device: d, State: states[i]}
			if !f.match(s) {
				continue
			}
			if len(out.Devices) == limit {
				out.Next = out.Devices[limit-1].ID
				return writeJSON(w, http.StatusOK, out)
			}
			out.Devices = append(out.Devices, s)
		}
		if len(ds) < batch {
			return writeJSON(w, http.StatusOK, out)
		}
	}
}

// syncJSON is a device's sync position.
type syncJSON struct {
	// High is the contiguous high watermark: every record sequence up to
	// it is stored or refused.
	High      uint64     `json:"high"`
	UpdatedAt *time.Time `json:"updated_at,omitempty"`
	Rejected  int64      `json:"rejected"`
	// IncompleteBlobs counts blobs still arriving.
	IncompleteBlobs int `json:"incomplete_blobs"`
}

// deviceDetail is one device with everything the server knows about it.
type deviceDetail struct {
	registry.Device
	State string `json:"state"`
	// Presence is nil for a device that never connected.
	Presence *presenceJSON `json:"presence"`
	// Health is the latest heartbeat, nil before the first.
	Health *healthJSON `json:"health"`
	Sync   syncJSON    `json:"sync"`
}

func (h *Handler) showDevice(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("device")
	d, err := h.svc.Registry.Device(r.Context(), id)
	if err != nil {
		return mapError(err)
	}
	states, err := h.deviceStates(r, []registry.Device{d})
	if err != nil {
		return err
	}
	out := deviceDetail{Device: d, State: states[0]}
	s, err := h.svc.Records.DeviceSync(r.Context(), id)
	if err != nil {
		return mapError(err)
	}
	out.Sync = syncFrom(s)
	if out.Presence, err = h.presenceOf(r, id); err != nil {
		return err
	}
	if out.Health, err = h.latestHealth(r, id); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, out)
}

func syncFrom(s store.DeviceSync) syncJSON {
	out := syncJSON{High: s.High, Rejected: s.Rejected, IncompleteBlobs: len(s.Incomplete)}
	if s.UpdatedAt != 0 {
		t := time.UnixMilli(s.UpdatedAt).UTC()
		out.UpdatedAt = &t
	}
	return out
}

func (h *Handler) revokeDevice(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("device")
	b, err := readBody(r)
	if err != nil {
		return err
	}
	req, err := decodeRevokeDevice(b)
	if err != nil {
		return err
	}
	if err := h.svc.Registry.RevokeDevice(r.Context(), id, req.Reason); err != nil {
		return mapError(err)
	}
	h.audit(r, "device.revoke", "device", id, "reason", req.Reason)
	d, err := h.svc.Registry.Device(r.Context(), id)
	if err != nil {
		return mapError(err)
	}
	return writeJSON(w, http.StatusOK, deviceSummary{Device: d, State: stateRevoked})
}
