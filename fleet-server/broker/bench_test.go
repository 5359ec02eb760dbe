package broker

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The idle-connection benchmark runs the broker in a child process (this
// test binary, started again with KOGGE_BENCH_BROKER_CHILD set) so that its
// memory can be measured without the clients' memory. The parent connects N
// devices over mutual TLS, each with its own certificate, and sends each a
// hand-made MQTT CONNECT (client id, keepalive, last will on its state topic)
// and a SUBSCRIBE to its down/# and twin, as a real device does; then it asks
// the child for its memory after GC.
//
//	KOGGE_BENCH_DEVICES=10000 KOGGE_BENCH_PROFILE=/tmp/idle.pprof \
//	  go test -run '^$' -bench BenchmarkIdleConnections -benchtime 1x ./fleet-server/broker
//	go tool pprof -top -sample_index=inuse_space /tmp/idle.pprof
//
// KOGGE_BENCH_PENDING_WRITES and KOGGE_BENCH_READ_BUFFER set the broker's
// MaxPendingWrites and ReadBufferSize, to compare them with the defaults.
// "live" is the heap that survives GC (the objects a device keeps), "heap"
// the heap spans in use (live plus free slots in them), "stack" the
// goroutine stacks: two a device, 16 KiB for the session (mochi's
// attachClient and Client.Read frames alone hold 4.5 KiB of it while it
// waits, so GC never halves it to 8 KiB, wherever below them the read
// parks) and 4 KiB for mochi's write loop (a 1.8 KiB frame).

const childEnv = "KOGGE_BENCH_BROKER_CHILD"

func TestMain(m *testing.M) {
	if dir := os.Getenv(childEnv); dir != "" {
		os.Exit(runBenchChild(dir))
	}
	os.Exit(m.Run())
}

// childStats is what the child reports.
type childStats struct {
	HeapInuse  uint64 `json:"heap_inuse"`
	HeapAlloc  uint64 `json:"heap_alloc"`
	StackInuse uint64 `json:"stack_inuse"`
	Sys        uint64 `json:"sys"`
	RSS        uint64 `json:"rss"`
	Goroutines int    `json:"goroutines"`
	StackUsed  uint64 `json:"stack_used"`
	StackStart uint64 `json:"stack_start"`
	Connected  int    `json:"connected"`
}

type noRevocations struct{}

func (noRevocations) IsRevoked(string, *big.Int) bool { return false }

// runBenchChild serves a broker with the TLS material in dir and answers
// "stats", "profile PATH" and "quit" on stdin.
func runBenchChild(dir string) int {
	fail := func(err error) int { fmt.Fprintln(os.Stderr, "child:", err); return 1 }
	if os.Getenv("KOGGE_BENCH_PROFILE") != "" {
		// Every allocation in the profile, not one per 512 KiB: the
		// figures per device are small. (It costs memory outside the
		// heap, so the run's RSS is not comparable then.)
		runtime.MemProfileRate = 1
	}
	raiseFileLimit()
	serverPEM, err := os.ReadFile(filepath.Join(dir, "server.pem"))
	if err != nil {
		return fail(err)
	}
	cert, err := tls.X509KeyPair(serverPEM, serverPEM)
	if err != nil {
		return fail(err)
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		return fail(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	opts := Options{
		Address: "127.0.0.1:0", ConnectTimeout: time.Minute,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	// Options to compare against the defaults.
	if v, err := strconv.Atoi(os.Getenv("KOGGE_BENCH_PENDING_WRITES")); err == nil {
		opts.MaxPendingWrites = int32(v)
	}
	if v, err := strconv.Atoi(os.Getenv("KOGGE_BENCH_READ_BUFFER")); err == nil {
		opts.ReadBufferSize = v
	}
	b, err := New(&tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: pool}, noRevocations{}, opts)
	if err != nil {
		return fail(err)
	}
	if err := b.Start(context.Background()); err != nil {
		return fail(err)
	}
	defer b.Close()
	fmt.Printf("addr %s\n", b.Addr())
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		cmd, arg, _ := strings.Cut(sc.Text(), " ")
		switch cmd {
		case "stats":
			// Several cycles: each may halve a goroutine stack that uses
			// less than a quarter of its size, as a long-running server's
			// collections do over time.
			for range 5 {
				runtime.GC()
			}
			debug.FreeOSMemory()
			samples := []rtmetrics.Sample{{Name: "/gc/scan/stack:bytes"}, {Name: "/gc/stack/starting-size:bytes"}}
			rtmetrics.Read(samples)
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			out, _ := json.Marshal(childStats{
				HeapInuse: ms.HeapInuse, HeapAlloc: ms.HeapAlloc, StackInuse: ms.StackInuse, Sys: ms.Sys, RSS: rss(),
				Goroutines: runtime.NumGoroutine(), Connected: b.Connected(),
				StackUsed: samples[0].Value.Uint64(), StackStart: samples[1].Value.Uint64(),
			})
			fmt.Printf("%s\n", out)
		case "profile":
			runtime.GC()
			f, err := os.Create(arg)
			if err == nil {
				err = errors.Join(pprof.Lookup("heap").WriteTo(f, 0), f.Close())
			}
			fmt.Printf("profile %v\n", err)
		case "quit":
			return 0
		}
	}
	return 0
}

// rss returns the resident set size of this process from /proc, in bytes.
func rss() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func raiseFileLimit() uint64 {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0
	}
	lim.Cur = lim.Max
	syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	return lim.Cur
}

// child is the broker process as the parent sees it.
type child struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

func (c *child) ask(t testing.TB, line string) string {
	t.Helper()
	fmt.Fprintln(c.in, line)
	if !c.out.Scan() {
		t.Fatalf("broker child ended: %v", c.out.Err())
	}
	return c.out.Text()
}

func (c *child) stats(t testing.TB) childStats {
	var s childStats
	if err := json.Unmarshal([]byte(c.ask(t, "stats")), &s); err != nil {
		t.Fatal(err)
	}
	return s
}

func BenchmarkIdleConnections(b *testing.B) {
	n := 1000
	if v := os.Getenv("KOGGE_BENCH_DEVICES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 || n > 20000 {
			b.Fatalf("KOGGE_BENCH_DEVICES=%q: want 1 to 20000", v)
		}
	}
	subscribe := os.Getenv("KOGGE_BENCH_SUBSCRIBE") != "0"
	if limit := raiseFileLimit(); limit < uint64(n)+100 {
		b.Fatalf("RLIMIT_NOFILE is %d, too low for %d connections", limit, n)
	}
	p := newTestPKI(b)
	dir := b.TempDir()
	writePEM(b, filepath.Join(dir, "ca.pem"), "CERTIFICATE", p.ca.Raw)
	keyDER, _ := x509.MarshalPKCS8PrivateKey(p.server.PrivateKey)
	writePEM(b, filepath.Join(dir, "server.pem"), "CERTIFICATE", p.server.Leaf.Raw, "PRIVATE KEY", keyDER)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+dir)
	cmd.Stderr = os.Stderr
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	c := &child{cmd: cmd, in: in, out: bufio.NewScanner(out)}
	defer func() {
		fmt.Fprintln(in, "quit")
		cmd.Wait()
	}()
	if !c.out.Scan() {
		b.Fatal("broker child did not start")
	}
	addr, ok := strings.CutPrefix(c.out.Text(), "addr ")
	if !ok {
		b.Fatalf("broker child said %q", c.out.Text())
	}

	// N certificates for N devices, one key (signing is what costs).
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	certs := make([]tls.Certificate, n)
	for i := range certs {
		certs[i] = p.deviceWithKey(b, fmt.Sprintf("bench-%05d", i), key)
	}
	before := c.stats(b)

	b.ResetTimer()
	conns := make([]net.Conn, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	for range 32 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				conn, err := connectIdleDevice(ctx, addr, p.clientTLS(&certs[i]), certs[i].Leaf.Subject.CommonName, subscribe)
				if err != nil {
					select {
					case errs <- fmt.Errorf("device %d: %w", i, err):
					default:
					}
					cancel()
					return
				}
				conns[i] = conn
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	defer func() {
		for _, conn := range conns {
			if conn != nil {
				conn.Close()
			}
		}
	}()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	after := c.stats(b)
	if after.Connected != n {
		b.Fatalf("broker counts %d connected clients, want %d", after.Connected, n)
	}
	if path := os.Getenv("KOGGE_BENCH_PROFILE"); path != "" {
		if got := c.ask(b, "profile "+path); got != "profile <nil>" {
			b.Fatalf("heap profile: %s", got)
		}
		b.Logf("heap profile written to %s", path)
	}
	perDevice := func(a, z uint64) float64 { return (float64(z) - float64(a)) / float64(n) / 1024 }
	heapStack := perDevice(before.HeapInuse+before.StackInuse, after.HeapInuse+after.StackInuse)
	b.ReportMetric(heapStack, "KiB/device(heap+stack)")
	b.ReportMetric(perDevice(before.HeapInuse, after.HeapInuse), "KiB/device(heap)")
	b.ReportMetric(perDevice(before.HeapAlloc, after.HeapAlloc), "KiB/device(live)")
	b.ReportMetric(perDevice(before.StackInuse, after.StackInuse), "KiB/device(stack)")
	b.ReportMetric(perDevice(before.RSS, after.RSS), "KiB/device(rss)")
	b.ReportMetric(float64(after.Goroutines-before.Goroutines)/float64(n), "goroutines/device")
	b.Logf("%d idle devices over mTLS: heap+stack %.1f KiB/device, RSS %.1f KiB/device (before %+v, after %+v)",
		n, heapStack, perDevice(before.RSS, after.RSS), before, after)
}

