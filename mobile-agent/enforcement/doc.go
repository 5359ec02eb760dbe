// Package enforcement is the traffic-enforcement domain of the wardens'
// handhelds: the offence catalogue, plates, observation times, valve
// positions, amounts, notice numbers, the case record for the OWi
// procedure (casefile.Notice) and the printed notice (ESC/POS). It does no
// I/O except where a caller asks for it (FileSequencer); the app stores
// records, drives the printer and the UI, and the CLI scripts it.
//
// # Catalogue
//
// [Catalogue] holds the offences (Tatbestände) of the federal catalogue
// with their TBNR, text, legal reference, amount, warning or fine, points,
// driving ban, validity dates, minimum observation time and qualifiers.
// [EmbeddedCatalogue] is the version shipped in the binary (data/, with
// its sources); a newer version arrives through the twin as bytes and is
// taken with [Catalogue.Update] or [Issuer.UpdateCatalogue], which refuse
// older versions and files that break the rules of [ParseCatalogue].
// [Catalogue.Lookup] returns the version of an offence valid on a date;
// [Catalogue.Search] finds offences by number prefix or by words.
//
// # A case, step by step
//
//	cat, _ := enforcement.EmbeddedCatalogue()
//	seq, _ := enforcement.OpenFileSequencer(path)
//	is, _ := enforcement.NewIssuer(cat, seq, enforcement.Options{Prefix: "HB42"})
//
//	plate, err := enforcement.ParsePlate("D", "hb ab123e")       // → HB-AB 123 E
//	c := &enforcement.Case{Plate: plate, Make: "VW", Colour: "grau",
//		Location:    casefile.Place{Street: "Am Markt", HouseNumber: "21"},
//		Observation: enforcement.Observation{Start: seen},
//		Offences:    []enforcement.Offence{{TBNR: "141314"}},
//		Officer:     "4711"}
//	a, err := is.Check(c)       // amount, sanction; or *ObservationError: wait
//	n, err := is.Issue(ctx, c)  // *casefile.Notice with number and reference
//	// store n (sealed) first, then print:
//	job, err := renderer.Render(n, is.Catalogue())
//
// Check reports the first problem of a case; an *[ObservationError] says
// how long the warden must still observe before an offence with a minimum
// duration ("länger als 1 Stunde") can be noted. [Void] voids a notice
// with a reason; it is delivered all the same.
//
// # Amounts
//
// [Assess] applies the highest single amount of offences committed by one
// act (Tateinheit, § 19 OWiG). Up to 55 EUR (5–55 EUR in steps of 5) the
// case is a warning, paid on the spot; above that it is a fine: the case
// goes to the fine office, Notice.Sanction is "fine", no payment reference
// is issued and no warning is printed (the printed slip says that the fine
// office takes over).
//
// # Numbers
//
// A notice number is the device prefix, a sequence number from a
// [Sequencer] and a check digit: "HB42-0000123-1" (see [NoticeNumber]).
// The payment reference of a warning is the ISO 11649 creditor reference
// of that number ("RF.." with MOD 97-10 check digits); the printed QR code
// is an EPC "GiroCode" with the office's IBAN, the amount and the
// reference ([Renderer.GiroCode]).
package enforcement
