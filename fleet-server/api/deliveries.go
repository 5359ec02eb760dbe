package api

import (
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/fleet-server/delivery"
	"github.com/kogge-fleet/kogge/fleet-server/store"
)

// deliveryJSON is a record's place in its office's delivery queue. It
// never carries the sealed body.
type deliveryJSON struct {
	Record uuid.UUID `json:"record"`
	Device string    `json:"device"`
	Office string    `json:"office"`
	Kind   string    `json:"kind"`
	// State is queued, leased, delivered, accepted, dead, discarded or
	// erased.
	State       string     `json:"state"`
	Attempt     int        `json:"attempt"`
	LeasedUntil *time.Time `json:"leased_until,omitempty"`
	AvailableAt time.Time  `json:"available_at"`
	LastError   string     `json:"last_error,omitempty"`
	Reference   string     `json:"reference,omitempty"`
	Note        string     `json:"note,omitempty"`
	EnqueuedAt  time.Time  `json:"enqueued_at"`
	UpdatedAt   time.Time  `json:"updated_at"`
	AcceptedAt  *time.Time `json:"accepted_at,omitempty"`
	DeadAt      *time.Time `json:"dead_at,omitempty"`
	// Status is what the device was last told (a protocol delivery
	// state), with its note and time; StatusSentAt is when it was
	// published to the device, absent while the device has not got it.
	Status       string     `json:"status,omitempty"`
	StatusNote   string     `json:"status_note,omitempty"`
	StatusAt     *time.Time `json:"status_at,omitempty"`
	StatusSentAt *time.Time `json:"status_sent_at,omitempty"`
}

// utcMS is a time in Unix milliseconds as UTC; msTime (commands.go) is
// its optional form.
func utcMS(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

func deliveryFrom(d store.Delivery) deliveryJSON {
	out := deliveryJSON{
		Record: d.Record, Device: d.Device, Office: d.Office, Kind: d.Kind, State: d.State, Attempt: d.Attempt,
		AvailableAt: utcMS(d.AvailableAt), LastError: d.LastError, Reference: d.Reference, Note: d.Note,
		EnqueuedAt: utcMS(d.EnqueuedAt), UpdatedAt: utcMS(d.UpdatedAt), AcceptedAt: msTime(d.AcceptedAt),
		DeadAt: msTime(d.DeadAt), StatusNote: d.StatusNote, StatusAt: msTime(d.StatusAt), StatusSentAt: msTime(d.StatusSentAt),
	}
	if d.State == store.DeliveryLeased || d.State == store.DeliveryDelivered {
		out.LeasedUntil = msTime(d.LeasedUntil)
	}
	if d.Status != 0 {
		out.Status = d.Status.String()
	}
	return out
}

type deliveryList struct {
	Deliveries []deliveryJSON `json:"deliveries"`
	// Next is the cursor of the next page (the after parameter); empty on
	// the last page.
	Next string `json:"next,omitempty"`
}

// listDeliveries serves GET /deliveries and, with state dead, GET
// /dead-letters.
func (h *Handler) listDeliveries(w http.ResponseWriter, r *http.Request) error {
	return h.deliveryPage(w, r, "")
}

func (h *Handler) listDeadLetters(w http.ResponseWriter, r *http.Request) error {
	return h.deliveryPage(w, r, store.DeliveryDead)
}

func (h *Handler) deliveryPage(w http.ResponseWriter, r *http.Request, state string) error {
	known := []string{"office", "after", "limit"}
	if state == "" {
		known = append(known, "state")
	}
	q := newQuery(r, known...)
	f := store.DeliveryFilter{Office: q.str("office"), State: state, After: q.int64("after")}
	if state == "" {
		f.State = q.str("state")
	}
	limit := q.limit()
	if q.err != nil {
		return q.err
	}
	if f.State != "" && !slices.Contains(store.DeliveryStates, f.State) {
		return badRequest("state: %s; want one of %s", describe(f.State), strings.Join(store.DeliveryStates, ", "))
	}
	f.Limit = limit + 1
	ds, err := h.svc.Deliveries.Deliveries(r.Context(), f)
	if err != nil {
		return mapError(err)
	}
	out := deliveryList{Deliveries: []deliveryJSON{}}
	for i, d := range ds {
		if i == limit {
			out.Next = strconv.FormatInt(ds[i-1].N, 10)
			break
		}
		out.Deliveries = append(out.Deliveries, deliveryFrom(d))
	}
	return writeJSON(w, http.StatusOK, out)
}

// officeStatsJSON is the state of one office's queue.
type officeStatsJSON struct {
	Office    string `json:"office"`
	Queued    int64  `json:"queued"`
	Leased    int64  `json:"leased"`
	Delivered int64  `json:"delivered"`
	Dead      int64  `json:"dead"`
	// OldestQueuedAt is when the oldest delivery that is neither accepted
	// nor dead was queued; LagSeconds is its age.
	OldestQueuedAt *time.Time `json:"oldest_queued_at,omitempty"`
	LagSeconds     float64    `json:"lag_seconds"`
}

type deliveryStatsJSON struct {
	Offices []officeStatsJSON `json:"offices"`
}

func (h *Handler) deliveryStats(w http.ResponseWriter, r *http.Request) error {
	q := newQuery(r)
	if q.err != nil {
		return q.err
	}
	stats, err := h.svc.Deliveries.Stats(r.Context())
	if err != nil {
		return mapError(err)
	}
	now := h.now()
	out := deliveryStatsJSON{Offices: []officeStatsJSON{}}
	for _, s := range stats {
		o := officeStatsJSON{Office: s.Office, Queued: s.Counts[store.DeliveryQueued], Leased: s.Counts[store.DeliveryLeased],
			Delivered: s.Counts[store.DeliveryDelivered], Dead: s.Counts[store.DeliveryDead], OldestQueuedAt: msTime(s.OldestQueued)}
		if s.OldestQueued != 0 {
			o.LagSeconds = max(0, now.Sub(utcMS(s.OldestQueued)).Seconds())
		}
		out.Offices = append(out.Offices, o)
	}
	return writeJSON(w, http.StatusOK, out)
}

// deliveryDetail is a delivery with its record's metadata: what an admin
// may inspect, never the sealed body.
type deliveryDetail struct {
	Delivery deliveryJSON `json:"delivery"`
	Record   recordJSON   `json:"record"`
}

func pathRecord(r *http.Request) (uuid.UUID, error) {
	id, err := uuid.Parse(r.PathValue("record"))
	if err != nil {
		return uuid.Nil, badRequest("record: %s is not a UUID", describe(r.PathValue("record")))
	}
	return id, nil
}

func (h *Handler) inspect(r *http.Request) (delivery.Info, error) {
	id, err := pathRecord(r)
	if err != nil {
		return delivery.Info{}, err
	}
	info, err := h.svc.Deliveries.Inspect(r.Context(), id)
	if errors.Is(err, delivery.ErrNotFound) {
		return delivery.Info{}, errorf(http.StatusNotFound, "record %v is in no delivery queue", id)
	}
	if err != nil {
		return delivery.Info{}, mapError(err)
	}
	return info, nil
}

func (h *Handler) showDelivery(w http.ResponseWriter, r *http.Request) error {
	info, err := h.inspect(r)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, deliveryDetail{Delivery: deliveryFrom(info.Delivery), Record: recordFrom(info.Record)})
}

