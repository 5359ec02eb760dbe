package webhook_test

import (
	"testing"

	"github.com/kogge-fleet/kogge/fleet-server/bridge/bridgetest"
	"github.com/kogge-fleet/kogge/protocol/casefile"
	"github.com/kogge-fleet/kogge/simulators/procedures"
)

// BenchmarkDeliver measures the webhook connector's throughput against the
// simulator on loopback: enforcement notices with two 200 KiB photos,
// delivered by 4 workers (the runner's default concurrency).
func BenchmarkDeliver(b *testing.B) {
	sim := newSim(b, procedures.WebhookOptions{})
	conn := newConn(b, sim, nil)
	bridgetest.Throughput(b, conn, bridgetest.Case(casefile.KindNotice, 200<<10), 4)
	if u, d := sim.Stats(); u != b.N || d != 0 {
		b.Fatalf("simulator saw %d unique, %d duplicates; want %d, 0", u, d, b.N)
	}
}
