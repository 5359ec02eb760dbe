package flow

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kogge-fleet/kogge/drivers/camera"
	"github.com/kogge-fleet/kogge/protocol/casefile"
)

// Config is what an office sets for its terminal's flow. DefaultConfig has
// the values of DOMAIN §1 and of the federal terminals; Validate checks a
// configuration after changes.
type Config struct {
	// Office is the office the applications are sealed for and delivered
	// to (the agent holds its key), e.g. "buergeramt-mitte".
	Office string
	// Terminal is the terminal's location label, recorded in the
	// application and printed on the receipt ("Bürgeramt Mitte, 1").
	Terminal string
	// Languages are the offered languages (BCP 47), in the office's order.
	Languages []string
	// Documents are the offered document kinds, in order: casefile's
	// id-card, passport, temporary-id.
	Documents []string
	// EID configures identification with the eID card (step 3).
	EID EIDConfig
	// Fees are the fees in euro cents per document kind; a citizen who
	// chooses several pays their sum.
	Fees map[string]int64
	// PayAtCounter skips the payment step: the counter takes the fee.
	PayAtCounter bool
	// PaymentAttempts is how often a declined or aborted payment may be
	// tried (2).
	PaymentAttempts int
	// Photo configures the photo step.
	Photo PhotoConfig
	// Finger configures the fingerprint steps.
	Finger FingerConfig
	// Timeouts are the steps' inactivity timeouts and the bounds of
	// internal operations.
	Timeouts Timeouts
	// Receipt is the text of the printed receipt.
	Receipt ReceiptConfig
	// Location is the time zone of the terminal, for the application
	// number's date and the receipt (time.Local).
	Location *time.Location
}

// EIDConfig configures identification with the eID card.
type EIDConfig struct {
	// Enabled offers the step; an office without an eID service switches
	// it off.
	Enabled bool
	// TCTokenURL is the eID service's tcToken URL that RUN_AUTH starts.
	TCTokenURL string
}

// PhotoConfig configures the photo step. The quality rules themselves are
// the Faces implementation's (kiosk/photo).
type PhotoConfig struct {
	// Mode is the camera mode asked for; the camera picks its nearest.
	Mode camera.Mode
	// Attempts is how many capture windows a citizen gets (3).
	Attempts int
	// Time is one capture window (30 s): without an acceptable frame by
	// then, the attempt fails.
	Time time.Duration
	// GoodFrames is how many acceptable frames end an attempt early (5).
	GoodFrames int
	// Candidates bounds the equally good photos offered for choice (3).
	Candidates int
	// Recent is how many recent frames the PAD detector sees (8).
	Recent int
	// PADThreshold is the highest presentation-attack score that passes
	// (0.5); above it the photo moves to the counter, silently.
	PADThreshold float64
}

// FingerConfig configures the fingerprint steps.
type FingerConfig struct {
	// Attempts per finger (3).
	Attempts int
	// Timeout for a finger to come to the scanner, per attempt (15 s).
	Timeout time.Duration
	// Threshold is the lowest NFIQ 2 score accepted (30 for index
	// fingers).
	Threshold uint8
	// MinAgeYears: no fingerprints from children younger (6), when the
	// date of birth is known.
	MinAgeYears int
}

// Timeouts are the inactivity timeouts of the citizen's steps: Warning
// before one ends the UI asks "do you need more time?"; any input answers
// it; when it ends the session is cancelled and wiped.
type Timeouts struct {
	// Warning is how long before a timeout the warning shows (20 s).
	Warning time.Duration
	// Per step (language 60 s, documents 90 s, identify 180 s, photo
	// retry and choice 60 s, finger retry 60 s, signature 120 s, payment
	// 180 s, review 120 s).
	Language, Documents, Identify, Photo, Finger, Signature, Payment, Review time.Duration
	// End is how long the receipt, counter and cancelled screens stay
	// (30 s); no warning, the session just ends.
	End time.Duration
	// Save, Print and Reconcile bound those operations (30 s, 30 s,
	// 60 s); Abort bounds the wait for a driver to give up after a
	// cancel (15 s).
	Save, Print, Reconcile, Abort time.Duration
}

// ReceiptConfig is the text of the receipt. The printer's code page holds
// Latin letters only, so it is printed in German and English whatever the
// citizen's language.
type ReceiptConfig struct {
	// Title is the first line, large ("Bürgeramt").
	Title string
	// Lines follow the number, one printed line each.
	Lines []string
	// CounterLines are printed when something moved to the counter or
	// the application could not be saved.
	CounterLines []string
}

// DefaultLanguages returns the languages offered by default: German,
// English, Turkish, Arabic, Russian, Ukrainian, Polish.
func DefaultLanguages() []string { return []string{"de", "en", "tr", "ar", "ru", "uk", "pl"} }

