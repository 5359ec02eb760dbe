package flow

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/agent"
	"github.com/kogge-fleet/kogge/protocol/casefile"
)

// Flow starts the sessions of one office's terminal.
type Flow struct {
	cfg  Config
	deps Deps
}

// New checks cfg and deps and returns the flow.
func New(cfg Config, deps Deps) (*Flow, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("flow configuration: %w", err)
	}
	if err := deps.check(cfg); err != nil {
		return nil, err
	}
	cfg.Languages = slices.Clone(cfg.Languages)
	cfg.Documents = slices.Clone(cfg.Documents)
	return &Flow{cfg: cfg, deps: deps}, nil
}

// Config returns the flow's configuration.
func (f *Flow) Config() Config { return f.cfg }

// SessionOptions is what is known about a citizen before the session.
type SessionOptions struct {
	// DateOfBirth, when known, applies the under-6 rule: no fingerprints
	// from a child younger than Config.Finger.MinAgeYears. Zero: unknown,
	// fingerprints are taken.
	DateOfBirth time.Time
}

// Outcome is how a session ended.
type Outcome struct {
	// Number is the session's application number.
	Number string
	// End is StepReceipt, StepCounter or StepCancelled; Message the end
	// screen's message key.
	End     Step
	Message string
	// Counter lists what the clerk completes at the counter.
	Counter []string
	// Saved is set once the application is durable on the device; Record
	// is then its record id.
	Saved  bool
	Record uuid.UUID
	// Printed is set when the receipt printed.
	Printed bool
	// TimedOut is set for a session cancelled for lack of input.
	TimedOut bool
}

// Errors of Send.
var (
	// ErrRefused is wrapped by Send's error when the input does not fit
	// the session's current step; the UI ignores it.
	ErrRefused = errors.New("input does not fit the current step")
	// ErrEnded is Send's error after the session has ended.
	ErrEnded = errors.New("the session has ended")
)

// Run is one citizen's session. It implements Session. Its goroutine
// starts with Begin and ends after the end screen; the owner waits for
// Done before it lets the flow's peripherals go.
type Run struct {
	cfg    Config
	deps   Deps
	log    *slog.Logger
	clock  Clock
	number string

	ctx    context.Context
	cancel context.CancelFunc
	inputs chan request
	timers chan timerEvent
	views  chan View
	done   chan struct{}
	bg     sync.WaitGroup // work that may outlive a step (ending an eID workflow)

	// Owned by the session's goroutine.
	view      View
	steps     []Step
	lang      string
	chosen    []string
	fee       int64
	gen       uint64
	stops     []func() bool
	noFingers bool
	scanner   bool // the scanner failed for good in this session
	paid      bool
	consent   bool
	saveErr   error
	record    uuid.UUID
	app       casefile.Application
	blobs     []agent.Blob
	held      held
	outcome   Outcome
}

var _ Session = (*Run)(nil)

type request struct {
	in    Input
	reply chan error
}

type timerEvent struct {
	gen  uint64
	warn bool
}

// Begin gives the session its application number and starts it at the
// welcome screen. Ending ctx cancels the session (and wipes it).
func (f *Flow) Begin(ctx context.Context, opts SessionOptions) (*Run, error) {
	now := f.deps.Clock.Now()
	number, err := f.deps.Numbers.Next(ctx, now)
	if err != nil {
		return nil, fmt.Errorf("start a session: %w", err)
	}
	rctx, cancel := context.WithCancel(ctx)
	r := &Run{
		cfg: f.cfg, deps: f.deps, clock: f.deps.Clock, number: number,
		log:    f.deps.Logger.With("application", number),
		ctx:    rctx,
		cancel: cancel,
		inputs: make(chan request),
		timers: make(chan timerEvent),
		views:  make(chan View, 1),
		done:   make(chan struct{}),
	}
	r.noFingers = childTooYoung(opts.DateOfBirth, now.In(f.cfg.Location), f.cfg.Finger.MinAgeYears)
	r.steps = []Step{StepLanguage, StepDocuments}
	if f.cfg.EID.Enabled {
		r.steps = append(r.steps, StepIdentify)
	}
	r.steps = append(r.steps, StepPhoto)
	if !r.noFingers {
		r.steps = append(r.steps, StepFingerRight, StepFingerLeft)
	}
	r.steps = append(r.steps, StepSignature)
	if !f.cfg.PayAtCounter {
		r.steps = append(r.steps, StepPayment)
	}
	r.steps = append(r.steps, StepReview, StepReceipt)
	go r.main()
	return r, nil
}

