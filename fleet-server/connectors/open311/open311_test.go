package open311_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kogge-fleet/kogge/fleet-server/bridge"
	"github.com/kogge-fleet/kogge/fleet-server/bridge/bridgetest"
	"github.com/kogge-fleet/kogge/fleet-server/connectors/open311"
	"github.com/kogge-fleet/kogge/protocol"
	"github.com/kogge-fleet/kogge/protocol/casefile"
	"github.com/kogge-fleet/kogge/protocol/casefile/casefiletest"
	"github.com/kogge-fleet/kogge/simulators/procedures"
)

const apiKey = "road-maintenance-key"

func newSim(t testing.TB, opts procedures.Open311Options) *procedures.Open311 {
	t.Helper()
	opts.APIKey = apiKey
	sim, err := procedures.NewOpen311(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	return sim
}

func config(sim *procedures.Open311, stateDir string) open311.Config {
	return open311.Config{
		Endpoint: sim.URL(), APIKey: apiKey, TLS: sim.CA().ClientTLS(nil), StateDir: stateDir,
		ServiceCodes: map[string]string{"pothole": "001", "damaged-sign": "002", "*": "099"},
		Timeout:      5 * time.Second, TokenWait: 5 * time.Second,
	}
}

func newConn(t testing.TB, cfg open311.Config) *open311.Connector {
	t.Helper()
	c, err := open311.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func deliver(t *testing.T, c bridge.Connector, cs *bridge.Case) (bridge.Receipt, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return c.Deliver(ctx, cs)
}

func stats(t *testing.T, sim *procedures.Open311, unique, dups int) {
	t.Helper()
	if u, d := sim.Stats(); u != unique || d != dups {
		t.Fatalf("road-maintenance system has %d unique requests and %d duplicates; want %d, %d", u, d, unique, dups)
	}
}

func TestDeliver(t *testing.T) {
	sim := newSim(t, procedures.Open311Options{})
	dir := t.TempDir()
	conn := newConn(t, config(sim, dir))
	cs := bridgetest.Case(casefile.KindReport, 2048)
	rc, err := deliver(t, conn, cs)
	if err != nil {
		t.Fatal(err)
	}
	if rc.Reference != "100001" || rc.Note == "" {
		t.Fatalf("receipt %+v", rc)
	}
	reqs := sim.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests", len(reqs))
	}
	r := reqs[0]
	public, _ := cs.Blob(casefiletest.ID(0x61))
	if r.ServiceCode != "001" || *r.Lat != 53.0701 || *r.Long != 8.8265 || r.Address != "Osterdeich 12, Bremen" ||
		!strings.HasPrefix(r.Description, "Tiefes Schlagloch") || r.Email != "erika@example.org" || r.LastName != "Mustermann" ||
		r.Attributes["kogge_record_id"] != cs.ID.String() || !bytes.Equal(r.Media, public.Data) || r.MediaType != "image/jpeg" {
		t.Fatalf("request %+v", r)
	}
	stats(t, sim, 1, 0)

	// A redelivery is answered from the journal, also after a restart.
	if again, err := deliver(t, conn, cs); err != nil || again.Reference != rc.Reference {
		t.Fatalf("redelivery: %+v, %v", again, err)
	}
	conn.Close()
	restarted := newConn(t, config(sim, dir))
	if again, err := deliver(t, restarted, cs); err != nil || again.Reference != rc.Reference {
		t.Fatalf("redelivery after a restart: %+v, %v", again, err)
	}
	stats(t, sim, 1, 0)
}

func TestFaults(t *testing.T) {
	tests := []struct {
		name      string
		faults    []procedures.Fault
		lookup    string
		permanent bool
		unique    int
		dups      int
	}{
		{"500", []procedures.Fault{procedures.Fault500}, "", false, 1, 0},
		{"garbage answer after creating", []procedures.Fault{procedures.FaultGarbage}, "", false, 1, 0},
		{"timeout", []procedures.Fault{procedures.FaultTimeout}, "", false, 1, 0},
		{"connection dropped", []procedures.Fault{procedures.FaultDrop}, "", false, 1, 0},
		{"lookup fails too", []procedures.Fault{procedures.FaultGarbage, procedures.Fault500}, "", false, 1, 0},
		{"refused", []procedures.Fault{procedures.FaultRefuse}, "", true, 0, 0},
		// Without the lookup, an unreadable answer after creating the
		// request makes a second one: the documented risk of lookup none.
		{"garbage answer, no lookup", []procedures.Fault{procedures.FaultGarbage}, open311.LookupNone, false, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sim := newSim(t, procedures.Open311Options{})
			cfg := config(sim, t.TempDir())
			if tt.faults[0] == procedures.FaultTimeout {
				cfg.Timeout = time.Second
			}
			cfg.Lookup = tt.lookup
			conn := newConn(t, cfg)
			for _, f := range tt.faults {
				sim.Inject(f, 1)
			}
			cs := bridgetest.Case(casefile.KindReport, 256)
			_, err := deliver(t, conn, cs)
			if err == nil {
				t.Fatal("first attempt succeeded")
			}
			if errors.Is(err, bridge.ErrPermanent) != tt.permanent {
				t.Fatalf("%v: permanent %v, want %v", err, !tt.permanent, tt.permanent)
			}
			if !tt.permanent {
				// The queue redelivers until it goes through.
				for i := 0; ; i++ {
					if _, err = deliver(t, conn, cs); err == nil {
						break
					}
					if i == 2 {
						t.Fatalf("redelivery: %v", err)
					}
				}
			}
			stats(t, sim, tt.unique, tt.dups)
		})
	}
}

