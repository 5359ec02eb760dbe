package flow

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/kogge-fleet/kogge/drivers/eid"
	"github.com/kogge-fleet/kogge/protocol/casefile"
)

// identify is step 3: authentication with the eID card through the
// AusweisApp SDK. The access rights are the office's and accepted for the
// citizen; the PIN is typed on the reader's keypad or, without one, on
// the screen (EnterPIN). Whatever goes wrong — no eID service, a card
// that wants its CAN or PUK, a card pulled out — the flow goes on without
// it; the result (ok, failed, cancelled, skipped) is recorded and the
// clerk checks the ID at the counter. The personal data never reaches the
// terminal: the eID server hands it to the procedure under the session
// reference recorded here.
func (r *Run) identify() error {
	r.view = View{Step: StepIdentify, Message: MsgIdentifyStart}
	res := casefile.EIDResult{Result: "failed"}
	events, quit := make(chan any), make(chan struct{})
	r.bg.Go(func() { r.runWorkflow(events, quit) })
	defer close(quit) // the workflow goroutine cancels what still runs

	var (
		wf        *eid.Workflow
		pinWanted bool
		prompts   int  // PIN prompts so far: a second one means a wrong PIN
		failing   bool // the flow cancelled the workflow itself
	)
	call := func(f func(ctx context.Context) error) error {
		ctx, cancel := context.WithTimeout(r.ctx, r.cfg.Timeouts.Abort)
		defer cancel()
		return f(ctx)
	}
	giveUp := func(why string) {
		r.log.Info("eID identification given up", "reason", why)
		failing = true
		r.view.Message, r.view.Args = MsgIdentifyFailed, nil
		r.show()
		if wf != nil {
			if err := call(wf.Cancel); err != nil {
				r.log.Warn("cannot cancel the eID workflow", "err", err)
			}
		}
	}
	err := r.wait(waiter{timeout: r.cfg.Timeouts.Identify, events: events, input: func(in Input) (bool, error) {
		switch in := in.(type) {
		case Skip:
			res.Result = "skipped"
			r.log.Info("eID identification skipped")
			return true, nil
		case EnterPIN:
			if !pinWanted || wf == nil {
				break
			}
			err := call(func(ctx context.Context) error { return wf.SetPIN(ctx, in.PIN) })
			if errors.Is(err, eid.ErrFormat) {
				return false, fmt.Errorf("flow: %w: the PIN has 6 digits", ErrRefused)
			}
			if err != nil {
				giveUp(err.Error())
				return false, nil
			}
			pinWanted = false
			r.view.Message, r.view.Args = MsgIdentifyReading, nil
			r.show()
			return false, nil
		}
		return false, r.refuse(in)
	}, event: func(ev any) (bool, error) {
		switch ev := ev.(type) {
		case authStarted:
			if ev.err != nil {
				r.log.Warn("cannot start eID identification; going on without it", "err", ev.err)
				r.view.Message = MsgIdentifyFailed
				r.show()
				return true, nil
			}
			wf = ev.wf
			return false, nil
		case eid.Event:
			if failing && ev.Kind != eid.EventDone {
				return false, nil
			}
			switch ev.Kind {
			case eid.EventAccessRights:
				if err := call(wf.Accept); err != nil {
					giveUp(err.Error())
				}
			case eid.EventInsertCard:
				r.view.Message, r.view.Args = MsgIdentifyInsertCard, nil
				r.arm(r.cfg.Timeouts.Identify, false)
				r.show()
			case eid.EventReader:
				if rd := ev.Message.Reader; rd != nil && rd.Card != nil && rd.Card.Deactivated {
					r.view.Message, r.view.Args = MsgIdentifyCardDeactivated, nil
					r.show()
				}
			case eid.EventEnterPIN:
				prompts++
				rd := ev.Message.Reader
				r.view.Message, r.view.Args = MsgIdentifyEnterPIN, nil
				if rd != nil && rd.Keypad {
					r.view.Message = MsgIdentifyEnterPINReader
				}
				if prompts > 1 && ev.Message.Error == "" {
					left := 0
					if rd != nil && rd.Card != nil {
						left = rd.Card.RetryCounter
					}
					r.view.Message, r.view.Args = MsgIdentifyWrongPIN, map[string]string{"left": strconv.Itoa(left)}
				}
				r.arm(r.cfg.Timeouts.Identify, false)
				r.show()
				if rd != nil && rd.Keypad {
					if err := call(func(ctx context.Context) error { return wf.SetPIN(ctx, "") }); err != nil {
						giveUp(err.Error())
					}
				} else {
					pinWanted = true
				}
			case eid.EventEnterCAN, eid.EventEnterPUK, eid.EventEnterNewPIN:
				// The card wants its CAN or PUK: a matter for the counter.
				giveUp("the card asks for " + ev.Kind.String())
			case eid.EventInternalError:
				giveUp("the AusweisApp reported an internal error: " + ev.Message.Error)
			case eid.EventDone:
				res = eidResult(ev.Outcome, ev.Err)
				if failing && res.Result != "ok" {
					res.Result = "failed"
				}
				r.log.Info("eID identification ended", "result", res.Result, "minor", res.Minor)
				return true, nil
			}
		}
		return false, nil
	}})
	res.At = casefile.At(r.clock.Now())
	r.app.EID = &res
	return err
}

