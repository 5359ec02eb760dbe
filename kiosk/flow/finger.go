package flow

import (
	"context"
	"errors"
	"strconv"
	"sync"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/agent"
	"github.com/kogge-fleet/kogge/drivers/fingerprint"
	"github.com/kogge-fleet/kogge/protocol/casefile"
)

// finger is step 5 or 6: up to Finger.Attempts captures of one index
// finger, each within Finger.Timeout. The first print that scores at
// least Finger.Threshold is taken (PNG); every attempt's score is
// recorded. A missing finger (Skip), a print too poor after the last
// attempt or a scanner that is gone move the finger to the counter.
func (r *Run) finger(step Step, pos uint8) error {
	item := "finger-" + strconv.Itoa(int(pos))
	msg := MsgFingerRight
	if step == StepFingerLeft {
		msg = MsgFingerLeft
	}
	attempts := r.cfg.Finger.Attempts
	if r.scanner {
		r.toCounter(item)
		return nil
	}
	for attempt := 1; ; attempt++ {
		r.view = View{Step: step, Message: msg, Attempt: attempt, Attempts: attempts}
		res, err := r.fingerAttempt(pos)
		if err != nil {
			return err
		}
		var retry string
		switch res {
		case fingerTaken:
			return nil
		case fingerLow:
			retry = MsgFingerLow
		case fingerNone:
			retry = MsgFingerNone
		case fingerImageFailed:
			retry = MsgFingerImageFailed
		default: // skipped, scanner gone
			r.toCounter(item)
			return nil
		}
		if attempt >= attempts {
			r.toCounter(item)
			return nil
		}
		again, err := r.askRetry(retry, attempt, attempts, r.cfg.Timeouts.Finger)
		if err != nil {
			return err
		}
		if !again {
			r.toCounter(item)
			return nil
		}
	}
}

type fingerResult int

const (
	fingerTaken fingerResult = iota + 1
	fingerLow
	fingerNone
	fingerImageFailed
	fingerSkipped
	fingerBroken
)

type fingerCaptured struct {
	img fingerprint.Image
	err error
}

// fingerAttempt takes and scores one print.
func (r *Run) fingerAttempt(pos uint8) (fingerResult, error) {
	ctx, cancel := context.WithCancel(r.ctx)
	events, quit := make(chan any), make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		img, err := r.deps.Scanner.Capture(ctx)
		if !deliver(quit, events, fingerCaptured{img, err}) && img.Gray != nil {
			zeroImage(img.Gray)
		}
	})
	// Without a finger in time the capture is cancelled; its answer
	// (no finger) still comes as the event.
	stopTimer := r.clock.AfterFunc(r.cfg.Finger.Timeout, cancel)
	defer func() {
		stopTimer()
		close(quit)
		cancel()
		wg.Wait()
	}()
	var got fingerCaptured
	skipped := false
	err := r.wait(waiter{events: events, input: func(in Input) (bool, error) {
		if _, ok := in.(Skip); ok {
			skipped = true
			return true, nil
		}
		return false, r.refuse(in)
	}, event: func(ev any) (bool, error) {
		got = ev.(fingerCaptured)
		return true, nil
	}})
	switch {
	case err != nil:
		return 0, err
	case skipped:
		r.log.Info("finger skipped", "position", pos)
		return fingerSkipped, nil
	case errors.Is(got.err, fingerprint.ErrNoFinger):
		return fingerNone, nil
	case errors.Is(got.err, fingerprint.ErrImageFailed):
		return fingerImageFailed, nil
	case got.err != nil:
		r.scanner = true
		r.log.Warn("fingerprint scanner failed; the fingers move to the counter", "err", got.err,
			"scanner", r.deps.Scanner.Status().String())
		return fingerBroken, nil
	}
	gray := got.img.Gray
	defer zeroImage(gray)
	score := r.deps.Fingers.Score(gray)
	if score > 100 && score != casefile.FingerFailed {
		score = casefile.FingerFailed
	}
	at := got.img.Time
	if at.IsZero() {
		at = r.clock.Now()
	}
	a := casefile.FingerAttempt{N: len(r.app.Finger) + 1, At: casefile.At(at), Position: pos, Score: score,
		Threshold: r.cfg.Finger.Threshold}
	ok := score != casefile.FingerFailed && score >= r.cfg.Finger.Threshold
	r.log.Info("finger scored", "position", pos, "score", score, "threshold", a.Threshold, "accepted", ok)
	if ok {
		png, err := encodeGray(gray)
		r.held.bytes(png)
		if err != nil {
			r.log.Error("cannot encode the fingerprint", "err", err)
			ok = false
		} else {
			a.Selected, a.Image = true, uuid.New()
			r.blobs = append(r.blobs, agent.Blob{ID: a.Image, Role: "finger-" + strconv.Itoa(int(pos)), Data: png})
		}
	}
	if len(r.app.Finger) < casefile.MaxAttempts {
		r.app.Finger = append(r.app.Finger, a)
	}
	if ok {
		return fingerTaken, nil
	}
	return fingerLow, nil
}
