// Package mqttclient connects the fleet server to an external MQTT broker
// (Mosquitto, EMQX) with the paho client over mutual TLS, as one replica of
// several. It offers what the server's components need from a broker
// (ingest.Broker, commands, twin and delivery publish through it), the
// same calls the embedded broker (fleet-server/broker) serves in-process.
//
// # Session
//
// The client keeps a clean session under its own client id: nothing is
// queued for it while it is away, and it subscribes again after every
// reconnect. Losing messages on the way is no loss for Kogge: devices send
// everything again that the server has not acknowledged in the
// application, and statuses, commands and twins are sent again when a
// device's session starts (DESIGN.md: no part relies on the broker for
// delivery).
//
// # Splitting the ingest among replicas
//
// With Options.Share set, Subscribe turns every filter into a shared
// subscription ($share/GROUP/FILTER): the broker gives each message to one
// replica of the group. That suits EMQX with the hash_clientid strategy,
// which gives all messages of one device to the same replica. Mosquitto 2.0
// serves $share to MQTT 3.1.1 clients too, but deals the messages out one
// by one in turn, so consecutive records of one device reach different
// replicas out of order; there each replica subscribes to everything and
// Options.Accept keeps only the devices of the partitions it holds
// (fleet-server/leader). docs/deploy.md compares the two.
//
// # Publishing
//
// Publish sends with QoS 1. A retained message (a device's twin) waits for
// the broker's PUBACK, up to Options.PublishTimeout, because the twin
// service marks a document published after it. Other messages (acks,
// commands, statuses) are handed to the client and their outcome is
// checked in the background (kogge_mqtt_publish_failures_total), so that
// the ingest does not wait for a round trip per device; a lost one is sent
// again by the application. When the connection goes down, Publish waits
// for it until Options.ConnectWait after that moment, and then fails at
// once until it is back, so that a long outage does not hold up every
// publish.
//
// # Handlers
//
// Handlers run one after another on the client's goroutine, in the order
// the messages arrive; they must return quickly and must not publish (hand
// the message to a queue, as the ingest does). They must not modify the
// payload.
//
// # Metrics
//
// With Options.Registerer: kogge_mqtt_connected, kogge_mqtt_connects_total,
// kogge_mqtt_connection_losses_total, kogge_mqtt_received_total,
// kogge_mqtt_skipped_total (messages of devices another replica takes),
// kogge_mqtt_publish_failures_total.
package mqttclient

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"
)

// Options configure a Client.
type Options struct {
	// URL is the broker, mqtts://HOST:PORT (tls:// and ssl:// work too).
	URL string
	// TLS holds the client certificate (Certificates or
	// GetClientCertificate) and the CA to verify the broker (RootCAs).
	TLS *tls.Config
	// ClientID is the MQTT client id; with Mosquitto's
	// use_username_as_clientid the broker replaces it by the certificate's
	// common name anyway.
	ClientID string
	// Share, when set, makes every subscription a shared one in this
	// group.
	Share string
	// Accept, when set, drops the messages whose topic it refuses before
	// any handler sees them.
	Accept func(topic string) bool
	// ProbeTopic, when set, is a topic of this client alone: after every
	// connect the client sends itself a message there and counts the
	// connection as up only when it arrives. A broker that accepts the
	// subscriptions but lets nothing through (Mosquitto with a replica
	// missing from its ACL) is caught so, instead of taking no messages
	// in silence.
	ProbeTopic string
	// Keepalive is the MQTT keepalive; default 30 s.
	Keepalive time.Duration
	// ConnectTimeout bounds one connection attempt; default 10 s.
	ConnectTimeout time.Duration
	// MaxBackoff caps the wait between reconnection attempts; default 10 s.
	MaxBackoff time.Duration
	// PublishTimeout bounds a retained publish and a subscription;
	// default 10 s.
	PublishTimeout time.Duration
	// ConnectWait is how long after the connection went down Publish
	// still waits for it; default 5 s.
	ConnectWait time.Duration
	// Logger receives connection events and failures.
	Logger *slog.Logger
	// Registerer receives the metrics; nil registers none.
	Registerer prometheus.Registerer
}

