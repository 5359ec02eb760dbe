package fleetserver

import (
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/kogge-fleet/kogge/fleet-server/brokerconfig"
)

// Broker modes (broker.mode).
const (
	// BrokerEmbedded: the server runs its own broker (mochi), the default
	// for one machine.
	BrokerEmbedded = "embedded"
	// BrokerExternal: the server is a client of Mosquitto or EMQX, for
	// several replicas on one PostgreSQL (docs/deploy.md).
	BrokerExternal = "external"
)

// Ways the replicas split the ingest (broker.external.split).
const (
	// SplitPartitions: every replica receives every device message and
	// keeps those of the devices in the ingest partitions it holds
	// (fleet-server/leader). Works with any broker; the broker sends each
	// message to every replica.
	SplitPartitions = "partitions"
	// SplitShared: shared subscriptions ($share/kogge/...). Needs a broker
	// that keeps one device's messages with one replica: EMQX with the
	// hash_clientid strategy. Mosquitto 2.0 deals messages out in turn,
	// which breaks the order of a device's records (see mqttclient).
	SplitShared = "shared"
)

// Defaults of the external-broker settings.
const (
	DefaultReplicaCertLifetime = 7 * 24 * time.Hour
	DefaultMosquittoCheck      = 5 * time.Second
)

// ExternalBrokerConfig configures the connection to an external broker
// (broker.mode=external).
type ExternalBrokerConfig struct {
	// URL is the broker as the replicas reach it.
	URL string `config:"url" usage:"the external MQTT broker as this replica reaches it, mqtts://HOST:PORT (broker.mode=external)"`
	// CAFile verifies the broker's certificate; default the fleet CA,
	// which koggectl broker-config issues the broker's certificate from.
	CAFile string `config:"ca-file" usage:"PEM file with the CA certificates that verify the external broker (default: the fleet CA)"`
	// Split is how the replicas split the ingest.
	Split string `config:"split" usage:"how replicas split the ingest: partitions (each takes the devices of its partitions; any broker, Mosquitto) or shared ($share subscriptions; EMQX with hash_clientid)"`
	// CertLifetime is the lifetime of the client certificate each replica
	// issues itself from the fleet CA for the broker; it is renewed when a
	// third is left, at a reconnect.
	CertLifetime time.Duration `config:"cert-lifetime" usage:"lifetime of the client certificate each replica issues itself (CN kogge-server:REPLICA) for the external broker"`
	// MosquittoDir is the directory koggectl broker-config mosquitto
	// wrote, when it is on this machine: then the replica that leads the
	// singleton broker-files keeps its crl.pem and acl current and
	// reloads Mosquitto through its pid file.
	MosquittoDir string `config:"mosquitto-dir" usage:"directory of the Mosquitto configuration from koggectl broker-config, if on this machine: its CRL and ACL are kept current and Mosquitto reloaded on revocation"`
	// MosquittoCheck is how often that replica compares the directory
	// with the store's revocations (besides at once on a revocation).
	MosquittoCheck time.Duration `config:"mosquitto-check" usage:"how often the Mosquitto CRL and ACL are compared with the store's revocations (also at once on each revocation)"`
}

// DefaultExternalBrokerConfig returns the defaults of broker.external.
func DefaultExternalBrokerConfig() ExternalBrokerConfig {
	return ExternalBrokerConfig{Split: SplitPartitions, CertLifetime: DefaultReplicaCertLifetime, MosquittoCheck: DefaultMosquittoCheck}
}

// DefaultReplica is the default replica id: the host name in lower case,
// with characters a replica id may not hold replaced by '-'.
func DefaultReplica() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		return "kogge"
	}
	return replicaFrom(host)
}

func replicaFrom(host string) string {
	var b strings.Builder
	for i, c := range strings.ToLower(host) {
		if b.Len() >= 63 {
			break
		}
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
			b.WriteRune(c)
		case i > 0 && (c == '.' || c == '_' || c == '-'):
			b.WriteRune(c)
		default:
			b.WriteByte('x')
		}
	}
	return b.String()
}

// validateCluster checks the broker mode, the external broker and the
// replica id.
func (c Config) validateCluster() []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if err := brokerconfig.ValidateReplica(c.Replica); err != nil {
		add("replica: %v", err)
	}
	switch c.Broker.Mode {
	case BrokerEmbedded:
		return errs
	case BrokerExternal:
	default:
		add("broker.mode %q: want embedded or external", c.Broker.Mode)
		return errs
	}
	x := c.Broker.External
	u, err := url.Parse(x.URL)
	switch {
	case x.URL == "":
		add("broker.external.url is empty: name the external broker, mqtts://HOST:PORT")
	case err != nil || (u.Scheme != "mqtts" && u.Scheme != "tls" && u.Scheme != "ssl") || u.Port() == "" || u.Hostname() == "":
		add("broker.external.url %q: want mqtts://HOST:PORT (the replicas connect with mutual TLS)", x.URL)
	}
	switch x.Split {
	case SplitPartitions, SplitShared:
	default:
		add("broker.external.split %q: want partitions or shared", x.Split)
	}
	if x.CertLifetime < time.Hour {
		add("broker.external.cert-lifetime %v: at least 1h", x.CertLifetime)
	}
	if x.MosquittoCheck < time.Second {
		add("broker.external.mosquitto-check %v: at least 1s", x.MosquittoCheck)
	}
	if x.CAFile != "" {
		if _, err := os.Stat(x.CAFile); err != nil {
			add("broker.external.ca-file: %v", err)
		}
	}
	if x.MosquittoDir != "" {
		if _, err := os.Stat(x.MosquittoDir + "/" + brokerconfig.FileState); err != nil {
			add("broker.external.mosquitto-dir: %v (write it with koggectl broker-config mosquitto)", err)
		}
	}
	return errs
}
