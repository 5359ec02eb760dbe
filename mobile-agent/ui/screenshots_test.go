package ui

import (
	"flag"
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kogge-fleet/kogge/internal/xvfbtest"
	"github.com/kogge-fleet/kogge/mobile-agent/roadwork"
	"github.com/kogge-fleet/kogge/protocol"
)

// screenshotDir, when set, is where TestScreenshots writes the
// documentation's screenshots:
//
//	go test ./mobile-agent/ui -run TestScreenshots -args -screenshots="$PWD/docs/screenshots"
var screenshotDir = flag.String("screenshots", "", "write mobile-*.png screenshots into this directory")

func TestMain(m *testing.M) {
	// fyne reads the locale from LANG; "C" is no language tag.
	if l := os.Getenv("LANG"); l == "" || l == "C" || l == "POSIX" {
		os.Setenv("LANG", "en_US.UTF-8")
	}
	// The GL child of the Xvfb smoke test (xvfb_test.go, build tag xvfb)
	// runs here, on the main goroutine, which fyne's desktop driver needs.
	if xvfbChild != nil && xvfbtest.IsChild() {
		xvfbChild()
	}
	os.Exit(m.Run())
}

// xvfbChild is set by xvfb_test.go in builds with the xvfb tag.
var xvfbChild func()

// TestScreenshots walks a notice and a report in German and English and
// takes a picture of every main screen. Without -screenshots it checks a
// few of them for content; with it, it writes all of them.
func TestScreenshots(t *testing.T) {
	dir := *screenshotDir
	sample := map[string]bool{"de-01-login": true, "de-06-observation": true, "de-12-cases": true, "de-14-report-status": true}
	langs := Languages()
	if dir == "" {
		langs = langs[:1] // the English walk is TestWalkReport's
	}
	for _, lang := range langs {
		h := newHarness(t, lang)
		n := 0
		shot := func(name string) {
			t.Helper()
			n++
			full := fmt.Sprintf("%s-%02d-%s", lang, n, name)
			if dir == "" && !sample[full] {
				return
			}
			img := h.u.win.Canvas().Capture()
			checkPicture(t, full, img)
			if dir == "" {
				return
			}
			f, err := os.Create(filepath.Join(dir, "mobile-"+full+".png"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := png.Encode(f, img); err != nil {
				t.Fatal(err)
			}
		}
		tt := func(key string) string { return tr(lang, key) }

		for _, d := range "4711" {
			h.tap(string(d))
		}
		shot("login")
		h.tap(tt("login.ok"))
		for _, d := range "1234" {
			h.tap(string(d))
		}
		h.tap(tt("login.ok"))
		h.tap(tt("home.start-shift"))
		shot("shift")

		h.tap(tt("home.new-notice"))
		h.typeInto(tt("notice.plate"), "HB-AB 123")
		h.typeInto(tt("notice.make"), "Volkswagen")
		h.choose(tt("notice.colour"), map[string]string{"de": "grau", "en": "grey"}[lang])
		shot("vehicle")
		h.tap(tt("action.next"))
		h.typeInto(tt("notice.search"), "halt")
		h.tapCard("141314")
		h.typeInto(tt("notice.search"), "gehweg")
		shot("offences")
		h.tap(tt("action.next"))
		h.tap(tt("place.take-gnss"))
		h.typeInto(tt("place.street"), "Am Markt")
		h.typeInto(tt("place.house"), "21")
		shot("place")
		h.tap(tt("action.next"))
		h.clock.advance(18*time.Minute + 25*time.Second)
		h.u.Tick()
		shot("observation")
		h.tap(tt("action.next"))
		h.choose(tt("valve.VL"), "5")
		h.choose(tt("valve.HR"), "11")
		h.tap(tr(lang, "notice.take-photo", 0))
		shot("details")
		h.tap(tt("action.next"))
		h.clock.advance(45 * time.Minute)
		h.u.render()
		shot("check")
		h.tap(tt("notice.issue"))
		shot("issued")
		h.tap(tt("void.title"))
		h.typeInto(tt("void.reason"), map[string]string{"de": "Fahrer zeigte gültigen Parkschein", "en": "Driver showed a valid ticket"}[lang])
		shot("void")
		h.tap(tt("action.cancel"))
		h.tap(tt("action.done"))

		h.tap(tt("home.new-report"))
		h.tapCard(roadwork.Pothole.Label(lang))
		h.tapCard(roadwork.SeverityLabel("high", lang))
		h.tap(tt("place.take-gnss"))
		h.typeInto(tt("place.street"), "Osterdeich")
		h.typeInto(tt("place.house"), "12")
		h.typeInto(tt("report.note"), map[string]string{"de": "Tiefes Schlagloch in der Fahrbahnmitte", "en": "Deep pothole in the middle of the lane"}[lang])
		h.tap(tr(lang, "report.take-photo", 0))
		shot("report")
		h.tap(tt("report.submit"))
		rs := h.app.Reports()
		notices := h.app.Notices()
		h.link.Heal()
		h.send(&protocol.RecordStatus{Items: []protocol.StatusItem{
			{Record: notices[0].ID, State: protocol.Accepted, Reference: "OWI-2026-004711", At: protocol.At(time.Now())},
			{Record: rs[0].ID, State: protocol.InProgress, Reference: "311-100042",
				Note: map[string]string{"de": "In Bearbeitung: Reparatur beauftragt", "en": "In progress: repair ordered"}[lang], At: protocol.At(time.Now())},
		}})
		h.eventually("statuses on the device", func() bool {
			e, _ := h.app.ReportEntry(rs[0].ID)
			n, _ := h.app.NoticeEntry(notices[0].Number)
			return e.Status == roadwork.StatusInProgress && n.Reference != ""
		})
		h.tap(tt("action.home"))
		h.tap(tt("home.cases"))
		shot("cases")
		h.tapCard(notices[0].Number)
		shot("notice")
		h.tap(tt("action.back"))
		h.tapCard("Osterdeich 12")
		shot("report-status")
	}
}

// checkPicture fails when a screenshot is not the phone's size or nearly
// empty.
func checkPicture(t *testing.T, name string, img image.Image) {
	t.Helper()
	b := img.Bounds()
	if b.Dx() != int(PhoneSize.Width) || b.Dy() != int(PhoneSize.Height) {
		t.Errorf("%s: picture is %v, want %v", name, b.Size(), PhoneSize)
	}
	dark := 0
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			r, g, bl, _ := img.At(x, y).RGBA()
			if r+g+bl < 3*0x4000 {
				dark++
			}
		}
	}
	if dark < 500 {
		t.Errorf("%s: only %d dark pixels; the screen looks empty", name, dark)
	}
}
