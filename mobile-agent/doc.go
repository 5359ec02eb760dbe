// Package mobileagent is the handheld app of traffic wardens and road
// crews: one App wires the device's agent (store, sync, twin, heartbeat),
// the GNSS receiver, the printer, an optional camera, the offence catalogue
// with the notice issuer (mobile-agent/enforcement), damage reports
// (mobile-agent/roadwork) and the officer's shift (mobile-agent/shift).
// Every user action is a method of App; the fyne UI (mobile-agent/ui) and
// the headless script interpreter (Shell, used by cmd/kogge-mobile) call
// nothing else.
//
//	app, err := mobileagent.New(ctx, cfg, mobileagent.Deps{Store: st, Transport: tr,
//		Sequencer: seq, GNSS: rx, Printer: pr}, mobileagent.Options{})
//	go app.Run(ctx)
//	app.Login(ctx, "4711", "1234")
//	app.StartShift(ctx)
//	app.NewNotice()
//	app.NoticePlate("D", "HB-AB 123")
//	…
//	issued, err := app.IssueNotice(ctx) // saved first, then printed
//
// # Notices
//
// A notice is filled as the current draft (NewNotice, Notice…) and issued
// with SaveNotice and PrintNotice, or IssueNotice for both. SaveNotice
// draws the notice number, seals the case record (casefile.Notice) for the
// fine office together with the photos, as blobs under the ids the record
// names, and saves it with agent.Capture; only then does PrintNotice render
// the ESC/POS notice and send it to the printer. A printer that is out of
// paper, open or unreachable leaves the notice saved: PrintNotice can be
// called again (a reprint).
//
// Voiding (VoidNotice) needs a reason. The device keeps no plain copy of a
// record it has saved except in memory while the shift that issued it is
// open, so a notice can be voided and reprinted during that shift only;
// after it, the office voids it. The voided notice is delivered all the
// same: it is a new capture of the same record — same number, same case
// data — with Voided and VoidReason set and without the photos (the first
// record carries them). The OWi procedure thus receives both records under
// one notice number, the later one flagged, and every number stays
// accounted for, even when the first record has already been processed.
// The void is written to the device log (the agent's log, which the fleet
// server collects with collect-logs) with the officer, the number and the
// reason; no plate or other personal data goes into the log.
//
// # Damage reports
//
// A report is filled as the current draft (NewReport, Report…): category,
// severity, the GNSS position with its accuracy and/or street and house
// number, a note and photos. Photos are decoded and re-encoded without any
// metadata (EXIF stripped), and a public copy with faces and licence
// plates blurred is made (mobile-agent/roadwork/photo). SubmitReport seals
// and saves the report for the road-maintenance office.
//
// # Cases and statuses
//
// Cases lists the logged-in officer's cases of the day, notices and
// reports, with the status each has reached: saved on the device, at the
// server, delivered, accepted by the office with its reference, and the
// road-maintenance office's status updates (in progress, solved, …) as
// they come back through the fleet server (agent.Watch). The lists are kept
// in the agent's store values without personal data (no plates, no
// photos).
//
// # Twin
//
// The app reads two keys of the device's twin configuration, in addition
// to the agent's own: "catalogue", a newer offence catalogue (the text of
// an enforcement catalogue file, or that text in standard base64), checked
// with the enforcement parser before the configuration is accepted and
// taken into use when it is applied; and "officers", the list of officers
// who may log in ({"id", "name", "crew", "pin_hash"} objects), replacing
// the provisioned ones. An older catalogue in the twin is ignored, not
// refused: the device keeps the newer one it has.
//
// # Peripherals
//
// Run checks the GNSS receiver, the printer and the camera every
// Options.PeripheralInterval and reports their states in the device's
// heartbeat (agent.SetPeripheral).
package mobileagent
