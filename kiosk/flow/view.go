package flow

import (
	"image"
	"time"
)

// This file is the contract between the flow engine and the kiosk UI
// (kiosk/ui). The UI renders a View and sends Inputs; it decides nothing
// itself. Fields may be added; none is renamed or removed without changing
// kiosk/ui in the same commit.

// Step is where a session stands. The citizen's steps come in this order;
// a service skips those its office has switched off (eID, payment).
type Step int

const (
	StepWelcome      Step = iota // idle screen: touch to start
	StepLanguage                 // 1. choose the language
	StepDocuments                // 2. ID card, passport, temporary ID (several at once)
	StepIdentify                 // 3. eID card through the AusweisApp SDK
	StepPhoto                    // 4. live photo with guidance
	StepPhotoChoice              // 4b. pick among equally good photos
	StepFingerRight              // 5. right index finger (ISO position 2)
	StepFingerLeft               // 6. left index finger (ISO position 7)
	StepSignature                // 7. signature on the touch area or pad
	StepPayment                  // 8. fee through the card terminal (ZVT)
	StepReview                   // 9. review and consent
	StepSaving                   // 10. seal and save through the agent
	StepReceipt                  // 11. receipt printed, application number shown
	StepCounter                  // any failure: "please go to the counter" with the number
	StepCancelled                // the citizen cancelled, or a step timed out
	StepOutOfService             // a peripheral is missing: the reason, no flow
)

// View is everything the UI shows for the current moment of a session.
type View struct {
	Step Step
	// Language is the citizen's choice (BCP 47: de, en, tr, ar, ru, uk,
	// pl); empty before step 1, when the UI shows the office default.
	Language string
	// Languages are the offered languages, in the office's order.
	Languages []string
	// Documents are the offered document kinds ("id-card", "passport",
	// "temporary-id"); Chosen are those picked so far.
	Documents []string
	Chosen    []string
	// Message is a catalogue key (kiosk/i18n) for the step's current
	// status line, for example "identify.insert-card", with Args filled
	// into its placeholders.
	Message string
	Args    map[string]string
	// Guidance are catalogue keys of live photo guidance, most important
	// first: "photo.too-close", "photo.too-far", "photo.higher",
	// "photo.lower", "photo.left", "photo.right", "photo.hold-still",
	// "photo.look-straight", "photo.several-faces", "photo.no-face",
	// "photo.eyes-closed", "photo.mouth-open", "photo.too-dark",
	// "photo.too-bright", "photo.background".
	Guidance []string
	// Frame is the latest preview frame (photo step); Candidates the
	// equally good photos to choose from (photo choice step).
	Frame      image.Image
	Candidates []image.Image
	// Attempt and Attempts count tries in the photo and finger steps.
	Attempt, Attempts int
	// FeeCents is the fee in euro cents (payment and review steps).
	FeeCents int64
	// Number is the application number, known from the start of a
	// session; the receipt and the counter screen show it.
	Number string
	// Counter lists what moved to the counter ("face", "finger-2",
	// "finger-7", "signature", "fee").
	Counter []string
	// Warning is set when the step's timeout is near: the UI asks "do you
	// need more time?" and any input answers it. Remaining is the time left.
	Warning   bool
	Remaining time.Duration
	// Progress counts the citizen's steps done and in all, for a progress bar.
	Progress, Total int
}

// Input is what the citizen (or the UI on their behalf) does. The UI sends
// one of the types below; anything else is refused.
type Input interface{ input() }

// Start leaves the welcome screen.
type Start struct{}

// ChooseLanguage picks the language (step 1).
type ChooseLanguage struct{ Tag string }

// ToggleDocument adds or removes a document kind (step 2).
type ToggleDocument struct{ Kind string }

// Next confirms the current step (documents chosen, review read, receipt
// taken) and moves on.
type Next struct{}

// Skip declines an optional step (eID identification); the flow records
// it and goes on.
type Skip struct{}

// PickPhoto picks one of View.Candidates by index.
type PickPhoto struct{ Index int }

// Retry asks for another attempt in the photo or a finger step, while
// attempts are left.
type Retry struct{}

// SignatureDone hands over the signature drawn on the touch area: strokes
// of points in the area's coordinates, W×H its size.
type SignatureDone struct {
	Strokes [][]Point
	W, H    int
}

