package broker

import (
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the broker's Prometheus metrics. Without a registerer they are
// counted but not exported.
type metrics struct {
	reg                   prometheus.Registerer
	refused               *prometheus.CounterVec
	aclDenied             *prometheus.CounterVec
	revocationDisconnects prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		reg: reg,
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kogge_broker_connects_refused_total",
			Help: "MQTT connections refused, by reason (tls_handshake, no_certificate, bad_identity, revoked, client_id, will_topic).",
		}, []string{"reason"}),
		aclDenied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kogge_broker_acl_denied_total",
			Help: "Publishes and subscriptions of devices refused by the ACL, by action.",
		}, []string{"action"}),
		revocationDisconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kogge_broker_revocation_disconnects_total",
			Help: "Connected devices disconnected because they were revoked.",
		}),
	}
	for _, r := range refusedReasons {
		m.refused.WithLabelValues(r)
	}
	m.aclDenied.WithLabelValues("publish")
	m.aclDenied.WithLabelValues("subscribe")
	if reg != nil {
		reg.MustRegister(m.refused, m.aclDenied, m.revocationDisconnects)
	}
	return m
}

// watch exports the number of connected clients of srv.
func (m *metrics) watch(srv *mqtt.Server) {
	if m.reg == nil {
		return
	}
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "kogge_broker_clients_connected",
		Help: "MQTT clients connected to the embedded broker.",
	}, func() float64 { return float64(atomic.LoadInt64(&srv.Info.ClientsConnected)) }))
}
