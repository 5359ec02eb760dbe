package sync_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	gosync "sync"
	"testing"

	"github.com/kogge-fleet/kogge/agent/internal/testserver"
	"github.com/kogge-fleet/kogge/agent/sync"
	"github.com/kogge-fleet/kogge/agent/sync/synctest"
	"github.com/kogge-fleet/kogge/protocol"
)

// lockedBuffer is an io.Writer for a log handler, safe for concurrent use.
type lockedBuffer struct {
	mu gosync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startEngine runs an engine for box over the link's device end until the
// returned stop is called.
func startEngine(t *testing.T, box sync.Outbox, link *synctest.Link, opts sync.Options) (*sync.Engine, func()) {
	t.Helper()
	eng, err := sync.New(device, box, link.Device(), opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := eng.Run(ctx); err != nil {
			t.Errorf("engine: %v", err)
		}
	}()
	var once gosync.Once
	stop := func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return eng, stop
}

// A device whose store was reset (a fresh outbox numbering from 1) meets a
// server that holds 500 records of its former store. The server's first
// SyncState must not make it mark anything stored (the server's records
// 1 to 3 are other records); it renumbers its records above 500, says
// hello again, and they arrive as 501 to 503.
func TestResetStoreRenumbersAboveTheServer(t *testing.T) {
	const watermark = 500
	tests := []struct {
		name      string
		failFirst bool // the first Rebase fails: the engine asks again
	}{
		{"rebase at once", false},
		{"rebase fails once", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			link := synctest.NewLink()
			srv := testserver.New(testserver.Options{Logger: quiet()})
			ctx, cancel := context.WithCancel(context.Background())
			served := make(chan struct{})
			go func() {
				defer close(served)
				if err := srv.Serve(ctx, link.Server()); err != nil {
					t.Errorf("server: %v", err)
				}
			}()
			t.Cleanup(func() { cancel(); <-served; link.Close() })
			h := &harness{t: t, link: link, srv: srv}

			// The former store: 500 records, all stored at the server.
			former := synctest.NewOutbox()
			var old []protocol.Record
			for i := range watermark {
				old = append(old, former.Add(capture(i, 0, 0)))
			}
			opts := fast()
			opts.Logger = quiet()
			_, stop := startEngine(t, former, link, opts)
			link.Heal()
			h.wait("the former store drained", func() bool { return len(former.Unsent()) == 0 })
			link.Cut()
			stop()

			// The fresh store after the reset, with three captures.
			fresh := synctest.NewOutbox()
			var recs []protocol.Record
			for i := range 3 {
				recs = append(recs, fresh.Add(capture(i, 0, 0)))
			}
			if tt.failFirst {
				fresh.FailNext("Rebase", errors.New("disk I/O error"))
			}
			rebased := make(chan int, 1)
			fresh.After("Rebase", 1+btoi(tt.failFirst), func() {
				n := fresh.Calls("MarkStored")
				for _, r := range recs {
					if fresh.Stored(r.ID) {
						n++
					}
				}
				rebased <- n
			})
			var mu gosync.Mutex
			var states []*protocol.SyncState
			link.SetFilter(func(fromDevice bool, topic string, payload []byte) bool {
				if !fromDevice && strings.HasSuffix(topic, "/down/sync") {
					env, err := protocol.Decode(payload)
					if err == nil {
						mu.Lock()
						states = append(states, env.Body.(*protocol.SyncState))
						mu.Unlock()
					}
				}
				return true
			})
			logs := &lockedBuffer{}
			opts.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
			eng, _ := startEngine(t, fresh, link, opts)
			link.Heal()
			h.wait("the fresh store drained", func() bool { return len(fresh.Unsent()) == 0 })

			select {
			case n := <-rebased:
				if n != 0 {
					t.Errorf("%d records marked or MarkStored calls before the rebase; the reset answer must mark nothing", n)
				}
			default:
				t.Fatal("the engine never renumbered the outbox")
			}
			mu.Lock()
			first := states[0]
			mu.Unlock()
			if first.Stored != watermark || len(first.Missing) != 0 {
				t.Errorf("first SyncState: stored %d, missing %v; want stored %d, nothing missing",
					first.Stored, first.Missing, watermark)
			}
			got := srv.Records(device)
			if len(got) != watermark+3 {
				t.Fatalf("server holds %d records, want %d", len(got), watermark+3)
			}
			for i, r := range recs {
				g := got[watermark+i]
				if g.ID != r.ID || g.Seq != watermark+1+uint64(i) {
					t.Errorf("record %d of the fresh store arrived as seq %d (%v), want seq %d (%v)",
						i, g.Seq, g.ID, watermark+1+i, r.ID)
				}
				if !fresh.Stored(r.ID) {
					t.Errorf("record %d of the fresh store is not marked stored", i)
				}
			}
			for i, r := range old {
				if got[i].ID != r.ID || got[i].Seq != r.Seq {
					t.Fatalf("former record %d changed at the server", r.Seq)
				}
			}
			c := srv.Counts(device)
			if len(c.Violations) > 0 || c.Rejected != 0 || c.Resets != 1+btoi(tt.failFirst) {
				t.Errorf("server counts %+v: want no violations, no rejections, %d reset hellos", c, 1+btoi(tt.failFirst))
			}
			if s := eng.Stats(); s.MarkedBySync != 0 {
				t.Errorf("the engine marked %d records stored from a SyncState", s.MarkedBySync)
			}
			if n := strings.Count(logs.String(), "store was reset; renumbering 3 unsent records after the server's sequence 500"); n != 1 {
				t.Errorf("the reset was logged %d times, want once:\n%s", n, logs.String())
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
