package faultproxy

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"
)

// echoServer accepts connections on a free loopback port and echoes what
// it reads until the test ends.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				io.Copy(c, c)
				c.Close()
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// startProxy runs a proxy in front of target until the test ends.
func startProxy(t *testing.T, target string) *Proxy {
	t.Helper()
	p, err := New(target, Options{HoldTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("proxy: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("proxy did not stop within 10s")
		}
	})
	return p
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip writes msg and reads it back within timeout.
func roundTrip(c net.Conn, msg []byte, timeout time.Duration) ([]byte, error) {
	c.SetDeadline(time.Now().Add(timeout))
	defer c.SetDeadline(time.Time{})
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(msg)
		errc <- err
	}()
	got := make([]byte, len(msg))
	_, rerr := io.ReadFull(c, got)
	werr := <-errc
	return got, errors.Join(rerr, werr)
}

func TestPassThroughAndShaping(t *testing.T) {
	target := echoServer(t)
	payload := make([]byte, 96<<10)
	rand.Read(payload)
	tests := []struct {
		name    string
		faults  Faults
		minTime time.Duration // the echo must take at least this long
	}{
		{"clean", Faults{}, 0},
		{"latency", Faults{Latency: 60 * time.Millisecond}, 120 * time.Millisecond},
		// 96 KiB each way at 256 KiB/s: at least 0.375 s per direction,
		// the directions overlap; allow for the first chunk going at once.
		{"bandwidth", Faults{Bandwidth: 256 << 10}, 250 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := startProxy(t, target)
			p.Set(tt.faults)
			c := dial(t, p.Addr())
			start := time.Now()
			got, err := roundTrip(c, payload, 20*time.Second)
			took := time.Since(start)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, payload) {
				t.Fatal("echo differs from what was sent")
			}
			if took < tt.minTime {
				t.Errorf("echo took %v, the faults require at least %v", took, tt.minTime)
			}
			// The counters follow the writes; give them a moment.
			want := uint64(len(payload))
			deadline := time.Now().Add(5 * time.Second)
			for s := p.Stats(); s.BytesUp != want || s.BytesDown != want || s.Accepted != 1; s = p.Stats() {
				if time.Now().After(deadline) {
					t.Fatalf("stats %+v, want %d bytes each way over 1 connection", s, want)
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
}

func TestBlackholeHoldsAndHeals(t *testing.T) {
	p := startProxy(t, echoServer(t))
	c := dial(t, p.Addr())
	if _, err := roundTrip(c, []byte("before"), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	p.Set(Faults{Blackhole: true})
	// Nothing comes back while the blackhole lasts, and nothing is closed.
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := c.Write([]byte("held")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	n, err := c.Read(buf)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read in a blackhole: %d bytes, %v; want a timeout", n, err)
	}
	// A new connection is accepted but not forwarded.
	c2 := dial(t, p.Addr())
	c2.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	c2.Write([]byte("x"))
	if _, err := c2.Read(buf[:1]); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("new connection in a blackhole: %v; want a timeout", err)
	}
	// Healed: the held bytes arrive, in order, on the same connection.
	p.Set(Faults{})
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "held" {
		t.Fatalf("after healing: %q %v", buf, err)
	}
	c2.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c2, buf[:1]); err != nil || buf[0] != 'x' {
		t.Fatalf("held new connection after healing: %q %v", buf[:1], err)
	}
}

// isReset reports whether err is what a client sees of a reset or closed
// connection.
func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) || errors.Is(err, syscall.EPIPE)
}

func TestResetAndDown(t *testing.T) {
	p := startProxy(t, echoServer(t))
	c := dial(t, p.Addr())
	if _, err := roundTrip(c, []byte("ping"), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if n := p.Reset(); n != 1 {
		t.Errorf("Reset reset %d connections, want 1", n)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); !isReset(err) {
		t.Fatalf("read after reset: %v; want a reset", err)
	}

	// Down: open connections are reset and new ones refused.
	c = dial(t, p.Addr())
	if _, err := roundTrip(c, []byte("ping"), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	p.Set(Faults{Down: true})
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); !isReset(err) {
		t.Fatalf("open connection when down: %v; want a reset", err)
	}
	// The proxy accepts and resets at once: the reset may reach the dial
	// itself on a busy machine, or the first read.
	if c, err := net.DialTimeout("tcp", p.Addr(), 5*time.Second); err != nil {
		if !isReset(err) {
			t.Fatalf("dial when down: %v; want a reset", err)
		}
	} else {
		_, err := roundTrip(c, []byte("ping"), 5*time.Second)
		c.Close()
		if !isReset(err) && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("new connection when down: %v; want it refused", err)
		}
	}
	if s := p.Stats(); s.Refused != 1 || s.Resets != 2 {
		t.Errorf("stats %+v; want 1 refused, 2 resets", s)
	}

	// Up again: traffic flows.
	p.Set(Faults{})
	c = dial(t, p.Addr())
	if got, err := roundTrip(c, []byte("again"), 5*time.Second); err != nil || string(got) != "again" {
		t.Fatalf("after healing: %q %v", got, err)
	}
}

func TestUnreachableTarget(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	target := ln.Addr().String()
	ln.Close()
	p := startProxy(t, target)
	// The reset may come before the client's connect returns.
	if c, err := net.DialTimeout("tcp", p.Addr(), 5*time.Second); err == nil {
		_, err = roundTrip(c, []byte("ping"), 5*time.Second)
		c.Close()
		if !isReset(err) && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("to an unreachable target: %v; want the connection closed", err)
		}
	} else if !isReset(err) {
		t.Fatalf("dial: %v", err)
	}
	if s := p.Stats(); s.DialFails != 1 {
		t.Errorf("stats %+v; want 1 failed dial", s)
	}
}

func TestOptions(t *testing.T) {
	tests := []struct {
		name   string
		target string
		opts   Options
		ok     bool
	}{
		{"defaults", "127.0.0.1:1", Options{}, true},
		{"bad target", "nowhere", Options{}, false},
		{"tiny buffer", "127.0.0.1:1", Options{BufferSize: 10}, false},
		{"negative timeout", "127.0.0.1:1", Options{DialTimeout: -time.Second}, false},
		{"bad listen", "127.0.0.1:1", Options{Listen: "256.0.0.1:0"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := New(tt.target, tt.opts)
			if (err == nil) != tt.ok {
				t.Fatalf("New: %v, want ok=%v", err, tt.ok)
			}
			if p != nil {
				p.ln.Close()
			}
		})
	}
}
