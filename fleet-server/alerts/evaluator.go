package alerts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/fleet-server/store"
	"github.com/kogge-fleet/kogge/protocol"
)

// Store is what the evaluator needs of fleet-server/store.
type Store interface {
	AlertRules(ctx context.Context) ([]store.AlertRule, error)
	AlertRule(ctx context.Context, id string) (store.AlertRule, error)
	PutAlertRule(ctx context.Context, r store.AlertRule) error
	DeleteAlertRule(ctx context.Context, id string) error
	Alert(ctx context.Context, id string) (store.Alert, error)
	Alerts(ctx context.Context, f store.AlertFilter) ([]store.Alert, error)
	ApplyAlerts(ctx context.Context, c store.AlertChange) (fired, resolved []store.Alert, err error)
	DueNotifications(ctx context.Context, now int64, limit int) ([]store.AlertNotification, error)
	MarkNotification(ctx context.Context, id string, r store.NotificationResult) error

	Devices(ctx context.Context, f store.DeviceFilter) ([]store.Device, error)
	Presences(ctx context.Context, after string, limit int, onlineOnly bool) ([]store.Presence, error)
	LatestHealthPage(ctx context.Context, after string, limit int) ([]store.Health, error)
	ExpiringCerts(ctx context.Context, before int64) ([]store.ExpiringCert, error)
}

// DeliveryStats reports, per delivery destination, the attempts and
// failures since a time (fleet-server/delivery).
type DeliveryStats interface {
	FailureRates(ctx context.Context, since time.Time) ([]DestinationRate, error)
}

// DestinationRate is the attempts and failures of one destination.
type DestinationRate struct {
	Destination string
	Attempts    int64
	Failures    int64
}

// Sender sends a notification to a target (a URL, an e-mail address).
type Sender interface {
	Send(ctx context.Context, target string, n Notification) error
}

// Notification is what a webhook receives as JSON and an e-mail tells.
type Notification struct {
	Event      string     `json:"event"` // "firing" or "resolved"
	AlertID    string     `json:"alert_id"`
	RuleID     string     `json:"rule_id"`
	RuleName   string     `json:"rule_name"`
	Kind       Kind       `json:"kind"`
	Subject    string     `json:"subject"`
	Message    string     `json:"message"`
	FiredAt    time.Time  `json:"fired_at"`
	ResolvedAt *time.Time `json:"resolved_at,omitempty"`
	// URL is the alert's page on the dashboard, when its address is known.
	URL string `json:"url,omitempty"`
}

// Event is an alert that began to fire or was resolved.
type Event struct {
	Firing bool
	Alert  store.Alert
	Rule   Rule
}

// Channels of notifications.
const (
	ChannelWebhook = "webhook"
	ChannelEmail   = "email"
)

// Options are the optional settings of the Evaluator.
type Options struct {
	Logger *slog.Logger
	// Clock returns the current time; default time.Now.
	Clock func() time.Time
	// Every is how often the rules are evaluated and due notifications
	// sent; default 30 s.
	Every time.Duration
	// Delivery reports failure rates for delivery-failures rules; without
	// it such rules raise nothing.
	Delivery DeliveryStats
	// Webhook and Email send notifications; without one, a rule's targets
	// of that channel get nothing (and a warning is logged).
	Webhook Sender
	Email   Sender
	// OnChange is called for every alert that begins to fire or is
	// resolved, after it is stored. It must not block.
	OnChange func(Event)
	// GiveUpAfter is how long a notification is retried; default 24 h.
	GiveUpAfter time.Duration
	// SendTimeout bounds one attempt to send; default 15 s.
	SendTimeout time.Duration
	// DashboardURL is the dashboard's public address, for links in
	// notifications; default none.
	DashboardURL string
}

func (o *Options) defaults() {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Every == 0 {
		o.Every = 30 * time.Second
	}
	if o.GiveUpAfter == 0 {
		o.GiveUpAfter = 24 * time.Hour
	}
	if o.SendTimeout == 0 {
		o.SendTimeout = 15 * time.Second
	}
}

// Validate checks the options after defaults are filled in.
func (o *Options) Validate() error {
	if o.Every < 100*time.Millisecond || o.GiveUpAfter <= 0 || o.SendTimeout <= 0 {
		return errors.New("alerts: interval must be at least 100ms; give-up and send timeouts positive")
	}
	return nil
}

