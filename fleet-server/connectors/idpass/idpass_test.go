package idpass_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/fleet-server/bridge"
	"github.com/kogge-fleet/kogge/fleet-server/bridge/bridgetest"
	"github.com/kogge-fleet/kogge/fleet-server/connectors/dropdir"
	"github.com/kogge-fleet/kogge/fleet-server/connectors/idpass"
	"github.com/kogge-fleet/kogge/fleet-server/connectors/webhook"
	"github.com/kogge-fleet/kogge/protocol/casefile"
	"github.com/kogge-fleet/kogge/protocol/casefile/casefiletest"
	"github.com/kogge-fleet/kogge/simulators/procedures"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// consumer starts the ID-document procedure's drop-directory consumer.
func consumer(t testing.TB, dir string) *procedures.DropDir {
	t.Helper()
	d, err := procedures.NewIDPassDrop(procedures.DropDirOptions{Dir: dir, Interval: 2 * time.Millisecond, LogFile: filepath.Join(t.TempDir(), "log.jsonl")})
	if err != nil {
		t.Fatal(err)
	}
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

func newConn(t testing.TB, cfg idpass.Config) *idpass.Connector {
	t.Helper()
	if cfg.Drop.PollInterval == 0 {
		cfg.Drop.PollInterval = 2 * time.Millisecond
	}
	if cfg.Drop.ReceiptTimeout == 0 {
		cfg.Drop.ReceiptTimeout = 10 * time.Second
	}
	c, err := idpass.New(cfg)
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
	for _, format := range []string{idpass.FormatXML, idpass.FormatJSON} {
		t.Run(format, func(t *testing.T) {
			dir := t.TempDir()
			sim := consumer(t, dir)
			conn := newConn(t, idpass.Config{Format: format, Drop: dropdir.Config{Dir: dir}})
			cs := bridgetest.Case(casefile.KindApplication, 1500)
			rc, err := deliver(t, conn, cs)
			if err != nil {
				t.Fatal(err)
			}
			if rc.Reference != "PA-000001" {
				t.Fatalf("receipt %+v", rc)
			}
			if u, d := sim.Stats(); u != 1 || d != 0 {
				t.Fatalf("procedure saw %d unique, %d duplicates", u, d)
			}
			b, err := readWhenThere(t, filepath.Join(dir, "processed", cs.ID.String()+"."+format))
			if err != nil {
				t.Fatal(err)
			}
			g, err := idpass.Parse(format, b)
			if err != nil {
				t.Fatal(err)
			}
			checkImages(t, g, cs)

			// A redelivery finds the receipt and writes nothing.
			again, err := deliver(t, conn, cs)
			if err != nil || again != rc {
				t.Fatalf("redelivery: %+v, %v", again, err)
			}
			if u, d := sim.Stats(); u != 1 || d != 0 {
				t.Fatalf("after the redelivery the procedure saw %d unique, %d duplicates", u, d)
			}
		})
	}
}

// checkImages: the selected attempts' images and the signature are
// embedded and equal the case's blobs; the others are named, not embedded.
func checkImages(t *testing.T, g *idpass.GidLog, cs *bridge.Case) {
	t.Helper()
	a := g.Application
	if len(a.FaceAcquisition.Attempts) != 2 || len(a.FingerAcquisition.Attempts) != 3 {
		t.Fatalf("attempts: %d faces, %d fingers", len(a.FaceAcquisition.Attempts), len(a.FingerAcquisition.Attempts))
	}
	check := func(what string, img *idpass.Image, embedded bool) {
		t.Helper()
		if img == nil {
			t.Fatalf("%s: no image", what)
		}
		b, ok := cs.Blob(uuid.MustParse(img.Blob))
		if !ok {
			t.Fatalf("%s: blob %s not in the case", what, img.Blob)
		}
		if embedded != (len(img.Data) > 0) {
			t.Fatalf("%s: embedded %v, want %v", what, len(img.Data) > 0, embedded)
		}
		if embedded && !bytes.Equal(img.Data, b.Data) {
			t.Fatalf("%s: embedded image differs from the blob", what)
		}
	}
	for _, f := range a.FaceAcquisition.Attempts {
		check("face", f.Image, f.Selected)
		if len(f.Checks) != 5 || f.PAD == nil {
			t.Fatalf("face attempt %d lacks its quality values or PAD score", f.Number)
		}
	}
	for _, f := range a.FingerAcquisition.Attempts {
		check("finger", f.Image, f.Selected)
	}
	check("signature", &a.Signature.Image, true)
	if a.FaceAcquisition.Attempts[1].Checks[1].Min == nil || *a.FaceAcquisition.Attempts[1].Checks[1].Min != -5 {
		t.Fatalf("yaw threshold lost: %+v", a.FaceAcquisition.Attempts[1].Checks[1])
	}
	if a.Fee == nil || a.Fee.AmountCents != 600 || a.EID == nil || a.EID.Session != "eid-7f3a9c" {
		t.Fatalf("fee or eID result lost: %+v %+v", a.Fee, a.EID)
	}
}

func TestDropDirFaults(t *testing.T) {
	tests := []struct {
		name      string
		fault     procedures.Fault
		ok        bool
		permanent bool
		release   bool // the first attempt times out; release, then deliver again
	}{
		{"half-written receipt", procedures.FaultGarbage, true, false, false},
		{"procedure stalls", procedures.FaultTimeout, false, false, true},
		{"procedure rejects", procedures.FaultRefuse, false, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			sim := consumer(t, dir)
			sim.Inject(tt.fault, 1)
			conn := newConn(t, idpass.Config{Drop: dropdir.Config{Dir: dir}})
			first := conn
			if tt.release {
				// Give up on the receipt soon, as after a long stall.
				first = newConn(t, idpass.Config{Drop: dropdir.Config{Dir: dir, ReceiptTimeout: 50 * time.Millisecond}})
			}
			cs := bridgetest.Case(casefile.KindApplication, 200)
			_, err := deliver(t, first, cs)
			switch {
			case tt.ok && err != nil:
				t.Fatal(err)
			case !tt.ok && err == nil:
				t.Fatal("delivered")
			case err != nil && errors.Is(err, bridge.ErrPermanent) != tt.permanent:
				t.Fatalf("%v: permanent %v, want %v", err, !tt.permanent, tt.permanent)
			}
			if tt.release {
				if _, err := os.Stat(filepath.Join(dir, cs.ID.String()+".xml")); err != nil {
					t.Fatalf("the file of the timed-out attempt is gone: %v", err)
				}
				sim.Release()
				if _, err := deliver(t, conn, cs); err != nil {
					t.Fatalf("redelivery after the stall: %v", err)
				}
			}
			wantUnique := 1
			if tt.permanent {
				wantUnique = 0
			}
			if u, d := sim.Stats(); u != wantUnique || d != 0 {
				t.Fatalf("procedure saw %d unique, %d duplicates; want %d, 0", u, d, wantUnique)
			}
		})
	}
}

