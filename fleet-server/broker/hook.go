package broker

import (
	"bytes"
	"crypto/tls"
	"log/slog"
	"math/big"
	"slices"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/kogge-fleet/kogge/protocol"
)

// hook is the broker's auth and ACL hook.
type hook struct {
	mqtt.HookBase
	srv         *mqtt.Server
	rev         Revocations
	metrics     *metrics
	devInsecure bool
	log         *slog.Logger
}

func (h *hook) ID() string { return "kogge-auth" }

func (h *hook) Provides(b byte) bool {
	return bytes.Contains([]byte{
		mqtt.OnConnectAuthenticate,
		mqtt.OnACLCheck,
		mqtt.OnSessionEstablished,
		mqtt.OnClientExpired,
	}, []byte{b})
}

// Reasons for refusing a connection, as counted in
// kogge_broker_connects_refused_total.
const (
	refusedTLS           = "tls_handshake"
	refusedNoCertificate = "no_certificate"
	refusedBadIdentity   = "bad_identity"
	refusedRevoked       = "revoked"
	refusedClientID      = "client_id"
	refusedWillTopic     = "will_topic"
	refusedBridge        = "bridge"
)

// bridgeUnit is the subject OU of bridge certificates (registry.BridgeUnit,
// which this package cannot import): they open the bridge API, never an
// MQTT session.
const bridgeUnit = "Kogge bridge"

var refusedReasons = []string{refusedTLS, refusedNoCertificate, refusedBadIdentity, refusedRevoked, refusedClientID, refusedWillTopic, refusedBridge}

// identify returns the device a connection belongs to, or the reason to
// refuse it.
func (h *hook) identify(cl *mqtt.Client, pk packets.Packet) (device, refused string) {
	var serial *big.Int
	switch conn := cl.Net.Conn.(type) {
	case *tls.Conn:
		cs := conn.ConnectionState()
		if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
			return "", refusedNoCertificate
		}
		leaf := cs.VerifiedChains[0][0]
		device, serial = leaf.Subject.CommonName, leaf.SerialNumber
		if slices.Contains(leaf.Subject.OrganizationalUnit, bridgeUnit) {
			return device, refusedBridge
		}
	default:
		if cl.Net.Listener != devListenerID || !h.devInsecure {
			return "", refusedNoCertificate
		}
		device = string(pk.Connect.Username)
	}
	if protocol.ValidateDeviceID(device) != nil {
		return device, refusedBadIdentity
	}
	if h.rev.IsRevoked(device, serial) {
		return device, refusedRevoked
	}
	if cl.ID != device {
		return device, refusedClientID
	}
	if pk.Connect.WillFlag && !protocol.DeviceMayPublish(device, pk.Connect.WillTopic) {
		return device, refusedWillTopic
	}
	return device, ""
}

// OnConnectAuthenticate admits a device (CONNACK 0x05 "not authorised"
// otherwise).
func (h *hook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	device, refused := h.identify(cl, pk)
	if refused == "" {
		return true
	}
	h.metrics.refused.WithLabelValues(refused).Inc()
	h.log.Debug("MQTT connection refused", "reason", refused, "device", device, "client_id", cl.ID, "remote", cl.Net.Remote)
	return false
}

// OnSessionEstablished closes the race between a revocation and a connect
// that was authenticated just before it: the revocation marks the device
// before it looks for the client, so one of the two finds the other.
func (h *hook) OnSessionEstablished(cl *mqtt.Client, pk packets.Packet) {
	var serial *big.Int
	if conn, ok := cl.Net.Conn.(*tls.Conn); ok {
		if chains := conn.ConnectionState().VerifiedChains; len(chains) > 0 && len(chains[0]) > 0 {
			serial = chains[0][0].SerialNumber
		}
	}
	if h.rev.IsRevoked(cl.ID, serial) {
		cl.Stop(errDisconnected)
	}
}

// OnClientExpired drops the subscriptions of an expired session, which
// mochi would keep in its topic index.
func (h *hook) OnClientExpired(cl *mqtt.Client) {
	h.srv.UnsubscribeClient(cl)
}

// OnACLCheck lets a device publish and subscribe only under its own prefix
// (the client id equals the device id, checked at connect).
func (h *hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if write {
		if protocol.DeviceMayPublish(cl.ID, topic) {
			return true
		}
		h.metrics.aclDenied.WithLabelValues("publish").Inc()
		return false
	}
	if protocol.DeviceMaySubscribe(cl.ID, topic) {
		return true
	}
	h.metrics.aclDenied.WithLabelValues("subscribe").Inc()
	return false
}
