// Package mqtt is the device's MQTT transport: a sync.Transport over
// paho.mqtt.golang (MQTT 3.1.1) with a client certificate (mTLS), a last will
// that sets the device's retained presence to offline, and reconnection
// with backoff.
//
// # Sessions
//
// Every connection is a clean session (CleanSession=true) with a fresh paho
// client: the broker keeps nothing for the device between connections and
// paho resends nothing after a reconnect. Kogge's protocol does not rely on
// the broker's session: the sync engine starts every connection with a
// SyncHello, everything unacknowledged is sent again, and acks or commands
// the server published while the device was away are sent again by the
// server (acks follow the retransmissions; the server re-sends pending
// commands when the device says hello). A persistent session would only
// add a second, unordered source of retransmissions.
//
// Paho's own auto-reconnect is off: Run reconnects itself, so that every
// Connected event is followed by exactly one Disconnected event, in order.
package mqtt

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	gosync "sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/agent/sync"
	"github.com/kogge-fleet/kogge/protocol"
)

// Config says where to connect and as whom.
type Config struct {
	// Broker is the broker's URL: ssl://host:8883 in production (mTLS),
	// tcp://host:1883 only for tests and local development.
	Broker string
	// Device is the device id; it is the MQTT client id and names the
	// device's topics.
	Device string
	// TLS is the client's TLS configuration: the fleet CA in RootCAs and
	// the device's certificate in Certificates. Required for ssl://.
	TLS *tls.Config
	// Software is the software version announced in the presence.
	Software string
}

// Options tune the transport. The zero value of each field means its
// default.
type Options struct {
	// KeepAlive is the MQTT keepalive (30 s).
	KeepAlive time.Duration
	// ConnectTimeout bounds connecting and subscribing (10 s).
	ConnectTimeout time.Duration
	// PublishTimeout bounds handing a message to the connection and
	// waiting for its PUBACK (10 s). A PUBACK that does not come in time
	// means the connection is stuck: the transport drops it and
	// reconnects.
	PublishTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait between connection attempts
	// (1 s and 1 min); it doubles with every failure, with jitter.
	MinBackoff, MaxBackoff time.Duration
	// Logger receives the transport's log lines (slog.Default()).
	Logger *slog.Logger
	// Now is the clock (time.Now).
	Now func() time.Time
}

// Validate checks the options after defaults are filled in.
func (o Options) Validate() error {
	var errs []error
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"keepalive", o.KeepAlive}, {"connect timeout", o.ConnectTimeout}, {"publish timeout", o.PublishTimeout},
		{"min backoff", o.MinBackoff}, {"max backoff", o.MaxBackoff}} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("%s %v: must be positive", d.name, d.v))
		}
	}
	if o.KeepAlive > 0 && o.KeepAlive < time.Second {
		errs = append(errs, fmt.Errorf("keepalive %v: MQTT counts it in whole seconds", o.KeepAlive))
	}
	if o.MaxBackoff < o.MinBackoff {
		errs = append(errs, fmt.Errorf("max backoff %v is below min backoff %v", o.MaxBackoff, o.MinBackoff))
	}
	return errors.Join(errs...)
}