func TestWrongKind(t *testing.T) {
	conn := newConn(t, idpass.Config{Drop: dropdir.Config{Dir: t.TempDir()}})
	_, err := deliver(t, conn, bridgetest.Case(casefile.KindReport, 64))
	if !errors.Is(err, bridge.ErrPermanent) {
		t.Fatalf("Deliver of a road report = %v, want a permanent error", err)
	}
}

func TestHTTPS(t *testing.T) {
	sim, err := procedures.NewWebhook(procedures.WebhookOptions{
		Accept: func(h http.Header, body []byte) (string, string, error) {
			g, err := idpass.Parse(idpass.FormatXML, body)
			if err != nil {
				return "", "", err
			}
			return g.RecordID, casefile.KindApplication, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	conn := newConn(t, idpass.Config{Transport: idpass.TransportHTTPS, HTTPS: webhook.ClientConfig{
		URL: sim.URL(), TLS: sim.CA().ClientTLS(nil), Backoff: time.Millisecond, RequireReference: true,
	}})
	sim.Inject(procedures.Fault500, 1)
	sim.Inject(procedures.FaultGarbage, 1)
	cs := bridgetest.Case(casefile.KindApplication, 300)
	rc, err := deliver(t, conn, cs)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(rc.Reference, "WH-") {
		t.Fatalf("receipt %+v", rc)
	}
	if u, d := sim.Stats(); u != 1 || d != 1 {
		t.Fatalf("procedure saw %d unique, %d deduped; want 1, 1 (the garbage answer's retry)", u, d)
	}
}

// TestGolden pins the XML and JSON forms of the sample application.
func TestGolden(t *testing.T) {
	cs := bridgetest.CaseOf(casefiletest.Application(), 64)
	cs.ID = casefiletest.ID(0x01)
	cs.Office, cs.Device = "buergeramt-mitte", "kiosk-mitte-01"
	cs.CreatedAt = casefiletest.T0.Time().Add(126 * time.Second)
	g, err := idpass.Build(cs, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{idpass.FormatXML, idpass.FormatJSON} {
		b, err := g.Marshal(format)
		if err != nil {
			t.Fatal(err)
		}
		file := filepath.Join("testdata", "application."+format)
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
			t.Errorf("%s form changed; diff testdata/application.%s against:\n%s", format, format, b)
		}
		if _, err := idpass.Parse(format, want); err != nil {
			t.Errorf("golden %s does not parse: %v", format, err)
		}
	}
}

func TestParseRefuses(t *testing.T) {
	cs := bridgetest.Case(casefile.KindApplication, 100)
	g, err := idpass.Build(cs, false)
	if err != nil {
		t.Fatal(err)
	}
	good, err := g.Marshal(idpass.FormatXML)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		edit func(s string) string
		want string
	}{
		{"other namespace", func(s string) string { return strings.Replace(s, idpass.Namespace, "urn:other", 1) }, "name space"},
		{"damaged image", func(s string) string {
			i := strings.Index(s, `selected="true"`)
			i += strings.Index(s[i:], `<Image `)
			j := i + strings.Index(s[i:], `">`) + 2
			return s[:j] + "AAAA" + s[j+4:]
		}, "does not match"},
		{"second root", func(s string) string { return s + "<GidLog/>" }, "second element"},
		{"two faces selected", func(s string) string { return strings.Replace(s, `selected="false"`, `selected="true"`, 1) }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := idpass.Parse(idpass.FormatXML, []byte(tt.edit(string(good))))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse = %v, want an error about %q", err, tt.want)
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
