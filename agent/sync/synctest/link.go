// Package synctest provides in-memory stand-ins for the sync engine's
// dependencies: a Link between a device and a server that tests can cut and
// heal, and an Outbox that keeps records in memory.
package synctest

import (
	"context"
	"fmt"
	gosync "sync"

	"github.com/kogge-fleet/kogge/agent/sync"
)

// Link is an in-memory connection between one device and one server, like
// a broker with two clients. Everything one end publishes reaches the other
// end in order. Retained messages are kept per topic and delivered again on
// every Heal. A new Link is cut; Heal connects it.
type Link struct {
	mu       gosync.Mutex
	up       bool
	closed   bool
	filter   func(fromDevice bool, topic string, payload []byte) bool
	retained map[string]retained
	device   *End
	server   *End
	done     chan struct{}
	wg       gosync.WaitGroup
}

type retained struct {
	from    *End
	payload []byte
}

// End is one side of a Link. It implements sync.Transport.
type End struct {
	link      *Link
	fromDev   bool
	out       chan sync.Incoming
	queue     []sync.Incoming
	wake      chan struct{}
	published uint64
}

var _ sync.Transport = (*End)(nil)

// NewLink returns a cut link. Call Close when done.
func NewLink() *Link {
	l := &Link{retained: map[string]retained{}, done: make(chan struct{})}
	l.device = &End{link: l, fromDev: true, out: make(chan sync.Incoming), wake: make(chan struct{}, 1)}
	l.server = &End{link: l, out: make(chan sync.Incoming), wake: make(chan struct{}, 1)}
	for _, e := range []*End{l.device, l.server} {
		l.wg.Go(func() { e.pump(l.done) })
	}
	return l
}

// Device returns the device's end.
func (l *Link) Device() *End { return l.device }

// Server returns the server's end.
func (l *Link) Server() *End { return l.server }

// Close stops the link's goroutines and waits for them.
func (l *Link) Close() {
	l.mu.Lock()
	if !l.closed {
		l.closed = true
		close(l.done)
	}
	l.mu.Unlock()
	l.wg.Wait()
}

// Cut breaks the connection: messages not yet delivered are lost in both
// directions, both ends get Disconnected, and Publish fails until Heal.
// Cutting a cut link does nothing.
func (l *Link) Cut() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.up {
		return
	}
	l.up = false
	for _, e := range []*End{l.device, l.server} {
		e.queue = append(e.queue[:0], sync.Incoming{Kind: sync.Disconnected})
		signal(e.wake)
	}
}

// Heal connects the link: both ends get Connected, then each gets the
// retained messages the other end published. Healing a connected link does
// nothing.
func (l *Link) Heal() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.up {
		return
	}
	l.up = true
	for _, e := range []*End{l.device, l.server} {
		e.queue = append(e.queue, sync.Incoming{Kind: sync.Connected})
	}
	for topic, r := range l.retained {
		peer := l.peer(r.from)
		peer.queue = append(peer.queue, sync.Incoming{Kind: sync.Message, Topic: topic, Payload: r.payload})
	}
	signal(l.device.wake)
	signal(l.server.wake)
}

// Up reports whether the link is connected.
func (l *Link) Up() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.up
}

// SetFilter installs a function that decides for every publish whether it
// is delivered (true) or lost (false); nil delivers everything.
func (l *Link) SetFilter(f func(fromDevice bool, topic string, payload []byte) bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.filter = f
}

// Published returns how many messages each end has published while the
// link was up.
func (l *Link) Published() (device, server uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.device.published, l.server.published
}

func (l *Link) peer(e *End) *End {
	if e == l.device {
		return l.server
	}
	return l.device
}

// Incoming implements sync.Transport.
func (e *End) Incoming() <-chan sync.Incoming { return e.out }

// Publish implements sync.Transport: it queues the message for the other
// end, or fails with sync.ErrOffline while the link is cut.
func (e *End) Publish(ctx context.Context, topic string, payload []byte, retain bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l := e.link
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.up || l.closed {
		return fmt.Errorf("publish on %s: %w", topic, sync.ErrOffline)
	}
	e.published++
	payload = append([]byte(nil), payload...)
	if retain {
		if len(payload) == 0 {
			delete(l.retained, topic)
		} else {
			l.retained[topic] = retained{from: e, payload: payload}
		}
	}
	if l.filter != nil && !l.filter(e.fromDev, topic, payload) {
		return nil
	}
	peer := l.peer(e)
	peer.queue = append(peer.queue, sync.Incoming{Kind: sync.Message, Topic: topic, Payload: payload})
	signal(peer.wake)
	return nil
}

// Run waits for ctx to end, so that an End can stand in for a transport
// that has a lifecycle.
func (e *End) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}

// pump hands queued items to the reader one at a time.
func (e *End) pump(done <-chan struct{}) {
	l := e.link
	for {
		l.mu.Lock()
		var next sync.Incoming
		ok := len(e.queue) > 0
		if ok {
			next = e.queue[0]
			e.queue = e.queue[1:]
		}
		l.mu.Unlock()
		if !ok {
			select {
			case <-e.wake:
				continue
			case <-done:
				return
			}
		}
		select {
		case e.out <- next:
		case <-done:
			return
		}
	}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
