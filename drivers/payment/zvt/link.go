package zvt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// FrameTries is how often Link.Send sends a frame before giving up when
// the other side answers NAK or nothing.
const FrameTries = 3

// FrameAckTimeout is how long the other side may take to ACK a frame.
const FrameAckTimeout = time.Second

var (
	// ErrLinkClosed: the line was closed or reading from it failed.
	ErrLinkClosed = errors.New("line closed")
	// ErrNotAcknowledged: the other side did not ACK a frame after
	// FrameTries sends.
	ErrNotAcknowledged = fmt.Errorf("frame not acknowledged after %d tries", FrameTries)
)

// Link speaks the serial transport, the same at both ends of the line: a
// goroutine reads the line, acknowledges good frames (ACK) and rejects
// damaged ones (NAK); Send repeats a frame until it is acknowledged.
type Link struct {
	r      io.Reader
	write  func([]byte) error
	closer io.Closer
	events chan Event
	done   chan struct{}
	once   sync.Once
	wg     sync.WaitGroup
	wmu    sync.Mutex // the reader writes ACK/NAK while Send writes frames
	err    error      // why events was closed
	queued []APDU     // frames that arrived while Send waited for its ACK
}

// NewLink starts a link reading r and writing with write; Close closes c.
func NewLink(r io.Reader, write func([]byte) error, c io.Closer) *Link {
	l := &Link{r: r, write: write, closer: c, events: make(chan Event, 16), done: make(chan struct{})}
	l.wg.Add(1)
	go l.read()
	return l
}

func (l *Link) send(b []byte) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	return l.write(b)
}

func (l *Link) read() {
	defer l.wg.Done()
	defer close(l.events)
	var dec FrameDecoder
	buf := make([]byte, 256)
	for {
		n, err := l.r.Read(buf)
		if err != nil {
			l.err = fmt.Errorf("%w: read: %v", ErrLinkClosed, err)
			return
		}
		for _, c := range buf[:n] {
			ev := dec.Feed(c)
			switch ev.Kind {
			case EventNone:
				continue
			case EventFrame:
				l.send([]byte{ACK})
			case EventBadFrame:
				l.send([]byte{NAK})
				continue
			}
			select {
			case l.events <- ev:
			case <-l.done:
				l.err = ErrLinkClosed
				return
			}
		}
	}
}

// event returns the next event; ctx's error when ctx ends first.
func (l *Link) event(ctx context.Context) (Event, error) {
	select {
	case ev, ok := <-l.events:
		if !ok {
			return Event{}, l.err
		}
		return ev, nil
	case <-ctx.Done():
		return Event{}, ctx.Err()
	}
}

// Send sends a as a frame and waits for its ACK, sending it again after a
// NAK or silence, FrameTries times in all. Errors: ctx's, ErrLinkClosed,
// ErrNotAcknowledged, or the write's.
func (l *Link) Send(ctx context.Context, a APDU) error {
	b, err := a.Marshal()
	if err != nil {
		return err
	}
	frame := Frame(b)
	for range FrameTries {
		if err := l.send(frame); err != nil {
			return fmt.Errorf("%w: write: %v", ErrLinkClosed, err)
		}
		actx, cancel := context.WithTimeout(ctx, FrameAckTimeout)
		acked, err := l.awaitAck(actx)
		cancel()
		switch {
		case acked:
			return nil
		case err != nil && (ctx.Err() != nil || errors.Is(err, ErrLinkClosed)):
			return err
		}
		// NAK or no answer: send again.
	}
	return ErrNotAcknowledged
}

func (l *Link) awaitAck(ctx context.Context) (bool, error) {
	for {
		ev, err := l.event(ctx)
		if err != nil {
			return false, err
		}
		switch ev.Kind {
		case EventAck:
			return true, nil
		case EventNak:
			return false, nil
		case EventFrame:
			if a, _, err := Parse(ev.Data); err == nil {
				l.queued = append(l.queued, a)
			}
		}
	}
}

// Recv returns the next APDU the other side sent, skipping stray ACKs and
// NAKs and frames that hold no APDU.
func (l *Link) Recv(ctx context.Context) (APDU, error) {
	if len(l.queued) > 0 {
		a := l.queued[0]
		l.queued = l.queued[1:]
		return a, nil
	}
	for {
		ev, err := l.event(ctx)
		if err != nil {
			return APDU{}, err
		}
		if ev.Kind != EventFrame {
			continue
		}
		if a, _, err := Parse(ev.Data); err == nil {
			return a, nil
		}
	}
}

// Close closes the line and waits for the reader.
func (l *Link) Close() error {
	var err error
	l.once.Do(func() {
		close(l.done)
		err = l.closer.Close()
		l.wg.Wait()
	})
	return err
}
