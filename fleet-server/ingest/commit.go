package ingest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/fleet-server/store"
	"github.com/kogge-fleet/kogge/protocol"
)

// errStale means that another writer moved a device's watermark: the batch
// is rolled back and run again with fresh state.
var errStale = errors.New("sync state changed by another writer")

// deviceBatch is one device's part of a batch, and what committing it
// produced.
type deviceBatch struct {
	device string
	items  []item

	// Results of one attempt; valid after a successful commit.
	state     deviceState
	fresh     bool // state was read in this transaction, not taken from the cache
	ack       protocol.Ack
	syncs     []*protocol.SyncState
	connected bool
	unknown   bool
	counts    map[string]int // metric reasons of input set aside
	recs      [3]int         // records acked stored, duplicate, rejected
	chunks    [3]int         // chunks acked stored, duplicate, rejected
	refusals  map[string]int // rejected_total reasons of refusals made here
}

func (d *deviceBatch) reset(st deviceState, fresh bool) {
	d.state, d.fresh = st, fresh
	d.ack = protocol.Ack{}
	d.syncs = nil
	d.connected, d.unknown = false, false
	d.counts, d.refusals = map[string]int{}, map[string]int{}
	d.recs, d.chunks = [3]int{}, [3]int{}
}

// commit stores a batch in one transaction and then acknowledges it. When
// the transaction fails for another reason than a stale watermark, the
// batch is committed device by device, so that one device's trouble cannot
// hold up the others.
func (in *Ingest) commit(ctx context.Context, batch []item) {
	var bytes int64
	byDevice := map[string]*deviceBatch{}
	var devices []*deviceBatch
	for _, it := range batch {
		bytes += int64(it.size)
		d := byDevice[it.device]
		if d == nil {
			d = &deviceBatch{device: it.device}
			byDevice[it.device] = d
			devices = append(devices, d)
		}
		d.items = append(d.items, it)
	}
	in.queuedBytes.Add(-bytes)

	err := in.commitRetry(ctx, devices)
	if err != nil && len(devices) > 1 {
		in.log.Warn("ingest: group commit failed; committing device by device", "devices", len(devices), "err", err)
		for _, d := range devices {
			if err := in.commitRetry(ctx, []*deviceBatch{d}); err != nil {
				in.failed(d, err)
			}
		}
		return
	}
	if err != nil {
		in.failed(devices[0], err)
	}
}

// failed counts and logs a device's batch that could not be stored. Nothing
// of it is acknowledged, so the device sends it again.
func (in *Ingest) failed(d *deviceBatch, err error) {
	in.m.reject(reasonStoreError, len(d.items))
	in.warn.Warn(in.opts.Clock(), "ingest: storing failed; the device will send again", "device", d.device,
		"messages", len(d.items), "err", err)
	delete(in.cache, d.device)
}

// commitRetry commits devices in one transaction, again with fresh state
// while a watermark turns out stale, and then acknowledges.
func (in *Ingest) commitRetry(ctx context.Context, devices []*deviceBatch) error {
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if err = in.commitOnce(ctx, devices); !errors.Is(err, errStale) {
			break
		}
		for _, d := range devices {
			delete(in.cache, d.device)
		}
	}
	if err != nil {
		return err
	}
	in.acknowledge(devices)
	return nil
}

