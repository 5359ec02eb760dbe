package sync_test

import (
	"context"
	"errors"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/agent/internal/testserver"
	"github.com/kogge-fleet/kogge/agent/sync"
	"github.com/kogge-fleet/kogge/protocol"
)

func TestDrain(t *testing.T) {
	tests := []struct {
		name      string
		opts      sync.Options
		n         int
		blobEvery int
		blobSize  int
	}{
		{"records only", fast(), 300, 0, 0},
		{"window of one", func() sync.Options { o := fast(); o.Window = 1; return o }(), 40, 0, 0},
		{"with blobs", fast(), 100, 3, 5000},
		{"blob of one chunk", fast(), 20, 1, 1024},
		{"one chunk in flight", func() sync.Options { o := fast(); o.ChunkBytesInFlight = o.ChunkSize; return o }(), 20, 2, 3000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// No faults here: a retransmission would only mean that the
			// machine is slow (the race detector on a loaded CI runner),
			// and would count as a duplicate.
			tt.opts.AckTimeout, tt.opts.MaxBackoff = 10*time.Second, 10*time.Second
			h := newHarness(t, tt.opts, testserver.Options{})
			recs := h.add(tt.n, tt.blobEvery, tt.blobSize)
			h.link.Heal()
			h.wait("drain", h.drained)
			checkDelivered(t, h.srv, recs)
			if c := h.srv.Counts(device); c.GapDrops != 0 || c.Duplicates != 0 {
				t.Errorf("without faults: %d gap drops, %d duplicates; want none", c.GapDrops, c.Duplicates)
			}
			if n := h.box.SealedLeft(); n != 0 {
				t.Errorf("%d sealed bodies left on the device", n)
			}
			h.wait("stored events", func() bool { return len(h.eventsOf(sync.EventStored)) >= tt.n })
			if got := len(h.eventsOf(sync.EventStored)); got != tt.n {
				t.Errorf("%d stored events, want %d", got, tt.n)
			}
		})
	}
}

func TestWindowBoundsRecordsInFlight(t *testing.T) {
	opts := fast()
	opts.Window = 16
	opts.AckTimeout = time.Minute // no retransmission during the test
	opts.MaxBackoff = time.Minute
	h := newHarness(t, opts, testserver.Options{})
	h.srv.HoldAcks()
	recs := h.add(50, 0, 0)
	h.link.Heal()
	h.wait("a full window at the server", func() bool { return h.srv.StoredCount(device) == 16 })
	h.wait("a full window in flight", func() bool { return h.eng.Stats().InFlight == 16 })
	if s := h.eng.Stats(); s.RecordsSent != 16 {
		t.Fatalf("sent %d records without an ack, window is 16", s.RecordsSent)
	}
	h.srv.ReleaseAcks(context.Background())
	h.wait("drain", h.drained)
	checkDelivered(t, h.srv, recs)
}

func TestRetransmitAfterLostAcks(t *testing.T) {
	h := newHarness(t, fast(), testserver.Options{})
	h.srv.DropAcks(3)
	recs := h.add(100, 10, 3000)
	h.link.Heal()
	h.wait("drain", h.drained)
	checkDelivered(t, h.srv, recs)
	if s := h.eng.Stats(); s.Retransmits == 0 {
		t.Error("no retransmission, but acks were lost")
	}
	if c := h.srv.Counts(device); c.DroppedAcks != 3 || c.Duplicates+c.ChunksDuplicate == 0 {
		t.Errorf("counts %+v: want 3 dropped acks and some duplicates", c)
	}
}

// A lost record makes the server drop its successors (they arrive out of
// order); the engine goes back to the lost one and sends them all again.
func TestLostRecordGoesBackToOldest(t *testing.T) {
	h := newHarness(t, fast(), testserver.Options{})
	recs := h.add(40, 0, 0)
	var once gosync.Once
	h.link.SetFilter(func(fromDevice bool, topic string, payload []byte) bool {
		if !fromDevice || !strings.HasSuffix(topic, "/up/record") {
			return true
		}
		env, err := protocol.Decode(payload)
		if err != nil {
			return true
		}
		lose := false
		if env.Body.(*protocol.Record).Seq == 5 {
			once.Do(func() { lose = true })
		}
		return !lose
	})
	h.link.Heal()
	h.wait("drain", h.drained)
	checkDelivered(t, h.srv, recs)
	if c := h.srv.Counts(device); c.GapDrops == 0 {
		t.Error("the server dropped nothing after the lost record")
	}
	if h.eng.Stats().Retransmits == 0 {
		t.Error("no retransmission")
	}
}

