package printer

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kogge-fleet/kogge/drivers"
	"github.com/kogge-fleet/kogge/drivers/printer/escpos"
	printersim "github.com/kogge-fleet/kogge/simulators/devices/printer"
)

func startSim(t *testing.T, opts printersim.Options) *printersim.Simulator {
	t.Helper()
	opts.Dir = t.TempDir()
	sim, err := printersim.Start(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	return sim
}

func testOptions() Options {
	return Options{DialTimeout: 2 * time.Second, StatusTimeout: 2 * time.Second, JobTimeout: 10 * time.Second}
}

func ticket(t *testing.T, lines ...string) []byte {
	t.Helper()
	d := escpos.NewDocument(escpos.CP858).Align(escpos.Center).Bold(true).Line("Quittung").Bold(false).Align(escpos.Left)
	for _, l := range lines {
		d.Line(l)
	}
	job, err := d.QR("https://example.org/q/1", escpos.QR{}).Cut(true).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return job
}

// usbOverTCP is a fake USB transport: the bulk endpoints are a TCP
// connection to the simulator, so the USB code path talks ESC/POS to a
// real interpreter.
type usbOverTCP struct{ c net.Conn }

func (u *usbOverTCP) WriteContext(ctx context.Context, p []byte) (int, error) {
	dl, _ := ctx.Deadline()
	u.c.SetWriteDeadline(dl)
	// A USB bulk transfer may move less than asked; so does this one.
	return u.c.Write(p[:min(len(p), 64)])
}

func (u *usbOverTCP) ReadContext(ctx context.Context, p []byte) (int, error) {
	dl, _ := ctx.Deadline()
	u.c.SetReadDeadline(dl)
	return u.c.Read(p)
}

func (u *usbOverTCP) Close() error { return u.c.Close() }

// transports returns one device per transport, all on one simulator.
func transports(t *testing.T, sim *printersim.Simulator) map[string]*Device {
	t.Helper()
	tcp, err := NewTCP(sim.Endpoint(), testOptions())
	if err != nil {
		t.Fatal(err)
	}
	ser, err := NewSerial(sim.SerialEndpoint(), testOptions())
	if err != nil {
		t.Fatal(err)
	}
	var opened []string
	var mu sync.Mutex
	usb, err := newUSB(USBID{Vendor: 0x04b8, Product: 0x0202}, func(ctx context.Context, id USBID) (usbTransport, error) {
		mu.Lock()
		opened = append(opened, id.String())
		mu.Unlock()
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", sim.Endpoint())
		if err != nil {
			return nil, err
		}
		return &usbOverTCP{c: c}, nil
	}, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, d := range []*Device{tcp, ser, usb} {
			d.Close()
		}
		mu.Lock()
		defer mu.Unlock()
		for _, id := range opened {
			if id != "USB 04b8:0202" {
				t.Errorf("USB opener asked for %q", id)
			}
		}
	})
	return map[string]*Device{"tcp": tcp, "serial": ser, "usb": usb}
}

func TestPrintOverEachTransport(t *testing.T) {
	sim := startSim(t, printersim.Options{Serial: true})
	for name, dev := range transports(t, sim) {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := dev.Print(ctx, ticket(t, "Gebühr: 6,00 €", "via "+name)); err != nil {
				t.Fatal(err)
			}
			r, err := sim.Next(ctx)
			if err != nil {
				t.Fatal(err)
			}
			text := strings.Join(r.Lines, "\n")
			if !strings.Contains(text, "Gebühr: 6,00 €") || !strings.Contains(text, "via "+name) || r.Cut != "partial" {
				t.Fatalf("printed:\n%s", r.Text)
			}
			if len(r.QR) != 1 || r.QR[0] != "https://example.org/q/1" {
				t.Fatalf("QR codes %q", r.QR)
			}
			if s := dev.Status(); !s.OK() {
				t.Fatalf("status %v", s)
			}
		})
	}
}