// childTooYoung reports whether a child born on dob is younger than years
// on today; false when dob is unknown (zero).
func childTooYoung(dob, today time.Time, years int) bool {
	if dob.IsZero() || years <= 0 {
		return false
	}
	y, m, d := dob.Date()
	ty, tm, td := today.Date()
	birthday := time.Date(y+years, m, d, 0, 0, 0, 0, time.UTC)
	return time.Date(ty, tm, td, 0, 0, 0, 0, time.UTC).Before(birthday)
}

// Number is the session's application number.
func (r *Run) Number() string { return r.number }

// Views implements Session.
func (r *Run) Views() <-chan View { return r.views }

// Done is closed when the session has ended, been wiped and its goroutines
// have stopped.
func (r *Run) Done() <-chan struct{} { return r.done }

// Outcome returns how the session ended; valid once Done is closed.
func (r *Run) Outcome() Outcome {
	<-r.done
	return r.outcome
}

// Stop ends the session at once, as when the terminal shuts down: it is
// wiped and shows no end screen. Done follows.
func (r *Run) Stop() { r.cancel() }

// Wait waits for the session's end and returns its outcome.
func (r *Run) Wait(ctx context.Context) (Outcome, error) {
	select {
	case <-r.done:
		return r.outcome, nil
	case <-ctx.Done():
		return Outcome{}, ctx.Err()
	}
}

// Send implements Session.
func (r *Run) Send(in Input) error {
	if in == nil {
		return fmt.Errorf("flow: %w: no input", ErrRefused)
	}
	req := request{in: in, reply: make(chan error, 1)}
	select {
	case r.inputs <- req:
	case <-r.done:
		return ErrEnded
	}
	select {
	case err := <-req.reply:
		return err
	case <-r.done:
		select { // an answer given just before the end wins
		case err := <-req.reply:
			return err
		default:
			return ErrEnded
		}
	}
}

// endSession unwinds the steps: the citizen cancelled, a step timed out,
// or the terminal shuts down.
type endSession struct {
	timeout  bool
	shutdown bool
}

func (e *endSession) Error() string {
	switch {
	case e.timeout:
		return "session timed out"
	case e.shutdown:
		return "terminal shutting down"
	}
	return "session cancelled"
}

// main runs the session from the welcome screen to its end.
func (r *Run) main() {
	defer close(r.done)
	defer close(r.views)
	defer r.cancel()
	err := r.citizen()
	var end *endSession
	switch {
	case errors.As(err, &end):
		r.log.Info("session cancelled", "timeout", end.timeout, "shutdown", end.shutdown, "step", r.view.Step.String())
		r.wipe()
		r.outcome = Outcome{Number: r.number, End: StepCancelled, Message: MsgCancelled, TimedOut: end.timeout}
		if end.timeout {
			r.outcome.Message = MsgCancelledTimeout
		}
		if !end.shutdown {
			r.endScreen(View{Step: StepCancelled, Message: r.outcome.Message})
		}
	case err != nil:
		// Steps end in the counter rather than fail; this is a bug.
		r.log.Error("session failed", "err", err)
		r.wipe()
		r.outcome = Outcome{Number: r.number, End: StepCounter, Message: MsgCounter, Counter: r.allCounter()}
		r.endScreen(View{Step: StepCounter, Message: MsgCounter, Counter: r.outcome.Counter})
	default:
		r.wipe()
		r.endScreen(View{Step: r.outcome.End, Message: r.outcome.Message, Counter: r.outcome.Counter})
	}
	r.bg.Wait()
}

// citizen runs the steps in order; nil when the session reached its end
// screen's decision (r.outcome), an *endSession when it was cancelled.
func (r *Run) citizen() error {
	if err := r.welcome(); err != nil {
		return err
	}
	if err := r.language(); err != nil {
		return err
	}
	if err := r.documents(); err != nil {
		return err
	}
	if r.cfg.EID.Enabled {
		if err := r.identify(); err != nil {
			return err
		}
	}
	if err := r.photo(); err != nil {
		return err
	}
	if !r.noFingers {
		if err := r.finger(StepFingerRight, casefile.FingerRightIndex); err != nil {
			return err
		}
		if err := r.finger(StepFingerLeft, casefile.FingerLeftIndex); err != nil {
			return err
		}
	}
	if err := r.signature(); err != nil {
		return err
	}
	if slices.Contains(r.steps, StepPayment) {
		if err := r.payment(); err != nil {
			return err
		}
	}
	if err := r.review(); err != nil {
		return err
	}
	r.save()
	printed := r.print()
	r.outcome = r.decide(printed)
	return nil
}

