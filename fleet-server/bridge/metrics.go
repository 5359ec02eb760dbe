package bridge

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Outcomes, the values of the outcome label of
// kogge_bridge_deliveries_total.
const (
	outcomeAcked     = "acked"      // delivered and acknowledged
	outcomeFailed    = "failed"     // failed; the queue retries it
	outcomeDead      = "dead"       // failed permanently: a dead letter
	outcomeLeaseLost = "lease_lost" // the lease was taken over meanwhile
	outcomeAbandoned = "abandoned"  // neither acked nor failed; the lease expires
)

type metrics struct {
	deliveries  *prometheus.CounterVec
	seconds     prometheus.Histogram
	inFlight    prometheus.Gauge
	leaseErrors prometheus.Counter
	updates     prometheus.Counter

	nAcked, nFailed, nDead, nLeaseLost, nAbandoned, nUpdates atomic.Uint64
}

func newMetrics(reg prometheus.Registerer, office string) (*metrics, error) {
	labels := prometheus.Labels{"office": office}
	m := &metrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kogge_bridge_deliveries_total", ConstLabels: labels,
			Help: "Deliveries the bridge finished, by outcome (acked, failed, dead, lease_lost, abandoned).",
		}, []string{"outcome"}),
		seconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "kogge_bridge_delivery_seconds", ConstLabels: labels,
			Help:    "Time from lease to ack of a delivered record: open, fetch blobs, deliver, ack.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kogge_bridge_in_flight", ConstLabels: labels, Help: "Deliveries in flight.",
		}),
		leaseErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kogge_bridge_lease_errors_total", ConstLabels: labels, Help: "Failed lease calls to the fleet server.",
		}),
		updates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kogge_bridge_status_updates_total", ConstLabels: labels,
			Help: "Later status changes from the procedure reported to the fleet server.",
		}),
	}
	for _, o := range []string{outcomeAcked, outcomeFailed, outcomeDead, outcomeLeaseLost, outcomeAbandoned} {
		m.deliveries.WithLabelValues(o)
	}
	if reg == nil {
		return m, nil
	}
	var errs []error
	for _, c := range []prometheus.Collector{m.deliveries, m.seconds, m.inFlight, m.leaseErrors, m.updates} {
		errs = append(errs, reg.Register(c))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("register bridge metrics: %w", err)
	}
	return m, nil
}

func (m *metrics) count(outcome string) {
	m.deliveries.WithLabelValues(outcome).Inc()
	switch outcome {
	case outcomeAcked:
		m.nAcked.Add(1)
	case outcomeFailed:
		m.nFailed.Add(1)
	case outcomeDead:
		m.nDead.Add(1)
	case outcomeLeaseLost:
		m.nLeaseLost.Add(1)
	case outcomeAbandoned:
		m.nAbandoned.Add(1)
	}
}
