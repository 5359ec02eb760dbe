package dashboard

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/fleet-server/alerts"
	"github.com/kogge-fleet/kogge/fleet-server/audit"
	"github.com/kogge-fleet/kogge/fleet-server/delivery"
	"github.com/kogge-fleet/kogge/fleet-server/registry"
	"github.com/kogge-fleet/kogge/fleet-server/store"
)

type officeRow struct {
	Office                           string
	Queued, Leased, Delivered, Dead  int64
	OldestQueued                     int64
	Accepted, Attempts, FailuresRate float64
}

type recordsData struct {
	Counts   []store.RecordCount
	Total    int64
	Recent   int64
	Saved    int64
	Devices  int
	Delivery bool
	Offices  []officeRow
}

func (h *Handler) records(w http.ResponseWriter, r *http.Request, s *session) error {
	ctx := r.Context()
	var d recordsData
	var err error
	if d.Counts, err = h.svc.Fleet.RecordCounts(ctx, h.opts.Clock().Add(-24*time.Hour).UnixMilli()); err != nil {
		return err
	}
	for _, c := range d.Counts {
		d.Total += c.Count
		d.Recent += c.Recent
	}
	for after := ""; ; {
		hs, err := h.svc.Fleet.LatestHealthPage(ctx, after, 1000)
		if err != nil {
			return err
		}
		for _, x := range hs {
			d.Saved += int64(x.Heartbeat.QueueDepth)
			if x.Heartbeat.QueueDepth > 0 {
				d.Devices++
			}
		}
		if len(hs) < 1000 {
			break
		}
		after = hs[len(hs)-1].Device
	}
	if d.Offices, err = h.officeRows(r); err != nil {
		return err
	}
	d.Delivery = h.svc.Delivery != nil
	return h.render(w, r, s, http.StatusOK, "records", h.tr(s.lang, "nav.records"), d)
}

func (h *Handler) officeRows(r *http.Request) ([]officeRow, error) {
	if h.svc.Delivery == nil {
		return nil, nil
	}
	stats, err := h.svc.Delivery.Stats(r.Context())
	if err != nil {
		return nil, err
	}
	rates, _ := h.opts.Rates.Offices(15 * time.Minute)
	var out []officeRow
	seen := map[string]bool{}
	for _, st := range stats {
		seen[st.Office] = true
		rt := rates[st.Office]
		out = append(out, officeRow{Office: st.Office, Queued: st.Counts[store.DeliveryQueued], Leased: st.Counts[store.DeliveryLeased],
			Delivered: st.Counts[store.DeliveryDelivered], Dead: st.Counts[store.DeliveryDead], OldestQueued: st.OldestQueued,
			Accepted: rt.Accepted, Attempts: rt.Leased, FailuresRate: rt.Failures})
	}
	for _, o := range sortedKeys(rates) {
		if !seen[o] {
			rt := rates[o]
			out = append(out, officeRow{Office: o, Accepted: rt.Accepted, Attempts: rt.Leased, FailuresRate: rt.Failures})
		}
	}
	return out, nil
}

type deliveryData struct {
	Enabled    bool
	RatesKnown bool
	Offices    []officeRow
	Dead       []store.Delivery
	Next       int64
	Office     string
	Error      string
}

func (h *Handler) delivery(w http.ResponseWriter, r *http.Request, s *session) error {
	return h.renderDelivery(w, r, s, http.StatusOK, "")
}

func (h *Handler) renderDelivery(w http.ResponseWriter, r *http.Request, s *session, status int, msg string) error {
	d := deliveryData{Enabled: h.svc.Delivery != nil, Error: msg, Office: r.URL.Query().Get("office")}
	if d.Enabled {
		var err error
		if d.Offices, err = h.officeRows(r); err != nil {
			return err
		}
		_, d.RatesKnown = h.opts.Rates.Offices(15 * time.Minute)
		after, _ := strconv.ParseInt(r.URL.Query().Get("after"), 10, 64)
		const pageSize = 50
		if d.Dead, err = h.svc.Delivery.Deliveries(r.Context(), store.DeliveryFilter{State: store.DeliveryDead, Office: d.Office,
			After: after, Limit: pageSize + 1}); err != nil {
			return err
		}
		if len(d.Dead) > pageSize {
			d.Dead = d.Dead[:pageSize]
			d.Next = d.Dead[pageSize-1].N
		}
	}
	return h.render(w, r, s, status, "delivery", h.tr(s.lang, "nav.delivery"), d)
}

