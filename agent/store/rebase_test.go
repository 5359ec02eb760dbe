package store

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/protocol"
)

// rebaseRow is what a record should look like after a rebase.
type rebaseRow struct {
	seq    uint64
	state  State
	reason string
}

func TestRebase(t *testing.T) {
	// Each setup fills a store and returns its records in seq order.
	saveN := func(n int) func(t *testing.T, s *Store) []protocol.Record {
		return func(t *testing.T, s *Store) []protocol.Record {
			r := newRand(t)
			var recs []protocol.Record
			for i := range n {
				var blobs []int
				if i%2 == 0 {
					blobs = []int{70 << 10} // two segments
				}
				recs = append(recs, mustSave(t, s, sample(r, 20, blobs...)))
			}
			return recs
		}
	}
	tests := []struct {
		name  string
		setup func(t *testing.T, s *Store) []protocol.Record
		above uint64
		want  []rebaseRow // by the records setup returned
		next  uint64      // the sequence the next Save gets
	}{
		{
			name:  "empty store",
			setup: saveN(0),
			above: 500,
			next:  501,
		},
		{
			name:  "three unsent",
			setup: saveN(3),
			above: 500,
			want:  []rebaseRow{{501, Saved, ""}, {502, Saved, ""}, {503, Saved, ""}},
			next:  504,
		},
		{
			name: "every state, after a wipe",
			setup: func(t *testing.T, s *Store) []protocol.Record {
				ctx := testCtx(t)
				saveN(2)(t, s)
				if _, err := s.WipeUnsent(ctx); err != nil {
					t.Fatal(err)
				}
				recs := saveN(4)(t, s) // 3 to 6
				if err := s.MarkStored(ctx, recs[0].ID); err != nil {
					t.Fatal(err)
				}
				if err := s.MarkRejected(ctx, recs[1].ID, "sequence 4 is taken by another record"); err != nil {
					t.Fatal(err)
				}
				return recs
			},
			above: 40,
			want: []rebaseRow{
				{41, Stored, ""}, {42, Rejected, "sequence 4 is taken by another record"},
				{43, Saved, ""}, {44, Saved, ""},
			},
			next: 45,
		},
		{
			name:  "highest equals the watermark",
			setup: saveN(3),
			above: 3,
			want:  []rebaseRow{{4, Saved, ""}, {5, Saved, ""}, {6, Saved, ""}},
			next:  7,
		},
		{
			// Captures saved between the hello and the answer: the
			// counter passed the watermark before the renumbering.
			name:  "saved past the watermark meanwhile",
			setup: saveN(5),
			above: 2,
			want:  []rebaseRow{{3, Saved, ""}, {4, Saved, ""}, {5, Saved, ""}, {6, Saved, ""}, {7, Saved, ""}},
			next:  8,
		},
		{
			name: "nothing at or below the watermark",
			setup: func(t *testing.T, s *Store) []protocol.Record {
				saveN(3)(t, s)
				if _, err := s.WipeUnsent(testCtx(t)); err != nil {
					t.Fatal(err)
				}
				return nil
			},
			above: 2,
			next:  4,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := testPath(t)
			s := openAt(t, path, Options{})
			ctx := testCtx(t)
			recs := tt.setup(t, s)
			blobData := map[uuid.UUID][]byte{}
			for _, r := range recs {
				for _, b := range r.Blobs {
					data, err := readAll(ctx, s, b.ID)
					if err != nil {
						t.Fatal(err)
					}
					blobData[b.ID] = data
				}
			}
			events, unwatch := s.Watch()
			defer unwatch()

			renumbered := 0
			for i, r := range recs {
				if tt.want[i].seq != r.Seq {
					renumbered++
				}
			}
			n, err := s.Rebase(ctx, tt.above)
			if err != nil || n != renumbered {
				t.Fatalf("Rebase(%d) = %d, %v; want %d", tt.above, n, err, renumbered)
			}
			// Watchers learn every new number.
			// Watchers learn every new number; the events are published
			// before Rebase returns.
			for range renumbered {
				select {
				case e := <-events:
					if i := indexOf(recs, e.ID); i < 0 || e.Seq != tt.want[i].seq || e.State != tt.want[i].state {
						t.Errorf("event %+v after Rebase; want a renumbered record in its state", e)
					}
				default:
					t.Fatalf("fewer than %d events after Rebase", renumbered)
				}
			}
			check := func(when string, s *Store) {
				t.Helper()
				checkRebased(t, when, s, recs, tt.want, tt.next-1, blobData)
			}
			check("after Rebase", s)

			// Idempotent: the same watermark again changes nothing.
			if n, err := s.Rebase(ctx, tt.above); err != nil || n != 0 {
				t.Fatalf("second Rebase(%d) = %d, %v; want 0", tt.above, n, err)
			}
			check("after a second Rebase", s)

			// Durable: a reopened store has the new numbers.
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openAt(t, path, Options{})
			check("after reopening", s)

			// The counter continues after the renumbered records.
			if got := mustSave(t, s, sample(newRand(t), 10)); got.Seq != tt.next {
				t.Errorf("Save after Rebase got seq %d, want %d", got.Seq, tt.next)
			}
			if n, err := s.Rebase(ctx, tt.above); err != nil || n != 0 {
				t.Errorf("Rebase(%d) after a Save = %d, %v; want 0", tt.above, n, err)
			}
		})
	}
}

