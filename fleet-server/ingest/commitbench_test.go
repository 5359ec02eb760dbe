package ingest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/kogge-fleet/kogge/protocol"
)

// BenchmarkCommit measures the committer alone: decoding and a group commit
// of 50 devices × 10 records into SQLite, with the acks encoded, per op.
func BenchmarkCommit(b *testing.B) {
	const devices, each = 50, 10
	ids := make([]string, devices)
	for i := range ids {
		ids[i] = fmt.Sprintf("d%02d", i)
	}
	db := openStore(b, "", ids...)
	in, err := New(db, &fakeBroker{}, Options{Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	seq := uint64(0)
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		var topics []string
		var payloads [][]byte
		for range each {
			seq++
			for _, id := range ids {
				p, _ := protocol.Encode(protocol.NewEnvelope(id, seq, time.Now(), newRecord(seq)))
				t, _ := protocol.TopicFor(id, protocol.TypeRecord)
				topics, payloads = append(topics, t), append(payloads, p)
			}
		}
		b.StartTimer()
		for i := range topics {
			in.handle(topics[i], payloads[i])
		}
		in.flush(context.Background())
	}
	b.ReportMetric(float64(b.N*devices*each)/b.Elapsed().Seconds(), "records/s")
}
