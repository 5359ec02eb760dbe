package api

import (
	"bytes"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/fleet-server/store"
)

// commandJSON is a command with its state and result.
type commandJSON struct {
	ID     uuid.UUID         `json:"id"`
	Device string            `json:"device"`
	Fanout *uuid.UUID        `json:"fanout,omitempty"`
	Name   string            `json:"name"`
	Args   map[string]string `json:"args,omitempty"`
	// State is queued, sent, done or expired.
	State       string      `json:"state"`
	IssuedAt    time.Time   `json:"issued_at"`
	ExpiresAt   time.Time   `json:"expires_at"`
	SentCount   int         `json:"sent_count"`
	FirstSentAt *time.Time  `json:"first_sent_at,omitempty"`
	LastSentAt  *time.Time  `json:"last_sent_at,omitempty"`
	ExpiredAt   *time.Time  `json:"expired_at,omitempty"`
	Result      *resultJSON `json:"result,omitempty"`
}

// resultJSON is how a command ended. Output is given as text when it is
// UTF-8, else in base64.
type resultJSON struct {
	Outcome      string    `json:"outcome"` // ok, failed, expired, rejected
	Message      string    `json:"message,omitempty"`
	Output       string    `json:"output,omitempty"`
	OutputBase64 []byte    `json:"output_base64,omitempty"`
	At           time.Time `json:"at"`          // the device's clock
	ReceivedAt   time.Time `json:"received_at"` // the server's clock
}

func msTime(ms int64) *time.Time {
	if ms == 0 {
		return nil
	}
	t := time.UnixMilli(ms).UTC()
	return &t
}

func commandFrom(c store.Command) commandJSON {
	out := commandJSON{
		ID: c.ID, Device: c.Device, Name: c.Name, Args: c.Args, State: c.State(),
		IssuedAt: time.UnixMilli(c.IssuedAt).UTC(), ExpiresAt: time.UnixMilli(c.ExpiresAt).UTC(),
		SentCount: c.SentCount, FirstSentAt: msTime(c.FirstSentAt), LastSentAt: msTime(c.LastSentAt),
		ExpiredAt: msTime(c.ExpiredAt),
	}
	if c.Fanout != uuid.Nil {
		f := c.Fanout
		out.Fanout = &f
	}
	if r := c.Result; r != nil {
		res := &resultJSON{Outcome: r.Outcome.String(), Message: r.Message,
			At: time.UnixMilli(r.At).UTC(), ReceivedAt: time.UnixMilli(r.ReceivedAt).UTC()}
		if utf8.Valid(r.Output) {
			res.Output = string(r.Output)
		} else {
			res.OutputBase64 = r.Output
		}
		out.Result = res
	}
	return out
}

func commandsFrom(cs []store.Command) []commandJSON {
	out := make([]commandJSON, 0, len(cs))
	for _, c := range cs {
		out = append(out, commandFrom(c))
	}
	return out
}

// sentCommands answers POST /api/v1/commands: the commands queued, one per
// device; Fanout names a group send.
type sentCommands struct {
	Fanout   *uuid.UUID    `json:"fanout,omitempty"`
	Commands []commandJSON `json:"commands"`
}

func (h *Handler) sendCommand(w http.ResponseWriter, r *http.Request) error {
	b, err := readBody(r)
	if err != nil {
		return err
	}
	req, ttl, err := decodeSendCommand(b)
	if err != nil {
		return err
	}
	var out sentCommands
	if req.Device != "" {
		c, err := h.svc.Commands.Send(r.Context(), req.Device, req.Name, req.Args, ttl)
		if errors.Is(err, store.ErrNotFound) {
			return errorf(http.StatusNotFound, "no device %q", req.Device)
		}
		if err != nil {
			return mapError(err)
		}
		out.Commands = []commandJSON{commandFrom(c)}
		h.audit(r, "command.send", "command", c.ID, "device", c.Device, "name", c.Name, "args", argNames(req.Args))
	} else {
		fanout, cs, err := h.svc.Commands.SendGroup(r.Context(), req.Group, req.Name, req.Args, ttl)
		if errors.Is(err, store.ErrNotFound) {
			return errorf(http.StatusNotFound, "no group %q", req.Group)
		}
		if err != nil {
			return mapError(err)
		}
		out.Fanout, out.Commands = &fanout, commandsFrom(cs)
		h.audit(r, "command.send_group", "fanout", fanout, "group", req.Group, "name", req.Name,
			"args", argNames(req.Args), "devices", len(cs))
	}
	return writeJSON(w, http.StatusCreated, out)
}

