// Package brokerconfig generates the configuration of an external MQTT
// broker for a Kogge fleet (Mosquitto, EMQX), keeps its revocation state
// current, and answers EMQX's HTTP authentication and authorization
// requests. `koggectl broker-config` and kogge-server in external-broker
// mode (broker.mode=external) use it; docs/deploy.md explains the
// deployment.
//
// # Identities
//
// Every party holds a certificate of the fleet CA, which lives in the
// store (the registry creates it): devices (common name = device id, their
// MQTT user name and client id), the broker (ServerAuth, unit BrokerUnit),
// and each kogge-server replica (common name ServerPrefix + replica id,
// unit ServerUnit), which issues its own short-lived client certificate at
// start (CA.IssueReplica). Bridge certificates (common name bridge.OFFICE)
// never open an MQTT session.
//
// # Mosquitto
//
// WriteMosquitto writes, into one directory: mosquitto.conf (a TLS
// listener that requires a client certificate of the fleet CA, takes the
// certificate's common name as user name and as client id, so that no
// device can take over another's session; a CRL; an ACL file), ca.pem,
// server.pem and server.key (issued now), crl.pem, acl, and
// kogge-broker.json (the parameters, for Update). The ACL lets a device
// write only kogge/v1/d/USER/up/# and its state topic and read only its
// own down/# and twin (the embedded broker's rules, protocol.DeviceMayPublish
// and DeviceMaySubscribe); lets each listed replica read every uplink and
// write every downlink; and denies everything to revoked devices and to
// bridge identities.
//
// Revocation: Mosquitto checks the CRL only when a connection is made, and
// a reload does not drop connections already open, so the ACL also denies
// every topic to a revoked device: after a reload its open connection can
// neither publish nor receive. Update rewrites crl.pem and acl when the
// store's revocations changed (and signs the CRL again before half of its
// validity has passed, because Mosquitto refuses every certificate once its
// CRL has expired); Reload sends SIGHUP to the broker through its pid file.
//
// # EMQX
//
// WriteEMQX writes the certificates and an emqx-kogge.hocon to include in
// EMQX 5's configuration: the TLS listener with peer verification, the
// certificate's common name as user name and client id, the hash_clientid
// shared-subscription strategy (all messages of one device reach the same
// replica, in order), and HTTP authentication and authorization against
// kogge-server's /broker/v1/emqx/ endpoints, which EMQXHandler serves.
package brokerconfig
