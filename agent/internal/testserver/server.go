// Package testserver is a scriptable fake of the fleet server's ingest, for
// the agent's tests (in the spirit of tailscale's testcontrol). It speaks
// the protocol over any sync.Transport (an in-memory synctest link, the
// embedded broker's inline client, or an MQTT client), keeps everything in
// memory, and follows the contract the real server follows:
//
//   - it dedupes records on (device, record id) and acks a record only after
//     it is "stored";
//   - it stores a device's records only in sequence order: a record whose
//     predecessor it lacks is dropped without an ack;
//   - it assembles blobs chunk by chunk at the offset up to which they are
//     complete, checks every chunk's digest and the whole blob's, and says
//     Complete on the ack that finishes a blob;
//   - it answers every SyncHello with a SyncState that carries its
//     watermark for the device in Stored; a hello whose highest lies below
//     the watermark (a device whose store was reset) gets Stored alone and
//     moves nothing;
//   - it batches acks of messages that arrive together.
//
// Tests can tell it to drop or hold acks, to refuse records, to stay silent
// on hellos, and can read what arrived in which order.
package testserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	gosync "sync"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/agent/sync"
	"github.com/kogge-fleet/kogge/protocol"
)

// Options tune the server.
type Options struct {
	// Reject decides whether to refuse a record: a non-empty reason refuses
	// it. Nil stores everything.
	Reject func(device string, r *protocol.Record) string
	// Logger receives the server's log lines (slog.Default()).
	Logger *slog.Logger
	// Now is the clock (time.Now).
	Now func() time.Time
}

// Server is the fake ingest. Its methods are safe for concurrent use.
type Server struct {
	opts Options
	log  *slog.Logger

	mu        gosync.Mutex
	devices   map[string]*Device
	pub       sync.Transport
	changed   chan struct{}
	dropAcks  int
	holdAcks  bool
	held      []outgoing
	muteHello int
	msgSeq    uint64
}

// Device is what the server holds for one device.
type Device struct {
	ID         string
	contiguous uint64 // every sequence up to here is handled
	records    map[uuid.UUID]*Stored
	bySeq      map[uint64]uuid.UUID
	order      []uuid.UUID // stored records in the order they were stored
	arrivals   map[uuid.UUID]int
	blobs      map[uuid.UUID]*Blob
	results    map[uuid.UUID]protocol.CommandResult
	resultsIn  map[uuid.UUID]int
	heartbeats []protocol.Heartbeat
	twins      []protocol.TwinReported
	presences  []protocol.Presence
	ack        *protocol.Ack
	counts     Counts
}

// Stored is a record the server handled.
type Stored struct {
	Record   protocol.Record
	Rejected string // the reason, if refused
}

// Blob is a blob as far as it arrived.
type Blob struct {
	Record   uuid.UUID
	Ref      protocol.BlobRef
	Data     []byte
	Complete bool
}

// Counts are what happened on one device's uplink.
type Counts struct {
	Stored, Duplicates, Rejected int
	// GapDrops counts records dropped because their predecessor was
	// missing; ChunkGapDrops chunks beyond the blob's complete offset.
	GapDrops, ChunkGapDrops                       int
	ChunksStored, ChunksDuplicate, ChunksRejected int
	Hellos, Results, Heartbeats                   int
	// Resets counts hellos from below the watermark: the device's store
	// was reset, and it was told to renumber.
	Resets    int
	Malformed int
	// Violations are breaches of the contract by the device, in words.
	Violations []string
	// AckMessages counts acks published; DroppedAcks those the script
	// swallowed (see also HeldAcks).
	AckMessages, DroppedAcks int
}

type outgoing struct {
	topic    string
	payload  []byte
	retained bool
}

// New returns a server with nothing stored.
func New(opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Server{
		opts:    opts,
		log:     opts.Logger.With("component", "testserver"),
		devices: map[string]*Device{},
		changed: make(chan struct{}),
	}
}

