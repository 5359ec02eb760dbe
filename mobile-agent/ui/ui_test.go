package ui

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"

	"github.com/kogge-fleet/kogge/mobile-agent/roadwork"
	"github.com/kogge-fleet/kogge/protocol"
)

// A warden walks a notice through the wizard: wrong PIN, login, shift,
// plate, offence by search, GNSS position, the observation countdown,
// valves and a photo, the check, issue and print, then a void.
func TestWalkNotice(t *testing.T) {
	h := newHarness(t, "de")
	h.login("4711", "9999")
	h.expect("Dienstnummer oder PIN falsch. Noch 4 Versuche.")
	h.login("4711", "1234")
	h.expect("Erika Muster")
	h.tap("Schicht beginnen")
	h.tap("Neue Verwarnung")

	h.expect("Schritt 1 von 6: Fahrzeug")
	h.typeInto("Kennzeichen", "hb-ab 12")
	h.typeInto("Marke", "VW")
	h.choose("Farbe", "grau")
	h.tap("Weiter")

	h.expect("Schritt 2 von 6: Tatbestand")
	h.tap("Weiter")
	h.expect("Noch kein Tatbestand gewählt.")
	h.typeInto("Tatbestand suchen", "haltverbot 283 stunde")
	h.tapCard("141314")
	h.expect("Sie parkten länger als 1 Stunde im absoluten Haltverbot")
	h.tap("Weiter")

	h.expect("Schritt 3 von 6: Tatort")
	h.tap("GNSS-Position übernehmen")
	h.expect("Position 53.07582, 8.80717 (±4 m)")
	h.typeInto("Straße", "Am Markt")
	h.typeInto("Hausnummer", "21")
	h.tap("Weiter")

	h.expect("Schritt 4 von 6: Beobachtung")
	h.expect("Noch 1:00:00 beobachten (Mindestzeit 1h).")
	h.clock.advance(25 * time.Minute)
	h.u.Tick()
	h.expect("Noch 35:00 beobachten")
	h.tap("−5 min")
	h.expect("Noch 30:00 beobachten")
	h.tap("Weiter")

	h.expect("Schritt 5 von 6")
	h.choose("vorn links", "5")
	h.choose("hinten rechts", "11")
	h.tap("Foto aufnehmen (0)")
	h.expect("Foto aufgenommen, Metadaten entfernt.")
	h.button("Foto aufnehmen (1)")
	h.tap("Weiter")

	h.expect("Schritt 6 von 6: Prüfen und ausstellen")
	h.expect("HB-AB 12 (D)")
	h.expect("Ventile: VL05 HR11 · Fotos: 1")
	h.expect("Noch 30:00 beobachten")
	if !h.button("Ausstellen und drucken").Disabled() {
		t.Fatal("issue is possible before the observation time is reached")
	}
	h.clock.advance(30 * time.Minute)
	h.u.render()
	h.expect("40,00 €")
	h.tap("Ausstellen und drucken")

	h.expect("Gespeichert")
	h.expect("Gedruckt")
	if n := len(h.printer.Jobs()); n != 1 {
		t.Fatalf("%d print jobs", n)
	}
	number := h.app.Notices()[0].Number
	h.expect(number)

	h.tap("Stornieren")
	h.tap("Jetzt stornieren")
	h.expect("Bitte einen Grund angeben.")
	h.typeInto("Grund", "Parkschein nachgereicht")
	h.tap("Jetzt stornieren")
	h.expect("Verwarnung " + number + " storniert.")
	h.expect("Storniert")
	if e, _ := h.app.NoticeEntry(number); !e.Voided || e.VoidReason != "Parkschein nachgereicht" {
		t.Errorf("entry %+v", e)
	}
	h.tap("Fertig")
	h.tap("Meine Fälle")
	h.expect("Storniert · Gespeichert, wartet auf Netz")
}

// A road crew reports damage with a photo; the office's status comes back
// and the report's screen shows it.
func TestWalkReport(t *testing.T) {
	h := newHarness(t, "en")
	h.login("4711", "1234")
	h.tap("Start shift")
	h.tap("Report road damage")
	h.tap("Send report")
	h.expect("Please choose the kind of damage.")
	h.tapCard("Pothole")
	h.tapCard("high")
	h.tap("Take GNSS position")
	h.typeInto("Street", "Osterdeich")
	h.typeInto("House number", "12")
	h.typeInto("Description", "Deep pothole in the middle of the lane")
	h.tap("Take photo (0)")
	h.expect("Public copy: faces blurred: 0, plates blurred: 1.")
	h.tap("Send report")
	h.expect("Saved. It is sent as soon as there is a network.")
	h.expect("Saved, waiting for network")
	rs := h.app.Reports()
	if len(rs) != 1 || rs[0].Address() != "Osterdeich 12" || rs[0].Photos != 1 {
		t.Fatalf("reports %+v", rs)
	}

	h.link.Heal()
	h.send(&protocol.RecordStatus{Items: []protocol.StatusItem{{Record: rs[0].ID, State: protocol.InProgress,
		Reference: "311-42", Note: "Repair ordered", At: protocol.At(time.Now())}}})
	h.eventually("the status on the device", func() bool {
		e, _ := h.app.ReportEntry(rs[0].ID)
		return e.Status == roadwork.StatusInProgress
	})
	h.u.Refresh()
	h.expect("In progress")
	h.expect("Reference 311-42")
	h.expect("Repair ordered")
	h.tap("Back")
	h.expect("My cases today")
	h.expect("Pothole · Osterdeich 12")
	h.tapCard("Osterdeich 12")
	h.expect("Report status")
}

