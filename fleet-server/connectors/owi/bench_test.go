package owi_test

import (
	"testing"
	"time"

	"github.com/kogge-fleet/kogge/fleet-server/bridge/bridgetest"
	"github.com/kogge-fleet/kogge/fleet-server/connectors/dropdir"
	"github.com/kogge-fleet/kogge/fleet-server/connectors/owi"
	"github.com/kogge-fleet/kogge/protocol/casefile"
)

// BenchmarkDeliver measures the owi connector's throughput into the drop
// directory simulator (case record XML with two 200 KiB photos; consumer
// scan and receipt poll every 2 ms), with 4 workers.
func BenchmarkDeliver(b *testing.B) {
	dir := b.TempDir()
	sim := consumer(b, dir)
	conn := newConn(b, owi.Config{Drop: dropdir.Config{Dir: dir, PollInterval: 2 * time.Millisecond}})
	bridgetest.Throughput(b, conn, bridgetest.Case(casefile.KindNotice, 200<<10), 4)
	if u, d := sim.Stats(); u != b.N || d != 0 {
		b.Fatalf("procedure saw %d unique, %d duplicates; want %d, 0", u, d, b.N)
	}
}
