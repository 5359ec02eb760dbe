package enforcement

import (
	"context"
	"errors"
	"flag"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kogge-fleet/kogge/protocol/casefile"
	printersim "github.com/kogge-fleet/kogge/simulators/devices/printer"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func testOffice() Office {
	return Office{
		Name:    "Freie Hansestadt Bremen",
		Unit:    "Ordnungsamt – Verkehrsüberwachung",
		Address: "Stresemannstraße 48, 28207 Bremen",
		Contact: "Telefon 0421 361-0",
		Payee:   "Ordnungsamt Bremen",
		IBAN:    "DE89 3704 0044 0532 0130 00",
		BIC:     "COBADEFFXXX",
	}
}

func testRenderer(t testing.TB, cols int) *Renderer {
	t.Helper()
	r, err := NewRenderer(testOffice(), RenderOptions{Columns: cols, Location: berlin(t), Device: "hh-0042"})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// printOn sends a job to the printer simulator over loopback TCP, as the
// printer driver does, and returns what it printed.
func printOn(t *testing.T, cols int, job []byte) printersim.Receipt {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sim, err := printersim.Start(ctx, printersim.Options{Columns: cols})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", sim.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write(job); err != nil {
		t.Fatal(err)
	}
	if err := conn.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := sim.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run the test with -update to create it)", err)
	}
	if got != string(want) {
		t.Fatalf("the printed notice differs from %s (run with -update if the change is intended):\n%s", path, got)
	}
}

func TestRenderGolden(t *testing.T) {
	tests := []struct {
		name   string
		golden string
		cols   int
		build  func(f *fixture, t *testing.T) *Case
	}{
		{
			name: "warning", golden: "notice-warning.txt", cols: 48,
			build: func(f *fixture, t *testing.T) *Case { return f.parkingCase(t, "141312") },
		},
		{
			name: "fine of two offences", golden: "notice-fine.txt", cols: 48,
			build: func(f *fixture, t *testing.T) *Case { return f.parkingCase(t, "112655", "141312") },
		},
		{
			name: "warning on 58 mm paper, foreign plate, GNSS position only", golden: "notice-warning-58mm.txt", cols: 32,
			build: func(f *fixture, t *testing.T) *Case {
				c := f.parkingCase(t)
				p, err := ParsePlate("NL", "12-abc-3")
				if err != nil {
					t.Fatal(err)
				}
				c.Plate, c.Make, c.Colour, c.Valves = p, "Citroën", "weiß", nil
				c.Location = casefile.Place{Position: &casefile.Position{Lat: 53.07582, Lon: 8.80717, AccuracyM: 3.6}}
				c.Offences = []Offence{{TBNR: "141174", Choices: []string{"Radfahrstreifen"}}}
				c.Observation.End = c.Observation.Start.Add(2 * time.Minute)
				return c
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			n, err := f.issuer.Issue(context.Background(), tt.build(f, t))
			if err != nil {
				t.Fatal(err)
			}
			r := testRenderer(t, tt.cols)
			job, err := r.Render(n, f.issuer.Catalogue())
			if err != nil {
				t.Fatal(err)
			}
			rc := printOn(t, tt.cols, job)
			if rc.Cut != "partial" || rc.Dropped != 0 || len(rc.Notes) != 0 {
				t.Fatalf("cut %q, %d lines dropped, notes %q", rc.Cut, rc.Dropped, rc.Notes)
			}
			// Umlauts, ß, § and € come through code page 858; nothing became '?'.
			text := strings.ReplaceAll(rc.Text, "einverstanden?", "")
			if strings.Contains(text, "?") {
				t.Fatalf("a character was replaced by '?':\n%s", rc.Text)
			}
			for _, s := range []string{"Stresemannstraße", "Verkehrsüberwachung", n.Number, "Dienstnummer 4711"} {
				if !strings.Contains(rc.Text, s) {
					t.Fatalf("receipt lacks %q", s)
				}
			}
			if n.Sanction == casefile.SanctionWarning {
				qr, err := r.GiroCode(n)
				if err != nil {
					t.Fatal(err)
				}
				if len(rc.QR) != 1 || rc.QR[0] != qr {
					t.Fatalf("QR codes %q, want the GiroCode %q", rc.QR, qr)
				}
				if rc.Lines[0] != "Verwarnung" {
					t.Fatalf("title %q", rc.Lines[0])
				}
				for _, s := range []string{FormatEuro(n.AmountCents), Group4(n.PaymentRef), "§ 56", "§ 55"} {
					if !strings.Contains(rc.Text, s) {
						t.Fatalf("warning lacks %q", s)
					}
				}
			} else {
				if len(rc.QR) != 0 || strings.Contains(rc.Text, "Verwarnungsgeld") || strings.Contains(rc.Text, "Referenz") || strings.Contains(rc.Text, "€") || strings.Contains(rc.Text, "IBAN") {
					t.Fatalf("a fine printed payment details:\n%s", rc.Text)
				}
				if rc.Lines[0] != "Hinweis" {
					t.Fatalf("title %q", rc.Lines[0])
				}
				for _, s := range []string{"Bußgeldstelle", "Bitte zahlen Sie jetzt nichts.", "§ 67"} {
					if !strings.Contains(rc.Text, s) {
						t.Fatalf("fine slip lacks %q", s)
					}
				}
			}
			golden(t, tt.golden, rc.Text)
		})
	}
}