func TestPaperAndCover(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sim := startSim(t, printersim.Options{Serial: true})
	for name, dev := range transports(t, sim) {
		t.Run(name, func(t *testing.T) {
			sim.SetPaper(0)
			err := dev.Print(ctx, ticket(t, "x"))
			if !errors.Is(err, ErrPaperOut) || strings.Contains(err.Error(), "incomplete") {
				t.Fatalf("Print without paper: %v, want ErrPaperOut before printing", err)
			}
			if s := dev.Status(); s.State != drivers.StateError || !strings.Contains(s.Reason, "paper out") {
				t.Fatalf("status %v", s)
			}

			sim.SetPaper(-1)
			sim.SetCoverOpen(true)
			if err := dev.Print(ctx, ticket(t, "x")); !errors.Is(err, ErrCoverOpen) {
				t.Fatalf("Print with open cover: %v, want ErrCoverOpen", err)
			}
			if s, err := dev.Check(ctx); err != nil || !strings.Contains(s.Reason, "cover open") {
				t.Fatalf("Check: %v, %v", s, err)
			}
			sim.SetCoverOpen(false)

			sim.SetPaper(30) // below the near-end mark of 40 lines
			if s, err := dev.Check(ctx); err != nil || s.State != drivers.StateDegraded || !strings.Contains(s.Reason, "paper low") {
				t.Fatalf("Check with little paper: %v, %v", s, err)
			}

			sim.SetPaper(2) // runs out during the job
			err = dev.Print(ctx, ticket(t, "a", "b", "c", "d"))
			if !errors.Is(err, ErrPaperOut) || !strings.Contains(err.Error(), "incomplete") {
				t.Fatalf("Print running out of paper: %v, want ErrPaperOut, may be incomplete", err)
			}
			r, err := sim.Next(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if r.Dropped == 0 {
				t.Fatalf("simulator printed everything:\n%s", r.Text)
			}
			sim.SetPaper(-1)
			if s, err := dev.Check(ctx); err != nil || !s.OK() {
				t.Fatalf("Check after loading paper: %v, %v", s, err)
			}
		})
	}
}

func TestUnreachablePrinter(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	dev, err := NewTCP(addr, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	err = dev.Print(context.Background(), []byte("x"))
	if !errors.Is(err, drivers.ErrDisconnected) {
		t.Fatalf("Print: %v, want ErrDisconnected", err)
	}
	if s := dev.Status(); s.State != drivers.StateMissing || !strings.Contains(s.Reason, "not reachable") {
		t.Fatalf("status %v", s)
	}
}

// A printer that accepts the connection and swallows everything, never
// answering, must not make Print hang.
func TestSilentPrinterTimesOut(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(io.Discard, c)
	}()
	opts := testOptions()
	opts.StatusTimeout = 50 * time.Millisecond
	dev, err := NewTCP(ln.Addr().String(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	start := time.Now()
	err = dev.Print(context.Background(), []byte("x"))
	if !errors.Is(err, drivers.ErrTimeout) {
		t.Fatalf("Print: %v, want ErrTimeout", err)
	}
	if s := dev.Status(); s.State != drivers.StateMissing || !strings.Contains(s.Reason, "not answering") {
		t.Fatalf("status %v", s)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Print took %v", d)
	}
}

func TestBusyPrinterHonoursContext(t *testing.T) {
	sim := startSim(t, printersim.Options{})
	dev, err := NewTCP(sim.Endpoint(), testOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	dev.turn <- struct{}{} // another job holds the printer
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := dev.Print(ctx, []byte("x")); !errors.Is(err, drivers.ErrTimeout) || !strings.Contains(err.Error(), "busy") {
		t.Fatalf("Print while busy: %v", err)
	}
	<-dev.turn
	if _, err := dev.Check(context.Background()); err != nil {
		t.Fatalf("Check after the other job: %v", err)
	}
}

func TestReconnectAfterPrinterRestart(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dev, err := NewTCP(addr, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	ctx := context.Background()
	if _, err := dev.Check(ctx); !errors.Is(err, drivers.ErrDisconnected) {
		t.Fatalf("Check of a switched-off printer: %v", err)
	}
	sim, err := printersim.Start(ctx, printersim.Options{Addr: addr})
	if err != nil {
		t.Skipf("port %s taken again meanwhile: %v", addr, err)
	}
	defer sim.Close()
	if err := dev.Print(ctx, ticket(t, "after restart")); err != nil {
		t.Fatalf("Print after the printer came up: %v", err)
	}
}

func TestNewValidates(t *testing.T) {
	if _, err := NewTCP("", Options{}); err == nil {
		t.Error("empty address accepted")
	}
	if _, err := NewSerial("", Options{}); err == nil {
		t.Error("empty path accepted")
	}
	if _, err := NewTCP("x", Options{JobTimeout: -1}); err == nil {
		t.Error("negative timeout accepted")
	}
	d, err := NewTCP("printer.local", Options{})
	if err != nil || d.name != "tcp printer.local:9100" {
		t.Errorf("default port: %v, %v", d, err)
	}
}

func TestFake(t *testing.T) {
	f := NewFake()
	ctx := context.Background()
	if err := f.Print(ctx, []byte("a")); err != nil {
		t.Fatal(err)
	}
	f.SetPaperOut(true)
	if err := f.Print(ctx, []byte("b")); !errors.Is(err, ErrPaperOut) {
		t.Fatalf("Print: %v", err)
	}
	f.SetPaperOut(false)
	f.SetCoverOpen(true)
	if s, _ := f.Check(ctx); s.State != drivers.StateError {
		t.Fatalf("status %v", s)
	}
	f.SetCoverOpen(false)
	f.SetUnreachable(true)
	if err := f.Print(ctx, []byte("c")); !errors.Is(err, drivers.ErrDisconnected) {
		t.Fatalf("Print: %v", err)
	}
	if jobs := f.Jobs(); len(jobs) != 1 || string(jobs[0]) != "a" {
		t.Fatalf("jobs %q", jobs)
	}
}
