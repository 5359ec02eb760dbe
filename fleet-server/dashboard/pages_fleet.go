package dashboard

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/kogge-fleet/kogge/fleet-server/commands"
	"github.com/kogge-fleet/kogge/fleet-server/registry"
	"github.com/kogge-fleet/kogge/fleet-server/store"
	"github.com/kogge-fleet/kogge/fleet-server/twin"
	"github.com/kogge-fleet/kogge/protocol"
)

// fleetView is the fleet as the overview and the device list show it.
type fleetView struct {
	Groups   []registry.Group
	Devices  []deviceRow
	Firing   []store.Alert
	alerting map[string]bool
}

// deviceRow is one device with its state.
type deviceRow struct {
	registry.Device
	State    string // online, offline, never, revoked
	Reason   string
	Changed  int64
	Health   *store.Health
	Faults   []protocol.Peripheral
	Alerting bool
}

// Unsent is how old the device's oldest unsent capture is now (0: none).
func (d deviceRow) Unsent() time.Duration {
	if d.Health == nil || d.Health.Heartbeat.QueueDepth == 0 || d.Health.Heartbeat.OldestUnsentMillis == 0 {
		return 0
	}
	return time.Duration(d.Health.Heartbeat.OldestUnsentMillis)*time.Millisecond + time.Since(time.UnixMilli(d.Health.ReceivedAt))
}

func (h *Handler) loadFleet(ctx context.Context) (*fleetView, error) {
	f := &fleetView{alerting: map[string]bool{}}
	var err error
	if f.Groups, err = h.svc.Registry.Groups(ctx); err != nil {
		return nil, err
	}
	var devs []registry.Device
	for after := ""; ; {
		ds, err := h.svc.Registry.Devices(ctx, registry.DeviceFilter{After: after, Limit: 1000})
		if err != nil {
			return nil, err
		}
		devs = append(devs, ds...)
		if len(ds) < 1000 {
			break
		}
		after = ds[len(ds)-1].ID
	}
	pres := map[string]store.Presence{}
	for after := ""; ; {
		ps, err := h.svc.Fleet.Presences(ctx, after, 1000, false)
		if err != nil {
			return nil, err
		}
		for _, p := range ps {
			pres[p.Device] = p
		}
		if len(ps) < 1000 {
			break
		}
		after = ps[len(ps)-1].Device
	}
	health := map[string]store.Health{}
	for after := ""; ; {
		hs, err := h.svc.Fleet.LatestHealthPage(ctx, after, 1000)
		if err != nil {
			return nil, err
		}
		for _, x := range hs {
			health[x.Device] = x
		}
		if len(hs) < 1000 {
			break
		}
		after = hs[len(hs)-1].Device
	}
	if f.Firing, err = h.svc.Alerts.Alerts(ctx, store.AlertFilter{FiringOnly: true, Limit: 5000}); err != nil {
		return nil, err
	}
	for _, a := range f.Firing {
		f.alerting[a.Subject] = true
	}
	for _, d := range devs {
		row := deviceRow{Device: d, State: "never", Alerting: f.alerting[d.ID]}
		if p, ok := pres[d.ID]; ok {
			row.State, row.Reason, row.Changed = "offline", p.Reason, p.ChangedAt
			if p.Online {
				row.State = "online"
			}
		}
		if d.RevokedAt != nil {
			row.State = "revoked"
		}
		if hb, ok := health[d.ID]; ok {
			row.Health = &hb
			for _, p := range hb.Heartbeat.Peripherals {
				if p.State != protocol.PeripheralOK {
					row.Faults = append(row.Faults, p)
				}
			}
		}
		f.Devices = append(f.Devices, row)
	}
	return f, nil
}

type groupSummary struct {
	ID, Name                                         string
	Total, Online, Offline, Never, Revoked, Alerting int
}

type overviewData struct {
	Groups       []groupSummary
	Total        groupSummary
	Capture      float64
	CaptureKnown bool
	Accepted     float64
	Failures     float64
	RatesKnown   bool
	Delivery     bool
	DeadLetters  int64
	OldestQueued int64
	OldestUnsent time.Duration
	OldestDevice string
	Firing       []alertRow
	Saved        int64
}