func TestDuplicateAcksAreHarmless(t *testing.T) {
	h := newHarness(t, fast(), testserver.Options{})
	var mu gosync.Mutex
	var acks [][]byte
	h.link.SetFilter(func(fromDevice bool, topic string, payload []byte) bool {
		if !fromDevice && strings.HasSuffix(topic, "/down/ack") {
			mu.Lock()
			acks = append(acks, payload)
			mu.Unlock()
		}
		return true
	})
	recs := h.add(30, 5, 2500)
	h.link.Heal()
	h.wait("drain", h.drained)

	// Every ack once more, while new records are in flight.
	recs = append(recs, h.add(30, 5, 2500)...)
	mu.Lock()
	replay := acks
	mu.Unlock()
	topic, _ := protocol.TopicFor(device, protocol.TypeAck)
	for _, p := range replay {
		if err := h.srv.PublishRaw(context.Background(), topic, p, false); err != nil {
			t.Fatal(err)
		}
	}
	h.wait("drain", h.drained)
	h.wait("stale acks counted", func() bool { return h.eng.Stats().Stale >= uint64(len(replay)) })
	checkDelivered(t, h.srv, recs)
}

func TestRejectedRecordIsMarkedAndNotRetried(t *testing.T) {
	reject := func(_ string, r *protocol.Record) string {
		if r.Seq == 4 || r.Seq == 8 {
			return "office-1 does not take this kind"
		}
		return ""
	}
	h := newHarness(t, fast(), testserver.Options{Reject: reject})
	recs := h.add(10, 0, 0)
	h.link.Heal()
	h.wait("drain", h.drained)

	want := append(append(append([]protocol.Record{}, recs[:3]...), recs[4:7]...), recs[8:]...)
	checkDelivered(t, h.srv, want)
	for _, i := range []int{3, 7} {
		if got := h.box.Rejected(recs[i].ID); got != "office-1 does not take this kind" {
			t.Errorf("record %d: rejection %q on the device", i, got)
		}
	}
	h.wait("rejection events", func() bool { return len(h.eventsOf(sync.EventRejected)) >= 2 })
	if evs := h.eventsOf(sync.EventRejected); len(evs) != 2 || evs[0].Record != recs[3].ID || evs[0].Reason == "" {
		t.Errorf("rejection events %+v", evs)
	}
	// A new session and more records: the rejected ones stay put.
	h.link.Cut()
	h.link.Heal()
	more := h.add(5, 0, 0)
	h.wait("drain", h.drained)
	checkDelivered(t, h.srv, append(want, more...))
	for _, i := range []int{3, 7} {
		if n := h.srv.Arrivals(device, recs[i].ID); n != 1 {
			t.Errorf("rejected record %d arrived %d times", i, n)
		}
	}
	if s := h.eng.Stats(); s.RecordsRejected != 2 {
		t.Errorf("RecordsRejected = %d", s.RecordsRejected)
	}
}

