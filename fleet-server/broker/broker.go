// Package broker is the fleet server's embedded MQTT broker: mochi-mqtt with
// a TLS listener that requires a client certificate from the fleet CA, an
// auth hook that maps the certificate to its device, an ACL hook that keeps
// every device under its own topic prefix, and an inline client through
// which server components publish and subscribe.
//
// # Devices
//
// A device connects over TLS 1.2+ with its certificate (CN = device id) and
// must use its device id as MQTT client id. The connection is refused when
// the device or the certificate is revoked (Revocations.IsRevoked, asked on
// every connect), when the client id differs, or when the last will goes to
// a topic the device may not publish to. A connected device may publish only
// to kogge/v1/d/{id}/up/... and kogge/v1/d/{id}/state, and subscribe only to
// its own down/# (or topics under it) and twin, never with other wildcards
// (protocol.DeviceMayPublish, protocol.DeviceMaySubscribe). A refused QoS 0
// publish is dropped, a refused QoS 1 publish closes the connection (MQTT
// 3.1.1 has no negative PUBACK), a refused filter gets SUBACK 0x80.
// DisconnectDevice ends a device's connection at once; the registry calls it
// on revocation.
//
// # Development listener
//
// With Options.DevInsecure and Options.DevAddress set, a plain TCP listener
// accepts devices without TLS: the MQTT username is taken as the device id
// (no password; client id = username), revocation and ACLs apply as over
// TLS. Anyone who can reach the port can act as any device: never switch it
// on outside development. The broker logs a warning when it starts it.
//
// # Server components
//
// Subscribe and Publish use mochi's inline client: no network, no ACL.
// Handlers run on the goroutine of the connection that published, so a slow
// handler stalls that device and everything waiting on it: hand the message
// to a queue and return (the ingest does). Do not modify the payload.
//
// # Metrics
//
// With Options.Registerer: kogge_broker_clients_connected,
// kogge_broker_connects_refused_total{reason},
// kogge_broker_acl_denied_total{action}, kogge_broker_revocation_disconnects_total.
package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kogge-fleet/kogge/protocol"
)

// Revocations tells whether a device or one of its certificates is revoked
// (fleet-server/registry implements it). It is asked on every connect and
// must answer from memory.
type Revocations interface {
	IsRevoked(device string, serial *big.Int) bool
}

// Options are the optional settings of New.
type Options struct {
	// Address is the TLS listener's address; default ":8883".
	Address string
	// DevAddress is the plain-TCP development listener's address; it is
	// opened only when DevInsecure is set too.
	DevAddress string
	// DevInsecure switches the development listener on (see the package
	// documentation).
	DevInsecure bool
	// MaxClients bounds the connected clients; default 50,000.
	MaxClients int64
	// MaxInflight bounds the QoS 1 messages in flight per client, each way;
	// default 1024.
	MaxInflight uint16
	// MaxPendingWrites bounds the packets queued for one client; more are
	// dropped (the application's acks and retries recover). Default 256.
	// mochi makes the queue at connect, 8 bytes a packet: 2 KiB for every
	// idle device. (128 saved 1 KiB of about 44 per device, too little to
	// risk dropping bursts to a device: acks, record states, twin.)
	MaxPendingWrites int32
	// MaxPacketSize bounds an MQTT packet; default protocol.MaxMessageSize +
	// 64 KiB, at least protocol.MaxMessageSize + 1 KiB.
	MaxPacketSize uint32
	// ReadBufferSize is the read buffer per connection; default 1 KiB.
	// Over TLS it only batches copies out of crypto/tls's own buffer (a
	// larger packet body bypasses it), so a small one costs no system
	// calls; on the plain development listener it bounds each read.
	ReadBufferSize int
	// ConnectTimeout bounds the TLS handshake and the CONNECT packet;
	// default 10 s.
	ConnectTimeout time.Duration
	// SessionExpiry is how long the session of a disconnected client that
	// asked for a persistent session is kept; default 7 days.
	SessionExpiry time.Duration
	// Logger receives the broker's warnings; mochi's own messages are
	// passed on from level warn up, at most 20 per 10 s.
	Logger *slog.Logger
	// Registerer receives the metrics; nil means no metrics.
	Registerer prometheus.Registerer
}

