// Package alerts evaluates the dashboard's alert rules against the fleet's
// state and sends notifications about alerts that fire and resolve.
//
// A rule has a kind and thresholds:
//
//   - offline: a device offline longer than OfflineFor, counted only
//     during the opening hours when the rule has them;
//   - oldest-unsent: a device whose oldest unsent capture is older than
//     OldestUnsent (its last heartbeat's age plus the time since);
//   - peripheral-fault: a peripheral in state error or missing (degraded
//     too with IncludeDegraded);
//   - delivery-failures: a delivery destination whose share of failed
//     attempts in the last FailureWindow reaches FailureRate, with at
//     least MinAttempts attempts;
//   - cert-expiring: a device whose newest certificate expires within
//     CertWithin;
//   - disk-low: a device with less free disk than DiskFreeBelow, or whose
//     storage budget is used to BudgetUsedAbove percent or full.
//
// The Evaluator runs every rule every Options.Every. An alert fires once per
// rule and subject (a device or a destination) and is resolved when its
// condition no longer holds, or its rule is disabled or deleted. Every
// change is stored together with its notifications (webhook, e-mail), which
// the evaluator then sends, retrying with backoff until they are through or
// Options.GiveUpAfter has passed: a restart loses none.
package alerts

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Kind is the kind of condition a rule checks.
type Kind string

// The kinds of rules.
const (
	Offline          Kind = "offline"
	OldestUnsent     Kind = "oldest-unsent"
	PeripheralFault  Kind = "peripheral-fault"
	DeliveryFailures Kind = "delivery-failures"
	CertExpiring     Kind = "cert-expiring"
	DiskLow          Kind = "disk-low"
)

// Kinds lists every kind.
func Kinds() []Kind {
	return []Kind{Offline, OldestUnsent, PeripheralFault, DeliveryFailures, CertExpiring, DiskLow}
}

// Duration is a time.Duration written as "15m" in JSON.
type Duration time.Duration

// MarshalText writes the duration as Go writes it.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText reads a Go duration ("90s", "15m", "2h").
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration such as 15m or 2h", b)
	}
	*d = Duration(v)
	return nil
}

// OpeningHours are the hours in which an office is open: on Days (0 is
// Sunday), From to To ("07:30", "18:00") in TimeZone (an IANA name such as
// Europe/Berlin; default UTC).
type OpeningHours struct {
	Days     []int  `json:"days"`
	From     string `json:"from"`
	To       string `json:"to"`
	TimeZone string `json:"time_zone,omitempty"`
}

func parseClock(s string) (time.Duration, error) {
	t, err := time.Parse("15:04", s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a time of day such as 07:30", s)
	}
	return time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute, nil
}

// Validate checks the hours.
func (h OpeningHours) Validate() error {
	if len(h.Days) == 0 {
		return errors.New("opening hours: no day")
	}
	for _, d := range h.Days {
		if d < 0 || d > 6 {
			return fmt.Errorf("opening hours: day %d (0 is Sunday, 6 Saturday)", d)
		}
	}
	from, err := parseClock(h.From)
	if err != nil {
		return fmt.Errorf("opening hours from: %w", err)
	}
	to, err := parseClock(h.To)
	if err != nil {
		return fmt.Errorf("opening hours to: %w", err)
	}
	if to <= from {
		return fmt.Errorf("opening hours: %s is not after %s", h.To, h.From)
	}
	if _, err := time.LoadLocation(h.TimeZone); err != nil {
		return fmt.Errorf("opening hours: time zone %q: %w", h.TimeZone, err)
	}
	return nil
}

// Overlap returns how much of [from, to) lies within the opening hours. It
// looks at most 31 days back from to.
func (h OpeningHours) Overlap(from, to time.Time) time.Duration {
	loc, err := time.LoadLocation(h.TimeZone)
	if err != nil || !to.After(from) {
		return 0
	}
	open, err1 := parseClock(h.From)
	closeAt, err2 := parseClock(h.To)
	if err1 != nil || err2 != nil {
		return 0
	}
	if limit := to.AddDate(0, 0, -31); from.Before(limit) {
		from = limit
	}
	var total time.Duration
	day := time.Date(from.In(loc).Year(), from.In(loc).Month(), from.In(loc).Day(), 0, 0, 0, 0, loc)
	for ; day.Before(to); day = day.AddDate(0, 0, 1) {
		if !slices.Contains(h.Days, int(day.Weekday())) {
			continue
		}
		// Clock times through time.Date, so that a day with a change of
		// daylight saving time has its opening hours at the right times.
		ws := time.Date(day.Year(), day.Month(), day.Day(), int(open/time.Hour), int(open%time.Hour/time.Minute), 0, 0, loc)
		we := time.Date(day.Year(), day.Month(), day.Day(), int(closeAt/time.Hour), int(closeAt%time.Hour/time.Minute), 0, 0, loc)
		s, e := maxTime(ws, from), minTime(we, to)
		if e.After(s) {
			total += e.Sub(s)
		}
	}
	return total
}

