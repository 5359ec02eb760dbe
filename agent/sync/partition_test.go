package sync_test

import (
	"math/rand/v2"
	"testing"

	"github.com/kogge-fleet/kogge/agent/internal/testserver"
	"github.com/kogge-fleet/kogge/protocol"
)

// TestPartition cuts the link in the middle of the stream 100 times while
// the device keeps capturing (records with and without blobs). In the end
// every record is at the server exactly once, in sequence order, every blob
// is complete and correct, and the device's outbox is empty.
func TestPartition(t *testing.T) {
	const cuts = 100
	opts := fast()
	opts.Window = 8
	h := newHarness(t, opts, testserver.Options{})
	var recs []protocol.Record
	h.link.Heal()
	for i := range cuts {
		recs = append(recs, h.add(1+rand.IntN(8), 3, 1+rand.IntN(6000))...)
		dev, _ := h.link.Published()
		k := uint64(1 + rand.IntN(12))
		h.wait("traffic before the cut", func() bool {
			d, _ := h.link.Published()
			return d >= dev+k || h.drained()
		})
		h.link.Cut()
		if i%4 == 0 {
			recs = append(recs, h.add(1+rand.IntN(3), 2, 2500)...) // captured while offline
		}
		h.link.Heal()
	}
	h.wait("drain", h.drained)
	checkDelivered(t, h.srv, recs)
	if n := h.box.SealedLeft(); n != 0 {
		t.Errorf("%d sealed bodies left on the device", n)
	}
	s := h.eng.Stats()
	t.Logf("%d records, %d sessions, %d records sent, %d marked by sync, %d chunks sent, %d retransmits; server: %+v",
		len(recs), s.Sessions, s.RecordsSent, s.MarkedBySync, s.ChunksSent, s.Retransmits, h.srv.Counts(device))
}
