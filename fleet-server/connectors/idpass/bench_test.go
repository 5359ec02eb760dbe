package idpass_test

import (
	"testing"
	"time"

	"github.com/kogge-fleet/kogge/fleet-server/bridge/bridgetest"
	"github.com/kogge-fleet/kogge/fleet-server/connectors/dropdir"
	"github.com/kogge-fleet/kogge/fleet-server/connectors/idpass"
	"github.com/kogge-fleet/kogge/protocol/casefile"
)

// BenchmarkDeliver measures the idpass connector's throughput into the drop
// directory simulator (gid-log XML, 6 images of 200 KiB, 3 embedded; the
// consumer scans every 2 ms, the bridge polls for receipts every 2 ms),
// with 4 workers.
func BenchmarkDeliver(b *testing.B) {
	dir := b.TempDir()
	sim := consumer(b, dir)
	conn := newConn(b, idpass.Config{Drop: dropdir.Config{Dir: dir, PollInterval: 2 * time.Millisecond}})
	bridgetest.Throughput(b, conn, bridgetest.Case(casefile.KindApplication, 200<<10), 4)
	if u, d := sim.Stats(); u != b.N || d != 0 {
		b.Fatalf("procedure saw %d unique, %d duplicates; want %d, 0", u, d, b.N)
	}
}
