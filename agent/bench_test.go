package agent_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/kogge-fleet/kogge/agent"
	"github.com/kogge-fleet/kogge/agent/mqtt"
	"github.com/kogge-fleet/kogge/agent/store"
)

const (
	envMemChild = "KOGGE_AGENT_MEM_CHILD"
	queued      = 10_000
)

// fill saves n small captures into the store at path, from 64 capturers.
func fill(tb testing.TB, path string, n int) {
	tb.Helper()
	st := openStore(tb, path)
	defer st.Close()
	var wg gosync.WaitGroup
	errs := make(chan error, 64)
	for w := range 64 {
		wg.Go(func() {
			for i := w; i < n; i += 64 {
				if _, err := st.Save(context.Background(), storeCapture(i)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		tb.Fatal(err)
	}
}

// BenchmarkDrain drains 10,000 queued small records from one device to the
// test server over loopback through the embedded broker and reports acked
// records per second.
func BenchmarkDrain(b *testing.B) {
	var total time.Duration
	for range b.N {
		b.StopTimer()
		f := startFleet(b)
		path := filepath.Join(b.TempDir(), "device.db")
		fill(b, path, queued)
		b.StartTimer()
		start := time.Now()
		d := startDevice(b, f.broker.URL, path, agent.Options{})
		waitFor(b, "drain", func() bool {
			s := d.a.Sync()
			return s.RecordsStored+s.MarkedBySync >= queued
		})
		total += time.Since(start)
		b.StopTimer()
		if got := f.srv.StoredCount(deviceID); got != queued {
			b.Fatalf("server stored %d records, want %d", got, queued)
		}
		d.stop()
	}
	b.ReportMetric(float64(queued*b.N)/total.Seconds(), "acked-records/s")
}

// BenchmarkIdleMemory starts a device process whose store holds 10,000
// queued records and whose broker is unreachable, lets it settle, and
// reports its resident memory after a GC.
func BenchmarkIdleMemory(b *testing.B) {
	var sum float64
	for range b.N {
		b.StopTimer()
		path := filepath.Join(b.TempDir(), "device.db")
		fill(b, path, queued)
		b.StartTimer()
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), envMemChild+"=1", envStore+"="+path)
		out, err := cmd.Output()
		if err != nil {
			b.Fatalf("memory child: %v: %s", err, out)
		}
		sc := bufio.NewScanner(strings.NewReader(string(out)))
		var kib float64
		for sc.Scan() {
			if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == "VmRSS-kB" {
				kib, _ = strconv.ParseFloat(f[1], 64)
			}
		}
		if kib == 0 {
			b.Fatalf("memory child printed no VmRSS: %s", out)
		}
		sum += kib / 1024
	}
	b.ReportMetric(sum/float64(b.N), "MiB-RSS")
}

// memChild runs an idle agent over a store with queued records and an
// unreachable broker, then prints its resident memory.
func memChild() int {
	st, err := store.Open(os.Getenv(envStore), store.Options{Logger: quiet()})
	if err != nil {
		fmt.Println("ERROR", err)
		return 3
	}
	defer st.Close()
	tr, err := mqtt.New(mqtt.Config{Broker: "tcp://127.0.0.1:1", Device: deviceID},
		mqtt.Options{MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, Logger: quiet()})
	if err != nil {
		fmt.Println("ERROR", err)
		return 3
	}
	a, err := agent.New(agent.Config{Device: deviceID, Software: "mem"}, st, tr, agent.Options{Logger: quiet()})
	if err != nil {
		fmt.Println("ERROR", err)
		return 3
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	// Settled: the transport has failed to connect a few times.
	tick := time.NewTicker(5 * time.Millisecond)
	deadline := time.After(30 * time.Second)
	for tr.Stats().ConnectFailures < 5 {
		select {
		case <-tick.C:
		case <-deadline:
			fmt.Println("ERROR the transport never tried to connect")
			return 4
		}
	}
	tick.Stop()
	s, err := st.Stats(ctx)
	if err != nil || s.QueueDepth != queued {
		fmt.Println("ERROR queue", s.QueueDepth, err)
		return 5
	}
	runtime.GC()
	debug.FreeOSMemory()
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		fmt.Println("ERROR", err)
		return 6
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			fmt.Println("VmRSS-kB", strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
		}
	}
	cancel()
	if err := <-done; err != nil {
		fmt.Println("ERROR", err)
		return 7
	}
	return 0
}
