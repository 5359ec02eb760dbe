package roadwork

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/agent"
	"github.com/kogge-fleet/kogge/agent/store"
	"github.com/kogge-fleet/kogge/fleet-server/bridge"
	"github.com/kogge-fleet/kogge/fleet-server/connectors/open311"
	"github.com/kogge-fleet/kogge/mobile-agent/roadwork/photo"
	"github.com/kogge-fleet/kogge/mobile-agent/shift"
	"github.com/kogge-fleet/kogge/protocol"
	"github.com/kogge-fleet/kogge/protocol/casefile"
	"github.com/kogge-fleet/kogge/simulators/procedures"
)

// fakeAgent stands in for agent.Agent.Capture: it keeps the captures.
type fakeAgent struct {
	captures []agent.Capture
	fail     error
}

func (f *fakeAgent) Capture(_ context.Context, c agent.Capture) (agent.Receipt, error) {
	if f.fail != nil {
		return agent.Receipt{}, f.fail
	}
	c.Body = bytes.Clone(c.Body) // the reporter clears its copy
	f.captures = append(f.captures, c)
	return agent.Receipt{ID: uuid.Must(uuid.NewV7()), Seq: uint64(len(f.captures)), CreatedAt: now}, nil
}

func newReporter(t testing.TB, cap Capturer, tr *Tracker) *Reporter {
	t.Helper()
	r, err := NewReporter(cap, tr, "strassenbau-bremen", Options{Clock: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestSubmit(t *testing.T) {
	fa := &fakeAgent{}
	tr := newTracker(t, newMem(), TrackerOptions{})
	r := newReporter(t, fa, tr)
	d := goodDraft(t)
	e, err := r.Submit(t.Context(), d, Author{Officer: "W-0417", Crew: "Kolonne Nord"})
	if err != nil {
		t.Fatal(err)
	}
	if len(fa.captures) != 1 {
		t.Fatalf("%d captures", len(fa.captures))
	}
	c := fa.captures[0]
	if c.Kind != casefile.KindReport || c.Office != "strassenbau-bremen" || c.Meta["category"] != "pothole" ||
		c.Meta["severity"] != "high" || len(c.Meta) != 2 || len(c.Blobs) != 2 {
		t.Fatalf("capture %+v", c)
	}
	rep, err := casefile.DecodeReport(c.Body)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Crew != "Kolonne Nord" || rep.Photos[0].Image != c.Blobs[0].ID || !rep.Photos[1].Public {
		t.Fatalf("report %+v", rep)
	}
	if e.Status != StatusSaved || e.Officer != "W-0417" || e.Address() != "Osterdeich 12" || e.Photos != 1 || e.Lat != 53.0701 {
		t.Fatalf("entry %+v", e)
	}
	if got, ok := tr.Get(e.ID); !ok || got != e {
		t.Fatalf("tracker has %+v", got)
	}

	// Invalid drafts and a full store save nothing and list nothing.
	if _, err := r.Submit(t.Context(), &Draft{}, Author{}); len(fields(err)) == 0 {
		t.Fatalf("empty draft: %v", err)
	}
	fa.fail = fmt.Errorf("capture: %w", store.ErrFull)
	if _, err := r.Submit(t.Context(), goodDraft(t), Author{}); !errors.Is(err, store.ErrFull) {
		t.Fatalf("full store: %v", err)
	}
	if n := len(tr.Reports()); n != 1 {
		t.Fatalf("%d reports listed, want 1", n)
	}
	if err := r.Check(&Draft{Category: Crack, Severity: "low", Street: "Am Wall"}); err != nil {
		t.Fatal(err)
	}
}

func TestNewReporterRefuses(t *testing.T) {
	tr := newTracker(t, newMem(), TrackerOptions{})
	for name, f := range map[string]func() error{
		"no capturer": func() error { _, err := NewReporter(nil, tr, "x", Options{}); return err },
		"no tracker":  func() error { _, err := NewReporter(&fakeAgent{}, nil, "x", Options{}); return err },
		"no office":   func() error { _, err := NewReporter(&fakeAgent{}, tr, "", Options{}); return err },
		"limits": func() error {
			_, err := NewReporter(&fakeAgent{}, tr, "x", Options{Limits: Limits{MaxPhotos: 20}})
			return err
		},
	} {
		if f() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// deviceState is what the device's agent makes of a delivery state the
// fleet server sends in a RecordStatus (agent/store.StateOf and the
// agent's states).
func deviceState(d protocol.DeliveryState) agent.State {
	return map[protocol.DeliveryState]agent.State{
		protocol.Delivered: agent.Delivered, protocol.Accepted: agent.Accepted, protocol.Closed: agent.Closed,
		protocol.Failed: agent.Failed, protocol.Erased: agent.Erased, protocol.InProgress: agent.InProgress,
	}[d]
}

// TestReportThroughOpen311 files a report, hands the document and blobs the
// device made to the real Open311 connector against the road-maintenance
// simulator, and brings the simulator's status changes back through the
// connector's status poll into the tracker.
func TestReportThroughOpen311(t *testing.T) {
	sim, err := procedures.NewOpen311(procedures.Open311Options{APIKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	conn, err := open311.New(open311.Config{
		Endpoint: sim.URL(), APIKey: "k", TLS: sim.CA().ClientTLS(nil), StateDir: t.TempDir(),
		ServiceCodes: map[string]string{"pothole": "001", "damaged-sign": "002", "streetlight": "003", "*": "099"},
		Timeout:      10 * time.Second, TokenWait: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	fa := &fakeAgent{}
	tr := newTracker(t, newMem(), TrackerOptions{})
	r := newReporter(t, fa, tr)
	d := goodDraft(t)
	e, err := r.Submit(t.Context(), d, Author{Officer: "W-0417", Crew: "Kolonne Nord"})
	if err != nil {
		t.Fatal(err)
	}
	c := fa.captures[0]
	doc, err := casefile.Decode(c.Kind, c.Body)
	if err != nil {
		t.Fatal(err)
	}
	cs := &bridge.Case{ID: e.ID, Kind: c.Kind, Office: c.Office, Meta: c.Meta, Doc: doc, Body: c.Body, CreatedAt: now}
	for _, b := range c.Blobs {
		cs.Blobs = append(cs.Blobs, bridge.Blob{Ref: protocol.BlobRef{ID: b.ID, Role: b.Role, Size: uint64(len(b.Data))}, Data: b.Data})
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	rc, err := conn.Deliver(ctx, cs)
	if err != nil {
		t.Fatal(err)
	}
	reqs := sim.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests", len(reqs))
	}
	req := reqs[0]
	if req.ServiceCode != "001" || *req.Lat != 53.0701 || req.Description != d.Note || req.Address != "Osterdeich 12, Bremen" {
		t.Fatalf("request %+v", req)
	}
	// The published photo is the public copy, without metadata.
	if !bytes.Equal(req.Media, d.Photos[0].Public) {
		t.Fatal("the road-maintenance system got another photo than the public copy")
	}
	if md, err := photo.Metadata(req.Media); err != nil || len(md) > 0 {
		t.Fatalf("published photo metadata %v, %v", md, err)
	}

	// The server's ack and the bridge's receipt reach the device.
	apply := func(s agent.Status) Entry {
		t.Helper()
		got, _ := tr.Apply(t.Context(), s)
		return got
	}
	apply(agent.Status{ID: e.ID, State: agent.Stored, At: now})
	if got := apply(agent.Status{ID: e.ID, State: agent.Accepted, Reference: rc.Reference, At: now.Add(time.Second)}); got.Status != StatusReceived || got.Reference != req.ID {
		t.Fatalf("after the receipt: %+v", got)
	}

	// The office works on it; each change comes back through the poll.
	at := now.Add(time.Minute)
	for _, step := range []struct {
		status, notes string
		want          Status
	}{
		{"open", "Schaden geprüft", StatusChecked},
		{"open", "Reparatur beauftragt", StatusInProgress},
		{"closed", "Schlagloch verfüllt", StatusSolved},
	} {
		if err := sim.Advance(req.ID, step.status, step.notes); err != nil {
			t.Fatal(err)
		}
		var changes []bridge.StatusChange
		if err := conn.PollStatus(ctx, func(ch bridge.StatusChange) error { changes = append(changes, ch); return nil }); err != nil {
			t.Fatal(err)
		}
		if len(changes) != 1 || changes[0].ID != e.ID {
			t.Fatalf("%s %q: changes %+v", step.status, step.notes, changes)
		}
		ch := changes[0]
		at = at.Add(time.Hour)
		got := apply(agent.Status{ID: ch.ID, State: deviceState(ch.State), Reference: ch.Reference, Note: ch.Note, At: at})
		if got.Status != step.want || got.Note != step.notes {
			t.Fatalf("%s %q: device shows %s %q, want %s", step.status, step.notes, got.Status, got.Note, step.want)
		}
	}
	cases, err := tr.Cases(t.Context(), shiftQuery("W-0417"))
	if err != nil || len(cases) != 1 || cases[0].StatusText != "Erledigt" || cases[0].Reference != req.ID || !cases[0].Final {
		t.Fatalf("cases %+v, %v", cases, err)
	}
}

func shiftQuery(officer string) shift.Query { return shift.Query{Officer: officer, Lang: LangDE} }
