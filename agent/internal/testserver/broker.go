package testserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/kogge-fleet/kogge/agent/sync"
	"github.com/kogge-fleet/kogge/protocol"
)

// Broker is an embedded mochi broker on a free loopback port that lets
// every client do everything (the real ACL belongs to the fleet server).
type Broker struct {
	Server *mqtt.Server
	// URL is the address for clients: tcp://127.0.0.1:port, or ssl://…
	// with TLS.
	URL string
}

// BrokerOptions configure StartBroker.
type BrokerOptions struct {
	// TLS, if set, makes the listener speak TLS (set ClientAuth for mTLS).
	TLS *tls.Config
	// Logger receives the broker's log lines; nil discards them.
	Logger *slog.Logger
}

// StartBroker starts an embedded broker with the inline client enabled.
func StartBroker(opts BrokerOptions) (*Broker, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	srv := mqtt.New(&mqtt.Options{InlineClient: true, Logger: opts.Logger})
	if err := srv.AddHook(new(allowAll), nil); err != nil {
		return nil, fmt.Errorf("broker: allow-all hook: %w", err)
	}
	l := listeners.NewTCP(listeners.Config{ID: "tcp", Address: "127.0.0.1:0", TLSConfig: opts.TLS})
	if err := srv.AddListener(l); err != nil {
		return nil, fmt.Errorf("broker: listen: %w", err)
	}
	if err := srv.Serve(); err != nil {
		return nil, fmt.Errorf("broker: serve: %w", err)
	}
	scheme := "tcp://"
	if opts.TLS != nil {
		scheme = "ssl://"
	}
	return &Broker{Server: srv, URL: scheme + l.Address()}, nil
}

// allowAll lets every client connect and use every topic. (mochi's own
// auth.AllowHook would pull in its YAML ledger.)
type allowAll struct{ mqtt.HookBase }

func (*allowAll) ID() string { return "allow-all" }

func (*allowAll) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}

func (*allowAll) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }

func (*allowAll) OnACLCheck(*mqtt.Client, string, bool) bool { return true }

// Close stops the broker.
func (b *Broker) Close() error { return b.Server.Close() }

// Inline is a sync.Transport for the server side over the broker's inline
// client: it subscribes to every device's uplink and presence and publishes
// into the broker directly (as the real server does in embedded mode).
type Inline struct {
	srv  *mqtt.Server
	id   int
	in   chan sync.Incoming
	done chan struct{}
}

var _ sync.Transport = (*Inline)(nil)

// NewInline subscribes to the uplink of every device. subID must be unique
// among the broker's inline subscriptions. Call Close when done.
func NewInline(srv *mqtt.Server, subID int) (*Inline, error) {
	c := &Inline{srv: srv, id: subID, in: make(chan sync.Incoming, 4096), done: make(chan struct{})}
	c.in <- sync.Incoming{Kind: sync.Connected}
	handler := func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		msg := sync.Incoming{Kind: sync.Message, Topic: pk.TopicName, Payload: append([]byte(nil), pk.Payload...)}
		select {
		case c.in <- msg:
		case <-c.done:
		}
	}
	for _, f := range []string{protocol.UpFilter, protocol.StateFilter} {
		if err := srv.Subscribe(f, subID, handler); err != nil {
			close(c.done)
			return nil, fmt.Errorf("inline subscribe %s: %w", f, err)
		}
	}
	return c, nil
}

// Incoming implements sync.Transport.
func (c *Inline) Incoming() <-chan sync.Incoming { return c.in }

// Publish implements sync.Transport.
func (c *Inline) Publish(ctx context.Context, topic string, payload []byte, retained bool) error {
	select {
	case <-c.done:
		return fmt.Errorf("inline publish: %w", sync.ErrOffline)
	default:
	}
	return c.srv.Publish(topic, payload, retained, 1)
}

// Close unsubscribes.
func (c *Inline) Close() {
	close(c.done)
	_ = c.srv.Unsubscribe(protocol.UpFilter, c.id)
	_ = c.srv.Unsubscribe(protocol.StateFilter, c.id)
}

// Client is a sync.Transport for the server side over a network MQTT
// client, for brokers without an inline client (Mosquitto).
type Client struct {
	c    paho.Client
	in   chan sync.Incoming
	done chan struct{}
}

var _ sync.Transport = (*Client)(nil)

// Dial connects to broker as clientID and subscribes to every device's
// uplink and presence. Call Close when done.
func Dial(ctx context.Context, broker, clientID string) (*Client, error) {
	c := &Client{in: make(chan sync.Incoming, 4096), done: make(chan struct{})}
	o := paho.NewClientOptions().AddBroker(broker).SetClientID(clientID).
		SetCleanSession(true).SetAutoReconnect(false).SetOrderMatters(true).
		SetConnectTimeout(5 * time.Second).SetWriteTimeout(5 * time.Second)
	o.SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) {
		msg := sync.Incoming{Kind: sync.Message, Topic: m.Topic(), Payload: append([]byte(nil), m.Payload()...)}
		select {
		case c.in <- msg:
		case <-c.done:
		}
	})
	c.c = paho.NewClient(o)
	if err := wait(ctx, c.c.Connect()); err != nil {
		return nil, fmt.Errorf("dial %s: %w", broker, err)
	}
	c.in <- sync.Incoming{Kind: sync.Connected}
	filters := map[string]byte{protocol.UpFilter: 1, protocol.StateFilter: 1}
	if err := wait(ctx, c.c.SubscribeMultiple(filters, nil)); err != nil {
		c.Close()
		return nil, fmt.Errorf("subscribe at %s: %w", broker, err)
	}
	return c, nil
}

// Incoming implements sync.Transport.
func (c *Client) Incoming() <-chan sync.Incoming { return c.in }

// Publish implements sync.Transport; it waits for the broker's PUBACK.
func (c *Client) Publish(ctx context.Context, topic string, payload []byte, retained bool) error {
	return wait(ctx, c.c.Publish(topic, 1, retained, payload))
}

// Close disconnects.
func (c *Client) Close() {
	close(c.done)
	c.c.Disconnect(100)
}

func wait(ctx context.Context, t paho.Token) error {
	timeout := 10 * time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(d))
	}
	if !t.WaitTimeout(timeout) {
		return errors.New("timed out waiting for the broker")
	}
	return t.Error()
}
