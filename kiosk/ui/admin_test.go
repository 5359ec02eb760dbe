package ui

import (
	"errors"
	"testing"
	"time"

	"fyne.io/fyne/v2/test"

	"github.com/kogge-fleet/kogge/kiosk/flow"
)

func (h *harness) enterPIN(pin string) {
	h.t.Helper()
	for _, d := range pin {
		h.tap("pin:" + string(d))
	}
	h.tap("pin:ok")
}

func (h *harness) openAdmin() {
	h.t.Helper()
	for range 5 {
		h.tapCorner()
	}
	if h.u.admin == nil {
		h.t.Fatal("five taps in the corner did not open the admin screen")
	}
}

func TestAdminScreen(t *testing.T) {
	h := newHarness(t, Options{Language: "de"})
	s := h.begin()
	// The citizen works in Arabic; the staff screen stays German.
	h.show(s, scenes("ar")[2].v)

	for range 4 {
		h.tapCorner()
	}
	h.clock.advance(4 * time.Second)
	h.tapCorner() // the first four are too old to count
	if h.u.admin != nil {
		t.Fatal("the admin screen opened without five quick taps")
	}
	for range 4 {
		h.tapCorner()
	}
	if h.u.admin == nil {
		t.Fatal("five quick taps did not open the admin screen")
	}
	h.wantText("Verwaltung")
	if !h.showsText("PIN eingeben   ") {
		t.Errorf("no PIN prompt; texts %q", h.texts())
	}

	// Touches miss the citizen's screen underneath.
	test.TapCanvas(h.u.win.Canvas(), absPos(h.u.screen.buttons["cancel"]).AddXY(10, 10))
	wantInputs(t, s)

	// A wrong PIN, a correction, then the right one.
	h.enterPIN("1111")
	h.wantText("Falsche PIN.")
	if h.u.admin.unlocked {
		t.Fatal("a wrong PIN unlocked the admin screen")
	}
	h.tap("pin:9")
	if !h.showsText("PIN eingeben   ● ") {
		t.Errorf("the PIN is not shown as dots; texts %q", h.texts())
	}
	h.tap("pin:clear")
	h.enterPIN("2468")
	for _, want := range []string{
		"Geräte", "Kamera", "in Ordnung", "Drucker: paper low", "eingeschränkt",
		"Kartenterminal: no answer on 192.168.7.20:20007", "fehlt",
		"Mit dem Server verbunden", "Nicht übertragene Anträge: 2", "Softwareversion: 1.7.0",
		"Letzte Übertragung: 04.05.2026, 09:12",
	} {
		h.wantText(want)
	}

	// Views go on underneath without closing the screen.
	h.show(s, scenes("ar")[3].v)
	if h.u.admin == nil || h.u.adminScreen == nil {
		t.Fatal("a new view closed the admin screen")
	}
	if h.u.screen.title.Text() != "سجّل الدخول ببطاقة هويتك" {
		t.Error("the citizen's screen underneath did not follow the flow")
	}

	h.admin.status.Pending, h.admin.status.Connected = 5, false
	h.tapLabel("Aktualisieren")
	h.wantText("Nicht übertragene Anträge: 5")
	h.wantText("Keine Verbindung zum Server")

	// Reboot asks first.
	h.tapLabel("Neu starten")
	h.wantText("Wirklich neu starten? Eine laufende Sitzung wird abgebrochen und gelöscht.")
	h.tapLabel("Nein")
	if h.admin.reboots != 0 {
		t.Fatal("declining the question rebooted")
	}
	h.tapLabel("Neu starten")
	h.tapLabel("Ja, neu starten")
	if h.admin.reboots != 1 {
		t.Errorf("reboots = %d, want 1", h.admin.reboots)
	}
	h.admin.rebootErr = errors.New("systemctl: access denied")
	h.tapLabel("Neu starten")
	h.tapLabel("Ja, neu starten")
	h.wantText("Neustart fehlgeschlagen: systemctl: access denied")

	h.tapLabel("Schließen")
	if h.u.admin != nil || h.u.adminScreen != nil {
		t.Fatal("Close left the admin screen open")
	}
	h.tap("cancel")
	wantInputs(t, s, flow.Cancel{})
}

func TestAdminLockout(t *testing.T) {
	h := newHarness(t, Options{AdminAttempts: 3, AdminLockout: time.Minute})
	s := h.begin()
	h.show(s, scenes("de")[0].v)
	h.openAdmin()
	for range 3 {
		h.enterPIN("0000")
	}
	h.wantText("Zu viele falsche Versuche. Bitte warten: 1:00")
	checks := h.admin.checks
	h.enterPIN("2468")
	if h.u.admin.unlocked || h.admin.checks != checks {
		t.Fatal("the right PIN was tried during the lockout")
	}
	// Closing and reopening does not reset the lockout.
	h.tapLabel("Schließen")
	h.clock.advance(30 * time.Second)
	h.openAdmin()
	h.enterPIN("2468")
	h.wantText("Zu viele falsche Versuche. Bitte warten: 0:30")
	h.clock.advance(31 * time.Second)
	h.enterPIN("2468")
	if !h.u.admin.unlocked {
		t.Error("the right PIN did not unlock after the lockout")
	}
}

func TestAdminClosesWhenIdle(t *testing.T) {
	h := newHarness(t, Options{AdminIdle: 2 * time.Minute})
	s := h.begin()
	h.show(s, scenes("de")[0].v)
	h.openAdmin()
	h.clock.advance(119 * time.Second)
	h.tap("pin:1") // a touch restarts the wait
	h.clock.advance(119 * time.Second)
	if h.u.admin == nil {
		t.Fatal("the admin screen closed while in use")
	}
	h.clock.advance(2 * time.Second)
	if h.u.admin != nil || h.u.adminScreen != nil {
		t.Fatal("the admin screen stayed open after two idle minutes")
	}
	h.wantText("Willkommen")
}

func TestAdminNeedsBackend(t *testing.T) {
	h := newHarness(t, Options{})
	s := h.begin()
	h.show(s, scenes("de")[0].v)
	h.u.backend = nil // as Run(ctx, next, nil)
	for range 10 {
		h.tapCorner()
	}
	if h.u.admin != nil {
		t.Error("the admin screen opened without a back end")
	}
}