// Point is one sample of a stroke; T is milliseconds since the stroke
// began, P the pressure (0 when unknown).
type Point struct {
	X, Y int
	T    uint32
	P    uint16
}

// Consent answers the review step: Given false ends at the counter.
type Consent struct{ Given bool }

// Touch is any touch on the screen: it answers a timeout warning.
type Touch struct{}

// Cancel ends the session at once; everything captured is wiped.
type Cancel struct{}

func (Start) input()          {}
func (ChooseLanguage) input() {}
func (ToggleDocument) input() {}
func (Next) input()           {}
func (Skip) input()           {}
func (PickPhoto) input()      {}
func (Retry) input()          {}
func (SignatureDone) input()  {}
func (Consent) input()        {}
func (Touch) input()          {}
func (Cancel) input()         {}

// Session is one citizen's run through the flow, as the UI sees it.
type Session interface {
	// Views delivers a View whenever something the UI shows changes; a
	// slow reader misses intermediate views, never the latest. The
	// channel closes when the session has ended and been wiped.
	Views() <-chan View
	// Send hands the flow an input. It returns an error when the input
	// makes no sense in the current step (the UI ignores it).
	Send(in Input) error
}

// Admin is the back end of the hidden screen for office staff.
type Admin interface {
	// CheckPIN reports whether pin is the office's admin PIN (config).
	CheckPIN(pin string) bool
	// Status is the terminal's state now.
	Status() AdminStatus
	// Reboot restarts the kiosk application.
	Reboot() error
}

// AdminStatus is what the admin screen shows.
type AdminStatus struct {
	Peripherals []Peripheral
	// Connected says whether the agent has a session with the fleet
	// server; Pending counts captures not yet acknowledged by it.
	Connected bool
	Pending   int
	LastSync  time.Time
	Version   string
}

// Peripheral is one peripheral's state: Name ("camera", "fingerprint",
// "printer", "payment", "eid"), State ("ok", "degraded", "missing",
// "error") and a Reason staff can act on.
type Peripheral struct {
	Name, State, Reason string
}

// The flow reaches the capture-quality packages (kiosk/photo,
// kiosk/finger, kiosk/signature) through the interfaces below, so it can be
// tested with fakes; package kiosk adapts the real ones.

// Faces assesses and crops live camera frames (kiosk/photo).
type Faces interface {
	// Assess checks one preview frame against the photo rules.
	Assess(frame image.Image) FaceCheck
	// Crop cuts the 1244×1600 JPEG out of a frame that Assess found
	// acceptable; it never upscales.
	Crop(frame image.Image, fc FaceCheck) ([]byte, error)
	// PAD scores recent frames for a presentation attack, in [0,1]
	// (higher is more likely an attack); logged, never shown.
	PAD(frames []image.Image) float64
}

// FaceCheck is the assessment of one frame.
type FaceCheck struct {
	// Checks are the criteria with values and thresholds, in the
	// casefile's names (roll, head-width, sharpness, …).
	Checks []CheckValue
	// Guidance are catalogue keys, most important first (see View).
	Guidance []string
	// Mandatory and Optional count the criteria met; OK says all
	// mandatory ones are.
	Mandatory, Optional int
	OK                  bool
	// Region is where the crop will come from, in frame coordinates;
	// Faces counts the faces found.
	Region image.Rectangle
	Faces  int
}

// CheckValue is one criterion's value; Min and Max are nil where there is
// no bound.
type CheckValue struct {
	Name      string
	Value     float64
	Min, Max  *float64
	Mandatory bool
	Passed    bool
}

// Fingers scores fingerprint images (kiosk/finger): 0–100, 255 when
// scoring failed.
type Fingers interface {
	Score(img *image.Gray) uint8
}

// Signatures renders strokes drawn on a W×H area as a PNG (kiosk/signature).
type Signatures interface {
	Render(strokes [][]Point, w, h int) ([]byte, error)
}

// EnterPIN hands over the eID PIN typed on the screen's PIN pad (step 3).
// The flow asks for it (View.Message "identify.enter-pin") only when the
// card reader has no keypad of its own; a reader with a keypad takes the
// PIN itself ("identify.enter-pin-reader") and the screen shows no pad.
type EnterPIN struct{ PIN string }

func (EnterPIN) input() {}