func (o *Options) setDefaults() {
	if o.Address == "" {
		o.Address = ":8883"
	}
	if o.MaxClients == 0 {
		o.MaxClients = 50_000
	}
	if o.MaxInflight == 0 {
		o.MaxInflight = 1024
	}
	if o.MaxPendingWrites == 0 {
		o.MaxPendingWrites = 256
	}
	if o.MaxPacketSize == 0 {
		o.MaxPacketSize = protocol.MaxMessageSize + 64<<10
	}
	if o.ReadBufferSize == 0 {
		o.ReadBufferSize = 1 << 10
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = 10 * time.Second
	}
	if o.SessionExpiry == 0 {
		o.SessionExpiry = 7 * 24 * time.Hour
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Validate checks the options (after defaults are filled in).
func (o *Options) Validate() error {
	switch {
	case o.MaxPacketSize < protocol.MaxMessageSize+1<<10:
		return fmt.Errorf("max packet size %d is below the largest message (%d) plus 1 KiB", o.MaxPacketSize, protocol.MaxMessageSize)
	case o.MaxClients < 1 || o.MaxPendingWrites < 1:
		return errors.New("max clients and max pending writes must be positive")
	case o.ReadBufferSize < 256:
		return fmt.Errorf("read buffer of %d bytes is too small", o.ReadBufferSize)
	case o.ConnectTimeout <= 0 || o.SessionExpiry <= 0:
		return errors.New("connect timeout and session expiry must be positive")
	case o.DevInsecure && o.DevAddress == "":
		return errors.New("the insecure development listener needs an address (DevAddress)")
	}
	return nil
}

// Broker is the embedded MQTT broker.
type Broker struct {
	opts    Options
	log     *slog.Logger
	tls     *tls.Config
	srv     *mqtt.Server
	hook    *hook
	metrics *metrics

	subID atomic.Int64

	mu      sync.Mutex
	started bool
	closed  bool
	tlsLn   *listener
	devLn   *listener
}

const (
	tlsListenerID = "tls"
	devListenerID = "dev-insecure"
)

// New makes a broker. tlsConfig must hold the server certificate
// (Certificates or GetCertificate) and the fleet CA (ClientCAs); the broker
// requires and verifies client certificates with TLS 1.2 or newer whatever
// tlsConfig says. rev is asked on every connect.
func New(tlsConfig *tls.Config, rev Revocations, opts Options) (*Broker, error) {
	opts.setDefaults()
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("broker options: %w", err)
	}
	if tlsConfig == nil || tlsConfig.ClientCAs == nil || (len(tlsConfig.Certificates) == 0 && tlsConfig.GetCertificate == nil) {
		return nil, errors.New("broker: the TLS configuration needs a server certificate and the fleet CA as ClientCAs")
	}
	if rev == nil {
		return nil, errors.New("broker: no revocation source")
	}
	cfg := tlsConfig.Clone()
	cfg.ClientAuth = tls.RequireAndVerifyClientCert
	if cfg.MinVersion < tls.VersionTLS12 {
		cfg.MinVersion = tls.VersionTLS12
	}

	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumClients = opts.MaxClients
	caps.MaximumInflight = opts.MaxInflight
	caps.ReceiveMaximum = opts.MaxInflight
	caps.MaximumClientWritesPending = opts.MaxPendingWrites
	caps.MaximumPacketSize = opts.MaxPacketSize
	caps.MaximumSessionExpiryInterval = uint32(opts.SessionExpiry / time.Second)
	caps.MaximumQos = 1
	caps.SharedSubAvailable = 0

	b := &Broker{
		opts:    opts,
		log:     opts.Logger,
		tls:     cfg,
		metrics: newMetrics(opts.Registerer),
	}
	b.srv = mqtt.New(&mqtt.Options{
		Capabilities:            caps,
		ClientNetReadBufferSize: opts.ReadBufferSize,
		Logger:                  slog.New(newLimitedHandler(opts.Logger.Handler(), slog.LevelWarn, 20, 10*time.Second)),
		SysTopicResendInterval:  30,
		InlineClient:            true,
	})
	b.metrics.watch(b.srv)
	b.hook = &hook{srv: b.srv, rev: rev, metrics: b.metrics, devInsecure: opts.DevInsecure, log: opts.Logger}
	if err := b.srv.AddHook(b.hook, nil); err != nil {
		return nil, fmt.Errorf("broker: add hook: %w", err)
	}
	return b, nil
}

// Start opens the listeners and starts serving. It returns once the
// listeners are bound; ctx bounds only the binding.
func (b *Broker) Start(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.started || b.closed {
		return errors.New("broker: started twice or after Close")
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", b.opts.Address)
	if err != nil {
		return fmt.Errorf("broker: listen on %s: %w", b.opts.Address, err)
	}
	b.tlsLn = newListener(tlsListenerID, ln, b.tls, b.opts.ConnectTimeout, b.metrics, b.log, b.disconnectClients)
	if err := b.srv.AddListener(b.tlsLn); err != nil {
		ln.Close()
		return fmt.Errorf("broker: %w", err)
	}
	if b.opts.DevInsecure {
		dl, err := lc.Listen(ctx, "tcp", b.opts.DevAddress)
		if err != nil {
			b.srv.Close()
			return fmt.Errorf("broker: listen on %s: %w", b.opts.DevAddress, err)
		}
		b.devLn = newListener(devListenerID, dl, nil, b.opts.ConnectTimeout, b.metrics, b.log, b.disconnectClients)
		if err := b.srv.AddListener(b.devLn); err != nil {
			dl.Close()
			b.srv.Close()
			return fmt.Errorf("broker: %w", err)
		}
		b.log.Warn("INSECURE development MQTT listener is open: any client that reaches it can act as any device "+
			"(username = device id, no password, no TLS); never use it in production",
			"address", dl.Addr().String())
	}
	if err := b.srv.Serve(); err != nil {
		b.srv.Close()
		return fmt.Errorf("broker: serve: %w", err)
	}
	b.started = true
	b.log.Info("MQTT broker listening", "address", ln.Addr().String(), "tls", true)
	return nil
}

// Close disconnects every client, closes the listeners and waits for the
// connections' goroutines.
func (b *Broker) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.started || b.closed {
		b.closed = true
		return nil
	}
	b.closed = true
	return b.srv.Close() // closes the listeners, which wait for their connections
}

// disconnectClients disconnects the clients of one listener, as mochi's
// Server.closeListenerClients does, but reads the client list under a
// single read lock (see listener.Close).
func (b *Broker) disconnectClients(listenerID string) {
	for _, cl := range b.srv.Clients.GetAll() {
		if cl.Net.Listener == listenerID && !cl.Closed() {
			_ = b.srv.DisconnectClient(cl, packets.ErrServerShuttingDown)
		}
	}
}

// Addr returns the TLS listener's bound address (nil before Start).
func (b *Broker) Addr() net.Addr {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.tlsLn == nil {
		return nil
	}
	return b.tlsLn.ln.Addr()
}

// DevAddr returns the development listener's bound address (nil when it is
// off).
func (b *Broker) DevAddr() net.Addr {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.devLn == nil {
		return nil
	}
	return b.devLn.ln.Addr()
}

// Subscribe delivers every message whose topic matches filter to handler,
// retained ones at once. It may be called before Start. The handler runs on
// the publishing connection's goroutine and must return quickly; it must
// not modify payload.
func (b *Broker) Subscribe(filter string, handler func(topic string, payload []byte)) error {
	if handler == nil {
		return errors.New("broker: subscribe with a nil handler")
	}
	id := int(b.subID.Add(1))
	err := b.srv.Subscribe(filter, id, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		handler(pk.TopicName, pk.Payload)
	})
	if err != nil {
		return fmt.Errorf("broker: subscribe to %q: %w", filter, err)
	}
	return nil
}

