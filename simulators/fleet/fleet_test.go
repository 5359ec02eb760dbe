package fleet

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/fleet-server/api/client"
	"github.com/kogge-fleet/kogge/protocol/casefile"
	"github.com/kogge-fleet/kogge/simulators/procedures"
)

// fastWorkloads makes every device capture about perSecond times a second
// around the clock, with one simulated hour per real second.
func fastOptions(perSecond float64) Options {
	w := Workload{Peak: perSecond, Curve: FlatCurve()}
	return Options{
		Clock:     Clock{Origin: time.Now(), StartOfDay: 9 * time.Hour, Hour: time.Second},
		Workloads: map[Role]Workload{Kiosk: w, Warden: w, Crew: w},
		BlobScale: 0.02,
	}
}

func TestFleetEnrollsCapturesAndDrains(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a fleet server and device processes")
	}
	_, logger := newLogSink(t)
	specs := []DeviceSpec{
		{ID: "kiosk-mitte-1", Role: Kiosk, District: "mitte"},
		{ID: "warden-nord-1", Role: Warden, District: "nord"},
		{ID: "crew-nord-1", Role: Crew, District: "nord", Process: true},
		{ID: "kiosk-nord-1", Role: Kiosk, District: "nord", Process: true},
	}
	s := startSim(t, specs, fastOptions(4), logger)
	ctx := context.Background()
	if err := s.fleet.Start(ctx); err != nil {
		t.Fatal(err)
	}

	// Every device is enrolled in its district's group and comes online.
	waitFor(t, "all devices online", 60*time.Second, func() (bool, string) {
		tot := s.fleet.Totals(ctx)
		return tot.Online == len(specs), fmt.Sprintf("%+v", tot)
	})
	for _, spec := range specs {
		d, err := s.srv.API().Device(ctx, spec.ID)
		if err != nil {
			t.Fatal(err)
		}
		if d.Group != spec.District || d.Inventory.Software != Software {
			t.Errorf("device %s as the server shows it: %+v", spec.ID, d)
		}
	}

	// Each device captures; the ledger fills from in-process devices and
	// device processes alike.
	waitFor(t, "captures from every device", 60*time.Second, func() (bool, string) {
		per := map[string]int{}
		for _, e := range s.ledger.Entries() {
			per[e.Device]++
		}
		for _, spec := range specs {
			if per[spec.ID] < 5 {
				return false, fmt.Sprint(per)
			}
		}
		return true, ""
	})
	s.fleet.SetCapturing(false)
	if _, err := s.fleet.WaitDrained(ctx, 60*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.fleet.Stop(); err != nil {
		t.Fatal(err)
	}

	rep, err := s.fleet.Reconcile(ctx, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.PendingCount() != 0 || rep.Done != rep.Created || rep.Stored != rep.Created || rep.Created != s.ledger.Len() {
		t.Errorf("reconciliation: created %d stored %d done %d lost %d duplicated %d pending %d",
			rep.Created, rep.Stored, rep.Done, len(rep.Lost), len(rep.Duplicated), rep.PendingCount())
	}
	// A planted loss (a receipt the server never saw and the device does
	// not know) and a planted duplicate (a procedure that received a
	// record twice) fail the reconciliation.
	entries := s.ledger.Entries()
	planted := Entry{Record: uuid.Must(uuid.NewV7()), Device: "kiosk-mitte-1", Kind: casefile.KindApplication,
		Office: "buergeramt-mitte", Seq: 999999, At: time.Now()}
	if err := s.ledger.Add(planted); err != nil {
		t.Fatal(err)
	}
	procLog, err := procedures.NewLedger("TEST-", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		procLog.Record(e.Record.String(), e.Kind, 1)
	}
	procLog.Record(entries[0].Record.String(), entries[0].Kind, 1)
	var deliveries []Delivered
	for _, pe := range procLog.Entries() {
		deliveries = append(deliveries, Delivered{Record: uuid.MustParse(pe.Key), Procedure: "test", Duplicate: pe.Duplicate})
	}
	rep, err = s.fleet.Reconcile(ctx, deliveries, true)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || len(rep.Lost) != 1 || rep.Lost[0].Record != planted.Record ||
		len(rep.Duplicated) != 1 || rep.Duplicated[0].Record != entries[0].Record ||
		rep.DeliveredOnce != len(entries)-1 || rep.PendingCount() != 0 {
		t.Errorf("planted loss and duplicate: lost %v duplicated %v delivered once %d of %d, pending %d",
			rep.Lost, rep.Duplicated, rep.DeliveredOnce, len(entries), rep.PendingCount())
	}

	// The records on the server are what the devices captured: kinds,
	// offices and blob counts match the ledger.
	page, err := s.srv.API().Records(ctx, client.RecordQuery{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]client.Record{}
	for _, r := range page.Records {
		byID[r.ID.String()] = r
	}
	for _, e := range entries {
		r, ok := byID[e.Record.String()]
		if !ok || r.Kind != e.Kind || r.Office != e.Office || len(r.Blobs) != e.Blobs || r.KeyID != e.KeyID || r.Status != "complete" {
			t.Errorf("record %v: ledger %+v, server %+v", e.Record, e, r)
		}
	}
}