// Every control a finger hits is at least minTarget high, on every
// screen of the walk.
func TestTargetsAreLarge(t *testing.T) {
	h := newHarness(t, "de")
	check := func(where string) {
		t.Helper()
		for _, o := range h.objects() {
			if b, ok := o.(*widget.Button); ok && b.Text == "" {
				continue // the drop-down button inside a select entry, as high as the entry
			}
			switch w := o.(type) {
			case *widget.Button, *widget.Select, *widget.Entry, *widget.SelectEntry, *tapCard:
				if w.Size().Height < minTarget-0.5 || w.Size().Width < 40 {
					t.Errorf("%s: %T %q is %v, want at least %d high", where, w, textOf(w), w.Size(), minTarget)
				}
			}
		}
	}
	check("login")
	h.login("4711", "1234")
	check("home")
	h.tap("Schicht beginnen")
	check("shift")
	h.tap("Neue Verwarnung")
	for step := range steps {
		check("notice step " + stepNames[step])
		if step < steps-1 {
			h.u.step++
			h.u.render()
		}
	}
	h.u.app.DiscardNotice()
	h.u.show(pageHome, "", false)
	h.tap("Straßenschaden melden")
	check("report")
}

// TestCatalogue: every text in both languages, every key the code uses
// in the catalogue.
func TestCatalogue(t *testing.T) {
	for key, t2 := range texts {
		for i, lang := range Languages() {
			if strings.TrimSpace(t2[i]) == "" {
				t.Errorf("%s: no %s text", key, lang)
			}
		}
		if strings.Count(t2[0], "%") != strings.Count(t2[1], "%") {
			t.Errorf("%s: the languages take different arguments: %q, %q", key, t2[0], t2[1])
		}
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	used := regexp.MustCompile(`(?:u\.t|tr\([a-zA-Z.]+,)\s*\(?"([a-z0-9.-]+)"`)
	prefixed := regexp.MustCompile(`"((?:peripheral|valve|error\.report)\.)"\s*\+`)
	seen := map[string]bool{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range used.FindAllStringSubmatch(string(b), -1) {
			seen[m[1]] = true
		}
		for _, m := range prefixed.FindAllStringSubmatch(string(b), -1) {
			seen[m[1]] = true
		}
	}
	for _, k := range stepNames {
		seen[k] = true
	}
	if len(seen) < 50 {
		t.Fatalf("found only %d keys in the code: the scan is broken", len(seen))
	}
	for k := range seen {
		if strings.HasSuffix(k, ".") {
			found := false
			for key := range texts {
				found = found || strings.HasPrefix(key, k)
			}
			if !found {
				t.Errorf("no text starts with %q", k)
			}
			continue
		}
		if _, ok := texts[k]; !ok {
			t.Errorf("the code uses %q; the catalogue lacks it", k)
		}
	}
	for _, p := range []string{"gnss", "printer", "camera"} {
		if _, ok := texts["peripheral."+p]; !ok {
			t.Errorf("no text for peripheral %s", p)
		}
	}
	for _, w := range []string{"VL", "VR", "HL", "HR"} {
		if _, ok := texts["valve."+w]; !ok {
			t.Errorf("no text for wheel %s", w)
		}
	}
	var unused []string
	for k := range texts {
		dynamic := strings.HasPrefix(k, "peripheral.") || strings.HasPrefix(k, "valve.") || strings.HasPrefix(k, "error.report.")
		if !seen[k] && !dynamic {
			unused = append(unused, k)
		}
	}
	slices.Sort(unused)
	if len(unused) > 0 {
		t.Errorf("texts no code uses: %v", unused)
	}
	if tr("en", "no.such.key") != "no.such.key" {
		t.Error("a missing key does not show as itself")
	}
}

func TestNewRefusesUnknownLanguage(t *testing.T) {
	h := newHarness(t, "de")
	if _, err := New(test.NewTempApp(t), h.app, Options{Lang: "tr"}); err == nil {
		t.Error("a UI in Turkish was built")
	}
}
