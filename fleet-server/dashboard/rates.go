package dashboard

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/kogge-fleet/kogge/fleet-server/alerts"
)

// Rates samples the server's own counters (capture and delivery) and turns
// them into rates per minute: records stored, and per office records
// accepted, leases and failed attempts. The counters are this process's:
// with several replicas each shows its own share.
type Rates struct {
	g     prometheus.Gatherer
	every time.Duration
	keep  time.Duration
	now   func() time.Time

	mu      sync.Mutex
	samples []rateSample
}

type rateSample struct {
	at       time.Time
	stored   float64
	accepted map[string]float64
	leased   map[string]float64
	failures map[string]float64
}

var _ alerts.DeliveryStats = (*Rates)(nil)

// NewRates samples g every every (default 10 s) and keeps an hour.
func NewRates(g prometheus.Gatherer, every time.Duration, now func() time.Time) *Rates {
	if every <= 0 {
		every = 10 * time.Second
	}
	if now == nil {
		now = time.Now
	}
	return &Rates{g: g, every: every, keep: time.Hour, now: now}
}

// Run samples until ctx ends.
func (r *Rates) Run(ctx context.Context) error {
	t := time.NewTicker(r.every)
	defer t.Stop()
	for {
		r.Sample()
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Sample takes one sample now.
func (r *Rates) Sample() {
	fams, err := r.g.Gather()
	if err != nil && len(fams) == 0 {
		return
	}
	s := rateSample{at: r.now(), accepted: map[string]float64{}, leased: map[string]float64{}, failures: map[string]float64{}}
	label := func(m *dto.Metric, name string) string {
		for _, l := range m.GetLabel() {
			if l.GetName() == name {
				return l.GetValue()
			}
		}
		return ""
	}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			v := m.GetCounter().GetValue()
			switch f.GetName() {
			case "kogge_ingest_records_total":
				if label(m, "status") == "stored" {
					s.stored += v
				}
			case "kogge_delivery_accepted_total":
				s.accepted[label(m, "office")] += v
			case "kogge_delivery_leased_total":
				s.leased[label(m, "office")] += v
			case "kogge_delivery_failures_total":
				s.failures[label(m, "office")] += v
			}
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.samples = append(r.samples, s)
	cut := 0
	for cut < len(r.samples)-1 && s.at.Sub(r.samples[cut].at) > r.keep {
		cut++
	}
	r.samples = r.samples[cut:]
}

// span returns the newest sample and the oldest one at or after since (or
// the newest before it); ok is false with fewer than two samples.
func (r *Rates) span(since time.Time) (old, cur rateSample, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.samples) < 2 {
		return old, cur, false
	}
	cur = r.samples[len(r.samples)-1]
	old = r.samples[0]
	for _, s := range r.samples {
		if s.at.After(since) {
			break
		}
		old = s
	}
	return old, cur, cur.at.After(old.at)
}

// CaptureRate returns the records stored per minute over the last window.
func (r *Rates) CaptureRate(window time.Duration) (float64, bool) {
	if r == nil {
		return 0, false
	}
	old, cur, ok := r.span(r.now().Add(-window))
	if !ok {
		return 0, false
	}
	return (cur.stored - old.stored) / cur.at.Sub(old.at).Minutes(), true
}

// OfficeRate is one office's delivery rates per minute.
type OfficeRate struct {
	Accepted, Leased, Failures float64
}

// Offices returns the delivery rates per office over the last window.
func (r *Rates) Offices(window time.Duration) (map[string]OfficeRate, bool) {
	if r == nil {
		return nil, false
	}
	old, cur, ok := r.span(r.now().Add(-window))
	if !ok {
		return nil, false
	}
	mins := cur.at.Sub(old.at).Minutes()
	out := map[string]OfficeRate{}
	for o := range cur.leased {
		out[o] = OfficeRate{
			Accepted: (cur.accepted[o] - old.accepted[o]) / mins,
			Leased:   (cur.leased[o] - old.leased[o]) / mins,
			Failures: (cur.failures[o] - old.failures[o]) / mins,
		}
	}
	for o := range cur.accepted {
		if _, ok := out[o]; !ok {
			out[o] = OfficeRate{Accepted: (cur.accepted[o] - old.accepted[o]) / mins}
		}
	}
	return out, true
}

// FailureRates reports the attempts (leases) and failures per office since
// a time, for the alert rules.
func (r *Rates) FailureRates(_ context.Context, since time.Time) ([]alerts.DestinationRate, error) {
	old, cur, ok := r.span(since)
	if !ok {
		return nil, nil
	}
	var out []alerts.DestinationRate
	for _, o := range sortedKeys(cur.leased) {
		out = append(out, alerts.DestinationRate{Destination: o, Attempts: int64(cur.leased[o] - old.leased[o]),
			Failures: int64(cur.failures[o] - old.failures[o])})
	}
	return out, nil
}