// TestRefusedThenReplayed: after a refusal (fixed in the configuration)
// a replay posts again.
func TestRefusedThenReplayed(t *testing.T) {
	sim := newSim(t, procedures.Open311Options{})
	cfg := config(sim, t.TempDir())
	cfg.APIKey = "wrong"
	conn := newConn(t, cfg)
	cs := bridgetest.Case(casefile.KindReport, 256)
	if _, err := deliver(t, conn, cs); !errors.Is(err, bridge.ErrPermanent) || !strings.Contains(err.Error(), "invalid api_key") {
		t.Fatalf("wrong api key: %v", err)
	}
	conn.Close()
	cfg.APIKey = apiKey
	fixed := newConn(t, cfg)
	if _, err := deliver(t, fixed, cs); err != nil {
		t.Fatal(err)
	}
	stats(t, sim, 1, 0)
}

func TestTokens(t *testing.T) {
	sim := newSim(t, procedures.Open311Options{Tokens: true, HoldIDs: true})
	cfg := config(sim, t.TempDir())
	cfg.TokenWait = 50 * time.Millisecond
	conn := newConn(t, cfg)
	cs := bridgetest.Case(casefile.KindReport, 256)
	if _, err := deliver(t, conn, cs); err == nil || errors.Is(err, bridge.ErrPermanent) || !strings.Contains(err.Error(), "no request id") {
		t.Fatalf("token without id: %v, want a transient error", err)
	}
	sim.AssignPending()
	rc, err := deliver(t, conn, cs)
	if err != nil || rc.Reference != "100001" {
		t.Fatalf("after the id is assigned: %+v, %v", rc, err)
	}
	stats(t, sim, 1, 0)

	quick := newSim(t, procedures.Open311Options{Tokens: true})
	conn = newConn(t, config(quick, t.TempDir()))
	if rc, err := deliver(t, conn, bridgetest.Case(casefile.KindReport, 256)); err != nil || rc.Reference != "100001" {
		t.Fatalf("token resolved at once: %+v, %v", rc, err)
	}
}

