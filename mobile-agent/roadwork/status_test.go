package roadwork

import (
	"testing"

	"github.com/kogge-fleet/kogge/agent"
)

func TestFromOpen311(t *testing.T) {
	var r NoteRules
	cases := []struct {
		status, notes string
		want          Status
	}{
		{"open", "", StatusReceived},
		{"open", "   ", StatusReceived},
		{"open", "Schaden geprüft", StatusChecked},
		{"open", "Meldung bestätigt", StatusChecked},
		{"open", "Checked by the district office", StatusChecked},
		{"open", "Geprüft, Reparatur beauftragt", StatusInProgress},
		{"open", "In Bearbeitung", StatusInProgress},
		{"open", "crew on site", StatusInProgress},
		{"OPEN", "Repair scheduled for Monday", StatusInProgress},
		{"closed", "", StatusSolved},
		{"closed", "Schlagloch verfüllt", StatusSolved},
		{"closed", "Erledigt", StatusSolved},
		{"closed", "Nicht behoben: Privatgrund", StatusClosedUnsolved},
		{"closed", "Kein Handlungsbedarf", StatusClosedUnsolved},
		{"closed", "not fixed, awaiting funding", StatusClosedUnsolved},
		{"closed", "Abgelehnt: nicht zuständig", StatusRejected},
		{"closed", "Duplikat von 100231", StatusRejected},
		{" closed ", "Duplicate of 100231", StatusRejected},
		{"unknown", "", StatusReceived},
	}
	for _, c := range cases {
		if got := r.FromOpen311(c.status, c.notes); got != c.want {
			t.Errorf("FromOpen311(%q, %q) = %s, want %s", c.status, c.notes, got, c.want)
		}
	}
}

func TestNoteRulesConfigured(t *testing.T) {
	r := NoteRules{Checked: []string{"QS ok"}, Unsolved: []string{"zurückgestellt"}}
	if got := r.Open("qs OK"); got != StatusChecked {
		t.Errorf("configured checked phrase: %s", got)
	}
	if got := r.Open("geprüft"); got != StatusInProgress {
		t.Errorf("a default checked phrase still counts after configuring others: %s", got)
	}
	if got := r.Closed("Zurückgestellt bis 2027"); got != StatusClosedUnsolved {
		t.Errorf("configured unsolved phrase: %s", got)
	}
	if got := r.Closed("abgelehnt"); got != StatusRejected {
		t.Errorf("default rejected phrase with others configured: %s", got)
	}
}

func TestFromAgent(t *testing.T) {
	var r NoteRules
	cases := []struct {
		s    agent.Status
		want Status
		ok   bool
	}{
		{agent.Status{State: agent.Saved}, StatusSaved, true},
		{agent.Status{State: agent.Sent}, StatusSending, true},
		{agent.Status{State: agent.Stored}, StatusSent, true},
		{agent.Status{State: agent.Delivered}, StatusReceived, true},
		{agent.Status{State: agent.Accepted, Reference: "100001"}, StatusReceived, true},
		{agent.Status{State: agent.InProgress}, StatusInProgress, true},
		{agent.Status{State: agent.InProgress, Note: "Geprüft"}, StatusChecked, true},
		{agent.Status{State: agent.InProgress, Note: "Baufirma beauftragt"}, StatusInProgress, true},
		{agent.Status{State: agent.Closed, Note: "verfüllt"}, StatusSolved, true},
		{agent.Status{State: agent.Closed, Note: "abgelehnt"}, StatusRejected, true},
		{agent.Status{State: agent.Failed}, StatusFailed, true},
		{agent.Status{State: agent.Rejected, Reason: "malformed"}, StatusRejected, true},
		{agent.Status{State: agent.Erased}, "", false},
		{agent.Status{State: 200}, "", false},
	}
	for _, c := range cases {
		got, ok := r.FromAgent(c.s)
		if got != c.want || ok != c.ok {
			t.Errorf("FromAgent(%v %q) = %s, %v; want %s, %v", c.s.State, c.s.Note, got, ok, c.want, c.ok)
		}
	}
}

func TestStatusLabels(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range Statuses() {
		de, en := s.Label(LangDE), s.Label(LangEN)
		if de == string(s) || en == string(s) || de == "" || seen[de] {
			t.Errorf("status %s: labels %q / %q", s, de, en)
		}
		seen[de] = true
	}
	if StatusSaved.Final() || !StatusSolved.Final() || !StatusRejected.Attention() || StatusSolved.Attention() {
		t.Error("Final or Attention wrong")
	}
	if Status("x").Label(LangEN) != "x" {
		t.Error("unknown status label")
	}
}

func TestCategories(t *testing.T) {
	cats := Categories()
	if len(cats) != 8 {
		t.Fatalf("%d categories, want the 8 of the issue", len(cats))
	}
	// The codes the Open311 connector's configurations already map.
	for _, c := range []Category{"pothole", "damaged-sign", "streetlight"} {
		if !c.Valid() {
			t.Errorf("%s is not a category: the bridges map it", c)
		}
	}
	for _, c := range cats {
		for _, in := range []string{string(c), c.Label(LangDE), " " + c.Label(LangEN) + " "} {
			got, err := ParseCategory(in)
			if err != nil || got != c {
				t.Errorf("ParseCategory(%q) = %s, %v", in, got, err)
			}
		}
	}
	if _, err := ParseCategory("kerb"); err == nil {
		t.Error("unknown category accepted")
	}
	if Category("kerb").Valid() || Category("kerb").Label(LangDE) != "kerb" {
		t.Error("unknown category")
	}
	for _, s := range Severities() {
		for _, in := range []string{s, SeverityLabel(s, LangDE), SeverityLabel(s, LangEN)} {
			if got, err := ParseSeverity(in); err != nil || got != s {
				t.Errorf("ParseSeverity(%q) = %s, %v", in, got, err)
			}
		}
	}
	if _, err := ParseSeverity("critical"); err == nil {
		t.Error("unknown severity accepted")
	}
}