func (o *Options) defaults() {
	if o.Keepalive == 0 {
		o.Keepalive = 30 * time.Second
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = 10 * time.Second
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = 10 * time.Second
	}
	if o.PublishTimeout == 0 {
		o.PublishTimeout = 10 * time.Second
	}
	if o.ConnectWait == 0 {
		o.ConnectWait = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Validate checks the options after defaults are filled in.
func (o *Options) Validate() error {
	var errs []error
	u, err := url.Parse(o.URL)
	switch {
	case err != nil:
		errs = append(errs, fmt.Errorf("broker URL %q: %v", o.URL, err))
	case u.Scheme != "mqtts" && u.Scheme != "tls" && u.Scheme != "ssl":
		errs = append(errs, fmt.Errorf("broker URL %q: want mqtts://HOST:PORT (the server connects with mutual TLS)", o.URL))
	case u.Hostname() == "" || u.Port() == "":
		errs = append(errs, fmt.Errorf("broker URL %q: want mqtts://HOST:PORT with the port", o.URL))
	}
	if o.TLS == nil || (len(o.TLS.Certificates) == 0 && o.TLS.GetClientCertificate == nil) {
		errs = append(errs, errors.New("no client certificate: the broker requires one from the fleet CA"))
	}
	if o.ClientID == "" {
		errs = append(errs, errors.New("no client id"))
	}
	if strings.ContainsAny(o.Share, "/+#") {
		errs = append(errs, fmt.Errorf("share group %q must not contain '/', '+' or '#'", o.Share))
	}
	if o.Keepalive < time.Second || o.ConnectTimeout <= 0 || o.MaxBackoff <= 0 || o.PublishTimeout <= 0 || o.ConnectWait < 0 {
		errs = append(errs, errors.New("keepalive must be at least 1s and the timeouts positive"))
	}
	return errors.Join(errs...)
}

// Client is a connection of the fleet server to an external broker.
type Client struct {
	opts Options
	log  *slog.Logger
	m    *metrics
	cli  paho.Client
	addr brokerAddr

	mu      sync.Mutex
	subs    []subscription
	started bool
	closed  bool

	connected atomic.Bool
	// downSince is when the connection went down (Unix ns): Publish waits
	// for it only until ConnectWait after that, then fails at once.
	downSince atomic.Int64
	// subErr is the text of the last failed subscription, "" after a
	// good connect.
	subErr atomic.Value
	// up is closed while connected and replaced when the connection is
	// lost, for Publish to wait on.
	upMu sync.Mutex
	up   chan struct{}

	pending chan pendingPublish
	stop    chan struct{}
	wg      sync.WaitGroup
}

type subscription struct {
	filter  string
	handler func(topic string, payload []byte)
}

type pendingPublish struct {
	topic string
	tok   paho.Token
}

// brokerAddr is the broker's address as a net.Addr.
type brokerAddr string

func (a brokerAddr) Network() string { return "tcp" }
func (a brokerAddr) String() string  { return string(a) }

// New returns a client; Start connects it.
func New(opts Options) (*Client, error) {
	opts.defaults()
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("external broker: %w", err)
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	u, _ := url.Parse(opts.URL)
	c := &Client{
		opts: opts, log: opts.Logger, m: m, addr: brokerAddr(u.Host),
		up: make(chan struct{}), pending: make(chan pendingPublish, 4096), stop: make(chan struct{}),
	}
	c.downSince.Store(time.Now().UnixNano())
	tlsCfg := opts.TLS.Clone()
	if tlsCfg.MinVersion < tls.VersionTLS12 {
		tlsCfg.MinVersion = tls.VersionTLS12
	}
	if tlsCfg.ServerName == "" {
		tlsCfg.ServerName = u.Hostname()
	}
	po := paho.NewClientOptions().
		AddBroker("tls://" + u.Host).
		SetClientID(opts.ClientID).
		SetCleanSession(true).
		SetTLSConfig(tlsCfg).
		SetKeepAlive(opts.Keepalive).
		SetPingTimeout(opts.ConnectTimeout).
		SetConnectTimeout(opts.ConnectTimeout).
		SetWriteTimeout(opts.PublishTimeout).
		SetAutoReconnect(true).
		SetMaxReconnectInterval(opts.MaxBackoff).
		SetConnectRetry(false).
		SetOrderMatters(true).
		SetOnConnectHandler(c.onConnect).
		SetConnectionLostHandler(c.onLost).
		SetReconnectingHandler(func(paho.Client, *paho.ClientOptions) {
			c.log.Debug("reconnecting to the MQTT broker", "broker", c.addr)
		})
	c.cli = paho.NewClient(po)
	return c, nil
}

// Subscribe calls handler for every message on a topic that matches filter
// (shared in Options.Share's group, when set). It may be called before
// Start; the subscriptions are made again after every reconnect.
func (c *Client) Subscribe(filter string, handler func(topic string, payload []byte)) error {
	if handler == nil {
		return errors.New("external broker: subscribe with a nil handler")
	}
	if filter == "" || strings.HasPrefix(filter, "$share/") {
		return fmt.Errorf("external broker: subscribe to %q: give a plain filter", filter)
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return errors.New("external broker: subscribe after Close")
	}
	s := subscription{filter: filter, handler: handler}
	c.subs = append(c.subs, s)
	c.mu.Unlock()
	if c.connected.Load() {
		return c.subscribe(s)
	}
	return nil
}

// wire returns the filter as sent to the broker.
func (c *Client) wire(filter string) string {
	if c.opts.Share == "" {
		return filter
	}
	return "$share/" + c.opts.Share + "/" + filter
}

func (c *Client) subscribe(s subscription) error {
	f := c.wire(s.filter)
	tok := c.cli.Subscribe(f, 1, func(_ paho.Client, msg paho.Message) {
		c.m.received.Inc()
		topic := msg.Topic()
		if c.opts.Accept != nil && !c.opts.Accept(topic) {
			c.m.skipped.Inc()
			return
		}
		s.handler(topic, msg.Payload())
	})
	if !tok.WaitTimeout(c.opts.PublishTimeout) {
		return fmt.Errorf("external broker: subscribe to %s: no answer within %v", f, c.opts.PublishTimeout)
	}
	if err := tok.Error(); err != nil {
		return fmt.Errorf("external broker: subscribe to %s: %w", f, err)
	}
	if st, ok := tok.(*paho.SubscribeToken); ok {
		for filter, code := range st.Result() {
			if code > 2 {
				return fmt.Errorf("external broker: the broker refused the subscription to %s (code %#x): "+
					"is this replica's identity allowed in the broker's ACL? regenerate it with koggectl broker-config naming every replica", filter, code)
			}
		}
	}
	return nil
}

// onConnect subscribes again (the session is clean). A subscription the
// broker refuses is a configuration error: it is tried a few times, then
// the client stays unready (Connected false, /readyz fails) and says why.
func (c *Client) onConnect(paho.Client) {
	c.mu.Lock()
	subs := append([]subscription(nil), c.subs...)
	c.mu.Unlock()
	var err error
	for attempt := range 3 {
		if attempt > 0 {
			select {
			case <-c.stop:
				return
			case <-time.After(time.Second):
			}
		}
		err = nil
		for _, s := range subs {
			if err = c.subscribe(s); err != nil {
				break
			}
		}
		if err == nil {
			break
		}
	}
	if err == nil && c.opts.ProbeTopic != "" {
		err = c.probe()
	}
	if err != nil {
		c.subErr.Store(err.Error())
		c.log.Error("connected to the MQTT broker, but subscribing failed: this replica takes no messages", "err", err)
		return
	}
	c.subErr.Store("")
	c.m.connects.Inc()
	c.m.connected.Set(1)
	c.connected.Store(true)
	c.upMu.Lock()
	select {
	case <-c.up:
	default:
		close(c.up)
	}
	c.upMu.Unlock()
	c.log.Info("connected to the MQTT broker", "broker", c.addr, "client_id", c.opts.ClientID, "subscriptions", len(subs))
}

// probe sends a message to ProbeTopic and waits for it.
func (c *Client) probe() error {
	nonce := strconv.FormatInt(time.Now().UnixNano(), 36)
	got := make(chan struct{}, 1)
	tok := c.cli.Subscribe(c.opts.ProbeTopic, 1, func(_ paho.Client, msg paho.Message) {
		if string(msg.Payload()) == nonce {
			select {
			case got <- struct{}{}:
			default:
			}
		}
	})
	if !tok.WaitTimeout(c.opts.PublishTimeout) || tok.Error() != nil {
		return fmt.Errorf("subscribe to the probe topic %s: %v", c.opts.ProbeTopic, tok.Error())
	}
	defer c.cli.Unsubscribe(c.opts.ProbeTopic)
	ptok := c.cli.Publish(c.opts.ProbeTopic, 1, false, []byte(nonce))
	if !ptok.WaitTimeout(c.opts.PublishTimeout) || ptok.Error() != nil {
		return fmt.Errorf("publish to the probe topic %s: %v", c.opts.ProbeTopic, ptok.Error())
	}
	select {
	case <-got:
		return nil
	case <-time.After(c.opts.PublishTimeout):
		return fmt.Errorf("the broker accepted this replica (%s) but passes it no messages: "+
			"is it in the broker's ACL? regenerate the ACL with koggectl broker-config naming every replica", c.opts.ClientID)
	case <-c.stop:
		return errors.New("closed")
	}
}

func (c *Client) onLost(_ paho.Client, err error) {
	c.markDown()
	c.m.losses.Inc()
	c.log.Warn("connection to the MQTT broker lost; reconnecting", "broker", c.addr, "err", err)
}

func (c *Client) markDown() {
	if c.connected.Swap(false) {
		c.downSince.Store(time.Now().UnixNano())
	}
	c.m.connected.Set(0)
	c.upMu.Lock()
	select {
	case <-c.up:
		c.up = make(chan struct{})
	default:
	}
	c.upMu.Unlock()
}

// Start connects to the broker and makes the subscriptions, trying again
// until ctx ends; then it returns the last failure. Once connected the
// client reconnects by itself.
func (c *Client) Start(ctx context.Context) error {
	c.mu.Lock()
	if c.started || c.closed {
		c.mu.Unlock()
		return errors.New("external broker: started twice or after Close")
	}
	c.started = true
	c.mu.Unlock()
	c.wg.Go(c.watch)
	backoff := 100 * time.Millisecond
	var last error
	for {
		c.subErr.Store("")
		tok := c.cli.Connect()
		var err error
		if !tok.WaitTimeout(c.opts.ConnectTimeout + time.Second) {
			err = fmt.Errorf("no answer within %v", c.opts.ConnectTimeout)
		} else {
			err = tok.Error()
		}
		if err == nil {
			// onConnect runs on a goroutine of its own: wait for the
			// subscriptions.
			if err = c.waitUp(ctx); err == nil {
				return nil
			}
			c.cli.Disconnect(0)
			if msg, _ := c.subErr.Load().(string); msg != "" {
				err = errors.New(msg)
			}
		}
		if ctx.Err() == nil || last == nil {
			last = err
		}
		select {
		case <-ctx.Done():
			c.cli.Disconnect(0)
			return fmt.Errorf("external broker: connect to %s as %s: %w", c.addr, c.opts.ClientID, last)
		case <-time.After(backoff):
		}
		c.log.Warn("connecting to the MQTT broker failed; retrying", "broker", c.addr, "err", err)
		backoff = min(2*backoff, c.opts.MaxBackoff)
	}
}

// waitUp waits until the connection is up with its subscriptions, or the
// subscriptions failed, or ctx ends.
func (c *Client) waitUp(ctx context.Context) error {
	c.upMu.Lock()
	up := c.up
	c.upMu.Unlock()
	t := time.NewTimer(3*c.opts.PublishTimeout + 3*time.Second)
	defer t.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-up:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return errors.New("subscriptions not made in time")
		case <-tick.C:
			if msg, _ := c.subErr.Load().(string); msg != "" {
				return errors.New(msg)
			}
		}
	}
}

