package payment

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"go.bug.st/serial"

	"github.com/kogge-fleet/kogge/drivers"
	"github.com/kogge-fleet/kogge/drivers/payment/zvt"
)

// NewTCP returns a client for a terminal on the network (ZVT over TCP/IP).
// addr is host:port; without a port, 20007 is used.
func NewTCP(addr string, opts Options) (*Client, error) {
	if addr == "" {
		return nil, errors.New("payment: no address given")
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(strings.Trim(addr, "[]"), "20007")
	}
	dial := func(ctx context.Context) (link, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		return newTCPLink(c), nil
	}
	return newClient("tcp "+addr, dial, opts)
}

// tcpLink reads APDUs in a goroutine of its own, so that a receive can be
// abandoned without cutting an APDU in half.
type tcpLink struct {
	c    net.Conn
	in   chan zvt.APDU
	done chan struct{}
	wg   sync.WaitGroup
	err  error // why in was closed; read after in is closed
}

func newTCPLink(c net.Conn) *tcpLink {
	l := &tcpLink{c: c, in: make(chan zvt.APDU), done: make(chan struct{})}
	l.wg.Add(1)
	go l.read()
	return l
}

func (l *tcpLink) read() {
	defer l.wg.Done()
	defer close(l.in)
	for {
		a, err := zvt.Read(l.c)
		if err != nil {
			l.err = errors.Join(drivers.ErrDisconnected, fmt.Errorf("read: %w", err))
			return
		}
		select {
		case l.in <- a:
		case <-l.done:
			l.err = errors.Join(drivers.ErrDisconnected, errors.New("link closed"))
			return
		}
	}
}

func (l *tcpLink) send(ctx context.Context, a zvt.APDU) error {
	b, err := a.Marshal()
	if err != nil {
		return err
	}
	dl, _ := ctx.Deadline()
	l.c.SetWriteDeadline(dl)
	stop := context.AfterFunc(ctx, func() { l.c.SetWriteDeadline(time.Now()) })
	defer stop()
	if _, err := l.c.Write(b); err != nil {
		if ctx.Err() != nil {
			return errors.Join(drivers.ErrTimeout, err)
		}
		return errors.Join(drivers.ErrDisconnected, err)
	}
	return nil
}

func (l *tcpLink) recv(ctx context.Context) (zvt.APDU, error) {
	select {
	case a, ok := <-l.in:
		if !ok {
			return zvt.APDU{}, l.err
		}
		return a, nil
	case <-ctx.Done():
		return zvt.APDU{}, errors.Join(drivers.ErrTimeout, ctx.Err())
	}
}

func (l *tcpLink) close() error {
	close(l.done)
	err := l.c.Close()
	l.wg.Wait()
	return err
}

// NewSerial returns a client for a terminal on a serial line (ZVT serial
// transport: DLE STX frames with CRC, ACK/NAK; 8N1 at Options.Baud).
func NewSerial(path string, opts Options) (*Client, error) {
	if path == "" {
		return nil, errors.New("payment: no serial port given")
	}
	baud := opts.Baud
	if baud == 0 {
		baud = 9600
	}
	dial := func(ctx context.Context) (link, error) {
		p, err := serial.Open(path, &serial.Mode{BaudRate: baud})
		if err != nil {
			return nil, err
		}
		if err := p.SetReadTimeout(50 * time.Millisecond); err != nil {
			p.Close()
			return nil, err
		}
		return newSerialLink(p), nil
	}
	return newClient("serial "+path, dial, opts)
}

// serialLink speaks the serial transport through zvt.Link and states its
// errors in the drivers' terms.
type serialLink struct{ l *zvt.Link }

func newSerialLink(p serial.Port) *serialLink {
	write := func(b []byte) error { _, err := p.Write(b); return err }
	return &serialLink{l: zvt.NewLink(p, write, p)}
}

func (s *serialLink) send(ctx context.Context, a zvt.APDU) error {
	return linkErr(s.l.Send(ctx, a))
}

func (s *serialLink) recv(ctx context.Context) (zvt.APDU, error) {
	a, err := s.l.Recv(ctx)
	return a, linkErr(err)
}

func (s *serialLink) close() error { return s.l.Close() }

// linkErr maps the link's errors to drivers.ErrDisconnected and
// drivers.ErrTimeout.
func linkErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, zvt.ErrLinkClosed):
		return errors.Join(drivers.ErrDisconnected, err)
	case errors.Is(err, zvt.ErrNotAcknowledged), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return errors.Join(drivers.ErrTimeout, err)
	}
	return err
}