// Evaluator evaluates the rules and sends the notifications.
type Evaluator struct {
	db   Store
	opts Options
	log  *slog.Logger
	poke chan struct{}
}

// New returns an Evaluator over db. Run evaluates periodically.
func New(db Store, opts Options) (*Evaluator, error) {
	opts.defaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	return &Evaluator{db: db, opts: opts, log: opts.Logger, poke: make(chan struct{}, 1)}, nil
}

func ruleFrom(r store.AlertRule) (Rule, error) {
	out := Rule{ID: r.ID, Name: r.Name, Kind: Kind(r.Kind), Group: r.Group, Enabled: r.Enabled}
	if err := json.Unmarshal([]byte(r.Params), &out.Params); err != nil {
		return out, fmt.Errorf("alert rule %s: parameters: %w", r.ID, err)
	}
	if err := json.Unmarshal([]byte(r.Notify), &out.Notify); err != nil {
		return out, fmt.Errorf("alert rule %s: notification targets: %w", r.ID, err)
	}
	return out, nil
}

// Rules returns every rule, by name.
func (e *Evaluator) Rules(ctx context.Context) ([]Rule, error) {
	rs, err := e.db.AlertRules(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Rule, 0, len(rs))
	for _, r := range rs {
		rule, err := ruleFrom(r)
		if err != nil {
			return nil, err
		}
		out = append(out, rule)
	}
	return out, nil
}

// Rule returns one rule (store.ErrNotFound when missing).
func (e *Evaluator) Rule(ctx context.Context, id string) (Rule, error) {
	r, err := e.db.AlertRule(ctx, id)
	if err != nil {
		return Rule{}, err
	}
	return ruleFrom(r)
}

// PutRule validates and stores a rule, giving a new one an id, and has the
// rules evaluated soon.
func (e *Evaluator) PutRule(ctx context.Context, r Rule) (Rule, error) {
	if err := r.Validate(); err != nil {
		return Rule{}, err
	}
	if r.ID == "" {
		r.ID = uuid.Must(uuid.NewV7()).String()
	}
	params, notify, err := r.encode()
	if err != nil {
		return Rule{}, fmt.Errorf("encode alert rule: %w", err)
	}
	now := e.opts.Clock().UnixMilli()
	if err := e.db.PutAlertRule(ctx, store.AlertRule{ID: r.ID, Name: r.Name, Kind: string(r.Kind), Group: r.Group,
		Params: params, Notify: notify, Enabled: r.Enabled, CreatedAt: now, UpdatedAt: now}); err != nil {
		return Rule{}, err
	}
	e.Poke()
	return r, nil
}

// DeleteRule deletes a rule with its alerts.
func (e *Evaluator) DeleteRule(ctx context.Context, id string) error {
	return e.db.DeleteAlertRule(ctx, id)
}

// Poke has the rules evaluated soon rather than at the next interval.
func (e *Evaluator) Poke() {
	select {
	case e.poke <- struct{}{}:
	default:
	}
}

