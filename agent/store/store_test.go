package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/protocol"
)

func TestOpenFresh(t *testing.T) {
	path := testPath(t)
	s := openAt(t, path, Options{})
	if got := pragma(t, s, "auto_vacuum"); got != 2 {
		t.Errorf("auto_vacuum = %d, want 2 (incremental)", got)
	}
	var mode string
	if err := s.rdb.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v; want wal", mode, err)
	}
	var sync int
	if err := s.wconn.QueryRowContext(testCtx(t), "PRAGMA synchronous").Scan(&sync); err != nil || sync != 2 {
		t.Errorf("writer synchronous = %d, %v; want 2 (FULL)", sync, err)
	}
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	if got := pragma(t, s, "user_version"); got != 0 {
		t.Errorf("user_version = %d, want 0 (schema_version table is used)", got)
	}
	var version int
	if err := s.rdb.QueryRow("SELECT version FROM schema_version").Scan(&version); err != nil || version != len(ms) {
		t.Errorf("schema version = %d, %v; want %d", version, err, len(ms))
	}
	lo, hi, err := s.Bounds(testCtx(t))
	if err != nil || lo != 0 || hi != 0 {
		t.Errorf("Bounds = %d, %d, %v; want 0, 0, nil", lo, hi, err)
	}
	if s.MovedAside() != "" {
		t.Errorf("MovedAside = %q for a fresh store", s.MovedAside())
	}
	mustSave(t, s, sample(newRand(t), 10))
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// Reopening applies no migration again and keeps the data.
	s = openAt(t, path, Options{})
	if _, hi, _ := s.Bounds(testCtx(t)); hi != 1 {
		t.Errorf("after reopen highest = %d, want 1", hi)
	}
}

func TestOpenOddPath(t *testing.T) {
	// Characters that mean something in SQLite's URI syntax.
	path := filepath.Join(t.TempDir(), "a b?c#d%e&f=g", "outbox.db")
	s := openAt(t, path, Options{})
	rec := mustSave(t, s, sample(newRand(t), 10, 10))
	s.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("store file not at %s: %v", path, err)
	}
	s = openAt(t, path, Options{})
	if _, err := s.Get(testCtx(t), rec.ID); err != nil {
		t.Fatal(err)
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	path := testPath(t)
	s := openAt(t, path, Options{})
	if err := s.change(testCtx(t), func(w *wtx) error {
		_, err := w.tx.Exec("UPDATE schema_version SET version = 99")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err := Open(path, Options{Logger: discardLogger()})
	if err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("Open of a newer schema: %v, want an error that names a newer agent", err)
	}
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		ok   bool
	}{
		{"zero is defaults", Options{}, true},
		{"set", Options{Budget: 1 << 20, DiskReserve: 1, MaxBatch: 8}, true},
		{"negative budget", Options{Budget: -1}, false},
		{"negative reserve", Options{DiskReserve: -1}, false},
		{"negative batch", Options{MaxBatch: -1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.opts.Validate()
			if (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
			if !tt.ok {
				if _, err := Open(testPath(t), tt.opts); err == nil {
					t.Fatal("Open accepted invalid options")
				}
			}
		})
	}
	d := Options{}.withDefaults()
	if d.Budget != 512<<20 || d.DiskReserve != 64<<20 || d.MaxBatch != 256 || d.Logger == nil || d.Now == nil {
		t.Errorf("defaults = %+v", d)
	}
}

func TestSave(t *testing.T) {
	r := newRand(t)
	tooMuchMeta := map[string]string{}
	for i := range protocol.MaxMetaEntries + 1 {
		tooMuchMeta[fmt.Sprintf("k%d", i)] = "v"
	}
	tests := []struct {
		name    string
		capture func() Capture
		wantErr bool
	}{
		{"body only", func() Capture { return sample(r, 1024) }, false},
		{"no body no meta", func() Capture { return Capture{Kind: "road.report", Office: "strassenbau"} }, false},
		{"one small blob", func() Capture { return sample(r, 100, 1) }, false},
		{"blob of one segment", func() Capture { return sample(r, 100, segmentSize) }, false},
		{"blob just over a segment", func() Capture { return sample(r, 100, segmentSize+1) }, false},
		{"photo and fingerprints", func() Capture { return sample(r, 2000, 300<<10, 50<<10, 50<<10) }, false},
		{"largest body", func() Capture { return sample(r, protocol.MaxSealedBody) }, false},
		{"empty kind", func() Capture { c := sample(r, 10); c.Kind = ""; return c }, true},
		{"upper case kind", func() Capture { c := sample(r, 10); c.Kind = "Kiosk"; return c }, true},
		{"empty office", func() Capture { c := sample(r, 10); c.Office = ""; return c }, true},
		{"office with slash", func() Capture { c := sample(r, 10); c.Office = "a/b"; return c }, true},
		{"too much meta", func() Capture { c := sample(r, 10); c.Meta = tooMuchMeta; return c }, true},
		{"body too large", func() Capture { return sample(r, protocol.MaxSealedBody+1) }, true},
		{"empty blob", func() Capture { return sample(r, 10, 0) }, true},
		{"blob without role", func() Capture { c := sample(r, 10, 5); c.Blobs[0].Role = ""; return c }, true},
		{"too many blobs", func() Capture { return sample(r, 10, slices.Repeat([]int{1}, protocol.MaxBlobsPerRecord+1)...) }, true},
	}
	s := openTest(t, Options{})
	ctx := testCtx(t)
	var wantSeq uint64
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.capture()
			_, hiBefore, _ := s.Bounds(ctx)
			rec, err := s.Save(ctx, c)
			if tt.wantErr {
				if err == nil {
					t.Fatal("Save accepted an invalid capture")
				}
				if _, hi, _ := s.Bounds(ctx); hi != hiBefore {
					t.Errorf("a refused capture used sequence %d", hi)
				}
				return
			}
			if err != nil {
				t.Fatalf("Save: %v", err)
			}
			wantSeq++
			if err := rec.Validate(); err != nil {
				t.Errorf("returned record does not validate: %v", err)
			}
			if rec.Seq != wantSeq {
				t.Errorf("seq = %d, want %d", rec.Seq, wantSeq)
			}
			if rec.Kind != c.Kind || rec.Office != c.Office || rec.KeyID != c.KeyID || !bytes.Equal(rec.Sealed, c.Sealed) {
				t.Errorf("record %+v does not match the capture", rec)
			}
			if len(rec.Blobs) != len(c.Blobs) {
				t.Fatalf("%d blob refs, want %d", len(rec.Blobs), len(c.Blobs))
			}
			for i, b := range rec.Blobs {
				if b.Role != c.Blobs[i].Role || b.Size != uint64(len(c.Blobs[i].Data)) || b.SHA256 != sum(c.Blobs[i].Data) {
					t.Errorf("blob ref %d = %+v does not match its data", i, b)
				}
				data, err := readAll(ctx, s, b.ID)
				if err != nil || !bytes.Equal(data, c.Blobs[i].Data) {
					t.Errorf("blob %d read back %d bytes, %v; want the saved data", i, len(data), err)
				}
			}
			got, err := s.Pending(ctx, rec.Seq-1, 1)
			if err != nil || len(got) != 1 {
				t.Fatalf("Pending = %d records, %v", len(got), err)
			}
			if !recordsEqual(got[0], rec) {
				t.Errorf("Pending returned\n%+v\nwant\n%+v", got[0], rec)
			}
			e, err := s.Get(ctx, rec.ID)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			if e.Seq != rec.Seq || e.State != Saved || e.Kind != c.Kind || e.Office != c.Office ||
				!e.CreatedAt.Equal(rec.CreatedAt.Time()) || len(e.Meta) != len(c.Meta) {
				t.Errorf("Get = %+v", e)
			}
		})
	}
}

