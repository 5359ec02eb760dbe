package fleetserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kogge-fleet/kogge/fleet-server/alerts"
	"github.com/kogge-fleet/kogge/fleet-server/broker"
	"github.com/kogge-fleet/kogge/fleet-server/brokerconfig"
	"github.com/kogge-fleet/kogge/fleet-server/leader"
	"github.com/kogge-fleet/kogge/fleet-server/mqttclient"
	"github.com/kogge-fleet/kogge/fleet-server/store"
	"github.com/kogge-fleet/kogge/protocol"
)

// Several replicas.
//
// With broker.mode=external the server is one replica of several: it
// connects to Mosquitto or EMQX (fleet-server/mqttclient) over mutual TLS
// with a client certificate it issues itself from the fleet CA (common name
// kogge-server:REPLICA), and every replica shares one PostgreSQL store.
// The replicas split the ingest by partitions of the devices or by shared
// subscriptions (broker.external.split, see config_cluster.go), elect the
// replica that runs each singleton (retention sweeper, alert evaluator,
// and whoever asks through App.singleton) through advisory locks
// (fleet-server/leader), and pass the dashboard's alert updates to every
// replica through LISTEN/NOTIFY; presence and command results reach every
// replica's dashboard through the store, which each one polls.
//
// With broker.external.mosquitto-dir, the replica that leads the singleton
// broker-files keeps the Mosquitto directory's CRL and ACL current
// (fleet-server/brokerconfig) and reloads Mosquitto: at once when any
// replica revokes a device (a notification), and every
// broker.external.mosquitto-check otherwise. EMQX asks the server instead,
// at /broker/v1/emqx/ on the enrollment listener.
//
// Embedded mode with SQLite is the one-process default: the singletons
// just run and the elector holds every partition.

// mqttBroker is what the app needs of its broker: the embedded one or a
// client of an external one.
type mqttBroker interface {
	Subscribe(filter string, handler func(topic string, payload []byte)) error
	Publish(topic string, payload []byte, retained bool) error
	Start(ctx context.Context) error
	Close() error
	DisconnectDevice(device string) bool
	Addr() net.Addr
	DevAddr() net.Addr
}

var (
	_ mqttBroker = (*broker.Broker)(nil)
	_ mqttBroker = (*mqttclient.Client)(nil)
)

// cluster is the app's part in a fleet of replicas.
type cluster struct {
	elector *leader.Elector
	// live carries alert updates to every replica's dashboard.
	live *leader.Notifier
	// client is the external broker's client (nil when embedded).
	client *mqttclient.Client
	// emqx answers EMQX's authentication (external mode).
	emqx http.Handler
	// revoked carries revocations to the broker-files singleton; revokes
	// queues this replica's for it (nil without mosquitto-dir).
	revoked *leader.Notifier
	revokes chan string
}