// DefaultConfig returns the defaults; Office and Terminal must still be
// set.
func DefaultConfig() Config {
	return Config{
		Languages: DefaultLanguages(),
		Documents: []string{casefile.ServiceIDCard, casefile.ServicePassport, casefile.ServiceTemporaryID},
		Fees: map[string]int64{
			casefile.ServiceIDCard: 3700, casefile.ServicePassport: 7000, casefile.ServiceTemporaryID: 1000,
		},
		PaymentAttempts: 2,
		Photo: PhotoConfig{
			Mode:     camera.Mode{Width: 1944, Height: 2592, FPS: 10},
			Attempts: 3, Time: 30 * time.Second, GoodFrames: 5, Candidates: 3, Recent: 8, PADThreshold: 0.5,
		},
		Finger: FingerConfig{Attempts: 3, Timeout: 15 * time.Second, Threshold: 30, MinAgeYears: 6},
		Timeouts: Timeouts{
			Warning: 20 * time.Second, Language: time.Minute, Documents: 90 * time.Second,
			Identify: 3 * time.Minute, Photo: time.Minute, Finger: time.Minute, Signature: 2 * time.Minute,
			Payment: 3 * time.Minute, Review: 2 * time.Minute, End: 30 * time.Second,
			Save: 30 * time.Second, Print: 30 * time.Second, Reconcile: time.Minute, Abort: 15 * time.Second,
		},
		Receipt: ReceiptConfig{
			Title: "Bürgeramt",
			Lines: []string{
				"Ihr Antrag ist gespeichert.",
				"Your application is saved.",
				"Bitte warten Sie, bis Ihre Nummer aufgerufen wird.",
				"Please wait until your number is called.",
			},
			CounterLines: []string{
				"Bitte gehen Sie mit dieser Nummer zum Schalter.",
				"Please go to the counter with this number.",
			},
		},
		Location: time.Local,
	}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Office == "" {
		bad("office: not set; name the office whose key seals the applications")
	}
	if len(c.Terminal) > casefile.MaxText {
		bad("terminal: %d bytes, at most %d", len(c.Terminal), casefile.MaxText)
	}
	if len(c.Languages) == 0 {
		bad("languages: offer at least one")
	}
	for _, l := range c.Languages {
		if l == "" || len(l) > 35 || strings.ContainsAny(l, " _") {
			bad("language %q: want a BCP 47 tag such as de or uk", l)
		}
	}
	if len(c.Documents) == 0 {
		bad("documents: offer at least one")
	}
	known := []string{casefile.ServiceIDCard, casefile.ServicePassport, casefile.ServiceTemporaryID}
	for _, d := range c.Documents {
		if !slices.Contains(known, d) {
			bad("document %q: want one of %s", d, strings.Join(known, ", "))
		}
	}
	if !c.PayAtCounter {
		for _, d := range c.Documents {
			if f, ok := c.Fees[d]; !ok || f < 0 {
				bad("fee of %s: not set or negative; set it in cents or take fees at the counter", d)
			}
		}
		if c.PaymentAttempts < 1 {
			bad("payment attempts %d: at least 1", c.PaymentAttempts)
		}
	}
	if c.EID.Enabled && !strings.HasPrefix(c.EID.TCTokenURL, "https://") {
		bad("eid tcToken URL %q: want the eID service's https:// URL, or switch eID off", c.EID.TCTokenURL)
	}
	p := c.Photo
	switch {
	case p.Mode.Width <= 0 || p.Mode.Height <= 0:
		bad("photo camera mode %v: width and height must be positive", p.Mode)
	case p.Attempts < 1 || p.Attempts > casefile.MaxAttempts/max(p.Candidates, 1):
		bad("photo attempts %d: 1 to %d", p.Attempts, casefile.MaxAttempts/max(p.Candidates, 1))
	case p.Time <= 0:
		bad("photo time %v: must be positive", p.Time)
	case p.GoodFrames < 1 || p.Candidates < 1 || p.Recent < 1:
		bad("photo good frames, candidates and recent frames must be at least 1")
	case p.PADThreshold < 0 || p.PADThreshold > 1:
		bad("photo PAD threshold %v: 0 to 1", p.PADThreshold)
	}
	f := c.Finger
	switch {
	case f.Attempts < 1 || f.Attempts > casefile.MaxAttempts/2:
		bad("finger attempts %d: 1 to %d", f.Attempts, casefile.MaxAttempts/2)
	case f.Timeout <= 0:
		bad("finger timeout %v: must be positive", f.Timeout)
	case f.Threshold > 100:
		bad("finger threshold %d: 0 to 100", f.Threshold)
	case f.MinAgeYears < 0:
		bad("finger minimum age %d: must not be negative", f.MinAgeYears)
	}
	t := c.Timeouts
	for _, s := range []struct {
		name string
		d    time.Duration
	}{
		{"language", t.Language}, {"documents", t.Documents}, {"identify", t.Identify}, {"photo", t.Photo},
		{"finger", t.Finger}, {"signature", t.Signature}, {"payment", t.Payment}, {"review", t.Review},
	} {
		if s.d <= t.Warning {
			bad("timeout of %s %v: must be longer than the warning (%v)", s.name, s.d, t.Warning)
		}
	}
	if t.Warning < 0 {
		bad("warning %v: must not be negative", t.Warning)
	}
	if t.End <= 0 || t.Save <= 0 || t.Print <= 0 || t.Reconcile <= 0 || t.Abort <= 0 {
		bad("end, save, print, reconcile and abort timeouts must be positive")
	}
	if c.Location == nil {
		bad("location: not set (time.Local for the terminal's zone)")
	}
	return errors.Join(errs...)
}

// fee returns the fee for the chosen documents.
func (c Config) fee(chosen []string) int64 {
	var sum int64
	for _, d := range chosen {
		sum += c.Fees[d]
	}
	return sum
}
