package mobileagent_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/agent/twin"
	"github.com/kogge-fleet/kogge/drivers"
	"github.com/kogge-fleet/kogge/drivers/gnss"
	"github.com/kogge-fleet/kogge/drivers/printer"
	mobileagent "github.com/kogge-fleet/kogge/mobile-agent"
	"github.com/kogge-fleet/kogge/mobile-agent/enforcement"
	"github.com/kogge-fleet/kogge/mobile-agent/roadwork"
	"github.com/kogge-fleet/kogge/mobile-agent/roadwork/photo"
	"github.com/kogge-fleet/kogge/mobile-agent/shift"
	"github.com/kogge-fleet/kogge/protocol"
	"github.com/kogge-fleet/kogge/protocol/casefile"
)

// records returns the records waiting in the outbox.
func (f *fixture) records() []protocol.Record {
	f.t.Helper()
	rs, err := f.st.Pending(context.Background(), 0, 100)
	if err != nil {
		f.t.Fatal(err)
	}
	return rs
}

// open opens a record's sealed body as its office would.
func (f *fixture) open(r protocol.Record) []byte {
	f.t.Helper()
	b, err := f.keys[r.Office].Open(r.KeyID, r.Sealed)
	if err != nil {
		f.t.Fatalf("open record %s for %s: %v", r.ID, r.Office, err)
	}
	return b
}

// blob reads and opens one of a record's blobs.
func (f *fixture) blob(r protocol.Record, ref protocol.BlobRef) []byte {
	f.t.Helper()
	sealed := make([]byte, ref.Size)
	n, err := f.st.ReadBlob(context.Background(), ref.ID, 0, sealed)
	if err != nil || uint64(n) != ref.Size {
		f.t.Fatalf("read blob %s: %d of %d bytes: %v", ref.ID, n, ref.Size, err)
	}
	b, err := f.keys[r.Office].Open(r.KeyID, sealed)
	if err != nil {
		f.t.Fatalf("open blob %s: %v", ref.ID, err)
	}
	return b
}

// onDuty logs the officer in and starts a shift.
func (f *fixture) onDuty() {
	f.t.Helper()
	ctx := context.Background()
	if _, err := f.app.Login(ctx, officer, pin); err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.app.StartShift(ctx); err != nil {
		f.t.Fatal(err)
	}
}