func (h *Handler) showDeadLetter(w http.ResponseWriter, r *http.Request) error {
	info, err := h.inspect(r)
	if err != nil {
		return err
	}
	if info.Delivery.State != store.DeliveryDead {
		return errorf(http.StatusNotFound, "record %v is not a dead letter (it is %s); see %s/deliveries/%v",
			info.Delivery.Record, info.Delivery.State, Prefix, info.Delivery.Record)
	}
	return writeJSON(w, http.StatusOK, deliveryDetail{Delivery: deliveryFrom(info.Delivery), Record: recordFrom(info.Record)})
}

// The replay and discard actions are audited by the queue in their own
// transaction, with this request's actor.

func (h *Handler) replayDeadLetter(w http.ResponseWriter, r *http.Request) error {
	id, err := pathRecord(r)
	if err != nil {
		return err
	}
	d, err := h.svc.Deliveries.Replay(r.Context(), id, h.actor)
	if err != nil {
		return mapError(err)
	}
	return writeJSON(w, http.StatusOK, deliveryFrom(d))
}

// discardRequest is the optional body of POST
// /dead-letters/{record}/discard.
type discardRequest struct {
	Reason string `json:"reason"`
}

func decodeDiscard(b []byte) (discardRequest, error) {
	var v discardRequest
	if len(strings.TrimSpace(string(b))) == 0 {
		return v, nil
	}
	if err := decodeStrict(b, &v); err != nil {
		return v, err
	}
	return v, checkText("reason", v.Reason, maxReasonLen)
}

func (h *Handler) discardDeadLetter(w http.ResponseWriter, r *http.Request) error {
	id, err := pathRecord(r)
	if err != nil {
		return err
	}
	b, err := readBody(r)
	if err != nil {
		return err
	}
	req, err := decodeDiscard(b)
	if err != nil {
		return err
	}
	d, err := h.svc.Deliveries.Discard(r.Context(), id, req.Reason, h.actor)
	if err != nil {
		return mapError(err)
	}
	return writeJSON(w, http.StatusOK, deliveryFrom(d))
}