func (o Options) withDefaults() Options {
	if o.KeepAlive == 0 {
		o.KeepAlive = 30 * time.Second
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = 10 * time.Second
	}
	if o.PublishTimeout == 0 {
		o.PublishTimeout = 10 * time.Second
	}
	if o.MinBackoff == 0 {
		o.MinBackoff = time.Second
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = max(time.Minute, o.MinBackoff)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Transport is the device's MQTT connection. Run it; the sync engine reads
// Incoming and calls Publish.
type Transport struct {
	cfg   Config
	opts  Options
	log   *slog.Logger
	state string // the presence topic

	in      chan sync.Incoming
	tokens  chan pending
	stuck   chan struct{}
	stopped chan struct{}

	mu     gosync.Mutex
	client paho.Client // nil while not connected
	gen    uint64      // counts connections
	stats  Stats
}

// pending is a publish waiting for its PUBACK on connection gen.
type pending struct {
	tok paho.Token
	gen uint64
}

// Stats are the transport's counters.
type Stats struct {
	Connected       bool
	Connects        uint64 // connections established
	ConnectFailures uint64
	Disconnects     uint64
	Published       uint64
	PublishTimeouts uint64 // PUBACKs that did not come in time
	Received        uint64
}

var _ sync.Transport = (*Transport)(nil)

// New checks the configuration and returns a transport; Run connects it.
func New(cfg Config, opts Options) (*Transport, error) {
	opts = opts.withDefaults()
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("mqtt options: %w", err)
	}
	if err := protocol.ValidateDeviceID(cfg.Device); err != nil {
		return nil, fmt.Errorf("mqtt config: %w", err)
	}
	u, err := url.Parse(cfg.Broker)
	if err != nil {
		return nil, fmt.Errorf("mqtt config: broker %q: %w", cfg.Broker, err)
	}
	switch u.Scheme {
	case "ssl", "tls", "mqtts":
		if cfg.TLS == nil || (len(cfg.TLS.Certificates) == 0 && cfg.TLS.GetClientCertificate == nil) {
			return nil, fmt.Errorf("mqtt config: broker %s needs the device's client certificate (TLS.Certificates)", cfg.Broker)
		}
	case "tcp", "mqtt":
	default:
		return nil, fmt.Errorf("mqtt config: broker %q: use ssl://host:port (or tcp:// for tests)", cfg.Broker)
	}
	state, _ := protocol.TopicFor(cfg.Device, protocol.TypePresence)
	return &Transport{
		cfg:     cfg,
		opts:    opts,
		log:     opts.Logger.With("device", cfg.Device, "broker", cfg.Broker),
		state:   state,
		in:      make(chan sync.Incoming, 256),
		tokens:  make(chan pending, 1024),
		stuck:   make(chan struct{}, 1),
		stopped: make(chan struct{}),
	}, nil
}

// Incoming implements sync.Transport.
func (t *Transport) Incoming() <-chan sync.Incoming { return t.in }

// Stats returns the transport's counters.
func (t *Transport) Stats() Stats {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.stats
	s.Connected = t.client != nil
	return s
}

// Publish implements sync.Transport: it hands the message to the
// connection at QoS 1, in call order, and leaves waiting for the PUBACK to
// a watcher that drops the connection if it does not come in time.
func (t *Transport) Publish(ctx context.Context, topic string, payload []byte, retained bool) error {
	t.mu.Lock()
	c, gen := t.client, t.gen
	t.mu.Unlock()
	if c == nil {
		return fmt.Errorf("publish on %s: %w", topic, sync.ErrOffline)
	}
	tok := c.Publish(topic, 1, retained, payload)
	select {
	case <-tok.Done():
		if err := tok.Error(); err != nil {
			if errors.Is(err, paho.ErrNotConnected) {
				return fmt.Errorf("publish on %s: %w", topic, sync.ErrOffline)
			}
			return fmt.Errorf("publish on %s: %w", topic, err)
		}
	default:
	}
	select {
	case t.tokens <- pending{tok, gen}:
	case <-ctx.Done():
		return fmt.Errorf("publish on %s: %w", topic, ctx.Err())
	case <-t.stopped:
		return fmt.Errorf("publish on %s: %w", topic, sync.ErrOffline)
	}
	t.mu.Lock()
	t.stats.Published++
	t.mu.Unlock()
	return nil
}

// Run connects, keeps the connection up and reconnects with backoff, until
// ctx ends; then it sets the presence to offline and disconnects cleanly.
func (t *Transport) Run(ctx context.Context) error {
	defer close(t.stopped)
	var wg gosync.WaitGroup
	wctx, stopWatch := context.WithCancel(ctx)
	wg.Go(func() { t.watchTokens(wctx) })
	defer func() {
		stopWatch()
		wg.Wait()
	}()

	failures := 0
	for {
		lost := make(chan struct{}, 1)
		c, session, err := t.connect(ctx, lost)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			failures++
			t.mu.Lock()
			t.stats.ConnectFailures++
			t.mu.Unlock()
			if failures == 1 || failures%10 == 0 {
				t.log.Warn("cannot connect to the broker; captures stay on the device until it works",
					"attempts", failures, "err", err)
			}
			if !t.pause(ctx, failures) {
				return nil
			}
			continue
		}
		if failures > 0 {
			t.log.Info("connected to the broker", "after_attempts", failures+1)
		}
		failures = 0
		t.mu.Lock()
		t.client = c
		t.gen++
		t.stats.Connects++
		t.mu.Unlock()
		// Drop a stuck signal from the previous connection.
		select {
		case <-t.stuck:
		default:
		}
		if !t.emit(ctx, sync.Incoming{Kind: sync.Connected}) {
			t.close(c, session)
			return nil
		}

		var why string
		select {
		case <-ctx.Done():
			t.close(c, session)
			return nil
		case <-lost:
			why = "connection lost"
		case <-t.stuck:
			why = "no PUBACK within the publish timeout"
			c.Disconnect(0)
		}
		t.mu.Lock()
		t.client = nil
		t.stats.Disconnects++
		t.mu.Unlock()
		t.log.Info("disconnected from the broker; reconnecting", "reason", why)
		if !t.emit(ctx, sync.Incoming{Kind: sync.Disconnected}) {
			return nil
		}
		if !t.pause(ctx, 0) {
			return nil
		}
	}
}