// newBroker builds the cluster coordination and then the broker the
// configuration asks for.
func (a *App) newBroker(cfg Config, logger *slog.Logger) (mqttBroker, error) {
	external := cfg.Broker.Mode == BrokerExternal
	c := &cluster{}
	var err error
	c.elector, err = leader.New(a.db, leader.Options{
		Logger: logger.With("component", "leader"), Registerer: a.metrics,
		Partitions: external && cfg.Broker.External.Split == SplitPartitions,
	})
	if err != nil {
		return nil, err
	}
	if c.live, err = leader.NewNotifier(a.db, "live", logger.With("component", "live")); err != nil {
		return nil, err
	}
	a.cluster = c
	if !external {
		b, err := broker.New(a.registry.BrokerTLSConfig(), a.registry, broker.Options{
			Address:     cfg.Broker.Listen,
			DevAddress:  cfg.Broker.DevListen,
			DevInsecure: cfg.Broker.DevListen != "",
			Logger:      logger.With("component", "broker"),
			Registerer:  a.metrics,
		})
		if err != nil {
			return nil, err
		}
		return b, nil
	}

	x := cfg.Broker.External
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ca, err := brokerconfig.LoadCA(ctx, a.db)
	if err != nil {
		return nil, err
	}
	roots := ca.Pool()
	if x.CAFile != "" {
		b, err := os.ReadFile(x.CAFile)
		if err != nil {
			return nil, fmt.Errorf("broker.external.ca-file: %w", err)
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("broker.external.ca-file %s holds no PEM certificate", x.CAFile)
		}
	}
	certs := &replicaCerts{ca: ca, replica: cfg.Replica, lifetime: x.CertLifetime}
	if _, err := certs.get(nil); err != nil {
		return nil, err
	}
	opts := mqttclient.Options{
		URL:        x.URL,
		TLS:        &tls.Config{GetClientCertificate: certs.get, RootCAs: roots, MinVersion: tls.VersionTLS12},
		ClientID:   brokerconfig.ReplicaUser(cfg.Replica),
		ProbeTopic: brokerconfig.ProbeTopic(cfg.Replica),
		Keepalive:  cfg.Broker.Keepalive,
		Logger:     logger.With("component", "mqtt"),
		Registerer: a.metrics,
	}
	if x.Split == SplitShared {
		opts.Share = brokerconfig.ShareGroup
	} else {
		opts.Accept = func(topic string) bool {
			rest, ok := strings.CutPrefix(topic, protocol.TopicRoot)
			device, _, found := strings.Cut(rest, "/")
			if !ok || !found {
				return true // not a device's: the ingest refuses and counts it
			}
			return c.elector.Owns(device)
		}
	}
	if c.client, err = mqttclient.New(opts); err != nil {
		return nil, err
	}
	if c.emqx, err = brokerconfig.EMQXHandler(a.registry, brokerconfig.EMQXOptions{Logger: logger.With("component", "emqx-auth")}); err != nil {
		return nil, err
	}
	if x.MosquittoDir != "" {
		if c.revoked, err = leader.NewNotifier(a.db, "revoked", logger.With("component", "broker-files")); err != nil {
			return nil, err
		}
		c.revokes = make(chan string, 256)
		a.registry.OnRevoke(func(device string) {
			select {
			case c.revokes <- device:
			default: // the periodic check catches it
			}
		})
	}
	logger.Info("external MQTT broker", "url", x.URL, "replica", cfg.Replica, "identity", opts.ClientID, "split", x.Split)
	return c.client, nil
}

// replicaCerts issues this replica's client certificate for the external
// broker and issues it anew, at a (re)connect, when a third of its
// lifetime is left. The key lives only in memory.
type replicaCerts struct {
	ca       *brokerconfig.CA
	replica  string
	lifetime time.Duration

	mu   sync.Mutex
	cert *tls.Certificate
}

func (r *replicaCerts) get(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	if c := r.cert; c != nil && c.Leaf.NotAfter.Sub(now) > r.lifetime/3 {
		return c, nil
	}
	c, err := r.ca.IssueReplica(r.replica, now, r.lifetime)
	if err != nil {
		return nil, fmt.Errorf("issue this replica's broker certificate: %w", err)
	}
	r.cert = &c
	return r.cert, nil
}

// singleton wraps fn so that only the elected replica runs it (with
// SQLite it is fn). The rollout scheduler and any other fleet-wide job use
// it like the retention sweeper: run("x", nil, a.singleton("x", x.Run)).
func (a *App) singleton(name string, fn func(context.Context) error) func(context.Context) error {
	return a.cluster.elector.Singleton(name, fn)
}

// runCluster starts the cluster's components with Run's run.
func (a *App) runCluster(run func(name string, up *atomic.Bool, fn func(context.Context) error)) {
	c := a.cluster
	run("leader", nil, c.elector.Run)
	if a.dashboard != nil && a.db.Dialect() == store.Postgres {
		run("live updates", nil, a.listenLive)
	}
	if c.revoked != nil {
		run("revocations to the broker", nil, a.forwardRevocations)
		run("broker files", nil, a.singleton("broker-files", a.keepBrokerFiles))
	}
}

// mountCluster serves EMQX's authentication on the enrollment listener in
// external mode.
func (a *App) mountCluster(mux *http.ServeMux) {
	if a.cluster.emqx != nil {
		mux.Handle(brokerconfig.EMQXPrefix, a.cluster.emqx)
	}
}

// brokerConnected reports whether the external broker's connection is up
// (always true for the embedded broker).
func (a *App) brokerConnected() bool {
	return a.cluster == nil || a.cluster.client == nil || a.cluster.client.Connected()
}