func (h *Handler) overview(w http.ResponseWriter, r *http.Request, s *session) error {
	ctx := r.Context()
	f, err := h.loadFleet(ctx)
	if err != nil {
		return err
	}
	d := overviewData{Total: groupSummary{Name: h.tr(s.lang, "overview.all")}}
	byGroup := map[string]*groupSummary{}
	for _, g := range f.Groups {
		d.Groups = append(d.Groups, groupSummary{ID: g.ID, Name: g.Name})
	}
	for i := range d.Groups {
		byGroup[d.Groups[i].ID] = &d.Groups[i]
	}
	for _, dev := range f.Devices {
		for _, g := range []*groupSummary{byGroup[dev.Group], &d.Total} {
			if g == nil {
				continue
			}
			g.Total++
			switch dev.State {
			case "online":
				g.Online++
			case "offline":
				g.Offline++
			case "never":
				g.Never++
			case "revoked":
				g.Revoked++
			}
			if dev.Alerting {
				g.Alerting++
			}
		}
		if u := dev.Unsent(); u > d.OldestUnsent && dev.State != "revoked" {
			d.OldestUnsent, d.OldestDevice = u, dev.ID
		}
		if dev.Health != nil && dev.State != "revoked" {
			d.Saved += int64(dev.Health.Heartbeat.QueueDepth)
		}
	}
	d.Capture, d.CaptureKnown = h.opts.Rates.CaptureRate(15 * time.Minute)
	if offices, ok := h.opts.Rates.Offices(15 * time.Minute); ok {
		d.RatesKnown = true
		for _, o := range offices {
			d.Accepted += o.Accepted
			d.Failures += o.Failures
		}
	}
	if h.svc.Delivery != nil {
		d.Delivery = true
		stats, err := h.svc.Delivery.Stats(ctx)
		if err != nil {
			return err
		}
		for _, st := range stats {
			d.DeadLetters += st.Counts[store.DeliveryDead]
			if st.OldestQueued != 0 && (d.OldestQueued == 0 || st.OldestQueued < d.OldestQueued) {
				d.OldestQueued = st.OldestQueued
			}
		}
	}
	if d.Firing, err = h.alertRows(ctx, f.Firing, 10); err != nil {
		return err
	}
	return h.render(w, r, s, http.StatusOK, "overview", h.tr(s.lang, "nav.overview"), d)
}

type devicesData struct {
	Groups    []registry.Group
	Versions  []string
	Devices   []deviceRow
	Shown     int
	Total     int
	Truncated bool
	F         deviceFilter
}

type deviceFilter struct {
	Group, State, Software, Seen, Q string
	Fault                           bool
}

const maxDeviceRows = 500

func (h *Handler) devices(w http.ResponseWriter, r *http.Request, s *session) error {
	f, err := h.loadFleet(r.Context())
	if err != nil {
		return err
	}
	q := r.URL.Query()
	flt := deviceFilter{Group: q.Get("group"), State: q.Get("state"), Software: q.Get("software"), Seen: q.Get("seen"),
		Q: strings.TrimSpace(q.Get("q")), Fault: q.Get("fault") == "1"}
	d := devicesData{Groups: f.Groups, F: flt, Total: len(f.Devices)}
	versions := map[string]bool{}
	now := time.Now()
	for _, dev := range f.Devices {
		if dev.Inventory.Software != "" {
			versions[dev.Inventory.Software] = true
		}
		if !flt.match(dev, now) {
			continue
		}
		d.Shown++
		if len(d.Devices) < maxDeviceRows {
			d.Devices = append(d.Devices, dev)
		}
	}
	d.Truncated = d.Shown > len(d.Devices)
	d.Versions = sortedKeys(versions)
	return h.render(w, r, s, http.StatusOK, "devices", h.tr(s.lang, "nav.devices"), d)
}

func (f deviceFilter) match(d deviceRow, now time.Time) bool {
	if f.Group != "" && d.Group != f.Group {
		return false
	}
	switch f.State {
	case "":
	case "alerting":
		if !d.Alerting {
			return false
		}
	default:
		if d.State != f.State {
			return false
		}
	}
	if f.Software != "" && d.Inventory.Software != f.Software {
		return false
	}
	if f.Fault && len(d.Faults) == 0 {
		return false
	}
	if f.Seen != "" {
		not := strings.HasPrefix(f.Seen, "not-")
		dur, err := time.ParseDuration(strings.TrimPrefix(f.Seen, "not-"))
		if err == nil {
			seen := d.LastSeen != nil && now.Sub(*d.LastSeen) <= dur
			if seen == not {
				return false
			}
		}
	}
	if f.Q != "" {
		hay := strings.ToLower(strings.Join([]string{d.ID, d.Inventory.Location, d.Inventory.Serial, d.Inventory.Model}, " "))
		if !strings.Contains(hay, strings.ToLower(f.Q)) {
			return false
		}
	}
	return true
}