func TestMedia(t *testing.T) {
	sim := newSim(t, procedures.Open311Options{})
	tests := []struct {
		name    string
		edit    func(*open311.Config)
		upload  bool
		mediaRe string
	}{
		{"url", func(c *open311.Config) {
			c.Media, c.MediaURL = open311.MediaURL, "https://media.example.org/{record}/{blob}.jpg"
		}, false, "https://media.example.org/"},
		{"none", func(c *open311.Config) { c.Media = open311.MediaNone }, false, ""},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := config(sim, t.TempDir())
			tt.edit(&cfg)
			conn := newConn(t, cfg)
			if _, err := deliver(t, conn, bridgetest.Case(casefile.KindReport, 256)); err != nil {
				t.Fatal(err)
			}
			r := sim.Requests()[i]
			if len(r.Media) > 0 != tt.upload || !strings.HasPrefix(r.MediaURL, tt.mediaRe) || (tt.mediaRe == "") != (r.MediaURL == "") {
				t.Fatalf("media %d bytes, url %q", len(r.Media), r.MediaURL)
			}
		})
	}
	// A report whose photos are all private uploads nothing by default.
	doc := casefiletest.Report()
	doc.Photos[0].Public = false
	conn := newConn(t, config(sim, t.TempDir()))
	if _, err := deliver(t, conn, bridgetest.CaseOf(doc, 256)); err != nil {
		t.Fatal(err)
	}
	if r := sim.Requests()[2]; len(r.Media) != 0 {
		t.Fatal("a private photo was uploaded")
	}
}

func TestCategories(t *testing.T) {
	sim := newSim(t, procedures.Open311Options{})
	cfg := config(sim, t.TempDir())
	conn := newConn(t, cfg)
	doc := casefiletest.Report()
	doc.Category = "fallen-tree"
	if _, err := deliver(t, conn, bridgetest.CaseOf(doc, 64)); err != nil {
		t.Fatal(err)
	}
	if code := sim.Requests()[0].ServiceCode; code != "099" {
		t.Fatalf("unmapped category went to %q, want the * mapping 099", code)
	}
	delete(cfg.ServiceCodes, "*")
	cfg.StateDir = t.TempDir()
	strict := newConn(t, cfg)
	if _, err := deliver(t, strict, bridgetest.CaseOf(doc, 64)); !errors.Is(err, bridge.ErrPermanent) {
		t.Fatalf("unmapped category: %v, want a permanent error", err)
	}
	if _, err := deliver(t, strict, bridgetest.Case(casefile.KindNotice, 64)); !errors.Is(err, bridge.ErrPermanent) {
		t.Fatalf("a notice: %v, want a permanent error", err)
	}
}

// collect returns a report function that keeps the changes, failing while
// fail is set.
type collector struct {
	changes []bridge.StatusChange
	fail    bool
}

func (c *collector) report(ch bridge.StatusChange) error {
	if c.fail {
		return errors.New("fleet server unreachable")
	}
	c.changes = append(c.changes, ch)
	return nil
}

func TestPollStatus(t *testing.T) {
	sim := newSim(t, procedures.Open311Options{})
	conn := newConn(t, config(sim, t.TempDir()))
	a, b := bridgetest.Case(casefile.KindReport, 64), bridgetest.Case(casefile.KindReport, 64)
	ra, err := deliver(t, conn, a)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := deliver(t, conn, b); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var col collector
	poll := func() {
		t.Helper()
		if err := conn.PollStatus(ctx, col.report); err != nil && !col.fail {
			t.Fatal(err)
		}
	}
	poll()
	if len(col.changes) != 0 {
		t.Fatalf("fresh requests reported %+v", col.changes)
	}
	if err := sim.Advance(ra.Reference, "open", "Kolonne beauftragt"); err != nil {
		t.Fatal(err)
	}
	col.fail = true
	poll() // the fleet server is away: the change is offered again
	col.fail = false
	poll()
	poll()
	if err := sim.Advance(ra.Reference, "closed", "Schlagloch verfüllt"); err != nil {
		t.Fatal(err)
	}
	poll()
	poll()
	want := []bridge.StatusChange{
		{ID: a.ID, State: protocol.InProgress, Reference: ra.Reference, Note: "Kolonne beauftragt"},
		{ID: a.ID, State: protocol.Closed, Reference: ra.Reference, Note: "Schlagloch verfüllt"},
	}
	if !reflect.DeepEqual(col.changes, want) {
		t.Fatalf("changes %+v\nwant %+v", col.changes, want)
	}
}