func (in *Ingest) commitOnce(ctx context.Context, devices []*deviceBatch) error {
	ctx, cancel := context.WithTimeout(ctx, in.opts.CommitTimeout)
	defer cancel()
	start := time.Now()
	now := in.opts.Clock().UnixMilli()
	err := in.db.Ingest(ctx, func(tx *store.IngestTx) (err error) {
		defer func() {
			if errors.Is(err, store.ErrConflict) {
				err = errStale
			}
		}()
		var missing []string
		for _, d := range devices {
			if _, ok := in.cache[d.device]; !ok {
				missing = append(missing, d.device)
			}
		}
		known := map[string]uint64{}
		if len(missing) > 0 {
			var err error
			if known, err = tx.IngestDevices(ctx, missing); err != nil {
				return err
			}
		}
		for _, d := range devices {
			st, ok := in.cache[d.device]
			if !ok {
				high, found := known[d.device]
				if !found {
					d.reset(deviceState{}, true)
					d.unknown = true
					continue
				}
				st = deviceState{high: high}
			}
			d.reset(st, !ok)
			if err := in.apply(ctx, tx, d, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	in.m.commitSecs.Observe(time.Since(start).Seconds())
	return nil
}

// acknowledge runs after the commit: it updates the cache and the metrics
// and publishes the acks and sync states.
func (in *Ingest) acknowledge(devices []*deviceBatch) {
	n := 0
	for _, d := range devices {
		n += len(d.items)
	}
	in.m.commits.Inc()
	in.m.nCommits.Add(1)
	in.m.nCommitted.Add(uint64(n))
	in.m.batchSize.Observe(float64(n))
	if len(in.cache) > maxCachedDevices {
		clear(in.cache)
	}
	now := in.opts.Clock()
	for _, d := range devices {
		if d.unknown {
			in.m.reject(reasonUnknownDevice, len(d.items))
			in.warn.Warn(now, "ingest: message from a device the registry does not know; dropped",
				"device", d.device, "messages", len(d.items))
			continue
		}
		in.cache[d.device] = d.state
		for reason, k := range d.counts {
			in.m.ignore(reason, k)
		}
		for reason, k := range d.refusals {
			in.m.reject(reason, k)
		}
		for i, status := range []string{"stored", "duplicate", "rejected"} {
			if d.recs[i] > 0 {
				in.m.records.WithLabelValues(status).Add(float64(d.recs[i]))
			}
			if d.chunks[i] > 0 {
				in.m.chunks.WithLabelValues(status).Add(float64(d.chunks[i]))
			}
		}
		in.m.nStored.Add(uint64(d.recs[0]))
		for _, a := range splitAck(&d.ack) {
			in.publish(d.device, a)
		}
		for _, s := range d.syncs {
			in.publish(d.device, s)
		}
		if d.connected && in.opts.OnConnect != nil {
			in.opts.OnConnect(d.device)
		}
	}
}

func (in *Ingest) publish(device string, body protocol.Message) {
	now := in.opts.Clock()
	b, err := protocol.Encode(protocol.NewEnvelope(device, in.seq.Add(1), now, body))
	if err == nil {
		var topic string
		if topic, err = protocol.TopicFor(device, body.Type()); err == nil {
			err = in.broker.Publish(topic, b, false)
		}
	}
	if err != nil {
		in.warn.Warn(now, "ingest: publishing failed; the device will send again", "device", device,
			"type", body.Type(), "err", err)
	}
}

// splitAck cuts an ack into acks within protocol.MaxAckItems per list.
func splitAck(a *protocol.Ack) []*protocol.Ack {
	var out []*protocol.Ack
	for len(a.Records)+len(a.Chunks)+len(a.Results) > 0 {
		p := &protocol.Ack{}
		k := min(len(a.Records), protocol.MaxAckItems)
		p.Records, a.Records = a.Records[:k], a.Records[k:]
		k = min(len(a.Chunks), protocol.MaxAckItems)
		p.Chunks, a.Chunks = a.Chunks[:k], a.Chunks[k:]
		k = min(len(a.Results), protocol.MaxAckItems)
		p.Results, a.Results = a.Results[:k], a.Results[k:]
		out = append(out, p)
	}
	return out
}

// apply stores one device's part of the batch.
func (in *Ingest) apply(ctx context.Context, tx *store.IngestTx, d *deviceBatch, now int64) error {
	var records, chunks []item
	up := false
	for _, it := range d.items {
		up = up || it.up
		switch it.msg.(type) {
		case *protocol.Record:
			records = append(records, it)
		case *protocol.BlobChunk:
			chunks = append(chunks, it)
		}
	}
	if up && now-d.state.touched >= in.opts.LastSeenEvery.Milliseconds() {
		if err := tx.Touch(ctx, d.device, now); err != nil {
			return err
		}
		d.state.touched = now
	}
	if err := in.applyRecords(ctx, tx, d, records, now); err != nil {
		return err
	}
	if err := in.applyChunks(ctx, tx, d, chunks, now); err != nil {
		return err
	}
	results := map[uuid.UUID]bool{}
	for _, it := range d.items {
		switch m := it.msg.(type) {
		case *protocol.CommandResult:
			v, err := tx.PutCommandResult(ctx, d.device, m, now)
			if err != nil {
				return err
			}
			if v == store.ResultUnknown {
				d.counts[reasonUnknownCommand]++
			}
			if !results[m.ID] {
				results[m.ID] = true
				d.ack.Results = append(d.ack.Results, m.ID)
			}
		case *protocol.TwinReported:
			if err := tx.PutTwinReported(ctx, d.device, m, now); err != nil {
				return err
			}
		case *protocol.Heartbeat:
			if err := tx.PutHeartbeat(ctx, d.device, m, now, in.opts.HealthSampleEvery.Milliseconds()); err != nil {
				return err
			}
		case *protocol.Presence:
			applied, err := tx.ApplyPresence(ctx, d.device, m, now)
			if err != nil {
				return err
			}
			if applied && m.State == protocol.Online {
				d.connected = true
			}
		case *protocol.SyncHello:
			s, err := in.syncState(ctx, tx, d, m, now)
			if err != nil {
				return err
			}
			d.syncs = append(d.syncs, s)
			d.connected = true
		}
	}
	return nil
}

// syncState answers a hello from what is stored, including this batch.
// Every answer carries the device's watermark in Stored. A hello whose
// highest lies below the watermark comes from a device whose store was reset:
// it is answered with Stored alone, so that the device renumbers, and it
// moves nothing.
func (in *Ingest) syncState(ctx context.Context, tx *store.IngestTx, d *deviceBatch, h *protocol.SyncHello, now int64) (*protocol.SyncState, error) {
	if !d.fresh {
		// The hello names what the device lacks: answer from the store.
		if err := in.refresh(ctx, tx, d); err != nil {
			return nil, err
		}
	}
	s := &protocol.SyncState{Session: h.Session, ServerTime: protocol.Timestamp(now)}
	if h.Highest < d.state.high {
		// The device numbers below the watermark: its store was lost and
		// it started again at 1. Its sequences name other records here,
		// so nothing in this answer may say stored or missing, and its
		// lowest says nothing about wiped sequences. Stored tells it to
		// renumber above the watermark and say hello again.
		in.warn.Warn(time.UnixMilli(now), "ingest: device numbers below its watermark, its store was reset; "+
			"asking it to renumber its unsent records", "device", d.device, "highest", h.Highest, "watermark", d.state.high)
		s.Stored = d.state.high
		return s, nil
	}
	// The device never sends a sequence below its lowest unacknowledged one
	// again (nor any up to its highest when it holds none): what lies
	// between the watermark and there was wiped on the device. Move past
	// it, or the device's later records would wait for it forever.
	gone := h.Highest
	if h.Lowest > 0 {
		gone = h.Lowest - 1
	}
	if gone > d.state.high {
		ok, err := tx.AdvanceHigh(ctx, d.device, d.state.high, gone, now)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, errStale
		}
		in.log.Warn("ingest: device wiped unsent records; moving past them", "device", d.device,
			"from", d.state.high+1, "to", gone)
		d.state.high = gone
	}
	s.Stored = d.state.high
	lo := max(h.Lowest, 1)
	if h.Highest >= lo && h.Highest > d.state.high {
		s.Missing = []protocol.SeqRange{{From: max(lo, d.state.high+1), To: h.Highest}}
	}
	blobs, err := tx.IncompleteBlobs(ctx, d.device, protocol.MaxGaps+1)
	if err != nil {
		return nil, err
	}
	if len(blobs) > protocol.MaxGaps {
		blobs, s.Truncated = blobs[:protocol.MaxGaps], true
	}
	s.Blobs = blobs
	return s, nil
}

// verdict is the answer to one record.
type verdict struct {
	status protocol.AckStatus
	reason string
}

func (d *deviceBatch) ackRecord(id uuid.UUID, v verdict) {
	d.ack.Records = append(d.ack.Records, protocol.RecordAck{ID: id, Status: v.status, Reason: v.reason})
	d.recs[v.status-1]++
}

// applyRecords stores the device's records in sequence order.
func (in *Ingest) applyRecords(ctx context.Context, tx *store.IngestTx, d *deviceBatch, records []item, now int64) error {
	if len(records) == 0 {
		return nil
	}
	slices.SortStableFunc(records, func(a, b item) int {
		return cmp.Compare(a.msg.(*protocol.Record).Seq, b.msg.(*protocol.Record).Seq)
	})
	high := d.state.high
	if !d.fresh && beyond(records, high) {
		// A record the cached watermark calls out of order may be in order
		// for the stored one (another replica stored its predecessors).
		if err := in.refresh(ctx, tx, d); err != nil {
			return err
		}
		high = d.state.high
	}

	// Records at or below the watermark are answered from the store.
	var ids []uuid.UUID
	var seqs []uint64
	for _, it := range records {
		if r := it.msg.(*protocol.Record); r.Seq <= high {
			ids, seqs = append(ids, r.ID), append(seqs, r.Seq)
		}
	}
	var ix store.RecordIndex
	if len(ids) > 0 {
		var err error
		if ix, err = tx.LookupRecords(ctx, d.device, ids, seqs); err != nil {
			return err
		}
	}

	// The chain: records high+1, high+2, … in this batch. Each is stored
	// or refused; both advance the watermark.
	type link struct {
		r      *protocol.Record
		reason string // refused for this reason; "" to store
		why    string
	}
	var chain []*link
	bySeq := map[uint64]*link{}
	byID := map[uuid.UUID]*link{}
	next := high + 1
	for _, it := range records {
		r := it.msg.(*protocol.Record)
		if r.Seq != next {
			continue
		}
		l := &link{r: r, reason: it.reject, why: it.why}
		if l.reason == "" {
			if prev, ok := byID[r.ID]; ok {
				l.reason, l.why = fmt.Sprintf("record id %v is used already by sequence %d", r.ID, prev.r.Seq), reasonRecordConflict
			} else if in.opts.Validator != nil {
				if err := in.opts.Validator(d.device, r); err != nil {
					l.reason, l.why = clipText(err.Error()), reasonRecordRefused
				}
			}
		}
		chain = append(chain, l)
		bySeq[r.Seq] = l
		if _, ok := byID[r.ID]; !ok {
			byID[r.ID] = l
		}
		next++
	}
	if len(chain) > 0 {
		ok, err := tx.AdvanceHigh(ctx, d.device, high, next-1, now)
		if err != nil {
			return err
		}
		if !ok {
			return errStale
		}
		d.state.high = next - 1
	}
	for _, l := range chain {
		if l.reason == "" {
			stored, err := tx.InsertRecord(ctx, d.device, l.r, now)
			if err != nil {
				return err
			}
			if stored {
				if len(l.r.Blobs) == 0 {
					// Complete at once; one with blobs is queued when
					// its last blob completes.
					other, err := tx.EnqueueRecord(ctx, d.device, l.r, now)
					if err != nil {
						return err
					}
					in.collision(d.device, l.r.ID, other, now)
				}
				continue
			}
			// Its id is stored with another sequence (its sequence is
			// above the watermark, so it cannot be taken).
			got, err := tx.LookupRecords(ctx, d.device, []uuid.UUID{l.r.ID}, nil)
			if err != nil {
				return err
			}
			seq, ok := got.SeqOf[l.r.ID]
			if !ok {
				return errStale
			}
			l.reason = fmt.Sprintf("record id %v is stored already with sequence %d", l.r.ID, seq)
			l.why = reasonRecordConflict
		}
		if err := tx.InsertRejection(ctx, d.device, l.r.Seq, l.r.ID, l.reason, now); err != nil {
			return err
		}
	}

	// Answer every record of the batch.
	answered := map[*link]bool{}
	for _, it := range records {
		r := it.msg.(*protocol.Record)
		switch {
		case r.Seq <= high:
			d.ackRecord(r.ID, storedVerdict(r, ix, high))
		case r.Seq < next:
			l := bySeq[r.Seq]
			switch {
			case l.r.ID != r.ID:
				d.ackRecord(r.ID, verdict{protocol.AckRejected, fmt.Sprintf("sequence %d is taken by record %v", r.Seq, l.r.ID)})
			case answered[l] && l.reason == "":
				d.ackRecord(r.ID, verdict{protocol.AckDuplicate, ""})
			case l.reason == "":
				answered[l] = true
				d.ackRecord(r.ID, verdict{protocol.AckStored, ""})
			default:
				if !answered[l] && it.why == "" {
					// Refused here, not in the handler: count it once.
					d.refusals[l.why]++
				}
				answered[l] = true
				d.ackRecord(r.ID, verdict{protocol.AckRejected, l.reason})
			}
		default:
			d.counts[reasonOutOfOrder]++
		}
	}
	return nil
}

// beyond reports whether some of the records (sorted by sequence) are out
// of order above watermark high.
func beyond(records []item, high uint64) bool {
	next := high + 1
	for _, it := range records {
		switch seq := it.msg.(*protocol.Record).Seq; {
		case seq == next:
			next++
		case seq > next:
			return true
		}
	}
	return false
}

// refresh reads the device's watermark in the transaction.
func (in *Ingest) refresh(ctx context.Context, tx *store.IngestTx, d *deviceBatch) error {
	known, err := tx.IngestDevices(ctx, []string{d.device})
	if err != nil {
		return err
	}
	high, ok := known[d.device]
	if !ok {
		return errStale
	}
	d.state.high, d.fresh = high, true
	return nil
}

// storedVerdict answers a record at or below the watermark from what the
// store holds.
func storedVerdict(r *protocol.Record, ix store.RecordIndex, high uint64) verdict {
	if seq, ok := ix.SeqOf[r.ID]; ok {
		if seq == r.Seq {
			return verdict{protocol.AckDuplicate, ""}
		}
		return verdict{protocol.AckRejected, fmt.Sprintf("record id %v is stored already with sequence %d", r.ID, seq)}
	}
	if id, ok := ix.IDAt[r.Seq]; ok {
		return verdict{protocol.AckRejected, fmt.Sprintf("sequence %d is taken by record %v", r.Seq, id)}
	}
	if rj, ok := ix.RejectedAt[r.Seq]; ok {
		if rj.ID == r.ID {
			return verdict{protocol.AckRejected, rj.Reason}
		}
		return verdict{protocol.AckRejected, fmt.Sprintf("sequence %d is taken by record %v", r.Seq, rj.ID)}
	}
	if rj, ok := ix.RejectedID[r.ID]; ok {
		return verdict{protocol.AckRejected, clipText(fmt.Sprintf("record id %v was refused with sequence %d: %s", r.ID, rj.Seq, rj.Reason))}
	}
	return verdict{protocol.AckRejected, fmt.Sprintf("sequence %d is at or below the server's watermark %d, but no record holds it", r.Seq, high)}
}

type blobKey struct{ record, blob uuid.UUID }

// blobWork is a blob's state during a batch.
type blobWork struct {
	store.BlobState
	missing bool // no such blob: its record is not stored (yet)
	invalid string
}

func (d *deviceBatch) ackChunk(c *protocol.BlobChunk, status protocol.AckStatus, reason string, complete bool) {
	d.ack.Chunks = append(d.ack.Chunks, protocol.ChunkAck{Blob: c.Blob, Offset: c.Offset, Status: status, Reason: reason, Complete: complete})
	d.chunks[status-1]++
}

// applyChunks stores the chunks that continue their blobs.
func (in *Ingest) applyChunks(ctx context.Context, tx *store.IngestTx, d *deviceBatch, chunks []item, now int64) error {
	if len(chunks) == 0 {
		return nil
	}
	slices.SortStableFunc(chunks, func(a, b item) int {
		return cmp.Compare(a.msg.(*protocol.BlobChunk).Offset, b.msg.(*protocol.BlobChunk).Offset)
	})
	blobs := map[blobKey]*blobWork{}
	var started uint64
	startedKnown := false
	for _, it := range chunks {
		c := it.msg.(*protocol.BlobChunk)
		if it.reject != "" {
			d.ackChunk(c, protocol.AckRejected, it.reject, false)
			continue
		}
		if err := c.Verify(); err != nil {
			d.refusals[reasonChunkDigest]++
			in.warn.Warn(time.UnixMilli(now), "ingest: chunk does not match its digest", "device", d.device,
				"blob", c.Blob, "offset", c.Offset)
			d.ackChunk(c, protocol.AckRejected, clipText(err.Error()), false)
			continue
		}
		k := blobKey{c.Record, c.Blob}
		b := blobs[k]
		if b == nil {
			b = &blobWork{}
			st, err := tx.BlobState(ctx, d.device, c.Record, c.Blob)
			switch {
			case errors.Is(err, store.ErrNotFound):
				has, err := tx.HasRecord(ctx, d.device, c.Record)
				if err != nil {
					return err
				}
				if has {
					b.invalid = fmt.Sprintf("record %v has no blob %v", c.Record, c.Blob)
				} else {
					b.missing = true
				}
			case err != nil:
				return err
			default:
				b.BlobState = st
			}
			blobs[k] = b
		}
		end := c.Offset + uint64(len(c.Data))
		switch {
		case b.missing:
			d.counts[reasonUnknownBlob]++
		case b.invalid != "":
			d.refusals[reasonChunkInvalid]++
			d.ackChunk(c, protocol.AckRejected, b.invalid, false)
		case c.Total != b.Size:
			d.refusals[reasonChunkInvalid]++
			d.ackChunk(c, protocol.AckRejected, fmt.Sprintf("chunk says blob %v has %d bytes, its record declares %d",
				c.Blob, c.Total, b.Size), false)
		case b.Complete:
			d.ackChunk(c, protocol.AckDuplicate, "", true)
		case end <= b.Have:
			d.ackChunk(c, protocol.AckDuplicate, "", false)
		case c.Offset > b.Have:
			d.counts[reasonChunkGap]++
		default:
			if b.Have == 0 {
				if !startedKnown {
					var err error
					if started, err = tx.StartedBlobBytes(ctx, d.device); err != nil {
						return err
					}
					startedKnown = true
				}
				if started+b.Size > in.opts.MaxIncompleteBytes {
					d.refusals[reasonIncompleteLimit]++
					in.warn.Warn(time.UnixMilli(now), "ingest: device has too many blob bytes under way; chunk set aside",
						"device", d.device, "blob", c.Blob, "under_way", started, "limit", in.opts.MaxIncompleteBytes)
					continue
				}
				started += b.Size
			}
			if err := tx.AppendChunk(ctx, d.device, c.Record, c.Blob, b.Have, c.Data[b.Have-c.Offset:], now); err != nil {
				return err
			}
			b.Have = end
			if b.Have < b.Size {
				d.ackChunk(c, protocol.AckStored, "", false)
				continue
			}
			if startedKnown {
				started -= b.Size
			}
			sum, n, err := tx.BlobDigest(ctx, d.device, c.Record, c.Blob)
			if err != nil {
				return err
			}
			if n == b.Size && sum == b.SHA256 {
				if err := tx.CompleteBlob(ctx, d.device, c.Record, c.Blob, now); err != nil {
					return err
				}
				if err := in.deliverable(ctx, tx, d.device, c.Record, now); err != nil {
					return err
				}
				b.Complete = true
				d.ackChunk(c, protocol.AckStored, "", true)
				continue
			}
			if err := tx.ResetBlob(ctx, d.device, c.Record, c.Blob); err != nil {
				return err
			}
			b.Have = 0
			d.refusals[reasonBlobDigest]++
			in.warn.Warn(time.UnixMilli(now), "ingest: assembled blob does not match its digest; reset to offset 0",
				"device", d.device, "record", c.Record, "blob", c.Blob, "bytes", n)
			d.ackChunk(c, protocol.AckRejected, fmt.Sprintf("blob %v: its %d bytes do not match the SHA-256 its record declares; "+
				"the server dropped them: send the blob again from offset 0", c.Blob, n), false)
		}
	}
	return nil
}

// deliverable queues a record for delivery to its office, in the batch's
// transaction, once it and all its blobs are stored (store.EnqueueDelivery
// leaves it alone otherwise).
func (in *Ingest) deliverable(ctx context.Context, tx *store.IngestTx, device string, record uuid.UUID, now int64) error {
	other, err := tx.EnqueueDelivery(ctx, device, record, now)
	if err != nil {
		return err
	}
	in.collision(device, record, other, now)
	return nil
}

// collision warns of a record whose id another device's delivery holds.
func (in *Ingest) collision(device string, record uuid.UUID, other string, now int64) {
	if other != "" {
		in.warn.Warn(time.UnixMilli(now), "ingest: record id is queued for delivery for another device already; "+
			"this record is stored but not delivered", "device", device, "record", record, "other_device", other)
	}
}