// fillNotice fills a complete warning notice: parking on the footway.
func (f *fixture) fillNotice(photos int) {
	f.t.Helper()
	ctx := context.Background()
	must(f.t, f.app.NewNotice())
	_, err := f.app.NoticePlate("D", "hb-ab 123")
	must(f.t, err)
	must(f.t, f.app.NoticeVehicle("VW", "grey"))
	_, err = f.app.NoticeLocate(ctx)
	must(f.t, err)
	must(f.t, f.app.NoticeAddress("Am Markt", "21"))
	_, err = f.app.NoticeAddOffence("112454")
	must(f.t, err)
	must(f.t, f.app.NoticeValve("VL05"))
	must(f.t, f.app.NoticeValve("hr11"))
	for range photos {
		must(f.t, f.app.NoticeAddPhoto(cameraJPEG(f.t, 320, 240)))
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestActionsNeedAnOfficerOnDuty(t *testing.T) {
	f := newFixture(t, fixtureOptions{noRun: true})
	ctx := context.Background()
	if err := f.app.NewNotice(); !errors.Is(err, shift.ErrNotLoggedIn) {
		t.Fatalf("new notice without login: %v, want ErrNotLoggedIn", err)
	}
	var le *shift.LoginError
	if _, err := f.app.Login(ctx, officer, "0000"); !errors.As(err, &le) || !errors.Is(err, shift.ErrWrongPIN) {
		t.Fatalf("wrong PIN: %v", err)
	}
	if _, err := f.app.Login(ctx, officer, pin); err != nil {
		t.Fatal(err)
	}
	if err := f.app.NewReport("pothole", "high"); !errors.Is(err, mobileagent.ErrNoShift) {
		t.Fatalf("new report without a shift: %v, want ErrNoShift", err)
	}
	if _, err := f.app.StartShift(ctx); err != nil {
		t.Fatal(err)
	}
	if err := f.app.NewReport("pothole", "high"); err != nil {
		t.Fatal(err)
	}
	f.app.Logout()
	if _, ok := f.app.Report(); ok {
		t.Error("the report draft survived the logout")
	}
	if s := f.app.ShiftStatus(); s.Shift == nil || s.Officer != nil {
		t.Errorf("after logout: %+v; want the shift open and nobody logged in", s)
	}
}

// The notice is saved before it is printed: a printer without paper
// leaves it saved, sealed for the fine office with its photos under the
// ids the record names, and it prints once there is paper again.
func TestNoticeSavedFirstThenPrinted(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	ctx := context.Background()
	f.onDuty()
	f.fillNotice(2)
	f.printer.SetPaperOut(true)
	is, err := f.app.IssueNotice(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(is.PrintErr, printer.ErrPaperOut) {
		t.Fatalf("print error %v, want paper out", is.PrintErr)
	}
	if is.Entry.Printed() || is.Entry.Status != mobileagent.NoticeSaved {
		t.Errorf("entry %+v: want saved, not printed", is.Entry)
	}
	if _, ok := f.app.Notice(); ok {
		t.Error("the draft is still there after the notice was saved")
	}
	rs := f.records()
	if len(rs) != 1 || rs[0].Kind != casefile.KindNotice || rs[0].Office != mobileagent.DefaultNoticeOffice {
		t.Fatalf("outbox %+v: want one notice for the fine office", rs)
	}
	r := rs[0]
	if r.ID != is.Entry.ID || r.Meta["sanction"] != casefile.SanctionWarning {
		t.Errorf("record %s meta %v; want %s, sanction warning", r.ID, r.Meta, is.Entry.ID)
	}
	n, err := casefile.DecodeNotice(f.open(r))
	if err != nil {
		t.Fatal(err)
	}
	if n.Number != is.Notice.Number || n.Plate.Text != "HBAB123" || n.Plate.Display != "HB-AB 123" ||
		n.AmountCents != 5500 || n.PaymentRef == "" || n.Officer != officer || n.Colour != "grau" {
		t.Errorf("record %+v", n)
	}
	if n.Location.Position == nil || n.Location.Position.AccuracyM != 4.5 || n.Location.Street != "Am Markt" {
		t.Errorf("location %+v", n.Location)
	}
	if got := []string{n.Valves[0].String(), n.Valves[1].String()}; !slices.Equal(got, []string{"VL05", "HR11"}) {
		t.Errorf("valves %v", got)
	}
	if len(n.Photos) != 2 || len(r.Blobs) != 2 {
		t.Fatalf("%d photos named, %d blobs", len(n.Photos), len(r.Blobs))
	}
	for i, p := range n.Photos {
		if r.Blobs[i].ID != p.Image {
			t.Errorf("photo %d is %s, blob %s", i, p.Image, r.Blobs[i].ID)
		}
		img := f.blob(r, r.Blobs[i])
		if md, err := photo.Metadata(img); err != nil || len(md) != 0 {
			t.Errorf("photo %d: metadata %v, %v; want none", i, md, err)
		}
		if strings.Contains(string(img), "SERIAL-CAM") {
			t.Errorf("photo %d still holds the camera's EXIF", i)
		}
	}
	if len(f.printer.Jobs()) != 0 {
		t.Fatal("a job printed without paper")
	}

	f.printer.SetPaperOut(false)
	if err := f.app.PrintNotice(ctx, n.Number); err != nil {
		t.Fatal(err)
	}
	if jobs := f.printer.Jobs(); len(jobs) != 1 || !strings.Contains(string(jobs[0]), n.Number) {
		t.Fatalf("%d jobs; want the notice printed once", len(jobs))
	}
	if e, _ := f.app.NoticeEntry(n.Number); !e.Printed() {
		t.Errorf("entry %+v: not marked printed", e)
	}
}

// The observation start may be moved back a little (the warden saw the
// vehicle before opening the notice), not far enough to meet a minimum
// duration by typing an earlier time.
func TestObservationStartMovesBackOnlyALittle(t *testing.T) {
	f := newFixture(t, fixtureOptions{noRun: true})
	f.onDuty()
	must(t, f.app.NewNotice())
	opened := f.clock.Now()
	must(t, f.app.NoticeObservationStart(opened.Add(-10*time.Minute)))
	err := f.app.NoticeObservationStart(opened.Add(-11 * time.Minute))
	if !errors.Is(err, mobileagent.ErrBackdate) {
		t.Fatalf("start 11 min before the notice was opened: %v, want ErrBackdate", err)
	}
	if err := f.app.NoticeObservationStart(opened.Add(-2 * time.Hour)); !errors.Is(err, mobileagent.ErrBackdate) {
		t.Fatalf("start 2 h before: %v, want ErrBackdate", err)
	}
}

func TestNoticeWaitsForTheObservation(t *testing.T) {
	f := newFixture(t, fixtureOptions{noRun: true})
	ctx := context.Background()
	f.onDuty()
	must(t, f.app.NewNotice())
	_, err := f.app.NoticePlate("NL", "12-ABC-3")
	must(t, err)
	must(t, f.app.NoticeVehicle("Opel", ""))
	must(t, f.app.NoticeAddress("Domshof", ""))
	// Parking over one hour in an absolute no-stopping zone.
	_, err = f.app.NoticeAddOffence("141314")
	must(t, err)
	_, err = f.app.CheckNotice()
	var wait *enforcement.ObservationError
	if !errors.As(err, &wait) || wait.Remaining < 59*time.Minute || wait.Remaining > time.Hour {
		t.Fatalf("check at once: %v; want about an hour to wait", err)
	}
	if _, err := f.app.IssueNotice(ctx); !errors.As(err, &wait) {
		t.Fatalf("issue at once: %v; want the wait", err)
	}
	if len(f.records()) != 0 {
		t.Fatal("a record was saved for an offence not yet established")
	}
	f.clock.advance(time.Hour + time.Minute)
	a, err := f.app.CheckNotice()
	if err != nil || a.AmountCents != 4000 || a.Sanction != enforcement.Warning {
		t.Fatalf("check after the hour: %+v, %v", a, err)
	}
	is, err := f.app.IssueNotice(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if is.PrintErr != nil {
		t.Errorf("print: %v", is.PrintErr)
	}
	if !strings.HasPrefix(is.Notice.Number, "HB42-0000001-") {
		t.Errorf("number %s", is.Notice.Number)
	}
}

// A voided notice is a new capture of the same number, flagged, without
// photos; the act is in the device log; it is not printed again.
func TestVoidNotice(t *testing.T) {
	f := newFixture(t, fixtureOptions{noRun: true})
	ctx := context.Background()
	f.onDuty()
	f.fillNotice(1)
	is, err := f.app.IssueNotice(ctx)
	must(t, err)
	number := is.Notice.Number
	if _, err := f.app.VoidNotice(ctx, number, "  "); err == nil {
		t.Fatal("voided without a reason")
	}
	e, err := f.app.VoidNotice(ctx, number, "Fahrer kam mit gültigem Parkschein")
	if err != nil {
		t.Fatal(err)
	}
	if !e.Voided || e.VoidID == uuid.Nil || e.VoidID == e.ID {
		t.Fatalf("entry %+v", e)
	}
	if _, err := f.app.VoidNotice(ctx, number, "again"); err == nil {
		t.Error("voided twice")
	}
	rs := f.records()
	if len(rs) != 2 || rs[1].ID != e.VoidID || rs[1].Meta["voided"] != "true" || len(rs[1].Blobs) != 0 {
		t.Fatalf("outbox %+v: want the notice and its voided copy without blobs", rs)
	}
	first, err := casefile.DecodeNotice(f.open(rs[0]))
	must(t, err)
	voided, err := casefile.DecodeNotice(f.open(rs[1]))
	must(t, err)
	if first.Voided || !voided.Voided || voided.VoidReason != "Fahrer kam mit gültigem Parkschein" ||
		voided.Number != number || voided.Plate != first.Plate || len(voided.Photos) != 0 {
		t.Errorf("first %+v\nvoided %+v", first, voided)
	}
	log := f.logs.String()
	if !strings.Contains(log, "notice voided") || !strings.Contains(log, number) || strings.Contains(log, "HBAB123") {
		t.Errorf("the log does not hold the void with its number, or holds the plate:\n%s", tail(log, 20))
	}
	if err := f.app.PrintNotice(ctx, number); !errors.Is(err, enforcement.ErrVoided) {
		t.Errorf("print a voided notice: %v", err)
	}
	cases, err := f.app.Cases(ctx, "de")
	must(t, err)
	if len(cases) != 1 || cases[0].Status != mobileagent.NoticeVoided || cases[0].Note == "" {
		t.Errorf("cases %+v: want the notice, voided with the reason", cases)
	}
	// After the shift the device keeps no copy: the office voids.
	_, err = f.app.EndShift(ctx)
	must(t, err)
	f.onDuty()
	if err := f.app.PrintNotice(ctx, number); !errors.Is(err, mobileagent.ErrNotKept) {
		t.Errorf("print after the shift: %v", err)
	}
}

func TestDamageReport(t *testing.T) {
	f := newFixture(t, fixtureOptions{noRun: true})
	ctx := context.Background()
	if _, err := f.app.Login(ctx, "4712", "9876"); err != nil {
		t.Fatal(err)
	}
	_, err := f.app.StartShift(ctx)
	must(t, err)
	must(t, f.app.NewReport("Schlagloch", "high"))
	if err := f.app.CheckReport(); err == nil {
		t.Error("a report without a location passed the check")
	}
	_, err = f.app.ReportLocate(ctx)
	must(t, err)
	must(t, f.app.ReportAddress("Osterdeich", "12"))
	must(t, f.app.ReportNote("Tiefes Schlagloch in der Fahrbahnmitte, ca. 40 cm."))
	p, err := f.app.ReportAddPhoto(cameraJPEG(t, 640, 480))
	must(t, err)
	if p.Width != 640 || len(p.Public) == 0 {
		t.Errorf("photo %+v", p)
	}
	must(t, f.app.CheckReport())
	e, err := f.app.SubmitReport(ctx)
	must(t, err)
	if e.Category != roadwork.Pothole || e.Severity != casefile.SeverityHigh || e.Status != roadwork.StatusSaved ||
		e.Crew != "Straßenbau Kolonne 3" {
		t.Errorf("entry %+v", e)
	}
	rs := f.records()
	if len(rs) != 1 || rs[0].Kind != casefile.KindReport || rs[0].Office != mobileagent.DefaultReportOffice {
		t.Fatalf("outbox %+v", rs)
	}
	rep, err := casefile.DecodeReport(f.open(rs[0]))
	must(t, err)
	if rep.Category != "pothole" || rep.Location.Street != "Osterdeich" || rep.Location.Position == nil || len(rep.Photos) != 2 {
		t.Fatalf("report %+v", rep)
	}
	public := 0
	for i, ph := range rep.Photos {
		if rs[0].Blobs[i].ID != ph.Image {
			t.Errorf("photo %d is %s, blob %s", i, ph.Image, rs[0].Blobs[i].ID)
		}
		if md, err := photo.Metadata(f.blob(rs[0], rs[0].Blobs[i])); err != nil || len(md) != 0 {
			t.Errorf("photo %d: metadata %v, %v", i, md, err)
		}
		if ph.Public {
			public++
		}
	}
	if public != 1 {
		t.Errorf("%d public copies, want 1", public)
	}
	if got := f.app.RecentAddresses(); len(got) != 1 || got[0].String() != "Osterdeich 12" {
		t.Errorf("recent addresses %v", got)
	}
	cases, err := f.app.Cases(ctx, "en")
	must(t, err)
	if len(cases) != 1 || cases[0].Kind != casefile.KindReport || !strings.Contains(cases[0].Title, "Osterdeich 12") {
		t.Errorf("cases %+v", cases)
	}
}

// The office's statuses come back: the fine office's reference on the
// notice, the road-maintenance office's progress on the report.
func TestStatusesComeBack(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	ctx := context.Background()
	f.onDuty()
	f.fillNotice(0)
	is, err := f.app.IssueNotice(ctx)
	must(t, err)
	must(t, f.app.NewReport("pothole", "medium"))
	must(t, f.app.ReportAddress("Osterdeich", "12"))
	rep, err := f.app.SubmitReport(ctx)
	must(t, err)

	f.link.Heal()
	f.send(&protocol.RecordStatus{Items: []protocol.StatusItem{
		{Record: is.Entry.ID, State: protocol.Accepted, Reference: "OWI-2026-0042", At: protocol.At(time.Now())},
		{Record: rep.ID, State: protocol.InProgress, Reference: "311-17", Note: "Reparatur beauftragt", At: protocol.At(time.Now())},
	}})
	eventually(t, "statuses on the device", func() (bool, string) {
		cs, err := f.app.Cases(ctx, "de")
		if err != nil {
			return false, err.Error()
		}
		var got []string
		for _, c := range cs {
			got = append(got, c.Status+" "+c.Reference)
		}
		slices.Sort(got)
		return slices.Equal(got, []string{"accepted OWI-2026-0042", "in-progress 311-17"}), strings.Join(got, "; ")
	})
	e, _ := f.app.NoticeEntry(is.Notice.Number)
	if e.Status.Label("de") != "Von Bußgeldstelle angenommen" {
		t.Errorf("label %q", e.Status.Label("de"))
	}
	if r, _ := f.app.ReportEntry(rep.ID); r.Note != "Reparatur beauftragt" {
		t.Errorf("report %+v", r)
	}
	if f.changes.Load() == 0 {
		t.Error("OnChange was never called")
	}
}

// newerCatalogue is the embedded catalogue as version 2.
func newerCatalogue(t *testing.T) string {
	t.Helper()
	cat, err := enforcement.EmbeddedCatalogue()
	must(t, err)
	s := string(cat.Bytes())
	v := "# version: " + strconv.Itoa(cat.Version())
	if !strings.Contains(s, v+"\n") {
		t.Fatalf("catalogue header has no %q", v)
	}
	return strings.Replace(s, v+"\n", "# version: "+strconv.Itoa(cat.Version()+1)+"\n", 1)
}

// Catalogue and officers arrive through the twin: a malformed catalogue
// is refused with the reason, a newer one taken into use and kept for the
// next start.
func TestTwinCatalogueAndOfficers(t *testing.T) {
	dir := t.TempDir()
	f := newFixture(t, fixtureOptions{dir: dir})
	v1 := f.app.Catalogue().Version()
	f.link.Heal()

	f.send(&protocol.TwinDesired{Version: 1, Config: map[string]any{mobileagent.TwinCatalogue: "# format: kogge-catalogue/1\n# version: 9\ntbnr,text\n1,x\n"}})
	env := f.expectMessage("refusal of the bad catalogue", func(e *protocol.Envelope) bool {
		r, ok := e.Body.(*protocol.TwinReported)
		return ok && r.Rejected == 1
	})
	if r := env.Body.(*protocol.TwinReported); !strings.Contains(r.Reason, "catalogue") {
		t.Errorf("reason %q does not name the catalogue", r.Reason)
	}
	if f.app.Catalogue().Version() != v1 {
		t.Fatal("a refused catalogue was taken into use")
	}

	newcomer := hashed(t, "5000", "Neu", "", "5555")
	f.send(&protocol.TwinDesired{Version: 2, Config: map[string]any{
		mobileagent.TwinCatalogue: newerCatalogue(t),
		mobileagent.TwinOfficers:  []any{map[string]any{"id": newcomer.ID, "name": newcomer.Name, "pin_hash": newcomer.PINHash}},
		twin.KeyHeartbeat:         30,
	}})
	f.expectMessage("the applied configuration", func(e *protocol.Envelope) bool {
		r, ok := e.Body.(*protocol.TwinReported)
		return ok && r.Version == 2
	})
	if got := f.app.Catalogue().Version(); got != v1+1 {
		t.Fatalf("catalogue version %d, want %d", got, v1+1)
	}
	ctx := context.Background()
	if _, err := f.app.Login(ctx, officer, pin); err == nil {
		t.Error("an officer the twin dropped could log in")
	}
	if _, err := f.app.Login(ctx, "5000", "5555"); err != nil {
		t.Errorf("the twin's officer cannot log in: %v", err)
	}

	// The next start uses the stored catalogue at once.
	f.stop()
	g := newFixture(t, fixtureOptions{dir: dir, pubs: f.pubs, keys: f.keys, noRun: true})
	if got := g.app.Catalogue().Version(); got != v1+1 {
		t.Errorf("after a restart: catalogue version %d, want %d", got, v1+1)
	}
}

// The peripherals' states go into the heartbeat.
func TestPeripheralsInHeartbeat(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	eventually(t, "peripherals checked", func() (bool, string) {
		ps := f.app.Peripherals()
		return len(ps) == 2 && ps[0].Status.OK() && ps[1].Status.OK(), ""
	})
	f.link.Heal()
	f.printer.SetPaperOut(true)
	env := f.expectMessage("a heartbeat with the printer out of paper", func(e *protocol.Envelope) bool {
		hb, ok := e.Body.(*protocol.Heartbeat)
		if !ok {
			return false
		}
		for _, p := range hb.Peripherals {
			if p.Name == "printer" && p.State == protocol.PeripheralError {
				return true
			}
		}
		return false
	})
	var names []string
	for _, p := range env.Body.(*protocol.Heartbeat).Peripherals {
		names = append(names, p.Name+"="+p.State.String())
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"gnss=ok", "printer=error"}) {
		t.Errorf("peripherals %v", names)
	}
	eventually(t, "the app shows the printer", func() (bool, string) {
		for _, p := range f.app.Peripherals() {
			if p.Name == "printer" {
				return p.Status.State == drivers.StateError, p.Status.String()
			}
		}
		return false, "no printer"
	})
}

func TestPositionLimits(t *testing.T) {
	f := newFixture(t, fixtureOptions{noRun: true})
	ctx := context.Background()
	f.onDuty()
	must(t, f.app.NewNotice())
	f.gnss.SetFix(gnssFix(80))
	if _, err := f.app.NoticeLocate(ctx); err == nil || !strings.Contains(err.Error(), "80 m") {
		t.Errorf("an 80 m fix: %v", err)
	}
	f.gnss.SetFix(gnssFix(5))
	f.clock.advance(5 * time.Minute)
	if _, err := f.app.NoticeLocate(ctx); err == nil || !strings.Contains(err.Error(), "old") {
		t.Errorf("a 5 min old fix: %v", err)
	}
}

func gnssFix(accuracy float64) gnss.Fix {
	return gnss.Fix{Lat: 53.07582, Lon: 8.80717, Accuracy: accuracy, HDOP: accuracy / 5, Satellites: 7, Quality: "gps", Mode: 3}
}
