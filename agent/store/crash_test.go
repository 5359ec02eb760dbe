package store

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/protocol"
)

// crashEnv names the store file for the child process of TestCrash.
const crashEnv = "KOGGE_STORE_CRASH_CHILD"

// TestCrashChild is the child of TestCrash: it saves captures from several
// goroutines until it is killed, and prints a line for each capture only
// after Save returned. Run alone, it skips.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashEnv)
	if path == "" {
		t.Skip("runs only as the child process of TestCrash")
	}
	s, err := Open(path, Options{Logger: discardLogger()})
	if err != nil {
		fmt.Fprintf(os.Stderr, "open: %v\n", err)
		os.Exit(2)
	}
	// Bounded in case the parent dies: the parent kills much earlier.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out sync.Mutex
	var wg sync.WaitGroup
	for w := range 4 {
		r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(w)))
		wg.Go(func() {
			for range 5000 {
				c := sample(r, 200+r.IntN(800), 1000+r.IntN(7000))
				rec, err := s.Save(ctx, c)
				if ctx.Err() != nil {
					return
				}
				if err != nil {
					fmt.Fprintf(os.Stderr, "save: %v\n", err)
					os.Exit(3)
				}
				line := fmt.Sprintf("saved %s %d %s %s\n", rec.ID, rec.Seq, rec.Blobs[0].ID, hex.EncodeToString(rec.Blobs[0].SHA256[:]))
				out.Lock()
				os.Stdout.WriteString(line) // one write per line, after Save returned
				out.Unlock()
			}
		})
	}
	wg.Wait()
	s.Close()
}

// printed is a record the child reported as saved.
type printed struct {
	id, blob uuid.UUID
	seq      uint64
	sum      protocol.Sum
}

func parsePrinted(line string) (printed, error) {
	f := strings.Fields(line)
	if len(f) != 5 || f[0] != "saved" {
		return printed{}, fmt.Errorf("unexpected line %q", line)
	}
	var p printed
	var err error
	if p.id, err = uuid.Parse(f[1]); err != nil {
		return p, err
	}
	if p.seq, err = strconv.ParseUint(f[2], 10, 64); err != nil {
		return p, err
	}
	if p.blob, err = uuid.Parse(f[3]); err != nil {
		return p, err
	}
	b, err := hex.DecodeString(f[4])
	if err != nil {
		return p, err
	}
	return p, p.sum.UnmarshalBinary(b)
}

// runChild starts the child on path, kills it with SIGKILL at a random
// point 5–60 ms after its first printed line, and returns what it printed.
func runChild(t *testing.T, path string, r *rand.Rand) []printed {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+path)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1024)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var got []string
	select {
	case l, ok := <-lines:
		if !ok {
			cmd.Wait()
			t.Fatalf("child ended without saving anything: %s", stderr.String())
		}
		got = append(got, l)
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child saved nothing in 20 s: %s", stderr.String())
	}
	kill := time.NewTimer(time.Duration(5+r.IntN(56)) * time.Millisecond)
	defer kill.Stop()
	killed := false
	for !killed {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("child ended before it was killed: %s", stderr.String())
			}
			got = append(got, l)
		case <-kill.C:
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	for l := range lines { // what it printed before it died
		got = append(got, l)
	}
	if err := cmd.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("child: %v, want killed; stderr: %s", err, stderr.String())
	}
	var ps []printed
	for _, l := range got {
		if !strings.HasPrefix(l, "saved ") {
			continue // test framework output
		}
		p, err := parsePrinted(l)
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	return ps
}

// TestCrash kills a child process that saves captures in a loop with
// SIGKILL at random points, at least 50 times, and checks after each kill
// that the store opens cleanly, that every capture whose Save returned is
// there with its blob intact, and that no sequence number is used twice.
// Between kills it acknowledges and wipes some records, so that deletion
// is part of the history too.
func TestCrash(t *testing.T) {
	if os.Getenv(crashEnv) != "" {
		t.Skip("in the child")
	}
	kills := 50
	if testing.Short() {
		kills = 10
	}
	path := testPath(t)
	r := newRand(t)
	// The kills may take up to the 2 minutes below; the checks after
	// each need a context that outlives them.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bySeq := make(map[uint64]uuid.UUID) // every seq ever reported, with its record
	var highest uint64
	total := 0
	deadline := time.Now().Add(2 * time.Minute)
	for i := range kills {
		if time.Now().After(deadline) {
			t.Fatalf("only %d kills in 2 minutes", i)
		}
		ps := runChild(t, path, r)
		total += len(ps)
		s, err := Open(path, Options{Logger: discardLogger()})
		if err != nil {
			t.Fatalf("kill %d: reopen: %v", i, err)
		}
		if s.MovedAside() != "" {
			t.Fatalf("kill %d: store moved aside to %s", i, s.MovedAside())
		}
		for _, p := range ps {
			if prev, ok := bySeq[p.seq]; ok && prev != p.id {
				t.Fatalf("kill %d: seq %d reused: %v and %v", i, p.seq, prev, p.id)
			}
			bySeq[p.seq] = p.id
			highest = max(highest, p.seq)
			e, err := s.Get(ctx, p.id)
			if err != nil || e.Seq != p.seq {
				t.Fatalf("kill %d: record %v (seq %d) whose Save returned: %+v, %v", i, p.id, p.seq, e, err)
			}
			data, err := readAll(ctx, s, p.blob)
			if err != nil || sum(data) != p.sum {
				t.Fatalf("kill %d: blob of record %d: %d bytes, %v; digest mismatch", i, p.seq, len(data), err)
			}
		}
		_, hi, err := s.Bounds(ctx)
		if err != nil || hi < highest {
			t.Fatalf("kill %d: highest seq %d, %v; a returned save had %d", i, hi, err, highest)
		}
		// Acknowledge half of this run's records and their blobs, and now
		// and then wipe what is unsent: the next runs must go on above.
		for j, p := range ps {
			if j%2 == 0 {
				if err := s.MarkStored(ctx, p.id); err != nil {
					t.Fatal(err)
				}
				if err := s.MarkBlobComplete(ctx, p.blob); err != nil {
					t.Fatal(err)
				}
			}
		}
		if i%7 == 6 {
			if _, err := s.WipeUnsent(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// Finally: the whole history has unique seqs and ids, and every record
	// reported by a child that was not wiped is there.
	s := openAt(t, path, Options{})
	ids := make(map[uuid.UUID]bool)
	var last uint64
	for after := uint64(0); ; {
		page, err := s.List(ctx, after, 500)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		for _, e := range page {
			if e.Seq <= last || ids[e.ID] {
				t.Fatalf("seq %d after %d, id %v seen before: %v", e.Seq, last, e.ID, ids[e.ID])
			}
			if want, ok := bySeq[e.Seq]; ok && want != e.ID {
				t.Fatalf("seq %d belongs to %v, found %v", e.Seq, want, e.ID)
			}
			last, ids[e.ID] = e.Seq, true
		}
		after = last
	}
	t.Logf("%d kills, %d captures reported saved, %d records kept, highest seq %d", kills, total, len(ids), highest)
	if total < kills {
		t.Errorf("only %d captures in %d runs", total, kills)
	}
}