func (h *Handler) deadLetterAction(w http.ResponseWriter, r *http.Request, s *session, discard bool) error {
	if h.svc.Delivery == nil {
		return &userError{http.StatusNotFound, h.tr(s.lang, "delivery.off")}
	}
	id, err := uuid.Parse(r.PathValue("record"))
	if err != nil {
		return &userError{http.StatusNotFound, h.tr(s.lang, "error.notfound")}
	}
	done := "done.replayed"
	if discard {
		reason := strings.TrimSpace(r.PostFormValue("reason"))
		if reason == "" {
			return h.renderDelivery(w, r, s, http.StatusBadRequest, h.tr(s.lang, "delivery.reason_needed"))
		}
		_, err = h.svc.Delivery.Discard(r.Context(), id, reason, actor(s))
		done = "done.discarded"
	} else {
		_, err = h.svc.Delivery.Replay(r.Context(), id, actor(s))
	}
	switch {
	case errors.Is(err, delivery.ErrNotFound):
		return &userError{http.StatusNotFound, h.tr(s.lang, "error.notfound")}
	case errors.Is(err, delivery.ErrNotDeadLetter):
		return h.renderDelivery(w, r, s, http.StatusConflict, h.tr(s.lang, "delivery.not_dead"))
	case errors.Is(err, delivery.ErrInvalid):
		return h.renderDelivery(w, r, s, http.StatusBadRequest, err.Error())
	case err != nil:
		return err
	}
	// The delivery queue writes the audit entry with the change.
	http.Redirect(w, r, "/delivery?done="+done+"#dead", http.StatusSeeOther)
	return nil
}

func (h *Handler) replay(w http.ResponseWriter, r *http.Request, s *session) error {
	return h.deadLetterAction(w, r, s, false)
}

func (h *Handler) discard(w http.ResponseWriter, r *http.Request, s *session) error {
	return h.deadLetterAction(w, r, s, true)
}

type alertsData struct {
	Firing   []alertRow
	Resolved []alertRow
	Rules    []alerts.Rule
}

func (h *Handler) alertsPage(w http.ResponseWriter, r *http.Request, s *session) error {
	ctx := r.Context()
	all, err := h.svc.Alerts.Alerts(ctx, store.AlertFilter{ResolvedSince: h.opts.Clock().Add(-7 * 24 * time.Hour).UnixMilli(), Limit: 500})
	if err != nil {
		return err
	}
	var firing, resolved []store.Alert
	for _, a := range all {
		if a.Firing() {
			firing = append(firing, a)
		} else {
			resolved = append(resolved, a)
		}
	}
	var d alertsData
	if d.Firing, err = h.alertRows(ctx, firing, 500); err != nil {
		return err
	}
	if d.Resolved, err = h.alertRows(ctx, resolved, 100); err != nil {
		return err
	}
	if d.Rules, err = h.svc.Rules.Rules(ctx); err != nil {
		return err
	}
	return h.render(w, r, s, http.StatusOK, "alerts", h.tr(s.lang, "nav.alerts"), d)
}

type alertData struct {
	Alert         alertRow
	Notifications []store.AlertNotification
}

func (h *Handler) alertPage(w http.ResponseWriter, r *http.Request, s *session) error {
	ctx := r.Context()
	a, err := h.svc.Alerts.Alert(ctx, r.PathValue("alert"))
	if errors.Is(err, store.ErrNotFound) {
		return &userError{http.StatusNotFound, h.tr(s.lang, "error.notfound")}
	}
	if err != nil {
		return err
	}
	rows, err := h.alertRows(ctx, []store.Alert{a}, 1)
	if err != nil {
		return err
	}
	d := alertData{Alert: rows[0]}
	if d.Notifications, err = h.svc.Alerts.AlertNotifications(ctx, a.ID); err != nil {
		return err
	}
	return h.render(w, r, s, http.StatusOK, "alert", h.tr(s.lang, "alert.title"), d)
}

// ruleForm is the rule editor's fields as text, so that a refused form
// comes back as it was typed.
type ruleForm struct {
	ID, Name, Kind, Group                                  string
	Enabled, IncludeDegraded                               bool
	OfflineFor, HoursFrom, HoursTo, TimeZone, OldestUnsent string
	Days                                                   []int
	FailureRate, MinAttempts, FailureWindow, CertWithin    string
	DiskFreeMiB, BudgetUsed, Webhooks, Emails              string
}

type ruleData struct {
	Form   ruleForm
	Kinds  []alerts.Kind
	Groups []registry.Group
	Error  string
	New    bool
}

