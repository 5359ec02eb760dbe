package sync

import (
	"context"
	"errors"
)

// ErrOffline is returned by a Transport's Publish while it has no connection.
// The engine waits for the next Connected event; nothing is lost, because
// everything unacknowledged is sent again in the next session.
var ErrOffline = errors.New("not connected to the broker")

// Transport carries messages between the device and the broker. The engine
// declares what it needs; agent/mqtt implements it with paho, synctest with
// an in-memory link that tests can cut and heal.
//
// A Transport never promises delivery: the engine counts only the server's
// application-level acks. It must keep the order of publishes on the wire
// (so that records reach the server in sequence order) and report every
// connection as a Connected event followed, when it breaks, by a
// Disconnected event.
type Transport interface {
	// Incoming delivers connection changes and the messages received on the
	// device's subscriptions, in the order they happened. It has exactly
	// one reader.
	Incoming() <-chan Incoming
	// Publish sends payload at QoS 1 in call order. It returns once the
	// message is handed to the connection; a PUBACK proves nothing to the
	// application, so it is not waited for here. Without a connection it
	// returns an error wrapping ErrOffline. It is safe for concurrent use.
	Publish(ctx context.Context, topic string, payload []byte, retained bool) error
}

// IncomingKind says what an Incoming is.
type IncomingKind uint8

const (
	// Connected: a connection is up and subscribed; a new session starts.
	Connected IncomingKind = iota + 1
	// Disconnected: the connection is gone; what was in flight is lost.
	Disconnected
	// Message: a message arrived on Topic.
	Message
)

func (k IncomingKind) String() string {
	switch k {
	case Connected:
		return "connected"
	case Disconnected:
		return "disconnected"
	case Message:
		return "message"
	}
	return "unknown"
}

// Incoming is one thing that happened on a Transport.
type Incoming struct {
	Kind    IncomingKind
	Topic   string // for Message
	Payload []byte // for Message
}