// Connected reports whether the client is connected with its
// subscriptions.
func (c *Client) Connected() bool { return c.connected.Load() }

// Publish sends payload to topic with QoS 1 (see the package
// documentation for when it waits for the broker).
func (c *Client) Publish(topic string, payload []byte, retained bool) error {
	if topic == "" || strings.ContainsAny(topic, "+#") {
		return fmt.Errorf("external broker: publish: invalid topic %q", topic)
	}
	if !c.connected.Load() {
		c.upMu.Lock()
		up := c.up
		c.upMu.Unlock()
		// Wait out a short interruption, but not every publish of a long
		// one.
		wait := time.Until(time.Unix(0, c.downSince.Load()).Add(c.opts.ConnectWait))
		t := time.NewTimer(max(wait, 0))
		defer t.Stop()
		select {
		case <-up:
		case <-c.stop:
			return errors.New("external broker: publish after Close")
		case <-t.C:
			c.m.failures.Inc()
			return fmt.Errorf("external broker: publish to %s: not connected to %s", topic, c.addr)
		}
	}
	tok := c.cli.Publish(topic, 1, retained, payload)
	if retained {
		if !tok.WaitTimeout(c.opts.PublishTimeout) {
			c.m.failures.Inc()
			return fmt.Errorf("external broker: publish to %s: no PUBACK within %v", topic, c.opts.PublishTimeout)
		}
		if err := tok.Error(); err != nil {
			c.m.failures.Inc()
			return fmt.Errorf("external broker: publish to %s: %w", topic, err)
		}
		return nil
	}
	select {
	case c.pending <- pendingPublish{topic: topic, tok: tok}:
	default:
		// The watcher is behind: check this one here.
		c.check(pendingPublish{topic: topic, tok: tok})
	}
	return nil
}