// Serve handles the uplink arriving on tr and publishes the server's
// messages on it, until ctx ends or tr closes its Incoming channel.
// Messages that arrive together are answered with one ack per device.
func (s *Server) Serve(ctx context.Context, tr sync.Transport) error {
	s.mu.Lock()
	s.pub = tr
	s.notify()
	s.mu.Unlock()
	in := tr.Incoming()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-in:
			if !ok {
				return errors.New("testserver: the transport closed")
			}
			out := s.handle(ev)
		batch:
			for range protocol.MaxAckItems {
				select {
				case ev, ok := <-in:
					if !ok {
						break batch
					}
					out = append(out, s.handle(ev)...)
				default:
					break batch
				}
			}
			out = append(out, s.flushAcks()...)
			s.send(ctx, tr, out)
		}
	}
}

func (s *Server) send(ctx context.Context, tr sync.Transport, out []outgoing) {
	for _, o := range out {
		if err := tr.Publish(ctx, o.topic, o.payload, o.retained); err != nil {
			s.log.Debug("publish failed", "topic", o.topic, "err", err)
		}
	}
}

// handle processes one incoming item and returns what to publish at once
// (acks are collected per device and flushed after the batch).
func (s *Server) handle(ev sync.Incoming) []outgoing {
	if ev.Kind != sync.Message {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.notify()
	env, err := protocol.DecodeOn(ev.Topic, ev.Payload)
	if err != nil {
		s.log.Warn("dropped a malformed uplink message", "topic", ev.Topic, "err", err)
		if t, perr := protocol.ParseTopic(ev.Topic); perr == nil {
			s.device(t.Device).counts.Malformed++
		}
		return nil
	}
	if !env.Type().FromDevice() {
		return nil // our own downlink, seen through a wildcard
	}
	d := s.device(env.Device)
	switch m := env.Body.(type) {
	case *protocol.Record:
		s.onRecord(d, m)
	case *protocol.BlobChunk:
		s.onChunk(d, m)
	case *protocol.SyncHello:
		// Answer after the acks of what came before it.
		out := s.flushDevice(d)
		if st := s.onHello(d, m); st != nil {
			out = append(out, s.encode(d.ID, st))
		}
		return out
	case *protocol.CommandResult:
		d.counts.Results++
		d.resultsIn[m.ID]++
		if _, ok := d.results[m.ID]; !ok {
			d.results[m.ID] = *m
		}
		s.ack(d).Results = append(s.ack(d).Results, m.ID)
	case *protocol.Heartbeat:
		d.counts.Heartbeats++
		d.heartbeats = append(d.heartbeats, *m)
	case *protocol.TwinReported:
		d.twins = append(d.twins, *m)
	case *protocol.Presence:
		d.presences = append(d.presences, *m)
	}
	if d.ack != nil && len(d.ack.Records)+len(d.ack.Chunks)+len(d.ack.Results) >= protocol.MaxAckItems {
		return s.flushDevice(d)
	}
	return nil
}

func (s *Server) device(id string) *Device {
	d, ok := s.devices[id]
	if !ok {
		d = &Device{
			ID:        id,
			records:   map[uuid.UUID]*Stored{},
			bySeq:     map[uint64]uuid.UUID{},
			arrivals:  map[uuid.UUID]int{},
			blobs:     map[uuid.UUID]*Blob{},
			results:   map[uuid.UUID]protocol.CommandResult{},
			resultsIn: map[uuid.UUID]int{},
		}
		s.devices[id] = d
	}
	return d
}

func (s *Server) ack(d *Device) *protocol.Ack {
	if d.ack == nil {
		d.ack = &protocol.Ack{}
	}
	return d.ack
}

func (s *Server) onRecord(d *Device, r *protocol.Record) {
	d.arrivals[r.ID]++
	if st, ok := d.records[r.ID]; ok {
		if st.Rejected != "" {
			s.ack(d).Records = append(s.ack(d).Records, protocol.RecordAck{ID: r.ID, Status: protocol.AckRejected, Reason: st.Rejected})
			return
		}
		d.counts.Duplicates++
		s.ack(d).Records = append(s.ack(d).Records, protocol.RecordAck{ID: r.ID, Status: protocol.AckDuplicate})
		return
	}
	switch {
	case r.Seq > d.contiguous+1:
		d.counts.GapDrops++
		return
	case r.Seq <= d.contiguous:
		if other, ok := d.bySeq[r.Seq]; ok {
			d.counts.Violations = append(d.counts.Violations, fmt.Sprintf("record %v reuses sequence %d of record %v", r.ID, r.Seq, other))
			reason := fmt.Sprintf("sequence %d already belongs to another record", r.Seq)
			d.records[r.ID] = &Stored{Record: *r, Rejected: reason}
			d.counts.Rejected++
			s.ack(d).Records = append(s.ack(d).Records, protocol.RecordAck{ID: r.ID, Status: protocol.AckRejected, Reason: reason})
			return
		}
		d.counts.Violations = append(d.counts.Violations, fmt.Sprintf("record %v with sequence %d arrived after the device gave that sequence up", r.ID, r.Seq))
	default:
		d.contiguous = r.Seq
	}
	d.bySeq[r.Seq] = r.ID
	if s.opts.Reject != nil {
		if reason := s.opts.Reject(d.ID, r); reason != "" {
			d.records[r.ID] = &Stored{Record: *r, Rejected: reason}
			d.counts.Rejected++
			s.ack(d).Records = append(s.ack(d).Records, protocol.RecordAck{ID: r.ID, Status: protocol.AckRejected, Reason: reason})
			return
		}
	}
	d.records[r.ID] = &Stored{Record: *r}
	d.order = append(d.order, r.ID)
	for _, b := range r.Blobs {
		d.blobs[b.ID] = &Blob{Record: r.ID, Ref: b}
	}
	d.counts.Stored++
	s.ack(d).Records = append(s.ack(d).Records, protocol.RecordAck{ID: r.ID, Status: protocol.AckStored})
}

func (s *Server) onChunk(d *Device, c *protocol.BlobChunk) {
	refuse := func(reason string) {
		d.counts.ChunksRejected++
		s.ack(d).Chunks = append(s.ack(d).Chunks, protocol.ChunkAck{Blob: c.Blob, Offset: c.Offset, Status: protocol.AckRejected, Reason: reason})
	}
	b, ok := d.blobs[c.Blob]
	switch {
	case !ok || b.Record != c.Record:
		refuse("no stored record has this blob")
		return
	case c.Total != b.Ref.Size:
		refuse(fmt.Sprintf("the blob has %d bytes, the chunk says %d", b.Ref.Size, c.Total))
		return
	case c.Verify() != nil:
		refuse("the chunk's data does not match its digest")
		return
	}
	have := uint64(len(b.Data))
	end := c.Offset + uint64(len(c.Data))
	switch {
	case b.Complete || end <= have:
		d.counts.ChunksDuplicate++
		s.ack(d).Chunks = append(s.ack(d).Chunks, protocol.ChunkAck{Blob: c.Blob, Offset: c.Offset, Status: protocol.AckDuplicate, Complete: b.Complete})
		return
	case c.Offset > have:
		d.counts.ChunkGapDrops++
		return
	}
	b.Data = append(b.Data, c.Data[have-c.Offset:]...)
	d.counts.ChunksStored++
	ca := protocol.ChunkAck{Blob: c.Blob, Offset: c.Offset, Status: protocol.AckStored}
	if uint64(len(b.Data)) == b.Ref.Size {
		if protocol.SumOf(b.Data) != b.Ref.SHA256 {
			b.Data = nil
			refuse("the assembled blob does not match its digest; send it again from the start")
			return
		}
		b.Complete = true
		ca.Complete = true
	}
	s.ack(d).Chunks = append(s.ack(d).Chunks, ca)
}

func (s *Server) onHello(d *Device, h *protocol.SyncHello) *protocol.SyncState {
	d.counts.Hellos++
	// A device numbering below the watermark lost its store and started
	// again at 1: its sequences name other records here. Like the real
	// ingest, answer with the watermark alone and move nothing.
	reset := h.Highest < d.contiguous
	switch {
	case reset:
		d.counts.Resets++
	case h.Lowest > 0 && h.Lowest-1 > d.contiguous:
		// Everything below Lowest the device holds as stored or has
		// given up: the sequence continues after it.
		d.contiguous = h.Lowest - 1
	case h.Lowest == 0 && h.Highest > d.contiguous:
		d.contiguous = h.Highest
	}
	if s.muteHello > 0 {
		s.muteHello--
		return nil
	}
	st := &protocol.SyncState{Session: h.Session, ServerTime: protocol.At(s.opts.Now()), Stored: d.contiguous}
	if reset {
		return st
	}
	if h.Lowest > 0 {
		// A test server need not look further than this.
		last := min(h.Highest, h.Lowest+1<<22)
		st.Truncated = last < h.Highest
		for seq := h.Lowest; seq <= last; seq++ {
			if id, ok := d.bySeq[seq]; ok && d.records[id].Rejected == "" {
				continue
			}
			// Missing, or refused: a refused record is listed so that the
			// device sends it again and hears the refusal.
			if n := len(st.Missing); n > 0 && st.Missing[n-1].To == seq-1 {
				st.Missing[n-1].To = seq
				continue
			}
			if len(st.Missing) == protocol.MaxGaps {
				st.Truncated = true
				break
			}
			st.Missing = append(st.Missing, protocol.SeqRange{From: seq, To: seq})
		}
	}
	for _, id := range d.order {
		for _, ref := range d.records[id].Record.Blobs {
			b := d.blobs[ref.ID]
			if b.Complete {
				continue
			}
			if len(st.Blobs) == protocol.MaxGaps {
				st.Truncated = true
				break
			}
			st.Blobs = append(st.Blobs, protocol.BlobProgress{Record: id, Blob: ref.ID, Have: uint64(len(b.Data))})
		}
	}
	return st
}

// flushAcks returns the collected acks of every device.
func (s *Server) flushAcks() []outgoing {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []outgoing
	for _, d := range s.devices {
		out = append(out, s.flushDevice(d)...)
	}
	return out
}

func (s *Server) flushDevice(d *Device) []outgoing {
	if d.ack == nil {
		return nil
	}
	ack := d.ack
	d.ack = nil
	o := s.encode(d.ID, ack)
	switch {
	case s.dropAcks > 0:
		s.dropAcks--
		d.counts.DroppedAcks++
		return nil
	case s.holdAcks:
		s.held = append(s.held, o)
		return nil
	}
	d.counts.AckMessages++
	return []outgoing{o}
}

func (s *Server) encode(device string, m protocol.Message) outgoing {
	s.msgSeq++
	env := protocol.NewEnvelope(device, s.msgSeq, s.opts.Now(), m)
	b, err := protocol.Encode(env)
	if err != nil {
		panic(fmt.Sprintf("testserver: encode %v: %v", m.Type(), err))
	}
	topic, _ := env.Topic()
	return outgoing{topic: topic, payload: b, retained: m.Type() == protocol.TypeTwinDesired}
}

// notify wakes everyone waiting for a change. Call with s.mu held.
func (s *Server) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Wait waits until cond returns true; cond is checked after every change.
// cond must not hold a lock that the server's methods need.
func (s *Server) Wait(ctx context.Context, cond func() bool) error {
	for {
		s.mu.Lock()
		ch := s.changed
		s.mu.Unlock()
		if cond() {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("testserver: waiting: %w", ctx.Err())
		}
	}
}

// DropAcks makes the server swallow its next n ack messages.
func (s *Server) DropAcks(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropAcks += n
}

// HoldAcks makes the server keep its acks back until ReleaseAcks.
func (s *Server) HoldAcks() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.holdAcks = true
}