func formFromRule(r alerts.Rule) ruleForm {
	f := ruleForm{ID: r.ID, Name: r.Name, Kind: string(r.Kind), Group: r.Group, Enabled: r.Enabled,
		IncludeDegraded: r.Params.IncludeDegraded, Webhooks: strings.Join(r.Notify.Webhooks, "\n"),
		Emails: strings.Join(r.Notify.Emails, "\n")}
	dur := func(d alerts.Duration) string {
		if d == 0 {
			return ""
		}
		return time.Duration(d).String()
	}
	p := r.Params
	f.OfflineFor, f.OldestUnsent, f.FailureWindow, f.CertWithin = dur(p.OfflineFor), dur(p.OldestUnsent), dur(p.FailureWindow), dur(p.CertWithin)
	if p.Hours != nil {
		f.Days, f.HoursFrom, f.HoursTo, f.TimeZone = p.Hours.Days, p.Hours.From, p.Hours.To, p.Hours.TimeZone
	}
	if p.FailureRate > 0 {
		f.FailureRate = strconv.FormatFloat(p.FailureRate*100, 'f', -1, 64)
	}
	if p.MinAttempts > 0 {
		f.MinAttempts = strconv.FormatInt(p.MinAttempts, 10)
	}
	if p.DiskFreeBelow > 0 {
		f.DiskFreeMiB = strconv.FormatInt(p.DiskFreeBelow>>20, 10)
	}
	if p.BudgetUsedAbove > 0 {
		f.BudgetUsed = strconv.Itoa(p.BudgetUsedAbove)
	}
	return f
}

// HasDayS reports whether the form has the day d ("0" to "6").
func (f ruleForm) HasDayS(d string) bool {
	n, err := strconv.Atoi(d)
	return err == nil && slices.Contains(f.Days, n)
}