// Publish sends payload to topic with QoS 1 (subscribers get at most the
// QoS they asked for); retained keeps it for later subscribers, and an empty
// retained payload clears the retained message.
func (b *Broker) Publish(topic string, payload []byte, retained bool) error {
	if topic == "" || !mqtt.IsValidFilter(topic, true) {
		return fmt.Errorf("broker: publish: invalid topic %q", topic)
	}
	if err := b.srv.Publish(topic, payload, retained, 1); err != nil {
		return fmt.Errorf("broker: publish to %q: %w", topic, err)
	}
	return nil
}

// DisconnectDevice ends the connection of a device at once and drops its
// session; it reports whether the device was connected. The registry calls
// it when it revokes the device.
func (b *Broker) DisconnectDevice(device string) bool {
	cl, ok := b.srv.Clients.Get(device)
	if !ok || cl.Net.Inline {
		return false
	}
	connected := !cl.Closed()
	if connected {
		if cl.Properties.ProtocolVersion == 5 {
			_ = b.srv.DisconnectClient(cl, packets.ErrNotAuthorized)
		}
		cl.Stop(errDisconnected)
		b.metrics.revocationDisconnects.Inc()
		b.log.Info("disconnected device", "device", device)
	}
	b.srv.UnsubscribeClient(cl)
	cl.ClearInflights()
	if cur, ok := b.srv.Clients.Get(device); ok && cur == cl {
		b.srv.Clients.Delete(device)
	}
	return connected
}

var errDisconnected = errors.New("disconnected by the server: device revoked")

// Connected returns the number of connected clients.
func (b *Broker) Connected() int {
	return int(atomic.LoadInt64(&b.srv.Info.ClientsConnected))
}