// watch checks the outcome of the publishes handed to it.
func (c *Client) watch() {
	for {
		select {
		case p := <-c.pending:
			c.check(p)
		case <-c.stop:
			for {
				select {
				case p := <-c.pending:
					c.check(p)
				default:
					return
				}
			}
		}
	}
}

func (c *Client) check(p pendingPublish) {
	var err error
	if !p.tok.WaitTimeout(c.opts.PublishTimeout) {
		err = fmt.Errorf("no PUBACK within %v", c.opts.PublishTimeout)
	} else {
		err = p.tok.Error()
	}
	if err != nil {
		c.m.failures.Inc()
		c.log.Debug("publish failed; the application sends it again", "topic", p.topic, "err", err)
	}
}

// Close disconnects and waits for the client's goroutines.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	started := c.started
	c.mu.Unlock()
	if started {
		c.cli.Disconnect(250)
	}
	c.markDown()
	close(c.stop)
	c.wg.Wait()
	return nil
}

// Addr is the broker's address.
func (c *Client) Addr() net.Addr { return c.addr }

// DevAddr is nil: an external broker has no development listener of ours.
func (c *Client) DevAddr() net.Addr { return nil }

// DisconnectDevice cannot end a device's connection at an external broker;
// revocation takes effect there through its CRL and ACL (Mosquitto, see
// fleet-server/brokerconfig) or its authentication endpoint (EMQX). It
// returns false.
func (c *Client) DisconnectDevice(string) bool { return false }

