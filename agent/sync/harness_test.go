package sync_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	gosync "sync"
	"testing"
	"time"

	"github.com/kogge-fleet/kogge/agent/internal/testserver"
	"github.com/kogge-fleet/kogge/agent/store"
	"github.com/kogge-fleet/kogge/agent/sync"
	"github.com/kogge-fleet/kogge/agent/sync/synctest"
	"github.com/kogge-fleet/kogge/protocol"
)

const device = "dev-1"

// harness runs an engine against the test server over an in-memory link.
type harness struct {
	t    *testing.T
	link *synctest.Link
	box  *synctest.Outbox
	srv  *testserver.Server
	eng  *sync.Engine

	mu     gosync.Mutex
	events []sync.Event
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// fast are engine options for tests: small chunks, short timeouts.
func fast() sync.Options {
	return sync.Options{
		ChunkSize:    1024,
		AckTimeout:   100 * time.Millisecond,
		HelloTimeout: 100 * time.Millisecond,
		MaxBackoff:   400 * time.Millisecond,
	}
}

func newHarness(t *testing.T, opts sync.Options, sopts testserver.Options) *harness {
	t.Helper()
	h := &harness{t: t, link: synctest.NewLink(), box: synctest.NewOutbox()}
	if sopts.Logger == nil {
		sopts.Logger = quiet()
	}
	h.srv = testserver.New(sopts)
	if opts.Logger == nil {
		opts.Logger = quiet()
	}
	next := opts.OnEvent
	opts.OnEvent = func(ev sync.Event) {
		h.mu.Lock()
		h.events = append(h.events, ev)
		h.mu.Unlock()
		if next != nil {
			next(ev)
		}
	}
	eng, err := sync.New(device, h.box, h.link.Device(), opts)
	if err != nil {
		t.Fatal(err)
	}
	h.eng = eng
	ctx, cancel := context.WithCancel(context.Background())
	var wg gosync.WaitGroup
	wg.Go(func() {
		if err := eng.Run(ctx); err != nil {
			t.Errorf("engine: %v", err)
		}
	})
	wg.Go(func() {
		if err := h.srv.Serve(ctx, h.link.Server()); err != nil {
			t.Errorf("server: %v", err)
		}
	})
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		h.link.Close()
	})
	return h
}

func (h *harness) eventsOf(kind sync.EventKind) []sync.Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	var evs []sync.Event
	for _, ev := range h.events {
		if ev.Kind == kind {
			evs = append(evs, ev)
		}
	}
	return evs
}

// add saves n captures; every blobEvery-th gets a blob of blobSize bytes.
func (h *harness) add(n, blobEvery, blobSize int) []protocol.Record {
	recs := make([]protocol.Record, n)
	for i := range recs {
		recs[i] = h.box.Add(capture(i, blobEvery, blobSize))
	}
	h.eng.Poke()
	return recs
}

func capture(i, blobEvery, blobSize int) store.Capture {
	c := store.Capture{
		Kind:   "test.record",
		Office: "office-1",
		Meta:   map[string]string{"n": fmt.Sprint(i)},
		Sealed: bytes.Repeat([]byte{byte(i)}, 64),
	}
	if blobEvery > 0 && i%blobEvery == 0 {
		data := make([]byte, blobSize)
		for j := range data {
			data[j] = byte(rand.IntN(256))
		}
		c.Blobs = []store.BlobData{{Role: "photo", Data: data}}
	}
	return c
}

// wait polls cond until it holds or the deadline passes; it is woken by
// every change at the server.
func (h *harness) wait(what string, cond func() bool) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// The server's changes wake the waiter; the device's own changes
	// (marking stored) follow an ack, so poll those on a short tick too.
	done := make(chan error, 1)
	go func() { done <- h.srv.Wait(ctx, cond) }()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			if err != nil {
				h.t.Fatalf("waiting for %s: %v", what, err)
			}
			return
		case <-tick.C:
			if cond() {
				cancel()
				<-done
				return
			}
		}
	}
}

// drained reports whether the device has nothing left to send.
func (h *harness) drained() bool {
	return len(h.box.Unsent()) == 0 && h.box.BlobsLeft() == 0 && h.box.ResultsLeft() == 0
}

// checkDelivered checks that every record in recs is at the server exactly
// once, in sequence order, with its blobs complete and correct.
func checkDelivered(t *testing.T, srv *testserver.Server, recs []protocol.Record) {
	t.Helper()
	got := srv.Records(device)
	if len(got) != len(recs) {
		t.Fatalf("server stored %d records, want %d", len(got), len(recs))
	}
	for i, r := range got {
		if r.ID != recs[i].ID || r.Seq != recs[i].Seq {
			t.Fatalf("server record %d is seq %d (%v), want seq %d (%v)", i, r.Seq, r.ID, recs[i].Seq, recs[i].ID)
		}
		if i > 0 && r.Seq <= got[i-1].Seq {
			t.Fatalf("server stored seq %d after seq %d", r.Seq, got[i-1].Seq)
		}
		st, _ := srv.Record(device, r.ID)
		if st.Rejected != "" {
			t.Fatalf("record %d rejected: %s", r.Seq, st.Rejected)
		}
		for _, ref := range recs[i].Blobs {
			b, ok := srv.Blob(device, ref.ID)
			if !ok || !b.Complete {
				t.Fatalf("blob %v of record %d is not complete at the server", ref.ID, r.Seq)
			}
			if uint64(len(b.Data)) != ref.Size || protocol.SumOf(b.Data) != ref.SHA256 {
				t.Fatalf("blob %v of record %d: %d bytes with the wrong digest", ref.ID, r.Seq, len(b.Data))
			}
		}
	}
	if v := srv.Counts(device).Violations; len(v) > 0 {
		t.Fatalf("contract violations: %v", v)
	}
}