func indexOf(recs []protocol.Record, id uuid.UUID) int {
	for i, r := range recs {
		if r.ID == id {
			return i
		}
	}
	return -1
}

// checkRebased checks that every record has its wanted sequence and state,
// that Pending, PendingBlobs and Bounds agree, and that blobs are intact.
func checkRebased(t *testing.T, when string, s *Store, recs []protocol.Record, want []rebaseRow, highest uint64,
	blobData map[uuid.UUID][]byte) {
	t.Helper()
	ctx := testCtx(t)
	var wantPending []uint64
	var lowest uint64
	for i, r := range recs {
		e, err := s.Get(ctx, r.ID)
		if err != nil {
			t.Fatalf("%s: record %d: %v", when, r.Seq, err)
		}
		w := want[i]
		if e.Seq != w.seq || e.State != w.state || e.Reason != w.reason {
			t.Errorf("%s: record %d is seq %d, %v %q; want seq %d, %v %q", when, r.Seq, e.Seq, e.State, e.Reason,
				w.seq, w.state, w.reason)
		}
		if w.state == Saved {
			wantPending = append(wantPending, w.seq)
			if lowest == 0 {
				lowest = w.seq
			}
		}
	}
	pending, err := s.Pending(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if got := seqsOf(pending); fmt.Sprint(got) != fmt.Sprint(wantPending) {
		t.Errorf("%s: pending %v, want %v", when, got, wantPending)
	}
	for _, p := range pending {
		i := indexOf(recs, p.ID)
		if i < 0 || !bytes.Equal(p.Sealed, recs[i].Sealed) || len(p.Blobs) != len(recs[i].Blobs) {
			t.Errorf("%s: pending record %d does not match what was saved", when, p.Seq)
		}
	}
	lo, hi, err := s.Bounds(ctx)
	if err != nil || lo != lowest || hi != highest {
		t.Errorf("%s: Bounds = %d, %d, %v; want %d, %d", when, lo, hi, err, lowest, highest)
	}
	pbs, err := s.PendingBlobs(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, pb := range pbs {
		i := indexOf(recs, pb.Record)
		if i < 0 || pb.Seq != want[i].seq {
			t.Errorf("%s: pending blob %v names seq %d, want the record's %d", when, pb.Blob, pb.Seq, want[i].seq)
		}
	}
	for id, data := range blobData {
		got, err := readAll(ctx, s, id)
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s: blob %v: %d bytes, %v; want the %d saved", when, id, len(got), err, len(data))
		}
	}
}

func seqsOf(recs []protocol.Record) []uint64 {
	var out []uint64
	for _, r := range recs {
		out = append(out, r.Seq)
	}
	return out
}

// A rebase and saves in one writer batch: the save before it is
// renumbered, the one after it continues above.
func TestRebaseBesideSaves(t *testing.T) {
	s := openTest(t, Options{})
	ctx := testCtx(t)
	r := newRand(t)
	mustSave(t, s, sample(r, 10))
	first, err := prepare(sample(r, 10))
	if err != nil {
		t.Fatal(err)
	}
	second, err := prepare(sample(r, 10))
	if err != nil {
		t.Fatal(err)
	}
	var before, after protocol.Record
	var n int
	if err := s.change(ctx, func(w *wtx) error {
		var err error
		if before, err = w.insert(first); err != nil {
			return err
		}
		if n, err = w.rebase(100); err != nil {
			return err
		}
		after, err = w.insert(second)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if n != 2 || before.Seq != 2 || after.Seq != 103 {
		t.Fatalf("rebase renumbered %d, saves got %d and %d; want 2, 2 and 103", n, before.Seq, after.Seq)
	}
	if e, err := s.Get(ctx, before.ID); err != nil || e.Seq != 102 {
		t.Errorf("record saved before the rebase: seq %d, %v; want 102", e.Seq, err)
	}
	if _, hi, err := s.Bounds(ctx); err != nil || hi != 103 {
		t.Errorf("highest %d, %v; want 103", hi, err)
	}
}

func TestRebaseRefusesOverflow(t *testing.T) {
	s := openTest(t, Options{})
	ctx := testCtx(t)
	rec := mustSave(t, s, sample(newRand(t), 10))
	if n, err := s.Rebase(ctx, 1<<63-1); err == nil {
		t.Fatalf("Rebase to the largest sequence renumbered %d records", n)
	}
	// Nothing changed.
	if e, err := s.Get(ctx, rec.ID); err != nil || e.Seq != 1 {
		t.Errorf("record after the refused Rebase: seq %d, %v; want 1", e.Seq, err)
	}
	if got := mustSave(t, s, sample(newRand(t), 10)); got.Seq != 2 {
		t.Errorf("next Save got seq %d, want 2", got.Seq)
	}
}
