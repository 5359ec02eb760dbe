package ingest

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kogge-fleet/kogge/fleet-server/store"
	"github.com/kogge-fleet/kogge/protocol"
)

func countRecords(t testing.TB, db *store.DB, device string) int {
	t.Helper()
	var n int
	if err := db.Reader().QueryRow(`SELECT count(*) FROM records WHERE device_id = $1`, device).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestExactlyOnceUnderDuplicates(t *testing.T) {
	b := startBroker(t)
	db := openStore(t, "", "d1")
	startIngest(t, db, b, Options{})
	d := connect(t, b.addr, "d1", deviceOpts{})

	const n = 20
	var recs []*protocol.Record
	for i := range n {
		recs = append(recs, newRecord(uint64(i+1)))
	}
	// Every record twice in a row, then all of them once more.
	for _, r := range recs {
		d.send(r)
		d.send(r)
	}
	d.await("every record is acknowledged", func(got []*protocol.Envelope) bool {
		acks, _ := recordAcks(got)
		return len(acks) == n
	})
	for _, r := range recs {
		d.send(r)
	}
	got := d.await("three verdicts per record", func(got []*protocol.Envelope) bool {
		_, total := recordAcks(got)
		return total == 3*n
	})
	stored := map[uuid.UUID]int{}
	for _, e := range got {
		if a, ok := e.Body.(*protocol.Ack); ok {
			for _, r := range a.Records {
				switch r.Status {
				case protocol.AckStored:
					stored[r.ID]++
				case protocol.AckDuplicate:
				default:
					t.Errorf("record %v: %v %q", r.ID, r.Status, r.Reason)
				}
			}
		}
	}
	for _, r := range recs {
		if stored[r.ID] != 1 {
			t.Errorf("record %d acknowledged as stored %d times, want once", r.Seq, stored[r.ID])
		}
	}
	if c := countRecords(t, db, "d1"); c != n {
		t.Errorf("%d records stored, want %d", c, n)
	}
	rs, err := db.Records(context.Background(), store.RecordFilter{Device: "d1"})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range rs {
		if r.Seq != uint64(i+1) || r.ID != recs[i].ID {
			t.Fatalf("record %d: seq %d id %v, want seq %d id %v", i, r.Seq, r.ID, i+1, recs[i].ID)
		}
	}
	body, err := db.RecordSealed(context.Background(), "d1", recs[0].ID)
	if err != nil || !bytes.Equal(body, recs[0].Sealed) {
		t.Errorf("sealed body = %q, %v", body, err)
	}
}

func TestOutOfOrderWaitsForTheGap(t *testing.T) {
	b := startBroker(t)
	db := openStore(t, "", "d1")
	in, _ := startIngest(t, db, b, Options{})
	d := connect(t, b.addr, "d1", deviceOpts{})
	r1, r2, r3 := newRecord(1), newRecord(2), newRecord(3)
	d.send(r3)
	d.send(r2)
	waitFor(t, "both records are committed", func() bool { return in.Stats().Committed >= 2 })
	if c := countRecords(t, db, "d1"); c != 0 {
		t.Fatalf("%d records stored before the gap is filled", c)
	}
	d.send(r1)
	d.await("record 1 is acknowledged", func(got []*protocol.Envelope) bool {
		acks, _ := recordAcks(got)
		return acks[r1.ID].Status == protocol.AckStored
	})
	if acks, _ := recordAcks(d.received()); len(acks) != 1 {
		t.Fatalf("acks for %d records, want only record 1", len(acks))
	}
	if in.Stats().Ignored < 2 {
		t.Errorf("%d messages counted as ignored, want 2", in.Stats().Ignored)
	}
	// The device retransmits oldest first.
	d.send(r2)
	d.send(r3)
	d.await("records 2 and 3 are stored", func(got []*protocol.Envelope) bool {
		acks, _ := recordAcks(got)
		return acks[r2.ID].Status == protocol.AckStored && acks[r3.ID].Status == protocol.AckStored
	})
	s, err := db.DeviceSync(context.Background(), "d1")
	if err != nil || s.High != 3 {
		t.Errorf("watermark %d, %v; want 3", s.High, err)
	}
}

func TestDeviceMismatchIsRejected(t *testing.T) {
	b := startBroker(t)
	db := openStore(t, "", "d1", "d2")
	reg := prometheus.NewRegistry()
	startIngest(t, db, b, Options{Registerer: reg})
	d := connect(t, b.addr, "d1", deviceOpts{})
	victim := connect(t, b.addr, "d2", deviceOpts{})

	forged := newRecord(1)
	d.sendAs("d2", forged) // on d1's topic, claiming to be d2
	got := d.await("the forged record is answered", func(got []*protocol.Envelope) bool {
		acks, _ := recordAcks(got)
		_, ok := acks[forged.ID]
		return ok
	})
	acks, _ := recordAcks(got)
	if a := acks[forged.ID]; a.Status != protocol.AckRejected || !strings.Contains(a.Reason, `envelope names device "d2"`) {
		t.Errorf("verdict %v %q, want a rejection naming the devices", a.Status, a.Reason)
	}
	// The rejection keeps its place: the device's next record proceeds.
	next := newRecord(2)
	d.send(next)
	d.await("the next record is stored", func(got []*protocol.Envelope) bool {
		acks, _ := recordAcks(got)
		return acks[next.ID].Status == protocol.AckStored
	})
	if c := countRecords(t, db, "d2"); c != 0 {
		t.Errorf("%d records stored for the impersonated device", c)
	}
	if len(victim.received()) != 0 {
		t.Errorf("the impersonated device received %d messages", len(victim.received()))
	}
	if v := metricValue(t, reg, "kogge_ingest_rejected_total", "reason", reasonDeviceMismatch); v != 1 {
		t.Errorf("rejected_total{reason=device_mismatch} = %v, want 1", v)
	}
}

func TestBlobAssembly(t *testing.T) {
	b := startBroker(t)
	db := openStore(t, "", "d1")
	reg := prometheus.NewRegistry()
	in, _ := startIngest(t, db, b, Options{Registerer: reg})
	d := connect(t, b.addr, "d1", deviceOpts{})
	ctx := context.Background()

	photo := bytes.Repeat([]byte("biometric photo "), 10_000) // 160,000 bytes
	const cs = protocol.DefaultChunkSize
	r := newRecord(1, photo)
	// A chunk before its record is set aside.
	d.send(chunk(r, 0, photo, 0, cs))
	waitFor(t, "the early chunk is committed", func() bool { return in.Stats().Committed == 1 })
	d.send(r)
	d.await("the record is stored", func(got []*protocol.Envelope) bool {
		acks, _ := recordAcks(got)
		return acks[r.ID].Status == protocol.AckStored
	})
	if n := len(chunkAcks(d.received())); n != 0 {
		t.Fatalf("%d chunk verdicts for a chunk that came before its record", n)
	}
	d.send(chunk(r, 0, photo, 0, cs))
	bad := chunk(r, 0, photo, cs, cs)
	bad.Data = append([]byte(nil), bad.Data...)
	bad.Data[100] ^= 0xff // corrupted in transit; its digest is the original's
	d.send(bad)
	d.send(chunk(r, 0, photo, 2*cs, cs)) // beyond what is stored: set aside
	got := d.await("two chunk verdicts", func(got []*protocol.Envelope) bool { return len(chunkAcks(got)) >= 2 })
	waitFor(t, "the chunk beyond is set aside", func() bool { return in.Stats().Committed == 5 })
	cas := chunkAcks(got)
	if cas[0].Offset != 0 || cas[0].Status != protocol.AckStored || cas[1].Offset != cs ||
		cas[1].Status != protocol.AckRejected || !strings.Contains(cas[1].Reason, "does not match its digest") {
		t.Fatalf("chunk verdicts = %+v", cas)
	}
	for off := cs; off < len(photo); off += cs {
		d.send(chunk(r, 0, photo, off, cs))
	}
	got = d.await("the blob is complete", func(got []*protocol.Envelope) bool {
		for _, c := range chunkAcks(got) {
			if c.Complete {
				return true
			}
		}
		return false
	})
	if last := chunkAcks(got)[len(chunkAcks(got))-1]; !last.Complete || last.Status != protocol.AckStored || last.Offset != 2*cs {
		t.Errorf("last verdict = %+v, want the chunk at %d stored and complete", last, 2*cs)
	}
	var buf bytes.Buffer
	if _, err := db.CopyBlob(ctx, "d1", r.ID, r.Blobs[0].ID, &buf); err != nil || !bytes.Equal(buf.Bytes(), photo) {
		t.Fatalf("stored blob: %d bytes, %v", buf.Len(), err)
	}
	// A chunk of a complete blob is a duplicate that says so.
	d.send(chunk(r, 0, photo, 0, cs))
	got = d.await("the late chunk is answered", func(got []*protocol.Envelope) bool { return len(chunkAcks(got)) >= 5 })
	if c := chunkAcks(got)[4]; c.Status != protocol.AckDuplicate || !c.Complete {
		t.Errorf("late chunk verdict = %+v", c)
	}

	// A blob whose chunks are sound but whose whole is not what the record
	// declared: the last chunk is refused and the blob starts over.
	other := bytes.Repeat([]byte("fingerprint "), 8000)
	r2 := newRecord(2, other)
	r2.Blobs[0].SHA256 = protocol.SumOf([]byte("something else"))
	d.send(r2)
	for off := 0; off < len(other); off += cs {
		d.send(chunk(r2, 0, other, off, cs))
	}
	got = d.await("the last chunk of the second blob is answered", func(got []*protocol.Envelope) bool {
		for _, c := range chunkAcks(got) {
			if c.Blob == r2.Blobs[0].ID && c.Offset == uint64(len(other)/cs*cs) {
				return true
			}
		}
		return false
	})
	last := chunkAcks(got)[len(chunkAcks(got))-1]
	if last.Status != protocol.AckRejected || !strings.Contains(last.Reason, "from offset 0") {
		t.Errorf("verdict on the last chunk = %+v", last)
	}
	s, err := db.DeviceSync(ctx, "d1")
	if err != nil || len(s.Incomplete) != 1 || s.Incomplete[0].Have != 0 {
		t.Errorf("after the mismatch: %+v, %v; want the blob reset to 0", s.Incomplete, err)
	}
	if v := metricValue(t, reg, "kogge_ingest_rejected_total", "reason", reasonBlobDigest); v != 1 {
		t.Errorf("rejected_total{blob_digest} = %v", v)
	}
	if v := metricValue(t, reg, "kogge_ingest_rejected_total", "reason", reasonChunkDigest); v != 1 {
		t.Errorf("rejected_total{chunk_digest} = %v", v)
	}
}

func TestResumeAfterCut(t *testing.T) {
	b := startBroker(t)
	db := openStore(t, "", "d1")
	startIngest(t, db, b, Options{})
	photo := bytes.Repeat([]byte{1, 2, 3, 4, 5, 6, 7}, 30_000)
	const cs = 50_000
	r1, r2, r3 := newRecord(1, photo), newRecord(2), newRecord(3)

	d := connect(t, b.addr, "d1", deviceOpts{})
	d.send(r1)
	d.send(chunk(r1, 0, photo, 0, cs))
	d.send(chunk(r1, 0, photo, cs, cs))
	d.await("two chunks are stored", func(got []*protocol.Envelope) bool { return len(chunkAcks(got)) == 2 })
	d.c.Disconnect(0) // the cut: r2 and r3 and the rest of the blob never left
	// The broker forgets the old session before the device comes back (a
	// takeover could otherwise drop the new session's subscriptions).
	waitFor(t, "the broker forgets the session", func() bool { _, ok := b.srv.Clients.Get("d1"); return !ok })

	d = connect(t, b.addr, "d1", deviceOpts{})
	session := uuid.New()
	d.send(&protocol.SyncHello{Session: session, Lowest: 1, Highest: 3})
	got := d.await("the sync state", func(got []*protocol.Envelope) bool { return len(syncStates(got)) == 1 })
	s := syncStates(got)[0]
	if s.Session != session || len(s.Missing) != 1 || s.Missing[0] != (protocol.SeqRange{From: 2, To: 3}) {
		t.Errorf("missing = %+v (session %v)", s.Missing, s.Session)
	}
	if len(s.Blobs) != 1 || s.Blobs[0].Blob != r1.Blobs[0].ID || s.Blobs[0].Have != 2*cs || s.Truncated {
		t.Errorf("blobs = %+v", s.Blobs)
	}
	if d := time.Since(s.ServerTime.Time()); d < 0 || d > time.Minute {
		t.Errorf("server time off by %v", d)
	}
	// Resume where the server stopped.
	d.send(r2)
	d.send(r3)
	for off := int(s.Blobs[0].Have); off < len(photo); off += cs {
		d.send(chunk(r1, 0, photo, off, cs))
	}
	d.send(&protocol.SyncHello{Session: session, Lowest: 1, Highest: 3})
	got = d.await("the second sync state", func(got []*protocol.Envelope) bool { return len(syncStates(got)) == 2 })
	if s := syncStates(got)[1]; len(s.Missing) != 0 || len(s.Blobs) != 0 {
		t.Errorf("after resuming: missing %+v, blobs %+v", s.Missing, s.Blobs)
	}
}

func TestGroupCommitBatches(t *testing.T) {
	b := startBroker(t)
	const devices, each = 16, 25
	var ids []string
	for i := range devices {
		ids = append(ids, fmt.Sprintf("d%02d", i))
	}
	db := openStore(t, "", ids...)
	in, _ := startIngest(t, db, b, Options{Linger: 5 * time.Millisecond})
	type job struct {
		d        *device
		payloads [][]byte
	}
	var jobs []job
	for _, id := range ids {
		j := job{d: connect(t, b.addr, id, deviceOpts{})}
		for i := range each {
			p, err := protocol.Encode(protocol.NewEnvelope(id, uint64(i+1), time.Now(), newRecord(uint64(i+1))))
			if err != nil {
				t.Fatal(err)
			}
			j.payloads = append(j.payloads, p)
		}
		jobs = append(jobs, j)
	}
	errs := make(chan error, devices*each)
	var wg sync.WaitGroup
	for _, j := range jobs {
		wg.Go(func() {
			topic, _ := protocol.TopicFor(j.d.id, protocol.TypeRecord)
			for _, p := range j.payloads {
				if tok := j.d.c.Publish(topic, 1, false, p); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
					errs <- fmt.Errorf("%s: publish: %v", j.d.id, tok.Error())
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, j := range jobs {
		j.d.await("all acknowledged", func(got []*protocol.Envelope) bool {
			acks, _ := recordAcks(got)
			return len(acks) == each
		})
	}
	st := in.Stats()
	if st.Stored != devices*each {
		t.Fatalf("%d records stored, want %d", st.Stored, devices*each)
	}
	if st.Commits >= st.Committed {
		t.Errorf("%d commits for %d messages: no group commit", st.Commits, st.Committed)
	}
	t.Logf("%d messages in %d commits", st.Committed, st.Commits)
}

func TestGarbageIsCountedAndTheNextMessageWorks(t *testing.T) {
	b := startBroker(t)
	db := openStore(t, "", "d1")
	reg := prometheus.NewRegistry()
	in, _ := startIngest(t, db, b, Options{Registerer: reg})
	d := connect(t, b.addr, "d1", deviceOpts{})

	misplaced, invalid, good := newRecord(1), newRecord(2), newRecord(3)
	encode := func(r *protocol.Record) []byte {
		b, err := protocol.Encode(protocol.NewEnvelope("d1", 1, time.Now(), r))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	valid, onChunk := encode(good), encode(misplaced)
	invalid.Kind = "Not A Kind!"
	hello, _ := protocol.Encode(protocol.NewEnvelope("d1", 1, time.Now(), &protocol.SyncHello{Session: uuid.New()}))
	up := "kogge/v1/d/d1/up/"
	for _, c := range []struct {
		topic   string
		payload []byte
		reason  string
	}{
		{up + "record", []byte("not cbor at all"), reasonMalformed},
		{up + "record", valid[:len(valid)/2], reasonTruncated},
		{up + "record", bytes.Repeat([]byte{0xff}, protocol.MaxMessageSize+1), reasonTooLarge},
		{up + "chunk", onChunk, reasonTypeMismatch},
		{up + "hello", []byte{0xa0}, reasonVersion},
		{up + "nonsense", valid, reasonTopic},
		{up + "record", encodeUnchecked(t, invalid), reasonInvalid},
		{up + "chunk", hello, reasonTypeMismatch},
	} {
		d.raw(c.topic, c.payload, false)
		want := c.reason
		waitFor(t, "the "+want+" payload is counted", func() bool {
			return metricValue(t, reg, "kogge_ingest_rejected_total", "reason", want) >= 1
		})
	}
	d.raw(up+"record", valid, false)
	got := d.await("the good record is stored", func(got []*protocol.Envelope) bool {
		acks, _ := recordAcks(got)
		return acks[good.ID].Status == protocol.AckStored
	})
	acks, _ := recordAcks(got)
	// The record on the chunk topic and the invalid one are named, refused,
	// and keep their places in the sequence, so the good record is stored.
	if a := acks[misplaced.ID]; a.Status != protocol.AckRejected || !strings.Contains(a.Reason, "a record message on the chunk topic") {
		t.Errorf("record on the chunk topic: %+v", a)
	}
	if a, ok := acks[invalid.ID]; !ok || a.Status != protocol.AckRejected || !strings.Contains(a.Reason, "record.kind") {
		t.Errorf("invalid record: %+v (answered %v)", a, ok)
	}
	if st := in.Stats(); st.Rejected < 8 {
		t.Errorf("%d rejections counted, want at least 8", st.Rejected)
	}
}

// encodeUnchecked encodes a record that protocol.Encode would refuse, by
// encoding a valid one and patching its kind in the bytes.
func encodeUnchecked(t *testing.T, r *protocol.Record) []byte {
	t.Helper()
	bad := r.Kind
	r.Kind = strings.Repeat("x", len(bad))
	b, err := protocol.Encode(protocol.NewEnvelope("d1", 1, time.Now(), r))
	if err != nil {
		t.Fatal(err)
	}
	r.Kind = bad
	i := bytes.Index(b, []byte(strings.Repeat("x", len(bad))))
	if i < 0 {
		t.Fatal("kind not found in the encoding")
	}
	copy(b[i:], bad)
	return b
}

func TestDrainAcknowledgesEverything(t *testing.T) {
	b := startBroker(t)
	db := openStore(t, "", "d1")
	// A batch that would wait an hour: only the drain commits it.
	in, stop := startIngest(t, db, b, Options{Linger: time.Hour, BatchSize: 10_000})
	d := connect(t, b.addr, "d1", deviceOpts{})
	const n = 30
	var recs []*protocol.Record
	for i := range n {
		r := newRecord(uint64(i + 1))
		recs = append(recs, r)
		d.send(r)
	}
	waitFor(t, "the ingest has taken every record", func() bool { return in.Stats().Received == n })
	if c := countRecords(t, db, "d1"); c != 0 {
		t.Fatalf("%d records committed before the drain", c)
	}
	stop()
	if c := countRecords(t, db, "d1"); c != n {
		t.Errorf("%d records committed by the drain, want %d", c, n)
	}
	d.await("every record is acknowledged", func(got []*protocol.Envelope) bool {
		acks, _ := recordAcks(got)
		return len(acks) == n
	})
	// After the drain, messages are refused and counted, not lost silently.
	d.send(newRecord(n + 1))
	waitFor(t, "the late record is counted", func() bool { return in.Stats().Rejected == 1 })
}

func TestFloodsAreBounded(t *testing.T) {
	b := startBroker(t)
	db := openStore(t, "", "flood", "calm")
	reg := prometheus.NewRegistry()
	startIngest(t, db, b, Options{Registerer: reg, DeviceRate: 1, DeviceBurst: protocol.MaxMessageSize,
		MaxIncompleteBytes: protocol.MaxBlobSize})
	flood := connect(t, b.addr, "flood", deviceOpts{})
	calm := connect(t, b.addr, "calm", deviceOpts{})

	// Two records declaring 20 MiB blobs each: the first chunk of the
	// first blob starts it; the second blob would exceed 32 MiB under way.
	big := 20 << 20
	r1, r2 := newRecord(1), newRecord(2)
	for _, r := range []*protocol.Record{r1, r2} {
		r.Blobs = []protocol.BlobRef{{ID: uuid.Must(uuid.NewV7()), Role: "video", Size: uint64(big), SHA256: protocol.SumOf(nil)}}
		flood.send(r)
	}
	data := bytes.Repeat([]byte{7}, 1000)
	for _, r := range []*protocol.Record{r1, r2} {
		flood.send(&protocol.BlobChunk{Record: r.ID, Blob: r.Blobs[0].ID, Total: uint64(big), Data: data, SHA256: protocol.SumOf(data)})
	}
	got := flood.await("the first chunk is answered", func(got []*protocol.Envelope) bool { return len(chunkAcks(got)) == 1 })
	if c := chunkAcks(got)[0]; c.Blob != r1.Blobs[0].ID || c.Status != protocol.AckStored {
		t.Errorf("chunk verdict = %+v", c)
	}
	waitFor(t, "the second blob is held back", func() bool {
		return metricValue(t, reg, "kogge_ingest_rejected_total", "reason", reasonIncompleteLimit) == 1
	})
	// Now flood beyond the byte rate (the burst is one message's worth).
	junk := bytes.Repeat([]byte{1}, 300_000)
	for range 5 {
		flood.raw("kogge/v1/d/flood/up/chunk", junk, false)
	}
	waitFor(t, "the flood is cut", func() bool {
		return metricValue(t, reg, "kogge_ingest_rejected_total", "reason", reasonRate) >= 1
	})
	// The other device is served all along.
	r := newRecord(1)
	calm.send(r)
	calm.await("the calm device's record is stored", func(got []*protocol.Envelope) bool {
		acks, _ := recordAcks(got)
		return acks[r.ID].Status == protocol.AckStored
	})
}

func TestResultsTwinHeartbeatPresence(t *testing.T) {
	b := startBroker(t)
	db := openStore(t, "", "d1")
	var connected sync.Map
	in, _ := startIngest(t, db, b, Options{OnConnect: func(d string) { connected.Store(d, true) }})
	ctx := context.Background()
	cmd := store.Command{ID: uuid.Must(uuid.NewV7()), Device: "d1", Name: "reboot", IssuedAt: 1, ExpiresAt: 1 << 50}
	if err := db.InsertCommands(ctx, []store.Command{cmd}); err != nil {
		t.Fatal(err)
	}
	session := uuid.New()
	d := connect(t, b.addr, "d1", deviceOpts{will: true, session: session})
	d.send(&protocol.Presence{State: protocol.Online, Session: session, Software: "kiosk 1.0", At: protocol.At(time.Now())})
	d.send(&protocol.CommandResult{ID: cmd.ID, Outcome: protocol.OutcomeOK, Message: "rebooted", At: protocol.At(time.Now())})
	d.send(&protocol.CommandResult{ID: cmd.ID, Outcome: protocol.OutcomeFailed, At: protocol.At(time.Now())})
	d.send(&protocol.TwinReported{Version: 3, Config: map[string]any{"volume": uint64(4)}})
	d.send(&protocol.Heartbeat{QueueDepth: 7, Battery: 80, Software: "kiosk 1.0", Clock: protocol.At(time.Now())})
	// Both results may share a batch and so an Ack, which names the command
	// once.
	d.await("the result is acknowledged", func(got []*protocol.Envelope) bool {
		for _, e := range got {
			if a, ok := e.Body.(*protocol.Ack); ok && len(a.Results) == 1 && a.Results[0] == cmd.ID {
				return true
			}
		}
		return false
	})
	waitFor(t, "both results are committed", func() bool { return in.Stats().Committed >= 4 })
	c, err := db.Command(ctx, cmd.ID)
	if err != nil || c.Result == nil || c.Result.Outcome != protocol.OutcomeOK || c.Result.Message != "rebooted" {
		t.Errorf("command = %+v, %v; want the first result", c, err)
	}
	waitFor(t, "heartbeat and twin report are stored", func() bool {
		h, err1 := db.LatestHealth(ctx, "d1")
		r, err2 := db.TwinReported(ctx, "d1")
		return err1 == nil && err2 == nil && h.Heartbeat.QueueDepth == 7 && r.Version == 3 && string(r.Config) == `{"volume":4}`
	})
	p, err := db.Presence(ctx, "d1")
	if err != nil || !p.Online || p.Software != "kiosk 1.0" || p.Session != session {
		t.Errorf("presence = %+v, %v", p, err)
	}
	waitFor(t, "OnConnect is called for the online presence", func() bool { _, ok := connected.Load("d1"); return ok })
	// The connection dies without a DISCONNECT: the broker publishes the
	// last will.
	d.cut()
	waitFor(t, "the device is offline", func() bool {
		p, err := db.Presence(ctx, "d1")
		return err == nil && !p.Online
	})
}

// metricValue returns the value of the counter name{label=value} in reg.
func metricValue(t testing.TB, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func TestClipText(t *testing.T) {
	long := strings.Repeat("ä", protocol.MaxTextLen) // 2 bytes a rune
	for _, s := range []string{"short", long, "bad \xff utf-8", strings.Repeat("x", protocol.MaxTextLen+1)} {
		got := clipText(s)
		if len(got) > protocol.MaxTextLen || !utf8.ValidString(got) {
			t.Errorf("clipText(%.20q…) = %d bytes, valid UTF-8 %v", s, len(got), utf8.ValidString(got))
		}
	}
}
