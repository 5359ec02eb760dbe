// Package mosquittotest runs Debian's Mosquitto for tests, with a
// configuration that brokerconfig wrote, on a free loopback port. Without
// the mosquitto program a test skips; under CI=true it fails.
package mosquittotest

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Binary returns the path of the mosquitto program (also looked for in
// /usr/sbin, where Debian installs it).
func Binary(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/mosquitto"); err == nil {
		return "/usr/sbin/mosquitto"
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("mosquitto not found; install the Debian package mosquitto (make deps)")
	}
	t.Skip("mosquitto not found; install mosquitto (make deps) to run this test")
	return ""
}

// Tool returns the path of a Mosquitto client program (mosquitto_pub,
// mosquitto_sub), failing under CI=true and skipping otherwise when it is
// missing.
func Tool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not found; install the Debian package mosquitto-clients (make deps)", name)
		}
		t.Skipf("%s not found; install mosquitto-clients (make deps) to run this test", name)
	}
	return p
}

// User is the system user for the broker configuration in tests: the
// current user (mosquitto keeps root when told "root").
func User() string {
	if os.Geteuid() == 0 {
		return "root"
	}
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return "mosquitto"
}

// FreePort returns a loopback port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Broker is a running mosquitto.
type Broker struct {
	Addr string
	Conf string
	cmd  *exec.Cmd
	done chan struct{}
	log  *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Start runs mosquitto -c conf and waits until addr (host:port of its
// listener) accepts connections. The broker is stopped when the test ends;
// its log is shown when the test fails.
func Start(t testing.TB, conf, addr string) *Broker {
	t.Helper()
	bin := Binary(t)
	b := &Broker{Addr: addr, Conf: conf, done: make(chan struct{}), log: &syncBuffer{}}
	b.cmd = exec.Command(bin, "-c", conf)
	b.cmd.Stdout, b.cmd.Stderr = b.log, b.log
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := b.cmd.Start(); err != nil {
		t.Fatalf("start mosquitto: %v", err)
	}
	go func() {
		b.cmd.Wait()
		close(b.done)
	}()
	t.Cleanup(func() {
		b.Stop()
		if t.Failed() {
			t.Logf("mosquitto log:\n%s", b.log.String())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return b
		}
		select {
		case <-b.done:
			t.Fatalf("mosquitto exited at start: %s", b.log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("mosquitto does not listen on %s after 10s: %s", addr, b.log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Pid returns the broker's process id.
func (b *Broker) Pid() int { return b.cmd.Process.Pid }

// Log returns what the broker has logged.
func (b *Broker) Log() string { return b.log.String() }

// Stop ends the broker (SIGTERM, then SIGKILL after 5 s) and waits for it.
func (b *Broker) Stop() {
	select {
	case <-b.done:
		return
	default:
	}
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.done:
	case <-time.After(5 * time.Second):
		_ = b.cmd.Process.Kill()
		<-b.done
	}
}

// LogCount returns how often the broker's log contains s.
func (b *Broker) LogCount(s string) int { return strings.Count(b.log.String(), s) }

// WaitLog waits until the broker's log contains s more than n times
// (mosquitto logs to stderr, which Start captures).
func (b *Broker) WaitLog(ctx context.Context, s string, n int) error {
	for {
		if b.LogCount(s) > n {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.New("mosquitto did not log " + strconv.Quote(s))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Dir returns the directory of the broker's configuration.
func (b *Broker) Dir() string { return filepath.Dir(b.Conf) }
