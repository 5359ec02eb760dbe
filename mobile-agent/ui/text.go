package ui

import "fmt"

// Languages returns the languages the UI speaks.
func Languages() []string { return []string{"de", "en"} }

// texts is the catalogue: every key in German and English, with fmt verbs
// for its arguments. TestCatalogue checks that none is missing and that
// every key the code uses is here.
var texts = map[string][2]string{
	"app.title": {"Kogge Handheld", "Kogge handheld"},

	"action.back":   {"Zurück", "Back"},
	"action.cancel": {"Abbrechen", "Cancel"},
	"action.done":   {"Fertig", "Done"},
	"action.home":   {"Start", "Home"},
	"action.next":   {"Weiter", "Next"},

	"status.online":  {"online", "online"},
	"status.offline": {"offline", "offline"},
	"status.queue":   {"%d nicht gesendet", "%d not sent"},
	"status.busy":    {"bitte warten …", "please wait …"},

	"peripheral.gnss":    {"GNSS", "GNSS"},
	"peripheral.printer": {"Drucker", "Printer"},
	"peripheral.camera":  {"Kamera", "Camera"},
	"peripheral.ok":      {"bereit", "ready"},

	"error.generic":         {"%s", "%s"},
	"error.not-logged-in":   {"Bitte zuerst anmelden.", "Please log in first."},
	"error.no-shift":        {"Bitte zuerst die Schicht beginnen.", "Please start your shift first."},
	"error.plate":           {"Das Kennzeichen passt nicht zur Nationalität. Bitte prüfen.", "The plate does not fit the nationality. Please check it."},
	"error.paper-out":       {"Drucker: kein Papier. Neue Rolle einlegen, dann erneut drucken.", "Printer: out of paper. Load a new roll, then print again."},
	"error.cover-open":      {"Drucker: Deckel offen. Deckel schließen, dann erneut drucken.", "Printer: cover open. Close it, then print again."},
	"error.device":          {"Gerät nicht erreichbar: %s", "Device not reachable: %s"},
	"error.no-printer":      {"Kein Drucker eingerichtet.", "No printer is set up."},
	"error.not-kept":        {"Nur Verwarnungen der laufenden Schicht können hier gedruckt oder storniert werden.", "Only notices of the open shift can be printed or voided here."},
	"error.report.category": {"Bitte die Art des Schadens wählen.", "Please choose the kind of damage."},
	"error.report.severity": {"Bitte die Dringlichkeit wählen.", "Please choose the severity."},
	"error.report.location": {"Bitte GNSS-Position übernehmen oder die Straße eingeben.", "Please take the GNSS position or enter the street."},
	"error.report.position": {"Die GNSS-Position ist zu ungenau oder zu alt. Bitte neu übernehmen oder die Straße eingeben.", "The GNSS position is too inaccurate or too old. Take it again or enter the street."},

	"login.title":           {"Anmelden", "Log in"},
	"login.hint":            {"Dienstnummer eingeben, OK, dann die PIN und OK.", "Enter your officer number, OK, then your PIN and OK."},
	"login.officer":         {"Dienstnummer", "Officer number"},
	"login.pin":             {"PIN für %s", "PIN for %s"},
	"login.ok":              {"OK", "OK"},
	"login.officer-missing": {"Bitte die Dienstnummer eingeben.", "Please enter your officer number."},
	"login.wrong":           {"Dienstnummer oder PIN falsch. Noch %d Versuche.", "Wrong officer number or PIN. %d attempts left."},
	"login.locked":          {"Zu viele falsche PINs: gesperrt bis %s Uhr.", "Too many wrong PINs: locked until %s."},

	"home.title":       {"Schicht", "Shift"},
	"home.officer":     {"Dienstnummer %s · %s", "Officer %s · %s"},
	"home.shift-since": {"Schicht seit %s Uhr", "On shift since %s"},
	"home.no-shift":    {"Keine Schicht offen.", "No shift is open."},
	"home.link":        {"Verbindung: %s", "Link: %s"},
	"home.catalogue":   {"Tatbestandskatalog Version %d", "Offence catalogue version %d"},
	"home.start-shift": {"Schicht beginnen", "Start shift"},
	"home.end-shift":   {"Schicht beenden", "End shift"},
	"home.shift-ended": {"Schicht beendet. Abgemeldet.", "Shift ended. Logged out."},
	"home.logout":      {"Abmelden", "Log out"},
	"home.logged-out":  {"Abgemeldet. Die Schicht bleibt offen.", "Logged out. The shift stays open."},
	"home.new-notice":  {"Neue Verwarnung", "New notice"},
	"home.new-report":  {"Straßenschaden melden", "Report road damage"},
	"home.cases":       {"Meine Fälle", "My cases"},

	"notice.title":            {"Verwarnung", "Notice"},
	"notice.step":             {"Schritt %d von %d: %s", "Step %d of %d: %s"},
	"notice.step.vehicle":     {"Fahrzeug", "Vehicle"},
	"notice.step.offences":    {"Tatbestand", "Offence"},
	"notice.step.place":       {"Tatort", "Place"},
	"notice.step.observation": {"Beobachtung", "Observation"},
	"notice.step.details":     {"Ventile, Fotos, Bemerkung", "Valves, photos, remarks"},
	"notice.step.check":       {"Prüfen und ausstellen", "Check and issue"},
	"notice.nationality":      {"Nationalität", "Nationality"},
	"notice.plate":            {"Kennzeichen", "Licence plate"},
	"notice.make":             {"Marke", "Make"},
	"notice.colour":           {"Farbe", "Colour"},
	"notice.search":           {"Tatbestand suchen", "Search offences"},
	"notice.search-hint":      {"Nummer oder Stichwort", "Number or word"},
	"notice.no-hits":          {"Nichts gefunden.", "Nothing found."},
	"notice.chosen":           {"Gewählte Tatbestände", "Chosen offences"},
	"notice.no-offence":       {"Noch kein Tatbestand gewählt.", "No offence chosen yet."},
	"notice.remove":           {"Entfernen", "Remove"},
	"notice.no-place":         {"Bitte GNSS-Position übernehmen oder die Straße eingeben.", "Please take the GNSS position or enter the street."},
	"notice.valves":           {"Ventilstellungen (Uhrzeit)", "Valve positions (clock hour)"},
	"notice.take-photo":       {"Foto aufnehmen (%d)", "Take photo (%d)"},
	"notice.remarks":          {"Bemerkung", "Remarks"},
	"notice.issue":            {"Ausstellen und drucken", "Issue and print"},
	"notice.discarded":        {"Verwarnung verworfen.", "Notice discarded."},

	"valve.VL": {"vorn links", "front left"},
	"valve.VR": {"vorn rechts", "front right"},
	"valve.HL": {"hinten links", "rear left"},
	"valve.HR": {"hinten rechts", "rear right"},

	"place.none":      {"Keine GNSS-Position übernommen.", "No GNSS position taken."},
	"place.position":  {"Position %.5f, %.5f (±%.0f m)", "Position %.5f, %.5f (±%.0f m)"},
	"place.accuracy":  {"(GNSS ±%.0f m)", "(GNSS ±%.0f m)"},
	"place.take-gnss": {"GNSS-Position übernehmen", "Take GNSS position"},
	"place.street":    {"Straße", "Street"},
	"place.house":     {"Hausnummer", "House number"},
	"place.recent":    {"Zuletzt verwendet", "Recently used"},

	"observe.from":       {"Beobachtet seit %s Uhr", "Observed since %s"},
	"observe.until":      {"Ende: %s", "End: %s"},
	"observe.running":    {"läuft", "running"},
	"observe.wait":       {"Noch %s beobachten (Mindestzeit %s).", "Observe %s longer (minimum %s)."},
	"observe.done":       {"Mindestzeit %s erreicht.", "Minimum of %s reached."},
	"observe.no-minimum": {"Keine Mindestbeobachtungszeit.", "No minimum observation time."},
	"observe.adjust":     {"Beginn verschieben", "Move the start"},
	"observe.end":        {"Beobachtung jetzt beenden", "End observation now"},

	"photo.taken": {"Foto aufgenommen, Metadaten entfernt.", "Photo taken, metadata removed."},

	"check.where":    {"Ort: %s", "Place: %s"},
	"check.observed": {"Beobachtet seit %s Uhr", "Observed since %s"},
	"check.details":  {"Ventile: %s · Fotos: %d", "Valves: %s · photos: %d"},
	"check.warning":  {"Verwarnungsgeld, zahlbar mit der Verwarnung", "Warning fine, payable with the notice"},
	"check.fine":     {"Bußgeld: geht an die Bußgeldstelle, es wird kein Verwarnungsgeld gedruckt", "Fine: goes to the fine office, no warning is printed"},

	"issued.title":        {"Ausgestellt", "Issued"},
	"issued.saved":        {"Gespeichert", "Saved"},
	"issued.printed":      {"Gedruckt", "Printed"},
	"issued.not-printed":  {"Noch nicht gedruckt.", "Not printed yet."},
	"issued.print-failed": {"Nicht gedruckt: %s. Die Verwarnung ist gespeichert.", "Not printed: %s. The notice is saved."},
	"issued.reprint":      {"Erneut drucken", "Print again"},
	"issued.voided":       {"Storniert", "Voided"},
	"issued.status":       {"Stand: %s", "Status: %s"},

	"void.title":          {"Stornieren", "Void"},
	"void.hint":           {"Eine stornierte Verwarnung wird mit dem Grund an die Bußgeldstelle übermittelt.", "A voided notice goes to the fine office with the reason."},
	"void.reason":         {"Grund", "Reason"},
	"void.reason-missing": {"Bitte einen Grund angeben.", "Please give a reason."},
	"void.confirm":        {"Jetzt stornieren", "Void now"},
	"void.done":           {"Verwarnung %s storniert.", "Notice %s voided."},

	"cases.title":     {"Meine Fälle heute", "My cases today"},
	"cases.none":      {"Heute noch keine Fälle.", "No cases today yet."},
	"cases.notice":    {"Verwarnung", "Notice"},
	"cases.report":    {"Schadensmeldung", "Damage report"},
	"cases.reference": {"Aktenzeichen %s", "Reference %s"},
	"case.title":      {"Verwarnung", "Notice"},
	"case.printed":    {"Gedruckt um %s Uhr", "Printed at %s"},

	"report.title":         {"Straßenschaden", "Road damage"},
	"report.category":      {"Art des Schadens", "Kind of damage"},
	"report.severity":      {"Dringlichkeit", "Severity"},
	"report.place":         {"Ort", "Place"},
	"report.note":          {"Beschreibung", "Description"},
	"report.take-photo":    {"Foto aufnehmen (%d)", "Take photo (%d)"},
	"report.photo-blurred": {"Foto aufgenommen. Öffentliche Kopie: Gesichter unkenntlich: %d, Kennzeichen unkenntlich: %d.", "Photo taken. Public copy: faces blurred: %d, plates blurred: %d."},
	"report.submit":        {"Meldung absenden", "Send report"},
	"report.discarded":     {"Meldung verworfen.", "Report discarded."},
	"report.saved":         {"Gespeichert. Wird gesendet, sobald Netz da ist.", "Saved. It is sent as soon as there is a network."},
	"report.status-title":  {"Stand der Meldung", "Report status"},
	"report.office-note":   {"Nachricht des Straßenbaus", "Note from road maintenance"},
	"report.updated":       {"Zuletzt aktualisiert %s Uhr", "Last updated %s"},
}

// tr returns the text of key in lang, formatted with args; a key the
// catalogue lacks shows as itself, so that a gap is visible, not blank.
func tr(lang, key string, args ...any) string {
	t, ok := texts[key]
	if !ok {
		return key
	}
	s := t[0]
	if lang == "en" {
		s = t[1]
	}
	if len(args) > 0 {
		return fmt.Sprintf(s, args...)
	}
	return s
}