// recordsEqual compares records field by field, treating nil and empty
// alike.
func recordsEqual(a, b protocol.Record) bool {
	if a.ID != b.ID || a.Seq != b.Seq || a.Kind != b.Kind || a.Office != b.Office || a.KeyID != b.KeyID ||
		a.CreatedAt != b.CreatedAt || !bytes.Equal(a.Sealed, b.Sealed) || len(a.Meta) != len(b.Meta) ||
		!slices.Equal(a.Blobs, b.Blobs) {
		return false
	}
	for k, v := range a.Meta {
		if b.Meta[k] != v {
			return false
		}
	}
	return true
}

func TestSaveIDsAreV7AndOrdered(t *testing.T) {
	s := openTest(t, Options{})
	r := newRand(t)
	var prev protocol.Record
	for i := range 20 {
		rec := mustSave(t, s, sample(r, 10))
		if rec.ID.Version() != 7 {
			t.Fatalf("id %v is not a UUIDv7", rec.ID)
		}
		if i > 0 && bytes.Compare(rec.ID[:], prev.ID[:]) <= 0 {
			t.Fatalf("id %v of seq %d does not sort after %v of seq %d", rec.ID, rec.Seq, prev.ID, prev.Seq)
		}
		prev = rec
	}
}

func TestSaveCanceled(t *testing.T) {
	s := openTest(t, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Save(ctx, sample(newRand(t), 10)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Save with a canceled context = %v, want context.Canceled", err)
	}
	if _, hi, _ := s.Bounds(testCtx(t)); hi != 0 {
		t.Fatalf("a canceled save used sequence %d", hi)
	}
}

func TestSaveConcurrent(t *testing.T) {
	for _, noGroup := range []bool{false, true} {
		name := "group commit"
		if noGroup {
			name = "fsync each"
		}
		t.Run(name, func(t *testing.T) {
			path := testPath(t)
			s := openAt(t, path, Options{NoGroupCommit: noGroup})
			const workers, each = 32, 10
			var mu sync.Mutex
			saved := make(map[uuid.UUID]uint64)
			var wg sync.WaitGroup
			for w := range workers {
				wg.Go(func() {
					r := newRand(t)
					var last uint64
					for range each {
						c := sample(r, 200)
						if w%4 == 0 {
							c = sample(r, 200, 3000)
						}
						rec, err := s.Save(testCtx(t), c)
						if err != nil {
							t.Errorf("Save: %v", err)
							return
						}
						if rec.Seq <= last {
							t.Errorf("worker %d got seq %d after %d", w, rec.Seq, last)
						}
						last = rec.Seq
						mu.Lock()
						saved[rec.ID] = rec.Seq
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openAt(t, path, Options{})
			ctx := testCtx(t)
			seqs := make(map[uint64]bool)
			for id, seq := range saved {
				e, err := s.Get(ctx, id)
				if err != nil || e.Seq != seq {
					t.Fatalf("record %v: %+v, %v; want seq %d", id, e, err, seq)
				}
				seqs[seq] = true
			}
			// Unique and without gaps: exactly 1..n.
			for seq := uint64(1); seq <= workers*each; seq++ {
				if !seqs[seq] {
					t.Fatalf("sequence %d is missing among %d saved records", seq, len(saved))
				}
			}
			pending, err := s.Pending(ctx, 0, 1000)
			if err != nil || len(pending) != workers*each {
				t.Fatalf("Pending after reopen = %d records, %v; want %d", len(pending), err, workers*each)
			}
		})
	}
}

func TestPendingPaging(t *testing.T) {
	s := openTest(t, Options{})
	ctx := testCtx(t)
	r := newRand(t)
	var recs []protocol.Record
	for range 10 {
		recs = append(recs, mustSave(t, s, sample(r, 50, 100)))
	}
	if err := s.MarkStored(ctx, recs[2].ID, recs[5].ID); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkRejected(ctx, recs[7].ID, "office unknown"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		after uint64
		limit int
		want  []uint64
	}{
		{0, 100, []uint64{1, 2, 4, 5, 7, 9, 10}},
		{0, 3, []uint64{1, 2, 4}},
		{4, 3, []uint64{5, 7, 9}},
		{9, 3, []uint64{10}},
		{10, 3, nil},
	}
	for _, tt := range tests {
		got, err := s.Pending(ctx, tt.after, tt.limit)
		if err != nil {
			t.Fatalf("Pending(%d, %d): %v", tt.after, tt.limit, err)
		}
		var seqs []uint64
		for _, g := range got {
			seqs = append(seqs, g.Seq)
			if len(g.Blobs) != 1 || g.Blobs[0] != recs[g.Seq-1].Blobs[0] || !bytes.Equal(g.Sealed, recs[g.Seq-1].Sealed) {
				t.Errorf("Pending record %d has blobs %+v, sealed %d bytes", g.Seq, g.Blobs, len(g.Sealed))
			}
		}
		if !slices.Equal(seqs, tt.want) {
			t.Errorf("Pending(%d, %d) = %v, want %v", tt.after, tt.limit, seqs, tt.want)
		}
	}
	if _, err := s.Pending(ctx, 0, 0); err == nil {
		t.Error("Pending with limit 0 gave no error")
	}
	lo, hi, err := s.Bounds(ctx)
	if err != nil || lo != 1 || hi != 10 {
		t.Errorf("Bounds = %d, %d, %v; want 1, 10", lo, hi, err)
	}
}

func TestMarkStored(t *testing.T) {
	s := openTest(t, Options{})
	ctx := testCtx(t)
	r := newRand(t)
	a := mustSave(t, s, sample(r, 500, 1000))
	b := mustSave(t, s, sample(r, 500))
	if err := s.MarkStored(ctx, a.ID, uuid.New()); err != nil {
		t.Fatalf("MarkStored with an unknown id: %v", err)
	}
	if err := s.MarkStored(ctx, a.ID); err != nil {
		t.Fatalf("repeated MarkStored: %v", err)
	}
	if err := s.MarkStored(ctx); err != nil {
		t.Fatalf("MarkStored of nothing: %v", err)
	}
	e, err := s.Get(ctx, a.ID)
	if err != nil || e.State != Stored || e.Kind != a.Kind || e.Meta["service"] != "id-card" {
		t.Errorf("Get after MarkStored = %+v, %v; want state stored with metadata kept", e, err)
	}
	var sealed []byte
	if err := s.rdb.QueryRow("SELECT sealed FROM records WHERE seq = ?", a.Seq).Scan(&sealed); err != nil || sealed != nil {
		t.Errorf("sealed body after MarkStored = %d bytes, %v; want deleted", len(sealed), err)
	}
	// The blob stays until the server has it complete.
	if bs, _ := s.PendingBlobs(ctx, 10); len(bs) != 1 || bs[0].Record != a.ID {
		t.Errorf("PendingBlobs after MarkStored = %+v, want the stored record's blob", bs)
	}
	if got, _ := s.Pending(ctx, 0, 10); len(got) != 1 || got[0].ID != b.ID {
		t.Errorf("Pending after MarkStored = %v, want only %v", got, b.ID)
	}
	if lo, hi, _ := s.Bounds(ctx); lo != 2 || hi != 2 {
		t.Errorf("Bounds = %d, %d; want 2, 2", lo, hi)
	}
	if err := s.MarkStored(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	if lo, hi, _ := s.Bounds(ctx); lo != 0 || hi != 2 {
		t.Errorf("Bounds with nothing pending = %d, %d; want 0, 2", lo, hi)
	}
}

func TestMarkRejected(t *testing.T) {
	s := openTest(t, Options{})
	ctx := testCtx(t)
	r := newRand(t)
	a := mustSave(t, s, sample(r, 500, 1000))
	if err := s.MarkRejected(ctx, a.ID, "office Buergeramt-Mitte does not take id-card applications"); err != nil {
		t.Fatal(err)
	}
	e, err := s.Get(ctx, a.ID)
	if err != nil || e.State != Rejected || !strings.Contains(e.Reason, "does not take") {
		t.Errorf("Get = %+v, %v; want rejected with the reason", e, err)
	}
	if got, _ := s.Pending(ctx, 0, 10); len(got) != 0 {
		t.Errorf("Pending holds a rejected record: %v", got)
	}
	if bs, _ := s.PendingBlobs(ctx, 10); len(bs) != 0 {
		t.Errorf("PendingBlobs holds a rejected record's blob: %v", bs)
	}
	// Kept on the device: body and blob are still there.
	if data, err := readAll(ctx, s, a.Blobs[0].ID); err != nil || len(data) != 1000 {
		t.Errorf("rejected record's blob: %d bytes, %v", len(data), err)
	}
	if err := s.MarkRejected(ctx, a.ID, "again"); err != nil {
		t.Errorf("repeated MarkRejected: %v", err)
	}
	if err := s.MarkRejected(ctx, uuid.New(), "x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("MarkRejected of an unknown id = %v, want ErrNotFound", err)
	}
}

func TestSetState(t *testing.T) {
	tests := []struct {
		name      string
		before    func(s *Store, id uuid.UUID) error
		st        State
		reference string
		note      string
		want      State
		wantRef   string
		wantErr   error
	}{
		{"saved to delivered", nil, Delivered, "", "handed over", Delivered, "", nil},
		{"stored to accepted with reference", markStored, Accepted, "AZ-2026-0042", "", Accepted, "AZ-2026-0042", nil},
		{"late stored does not go back", func(s *Store, id uuid.UUID) error {
			return s.SetState(context.Background(), id, Accepted, "AZ-1", "")
		}, Stored, "", "", Accepted, "AZ-1", nil},
		{"reference kept when empty", func(s *Store, id uuid.UUID) error {
			return s.SetState(context.Background(), id, Accepted, "AZ-7", "")
		}, Closed, "", "fixed", Closed, "AZ-7", nil},
		{"in progress", markStored, InProgress, "", "crew on site", InProgress, "", nil},
		{"failed", markStored, Failed, "", "procedure refused", Failed, "", nil},
		{"erased", markStored, Erased, "", "retention", Erased, "", nil},
		{"rejected", nil, Rejected, "", "bad office", Rejected, "", nil},
		{"saved is not a server state", nil, Saved, "", "", Saved, "", nil},
	}
	s := openTest(t, Options{})
	ctx := testCtx(t)
	r := newRand(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := mustSave(t, s, sample(r, 100))
			if tt.before != nil {
				if err := tt.before(s, rec.ID); err != nil {
					t.Fatal(err)
				}
			}
			err := s.SetState(ctx, rec.ID, tt.st, tt.reference, tt.note)
			if tt.st == Saved {
				if err == nil {
					t.Fatal("SetState(Saved) gave no error")
				}
				return
			}
			if err != nil {
				t.Fatalf("SetState: %v", err)
			}
			e, err := s.Get(ctx, rec.ID)
			if err != nil || e.State != tt.want || e.Reference != tt.wantRef {
				t.Fatalf("Get = %+v, %v; want state %v reference %q", e, err, tt.want, tt.wantRef)
			}
			if tt.note != "" && e.Note != tt.note && e.Reason != tt.note {
				t.Errorf("note %q not kept: %+v", tt.note, e)
			}
			if pending, _ := s.Pending(ctx, rec.Seq-1, 1); len(pending) != 0 {
				t.Errorf("record in state %v is still pending", e.State)
			}
		})
	}
	if err := s.SetState(ctx, uuid.New(), Delivered, "", ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("SetState of an unknown id = %v, want ErrNotFound", err)
	}
}

func markStored(s *Store, id uuid.UUID) error { return s.MarkStored(context.Background(), id) }

func TestStateNames(t *testing.T) {
	want := map[State]string{
		Saved: "saved", Stored: "stored", Delivered: "delivered", Accepted: "accepted", Closed: "closed",
		InProgress: "in-progress", Failed: "failed", Erased: "erased", Rejected: "rejected", 0: "state(0)", 42: "state(42)",
	}
	for st, name := range want {
		if st.String() != name {
			t.Errorf("State(%d).String() = %q, want %q", st, st.String(), name)
		}
	}
	for _, d := range []protocol.DeliveryState{protocol.Delivered, protocol.Accepted, protocol.Closed,
		protocol.Failed, protocol.Erased, protocol.InProgress} {
		st, ok := StateOf(d)
		if !ok || st.String() != d.String() {
			t.Errorf("StateOf(%v) = %v, %v", d, st, ok)
		}
	}
	if _, ok := StateOf(99); ok {
		t.Error("StateOf(99) is ok")
	}
}

func TestGetAndList(t *testing.T) {
	s := openTest(t, Options{})
	ctx := testCtx(t)
	r := newRand(t)
	var ids []uuid.UUID
	for range 7 {
		ids = append(ids, mustSave(t, s, sample(r, 10)).ID)
	}
	if err := s.MarkStored(ctx, ids[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, uuid.New()); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get of an unknown id = %v, want ErrNotFound", err)
	}
	var all []Entry
	for after := uint64(0); ; {
		page, err := s.List(ctx, after, 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		all = append(all, page...)
		after = page[len(page)-1].Seq
	}
	if len(all) != 7 || all[0].State != Stored || all[1].State != Saved {
		t.Fatalf("List in pages of 3 = %+v", all)
	}
	for i, e := range all {
		if e.ID != ids[i] || e.Seq != uint64(i+1) {
			t.Errorf("entry %d = %v seq %d", i, e.ID, e.Seq)
		}
	}
}

func TestReadBlob(t *testing.T) {
	s := openTest(t, Options{})
	ctx := testCtx(t)
	r := newRand(t)
	size := 2*segmentSize + 1234
	c := sample(r, 10, size)
	rec := mustSave(t, s, c)
	data := c.Blobs[0].Data
	blob := rec.Blobs[0].ID
	tests := []struct {
		name    string
		off     int64
		n       int
		wantN   int
		wantErr error
	}{
		{"start", 0, 100, 100, nil},
		{"whole", 0, size, size, nil},
		{"more than all", 0, size + 10, size, io.EOF},
		{"across a segment boundary", segmentSize - 10, 20, 20, nil},
		{"across two boundaries", segmentSize - 1, segmentSize + 2, segmentSize + 2, nil},
		{"last byte", int64(size - 1), 1, 1, nil},
		{"past the end", int64(size - 5), 10, 5, io.EOF},
		{"at the end", int64(size), 10, 0, io.EOF},
		{"beyond the end", int64(size + 100), 10, 0, io.EOF},
		{"empty buffer", 10, 0, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := make([]byte, tt.n)
			n, err := s.ReadBlob(ctx, blob, tt.off, p)
			if n != tt.wantN || !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("ReadBlob(%d, %d) = %d, %v; want %d, %v", tt.off, tt.n, n, err, tt.wantN, tt.wantErr)
			}
			if n > 0 && !bytes.Equal(p[:n], data[tt.off:tt.off+int64(n)]) {
				t.Fatal("wrong bytes")
			}
		})
	}
	// io.SectionReader over ReadBlob reads the whole blob.
	got, err := io.ReadAll(io.NewSectionReader(readerAt{s, blob}, 0, int64(size)))
	if err != nil || sum(got) != rec.Blobs[0].SHA256 {
		t.Errorf("SectionReader read %d bytes, %v; digest mismatch", len(got), err)
	}
	if _, err := s.ReadBlob(ctx, blob, -1, make([]byte, 1)); err == nil {
		t.Error("negative offset gave no error")
	}
	if _, err := s.ReadBlob(ctx, uuid.New(), 0, make([]byte, 1)); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown blob = %v, want ErrNotFound", err)
	}
	if err := s.MarkBlobComplete(ctx, blob); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReadBlob(ctx, blob, 0, make([]byte, 1)); !errors.Is(err, ErrNotFound) {
		t.Errorf("completed blob = %v, want ErrNotFound", err)
	}
}

type readerAt struct {
	s    *Store
	blob uuid.UUID
}

func (r readerAt) ReadAt(p []byte, off int64) (int, error) {
	return r.s.ReadBlob(context.Background(), r.blob, off, p)
}

func TestPendingBlobs(t *testing.T) {
	s := openTest(t, Options{})
	ctx := testCtx(t)
	r := newRand(t)
	a := mustSave(t, s, sample(r, 10, 100, 200, 300))
	mustSave(t, s, sample(r, 10))
	c := mustSave(t, s, sample(r, 10, 400))
	bs, err := s.PendingBlobs(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []PendingBlob{
		{a.ID, a.Blobs[0].ID, "part-0", 100, a.Blobs[0].SHA256, 1},
		{a.ID, a.Blobs[1].ID, "part-1", 200, a.Blobs[1].SHA256, 1},
		{a.ID, a.Blobs[2].ID, "part-2", 300, a.Blobs[2].SHA256, 1},
		{c.ID, c.Blobs[0].ID, "part-0", 400, c.Blobs[0].SHA256, 3},
	}
	if !slices.Equal(bs, want) {
		t.Fatalf("PendingBlobs = %+v\nwant %+v", bs, want)
	}
	if bs, _ := s.PendingBlobs(ctx, 2); !slices.Equal(bs, want[:2]) {
		t.Errorf("PendingBlobs(2) = %+v", bs)
	}
	if err := s.MarkBlobComplete(ctx, a.Blobs[1].ID); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkBlobComplete(ctx, a.Blobs[1].ID); err != nil {
		t.Errorf("repeated MarkBlobComplete: %v", err)
	}
	if err := s.MarkBlobComplete(ctx, uuid.New()); err != nil {
		t.Errorf("MarkBlobComplete of an unknown blob: %v", err)
	}
	bs, _ = s.PendingBlobs(ctx, 10)
	if !slices.Equal(bs, []PendingBlob{want[0], want[2], want[3]}) {
		t.Errorf("PendingBlobs after completing one = %+v", bs)
	}
	// The record's blob refs are unchanged: the server still needs them.
	if p, _ := s.Pending(ctx, 0, 1); len(p) != 1 || len(p[0].Blobs) != 3 {
		t.Errorf("Pending refs after MarkBlobComplete = %+v", p)
	}
}

func TestSeqNeverReused(t *testing.T) {
	path := testPath(t)
	s := openAt(t, path, Options{})
	ctx := testCtx(t)
	r := newRand(t)
	for range 3 {
		mustSave(t, s, sample(r, 10, 10))
	}
	if n, err := s.WipeUnsent(ctx); err != nil || n != 3 {
		t.Fatalf("WipeUnsent = %d, %v; want 3", n, err)
	}
	if rec := mustSave(t, s, sample(r, 10)); rec.Seq != 4 {
		t.Fatalf("seq after wiping every record = %d, want 4", rec.Seq)
	}
	// Delete every row behind the store's back, then reopen.
	if err := s.change(ctx, func(w *wtx) error {
		_, err := w.tx.Exec("DELETE FROM records")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openAt(t, path, Options{})
	if rec := mustSave(t, s, sample(r, 10)); rec.Seq != 5 {
		t.Fatalf("seq after deleting all rows and reopening = %d, want 5", rec.Seq)
	}
	if lo, hi, _ := s.Bounds(ctx); lo != 5 || hi != 5 {
		t.Errorf("Bounds = %d, %d; want 5, 5", lo, hi)
	}
}

func TestWipeUnsent(t *testing.T) {
	s := openTest(t, Options{})
	ctx := testCtx(t)
	r := newRand(t)
	stored := mustSave(t, s, sample(r, 10, 100))
	rejected := mustSave(t, s, sample(r, 10))
	var unsent []protocol.Record
	for range 3 {
		unsent = append(unsent, mustSave(t, s, sample(r, 10, 5000)))
	}
	if err := s.MarkStored(ctx, stored.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkRejected(ctx, rejected.ID, "no"); err != nil {
		t.Fatal(err)
	}
	events, cancel := s.Watch()
	defer cancel()
	n, err := s.WipeUnsent(ctx)
	if err != nil || n != 3 {
		t.Fatalf("WipeUnsent = %d, %v; want 3", n, err)
	}
	for _, u := range unsent {
		if _, err := s.Get(ctx, u.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("wiped record %v: Get = %v", u.ID, err)
		}
		if _, err := s.ReadBlob(ctx, u.Blobs[0].ID, 0, make([]byte, 1)); !errors.Is(err, ErrNotFound) {
			t.Errorf("wiped blob: ReadBlob = %v", err)
		}
		e := <-events
		if e.ID != u.ID || e.State != Erased {
			t.Errorf("event after wipe = %+v, want %v erased", e, u.ID)
		}
	}
	var segs int
	if err := s.rdb.QueryRow("SELECT count(*) FROM segments").Scan(&segs); err != nil || segs != 1 {
		t.Errorf("segments left = %d, %v; want 1 (the stored record's blob)", segs, err)
	}
	for _, id := range []uuid.UUID{stored.ID, rejected.ID} {
		if _, err := s.Get(ctx, id); err != nil {
			t.Errorf("record %v that was not unsent is gone: %v", id, err)
		}
	}
	if n, err := s.WipeUnsent(ctx); err != nil || n != 0 {
		t.Errorf("second WipeUnsent = %d, %v", n, err)
	}
}

func TestStats(t *testing.T) {
	now := newClock()
	s := openTest(t, Options{Now: now.Now})
	ctx := testCtx(t)
	r := newRand(t)
	st, err := s.Stats(ctx)
	if err != nil || st.QueueDepth != 0 || !st.OldestUnsent.IsZero() || st.Full || st.BudgetTotal != DefaultBudget ||
		st.BudgetUsed <= 0 || st.DiskFree <= 0 {
		t.Fatalf("Stats of an empty store = %+v, %v", st, err)
	}
	first := mustSave(t, s, sample(r, 100, 200<<10))
	now.Advance(60)
	mustSave(t, s, sample(r, 100))
	st2, err := s.Stats(ctx)
	if err != nil || st2.QueueDepth != 2 || !st2.OldestUnsent.Equal(first.CreatedAt.Time()) || st2.BudgetUsed < st.BudgetUsed+200<<10 {
		t.Fatalf("Stats = %+v, %v; want 2 queued, oldest %v, 200 KiB more used", st2, err, first.CreatedAt.Time())
	}
}

func TestValues(t *testing.T) {
	path := testPath(t)
	s := openAt(t, path, Options{})
	ctx := testCtx(t)
	if _, ok, err := s.GetValue(ctx, "twin"); ok || err != nil {
		t.Fatalf("GetValue of a missing key = %v, %v", ok, err)
	}
	for _, v := range [][]byte{[]byte(`{"version":1}`), []byte(`{"version":2}`), {}} {
		if err := s.PutValue(ctx, "twin", v); err != nil {
			t.Fatal(err)
		}
		got, ok, err := s.GetValue(ctx, "twin")
		if !ok || err != nil || !bytes.Equal(got, v) {
			t.Fatalf("GetValue = %q, %v, %v; want %q", got, ok, err, v)
		}
	}
	if err := s.PutValue(ctx, "twin", []byte("kept")); err != nil {
		t.Fatal(err)
	}
	if err := s.PutValue(ctx, "", []byte("x")); err == nil {
		t.Error("PutValue with an empty key gave no error")
	}
	s.Close()
	s = openAt(t, path, Options{})
	if got, ok, _ := s.GetValue(ctx, "twin"); !ok || string(got) != "kept" {
		t.Errorf("after reopen GetValue = %q, %v", got, ok)
	}
}

func TestCommandsOnce(t *testing.T) {
	path := testPath(t)
	s := openAt(t, path, Options{})
	ctx := testCtx(t)
	a, b := uuid.New(), uuid.New()
	for _, step := range []struct {
		id   uuid.UUID
		want bool
	}{{a, true}, {a, false}, {b, true}} {
		isNew, err := s.AddCommand(ctx, step.id, []byte("ping"))
		if err != nil || isNew != step.want {
			t.Fatalf("AddCommand(%v) = %v, %v; want %v", step.id, isNew, err, step.want)
		}
	}
	if open, err := s.Commands(ctx); err != nil || !slices.Equal(open, []uuid.UUID{a, b}) {
		t.Fatalf("Commands = %v, %v; want [a b]", open, err)
	}
	if p, err := s.CommandPayload(ctx, a); err != nil || string(p) != "ping" {
		t.Errorf("CommandPayload = %q, %v", p, err)
	}
	if _, ok, err := s.CommandResult(ctx, a); ok || err != nil {
		t.Errorf("CommandResult before a result = %v, %v", ok, err)
	}
	if err := s.SetCommandResult(ctx, a, []byte("pong")); err != nil {
		t.Fatal(err)
	}
	if err := s.SetCommandResult(ctx, a, []byte("second")); err != nil {
		t.Fatalf("second SetCommandResult: %v", err)
	}
	if err := s.SetCommandResult(ctx, uuid.New(), []byte("x")); !errors.Is(err, ErrNotFound) {
		t.Errorf("SetCommandResult of an unknown command = %v, want ErrNotFound", err)
	}
	if res, ok, err := s.CommandResult(ctx, a); !ok || err != nil || string(res) != "pong" {
		t.Errorf("CommandResult = %q, %v, %v; want the first result", res, ok, err)
	}
	if open, _ := s.Commands(ctx); !slices.Equal(open, []uuid.UUID{b}) {
		t.Errorf("Commands after a result = %v, want [b]", open)
	}
	if un, err := s.UnreportedResults(ctx, 10); err != nil || len(un) != 1 || string(un[a]) != "pong" {
		t.Errorf("UnreportedResults = %v, %v", un, err)
	}
	s.Close()

	// Across a restart: a is known and answered, b is known and open.
	s = openAt(t, path, Options{})
	if isNew, err := s.AddCommand(ctx, a, []byte("ping")); isNew || err != nil {
		t.Errorf("AddCommand after reopen = %v, %v; want not new", isNew, err)
	}
	if open, _ := s.Commands(ctx); !slices.Equal(open, []uuid.UUID{b}) {
		t.Errorf("Commands after reopen = %v, want [b]", open)
	}
	if err := s.MarkResultsReported(ctx, a, uuid.New()); err != nil {
		t.Fatal(err)
	}
	if un, _ := s.UnreportedResults(ctx, 10); len(un) != 0 {
		t.Errorf("UnreportedResults after MarkResultsReported = %v", un)
	}
	if res, ok, _ := s.CommandResult(ctx, a); !ok || string(res) != "pong" {
		t.Errorf("CommandResult after reported = %q, %v", res, ok)
	}
}

func TestClose(t *testing.T) {
	path := testPath(t)
	s := openAt(t, path, Options{})
	ctx := testCtx(t)
	r := newRand(t)
	var mu sync.Mutex
	var saved []protocol.Record
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 16 {
		c := sample(r, 100, 100)
		wg.Go(func() {
			<-start
			for range 20 {
				rec, err := s.Save(ctx, c)
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil {
					t.Errorf("Save during Close = %v, want success or ErrClosed", err)
					return
				}
				mu.Lock()
				saved = append(saved, rec)
				mu.Unlock()
			}
		})
	}
	close(start)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := s.Save(ctx, sample(r, 1)); !errors.Is(err, ErrClosed) {
		t.Errorf("Save after Close = %v, want ErrClosed", err)
	}
	if _, err := s.Get(ctx, uuid.New()); !errors.Is(err, ErrClosed) {
		t.Errorf("Get after Close = %v, want ErrClosed", err)
	}
	if err := s.MarkStored(ctx, uuid.New()); !errors.Is(err, ErrClosed) {
		t.Errorf("MarkStored after Close = %v, want ErrClosed", err)
	}
	s = openAt(t, path, Options{})
	for _, rec := range saved {
		if e, err := s.Get(ctx, rec.ID); err != nil || e.Seq != rec.Seq {
			t.Fatalf("record saved before Close: %+v, %v", e, err)
		}
	}
	t.Logf("%d saves finished before Close", len(saved))
}

func TestFormatBytes(t *testing.T) {
	tests := []struct {
		n    int64
		want string
	}{
		{0, "0 bytes"}, {1023, "1023 bytes"}, {1024, "1 KiB"}, {1536, "1.5 KiB"},
		{512 << 20, "512 MiB"}, {64 << 20, "64 MiB"}, {(512 << 20) - (200 << 10), "512 MiB"},
		{3 << 30, "3 GiB"}, {5 << 50, "5 PiB"},
	}
	for _, tt := range tests {
		if got := formatBytes(tt.n); got != tt.want {
			t.Errorf("formatBytes(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}

func TestFailingCaptureInABatch(t *testing.T) {
	// A trigger makes SQLite refuse one kind of capture, so that an insert
	// fails inside a batch: the others in the batch must still be saved,
	// without a gap in the sequence.
	s := openTest(t, Options{})
	ctx := testCtx(t)
	if err := s.change(ctx, func(w *wtx) error {
		_, err := w.tx.Exec(`CREATE TRIGGER refuse BEFORE INSERT ON records WHEN NEW.kind = 'test.refused'
			BEGIN SELECT RAISE(ABORT, 'refused by the test'); END`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	r := newRand(t)
	const n = 40
	type outcome struct {
		refused bool
		rec     protocol.Record
		err     error
	}
	out := make(chan outcome, n)
	for i := range n {
		c := sample(r, 100, 100)
		refused := i%5 == 0
		if refused {
			c.Kind = "test.refused"
		}
		go func() {
			rec, err := s.Save(ctx, c)
			out <- outcome{refused, rec, err}
		}()
	}
	seqs := make(map[uint64]bool)
	for range n {
		o := <-out
		switch {
		case o.refused && o.err == nil:
			t.Errorf("a capture the trigger refuses was saved as %d", o.rec.Seq)
		case o.refused:
			if !strings.Contains(o.err.Error(), "refused by the test") {
				t.Errorf("refused capture: %v", o.err)
			}
		case o.err != nil:
			t.Errorf("a capture in the same batch as a failing one: %v", o.err)
		default:
			seqs[o.rec.Seq] = true
		}
	}
	for seq := uint64(1); seq <= n-n/5; seq++ {
		if !seqs[seq] {
			t.Errorf("seq %d missing: %v", seq, seqs)
		}
	}
	if _, hi, _ := s.Bounds(ctx); hi != n-n/5 {
		t.Errorf("highest = %d, want %d", hi, n-n/5)
	}
}

// An app names its blobs in the capture's document, so the store keeps an ID
// the caller chose and assigns one only where none is given.
func TestSaveKeepsChosenBlobIDs(t *testing.T) {
	s := openTest(t, Options{})
	r := newRand(t)
	c := sample(r, 10, 100, 200)
	chosen := uuid.Must(uuid.NewV7())
	c.Blobs[0].ID = chosen
	rec := mustSave(t, s, c)
	if rec.Blobs[0].ID != chosen {
		t.Fatalf("blob 0 has id %v, want the chosen %v", rec.Blobs[0].ID, chosen)
	}
	if rec.Blobs[1].ID == uuid.Nil || rec.Blobs[1].ID == chosen {
		t.Fatalf("blob 1 has id %v, want a new one", rec.Blobs[1].ID)
	}
	c.Blobs[1].ID = chosen
	if _, err := s.Save(testCtx(t), c); err == nil {
		t.Fatal("a capture naming the same blob id twice was saved")
	}
}

// The server's confirmations commit without an fsync; a capture after them
// is durable again.
func TestConfirmationsAreLazyCapturesDurable(t *testing.T) {
	s := openTest(t, Options{})
	ctx := testCtx(t)
	r := newRand(t)
	syncMode := func() int {
		t.Helper()
		var mode int
		if err := s.wconn.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&mode); err != nil {
			t.Fatal(err)
		}
		return mode
	}
	rec := mustSave(t, s, sample(r, 10, 100))
	if got := syncMode(); got != 2 {
		t.Fatalf("after a capture: synchronous = %d, want 2 (FULL)", got)
	}
	if err := s.MarkStored(ctx, rec.ID); err != nil {
		t.Fatal(err)
	}
	if got := syncMode(); got != 1 {
		t.Fatalf("after a confirmation: synchronous = %d, want 1 (NORMAL)", got)
	}
	if err := s.MarkBlobComplete(ctx, rec.Blobs[0].ID); err != nil {
		t.Fatal(err)
	}
	mustSave(t, s, sample(r, 10))
	if got := syncMode(); got != 2 {
		t.Fatalf("after the next capture: synchronous = %d, want 2 (FULL)", got)
	}
	if err := s.SetState(ctx, rec.ID, Delivered, "REF-1", ""); err != nil {
		t.Fatal(err)
	}
	if got := syncMode(); got != 2 {
		t.Fatalf("after a status change: synchronous = %d, want 2 (FULL)", got)
	}
}
