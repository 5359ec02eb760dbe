package payment

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/kogge-fleet/kogge/drivers/payment/zvt"
)

// ptLink carries APDUs between the terminal and the cash register.
type ptLink interface {
	send(ctx context.Context, a zvt.APDU) error
	recv(ctx context.Context) (zvt.APDU, error)
	close() error
}

// deadliner is a connection whose writes can be bounded (net.Conn, a
// pollable *os.File).
type deadliner interface {
	io.ReadWriteCloser
	SetWriteDeadline(time.Time) error
}

var errClosed = errors.New("line closed")

// streamLink is ZVT over TCP/IP: bare APDUs. A goroutine reads them.
type streamLink struct {
	once sync.Once
	c    deadliner
	in   chan zvt.APDU
	done chan struct{}
	wg   sync.WaitGroup
	err  error
}

func newStreamLink(c deadliner) *streamLink {
	l := &streamLink{c: c, in: make(chan zvt.APDU), done: make(chan struct{})}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		defer close(l.in)
		for {
			a, err := zvt.Read(c)
			if err != nil {
				l.err = fmt.Errorf("%w: %v", errClosed, err)
				return
			}
			select {
			case l.in <- a:
			case <-l.done:
				l.err = errClosed
				return
			}
		}
	}()
	return l
}

func (l *streamLink) send(ctx context.Context, a zvt.APDU) error {
	b, err := a.Marshal()
	if err != nil {
		return err
	}
	l.c.SetWriteDeadline(time.Now().Add(2 * time.Second))
	_, err = l.c.Write(b)
	return err
}

func (l *streamLink) recv(ctx context.Context) (zvt.APDU, error) {
	select {
	case a, ok := <-l.in:
		if !ok {
			return zvt.APDU{}, l.err
		}
		return a, nil
	case <-ctx.Done():
		return zvt.APDU{}, ctx.Err()
	}
}

func (l *streamLink) close() error {
	var err error
	l.once.Do(func() {
		close(l.done)
		err = l.c.Close()
		l.wg.Wait()
	})
	return err
}

// frameLink is the serial transport: DLE STX frames with CRC, each
// acknowledged with ACK or rejected with NAK.
type frameLink struct {
	once   sync.Once
	c      deadliner
	events chan zvt.Event
	done   chan struct{}
	wg     sync.WaitGroup
	wmu    sync.Mutex
	err    error
	queued []zvt.APDU
}

func newFrameLink(c deadliner) *frameLink {
	l := &frameLink{c: c, events: make(chan zvt.Event, 16), done: make(chan struct{})}
	l.wg.Add(1)
	go l.read()
	return l
}

func (l *frameLink) write(b []byte) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	l.c.SetWriteDeadline(time.Now().Add(2 * time.Second))
	_, err := l.c.Write(b)
	return err
}

func (l *frameLink) read() {
	defer l.wg.Done()
	defer close(l.events)
	var dec zvt.FrameDecoder
	buf := make([]byte, 256)
	for {
		n, err := l.c.Read(buf)
		if err != nil {
			l.err = fmt.Errorf("%w: %v", errClosed, err)
			return
		}
		for _, c := range buf[:n] {
			ev := dec.Feed(c)
			switch ev.Kind {
			case zvt.EventNone:
				continue
			case zvt.EventFrame:
				l.write([]byte{zvt.ACK})
			case zvt.EventBadFrame:
				l.write([]byte{zvt.NAK})
				continue
			}
			select {
			case l.events <- ev:
			case <-l.done:
				l.err = errClosed
				return
			}
		}
	}
}

func (l *frameLink) event(ctx context.Context) (zvt.Event, error) {
	select {
	case ev, ok := <-l.events:
		if !ok {
			return zvt.Event{}, l.err
		}
		return ev, nil
	case <-ctx.Done():
		return zvt.Event{}, ctx.Err()
	}
}

func (l *frameLink) send(ctx context.Context, a zvt.APDU) error {
	b, err := a.Marshal()
	if err != nil {
		return err
	}
	f := zvt.Frame(b)
	for range 3 {
		if err := l.write(f); err != nil {
			return err
		}
		actx, cancel := context.WithTimeout(ctx, time.Second)
		acked, err := l.awaitAck(actx)
		cancel()
		if acked {
			return nil
		}
		if err != nil && (ctx.Err() != nil || errors.Is(err, errClosed)) {
			return err
		}
	}
	return errors.New("frame not acknowledged after 3 tries")
}

func (l *frameLink) awaitAck(ctx context.Context) (bool, error) {
	for {
		ev, err := l.event(ctx)
		if err != nil {
			return false, err
		}
		switch ev.Kind {
		case zvt.EventAck:
			return true, nil
		case zvt.EventNak:
			return false, nil
		case zvt.EventFrame:
			if a, _, err := zvt.Parse(ev.Data); err == nil {
				l.queued = append(l.queued, a)
			}
		}
	}
}

func (l *frameLink) recv(ctx context.Context) (zvt.APDU, error) {
	if len(l.queued) > 0 {
		a := l.queued[0]
		l.queued = l.queued[1:]
		return a, nil
	}
	for {
		ev, err := l.event(ctx)
		if err != nil {
			return zvt.APDU{}, err
		}
		if ev.Kind != zvt.EventFrame {
			continue
		}
		if a, _, err := zvt.Parse(ev.Data); err == nil {
			return a, nil
		}
	}
}

func (l *frameLink) close() error {
	var err error
	l.once.Do(func() {
		close(l.done)
		err = l.c.Close()
		l.wg.Wait()
	})
	return err
}
