package api

import (
	"errors"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/fleet-server/registry"
	"github.com/kogge-fleet/kogge/fleet-server/store"
	"github.com/kogge-fleet/kogge/protocol"
)

// presenceJSON is whether a device is connected.
type presenceJSON struct {
	Device string `json:"device"`
	Online bool   `json:"online"`
	// Reason says why an offline device is offline: "disconnected" (its
	// last will or a clean disconnect) or "heartbeat deadline".
	Reason string `json:"reason,omitempty"`
	// Since is when Online last changed.
	Since     time.Time  `json:"since"`
	LastHeard time.Time  `json:"last_heard"`
	Session   *uuid.UUID `json:"session,omitempty"`
	Software  string     `json:"software,omitempty"`
}

func presenceFrom(p store.Presence) presenceJSON {
	out := presenceJSON{Device: p.Device, Online: p.Online, Reason: p.Reason, Software: p.Software,
		Since: time.UnixMilli(p.ChangedAt).UTC(), LastHeard: time.UnixMilli(p.LastHeard).UTC()}
	if p.Session != uuid.Nil {
		s := p.Session
		out.Session = &s
	}
	return out
}

// healthJSON is one heartbeat as the server received it.
type healthJSON struct {
	ReceivedAt time.Time          `json:"received_at"`
	Heartbeat  protocol.Heartbeat `json:"heartbeat"`
}

func healthFrom(h store.Health) healthJSON {
	return healthJSON{ReceivedAt: time.UnixMilli(h.ReceivedAt).UTC(), Heartbeat: h.Heartbeat}
}

type presenceList struct {
	Presence []presenceJSON `json:"presence"`
	Next     string         `json:"next,omitempty"`
}

// listPresence lists the presence of the devices that have connected at
// least once, by device id.
func (h *Handler) listPresence(w http.ResponseWriter, r *http.Request) error {
	q := newQuery(r, "state", "after", "limit")
	state := q.str("state")
	after := q.str("after")
	limit := q.limit()
	if q.err != nil {
		return q.err
	}
	if state != "" && state != stateOnline && state != stateOffline {
		return badRequest("state: %s; want online or offline", describe(state))
	}
	out := presenceList{Presence: []presenceJSON{}}
	for {
		ps, err := h.svc.Presence.Presences(r.Context(), after, maxLimit, state == stateOnline)
		if err != nil {
			return mapError(err)
		}
		for _, p := range ps {
			after = p.Device
			if state == stateOffline && p.Online {
				continue
			}
			if len(out.Presence) == limit {
				out.Next = out.Presence[limit-1].Device
				return writeJSON(w, http.StatusOK, out)
			}
			out.Presence = append(out.Presence, presenceFrom(p))
		}
		if len(ps) < maxLimit {
			return writeJSON(w, http.StatusOK, out)
		}
	}
}

type healthList struct {
	Samples []healthJSON `json:"samples"`
}

// deviceHealth lists a device's heartbeat samples, newest first.
func (h *Handler) deviceHealth(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("device")
	q := newQuery(r, "since", "until", "limit")
	since, until := q.time("since"), q.time("until")
	limit := q.limit()
	if q.err != nil {
		return q.err
	}
	if _, err := h.svc.Registry.Device(r.Context(), id); err != nil {
		return mapError(err)
	}
	f := store.HealthFilter{Device: id, Limit: limit}
	if !since.IsZero() {
		f.Since = since.UnixMilli()
	}
	if !until.IsZero() {
		f.Until = until.UnixMilli()
	}
	hs, err := h.svc.Presence.HealthHistory(r.Context(), f)
	if err != nil {
		return mapError(err)
	}
	out := healthList{Samples: make([]healthJSON, 0, len(hs))}
	for _, s := range hs {
		out.Samples = append(out.Samples, healthFrom(s))
	}
	return writeJSON(w, http.StatusOK, out)
}

// presenceOf returns a device's presence, nil when it never connected.
func (h *Handler) presenceOf(r *http.Request, device string) (*presenceJSON, error) {
	p, err := h.svc.Presence.Presence(r.Context(), device)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	j := presenceFrom(p)
	return &j, nil
}

// latestHealth returns a device's latest heartbeat, nil when there is none.
func (h *Handler) latestHealth(r *http.Request, device string) (*healthJSON, error) {
	hb, err := h.svc.Presence.LatestHealth(r.Context(), device)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	j := healthFrom(hb)
	return &j, nil
}

// deviceStates returns the state of each device of ds (sorted by id):
// revoked, online or offline from its presence, or never-connected.
func (h *Handler) deviceStates(r *http.Request, ds []registry.Device) ([]string, error) {
	online := map[string]bool{}
	if len(ds) > 0 {
		// Presence rows exist for the devices that connected; read those
		// in the devices' id range.
		after := ""
		if ds[0].ID > "" {
			after = ds[0].ID[:len(ds[0].ID)-1] // sorts before the first id
		}
		last := ds[len(ds)-1].ID
		for {
			ps, err := h.svc.Presence.Presences(r.Context(), after, maxLimit, false)
			if err != nil {
				return nil, mapError(err)
			}
			for _, p := range ps {
				online[p.Device] = p.Online
			}
			if len(ps) < maxLimit || ps[len(ps)-1].Device >= last {
				break
			}
			after = ps[len(ps)-1].Device
		}
	}
	out := make([]string, len(ds))
	for i, d := range ds {
		on, known := online[d.ID]
		switch {
		case d.RevokedAt != nil:
			out[i] = stateRevoked
		case on:
			out[i] = stateOnline
		case known || d.LastSeen != nil:
			out[i] = stateOffline
		default:
			out[i] = stateNever
		}
	}
	return out, nil
}