type deviceData struct {
	Row       deviceRow
	Device    registry.Device
	Presence  *store.Presence
	Health    *store.Health
	Range     string
	Ranges    []string
	Charts    []chart
	Twin      *twin.View
	Commands  []store.Command
	Sync      *store.DeviceSync
	Alerts    []alertRow
	CertState string
	Form      commandForm
	Error     string
}

type commandForm struct {
	Name, Args, TTL string
}

var chartRanges = map[string]time.Duration{"1h": time.Hour, "24h": 24 * time.Hour, "7d": 7 * 24 * time.Hour}

func (h *Handler) device(w http.ResponseWriter, r *http.Request, s *session) error {
	return h.renderDevice(w, r, s, http.StatusOK, commandForm{TTL: "24h"}, "")
}

func (h *Handler) renderDevice(w http.ResponseWriter, r *http.Request, s *session, status int, form commandForm, formErr string) error {
	ctx := r.Context()
	id := r.PathValue("device")
	dev, err := h.svc.Registry.Device(ctx, id)
	if errors.Is(err, registry.ErrNotFound) {
		return &userError{http.StatusNotFound, h.tr(s.lang, "device.unknown", id)}
	}
	if err != nil {
		return err
	}
	d := deviceData{Device: dev, Row: deviceRow{Device: dev, State: "never"}, Range: r.URL.Query().Get("range"),
		Ranges: []string{"1h", "24h", "7d"}, Form: form, Error: formErr}
	if _, ok := chartRanges[d.Range]; !ok {
		d.Range = "24h"
	}
	if p, err := h.svc.Fleet.Presence(ctx, id); err == nil {
		d.Presence = &p
		d.Row.State, d.Row.Reason, d.Row.Changed = "offline", p.Reason, p.ChangedAt
		if p.Online {
			d.Row.State = "online"
		}
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if dev.RevokedAt != nil {
		d.Row.State = "revoked"
	}
	if hb, err := h.svc.Fleet.LatestHealth(ctx, id); err == nil {
		d.Health = &hb
		d.Row.Health = &hb
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	now := h.opts.Clock()
	hist, err := h.svc.Fleet.HealthHistory(ctx, store.HealthFilter{Device: id, Since: now.Add(-chartRanges[d.Range]).UnixMilli(), Limit: 2000})
	if err != nil {
		return err
	}
	d.Charts = healthCharts(hist, now.Add(-chartRanges[d.Range]), now, func(k string, a ...any) string { return h.tr(s.lang, k, a...) })
	if v, err := h.svc.Twin.Device(ctx, id); err == nil {
		d.Twin = &v
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if d.Commands, err = h.svc.Commands.History(ctx, store.CommandFilter{Device: id, Limit: 20}); err != nil {
		return err
	}
	if st, err := h.svc.Fleet.DeviceSync(ctx, id); err == nil {
		d.Sync = &st
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	firing, err := h.svc.Alerts.Alerts(ctx, store.AlertFilter{FiringOnly: true, Limit: 5000})
	if err != nil {
		return err
	}
	var mine []store.Alert
	for _, a := range firing {
		if a.Subject == id {
			mine = append(mine, a)
		}
	}
	if d.Alerts, err = h.alertRows(ctx, mine, 50); err != nil {
		return err
	}
	d.CertState = certState(dev, now)
	return h.render(w, r, s, status, "device", h.tr(s.lang, "device.title", id), d)
}

// certState sums up a device's certificates: valid, expiring (within 14
// days), expired, revoked or none.
func certState(d registry.Device, now time.Time) string {
	if d.RevokedAt != nil {
		return "revoked"
	}
	best := time.Time{}
	for _, c := range d.Certificates {
		if c.RevokedAt == nil && c.NotAfter.After(best) {
			best = c.NotAfter
		}
	}
	switch {
	case best.IsZero():
		return "none"
	case best.Before(now):
		return "expired"
	case best.Before(now.Add(14 * 24 * time.Hour)):
		return "expiring"
	}
	return "valid"
}

// parseArgs reads KEY=VALUE lines.
func parseArgs(text string) (map[string]string, error) {
	args := map[string]string{}
	for line := range strings.SplitSeq(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, fmt.Errorf("%q is not KEY=VALUE", line)
		}
		args[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return args, nil
}

var commandTTLs = map[string]time.Duration{"15m": 15 * time.Minute, "1h": time.Hour, "24h": 24 * time.Hour, "7d": 7 * 24 * time.Hour}

func (h *Handler) sendCommand(w http.ResponseWriter, r *http.Request, s *session) error {
	ctx := r.Context()
	id := r.PathValue("device")
	form := commandForm{Name: strings.TrimSpace(r.PostFormValue("name")), Args: r.PostFormValue("args"), TTL: r.PostFormValue("ttl")}
	ttl, ok := commandTTLs[form.TTL]
	if !ok {
		ttl, form.TTL = 24*time.Hour, "24h"
	}
	args, err := parseArgs(form.Args)
	if err != nil {
		return h.renderDevice(w, r, s, http.StatusBadRequest, form, h.tr(s.lang, "command.bad_args", err.Error()))
	}
	c, err := h.svc.Commands.Send(ctx, id, form.Name, args, ttl)
	switch {
	case errors.Is(err, commands.ErrInvalid):
		return h.renderDevice(w, r, s, http.StatusBadRequest, form, err.Error())
	case errors.Is(err, store.ErrNotFound):
		return &userError{http.StatusNotFound, h.tr(s.lang, "device.unknown", id)}
	case errors.Is(err, store.ErrDeviceRevoked):
		return h.renderDevice(w, r, s, http.StatusConflict, form, h.tr(s.lang, "command.revoked"))
	case err != nil:
		return err
	}
	keys := sortedKeys(args)
	if err := h.audit(ctx, s, "command.send", "device:"+id, map[string]any{"command": c.ID.String(), "name": c.Name,
		"args": keys, "ttl": ttl.String()}); err != nil {
		return err
	}
	h.watch.track(c)
	http.Redirect(w, r, "/devices/"+url.PathEscape(id)+"?done=done.command#commands", http.StatusSeeOther)
	return nil
}

func (h *Handler) revokeDevice(w http.ResponseWriter, r *http.Request, s *session) error {
	ctx := r.Context()
	id := r.PathValue("device")
	reason := strings.TrimSpace(r.PostFormValue("reason"))
	if r.PostFormValue("confirm") != "yes" || reason == "" {
		return h.renderDevice(w, r, s, http.StatusBadRequest, commandForm{TTL: "24h"}, h.tr(s.lang, "revoke.confirm_needed"))
	}
	err := h.svc.Registry.RevokeDevice(ctx, id, reason)
	switch {
	case errors.Is(err, registry.ErrNotFound):
		return &userError{http.StatusNotFound, h.tr(s.lang, "device.unknown", id)}
	case errors.Is(err, registry.ErrInvalid):
		return h.renderDevice(w, r, s, http.StatusBadRequest, commandForm{TTL: "24h"}, err.Error())
	case err != nil:
		return err
	}
	if err := h.audit(ctx, s, "device.revoke", "device:"+id, map[string]any{"reason": reason}); err != nil {
		return err
	}
	http.Redirect(w, r, "/devices/"+url.PathEscape(id)+"?done=done.revoked", http.StatusSeeOther)
	return nil
}

// alertRow is an alert with its rule's name and kind.
type alertRow struct {
	store.Alert
	RuleName string
	Kind     string
}

func (h *Handler) alertRows(ctx context.Context, as []store.Alert, limit int) ([]alertRow, error) {
	rules, err := h.svc.Rules.Rules(ctx)
	if err != nil {
		return nil, err
	}
	names := map[string][2]string{}
	for _, r := range rules {
		names[r.ID] = [2]string{r.Name, string(r.Kind)}
	}
	out := make([]alertRow, 0, min(len(as), limit))
	for _, a := range as {
		if len(out) == limit {
			break
		}
		out = append(out, alertRow{Alert: a, RuleName: names[a.Rule][0], Kind: names[a.Rule][1]})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].FiredAt > out[j].FiredAt })
	return out, nil
}

// sortedStrings returns s sorted, without duplicates.
func sortedStrings(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return slices.Compact(out)
}