// Run evaluates the rules and sends due notifications every Options.Every
// until ctx ends.
func (e *Evaluator) Run(ctx context.Context) error {
	t := time.NewTicker(e.opts.Every)
	defer t.Stop()
	for {
		if err := e.Evaluate(ctx); err != nil && ctx.Err() == nil {
			e.log.Error("evaluating alert rules failed; retrying at the next interval", "err", err)
		}
		if _, err := e.SendDue(ctx); err != nil && ctx.Err() == nil {
			e.log.Error("sending alert notifications failed; retrying at the next interval", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-e.poke:
		}
	}
}

// fleet is what the rules look at, loaded once per evaluation.
type fleet struct {
	devices  map[string]store.Device // not revoked
	presence map[string]store.Presence
	health   map[string]store.Health
}

const page = 1000

func (e *Evaluator) loadFleet(ctx context.Context, needPresence, needHealth bool) (*fleet, error) {
	f := &fleet{devices: map[string]store.Device{}, presence: map[string]store.Presence{}, health: map[string]store.Health{}}
	for after := ""; ; {
		ds, err := e.db.Devices(ctx, store.DeviceFilter{After: after, Limit: page})
		if err != nil {
			return nil, err
		}
		for _, d := range ds {
			if d.RevokedAt == 0 {
				f.devices[d.ID] = d
			}
		}
		if len(ds) < page {
			break
		}
		after = ds[len(ds)-1].ID
	}
	if needPresence {
		for after := ""; ; {
			ps, err := e.db.Presences(ctx, after, page, false)
			if err != nil {
				return nil, err
			}
			for _, p := range ps {
				f.presence[p.Device] = p
			}
			if len(ps) < page {
				break
			}
			after = ps[len(ps)-1].Device
		}
	}
	if needHealth {
		for after := ""; ; {
			hs, err := e.db.LatestHealthPage(ctx, after, page)
			if err != nil {
				return nil, err
			}
			for _, h := range hs {
				f.health[h.Device] = h
			}
			if len(hs) < page {
				break
			}
			after = hs[len(hs)-1].Device
		}
	}
	return f, nil
}

// Evaluate runs every rule once: it raises alerts for the conditions that
// hold and resolves those that no longer do.
func (e *Evaluator) Evaluate(ctx context.Context) error {
	now := e.opts.Clock()
	rules, err := e.Rules(ctx)
	if err != nil {
		return err
	}
	needPresence, needHealth := false, false
	byID := map[string]Rule{}
	for _, r := range rules {
		byID[r.ID] = r
		if !r.Enabled {
			continue
		}
		switch r.Kind {
		case Offline:
			needPresence = true
		case OldestUnsent, PeripheralFault, DiskLow:
			needHealth = true
		}
	}
	f, err := e.loadFleet(ctx, needPresence, needHealth)
	if err != nil {
		return fmt.Errorf("read the fleet: %w", err)
	}
	firing, err := e.db.Alerts(ctx, store.AlertFilter{FiringOnly: true, Limit: 5000})
	if err != nil {
		return err
	}
	open := map[string]map[string]bool{} // rule → subjects
	for _, a := range firing {
		if open[a.Rule] == nil {
			open[a.Rule] = map[string]bool{}
		}
		open[a.Rule][a.Subject] = true
	}

	var change store.AlertChange
	nowMs := now.UnixMilli()
	for _, r := range rules {
		var conds map[string]string
		if r.Enabled {
			conds, err = e.conditions(ctx, r, f, now)
			if err != nil {
				e.log.Warn("alert rule could not be evaluated", "rule", r.Name, "err", err)
				continue
			}
		}
		subjects := make([]string, 0, len(conds))
		for s := range conds {
			subjects = append(subjects, s)
		}
		sort.Strings(subjects)
		for _, s := range subjects {
			if open[r.ID][s] {
				continue
			}
			a := store.Alert{ID: uuid.Must(uuid.NewV7()).String(), Rule: r.ID, Subject: s, Message: conds[s], FiredAt: nowMs}
			change.Fire = append(change.Fire, store.AlertFire{Alert: a, Notifications: e.notifications(r, "firing", nowMs)})
		}
		var gone []string
		for s := range open[r.ID] {
			if _, ok := conds[s]; !ok {
				gone = append(gone, s)
			}
		}
		sort.Strings(gone)
		for _, s := range gone {
			change.Resolve = append(change.Resolve, store.AlertResolve{Rule: r.ID, Subject: s, At: nowMs,
				Notifications: e.notifications(r, "resolved", nowMs)})
		}
	}
	if len(change.Fire)+len(change.Resolve) == 0 {
		return nil
	}
	fired, resolved, err := e.db.ApplyAlerts(ctx, change)
	if err != nil {
		return err
	}
	for _, a := range fired {
		e.log.Info("alert firing", "rule", byID[a.Rule].Name, "subject", a.Subject, "message", a.Message)
		if e.opts.OnChange != nil {
			e.opts.OnChange(Event{Firing: true, Alert: a, Rule: byID[a.Rule]})
		}
	}
	for _, a := range resolved {
		e.log.Info("alert resolved", "rule", byID[a.Rule].Name, "subject", a.Subject)
		if e.opts.OnChange != nil {
			e.opts.OnChange(Event{Firing: false, Alert: a, Rule: byID[a.Rule]})
		}
	}
	return nil
}

func (e *Evaluator) notifications(r Rule, event string, now int64) []store.AlertNotification {
	var out []store.AlertNotification
	add := func(channel string, targets []string, sender Sender) {
		if len(targets) > 0 && sender == nil {
			e.log.Warn("alert rule notifies by a channel that is not configured; those targets get nothing",
				"rule", r.Name, "channel", channel)
			return
		}
		for _, t := range targets {
			out = append(out, store.AlertNotification{ID: uuid.Must(uuid.NewV7()).String(), Event: event,
				Channel: channel, Target: t, CreatedAt: now, NextAt: now})
		}
	}
	add(ChannelWebhook, r.Notify.Webhooks, e.opts.Webhook)
	add(ChannelEmail, r.Notify.Emails, e.opts.Email)
	return out
}

// conditions returns the subjects for which r's condition holds now, each
// with a message.
func (e *Evaluator) conditions(ctx context.Context, r Rule, f *fleet, now time.Time) (map[string]string, error) {
	out := map[string]string{}
	inScope := func(device string) bool {
		d, ok := f.devices[device]
		return ok && (r.Group == "" || d.GroupID == r.Group)
	}
	p := r.Params
	switch r.Kind {
	case Offline:
		for id, pr := range f.presence {
			if pr.Online || !inScope(id) {
				continue
			}
			since := time.UnixMilli(pr.ChangedAt)
			counted := now.Sub(since)
			if p.Hours != nil {
				counted = p.Hours.Overlap(since, now)
			}
			if counted >= time.Duration(p.OfflineFor) {
				msg := fmt.Sprintf("offline since %s (%s", since.UTC().Format("2006-01-02 15:04 MST"), roundDur(now.Sub(since)))
				if p.Hours != nil {
					msg += fmt.Sprintf(", %s of it in opening hours", roundDur(counted))
				}
				if pr.Reason != "" {
					msg += "; " + pr.Reason
				}
				out[id] = msg + ")"
			}
		}
	case OldestUnsent:
		for id, h := range f.health {
			hb := h.Heartbeat
			if !inScope(id) || hb.QueueDepth == 0 || hb.OldestUnsentMillis == 0 {
				continue
			}
			age := time.Duration(hb.OldestUnsentMillis)*time.Millisecond + now.Sub(time.UnixMilli(h.ReceivedAt))
			if age >= time.Duration(p.OldestUnsent) {
				out[id] = fmt.Sprintf("oldest unsent capture is %s old (%d waiting)", roundDur(age), hb.QueueDepth)
			}
		}
	case PeripheralFault:
		for id, h := range f.health {
			if !inScope(id) {
				continue
			}
			var faults []string
			for _, per := range h.Heartbeat.Peripherals {
				bad := per.State == protocol.PeripheralError || per.State == protocol.PeripheralMissing ||
					(p.IncludeDegraded && per.State == protocol.PeripheralDegraded)
				if bad {
					s := fmt.Sprintf("%s (%s) %s", per.Name, per.Kind, per.State)
					if per.Reason != "" {
						s += ": " + per.Reason
					}
					faults = append(faults, s)
				}
			}
			if len(faults) > 0 {
				sort.Strings(faults)
				out[id] = strings.Join(faults, "; ")
			}
		}
	case DiskLow:
		for id, h := range f.health {
			hb := h.Heartbeat
			if !inScope(id) {
				continue
			}
			var why []string
			if p.DiskFreeBelow > 0 && int64(hb.DiskFree) < p.DiskFreeBelow {
				why = append(why, fmt.Sprintf("%s free on disk", bytesText(int64(hb.DiskFree))))
			}
			if hb.Full {
				why = append(why, "storage budget full; captures are paused")
			} else if p.BudgetUsedAbove > 0 && hb.BudgetTotal > 0 && hb.BudgetUsed*100 >= uint64(p.BudgetUsedAbove)*hb.BudgetTotal {
				why = append(why, fmt.Sprintf("storage budget %d%% used", hb.BudgetUsed*100/hb.BudgetTotal))
			}
			if len(why) > 0 {
				out[id] = strings.Join(why, "; ")
			}
		}
	case CertExpiring:
		certs, err := e.db.ExpiringCerts(ctx, now.Add(time.Duration(p.CertWithin)).UnixMilli())
		if err != nil {
			return nil, err
		}
		for _, c := range certs {
			if !inScope(c.Device) {
				continue
			}
			at := time.UnixMilli(c.NotAfter).UTC()
			if at.Before(now) {
				out[c.Device] = fmt.Sprintf("certificate %s expired on %s; the device cannot connect until it renews", c.Serial, at.Format("2006-01-02"))
			} else {
				out[c.Device] = fmt.Sprintf("certificate %s expires on %s (in %s)", c.Serial, at.Format("2006-01-02"), roundDur(at.Sub(now)))
			}
		}
	case DeliveryFailures:
		if e.opts.Delivery == nil {
			return out, nil
		}
		window := time.Duration(p.FailureWindow)
		if window == 0 {
			window = 15 * time.Minute
		}
		rates, err := e.opts.Delivery.FailureRates(ctx, now.Add(-window))
		if err != nil {
			return nil, err
		}
		for _, d := range rates {
			if d.Attempts == 0 || d.Attempts < p.MinAttempts {
				continue
			}
			if float64(d.Failures)/float64(d.Attempts) >= p.FailureRate {
				out[d.Destination] = fmt.Sprintf("%d of %d deliveries failed in the last %s (%.0f%%)",
					d.Failures, d.Attempts, roundDur(window), 100*float64(d.Failures)/float64(d.Attempts))
			}
		}
	}
	return out, nil
}

func roundDur(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%dd", int(d/(24*time.Hour)))
	case d >= time.Hour:
		return d.Round(time.Minute).String()
	case d >= time.Minute:
		return d.Round(time.Second).String()
	}
	return d.Round(time.Second).String()
}