func writePEM(t testing.TB, path string, typeAndBytes ...any) {
	var buf bytes.Buffer
	for i := 0; i < len(typeAndBytes); i += 2 {
		pem.Encode(&buf, &pem.Block{Type: typeAndBytes[i].(string), Bytes: typeAndBytes[i+1].([]byte)})
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// connectIdleDevice connects like a device: TLS with its certificate,
// CONNECT (MQTT 3.1.1, keepalive 10 min, clean session, last will on its
// state topic), SUBSCRIBE to its down/# and twin; then it leaves the
// connection idle.
func connectIdleDevice(ctx context.Context, addr string, cfg *tls.Config, device string, subscribe bool) (net.Conn, error) {
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 30 * time.Second}, Config: cfg}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	var pkt []byte
	pkt = append(pkt, 0x10)
	var body []byte
	body = append(body, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02|0x04|0x08|0x20, 0x02, 0x58) // clean, will QoS 1 retained, keepalive 600 s
	body = appendString(body, device)
	body = appendString(body, "kogge/v1/d/"+device+"/state")
	body = appendString(body, "offline")
	pkt = appendPacket(pkt, body)
	sub := []byte{0x82}
	sbody := []byte{0, 1}
	sbody = appendString(sbody, "kogge/v1/d/"+device+"/down/#")
	sbody = append(sbody, 1)
	sbody = appendString(sbody, "kogge/v1/d/"+device+"/twin")
	sbody = append(sbody, 1)
	want := []byte{0x20, 2, 0, 0, 0x90, 4, 0, 1, 1, 1} // CONNACK accepted, SUBACK QoS 1 twice
	if subscribe {
		pkt = appendPacket(append(pkt, sub...), sbody)
	} else {
		want = want[:4]
	}
	if _, err := conn.Write(pkt); err != nil {
		conn.Close()
		return nil, err
	}
	got := make([]byte, len(want))
	if _, err := io.ReadFull(conn, got); err != nil {
		conn.Close()
		return nil, fmt.Errorf("read CONNACK/SUBACK: %w", err)
	}
	if !bytes.Equal(got, want) {
		conn.Close()
		return nil, fmt.Errorf("broker answered % x, want % x", got, want)
	}
	conn.SetDeadline(time.Time{})
	return conn, nil
}

func appendString(b []byte, s string) []byte {
	return append(binary.BigEndian.AppendUint16(b, uint16(len(s))), s...)
}

func appendPacket(b, body []byte) []byte {
	n := len(body)
	for {
		c := byte(n % 128)
		n /= 128
		if n > 0 {
			c |= 0x80
		}
		b = append(b, c)
		if n == 0 {
			break
		}
	}
	return append(b, body...)
}
