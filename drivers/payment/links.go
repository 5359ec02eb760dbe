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

// frameTries is how often a frame is sent before giving up when the
// terminal answers NAK or nothing.
const frameTries = 3

// frameAckTimeout is how long the other side may take to ACK a frame.
const frameAckTimeout = time.Second

// serialLink speaks the serial transport. A goroutine reads the line,
// acknowledges good frames (ACK) and rejects damaged ones (NAK).
type serialLink struct {
	p      serial.Port
	events chan zvt.Event
	done   chan struct{}
	wg     sync.WaitGroup
	wmu    sync.Mutex // the reader writes ACK/NAK while send writes frames
	err    error      // why events was closed
	queued []zvt.APDU // frames that arrived while send waited for its ACK
}

func newSerialLink(p serial.Port) *serialLink {
	l := &serialLink{p: p, events: make(chan zvt.Event, 16), done: make(chan struct{})}
	l.wg.Add(1)
	go l.read()
	return l
}

func (l *serialLink) write(b []byte) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	_, err := l.p.Write(b)
	return err
}

func (l *serialLink) read() {
	defer l.wg.Done()
	defer close(l.events)
	var dec zvt.FrameDecoder
	buf := make([]byte, 256)
	for {
		n, err := l.p.Read(buf)
		if err != nil {
			l.err = errors.Join(drivers.ErrDisconnected, fmt.Errorf("read: %w", err))
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
				return
			}
		}
	}
}

func (l *serialLink) event(ctx context.Context) (zvt.Event, error) {
	select {
	case ev, ok := <-l.events:
		if !ok {
			return zvt.Event{}, l.err
		}
		return ev, nil
	case <-ctx.Done():
		return zvt.Event{}, errors.Join(drivers.ErrTimeout, ctx.Err())
	}
}

func (l *serialLink) send(ctx context.Context, a zvt.APDU) error {
	b, err := a.Marshal()
	if err != nil {
		return err
	}
	frame := zvt.Frame(b)
	for range frameTries {
		if err := l.write(frame); err != nil {
			return errors.Join(drivers.ErrDisconnected, err)
		}
		actx, cancel := context.WithTimeout(ctx, frameAckTimeout)
		ack, err := l.awaitAck(actx)
		cancel()
		switch {
		case ack:
			return nil
		case err != nil && ctx.Err() != nil:
			return err
		case errors.Is(err, drivers.ErrDisconnected):
			return err
		}
		// NAK or no answer: send again.
	}
	return errors.Join(drivers.ErrTimeout, fmt.Errorf("frame not acknowledged after %d tries", frameTries))
}

func (l *serialLink) awaitAck(ctx context.Context) (bool, error) {
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

func (l *serialLink) recv(ctx context.Context) (zvt.APDU, error) {
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
			continue // a stray ACK or NAK
		}
		a, _, err := zvt.Parse(ev.Data)
		if err != nil {
			continue // a frame that holds no APDU
		}
		return a, nil
	}
}

func (l *serialLink) close() error {
	close(l.done)
	err := l.p.Close()
	l.wg.Wait()
	return err
}
