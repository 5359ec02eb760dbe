package ingest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/kogge-fleet/kogge/fleet-server/store"
	"github.com/kogge-fleet/kogge/protocol"
)

// fakeBroker records what the ingest publishes; tests call handle directly.
type fakeBroker struct {
	mu   sync.Mutex
	pubs []fakePub
}

type fakePub struct {
	topic    string
	payload  []byte
	retained bool
}

func (*fakeBroker) Subscribe(string, func(string, []byte)) error { return nil }

func (f *fakeBroker) Publish(topic string, payload []byte, retained bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pubs = append(f.pubs, fakePub{topic, payload, retained})
	return nil
}

// take returns and forgets what was published.
func (f *fakeBroker) take() []fakePub {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.pubs
	f.pubs = nil
	return p
}

// flush commits everything queued, as the committer does, but on the
// caller's goroutine.
func (in *Ingest) flush(ctx context.Context) {
	for {
		var batch []item
	take:
		for len(batch) < in.opts.BatchSize {
			select {
			case it := <-in.queue:
				batch = append(batch, it)
			default:
				break take
			}
		}
		if len(batch) == 0 {
			return
		}
		in.commit(ctx, batch)
	}
}

// feed hands records of device to the ingest as the broker would, and
// commits them.
func feed(t testing.TB, in *Ingest, device string, recs ...*protocol.Record) {
	t.Helper()
	for _, r := range recs {
		b, err := protocol.Encode(protocol.NewEnvelope(device, r.Seq, time.Now(), r))
		if err != nil {
			t.Fatal(err)
		}
		topic, _ := protocol.TopicFor(device, protocol.TypeRecord)
		in.handle(topic, b)
	}
	in.flush(context.Background())
}

// verdicts decodes the acks in pubs.
func verdicts(t testing.TB, pubs []fakePub) []protocol.RecordAck {
	t.Helper()
	var out []protocol.RecordAck
	for _, p := range pubs {
		env, err := protocol.Decode(p.payload)
		if err != nil {
			t.Fatalf("the ingest published an undecodable message on %s: %v", p.topic, err)
		}
		if a, ok := env.Body.(*protocol.Ack); ok {
			out = append(out, a.Records...)
		}
	}
	return out
}

