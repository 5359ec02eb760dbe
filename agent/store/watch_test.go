package store

import (
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
)

// next receives one entry or fails after a deadline.
func next(t *testing.T, ch <-chan Entry) Entry {
	t.Helper()
	select {
	case e, ok := <-ch:
		if !ok {
			t.Fatal("watch channel closed")
		}
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("no entry within 10 s")
	}
	return Entry{}
}

func TestWatch(t *testing.T) {
	s := openTest(t, Options{})
	ctx := testCtx(t)
	r := newRand(t)
	ch, cancel := s.Watch()
	defer cancel()

	a := mustSave(t, s, sample(r, 10))
	b := mustSave(t, s, sample(r, 10))
	steps := []struct {
		name   string
		do     func() error
		id     uuid.UUID
		state  State
		detail func(e Entry) bool
	}{
		{"saved", nil, a.ID, Saved, func(e Entry) bool { return e.Seq == 1 && e.Kind == a.Kind && e.Meta["service"] == "id-card" }},
		{"saved too", nil, b.ID, Saved, func(e Entry) bool { return e.Seq == 2 }},
		{"stored", func() error { return s.MarkStored(ctx, a.ID) }, a.ID, Stored, nil},
		{"accepted", func() error { return s.SetState(ctx, a.ID, Accepted, "AZ-1", "ok") }, a.ID, Accepted,
			func(e Entry) bool { return e.Reference == "AZ-1" && e.Note == "ok" }},
		{"rejected", func() error { return s.MarkRejected(ctx, b.ID, "unknown office") }, b.ID, Rejected,
			func(e Entry) bool { return e.Reason == "unknown office" }},
	}
	for _, st := range steps {
		if st.do != nil {
			if err := st.do(); err != nil {
				t.Fatalf("%s: %v", st.name, err)
			}
		}
		e := next(t, ch)
		if e.ID != st.id || e.State != st.state || (st.detail != nil && !st.detail(e)) {
			t.Errorf("%s: entry %+v, want %v in state %v", st.name, e, st.id, st.state)
		}
	}
	// A change that changes nothing sends nothing: a repeated ack.
	if err := s.MarkStored(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	c := mustSave(t, s, sample(r, 10))
	if e := next(t, ch); e.ID != c.ID {
		t.Errorf("after a repeated ack the next entry is %+v, want the new save %v", e, c.ID)
	}

	cancel()
	cancel() // twice is harmless
	if _, ok := <-ch; ok {
		t.Error("channel still open after cancel")
	}
}

func TestWatchSlowWatcher(t *testing.T) {
	s := openTest(t, Options{})
	ctx := testCtx(t)
	slow, cancel := s.Watch()
	defer cancel()
	const total = watchBuffer + 64
	var wg sync.WaitGroup
	for w := range 16 {
		r := newRand(t)
		wg.Go(func() {
			for range total / 16 {
				if _, err := s.Save(ctx, sample(r, 10)); err != nil {
					t.Errorf("worker %d: Save with a watcher that does not read: %v", w, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if len(slow) != watchBuffer {
		t.Fatalf("slow watcher holds %d entries, want a full buffer of %d", len(slow), watchBuffer)
	}
	// Drop-oldest: what is left are the newest entries, in commit order.
	var prev uint64
	for range watchBuffer {
		e := <-slow
		if e.Seq <= prev {
			t.Fatalf("entry seq %d after %d", e.Seq, prev)
		}
		prev = e.Seq
	}
	if prev != total {
		t.Errorf("last entry seq %d, want the newest %d", prev, total)
	}
}

func TestWatchClose(t *testing.T) {
	s := openTest(t, Options{})
	ch, cancel := s.Watch()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-ch; ok {
		t.Error("watch channel open after Close")
	}
	cancel() // after Close: harmless
	late, lateCancel := s.Watch()
	defer lateCancel()
	if _, ok := <-late; ok {
		t.Error("Watch after Close gave an open channel")
	}
}
