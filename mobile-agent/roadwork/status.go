package roadwork

import (
	"strings"

	"github.com/kogge-fleet/kogge/agent"
)

// Status is what the device shows about a report: where it is on its way
// and what the road-maintenance office did with it. The first three are
// the device's and the fleet server's; the others follow the statuses
// German damage-report portals show (DOMAIN.md §3).
type Status string

// The statuses, in the order a report usually goes through them.
const (
	// StatusSaved: durable on the device, waiting for the network.
	StatusSaved Status = "saved"
	// StatusSending: on its way to the fleet server.
	StatusSending Status = "sending"
	// StatusSent: the fleet server has it; the device's copy is gone.
	StatusSent Status = "sent"
	// StatusReceived: the road-maintenance system received it (with a
	// request number once it gave one).
	StatusReceived Status = "received"
	// StatusChecked: the office looked at it and confirmed it.
	StatusChecked Status = "checked"
	// StatusInProgress: the repair is ordered or under way.
	StatusInProgress Status = "in-progress"
	// StatusSolved: closed, the damage is repaired.
	StatusSolved Status = "solved"
	// StatusClosedUnsolved: closed without a repair (not needed, not
	// possible, someone else's).
	StatusClosedUnsolved Status = "closed-unsolved"
	// StatusRejected: refused, by the office (not responsible, a
	// duplicate) or by the fleet server (Entry.Reason says why).
	StatusRejected Status = "rejected"
	// StatusFailed: it could not be delivered; the office follows up.
	StatusFailed Status = "failed"
	// StatusErased: wiped from the device before it was sent.
	StatusErased Status = "erased"
)

var statusLabels = map[Status][2]string{
	StatusSaved:          {"Gespeichert, wartet auf Netz", "Saved, waiting for network"},
	StatusSending:        {"Wird gesendet", "Sending"},
	StatusSent:           {"Übertragen", "Transmitted"},
	StatusReceived:       {"Eingegangen", "Received"},
	StatusChecked:        {"Geprüft", "Checked"},
	StatusInProgress:     {"In Bearbeitung", "In progress"},
	StatusSolved:         {"Erledigt", "Solved"},
	StatusClosedUnsolved: {"Geschlossen, nicht behoben", "Closed, not solved"},
	StatusRejected:       {"Abgelehnt", "Rejected"},
	StatusFailed:         {"Zustellung gescheitert", "Delivery failed"},
	StatusErased:         {"Gelöscht", "Erased"},
}

// Statuses lists every status.
func Statuses() []Status {
	return []Status{StatusSaved, StatusSending, StatusSent, StatusReceived, StatusChecked, StatusInProgress,
		StatusSolved, StatusClosedUnsolved, StatusRejected, StatusFailed, StatusErased}
}

// Label returns the status as the device shows it, in lang ("de" or "en").
func (s Status) Label(lang string) string {
	if l, ok := statusLabels[s]; ok {
		return pick(l, lang)
	}
	return string(s)
}

// Final reports whether nothing more will happen to the report.
func (s Status) Final() bool {
	switch s {
	case StatusSolved, StatusClosedUnsolved, StatusRejected, StatusFailed, StatusErased:
		return true
	}
	return false
}

// Attention reports whether the crew should look at the report: it was
// refused or could not be delivered.
func (s Status) Attention() bool { return s == StatusRejected || s == StatusFailed }

// onDevice reports whether the status is the device's or the fleet
// server's, before the office has the report.
func (s Status) onDevice() bool { return s == StatusSaved || s == StatusSending || s == StatusSent }

// NoteRules tell the statuses apart that Open311 does not: it knows only
// open and closed plus the office's status notes. A note containing one of
// the phrases (case does not matter) decides. The defaults hold common
// German and English phrases; offices configure their own.
type NoteRules struct {
	// For an open request: InProgress is checked first, then Checked;
	// without a match an open request with notes is in progress.
	InProgress []string
	Checked    []string
	// For a closed request: Rejected is checked first, then Unsolved;
	// without a match a closed request is solved.
	Rejected []string
	Unsolved []string
}

// DefaultNoteRules are the phrases NoteRules use unless configured.
var DefaultNoteRules = NoteRules{
	InProgress: []string{"in bearbeitung", "in arbeit", "beauftragt", "reparatur", "wird behoben", "in progress",
		"scheduled", "work order", "repair"},
	Checked: []string{"geprüft", "geprueft", "bestätigt", "bestaetigt", "gesichtet", "checked", "verified", "confirmed"},
	Rejected: []string{"abgelehnt", "nicht zuständig", "nicht zustaendig", "duplikat", "doppelt", "bereits gemeldet",
		"rejected", "not responsible", "duplicate", "already reported"},
	Unsolved: []string{"nicht behoben", "nicht erledigt", "nicht möglich", "nicht moeglich", "kein handlungsbedarf",
		"keine maßnahme", "unsolved", "not fixed", "not resolved", "no action"},
}

func (r NoteRules) withDefaults() NoteRules {
	if r.InProgress == nil {
		r.InProgress = DefaultNoteRules.InProgress
	}
	if r.Checked == nil {
		r.Checked = DefaultNoteRules.Checked
	}
	if r.Rejected == nil {
		r.Rejected = DefaultNoteRules.Rejected
	}
	if r.Unsolved == nil {
		r.Unsolved = DefaultNoteRules.Unsolved
	}
	return r
}

func contains(note string, phrases []string) bool {
	note = strings.ToLower(note)
	for _, p := range phrases {
		if p != "" && strings.Contains(note, strings.ToLower(p)) {
			return true
		}
	}
	return false
}

// Open returns the status of an open request with the office's notes.
func (r NoteRules) Open(notes string) Status {
	r = r.withDefaults()
	switch {
	case strings.TrimSpace(notes) == "":
		return StatusReceived
	case contains(notes, r.InProgress):
		return StatusInProgress
	case contains(notes, r.Checked):
		return StatusChecked
	}
	return StatusInProgress
}

// Closed returns the status of a closed request with the office's notes.
func (r NoteRules) Closed(notes string) Status {
	r = r.withDefaults()
	switch {
	case contains(notes, r.Rejected):
		return StatusRejected
	case contains(notes, r.Unsolved):
		return StatusClosedUnsolved
	}
	return StatusSolved
}

// FromOpen311 maps a GeoReport v2 request status ("open" or "closed") and
// its status_notes to a Status. An unknown status counts as open.
func (r NoteRules) FromOpen311(status, notes string) Status {
	if strings.EqualFold(strings.TrimSpace(status), "closed") {
		return r.Closed(notes)
	}
	return r.Open(notes)
}

// FromAgent maps a record's state on the device to a Status. The Open311
// connector reports an open request with status notes as in progress and
// a closed one as closed, each with the notes (fleet-server's
// RecordStatus); the notes then decide as in Open and Closed. ok is false
// for agent.Erased, which says that the record's body is gone, not what
// became of the report: the caller keeps the status it had.
func (r NoteRules) FromAgent(s agent.Status) (st Status, ok bool) {
	switch s.State {
	case agent.Saved:
		return StatusSaved, true
	case agent.Sent:
		return StatusSending, true
	case agent.Stored:
		return StatusSent, true
	case agent.Delivered, agent.Accepted:
		return StatusReceived, true
	case agent.InProgress:
		if strings.TrimSpace(s.Note) == "" {
			return StatusInProgress, true
		}
		return r.Open(s.Note), true
	case agent.Closed:
		return r.Closed(s.Note), true
	case agent.Failed:
		return StatusFailed, true
	case agent.Rejected:
		return StatusRejected, true
	}
	return "", false
}
