package open311_test

import (
	"testing"

	"github.com/kogge-fleet/kogge/fleet-server/bridge/bridgetest"
	"github.com/kogge-fleet/kogge/protocol/casefile"
	"github.com/kogge-fleet/kogge/simulators/procedures"
)

// BenchmarkDeliver measures the Open311 connector's throughput against the
// GeoReport v2 simulator: road reports with one 200 KiB public photo
// uploaded (multipart) and the journal fsynced twice per report, with 4
// workers.
func BenchmarkDeliver(b *testing.B) {
	sim := newSim(b, procedures.Open311Options{})
	conn := newConn(b, config(sim, b.TempDir()))
	bridgetest.Throughput(b, conn, bridgetest.Case(casefile.KindReport, 200<<10), 4)
	if u, d := sim.Stats(); u != b.N || d != 0 {
		b.Fatalf("road-maintenance system has %d unique, %d duplicates; want %d, 0", u, d, b.N)
	}
}