func bytesText(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}

// SendDue sends the notifications that are due and returns how many went
// through.
func (e *Evaluator) SendDue(ctx context.Context) (int, error) {
	now := e.opts.Clock()
	due, err := e.db.DueNotifications(ctx, now.UnixMilli(), 100)
	if err != nil {
		return 0, err
	}
	sent := 0
	rules := map[string]Rule{}
	for _, n := range due {
		if ctx.Err() != nil {
			return sent, ctx.Err()
		}
		res := e.send(ctx, n, rules, now)
		if err := e.db.MarkNotification(ctx, n.ID, res); err != nil {
			return sent, err
		}
		if res.SentAt != 0 {
			sent++
		}
	}
	return sent, nil
}

func (e *Evaluator) send(ctx context.Context, n store.AlertNotification, rules map[string]Rule, now time.Time) store.NotificationResult {
	fail := func(err error) store.NotificationResult {
		res := store.NotificationResult{Error: err.Error()}
		backoff := min(30*time.Second<<min(n.Attempts, 10), time.Hour)
		next := now.Add(backoff)
		if next.Sub(time.UnixMilli(n.CreatedAt)) > e.opts.GiveUpAfter {
			res.GiveUp = now.UnixMilli()
			e.log.Error("giving up on an alert notification", "channel", n.Channel, "target", n.Target,
				"attempts", n.Attempts+1, "err", err)
		} else {
			res.NextAt = next.UnixMilli()
			e.log.Warn("alert notification failed; retrying", "channel", n.Channel, "target", n.Target,
				"retry_in", backoff, "err", err)
		}
		return res
	}
	a, err := e.db.Alert(ctx, n.Alert)
	if err != nil {
		return fail(fmt.Errorf("read alert: %w", err))
	}
	r, ok := rules[a.Rule]
	if !ok {
		if r, err = e.Rule(ctx, a.Rule); err != nil {
			return fail(fmt.Errorf("read alert rule: %w", err))
		}
		rules[a.Rule] = r
	}
	msg := Notification{Event: n.Event, AlertID: a.ID, RuleID: r.ID, RuleName: r.Name, Kind: r.Kind,
		Subject: a.Subject, Message: a.Message, FiredAt: time.UnixMilli(a.FiredAt).UTC()}
	if a.ResolvedAt != 0 {
		t := time.UnixMilli(a.ResolvedAt).UTC()
		msg.ResolvedAt = &t
	}
	if e.opts.DashboardURL != "" {
		msg.URL = strings.TrimRight(e.opts.DashboardURL, "/") + "/alerts/" + a.ID
	}
	var s Sender
	switch n.Channel {
	case ChannelWebhook:
		s = e.opts.Webhook
	case ChannelEmail:
		s = e.opts.Email
	}
	if s == nil {
		return fail(fmt.Errorf("no %s sender configured", n.Channel))
	}
	sctx, cancel := context.WithTimeout(ctx, e.opts.SendTimeout)
	defer cancel()
	if err := s.Send(sctx, n.Target, msg); err != nil {
		return fail(err)
	}
	return store.NotificationResult{SentAt: e.opts.Clock().UnixMilli()}
}