// argNames lists the argument names of a command for the audit line; the
// values may be confirmations that do not belong in a log.
func argNames(args map[string]string) []string {
	out := make([]string, 0, len(args))
	for k := range args {
		out = append(out, k)
	}
	return out
}

func (h *Handler) showCommand(w http.ResponseWriter, r *http.Request) error {
	id, err := uuid.Parse(r.PathValue("command"))
	if err != nil {
		return badRequest("command: %s is not a command id (a UUID)", describe(r.PathValue("command")))
	}
	c, err := h.svc.Commands.Command(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return errorf(http.StatusNotFound, "no command %v", id)
	}
	if err != nil {
		return mapError(err)
	}
	return writeJSON(w, http.StatusOK, commandFrom(c))
}

func (h *Handler) showFanout(w http.ResponseWriter, r *http.Request) error {
	id, err := uuid.Parse(r.PathValue("fanout"))
	if err != nil {
		return badRequest("fanout: %s is not a fan-out id (a UUID)", describe(r.PathValue("fanout")))
	}
	cs, err := h.svc.Commands.Fanout(r.Context(), id)
	if err != nil {
		return mapError(err)
	}
	if len(cs) == 0 {
		return errorf(http.StatusNotFound, "no group send %v", id)
	}
	return writeJSON(w, http.StatusOK, sentCommands{Fanout: &id, Commands: commandsFrom(cs)})
}

type commandList struct {
	Commands []commandJSON `json:"commands"`
	// Next is the cursor of the next (older) page; empty on the last.
	Next string `json:"next,omitempty"`
}

// deviceCommands lists a device's commands, newest first. The cursor is
// "issued_at.id" of the last command shown, so that commands issued in the
// same millisecond are neither lost nor shown twice.
func (h *Handler) deviceCommands(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("device")
	q := newQuery(r, "before", "limit")
	before := q.str("before")
	limit := q.limit()
	if q.err != nil {
		return q.err
	}
	var curAt int64
	var curID uuid.UUID
	if before != "" {
		ms, idText, ok := strings.Cut(before, ".")
		var err1, err2 error
		curAt, err1 = strconv.ParseInt(ms, 10, 64)
		curID, err2 = uuid.Parse(idText)
		if !ok || err1 != nil || err2 != nil || curAt <= 0 {
			return badRequest("before: %s is not a cursor from an earlier page", describe(before))
		}
	}
	if _, err := h.svc.Registry.Device(r.Context(), id); err != nil {
		return mapError(err)
	}
	f := store.CommandFilter{Device: id, Limit: min(maxLimit, limit+1+64)}
	if before != "" {
		f.Before = curAt + 1
	}
	cs, err := h.svc.Commands.History(r.Context(), f)
	if err != nil {
		return mapError(err)
	}
	page := make([]store.Command, 0, limit+1)
	for _, c := range cs {
		if before != "" && c.IssuedAt == curAt && bytes.Compare(c.ID[:], curID[:]) >= 0 {
			continue // shown on an earlier page
		}
		page = append(page, c)
		if len(page) == limit+1 {
			break
		}
	}
	out := commandList{}
	if len(page) > limit {
		page = page[:limit]
		last := page[limit-1]
		out.Next = strconv.FormatInt(last.IssuedAt, 10) + "." + last.ID.String()
	}
	out.Commands = commandsFrom(page)
	return writeJSON(w, http.StatusOK, out)
}
