// Package flow is the citizen's flow at a self-service terminal for ID
// documents: a state machine per session, testable without a UI.
//
// A Flow holds an office's configuration (Config) and the terminal's
// dependencies (Deps: the peripherals' drivers, the capture-quality checks
// Faces, Fingers and Signatures, the agent as Saver, the application
// numbers and a Clock). Begin starts a session (*Run, a Session): the UI
// renders its Views and sends Inputs (view.go is the contract).
//
// # Steps
//
// Welcome, then (1) language, (2) documents, (3) identification with the
// eID card (when the office has it), (4) photo with live guidance and (4b)
// a choice among equally good photos, (5) right and (6) left index finger
// (not for children under six whose date of birth is known), (7)
// signature, (8) fee at the card terminal (unless the counter takes it),
// (9) review and consent, (10) sealing and saving through the agent, (11)
// the receipt with the application number and its QR code.
//
// # Never a dead end
//
// Whatever fails moves to the counter and the flow goes on: a photo
// without an acceptable frame after the last attempt, a suspected
// presentation attack, a broken camera; a finger too poor after the last
// attempt, a missing finger (Skip), a broken scanner; a signature that
// cannot be used; a declined, aborted or unsettled payment. The clerk
// completes there what View.Counter lists. A failed identification is
// recorded and the flow goes on without it. The session ends at
// StepReceipt, or at StepCounter with the application number when
// something moved to the counter, the application could not be saved, the
// citizen refused consent (then only the number, documents, eID result
// and fee are saved) or the receipt did not print.
//
// # Timeouts and cancelling
//
// Every step that waits for the citizen has an inactivity timeout
// (Config.Timeouts): Timeouts.Warning before it ends, the view's Warning
// is set and any input (Touch) answers it and restarts the timeout; when
// it ends the session is cancelled. Cancel ends a session at any step but
// saving, which it cannot interrupt once the application is on its way to
// the disk. A cancelled or timed-out session ends at StepCancelled; the
// end screens stay for Timeouts.End or until Next.
//
// # Wipe
//
// When a session ends, every buffer of personal data it held is zeroed and
// dropped: camera frames (frames that are neither recent nor acceptable
// are zeroed as they drop out), crops, fingerprint images and PNGs, the
// signature PNG and strokes, the encoded application handed to the agent
// (which seals it and keeps no reference). The UI must not keep
// View.Frame or View.Candidates beyond the view that carried them: their
// pixels are zeroed too.
//
// # Application numbers
//
// See Sequence and FormatNumber: PREFIX-YYMMDD-NNNN-C, unique per terminal
// without a network, with an ISO/IEC 7064 check character.
package flow
