package bridgetest

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/fleet-server/bridge"
)

// Throughput delivers b.N copies of template (each with a fresh record id)
// through conn with the given number of workers and reports records/s.
func Throughput(b *testing.B, conn bridge.Connector, template *bridge.Case, workers int) {
	b.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	b.ResetTimer()
	for range workers {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				c := *template
				c.ID = uuid.Must(uuid.NewV7())
				if _, err := conn.Deliver(ctx, &c); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