// connect makes a fresh client, connects it, subscribes to the device's
// downlink and twin and announces the device online.
func (t *Transport) connect(ctx context.Context, lost chan struct{}) (paho.Client, uuid.UUID, error) {
	session := uuid.Must(uuid.NewV7())
	will, err := t.presence(protocol.Offline, session)
	if err != nil {
		return nil, session, err
	}
	o := paho.NewClientOptions().
		AddBroker(t.cfg.Broker).
		SetClientID(t.cfg.Device).
		SetTLSConfig(t.cfg.TLS).
		SetProtocolVersion(4).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetResumeSubs(false).
		SetOrderMatters(true).
		SetKeepAlive(t.opts.KeepAlive).
		SetPingTimeout(t.opts.ConnectTimeout).
		SetConnectTimeout(t.opts.ConnectTimeout).
		SetWriteTimeout(t.opts.PublishTimeout).
		SetBinaryWill(t.state, will, 1, true).
		SetConnectionLostHandler(func(paho.Client, error) {
			select {
			case lost <- struct{}{}:
			default:
			}
		}).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) {
			msg := sync.Incoming{Kind: sync.Message, Topic: m.Topic(), Payload: m.Payload()}
			// Not waiting for the reader once Run is ending: paho's
			// Disconnect waits for this handler.
			select {
			case t.in <- msg:
				t.mu.Lock()
				t.stats.Received++
				t.mu.Unlock()
			case <-ctx.Done():
			}
		})
	c := paho.NewClient(o)
	if err := t.wait(ctx, c.Connect(), t.opts.ConnectTimeout); err != nil {
		return nil, session, fmt.Errorf("connect: %w", err)
	}
	filters := map[string]byte{}
	for _, f := range protocol.DeviceFilters(t.cfg.Device) {
		filters[f] = 1
	}
	if err := t.wait(ctx, c.SubscribeMultiple(filters, nil), t.opts.ConnectTimeout); err != nil {
		c.Disconnect(0)
		return nil, session, fmt.Errorf("subscribe: %w", err)
	}
	online, err := t.presence(protocol.Online, session)
	if err != nil {
		c.Disconnect(0)
		return nil, session, err
	}
	if err := t.wait(ctx, c.Publish(t.state, 1, true, online), t.opts.PublishTimeout); err != nil {
		c.Disconnect(0)
		return nil, session, fmt.Errorf("announce presence: %w", err)
	}
	return c, session, nil
}

// close sets the presence to offline and disconnects cleanly (the broker
// does not send the last will on a clean disconnect).
func (t *Transport) close(c paho.Client, session uuid.UUID) {
	t.mu.Lock()
	t.client = nil
	t.mu.Unlock()
	if off, err := t.presence(protocol.Offline, session); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), t.opts.PublishTimeout)
		if err := t.wait(ctx, c.Publish(t.state, 1, true, off), t.opts.PublishTimeout); err != nil {
			t.log.Warn("cannot announce the device offline; the broker's last will does it", "err", err)
		}
		cancel()
	}
	c.Disconnect(250)
}

func (t *Transport) presence(state protocol.PresenceState, session uuid.UUID) ([]byte, error) {
	now := t.opts.Now()
	b, err := protocol.Encode(protocol.NewEnvelope(t.cfg.Device, 0, now, &protocol.Presence{
		State: state, Session: session, Software: t.cfg.Software, At: protocol.At(now),
	}))
	if err != nil {
		return nil, fmt.Errorf("encode presence: %w", err)
	}
	return b, nil
}

// emit hands an event to the reader; false if ctx ended first.
func (t *Transport) emit(ctx context.Context, ev sync.Incoming) bool {
	select {
	case t.in <- ev:
		return true
	case <-ctx.Done():
		return false
	}
}

// pause waits before the next connection attempt; false if ctx ended.
func (t *Transport) pause(ctx context.Context, failures int) bool {
	d := t.opts.MinBackoff
	for range min(failures, 30) {
		d *= 2
		if d >= t.opts.MaxBackoff {
			d = t.opts.MaxBackoff
			break
		}
	}
	d = time.Duration(float64(d) * (0.5 + rand.Float64()/2))
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// watchTokens waits for the PUBACK of every publish in turn and reports a
// stuck connection.
func (t *Transport) watchTokens(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case p := <-t.tokens:
			if !p.tok.WaitTimeout(t.opts.PublishTimeout) {
				t.mu.Lock()
				current := p.gen == t.gen && t.client != nil
				t.stats.PublishTimeouts++
				t.mu.Unlock()
				if current {
					select {
					case t.stuck <- struct{}{}:
					default:
					}
				}
				continue
			}
			if err := p.tok.Error(); err != nil && !errors.Is(err, paho.ErrNotConnected) {
				t.log.Debug("publish failed", "err", err)
			}
		}
	}
}

// wait waits for a paho token, never longer than timeout or ctx allows.
func (t *Transport) wait(ctx context.Context, tok paho.Token, timeout time.Duration) error {
	if d, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(d))
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-tok.Done():
		return tok.Error()
	case <-timer.C:
		return fmt.Errorf("no answer from the broker within %v", timeout)
	case <-ctx.Done():
		return ctx.Err()
	}
}
