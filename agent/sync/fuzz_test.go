package sync_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/agent/sync"
	"github.com/kogge-fleet/kogge/agent/sync/synctest"
	"github.com/kogge-fleet/kogge/protocol"
)

// downTopics returns the topics a payload is fuzzed on: the device's
// downlink, its twin, another device's downlink and an unknown one.
func downTopics() []string {
	return []string{
		protocol.TopicRoot + device + "/down/ack",
		protocol.TopicRoot + device + "/down/sync",
		protocol.TopicRoot + device + "/down/command",
		protocol.TopicRoot + device + "/down/status",
		protocol.TopicRoot + device + "/twin",
		protocol.TopicRoot + "dev-2/down/ack",
		protocol.TopicRoot + device + "/down/other",
	}
}

func seedPayloads(f *testing.F) {
	now := time.Now()
	id := uuid.Must(uuid.NewV7())
	enc := func(dev string, m protocol.Message) []byte {
		b, err := protocol.Encode(protocol.NewEnvelope(dev, 1, now, m))
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	seeds := [][]byte{
		enc(device, &protocol.Ack{Records: []protocol.RecordAck{{ID: id, Status: protocol.AckStored}}, Results: []uuid.UUID{id}}),
		enc(device, &protocol.Ack{Chunks: []protocol.ChunkAck{{Blob: id, Offset: 0, Status: protocol.AckStored, Complete: true}}}),
		enc(device, &protocol.Ack{Records: []protocol.RecordAck{{ID: id, Status: protocol.AckRejected, Reason: "no"}}}),
		enc(device, &protocol.SyncState{Session: id, Missing: []protocol.SeqRange{{From: 1, To: 2}}, ServerTime: protocol.At(now)}),
		enc(device, &protocol.Command{ID: id, Name: "ping", IssuedAt: 1, ExpiresAt: 2}),
		enc(device, &protocol.RecordStatus{Items: []protocol.StatusItem{{Record: id, State: protocol.Accepted, At: 1}}}),
		enc(device, &protocol.TwinDesired{Version: 1, Config: map[string]any{"a": []any{uint64(1), "x"}}}),
		enc("dev-2", &protocol.Ack{Records: []protocol.RecordAck{{ID: id, Status: protocol.AckStored}}}),
		enc(device, &protocol.Heartbeat{Software: "x", Clock: 1, Battery: -1}),
		{}, {0xa0}, {0xff, 0x00}, []byte("not cbor at all"),
	}
	n := len(downTopics())
	for i, s := range seeds {
		for t := range n {
			if i%n == t || t == 0 {
				f.Add(uint8(t), s)
			}
		}
	}
}

// FuzzDownlink feeds arbitrary payloads on every downlink topic to an
// engine with records, a blob and a command result in flight: it never
// panics, never changes the outbox (nothing can name what is in flight but
// the server's own acks), and passes on only checked messages of the types
// it does not handle itself, for this device.
func FuzzDownlink(f *testing.F) {
	seedPayloads(f)
	sentinel := uuid.MustParse("01890000-0000-7000-8000-000000000001")
	topics := downTopics()
	f.Fuzz(func(t *testing.T, topicIdx uint8, payload []byte) {
		topic := topics[int(topicIdx)%len(topics)]
		link := synctest.NewLink()
		defer link.Close()
		box := synctest.NewOutbox()
		for i := range 3 {
			box.Add(capture(i, 2, 3000))
		}
		now := time.Now()
		res, _ := protocol.Encode(protocol.NewEnvelope(device, 1, now, &protocol.CommandResult{ID: uuid.Must(uuid.NewV7()), Outcome: protocol.OutcomeOK, At: protocol.At(now)}))
		box.AddResult(uuid.Must(uuid.NewV7()), res)

		passed := make(chan *protocol.Envelope, 16)
		opts := fast()
		opts.Logger = quiet()
		opts.AckTimeout, opts.MaxBackoff = time.Minute, time.Minute // no retransmissions during the run
		opts.OnMessage = func(env *protocol.Envelope) { passed <- env }
		eng, err := sync.New(device, box, link.Device(), opts)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- eng.Run(ctx) }()
		defer func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
		}()

		// Play the server: answer the hello so that records go in flight.
		srv := link.Server()
		link.Heal()
		send := func(topic string, b []byte) {
			if err := srv.Publish(ctx, topic, b, false); err != nil {
				t.Fatal(err)
			}
		}
		sent := 0
		for sent < 3 {
			select {
			case in := <-srv.Incoming():
				if in.Kind != sync.Message {
					continue
				}
				env, err := protocol.DecodeOn(in.Topic, in.Payload)
				if err != nil {
					t.Fatalf("the engine sent a bad message: %v", err)
				}
				switch m := env.Body.(type) {
				case *protocol.SyncHello:
					st, _ := protocol.Encode(protocol.NewEnvelope(device, 1, now, &protocol.SyncState{
						Session: m.Session, Missing: []protocol.SeqRange{{From: 1, To: 3}}, ServerTime: protocol.At(now),
					}))
					send(topics[1], st)
				case *protocol.Record:
					sent++
				}
			case <-ctx.Done():
				t.Fatal("the engine sent no records")
			}
		}

		send(topic, payload)
		cmd, _ := protocol.Encode(protocol.NewEnvelope(device, 2, now, &protocol.Command{
			ID: sentinel, Name: "ping", IssuedAt: protocol.At(now), ExpiresAt: protocol.At(now.Add(time.Hour)),
		}))
		send(topics[2], cmd)
		for {
			select {
			case env := <-passed:
				if env.Device != device {
					t.Fatalf("passed on a message for %s", env.Device)
				}
				switch m := env.Body.(type) {
				case *protocol.TwinDesired, *protocol.RecordStatus:
				case *protocol.Command:
					if m.ID == sentinel {
						if n := len(box.Unsent()); n != 3 {
							t.Fatalf("%d records unsent, want 3", n)
						}
						if box.BlobsLeft() != 2 || box.ResultsLeft() != 1 || box.SealedLeft() != 3 {
							t.Fatalf("outbox changed: %d blobs, %d results, %d sealed", box.BlobsLeft(), box.ResultsLeft(), box.SealedLeft())
						}
						return
					}
				default:
					t.Fatalf("passed on a %v", env.Type())
				}
			case <-ctx.Done():
				t.Fatal("the sentinel command never came through")
			}
		}
	})
}
