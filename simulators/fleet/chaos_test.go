package fleet

import (
	"context"
	"testing"
	"time"
)

// TestChaos runs the fault mix for 60 seconds over a small fleet (kiosks
// and handhelds of two districts, three of them as device processes, one
// kiosk with a tiny store) with delivery through in-process bridges into
// the procedure simulators: link faults of every kind, SIGKILLed device
// processes, restarts of the fleet server with its broker and bridges, a
// district offline for a simulated hour, a full store. Then it lifts the
// faults, drains, and checks the ledger against the server, the devices
// and the procedures: every receipt delivered exactly once, nothing lost,
// nothing duplicated, nothing pending. `kogge-sim chaos --duration 5m` is
// the full run over the demo fleet.
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("60-second chaos run")
	}
	out, logger := newLogSink(t)
	tuning := DefaultBridgeTuning()
	tuning.Visibility, tuning.DeliverTimeout = 10*time.Second, 8*time.Second
	cfg := RunConfig{
		DataDir: t.TempDir(), Kiosks: 3, Handhelds: 4, Districts: []string{"mitte", "nord"}, Processes: 3,
		// One simulated hour lasts 10 s, and so does the district's
		// outage; a kiosk captures about once a second at the peak.
		StartOfDay: 9 * time.Hour, Hour: 10 * time.Second, LoadScale: 1.5, BlobScale: 0.05, Seed: 5,
		ChildCommand: testChildCommand, Progress: 5 * time.Second, Out: out, FullDevice: true,
		Delivery: ProcedureDelivery(tuning),
	}
	res, err := Chaos(context.Background(), cfg, ChaosOptions{
		Duration:           60 * time.Second,
		Seed:               5,
		LinkFaultEvery:     time.Second,
		KillEvery:          6 * time.Second,
		ServerRestartEvery: 20 * time.Second,
		Logger:             logger.With("side", "chaos"),
	}, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	rep, faults := res.Report, res.Faults
	t.Logf("faults: %s", faults)
	t.Logf("ledger: %d created, %d delivered once, %d stored, %d lost, %d duplicated, %d pending",
		rep.Created, rep.DeliveredOnce, rep.Stored, len(rep.Lost), len(rep.Duplicated), rep.PendingCount())
	if !rep.OK() || rep.PendingCount() != 0 || res.DrainErr != nil || rep.DeliveredOnce != rep.Created || rep.Stored != rep.Created {
		t.Errorf("after the chaos: %d created, %d delivered once, %d lost, %d duplicated, %d pending (drain: %v)",
			rep.Created, rep.DeliveredOnce, len(rep.Lost), len(rep.Duplicated), rep.PendingCount(), res.DrainErr)
	}
	// The faults happened: a run whose faults did not fire proves nothing.
	if rep.Created < 100 || faults.Kills == 0 || faults.ServerRestarts == 0 || faults.DistrictOutages != 1 ||
		faults.FullEpisodes == 0 || faults.FullRefused == 0 || faults.Blackholes+faults.Cuts+faults.Resets == 0 {
		t.Errorf("the chaos was too mild: %d captures; %s", rep.Created, faults)
	}
}
