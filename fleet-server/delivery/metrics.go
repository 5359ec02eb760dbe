package delivery

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kogge-fleet/kogge/fleet-server/store"
)

// Failure kinds in kogge_delivery_failures_total.
const (
	failTemporary    = "temporary"
	failPermanent    = "permanent"
	failLeaseExpired = "lease_expired"
)

// metrics are the queue's counters (this process's work) and, read from
// the store at each scrape, its gauges (all replicas' queues):
//
//	kogge_delivery_queue_depth{office,state}   deliveries queued, leased, delivered
//	kogge_delivery_lag_seconds{office}         age of the oldest delivery not yet accepted
//	kogge_delivery_dead_letters{office}        dead letters waiting for an admin
//	kogge_delivery_leased_total{office}        records leased (attempts)
//	kogge_delivery_redelivered_total{office}   leases after the first
//	kogge_delivery_accepted_total{office}      records accepted (rate: delivered/s)
//	kogge_delivery_failures_total{office,kind} failed attempts: temporary, permanent, lease_expired
//	kogge_delivery_dead_letters_total{office}  records that became dead letters
//	kogge_delivery_latency_seconds{office}     from queued to accepted
//	kogge_delivery_statuses_total              status items published to devices
type metrics struct {
	leased      *prometheus.CounterVec
	redelivered *prometheus.CounterVec
	accepted    *prometheus.CounterVec
	failures    *prometheus.CounterVec
	deadLetters *prometheus.CounterVec
	latency     *prometheus.HistogramVec
	statuses    prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, db *store.DB, clock func() time.Time, log *slog.Logger) (*metrics, error) {
	m := &metrics{
		leased: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kogge_delivery_leased_total", Help: "Records leased to bridges (every attempt), by office.",
		}, []string{"office"}),
		redelivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kogge_delivery_redelivered_total", Help: "Leases of records that were leased before, by office.",
		}, []string{"office"}),
		accepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kogge_delivery_accepted_total", Help: "Records the procedure accepted with a receipt, by office.",
		}, []string{"office"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kogge_delivery_failures_total", Help: "Failed delivery attempts, by office and kind (temporary, permanent, lease_expired).",
		}, []string{"office", "kind"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kogge_delivery_dead_letters_total", Help: "Records that became dead letters, by office.",
		}, []string{"office"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kogge_delivery_latency_seconds",
			Help:    "Time from a record's queueing to its acceptance by the procedure, by office.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600, 4 * 3600, 24 * 3600},
		}, []string{"office"}),
		statuses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kogge_delivery_statuses_total", Help: "Record status items published to devices.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.leased, m.redelivered, m.accepted, m.failures, m.deadLetters, m.latency,
		m.statuses, &queueCollector{db: db, clock: clock, log: log}} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// queueCollector reads the queues' gauges from the store at each scrape.
type queueCollector struct {
	db    *store.DB
	clock func() time.Time
	log   *slog.Logger
}

var (
	depthDesc = prometheus.NewDesc("kogge_delivery_queue_depth",
		"Deliveries not yet accepted nor dead, by office and state (queued, leased, delivered).", []string{"office", "state"}, nil)
	lagDesc = prometheus.NewDesc("kogge_delivery_lag_seconds",
		"Age of the oldest delivery not yet accepted nor dead, by office.", []string{"office"}, nil)
	deadDesc = prometheus.NewDesc("kogge_delivery_dead_letters",
		"Dead letters waiting for an admin (replay or discard), by office.", []string{"office"}, nil)
)

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- depthDesc
	ch <- lagDesc
	ch <- deadDesc
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stats, err := c.db.DeliveryStats(ctx)
	if err != nil {
		c.log.Warn("delivery: reading queue metrics failed", "err", err)
		return
	}
	now := c.clock().UnixMilli()
	for _, s := range stats {
		for _, state := range []string{store.DeliveryQueued, store.DeliveryLeased, store.DeliveryDelivered} {
			ch <- prometheus.MustNewConstMetric(depthDesc, prometheus.GaugeValue, float64(s.Counts[state]), s.Office, state)
		}
		lag := 0.0
		if s.OldestQueued > 0 {
			lag = float64(max(0, now-s.OldestQueued)) / 1000
		}
		ch <- prometheus.MustNewConstMetric(lagDesc, prometheus.GaugeValue, lag, s.Office)
		ch <- prometheus.MustNewConstMetric(deadDesc, prometheus.GaugeValue, float64(s.Counts[store.DeliveryDead]), s.Office)
	}
}
