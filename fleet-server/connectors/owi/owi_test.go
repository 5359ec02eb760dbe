package owi_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kogge-fleet/kogge/fleet-server/bridge"
	"github.com/kogge-fleet/kogge/fleet-server/bridge/bridgetest"
	"github.com/kogge-fleet/kogge/fleet-server/connectors/dropdir"
	"github.com/kogge-fleet/kogge/fleet-server/connectors/owi"
	"github.com/kogge-fleet/kogge/fleet-server/connectors/webhook"
	"github.com/kogge-fleet/kogge/protocol/casefile"
	"github.com/kogge-fleet/kogge/protocol/casefile/casefiletest"
	"github.com/kogge-fleet/kogge/simulators/procedures"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func run(t testing.TB, d *procedures.DropDir) *procedures.DropDir {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		d.Close()
		if errs := d.Errors(); len(errs) > 0 {
			t.Errorf("consumer errors: %v", errs)
		}
	})
	return d
}

func consumer(t testing.TB, dir string) *procedures.DropDir {
	t.Helper()
	d, err := procedures.NewOWIDrop(procedures.DropDirOptions{Dir: dir, Interval: 2 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return run(t, d)
}

func newConn(t testing.TB, cfg owi.Config) *owi.Connector {
	t.Helper()
	if cfg.Drop.PollInterval == 0 {
		cfg.Drop.PollInterval = 2 * time.Millisecond
	}
	if cfg.Drop.ReceiptTimeout == 0 {
		cfg.Drop.ReceiptTimeout = 10 * time.Second
	}
	c, err := owi.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func deliver(t *testing.T, c bridge.Connector, cs *bridge.Case) (bridge.Receipt, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return c.Deliver(ctx, cs)
}

func TestDropDir(t *testing.T) {
	for _, a := range []owi.Adapter{owi.XMLAdapter{}, owi.JSONAdapter{}} {
		t.Run(a.Name(), func(t *testing.T) {
			dir := t.TempDir()
			sim := consumer(t, dir)
			conn := newConn(t, owi.Config{Adapter: a, Drop: dropdir.Config{Dir: dir}})
			cs := bridgetest.Case(casefile.KindNotice, 3000)
			rc, err := deliver(t, conn, cs)
			if err != nil {
				t.Fatal(err)
			}
			if rc.Reference != "OWI-000001" {
				t.Fatalf("receipt %+v", rc)
			}
			b, err := readWhenThere(t, filepath.Join(dir, "processed", cs.ID.String()+a.Ext()))
			if err != nil {
				t.Fatal(err)
			}
			r, err := owi.Parse(strings.TrimPrefix(a.Ext(), "."), b)
			if err != nil {
				t.Fatal(err)
			}
			n := r.Notice
			if n.Vehicle.Plate != "HBAB1234E" || len(n.Photos) != 2 || !bytes.Equal(n.Photos[1].Data, cs.Blobs[1].Data) ||
				len(n.Valves) != 2 || n.Valves[0].Hour != 5 || *n.Location.Lat != 53.0758 || n.Offences[0] != "141314" {
				t.Fatalf("case record lost data: %+v", n)
			}
			if again, err := deliver(t, conn, cs); err != nil || again != rc {
				t.Fatalf("redelivery: %+v, %v", again, err)
			}
			if u, d := sim.Stats(); u != 1 || d != 0 {
				t.Fatalf("procedure saw %d unique, %d duplicates", u, d)
			}
		})
	}
}

func TestDropDirFaults(t *testing.T) {
	dir := t.TempDir()
	sim := consumer(t, dir)
	conn := newConn(t, owi.Config{Drop: dropdir.Config{Dir: dir}})
	// impatient gives up on the receipt soon, as after a long stall.
	impatient := newConn(t, owi.Config{Drop: dropdir.Config{Dir: dir, ReceiptTimeout: 50 * time.Millisecond}})

	sim.Inject(procedures.FaultRefuse, 1)
	if _, err := deliver(t, conn, bridgetest.Case(casefile.KindNotice, 100)); !errors.Is(err, bridge.ErrPermanent) {
		t.Fatalf("refused: %v", err)
	}
	sim.Inject(procedures.FaultGarbage, 1)
	if _, err := deliver(t, conn, bridgetest.Case(casefile.KindNotice, 100)); err != nil {
		t.Fatalf("half-written receipt: %v", err)
	}
	sim.Inject(procedures.FaultTimeout, 1)
	stalled := bridgetest.Case(casefile.KindNotice, 100)
	if _, err := deliver(t, impatient, stalled); err == nil || errors.Is(err, bridge.ErrPermanent) {
		t.Fatalf("stalled procedure: %v, want a transient error", err)
	}
	sim.Release()
	if _, err := deliver(t, conn, stalled); err != nil {
		t.Fatalf("after the stall: %v", err)
	}
	if u, d := sim.Stats(); u != 2 || d != 0 {
		t.Fatalf("procedure saw %d unique, %d duplicates; want 2, 0", u, d)
	}
}

// TestVendorAdapter delivers in the example vendor format to a consumer
// that reads it.
func TestVendorAdapter(t *testing.T) {
	dir := t.TempDir()
	d, err := procedures.NewDropDir(procedures.DropDirOptions{
		Dir: dir, Interval: 2 * time.Millisecond, Prefix: "V",
		Parse: func(name string, b []byte) (string, string, error) {
			r := csv.NewReader(bytes.NewReader(b))
			r.Comma = ';'
			rows, err := r.ReadAll()
			if err != nil {
				return "", "", err
			}
			if len(rows) != 2 || rows[0][0] != "record_id" || rows[0][14] != "tbnr" || rows[1][14] != "141314" ||
				!strings.HasPrefix(rows[0][len(rows[0])-1], "photo") {
				return "", "", errors.New("not the vendor's CSV")
			}
			return rows[1][0], casefile.KindNotice, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	sim := run(t, d)
	a := owi.Adapters()["csv-example"]
	conn := newConn(t, owi.Config{Adapter: a, Drop: dropdir.Config{Dir: dir}})
	rc, err := deliver(t, conn, bridgetest.Case(casefile.KindNotice, 100))
	if err != nil || rc.Reference != "V-000001" {
		t.Fatalf("Deliver = %+v, %v", rc, err)
	}
	if u, _ := sim.Stats(); u != 1 {
		t.Fatalf("%d cases", u)
	}
	if got := owi.AdapterNames(); strings.Join(got, ",") != "csv-example,kogge-json,kogge-xml" {
		t.Fatalf("adapters %v", got)
	}
}

func TestHTTPS(t *testing.T) {
	sim, err := procedures.NewWebhook(procedures.WebhookOptions{
		Secret: []byte("s"),
		Accept: func(h http.Header, body []byte) (string, string, error) {
			r, err := owi.Parse(owi.FormatJSON, body)
			if err != nil {
				return "", "", err
			}
			return r.RecordID, casefile.KindNotice, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	conn := newConn(t, owi.Config{Adapter: owi.JSONAdapter{}, Transport: owi.TransportHTTPS, HTTPS: webhook.ClientConfig{
		URL: sim.URL(), Secret: []byte("s"), TLS: sim.CA().ClientTLS(nil), Backoff: time.Millisecond, RequireReference: true,
	}})
	sim.Inject(procedures.FaultDrop, 1)
	cs := bridgetest.Case(casefile.KindNotice, 300)
	if _, err := deliver(t, conn, cs); err != nil {
		t.Fatal(err)
	}
	sim.Inject(procedures.FaultRefuse, 1)
	if _, err := deliver(t, conn, bridgetest.Case(casefile.KindNotice, 300)); !errors.Is(err, bridge.ErrPermanent) {
		t.Fatalf("refused: %v", err)
	}
	if u, d := sim.Stats(); u != 1 || d != 0 {
		t.Fatalf("procedure saw %d unique, %d duplicates", u, d)
	}
}

func TestWrongKind(t *testing.T) {
	conn := newConn(t, owi.Config{Drop: dropdir.Config{Dir: t.TempDir()}})
	if _, err := deliver(t, conn, bridgetest.Case(casefile.KindApplication, 64)); !errors.Is(err, bridge.ErrPermanent) {
		t.Fatalf("Deliver of an application = %v, want a permanent error", err)
	}
}

// TestGolden pins the XML and JSON forms of the sample notice.
func TestGolden(t *testing.T) {
	cs := bridgetest.CaseOf(casefiletest.Notice(), 64)
	cs.ID = casefiletest.ID(0x02)
	cs.Office, cs.Device = "ordnungsamt", "handheld-07"
	cs.CreatedAt = casefiletest.T0.Time().Add(time.Hour)
	r, err := owi.Build(cs)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []owi.Adapter{owi.XMLAdapter{}, owi.JSONAdapter{}, owi.CSVAdapter{}} {
		b, err := a.Render(r)
		if err != nil {
			t.Fatal(err)
		}
		file := filepath.Join("testdata", "notice"+a.Ext())
		if *update {
			if err := os.WriteFile(file, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(file)
		if err != nil {
			t.Fatalf("%v (run go test -update once to create it)", err)
		}
		if !bytes.Equal(b, want) {
			t.Errorf("%s form changed:\n%s", a.Name(), b)
		}
	}
}

func TestParseRefuses(t *testing.T) {
	r, err := owi.Build(bridgetest.Case(casefile.KindNotice, 64))
	if err != nil {
		t.Fatal(err)
	}
	good, _ := owi.JSONAdapter{}.Render(r)
	tests := []struct {
		name string
		edit func(s string) string
	}{
		{"no version", func(s string) string { return strings.Replace(s, `"version": 1`, `"version": 0`, 1) }},
		{"bad TBNR", func(s string) string { return strings.Replace(s, `"141314"`, `"14131x"`, 1) }},
		{"trailing", func(s string) string { return s + "{}" }},
		{"photo changed", func(s string) string { return strings.Replace(s, `"data": "/9j/`, `"data": "/8j/`, 1) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			edited := tt.edit(string(good))
			if edited == string(good) {
				t.Fatal("edit changed nothing")
			}
			if _, err := owi.Parse(owi.FormatJSON, []byte(edited)); err == nil {
				t.Fatal("Parse accepted it")
			}
		})
	}
}

// readWhenThere reads a file the consumer moves into place after it wrote
// the receipt, waiting for it up to a deadline.
func readWhenThere(t *testing.T, file string) ([]byte, error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		b, err := os.ReadFile(file)
		if err == nil || !os.IsNotExist(err) || time.Now().After(deadline) {
			return b, err
		}
		<-tick.C
	}
}