func lines(s string) []string {
	var out []string
	for l := range strings.SplitSeq(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// rule turns the form into a rule; the rule's Validate says what is wrong.
func (f ruleForm) rule() (alerts.Rule, error) {
	r := alerts.Rule{ID: f.ID, Name: strings.TrimSpace(f.Name), Kind: alerts.Kind(f.Kind), Group: f.Group, Enabled: f.Enabled,
		Notify: alerts.Notify{Webhooks: lines(f.Webhooks), Emails: lines(f.Emails)}}
	var errs []string
	dur := func(field, s string) alerts.Duration {
		if strings.TrimSpace(s) == "" {
			return 0
		}
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %q is not a duration such as 15m, 2h or 336h", field, s))
		}
		return alerts.Duration(d)
	}
	num := func(field, s string) float64 {
		if strings.TrimSpace(s) == "" {
			return 0
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil || v < 0 {
			errs = append(errs, fmt.Sprintf("%s: %q is not a number", field, s))
		}
		return v
	}
	p := &r.Params
	switch r.Kind {
	case alerts.Offline:
		p.OfflineFor = dur("offline_for", f.OfflineFor)
		if len(f.Days) > 0 || f.HoursFrom != "" || f.HoursTo != "" {
			p.Hours = &alerts.OpeningHours{Days: f.Days, From: f.HoursFrom, To: f.HoursTo, TimeZone: f.TimeZone}
		}
	case alerts.OldestUnsent:
		p.OldestUnsent = dur("oldest_unsent", f.OldestUnsent)
	case alerts.PeripheralFault:
		p.IncludeDegraded = f.IncludeDegraded
	case alerts.DeliveryFailures:
		p.FailureRate = num("failure_rate", f.FailureRate) / 100
		p.MinAttempts = int64(num("min_attempts", f.MinAttempts))
		p.FailureWindow = dur("failure_window", f.FailureWindow)
	case alerts.CertExpiring:
		p.CertWithin = dur("cert_within", f.CertWithin)
	case alerts.DiskLow:
		p.DiskFreeBelow = int64(num("disk_free_below", f.DiskFreeMiB) * (1 << 20))
		p.BudgetUsedAbove = int(num("budget_used_above", f.BudgetUsed))
	}
	if len(errs) > 0 {
		return r, fmt.Errorf("%w: %s", alerts.ErrInvalid, strings.Join(errs, "; "))
	}
	return r, r.Validate()
}

func (h *Handler) ruleForm(w http.ResponseWriter, r *http.Request, s *session) error {
	d := ruleData{Form: ruleForm{Enabled: true, Kind: string(alerts.Offline), OfflineFor: "15m", Days: []int{1, 2, 3, 4, 5},
		HoursFrom: "07:30", HoursTo: "18:00", TimeZone: "Europe/Berlin"}, New: true}
	if id := r.PathValue("rule"); id != "" {
		rule, err := h.svc.Rules.Rule(r.Context(), id)
		if errors.Is(err, store.ErrNotFound) {
			return &userError{http.StatusNotFound, h.tr(s.lang, "error.notfound")}
		}
		if err != nil {
			return err
		}
		d.Form, d.New = formFromRule(rule), false
	}
	return h.renderRule(w, r, s, http.StatusOK, d)
}

func (h *Handler) renderRule(w http.ResponseWriter, r *http.Request, s *session, status int, d ruleData) error {
	d.Kinds = alerts.Kinds()
	var err error
	if d.Groups, err = h.svc.Registry.Groups(r.Context()); err != nil {
		return err
	}
	title := h.tr(s.lang, "rule.edit")
	if d.New {
		title = h.tr(s.lang, "rule.new")
	}
	return h.render(w, r, s, status, "rule", title, d)
}

func (h *Handler) saveRule(w http.ResponseWriter, r *http.Request, s *session) error {
	ctx := r.Context()
	f := ruleForm{ID: r.PathValue("rule"), Name: r.PostFormValue("name"), Kind: r.PostFormValue("kind"),
		Group: r.PostFormValue("group"), Enabled: r.PostFormValue("enabled") == "1",
		IncludeDegraded: r.PostFormValue("include_degraded") == "1", OfflineFor: r.PostFormValue("offline_for"),
		HoursFrom: r.PostFormValue("hours_from"), HoursTo: r.PostFormValue("hours_to"), TimeZone: r.PostFormValue("time_zone"),
		OldestUnsent: r.PostFormValue("oldest_unsent"), FailureRate: r.PostFormValue("failure_rate"),
		MinAttempts: r.PostFormValue("min_attempts"), FailureWindow: r.PostFormValue("failure_window"),
		CertWithin: r.PostFormValue("cert_within"), DiskFreeMiB: r.PostFormValue("disk_free_mib"),
		BudgetUsed: r.PostFormValue("budget_used"), Webhooks: r.PostFormValue("webhooks"), Emails: r.PostFormValue("emails")}
	for _, v := range r.PostForm["days"] {
		if d, err := strconv.Atoi(v); err == nil && d >= 0 && d <= 6 {
			f.Days = append(f.Days, d)
		}
	}
	if f.ID != "" {
		if _, err := h.svc.Rules.Rule(ctx, f.ID); errors.Is(err, store.ErrNotFound) {
			return &userError{http.StatusNotFound, h.tr(s.lang, "error.notfound")}
		} else if err != nil {
			return err
		}
	}
	rule, err := f.rule()
	if err == nil {
		rule, err = h.svc.Rules.PutRule(ctx, rule)
	}
	if errors.Is(err, alerts.ErrInvalid) {
		return h.renderRule(w, r, s, http.StatusBadRequest, ruleData{Form: f, Error: err.Error(), New: f.ID == ""})
	}
	if err != nil {
		return err
	}
	if err := h.audit(ctx, s, "alert_rule.save", "alert_rule:"+rule.ID, map[string]any{"name": rule.Name,
		"kind": string(rule.Kind), "group": rule.Group, "enabled": rule.Enabled,
		"webhooks": len(rule.Notify.Webhooks), "emails": len(rule.Notify.Emails)}); err != nil {
		return err
	}
	http.Redirect(w, r, "/alerts?done=done.rule_saved#rules", http.StatusSeeOther)
	return nil
}

func (h *Handler) deleteRule(w http.ResponseWriter, r *http.Request, s *session) error {
	ctx := r.Context()
	id := r.PathValue("rule")
	err := h.svc.Rules.DeleteRule(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return &userError{http.StatusNotFound, h.tr(s.lang, "error.notfound")}
	}
	if err != nil {
		return err
	}
	if err := h.audit(ctx, s, "alert_rule.delete", "alert_rule:"+id, nil); err != nil {
		return err
	}
	http.Redirect(w, r, "/alerts?done=done.rule_deleted#rules", http.StatusSeeOther)
	return nil
}

type auditData struct {
	Entries []audit.Entry
	Action  string
	Target  string
	Since   string
	Older   int64
	Error   string
}

func (h *Handler) auditPage(w http.ResponseWriter, r *http.Request, s *session) error {
	q := r.URL.Query()
	d := auditData{Action: strings.TrimSpace(q.Get("action")), Target: strings.TrimSpace(q.Get("target")), Since: q.Get("since")}
	f := audit.Filter{Action: d.Action, Target: d.Target, Newest: true, Limit: 100}
	if d.Since != "" {
		t, err := time.ParseInLocation("2006-01-02", d.Since, time.Local)
		if err != nil {
			d.Error = h.tr(s.lang, "audit.bad_date")
		} else {
			f.Since = t.UnixMilli()
		}
	}
	f.Before, _ = strconv.ParseInt(q.Get("before"), 10, 64)
	var err error
	if d.Entries, err = h.svc.Audit.List(r.Context(), f); err != nil {
		return err
	}
	if len(d.Entries) == f.Limit {
		d.Older = d.Entries[len(d.Entries)-1].Seq
	}
	return h.render(w, r, s, http.StatusOK, "audit", h.tr(s.lang, "nav.audit"), d)
}
