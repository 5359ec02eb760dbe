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

// newFrameLink is the serial transport: DLE STX frames with CRC, each
// acknowledged with ACK or rejected with NAK, through zvt.Link.
func newFrameLink(c deadliner) ptLink {
	write := func(b []byte) error {
		c.SetWriteDeadline(time.Now().Add(2 * time.Second))
		_, err := c.Write(b)
		return err
	}
	return frameLink{zvt.NewLink(c, write, c)}
}

type frameLink struct{ l *zvt.Link }

func (f frameLink) send(ctx context.Context, a zvt.APDU) error { return f.l.Send(ctx, a) }
func (f frameLink) recv(ctx context.Context) (zvt.APDU, error) { return f.l.Recv(ctx) }
func (f frameLink) close() error                               { return f.l.Close() }