// A cut in the middle of a blob: after the reconnect the engine resumes at
// the offset the server has, without sending the first chunks again.
func TestChunkResumeMidBlob(t *testing.T) {
	opts := fast()
	opts.ChunkBytesInFlight = 2 * opts.ChunkSize
	h := newHarness(t, opts, testserver.Options{})
	recs := h.add(1, 1, 10*1024)
	blob := recs[0].Blobs[0].ID

	var mu gosync.Mutex
	chunks, lost := 0, 0
	h.link.SetFilter(func(fromDevice bool, topic string, payload []byte) bool {
		if !fromDevice || !strings.HasSuffix(topic, "/up/chunk") {
			return true
		}
		mu.Lock()
		defer mu.Unlock()
		chunks++
		if chunks > 4 {
			lost++
			return false
		}
		return true
	})
	h.link.Heal()
	h.wait("four chunks at the server", func() bool {
		b, _ := h.srv.Blob(device, blob)
		return len(b.Data) == 4*1024
	})
	h.link.Cut()
	h.link.SetFilter(nil)
	h.link.Heal()
	h.wait("drain", h.drained)
	checkDelivered(t, h.srv, recs)

	c := h.srv.Counts(device)
	if c.ChunksStored != 10 || c.ChunksDuplicate != 0 {
		t.Errorf("server stored %d chunks, %d duplicates; want 10 and 0", c.ChunksStored, c.ChunksDuplicate)
	}
	mu.Lock()
	defer mu.Unlock()
	if sent := h.eng.Stats().ChunksSent; sent != uint64(10+lost) {
		t.Errorf("engine sent %d chunks, %d of them lost; want %d", sent, lost, 10+lost)
	}
}

// A record saved between the engine's two reads of the outbox (Bounds, then
// PendingBlobs) must not have its blob sent before the record is stored.
func TestBlobOfARecordSavedMeanwhileWaits(t *testing.T) {
	h := newHarness(t, fast(), testserver.Options{})
	var recs []protocol.Record
	// Call 1 is the hello's; call 2 is the engine looking for blobs to
	// upload, with nothing in the outbox.
	h.box.After("Bounds", 2, func() { recs = append(recs, h.box.Add(capture(0, 1, 5000))) })
	h.link.Heal()
	h.wait("the record saved meanwhile", func() bool { return len(h.box.Unsent()) == 1 })
	h.eng.Poke()
	h.wait("drain", h.drained)
	checkDelivered(t, h.srv, recs)
	if c := h.srv.Counts(device); c.ChunksRejected != 0 {
		t.Errorf("the server refused %d chunks: the blob went before its record", c.ChunksRejected)
	}
}

// The server stored records but their acks were lost with the connection:
// the next session's SyncState lets the device mark them without sending
// them again.
func TestHelloMarksWhatTheServerHas(t *testing.T) {
	opts := fast()
	opts.AckTimeout = time.Minute
	opts.MaxBackoff = time.Minute
	h := newHarness(t, opts, testserver.Options{})
	h.srv.HoldAcks()
	recs := h.add(20, 0, 0)
	h.link.Heal()
	h.wait("all at the server", func() bool { return h.srv.StoredCount(device) == 20 })
	h.link.Cut()
	h.srv.ReleaseAcks(context.Background()) // lost: the link is cut
	h.link.Heal()
	h.wait("drain", h.drained)
	h.wait("the second session", func() bool { return h.eng.Stats().Sessions == 2 })
	checkDelivered(t, h.srv, recs)
	for _, r := range recs {
		if n := h.srv.Arrivals(device, r.ID); n != 1 {
			t.Fatalf("record %d arrived %d times", r.Seq, n)
		}
	}
	if s := h.eng.Stats(); s.MarkedBySync != 20 || s.Sessions != 2 {
		t.Errorf("marked by sync %d in %d sessions; want 20 in 2", s.MarkedBySync, s.Sessions)
	}
}

func TestHelloIsRepeatedUntilAnswered(t *testing.T) {
	h := newHarness(t, fast(), testserver.Options{})
	h.srv.MuteHellos(2)
	recs := h.add(5, 0, 0)
	h.link.Heal()
	h.wait("drain", h.drained)
	checkDelivered(t, h.srv, recs)
	if c := h.srv.Counts(device); c.Hellos < 3 {
		t.Errorf("%d hellos; two were unanswered, so want 3 or more", c.Hellos)
	}
}

// Records the device gave up (wiped) leave a gap in its sequence; the next
// hello tells the server to go on after it.
func TestWipedRecordsDoNotBlockTheSequence(t *testing.T) {
	h := newHarness(t, fast(), testserver.Options{})
	first := h.add(5, 0, 0)
	h.link.Heal()
	h.wait("drain", h.drained)
	h.link.Cut()
	h.add(5, 0, 0)
	if n := h.box.Wipe(); n != 5 {
		t.Fatalf("wiped %d", n)
	}
	more := h.add(5, 0, 0)
	h.link.Heal()
	h.wait("drain", h.drained)
	checkDelivered(t, h.srv, append(first, more...))
}

