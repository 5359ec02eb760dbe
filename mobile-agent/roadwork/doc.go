// Package roadwork is the road crews' side of the handheld: damage reports
// (DOMAIN.md §3) from the draft to the status the road-maintenance office
// gives them.
//
// A report is filled as a [Draft]: a [Category] (stable codes that the
// Open311 connector maps to service codes), a severity (low, medium, high,
// danger), the GNSS position with its accuracy and/or the street and house
// number, a note of at most 4000 bytes, and photos that the photo
// subpackage has stripped of metadata, with public copies in which faces
// and plates are blurred. [Draft.Validate] says what is missing field by
// field ([FieldError]); [Draft.Build] turns a valid draft into the sealed
// document (casefile.Report) and the blobs that carry the photos, each
// named by its blob id. [Reporter.Submit] does both and has the agent seal
// and save the report for the office.
//
// A [Tracker] keeps the list of the device's own reports with the status
// the device shows ([Status]): saved, sending, sent on the device's side;
// received, checked, in progress, solved, closed unsolved, rejected from
// the office. Open311 knows only open and closed with status notes, so
// [NoteRules] decide from the notes; the fleet server passes the
// connector's findings to the device as RecordStatus, and the agent's
// state changes reach the tracker through [Tracker.Follow] and
// [Tracker.Refresh]. The list is kept in the agent's store values (key
// "roadwork.reports"), without photos or a citizen's data; its addresses
// make the pick list of recent places ([Tracker.RecentPlaces]).
//
// A typical wiring in the app:
//
//	tracker, _ := roadwork.NewTracker(ctx, st, roadwork.TrackerOptions{OnChange: ui.Refresh})
//	changes, stop := a.Watch()      // a is the *agent.Agent
//	go tracker.Follow(ctx, changes) // the app owns the goroutine; stop() at the end
//	tracker.Refresh(ctx, a)
//	rep, _ := roadwork.NewReporter(a, tracker, "strassenbau-bremen", roadwork.Options{})
//	res, _ := processor.Process(cameraJPEG)                   // photo.Processor
//	d := &roadwork.Draft{Category: roadwork.Pothole, Severity: casefile.SeverityHigh, Position: &fix,
//		Photos: []roadwork.Photo{roadwork.PhotoFrom(res, time.Now(), "")}}
//	entry, err := rep.Submit(ctx, d, roadwork.Author{Officer: o.ID, Crew: o.Crew})
package roadwork