// TestReplicasShareTheWatermark runs two ingests on one PostgreSQL database,
// as two replicas behind a shared subscription, and checks that their
// cached watermarks never store a record twice or out of order.
func TestReplicasShareTheWatermark(t *testing.T) {
	db1, url := openPostgres(t)
	addDevices(t, db1, "d1")
	db2 := openStoreURL(t, url)
	b1, b2 := &fakeBroker{}, &fakeBroker{}
	a, err := New(db1, b1, Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(db2, b2, Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	var recs []*protocol.Record
	for i := range 60 {
		recs = append(recs, newRecord(uint64(i+1)))
	}
	want := func(who string, pubs []fakePub, status ...protocol.AckStatus) {
		t.Helper()
		v := verdicts(t, pubs)
		if len(v) != len(status) {
			t.Fatalf("%s: %d verdicts %+v, want %d", who, len(v), v, len(status))
		}
		for i, s := range status {
			if v[i].Status != s {
				t.Errorf("%s: verdict %d = %v %q, want %v", who, i, v[i].Status, v[i].Reason, s)
			}
		}
	}
	S, D, R := protocol.AckStored, protocol.AckDuplicate, protocol.AckRejected

	feed(t, a, "d1", recs[0:3]...)
	want("A 1-3", b1.take(), S, S, S)
	feed(t, b, "d1", recs[3:6]...)
	want("B 4-6", b2.take(), S, S, S)
	// A's cache says 3; record 7 is in order for the store.
	feed(t, a, "d1", recs[6])
	want("A 7", b1.take(), S)
	feed(t, a, "d1", recs[3])
	want("A 4 again", b1.take(), D)
	// B's cache says 6: its compare-and-set fails, and it answers from the
	// store.
	other := newRecord(7)
	feed(t, b, "d1", other)
	want("B another 7", b2.take(), R)
	feed(t, b, "d1", recs[7])
	want("B 8", b2.take(), S)

	// Both at once, each getting every remaining record, as after a
	// broker failover.
	var wg sync.WaitGroup
	for _, in := range []*Ingest{a, b} {
		wg.Go(func() {
			for i := 8; i < len(recs); i += 5 {
				for _, r := range recs[i:min(i+5, len(recs))] {
					b, _ := protocol.Encode(protocol.NewEnvelope("d1", r.Seq, time.Now(), r))
					in.handle("kogge/v1/d/d1/up/record", b)
				}
				in.flush(context.Background())
			}
		})
	}
	wg.Wait()
	stored := map[string]int{}
	for _, v := range append(verdicts(t, b1.take()), verdicts(t, b2.take())...) {
		if v.Status == S {
			stored[v.ID.String()]++
		}
		if v.Status == R {
			t.Errorf("record %v rejected: %s", v.ID, v.Reason)
		}
	}
	for _, r := range recs[8:] {
		if stored[r.ID.String()] > 1 {
			t.Errorf("record %d acknowledged as stored by both replicas", r.Seq)
		}
	}
	if n := countRecords(t, db1, "d1"); n != len(recs) {
		t.Errorf("%d records stored, want %d", n, len(recs))
	}
	s, err := db1.DeviceSync(context.Background(), "d1")
	if err != nil || s.High != uint64(len(recs)) {
		t.Errorf("watermark %d, %v; want %d", s.High, err, len(recs))
	}
}

// hello sends a SyncHello of device d1 and returns the SyncState it gets.
func hello(t *testing.T, in *Ingest, fb *fakeBroker, lowest, highest uint64) *protocol.SyncState {
	t.Helper()
	b, _ := protocol.Encode(protocol.NewEnvelope("d1", 1, time.Now(), &protocol.SyncHello{
		Session: newRecord(1).ID, Lowest: lowest, Highest: highest}))
	in.handle("kogge/v1/d/d1/up/hello", b)
	in.flush(context.Background())
	pubs := fb.take()
	if len(pubs) != 1 || pubs[0].topic != "kogge/v1/d/d1/down/sync" {
		t.Fatalf("hello [%d, %d]: published %+v", lowest, highest, pubs)
	}
	env, err := protocol.Decode(pubs[0].payload)
	if err != nil {
		t.Fatal(err)
	}
	return env.Body.(*protocol.SyncState)
}

func TestSyncStateNamesTheGaps(t *testing.T) {
	db := openStore(t, "", "d1")
	fb := &fakeBroker{}
	in, err := New(db, fb, Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	feed(t, in, "d1", newRecord(1), newRecord(2), newRecord(3))
	fb.take()
	for _, c := range []struct {
		lowest, highest uint64
		missing         []protocol.SeqRange
		stored          uint64
	}{
		// A device that has assigned nothing meets watermark 3: its
		// store was reset, it numbers on from 4.
		{0, 0, nil, 3},
		{1, 3, nil, 3},
		{2, 7, []protocol.SeqRange{{From: 4, To: 7}}, 3},
		// The device holds nothing unacknowledged: 4 was wiped there.
		{0, 4, nil, 4},
		// The device holds 6 to 9: 5 was wiped there.
		{6, 9, []protocol.SeqRange{{From: 6, To: 9}}, 5},
	} {
		s := hello(t, in, fb, c.lowest, c.highest)
		if len(s.Missing) != len(c.missing) || (len(c.missing) == 1 && s.Missing[0] != c.missing[0]) {
			t.Errorf("hello [%d, %d]: missing %+v, want %+v", c.lowest, c.highest, s.Missing, c.missing)
		}
		if s.Stored != c.stored {
			t.Errorf("hello [%d, %d]: stored %d, want %d", c.lowest, c.highest, s.Stored, c.stored)
		}
	}
	// The server moved past the wiped sequences, so the next record is
	// stored instead of waiting for them.
	if st, err := db.DeviceSync(context.Background(), "d1"); err != nil || st.High != 5 {
		t.Fatalf("watermark %d, %v; want 5", st.High, err)
	}
	feed(t, in, "d1", newRecord(6))
	vs := verdicts(t, fb.take())
	if len(vs) != 1 || vs[0].Status != protocol.AckStored {
		t.Errorf("record 6 after the wipe: %+v, want stored", vs)
	}
}

// A device whose store was reset numbers from 1 again. The server's answer
// must not let it mark those sequences stored (the server holds other
// records under them), must not move the watermark, and must tell it where
// to renumber from.
func TestSyncStateTellsAResetDeviceToRenumber(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			var db *store.DB
			if backend == "sqlite" {
				db = openStore(t, "", "d1")
			} else {
				db, _ = openPostgres(t)
				addDevices(t, db, "d1")
			}
			testResetDevice(t, db)
		})
	}
}

