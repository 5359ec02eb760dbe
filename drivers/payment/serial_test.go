package payment

import (
	"bytes"
	"context"
	"os"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/kogge-fleet/kogge/drivers/payment/zvt"
)

// terminalEnd is the master side of a pty, played by the test as the
// payment terminal.
type terminalEnd struct {
	t   *testing.T
	m   *os.File
	dec zvt.FrameDecoder
}

func openTerminalEnd(t *testing.T) (*terminalEnd, string) {
	t.Helper()
	m, s, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	// A pollable duplicate of the master, so that reads have deadlines.
	fd, err := unix.Dup(int(m.Fd()))
	m.Close()
	if err != nil {
		t.Fatal(err)
	}
	unix.SetNonblock(fd, true)
	master := os.NewFile(uintptr(fd), "/dev/ptmx")
	t.Cleanup(func() { master.Close(); s.Close() })
	return &terminalEnd{t: t, m: master}, s.Name()
}

func (e *terminalEnd) expect(kind zvt.EventKind) zvt.Event {
	e.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	buf := make([]byte, 1)
	for {
		e.m.SetReadDeadline(deadline)
		if _, err := e.m.Read(buf); err != nil {
			e.t.Fatalf("waiting for event %d: %v", kind, err)
		}
		if ev := e.dec.Feed(buf[0]); ev.Kind != zvt.EventNone {
			if ev.Kind != kind {
				e.t.Fatalf("event %d (% X), want %d", ev.Kind, ev.Data, kind)
			}
			return ev
		}
	}
}

func (e *terminalEnd) write(b []byte) {
	e.t.Helper()
	if _, err := e.m.Write(b); err != nil {
		e.t.Fatal(err)
	}
}

func (e *terminalEnd) sendFrame(a zvt.APDU) {
	e.t.Helper()
	raw, err := a.Marshal()
	if err != nil {
		e.t.Fatal(err)
	}
	e.write(zvt.Frame(raw))
}

// The driver resends a frame the terminal rejected with NAK, and rejects
// a damaged frame of the terminal with NAK.
func TestSerialRetransmission(t *testing.T) {
	term, path := openTerminalEnd(t)
	c, err := NewSerial(path, Options{AckTimeout: 2 * time.Second, IdleTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	done := make(chan error, 1)
	go func() { done <- c.Register(context.Background()) }()

	first := term.expect(zvt.EventFrame)
	reg, _ := zvt.Registration("000000", c.opts.Config, zvt.EUR)
	want, _ := reg.Marshal()
	if !bytes.Equal(first.Data, want) {
		t.Fatalf("registration % X, want % X", first.Data, want)
	}
	term.write([]byte{zvt.NAK})
	again := term.expect(zvt.EventFrame)
	if !bytes.Equal(again.Data, want) {
		t.Fatalf("retransmission % X", again.Data)
	}
	term.write([]byte{zvt.ACK})

	term.sendFrame(zvt.Ack())
	term.expect(zvt.EventAck)

	// A damaged completion, then the good one.
	raw, _ := zvt.Completion(nil).Marshal()
	bad := zvt.Frame(raw)
	bad[2] ^= 0x01
	term.write(bad)
	term.expect(zvt.EventNak)
	term.sendFrame(zvt.Completion(nil))
	term.expect(zvt.EventAck)
	ack := term.expect(zvt.EventFrame) // the driver's 80 00 00
	if a, _, err := zvt.Parse(ack.Data); err != nil || !a.IsAck() {
		t.Fatalf("driver answered % X", ack.Data)
	}
	term.write([]byte{zvt.ACK})
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Register: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Register did not return")
	}
}
