package flow

import (
	"context"
	"slices"

	"github.com/kogge-fleet/kogge/agent"
	"github.com/kogge-fleet/kogge/protocol/casefile"
)

// welcome waits for a touch on the idle screen; it has no timeout.
func (r *Run) welcome() error {
	r.view = View{Step: StepWelcome, Message: MsgWelcome}
	return r.wait(waiter{input: func(in Input) (bool, error) {
		if _, ok := in.(Start); ok {
			return true, nil
		}
		return false, r.refuse(in)
	}})
}

// language is step 1.
func (r *Run) language() error {
	r.view = View{Step: StepLanguage, Message: MsgLanguage}
	return r.wait(waiter{timeout: r.cfg.Timeouts.Language, input: func(in Input) (bool, error) {
		switch in := in.(type) {
		case ChooseLanguage:
			if slices.Contains(r.cfg.Languages, in.Tag) {
				r.lang = in.Tag
				return true, nil
			}
		case Next:
			if r.lang != "" {
				return true, nil
			}
		}
		return false, r.refuse(in)
	}})
}

// documents is step 2: one or more documents, then Next.
func (r *Run) documents() error {
	r.view = View{Step: StepDocuments, Message: MsgDocuments, Documents: r.cfg.Documents}
	err := r.wait(waiter{timeout: r.cfg.Timeouts.Documents, input: func(in Input) (bool, error) {
		switch in := in.(type) {
		case ToggleDocument:
			if !slices.Contains(r.cfg.Documents, in.Kind) {
				break
			}
			if i := slices.Index(r.chosen, in.Kind); i >= 0 {
				r.chosen = slices.Delete(r.chosen, i, i+1)
			} else {
				r.chosen = append(r.chosen, in.Kind)
				// In the office's order, so the first is the service.
				slices.SortFunc(r.chosen, func(a, b string) int {
					return slices.Index(r.cfg.Documents, a) - slices.Index(r.cfg.Documents, b)
				})
			}
			r.view.Chosen, r.view.Message = r.chosen, MsgDocuments
			r.show()
			return false, nil
		case Next:
			if len(r.chosen) > 0 {
				return true, nil
			}
			r.view.Message = MsgDocumentsNone
			r.show()
			return false, nil
		}
		return false, r.refuse(in)
	}})
	if err != nil {
		return err
	}
	r.fee = r.cfg.fee(r.chosen)
	if r.fee == 0 {
		// Nothing to pay: no payment step.
		r.steps = slices.DeleteFunc(r.steps, func(s Step) bool { return s == StepPayment })
	}
	return nil
}

// review is step 9: the summary, then consent given or refused.
func (r *Run) review() error {
	r.view = View{Step: StepReview, Message: MsgReview, Chosen: r.chosen, FeeCents: r.fee, Counter: r.app.Counter}
	return r.wait(waiter{timeout: r.cfg.Timeouts.Review, input: func(in Input) (bool, error) {
		if c, ok := in.(Consent); ok {
			r.consent = c.Given
			now := casefile.At(r.clock.Now())
			r.app.Consent = append(r.app.Consent, casefile.Consent{Name: "processing", Given: c.Given, At: now})
			if r.fingersTaken() {
				r.app.Consent = append(r.app.Consent, casefile.Consent{Name: "fingerprints", Given: c.Given, At: now})
			}
			return true, nil
		}
		return false, r.refuse(in)
	}})
}

func (r *Run) fingersTaken() bool {
	for _, f := range r.app.Finger {
		if f.Selected {
			return true
		}
	}
	return false
}

// save is step 10: the application goes to the agent, which seals it and
// stores it durably. It cannot be cancelled. Without consent only the
// number, the documents, the eID result and the fee are saved, so that the
// clerk finds the payment, and everything moves to the counter.
func (r *Run) save() {
	r.view = View{Step: StepSaving, Message: MsgSaving, Chosen: r.chosen, FeeCents: r.fee}
	a := r.app
	a.V = casefile.Version
	a.Number = r.number
	a.Service = r.chosen[0]
	a.Documents = slices.Clone(r.chosen)
	a.CreatedAt = casefile.At(r.clock.Now())
	a.Terminal = r.cfg.Terminal
	a.Language = r.lang
	blobs := r.blobs
	if !r.consent {
		a.Face, a.Finger, a.Signature = nil, nil, nil
		a.Counter = r.allCounter()
		blobs = nil
	}
	r.app = a
	body, err := casefile.Encode(&a)
	if err != nil {
		r.fail(err)
		return
	}
	r.held.bytes(body)
	c := agent.Capture{Kind: casefile.KindApplication, Office: r.cfg.Office, Body: body, Blobs: blobs,
		Meta: map[string]string{"service": a.Service}}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.ctx), r.cfg.Timeouts.Save)
	defer cancel()
	rec, err := busy(r, func() (agent.Receipt, error) { return r.deps.Saver.Capture(ctx, c) })
	if err != nil {
		r.fail(err)
		return
	}
	r.record = rec.ID
	r.log.Info("application saved", "record", rec.ID, "counter", len(r.app.Counter))
}

// busy runs f, which is bounded by its own context, while the screen
// shows the current view: a touch is taken, any other input refused, and
// even a shutdown waits for f, so that nothing is half done.
func busy[T any](r *Run, f func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := f()
		ch <- result{v, err}
	}()
	r.show()
	for {
		select {
		case res := <-ch:
			return res.v, res.err
		case req := <-r.inputs:
			if _, ok := req.in.(Touch); ok {
				req.reply <- nil
				continue
			}
			req.reply <- r.refuse(req.in)
		case <-r.timers:
			// A timer of an earlier step that fired as it ended.
		}
	}
}

// fail records that the application could not be saved: the clerk takes
// everything at the counter.
func (r *Run) fail(err error) {
	r.saveErr = err
	r.log.Error("cannot save the application; everything moves to the counter", "err", err)
	r.app.Counter = r.allCounter()
}
