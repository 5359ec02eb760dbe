package store

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/protocol"
)

func TestBudget(t *testing.T) {
	const budget = 2 << 20
	s := openTest(t, Options{Budget: budget})
	ctx := testCtx(t)
	r := newRand(t)
	var saved []protocol.Record
	var fullErr error
	for range 20 {
		rec, err := s.Save(ctx, sample(r, 1024, 200<<10))
		if err != nil {
			fullErr = err
			break
		}
		saved = append(saved, rec)
	}
	if !errors.Is(fullErr, ErrFull) {
		t.Fatalf("after %d captures of 200 KiB in a 2 MiB budget: %v, want ErrFull", len(saved), fullErr)
	}
	t.Logf("refused after %d captures: %v", len(saved), fullErr)
	msg := fullErr.Error()
	for _, want := range []string{"storage full", "of the 2 MiB budget", "used by " + strconv.Itoa(len(saved)) + " unsent records", "captures paused until they are delivered"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}
	if len(saved) < 5 {
		t.Errorf("only %d captures of 200 KiB fit into 2 MiB", len(saved))
	}
	st, err := s.Stats(ctx)
	if err != nil || !st.Full || st.QueueDepth != len(saved) || st.BudgetUsed > budget {
		t.Errorf("Stats when full = %+v, %v; want full, %d queued, at most the budget used", st, err, len(saved))
	}
	// Nothing of the refused capture was written.
	if _, hi, _ := s.Bounds(ctx); hi != uint64(len(saved)) {
		t.Errorf("highest seq = %d after a refused capture, want %d", hi, len(saved))
	}
	if bs, _ := s.PendingBlobs(ctx, 100); len(bs) != len(saved) {
		t.Errorf("%d blobs stored, want %d", len(bs), len(saved))
	}

	// Metadata writes still work when full, so the device can drain.
	if err := s.PutValue(ctx, "twin", []byte(strings.Repeat("x", 2000))); err != nil {
		t.Errorf("PutValue when full: %v", err)
	}
	cmd := uuid.New()
	if _, err := s.AddCommand(ctx, cmd, []byte("sync-now")); err != nil {
		t.Errorf("AddCommand when full: %v", err)
	}
	if err := s.SetCommandResult(ctx, cmd, []byte("ok")); err != nil {
		t.Errorf("SetCommandResult when full: %v", err)
	}
	half := len(saved) / 2
	var ids []uuid.UUID
	for _, rec := range saved[:half] {
		ids = append(ids, rec.ID)
	}
	if err := s.MarkStored(ctx, ids...); err != nil {
		t.Fatalf("MarkStored when full: %v", err)
	}
	if err := s.SetState(ctx, saved[0].ID, Delivered, "", ""); err != nil {
		t.Errorf("SetState when full: %v", err)
	}
	for _, rec := range saved[:half] {
		if err := s.MarkBlobComplete(ctx, rec.Blobs[0].ID); err != nil {
			t.Fatalf("MarkBlobComplete when full: %v", err)
		}
	}
	st2, err := s.Stats(ctx)
	if err != nil || st2.Full || st2.BudgetUsed >= st.BudgetUsed {
		t.Errorf("Stats after draining = %+v, %v; want not full and less used than %d", st2, err, st.BudgetUsed)
	}
	for range half {
		if _, err := s.Save(ctx, sample(r, 1024, 200<<10)); err != nil {
			t.Fatalf("Save after freeing space: %v", err)
		}
	}
}

func TestBudgetConcurrent(t *testing.T) {
	// Many captures in one batch: the batch books each against the budget.
	const budget = 1 << 20
	s := openTest(t, Options{Budget: budget})
	ctx := testCtx(t)
	errs := make(chan error, 64)
	for i := range 64 {
		go func() {
			r := newRand(t)
			_, err := s.Save(ctx, sample(r, 100, 30<<10+i))
			errs <- err
		}()
	}
	var ok, full int
	for range 64 {
		switch err := <-errs; {
		case err == nil:
			ok++
		case errors.Is(err, ErrFull):
			full++
		default:
			t.Errorf("Save: %v", err)
		}
	}
	st, err := s.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d saved, %d refused, %d of %d bytes used", ok, full, st.BudgetUsed, budget)
	if full == 0 || ok == 0 || st.BudgetUsed > budget {
		t.Errorf("%d saved, %d refused, %d bytes used of %d: want some of each, within the budget", ok, full, st.BudgetUsed, budget)
	}
}

func TestDiskReserve(t *testing.T) {
	s := openTest(t, Options{DiskReserve: 1 << 60})
	ctx := testCtx(t)
	_, err := s.Save(ctx, sample(newRand(t), 100))
	if !errors.Is(err, ErrFull) || !strings.Contains(err.Error(), "free on the disk") || !strings.Contains(err.Error(), "must stay free") {
		t.Fatalf("Save below the disk reserve = %v, want ErrFull naming the free disk space", err)
	}
	t.Logf("refused: %v", err)
	if st, err := s.Stats(ctx); err != nil || !st.Full {
		t.Errorf("Stats = %+v, %v; want full", st, err)
	}
	if err := s.PutValue(ctx, "k", []byte("v")); err != nil {
		t.Errorf("PutValue below the disk reserve: %v", err)
	}
}

func TestVacuum(t *testing.T) {
	s := openTest(t, Options{})
	// Set before the first write; the writer reads them after receiving it.
	s.vacuumThreshold, s.vacuumStep = 64, 100
	ctx := testCtx(t)
	r := newRand(t)
	small := mustSave(t, s, sample(r, 10, 100<<10))
	var big []protocol.Record
	for range 4 {
		big = append(big, mustSave(t, s, sample(r, 10, 1<<20)))
	}
	full := pragma(t, s, "page_count")

	// Below the threshold nothing is given back yet.
	if err := s.MarkBlobComplete(ctx, small.Blobs[0].ID); err != nil {
		t.Fatal(err)
	}
	if err := s.PutValue(ctx, "k", nil); err != nil { // a later write: the vacuum decision is made
		t.Fatal(err)
	}
	if free := pragma(t, s, "freelist_count"); free < 20 || free >= 64 {
		t.Errorf("after freeing 100 KiB, %d free pages; want them kept until 64 are free", free)
	}

	for _, rec := range big {
		if err := s.MarkBlobComplete(ctx, rec.Blobs[0].ID); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the free pages to be given back", func() bool { return pragma(t, s, "freelist_count") < 64 })
	after := pragma(t, s, "page_count")
	t.Logf("page count %d before, %d after giving back 4 MiB", full, after)
	if after > full-900 {
		t.Errorf("page count %d after deleting 4 MiB of %d pages; want about 1000 pages fewer", after, full)
	}
}