// Elector is the app's elector, for tests and for components that ask
// whether this replica leads a singleton.
func (a *App) Elector() *leader.Elector { return a.cluster.elector }

// liveAlert is an alert update as it travels between replicas.
type liveAlert struct {
	Firing bool        `json:"firing"`
	Alert  store.Alert `json:"alert"`
	Rule   string      `json:"rule"`
}

// alertChanged passes an alert update to the dashboards: directly with one
// process, through a notification to every replica with PostgreSQL.
func (a *App) alertChanged(ev alerts.Event) {
	if a.db.Dialect() != store.Postgres {
		a.dashboard.AlertChanged(ev)
		return
	}
	m := liveAlert{Firing: ev.Firing, Alert: ev.Alert, Rule: ev.Rule.Name}
	b, err := json.Marshal(m)
	if err == nil && len(b) > leader.MaxPayload {
		m.Alert.Message = clipRunes(m.Alert.Message, 1000)
		m.Alert.Subject = clipRunes(m.Alert.Subject, 500)
		b, err = json.Marshal(m)
	}
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err = a.cluster.live.Notify(ctx, b)
		cancel()
	}
	if err != nil {
		a.log.Warn("passing an alert to the other replicas' dashboards failed; only this one shows it live", "err", err)
		a.dashboard.AlertChanged(ev)
	}
}

func clipRunes(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}

// listenLive shows the alert updates of every replica on this one's
// dashboard.
func (a *App) listenLive(ctx context.Context) error {
	return a.cluster.live.Listen(ctx, func(p []byte) {
		var m liveAlert
		if err := json.Unmarshal(p, &m); err != nil {
			a.log.Warn("undecodable live update from another replica; ignored", "err", err)
			return
		}
		a.dashboard.AlertChanged(alerts.Event{Firing: m.Firing, Alert: m.Alert, Rule: alerts.Rule{Name: m.Rule}})
	})
}

// forwardRevocations tells the replica that keeps the broker's files about
// every revocation made here.
func (a *App) forwardRevocations(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case device := <-a.cluster.revokes:
			nctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := a.cluster.revoked.Notify(nctx, []byte(device))
			cancel()
			if err != nil && ctx.Err() == nil {
				a.log.Warn("telling the broker-files replica about a revocation failed; its periodic check applies it",
					"device", device, "err", err)
			}
		}
	}
}

// keepBrokerFiles keeps the Mosquitto directory's CRL and ACL current and
// reloads Mosquitto after a change (singleton broker-files).
func (a *App) keepBrokerFiles(ctx context.Context) error {
	x := a.cfg.Broker.External
	kick := make(chan struct{}, 1)
	lctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop()
	wg.Go(func() {
		err := a.cluster.revoked.Listen(lctx, func([]byte) {
			select {
			case kick <- struct{}{}:
			default:
			}
		})
		if err != nil {
			a.log.Warn("listening for revocations failed; the periodic check applies them", "err", err)
		}
	})
	t := time.NewTicker(x.MosquittoCheck)
	defer t.Stop()
	failing := false
	for {
		uctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		changed, pidFile, err := brokerconfig.Update(uctx, a.db, x.MosquittoDir, time.Now())
		cancel()
		if err == nil && changed {
			err = brokerconfig.Reload(pidFile)
			if err == nil {
				a.log.Info("broker CRL and ACL updated; Mosquitto reloaded", "dir", x.MosquittoDir)
			}
		}
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			a.log.Error("keeping the Mosquitto CRL and ACL current failed; retrying", "dir", x.MosquittoDir, "err", err)
			failing = true
		case err == nil && failing:
			a.log.Info("the Mosquitto CRL and ACL are current again", "dir", x.MosquittoDir)
			failing = false
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-kick:
		}
	}
}

// errNotExternal is returned by ExternalBroker in embedded mode.
var errNotExternal = errors.New("the server runs its embedded broker")

// ExternalBroker returns the client of the external broker, for tests.
func (a *App) ExternalBroker() (*mqttclient.Client, error) {
	if a.cluster == nil || a.cluster.client == nil {
		return nil, errNotExternal
	}
	return a.cluster.client, nil
}