func testResetDevice(t *testing.T, db *store.DB) {
	fb := &fakeBroker{}
	in, err := New(db, fb, Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	const watermark = 40
	var old []*protocol.Record
	for seq := uint64(1); seq <= watermark; seq++ {
		var blobs [][]byte
		if seq == watermark {
			blobs = append(blobs, []byte("a photo that never finished arriving"))
		}
		old = append(old, newRecord(seq, blobs...))
	}
	feed(t, in, "d1", old...)
	fb.take()
	// A device in sync is told about its incomplete blob.
	if s := hello(t, in, fb, 0, watermark); s.Stored != watermark || len(s.Missing) != 0 || len(s.Blobs) != 1 {
		t.Fatalf("hello of the device in sync: %+v, want stored %d, nothing missing, one blob", s, watermark)
	}

	for _, c := range []struct {
		name            string
		lowest, highest uint64
	}{
		{"three unsent", 1, 3},
		{"unsent above acknowledged ones", 3, 5},
		{"all acknowledged", 0, 2},
		{"nothing assigned", 0, 0},
		{"one below the watermark", watermark - 1, watermark - 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := hello(t, in, fb, c.lowest, c.highest)
			if s.Stored != watermark {
				t.Errorf("stored %d, want the watermark %d", s.Stored, watermark)
			}
			if len(s.Missing) != 0 || len(s.Blobs) != 0 || s.Truncated {
				t.Errorf("answer %+v names sequences or blobs; a reset device must act on none", s)
			}
			if st, err := db.DeviceSync(context.Background(), "d1"); err != nil || st.High != watermark {
				t.Errorf("watermark %d, %v; want it left at %d", st.High, err, watermark)
			}
		})
	}

	// Renumbered above the watermark, the device's records are missing,
	// then stored; the old records are untouched.
	if s := hello(t, in, fb, watermark+1, watermark+3); s.Stored != watermark ||
		len(s.Missing) != 1 || s.Missing[0] != (protocol.SeqRange{From: watermark + 1, To: watermark + 3}) {
		t.Fatalf("hello after renumbering: %+v, want %d to %d missing", s, watermark+1, watermark+3)
	}
	fresh := []*protocol.Record{newRecord(watermark + 1), newRecord(watermark + 2), newRecord(watermark + 3)}
	feed(t, in, "d1", fresh...)
	vs := verdicts(t, fb.take())
	if len(vs) != len(fresh) {
		t.Fatalf("verdicts %+v, want %d", vs, len(fresh))
	}
	for i, v := range vs {
		if v.ID != fresh[i].ID || v.Status != protocol.AckStored {
			t.Errorf("renumbered record %d: %+v, want stored", fresh[i].Seq, v)
		}
	}
	if n := countRecords(t, db, "d1"); n != watermark+3 {
		t.Errorf("%d records stored, want %d", n, watermark+3)
	}
}
