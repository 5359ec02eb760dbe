package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kogge-fleet/kogge/kiosk/flow"
	"github.com/kogge-fleet/kogge/protocol/casefile"
)

// citizen is a scripted citizen: it answers what each screen asks, the
// way a person would, and prints what happens. It stands in for the touch
// UI in --simulate.
type citizen struct {
	// insertCard puts the ID card on the reader when the screen asks.
	insertCard func() error
	// pin is typed when the screen asks for it.
	pin string
	say func(format string, args ...any)
}

// errCancelled is a session that ended cancelled.
var errCancelled = errors.New("the session was cancelled")

// walk runs the session to its end and returns its last view: the
// receipt or the counter screen.
func (c *citizen) walk(s flow.Session, timeout time.Duration) (flow.View, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	done := map[string]bool{} // what was answered, so a repeated view is not answered twice
	once := func(key string) bool {
		if done[key] {
			return false
		}
		done[key] = true
		return true
	}
	var last flow.View
	lastStep, lastMsg := flow.Step(-1), ""
	said := func(msg string) bool { // a message not yet printed
		if msg == lastMsg {
			return false
		}
		lastMsg = msg
		return true
	}
	for {
		var v flow.View
		var open bool
		select {
		case v, open = <-s.Views():
		case <-deadline.C:
			return last, fmt.Errorf("the session did not end within %v; it shows %s %q", timeout, last.Step, last.Message)
		}
		if !open {
			if last.Step == flow.StepCancelled {
				return last, errCancelled
			}
			return last, nil
		}
		last = v
		if v.Step != lastStep {
			lastStep, lastMsg = v.Step, v.Message
			c.say("screen %-13s %s%s", v.Step, v.Message, progress(v))
		}
		key := fmt.Sprintf("%s/%s/%d", v.Step, v.Message, v.Attempt)
		var in flow.Input
		switch v.Step {
		case flow.StepWelcome:
			if once(key) {
				c.say("  touches the screen (application number %s)", v.Number)
				in = flow.Start{}
			}
		case flow.StepLanguage:
			if once(key) {
				c.say("  chooses Deutsch")
				in = flow.ChooseLanguage{Tag: "de"}
			}
		case flow.StepDocuments:
			switch {
			case len(v.Chosen) == 0 && once(key+"/toggle"):
				c.say("  chooses the ID card")
				in = flow.ToggleDocument{Kind: casefile.ServiceIDCard}
			case len(v.Chosen) > 0 && once(key+"/next"):
				in = flow.Next{}
			}
		case flow.StepIdentify:
			switch {
			case v.Message == flow.MsgIdentifyInsertCard && once(key):
				c.say("  puts the ID card on the reader")
				if err := c.insertCard(); err != nil {
					return last, fmt.Errorf("insert the card: %w", err)
				}
			case v.Message == flow.MsgIdentifyEnterPIN && once(key):
				c.say("  types the PIN")
				in = flow.EnterPIN{PIN: c.pin}
			case said(v.Message):
				c.say("  %s", v.Message)
			}
		case flow.StepPhoto:
			switch {
			case v.Message == flow.MsgPhotoRetry && once(key):
				c.say("  tries again")
				in = flow.Retry{}
			case len(v.Guidance) > 0 && once(key+"/"+strings.Join(v.Guidance, ",")):
				c.say("  follows the guidance %v", v.Guidance)
			}
		case flow.StepPhotoChoice:
			if once(key) {
				c.say("  picks the first of %d equally good photos", len(v.Candidates))
				in = flow.PickPhoto{Index: 0}
			}
		case flow.StepFingerRight, flow.StepFingerLeft:
			switch v.Message {
			case flow.MsgFingerLow, flow.MsgFingerNone, flow.MsgFingerImageFailed:
				if once(key) {
					c.say("  tries again (%s)", v.Message)
					in = flow.Retry{}
				}
			}
		case flow.StepSignature:
			if once(key) {
				c.say("  signs")
				in = scriptedSignature()
			}
		case flow.StepPayment:
			switch v.Message {
			case flow.MsgPaymentDeclined, flow.MsgPaymentAborted:
				if once(key) {
					c.say("  pays at the counter instead")
					in = flow.Skip{}
				}
			default:
				if once(key) {
					c.say("  pays %d,%02d EUR with a card at the terminal", v.FeeCents/100, v.FeeCents%100)
				}
			}
		case flow.StepReview:
			if once(key) {
				c.say("  checks the summary (counter: %v) and consents", v.Counter)
				in = flow.Consent{Given: true}
			}
		case flow.StepReceipt, flow.StepCounter:
			if once(key) {
				c.say("  takes the receipt: %s, counter %v", v.Number, v.Counter)
				in = flow.Next{}
			}
		}
		if in != nil {
			if err := s.Send(in); err != nil && !errors.Is(err, flow.ErrEnded) {
				return last, fmt.Errorf("at %s: %T refused: %w", v.Step, in, err)
			}
		}
	}
}

func progress(v flow.View) string {
	if v.Total == 0 || v.Step == flow.StepSaving {
		return ""
	}
	return fmt.Sprintf(" (%d/%d)", v.Progress, v.Total)
}

// scriptedSignature is a short signature: two strokes drawn in 1.5 s.
func scriptedSignature() flow.SignatureDone {
	var a, b []flow.Point
	for i := range 60 {
		a = append(a, flow.Point{X: 40 + i*6, Y: 120 - (i%12)*5, T: uint32(i * 16), P: 400})
	}
	for i := range 20 {
		b = append(b, flow.Point{X: 200 + i*8, Y: 150, T: uint32(i * 16), P: 350})
	}
	return flow.SignatureDone{Strokes: [][]flow.Point{a, b}, W: 800, H: 240}
}
