package printer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"go.bug.st/serial"

	"github.com/kogge-fleet/kogge/drivers"
)

// NewTCP returns a printer reached over TCP ("raw" or JetDirect printing).
// addr is host:port; without a port, 9100 is used.
func NewTCP(addr string, opts Options) (*Device, error) {
	if addr == "" {
		return nil, errors.New("printer: no address given")
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(strings.Trim(addr, "[]"), "9100")
	}
	dial := func(ctx context.Context) (link, error) {
		var nd net.Dialer
		c, err := nd.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		return &tcpLink{c: c}, nil
	}
	return newDevice("tcp "+addr, dial, opts)
}

type tcpLink struct{ c net.Conn }

func (l *tcpLink) write(ctx context.Context, p []byte) error {
	stop := l.deadline(ctx, l.c.SetWriteDeadline)
	defer stop()
	_, err := l.c.Write(p)
	return linkErr(ctx, err)
}

func (l *tcpLink) read(ctx context.Context, p []byte) (int, error) {
	stop := l.deadline(ctx, l.c.SetReadDeadline)
	defer stop()
	n, err := l.c.Read(p)
	return n, linkErr(ctx, err)
}

// deadline makes ctx's deadline and cancellation end the next I/O call.
func (l *tcpLink) deadline(ctx context.Context, set func(time.Time) error) (stop func() bool) {
	dl, _ := ctx.Deadline()
	set(dl)
	return context.AfterFunc(ctx, func() { set(time.Now()) })
}

func (l *tcpLink) close() error { return l.c.Close() }

// linkErr translates I/O errors into the drivers' sentinels.
func linkErr(ctx context.Context, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, os.ErrDeadlineExceeded) || ctx.Err() != nil:
		return errors.Join(drivers.ErrTimeout, err)
	default:
		return errors.Join(drivers.ErrDisconnected, err)
	}
}

// NewSerial returns a printer on a serial port (Options.Baud, 8N1, no
// flow control).
func NewSerial(path string, opts Options) (*Device, error) {
	if path == "" {
		return nil, errors.New("printer: no serial port given")
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
		return &serialLink{p: p}, nil
	}
	return newDevice("serial "+path, dial, opts)
}

type serialLink struct{ p serial.Port }

// serialChunk bounds one write: without flow control the kernel drains a
// chunk at the line speed, so a write never blocks for long and the
// context is checked between chunks.
const serialChunk = 256

func (l *serialLink) write(ctx context.Context, p []byte) error {
	for len(p) > 0 {
		if err := ctx.Err(); err != nil {
			return errors.Join(drivers.ErrTimeout, err)
		}
		n := min(len(p), serialChunk)
		w, err := l.p.Write(p[:n])
		if err != nil {
			return errors.Join(drivers.ErrDisconnected, err)
		}
		p = p[w:]
	}
	return nil
}

// read polls in short slices so that the context is honoured.
func (l *serialLink) read(ctx context.Context, p []byte) (int, error) {
	for {
		if err := ctx.Err(); err != nil {
			return 0, errors.Join(drivers.ErrTimeout, err)
		}
		slice := 50 * time.Millisecond
		if dl, ok := ctx.Deadline(); ok {
			slice = max(min(slice, time.Until(dl)), time.Millisecond)
		}
		if err := l.p.SetReadTimeout(slice); err != nil {
			return 0, errors.Join(drivers.ErrDisconnected, err)
		}
		n, err := l.p.Read(p)
		if err != nil {
			return n, errors.Join(drivers.ErrDisconnected, fmt.Errorf("read: %w", err))
		}
		if n > 0 {
			return n, nil
		}
	}
}

func (l *serialLink) close() error { return l.p.Close() }