// ReleaseAcks publishes the held acks and stops holding.
func (s *Server) ReleaseAcks(ctx context.Context) {
	s.mu.Lock()
	s.holdAcks = false
	held := s.held
	s.held = nil
	pub := s.pub
	s.mu.Unlock()
	if pub != nil {
		s.send(ctx, pub, held)
	}
}

// HeldAcks returns how many ack messages are held.
func (s *Server) HeldAcks() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.held)
}

// MuteHellos makes the server leave its next n hellos unanswered.
func (s *Server) MuteHellos(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.muteHello += n
}

// Counts returns what happened on a device's uplink.
func (s *Server) Counts(device string) Counts {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.device(device).counts
	c.Violations = slices.Clone(c.Violations)
	return c
}

// Records returns the records stored for a device, in the order they were
// stored.
func (s *Server) Records(device string) []protocol.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.device(device)
	rs := make([]protocol.Record, len(d.order))
	for i, id := range d.order {
		rs[i] = d.records[id].Record
	}
	return rs
}

// StoredCount returns how many records are stored for a device.
func (s *Server) StoredCount(device string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.device(device).order)
}

// Record returns what the server holds for a record.
func (s *Server) Record(device string, id uuid.UUID) (Stored, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.device(device).records[id]
	if !ok {
		return Stored{}, false
	}
	return *st, true
}