// authStarted is the answer to RUN_AUTH.
type authStarted struct {
	wf  *eid.Workflow
	err error
}

// runWorkflow starts the authentication and forwards its events to the
// step until the step ends (quit); then it cancels a workflow that still
// runs and reads it to its end, so that the AusweisApp is free for the
// next citizen. Every wait is bounded by Timeouts.Abort.
func (r *Run) runWorkflow(events chan<- any, quit <-chan struct{}) {
	abort := r.cfg.Timeouts.Abort
	ctx, cancel := context.WithTimeout(context.Background(), abort)
	wf, err := r.deps.EID.Auth(ctx, r.cfg.EID.TCTokenURL)
	cancel()
	if !deliver(quit, events, authStarted{wf, err}) || err != nil {
		if err == nil {
			r.endWorkflow(wf, abort)
		}
		return
	}
	for {
		select {
		case ev, ok := <-wf.Events():
			if !ok {
				return
			}
			if !deliver(quit, events, ev) {
				r.endWorkflow(wf, abort)
				return
			}
			if ev.Kind == eid.EventDone {
				return
			}
		case <-quit:
			r.endWorkflow(wf, abort)
			return
		}
	}
}

// endWorkflow cancels a workflow and reads its events until it ends, for
// at most abort.
func (r *Run) endWorkflow(wf *eid.Workflow, abort time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), abort)
	defer cancel()
	if err := wf.Cancel(ctx); err != nil {
		r.log.Warn("cannot cancel the eID workflow", "err", err)
	}
	for {
		select {
		case _, ok := <-wf.Events():
			if !ok {
				return
			}
		case <-ctx.Done():
			r.log.Warn("the eID workflow did not end after it was cancelled", "after", abort)
			return
		}
	}
}

// eidResult is the casefile's summary of a workflow's outcome.
func eidResult(o *eid.Outcome, err error) casefile.EIDResult {
	res := casefile.EIDResult{Result: "failed"}
	if o == nil {
		return res
	}
	if o.Result != nil {
		res.Major, res.Minor = clip(o.Result.Major), clip(o.Result.Minor)
	}
	switch {
	case o.OK && err == nil:
		res.Result = "ok"
		res.Session = clip(sessionRef(o.URL))
	case o.Reason == "User_Cancelled" || strings.HasSuffix(res.Minor, "#cancellationByUser"):
		res.Result = "cancelled"
	}
	return res
}

// sessionRef is the eID server's reference in the result URL (its refID
// parameter), or the URL itself.
func sessionRef(u string) string {
	if p, err := url.Parse(u); err == nil {
		if ref := p.Query().Get("refID"); ref != "" {
			return ref
		}
	}
	return u
}

// clip keeps a text within the casefile's limit for short texts.
func clip(s string) string {
	if len(s) > casefile.MaxText {
		return s[:casefile.MaxText]
	}
	return s
}
