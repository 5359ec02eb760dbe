package agent_test

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/agent"
	"github.com/kogge-fleet/kogge/agent/mqtt"
	"github.com/kogge-fleet/kogge/agent/store"
	"github.com/kogge-fleet/kogge/agent/sync"
)

// The crash test re-executes the test binary as a device; these variables
// tell it so.
const (
	envChild  = "KOGGE_AGENT_CRASH_CHILD"
	envStore  = "KOGGE_AGENT_CRASH_STORE"
	envBroker = "KOGGE_AGENT_CRASH_BROKER"
	envDrain  = "KOGGE_AGENT_CRASH_DRAIN"
)

// crashChild is the device of the crash test: it opens the store, runs an
// agent against the parent's broker and captures in a loop, printing each
// receipt once Capture has returned, until the parent kills it. In drain
// mode it waits until everything is sent and exits cleanly.
func crashChild() int {
	out := os.Stdout
	st, err := store.Open(os.Getenv(envStore), store.Options{Logger: quiet()})
	if err != nil {
		fmt.Fprintf(out, "OPEN-FAILED %v\n", err)
		return 3
	}
	if m := st.MovedAside(); m != "" {
		fmt.Fprintf(out, "MOVED-ASIDE %s\n", m)
		return 4
	}
	tr, err := mqtt.New(mqtt.Config{Broker: os.Getenv(envBroker), Device: deviceID, Software: "crash-test"},
		mqtt.Options{MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, Logger: quiet()})
	if err != nil {
		fmt.Fprintf(out, "ERROR %v\n", err)
		return 5
	}
	a, err := agent.New(agent.Config{Device: deviceID, Software: "crash-test"}, st, tr, agent.Options{
		Logger:  quiet(),
		Offices: provisioned(),
		Sync:    sync.Options{ChunkSize: 8 << 10, AckTimeout: 300 * time.Millisecond, HelloTimeout: 300 * time.Millisecond},
	})
	if err != nil {
		fmt.Fprintf(out, "ERROR %v\n", err)
		return 5
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	fmt.Fprintln(out, "READY")

	if os.Getenv(envDrain) == "1" {
		d := &device{st: st}
		deadline := time.After(60 * time.Second)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for !d.drained() {
			select {
			case <-deadline:
				fmt.Fprintln(out, "ERROR not drained after 60 s")
				return 6
			case <-tick.C:
			}
		}
		cancel()
		if err := <-done; err != nil {
			fmt.Fprintf(out, "ERROR %v\n", err)
			return 7
		}
		if err := st.Close(); err != nil {
			fmt.Fprintf(out, "ERROR close: %v\n", err)
			return 8
		}
		fmt.Fprintln(out, "DRAINED")
		return 0
	}
	for i := range 100_000 {
		size := 0
		if rand.IntN(5) == 0 {
			size = 5_000 + rand.IntN(35_000)
		}
		r, err := a.Capture(ctx, capture(i, size))
		if err != nil {
			fmt.Fprintf(out, "ERROR capture: %v\n", err)
			return 9
		}
		fmt.Fprintf(out, "RECEIPT %s %d\n", r.ID, r.Seq)
	}
	return 10 // not killed: the parent is gone
}

// TestCrashDelivery kills a capturing device with SIGKILL at random points
// 50 times (8 with -short), restarting it each time, then lets it drain:
// every capture whose receipt was printed is at the server exactly once, the
// records arrived in sequence order without gaps, and the store opened
// cleanly every time.
func TestCrashDelivery(t *testing.T) {
	runs := 50
	if testing.Short() {
		runs = 8
	}
	f := startFleet(t)
	path := filepath.Join(t.TempDir(), "device.db")
	receipts := map[uuid.UUID]uint64{}
	kills := 0
	for run := 0; run <= runs; run++ {
		drain := run == runs
		// Where to kill: before the child is ready (while it opens the
		// store), or after some receipts.
		killAfter := -1
		if !drain {
			if rand.IntN(8) == 0 {
				killAfter = -2 // at once
			} else {
				killAfter = rand.IntN(40)
			}
		}
		n, killed := runChild(t, f.broker.URL, path, drain, killAfter, receipts)
		if killed {
			kills++
		}
		t.Logf("run %d: %d receipts, killed %v", run, n, killed)
	}
	if kills < runs {
		t.Fatalf("killed %d times, want %d", kills, runs)
	}

	got := f.srv.Records(deviceID)
	bySeq := map[uint64]uuid.UUID{}
	for i, r := range got {
		if r.Seq != uint64(i+1) {
			t.Fatalf("server record %d has seq %d: records are missing or out of order", i, r.Seq)
		}
		bySeq[r.Seq] = r.ID
	}
	for id, seq := range receipts {
		if bySeq[seq] != id {
			t.Fatalf("capture %v (seq %d) returned success but is not at the server", id, seq)
		}
	}
	for _, r := range got {
		if f.srv.Arrivals(deviceID, r.ID) == 0 {
			t.Fatalf("record %d stored without arriving", r.Seq)
		}
		for _, ref := range r.Blobs {
			if b, _ := f.srv.Blob(deviceID, ref.ID); !b.Complete {
				t.Fatalf("blob of record %d incomplete", r.Seq)
			}
		}
	}
	if c := f.srv.Counts(deviceID); len(c.Violations) > 0 {
		t.Fatalf("violations: %v", c.Violations)
	}
	t.Logf("%d kills, %d receipts printed, %d records at the server; server counts %+v",
		kills, len(receipts), len(got), f.srv.Counts(deviceID))
}

// runChild runs the device once and returns how many receipts it printed
// and whether it was killed.
func runChild(t *testing.T, broker, path string, drain bool, killAfter int, receipts map[uuid.UUID]uint64) (int, bool) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envChild+"=1", envStore+"="+path, envBroker+"="+broker)
	if drain {
		cmd.Env = append(cmd.Env, envDrain+"=1")
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// A hung child is killed after a while and fails the test below.
	watchdog := time.AfterFunc(90*time.Second, func() { cmd.Process.Kill() })
	defer watchdog.Stop()

	killed := false
	kill := func() {
		if !killed {
			killed = true
			if err := cmd.Process.Kill(); err != nil {
				t.Errorf("kill: %v", err)
			}
		}
	}
	if killAfter == -2 {
		kill()
	}
	n, ready, drained := 0, false, false
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "READY":
			ready = true
			if killAfter == 0 {
				kill()
			}
		case line == "DRAINED":
			drained = true
		case strings.HasPrefix(line, "RECEIPT "):
			f := strings.Fields(line)
			id, err := uuid.Parse(f[1])
			if err != nil {
				t.Fatalf("bad receipt line %q", line)
			}
			seq, _ := strconv.ParseUint(f[2], 10, 64)
			if old, ok := receipts[id]; ok {
				t.Fatalf("receipt %v printed twice (seq %d and %d)", id, old, seq)
			}
			receipts[id] = seq
			n++
			if n == killAfter {
				kill()
			}
		default:
			t.Fatalf("child: %s\nstderr: %s", line, stderr.String())
		}
	}
	err = cmd.Wait()
	switch {
	case drain && (err != nil || !drained):
		t.Fatalf("draining child: %v, drained %v\nstderr: %s", err, drained, stderr.String())
	case !drain && !killed:
		t.Fatalf("child ended by itself: %v\nstderr: %s", err, stderr.String())
	case !drain && killAfter >= 0 && !ready:
		t.Fatalf("child died before it was ready: %v\nstderr: %s", err, stderr.String())
	}
	return n, killed
}