// decide picks the end screen.
func (r *Run) decide(printed bool) Outcome {
	o := Outcome{Number: r.number, Printed: printed, Counter: slices.Clone(r.app.Counter)}
	if r.saveErr == nil {
		o.Saved, o.Record = true, r.record
	}
	o.End, o.Message = StepCounter, MsgCounter
	switch {
	case r.saveErr != nil:
		o.Message = MsgCounterSaveFailed
	case !r.consent:
		o.Message = MsgCounterConsentRefused
	case len(o.Counter) > 0:
	case !printed:
		o.Message = MsgCounterNoReceipt
	case !r.paid && r.fee > 0:
		o.End, o.Message = StepReceipt, MsgReceiptPayAtCounter
	default:
		o.End, o.Message = StepReceipt, MsgReceipt
	}
	return o
}

// toCounter moves item to the counter.
func (r *Run) toCounter(item string) {
	if !slices.Contains(r.app.Counter, item) {
		r.app.Counter = append(r.app.Counter, item)
		r.log.Info("moved to the counter", "item", item)
	}
}

// allCounter is everything the clerk takes when nothing of the session
// can be used.
func (r *Run) allCounter() []string {
	items := []string{CounterFace}
	if !r.noFingers {
		items = append(items, CounterFinger2, CounterFinger7)
	}
	items = append(items, CounterSignature)
	if !r.paid && r.fee > 0 && !r.cfg.PayAtCounter {
		items = append(items, CounterFee)
	}
	return items
}

// endScreen shows an end screen until Next, a touch-free End timeout or
// the terminal's shutdown.
func (r *Run) endScreen(v View) {
	v.Language = r.lang
	r.view = v
	r.wait(waiter{timeout: r.cfg.Timeouts.End, noWarn: true, input: func(in Input) (bool, error) {
		switch in.(type) {
		case Next, Start:
			return true, nil
		}
		return false, r.refuse(in)
	}, cancel: func() (bool, error) { return true, nil }})
}

// refuse is the error for an input that does not fit the current step.
func (r *Run) refuse(in Input) error {
	return fmt.Errorf("flow: %w: %T in step %s", ErrRefused, in, r.view.Step)
}

// waiter describes what a step waits for.
type waiter struct {
	// timeout is the step's inactivity timeout (none when 0); noWarn ends
	// the wait without a warning and without cancelling (end screens).
	timeout time.Duration
	noWarn  bool
	// events are the step's asynchronous results.
	events <-chan any
	// input handles the step's inputs; an error wrapping ErrRefused
	// refuses one, any other error ends the wait with it.
	input func(Input) (done bool, err error)
	event func(any) (done bool, err error)
	// cancel handles Cancel; nil means the session ends.
	cancel func() (done bool, err error)
}

// wait shows the current view and handles inputs, events and the
// timeout until the step is done.
func (r *Run) wait(w waiter) error {
	r.arm(w.timeout, w.noWarn)
	defer r.disarm()
	r.show()
	for {
		select {
		case req := <-r.inputs:
			done, err := r.handle(w, req)
			if done || err != nil {
				return err
			}
		case ev := <-w.events:
			done, err := w.event(ev)
			if done || err != nil {
				return err
			}
		case te := <-r.timers:
			if te.gen != r.gen {
				continue // a timer of an earlier deadline
			}
			if te.warn {
				r.view.Warning, r.view.Remaining = true, r.cfg.Timeouts.Warning
				r.show()
				continue
			}
			if w.noWarn {
				return nil
			}
			return &endSession{timeout: true}
		case <-r.ctx.Done():
			return &endSession{shutdown: true}
		}
	}
}

// handle answers one input.
func (r *Run) handle(w waiter, req request) (bool, error) {
	switch req.in.(type) {
	case Cancel:
		if w.cancel == nil {
			req.reply <- nil
			return false, &endSession{}
		}
		done, err := w.cancel()
		if errors.Is(err, ErrRefused) {
			req.reply <- err
			return false, nil
		}
		req.reply <- nil
		return done, err
	case Touch:
		req.reply <- nil
		r.activity(w)
		return false, nil
	}
	var (
		done bool
		err  error
	)
	if w.input != nil {
		done, err = w.input(req.in)
	} else {
		err = r.refuse(req.in)
	}
	if errors.Is(err, ErrRefused) {
		if lang, ok := req.in.(ChooseLanguage); ok && slices.Contains(r.cfg.Languages, lang.Tag) {
			// The language can change on every screen.
			r.lang, r.view.Language = lang.Tag, lang.Tag
			req.reply <- nil
			r.activity(w)
			r.show()
			return false, nil
		}
		req.reply <- err
		return false, nil
	}
	req.reply <- nil
	if err == nil && !done {
		r.activity(w)
	}
	return done, err
}