func TestCommandResultsUntilAcked(t *testing.T) {
	h := newHarness(t, fast(), testserver.Options{})
	h.srv.DropAcks(1)
	id := uuid.Must(uuid.NewV7())
	now := time.Now()
	b, err := protocol.Encode(protocol.NewEnvelope(device, 1, now, &protocol.CommandResult{
		ID: id, Outcome: protocol.OutcomeOK, Message: "pong", At: protocol.At(now),
	}))
	if err != nil {
		t.Fatal(err)
	}
	h.box.AddResult(id, b)
	h.eng.Poke()
	h.link.Heal()
	h.wait("drain", h.drained)
	if r, ok := h.srv.Results(device)[id]; !ok || r.Message != "pong" {
		t.Fatalf("server has result %+v, %v", r, ok)
	}
	h.wait("the result counted", func() bool { return h.eng.Stats().ResultsReported == 1 })
	if s := h.eng.Stats(); s.ResultsSent < 2 || s.ResultsReported != 1 {
		t.Errorf("results sent %d, reported %d; the first ack was lost, so want ≥ 2 and 1", s.ResultsSent, s.ResultsReported)
	}
}

func TestStoreErrorsAreSurvived(t *testing.T) {
	h := newHarness(t, fast(), testserver.Options{})
	h.box.FailNext("MarkStored", errors.New("disk I/O error"))
	h.box.FailNext("Pending", errors.New("database is locked"))
	recs := h.add(30, 4, 2000)
	h.link.Heal()
	h.wait("drain", h.drained)
	checkDelivered(t, h.srv, recs)
}

func TestBadDownlinkIsDroppedAndCounted(t *testing.T) {
	h := newHarness(t, fast(), testserver.Options{})
	recs := h.add(3, 0, 0)
	h.link.Heal()
	h.wait("drain", h.drained)

	ctx := context.Background()
	ackTopic, _ := protocol.TopicFor(device, protocol.TypeAck)
	otherTopic, _ := protocol.TopicFor("dev-2", protocol.TypeAck)
	otherAck, _ := protocol.Encode(protocol.NewEnvelope("dev-2", 1, time.Now(), &protocol.Ack{
		Records: []protocol.RecordAck{{ID: recs[0].ID, Status: protocol.AckStored}},
	}))
	for _, m := range []struct {
		topic   string
		payload []byte
	}{
		{ackTopic, []byte("not cbor")},
		{ackTopic, otherAck},   // envelope for dev-2 on our topic
		{otherTopic, otherAck}, // another device's ack
		{"kogge/v1/d/dev-1/down/nonsense", otherAck},
	} {
		if err := h.srv.PublishRaw(ctx, m.topic, m.payload, false); err != nil {
			t.Fatal(err)
		}
	}
	h.wait("counted", func() bool {
		s := h.eng.Stats()
		return s.Malformed == 3 && s.Foreign == 1
	})
	more := h.add(3, 0, 0)
	h.wait("drain", h.drained)
	checkDelivered(t, h.srv, append(recs, more...))
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		opts sync.Options
		ok   bool
	}{
		{"defaults", sync.Options{}, true},
		{"window too large", sync.Options{Window: protocol.MaxAckItems + 1}, false},
		{"chunk too large", sync.Options{ChunkSize: protocol.MaxChunkData + 1}, false},
		{"flight below a chunk", sync.Options{ChunkSize: 4096, ChunkBytesInFlight: 100}, false},
		{"negative timeout", sync.Options{AckTimeout: -time.Second}, false},
		{"backoff below timeout", sync.Options{AckTimeout: time.Minute, MaxBackoff: time.Second}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := sync.New(device, nil, nil, tt.opts)
			if (err == nil) != tt.ok {
				t.Errorf("New: %v, want ok=%v", err, tt.ok)
			}
		})
	}
	if _, err := sync.New("bad/device", nil, nil, sync.Options{}); err == nil {
		t.Error("New accepted a device id with a slash")
	}
}