func TestGiroCode(t *testing.T) {
	f := newFixture(t)
	n, err := f.issuer.Issue(context.Background(), f.parkingCase(t, "141312"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := testRenderer(t, 48).GiroCode(n)
	if err != nil {
		t.Fatal(err)
	}
	want := "BCD\n002\n1\nSCT\nCOBADEFFXXX\nOrdnungsamt Bremen\nDE89370400440532013000\nEUR25.00\n\nRF79HB4200001231\n\nVerwarnung HB42-0000123-1"
	if got != want {
		t.Fatalf("GiroCode\n%q\nwant\n%q", got, want)
	}
	lines := strings.Split(got, "\n")
	if len(lines) != 12 || len(got) > 331 {
		t.Fatalf("%d lines, %d bytes", len(lines), len(got))
	}
	fine, err := f.issuer.Issue(context.Background(), f.parkingCase(t, "112655"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := testRenderer(t, 48).GiroCode(fine); err == nil {
		t.Fatal("a GiroCode for a fine")
	}
}

func TestRenderRefuses(t *testing.T) {
	f := newFixture(t)
	r := testRenderer(t, 48)
	n, err := f.issuer.Issue(context.Background(), f.parkingCase(t, "141312"))
	if err != nil {
		t.Fatal(err)
	}
	if err := Void(n, "Fahrer hat eine Parkerlaubnis vorgezeigt"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Render(n, f.issuer.Catalogue()); !errors.Is(err, ErrVoided) {
		t.Fatalf("voided notice: %v", err)
	}
	if _, err := r.Render(nil, f.issuer.Catalogue()); err == nil {
		t.Fatal("nil notice rendered")
	}
	n2, _ := f.issuer.Issue(context.Background(), f.parkingCase(t, "141312"))
	n2.Plate.Text = ""
	if _, err := r.Render(n2, f.issuer.Catalogue()); err == nil {
		t.Fatal("invalid notice rendered")
	}
}

func TestRenderUnknownOffenceStillPrints(t *testing.T) {
	// A notice whose TBNR the catalogue on this device lacks (a record
	// from before an update) prints with its number alone.
	f := newFixture(t)
	n, err := f.issuer.Issue(context.Background(), f.parkingCase(t, "141312"))
	if err != nil {
		t.Fatal(err)
	}
	other := mustParse(t, catalogueFile("112454,Sie parkten verbotswidrig auf dem Gehweg.,55,Verwarnung,,2021-11-09,,,"))
	job, err := testRenderer(t, 48).Render(n, other)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(job), "Tatbestand 141312") {
		t.Fatal("TBNR missing")
	}
}

func TestOfficeValidate(t *testing.T) {
	for name, edit := range map[string]func(o *Office){
		"no name":       func(o *Office) { o.Name = "" },
		"bad IBAN":      func(o *Office) { o.IBAN = "DE00 3704 0044 0532 0130 00" },
		"no IBAN":       func(o *Office) { o.IBAN = "" },
		"bad BIC":       func(o *Office) { o.BIC = "COBA" },
		"long payee":    func(o *Office) { o.Payee = strings.Repeat("x", 71) },
		"payment days":  func(o *Office) { o.PaymentDays = -1 },
		"control chars": func(o *Office) { o.Unit = "a\x1bE" },
	} {
		o := testOffice()
		edit(&o)
		if _, err := NewRenderer(o, RenderOptions{Location: time.UTC}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := NewRenderer(testOffice(), RenderOptions{Columns: 20, Location: time.UTC}); err == nil {
		t.Error("20 columns accepted")
	}
}

func BenchmarkRender(b *testing.B) {
	f := newFixture(b)
	n, err := f.issuer.Issue(context.Background(), f.parkingCase(b, "141312"))
	if err != nil {
		b.Fatal(err)
	}
	r := testRenderer(b, 48)
	cat := f.issuer.Catalogue()
	for b.Loop() {
		if _, err := r.Render(n, cat); err != nil {
			b.Fatal(err)
		}
	}
}