// TestRunner runs the bridge with the Open311 connector: the report is
// delivered once, and the road-maintenance system's progress reaches the
// delivery queue as status updates.
func TestRunner(t *testing.T) {
	sim := newSim(t, procedures.Open311Options{})
	conn := newConn(t, config(sim, t.TempDir()))
	office := bridgetest.NewOffice(t, "strassenbau", "k1")
	src := bridgetest.NewSource()
	doc := casefiletest.Report()
	rec := bridgetest.Seal(t, office, doc, bridgetest.SampleBlobs(doc, 1024))
	src.Add(rec)
	r, err := bridge.New(src, office.Keyring, conn, bridge.Options{
		Office: office.Name, IdleWait: 2 * time.Millisecond, PollInterval: 2 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() { cancel(); <-done }()

	wait, stop := context.WithTimeout(context.Background(), 20*time.Second)
	defer stop()
	if err := src.WaitFor(wait, (*bridgetest.Source).Settled); err != nil {
		t.Fatal(err)
	}
	e, _ := src.Entry(rec.Delivery.ID)
	if e.State != bridgetest.Acked || e.Receipt.Reference != "100001" {
		t.Fatalf("record %v with receipt %+v", e.State, e.Receipt)
	}
	if err := sim.Advance("100001", "closed", "erledigt"); err != nil {
		t.Fatal(err)
	}
	if err := src.WaitFor(wait, func(s *bridgetest.Source) bool { return len(s.Updates()) == 1 }); err != nil {
		t.Fatal(err)
	}
	want := bridgetest.Update{ID: rec.Delivery.ID, State: protocol.Closed, Reference: "100001", Note: "erledigt"}
	if got := src.Updates()[0]; got != want {
		t.Fatalf("update %+v, want %+v", got, want)
	}
	stats(t, sim, 1, 0)
}

func TestJournalDamage(t *testing.T) {
	sim := newSim(t, procedures.Open311Options{})
	dir := t.TempDir()
	conn := newConn(t, config(sim, dir))
	cs := bridgetest.Case(casefile.KindReport, 64)
	if _, err := deliver(t, conn, cs); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	file := filepath.Join(dir, open311.JournalFile)
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	// A line cut short by a crash at the end is ignored.
	if err := os.WriteFile(file, append(append([]byte{}, b...), `{"id":"01`...), 0o600); err != nil {
		t.Fatal(err)
	}
	again := newConn(t, config(sim, dir))
	if rc, err := deliver(t, again, cs); err != nil || rc.Reference != "100001" {
		t.Fatalf("after a cut line: %+v, %v", rc, err)
	}
	again.Close()
	// Damage in the middle stops the connector: it would risk duplicates.
	if err := os.WriteFile(file, append([]byte("garbage\n"), b...), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := open311.New(config(sim, dir)); err == nil || !strings.Contains(err.Error(), "line 1 is damaged") {
		t.Fatalf("New with a damaged journal: %v", err)
	}
}

func TestConfig(t *testing.T) {
	sim := newSim(t, procedures.Open311Options{})
	tests := []struct {
		name string
		edit func(*open311.Config)
		want string
	}{
		{"no key", func(c *open311.Config) { c.APIKey = "" }, "api key"},
		{"no codes", func(c *open311.Config) { c.ServiceCodes = nil }, "service codes"},
		{"http", func(c *open311.Config) { c.Endpoint = "http://127.0.0.1/" }, "https"},
		{"media", func(c *open311.Config) { c.Media = "fax" }, "media"},
		{"media url", func(c *open311.Config) { c.Media = open311.MediaURL }, "{blob}"},
		{"no state", func(c *open311.Config) { c.StateDir = "" }, "state directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := config(sim, t.TempDir())
			tt.edit(&cfg)
			if _, err := open311.New(cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New = %v, want %q", err, tt.want)
			}
		})
	}
}