// Open reports whether t lies within the opening hours.
func (h OpeningHours) Open(t time.Time) bool {
	return h.Overlap(t, t.Add(time.Second)) > 0
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// Params are a rule's thresholds; which apply depends on its kind.
type Params struct {
	OfflineFor Duration      `json:"offline_for,omitempty"`
	Hours      *OpeningHours `json:"hours,omitempty"`

	OldestUnsent Duration `json:"oldest_unsent,omitempty"`

	IncludeDegraded bool `json:"include_degraded,omitempty"`

	FailureRate   float64  `json:"failure_rate,omitempty"` // 0.2 for 20 %
	MinAttempts   int64    `json:"min_attempts,omitempty"`
	FailureWindow Duration `json:"failure_window,omitempty"`

	CertWithin Duration `json:"cert_within,omitempty"`

	DiskFreeBelow   int64 `json:"disk_free_below,omitempty"`   // bytes
	BudgetUsedAbove int   `json:"budget_used_above,omitempty"` // percent
}

// Notify names who hears of a rule's alerts.
type Notify struct {
	Webhooks []string `json:"webhooks,omitempty"`
	Emails   []string `json:"emails,omitempty"`
}

// Rule is an alert rule.
type Rule struct {
	ID      string
	Name    string
	Kind    Kind
	Group   string // "" for every group
	Params  Params
	Notify  Notify
	Enabled bool
}

// ErrInvalid wraps why a rule is refused.
var ErrInvalid = errors.New("invalid alert rule")

// Validate checks the rule.
func (r Rule) Validate() error {
	var errs []string
	add := func(f string, a ...any) { errs = append(errs, fmt.Sprintf(f, a...)) }
	if strings.TrimSpace(r.Name) == "" || len(r.Name) > 200 {
		add("a name of 1 to 200 characters is needed")
	}
	p := r.Params
	switch r.Kind {
	case Offline:
		if p.OfflineFor < Duration(time.Minute) {
			add("offline_for: at least 1m")
		}
		if p.Hours != nil {
			if err := p.Hours.Validate(); err != nil {
				add("%v", err)
			}
		}
	case OldestUnsent:
		if p.OldestUnsent < Duration(time.Minute) {
			add("oldest_unsent: at least 1m")
		}
	case PeripheralFault:
	case DeliveryFailures:
		if p.FailureRate <= 0 || p.FailureRate > 1 {
			add("failure_rate: a share above 0 and at most 1, such as 0.2")
		}
		if p.FailureWindow != 0 && p.FailureWindow < Duration(time.Minute) {
			add("failure_window: at least 1m")
		}
		if p.MinAttempts < 0 {
			add("min_attempts: not negative")
		}
	case CertExpiring:
		if p.CertWithin < Duration(time.Hour) {
			add("cert_within: at least 1h")
		}
	case DiskLow:
		if p.DiskFreeBelow <= 0 && p.BudgetUsedAbove <= 0 {
			add("disk_free_below or budget_used_above is needed")
		}
		if p.BudgetUsedAbove < 0 || p.BudgetUsedAbove > 100 {
			add("budget_used_above: a percentage")
		}
	default:
		add("unknown kind %q", r.Kind)
	}
	for _, w := range r.Notify.Webhooks {
		u, err := url.Parse(w)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			add("webhook %q: an http(s) URL is needed", w)
		}
	}
	for _, e := range r.Notify.Emails {
		if a, err := mail.ParseAddress(e); err != nil || a.Name != "" {
			add("e-mail %q: a plain address such as it@example.org is needed", e)
		}
	}
	if len(r.Notify.Webhooks)+len(r.Notify.Emails) > 20 {
		add("at most 20 notification targets")
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalid, strings.Join(errs, "; "))
	}
	return nil
}

// encode returns params and notify as JSON for the store.
func (r Rule) encode() (params, notify string, err error) {
	p, err := json.Marshal(r.Params)
	if err != nil {
		return "", "", err
	}
	n, err := json.Marshal(r.Notify)
	if err != nil {
		return "", "", err
	}
	return string(p), string(n), nil
}