// activity restarts the step's timeout after an input and takes back a
// warning.
func (r *Run) activity(w waiter) {
	warned := r.view.Warning
	if w.timeout > 0 {
		r.arm(w.timeout, w.noWarn)
	}
	if warned {
		r.view.Warning, r.view.Remaining = false, 0
		r.show()
	}
}

// arm starts a step's timeout: a warning Timeouts.Warning before it ends.
func (r *Run) arm(timeout time.Duration, noWarn bool) {
	r.disarm()
	r.view.Warning, r.view.Remaining = false, 0
	if timeout <= 0 {
		return
	}
	gen := r.gen
	fire := func(warn bool) func() {
		return func() {
			select {
			case r.timers <- timerEvent{gen: gen, warn: warn}:
			case <-r.done:
			}
		}
	}
	if warn := r.cfg.Timeouts.Warning; !noWarn && warn > 0 && warn < timeout {
		r.stops = append(r.stops, r.clock.AfterFunc(timeout-warn, fire(true)))
	}
	r.stops = append(r.stops, r.clock.AfterFunc(timeout, fire(false)))
}

// disarm stops the timeout; timers that fire anyway are ignored.
func (r *Run) disarm() {
	for _, stop := range r.stops {
		stop()
	}
	r.stops = r.stops[:0]
	r.gen++
}

// show publishes the current view. A reader that is behind loses the
// view it has not taken, never the newest.
func (r *Run) show() {
	v := r.view
	v.Number = r.number
	v.Language = r.lang
	v.Languages = slices.Clone(r.cfg.Languages)
	v.Documents = slices.Clone(v.Documents)
	v.Chosen = slices.Clone(v.Chosen)
	v.Guidance = slices.Clone(v.Guidance)
	v.Candidates = slices.Clone(v.Candidates)
	v.Counter = slices.Clone(v.Counter)
	if v.Args != nil {
		args := make(map[string]string, len(v.Args))
		for k, a := range v.Args {
			args[k] = a
		}
		v.Args = args
	}
	v.Progress, v.Total = r.progress(v.Step)
	for {
		select {
		case r.views <- v:
			return
		default:
			select {
			case <-r.views:
			default:
			}
		}
	}
}

// progress is the step's place among the citizen's steps.
func (r *Run) progress(s Step) (int, int) {
	switch s {
	case StepPhotoChoice:
		s = StepPhoto
	case StepSaving:
		s = StepReview
	case StepReceipt, StepCounter:
		return len(r.steps), len(r.steps)
	}
	return slices.Index(r.steps, s) + 1, len(r.steps)
}

// deliver hands an asynchronous result to the step, unless the step has
// ended (quit closed).
func deliver(quit <-chan struct{}, ch chan<- any, v any) bool {
	select {
	case ch <- v:
		return true
	case <-quit:
		return false
	}
}

// askRetry asks whether to try the step again: Retry (true) or Skip
// (false).
func (r *Run) askRetry(msg string, attempt, attempts int, timeout time.Duration) (bool, error) {
	r.view.Message, r.view.Attempt, r.view.Attempts = msg, attempt, attempts
	r.view.Frame, r.view.Guidance, r.view.Candidates = nil, nil, nil
	again := false
	err := r.wait(waiter{timeout: timeout, input: func(in Input) (bool, error) {
		switch in.(type) {
		case Retry:
			again = true
			return true, nil
		case Skip:
			return true, nil
		}
		return false, r.refuse(in)
	}})
	return again, err
}

// String returns the step's name: welcome, language, documents, identify,
// photo, photo-choice, finger-right, finger-left, signature, payment,
// review, saving, receipt, counter, cancelled, out-of-service.
func (s Step) String() string {
	names := []string{"welcome", "language", "documents", "identify", "photo", "photo-choice", "finger-right",
		"finger-left", "signature", "payment", "review", "saving", "receipt", "counter", "cancelled", "out-of-service"}
	if s >= 0 && int(s) < len(names) {
		return names[s]
	}
	return fmt.Sprintf("step(%d)", int(s))
}