// Arrivals returns how often a record arrived (duplicates included).
func (s *Server) Arrivals(device string, id uuid.UUID) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.device(device).arrivals[id]
}

// Blob returns a blob as far as it arrived.
func (s *Server) Blob(device string, id uuid.UUID) (Blob, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.device(device).blobs[id]
	if !ok {
		return Blob{}, false
	}
	c := *b
	c.Data = slices.Clone(b.Data)
	return c, true
}

// IncompleteBlobs returns how many blobs of stored records are incomplete.
func (s *Server) IncompleteBlobs(device string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, b := range s.device(device).blobs {
		if !b.Complete {
			n++
		}
	}
	return n
}

// Results returns the command results stored for a device.
func (s *Server) Results(device string) map[uuid.UUID]protocol.CommandResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := map[uuid.UUID]protocol.CommandResult{}
	for id, r := range s.device(device).results {
		m[id] = r
	}
	return m
}

// Heartbeats returns the heartbeats a device sent.
func (s *Server) Heartbeats(device string) []protocol.Heartbeat {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.device(device).heartbeats)
}

// TwinReports returns the twin reports a device sent.
func (s *Server) TwinReports(device string) []protocol.TwinReported {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.device(device).twins)
}

// Presences returns the presence messages seen for a device, in order.
func (s *Server) Presences(device string) []protocol.Presence {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.device(device).presences)
}

// Publish sends a server message to a device: a TwinDesired (retained), a
// Command or a RecordStatus. It waits until the server is serving.
func (s *Server) Publish(ctx context.Context, device string, m protocol.Message) error {
	s.mu.Lock()
	o := s.encode(device, m)
	s.mu.Unlock()
	return s.PublishRaw(ctx, o.topic, o.payload, o.retained)
}

// PublishRaw sends any payload on any topic, for tests of bad input. It
// waits until the server is serving.
func (s *Server) PublishRaw(ctx context.Context, topic string, payload []byte, retained bool) error {
	var pub sync.Transport
	err := s.Wait(ctx, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		pub = s.pub
		return pub != nil
	})
	if err != nil {
		return fmt.Errorf("testserver: not serving: %w", err)
	}
	return pub.Publish(ctx, topic, payload, retained)
}