type metrics struct {
	connected                   prometheus.Gauge
	connects, losses            prometheus.Counter
	received, skipped, failures prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		connected: prometheus.NewGauge(prometheus.GaugeOpts{Name: "kogge_mqtt_connected",
			Help: "1 while the server is connected to the external MQTT broker with its subscriptions."}),
		connects: prometheus.NewCounter(prometheus.CounterOpts{Name: "kogge_mqtt_connects_total",
			Help: "Connections made to the external MQTT broker."}),
		losses: prometheus.NewCounter(prometheus.CounterOpts{Name: "kogge_mqtt_connection_losses_total",
			Help: "Connections to the external MQTT broker lost."}),
		received: prometheus.NewCounter(prometheus.CounterOpts{Name: "kogge_mqtt_received_total",
			Help: "Messages received from the external MQTT broker."}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{Name: "kogge_mqtt_skipped_total",
			Help: "Messages dropped because another replica takes the device's partition."}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Name: "kogge_mqtt_publish_failures_total",
			Help: "Publishes the external MQTT broker did not acknowledge."}),
	}
	if reg != nil {
		for _, col := range []prometheus.Collector{m.connected, m.connects, m.losses, m.received, m.skipped, m.failures} {
			if err := reg.Register(col); err != nil {
				return nil, fmt.Errorf("mqtt client metrics: %w", err)
			}
		}
	}
	return m, nil
}
