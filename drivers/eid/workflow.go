package eid

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/kogge-fleet/kogge/drivers"
)

// EventKind says what the app wants or reports.
type EventKind int

// The events of a workflow.
const (
	// EventAccessRights: show the requested rights (Message.AccessRights),
	// then Accept or Cancel.
	EventAccessRights EventKind = iota + 1
	// EventInsertCard: ask the citizen to place the card on the reader.
	EventInsertCard
	// EventReader: a reader or its card changed (Message.Reader). A card
	// with Deactivated set cannot be used: ask for another or Cancel.
	EventReader
	// EventEnterPIN, EventEnterNewPIN, EventEnterCAN, EventEnterPUK: ask
	// for it and answer with SetPIN, SetNewPIN, SetCAN, SetPUK.
	// Message.Reader has the retry counter; Message.Error is set when the
	// last value was refused without counting as an attempt.
	EventEnterPIN
	EventEnterNewPIN
	EventEnterCAN
	EventEnterPUK
	// EventProgress: the app's progress (Message.Progress).
	EventProgress
	// EventPause: the app waits for a condition (Message.Cause).
	EventPause
	// EventRejected: the app refused a command (BAD_STATE, INVALID or
	// UNKNOWN_COMMAND; Message.Error names it).
	EventRejected
	// EventInternalError: the app hit a bug (Message.Error).
	EventInternalError
	// EventDone: the workflow ended; Outcome is set. It is the last event.
	EventDone
)

var eventNames = map[EventKind]string{
	EventAccessRights: "access-rights", EventInsertCard: "insert-card", EventReader: "reader",
	EventEnterPIN: "enter-pin", EventEnterNewPIN: "enter-new-pin", EventEnterCAN: "enter-can",
	EventEnterPUK: "enter-puk", EventProgress: "progress", EventPause: "pause",
	EventRejected: "rejected", EventInternalError: "internal-error", EventDone: "done",
}

func (k EventKind) String() string {
	if n, ok := eventNames[k]; ok {
		return n
	}
	return fmt.Sprintf("event(%d)", int(k))
}

// Event is one step of a workflow.
type Event struct {
	Kind EventKind
	// Message is the app's message behind the event (empty for EventDone
	// after a lost connection or a timeout).
	Message Message
	// Outcome for EventDone.
	Outcome *Outcome
	// Err for EventDone when the workflow ended without an outcome from
	// the app (drivers.ErrTimeout, drivers.ErrDisconnected).
	Err error
}

// Outcome is how a workflow ended.
type Outcome struct {
	Workflow string // MsgAuth or MsgChangePIN
	OK       bool
	// Result and URL of an authentication: the back end fetches the data
	// (or the error) behind URL from the eID server.
	Result *Result
	URL    string
	// Reason is the app's failure code ("Card_Removed", "User_Cancelled").
	Reason string
	// TimedOut is set when the client cancelled the workflow because
	// Options.WorkflowTimeout passed.
	TimedOut bool
}

// Workflow is a running authentication or PIN change. Read Events until
// EventDone (or call Wait); answer prompts with its methods. Methods check
// the workflow's state and the input's digits before they send anything:
// they return ErrBadState when the app has not asked for that input and
// ErrFormat for a wrong number of digits.
type Workflow struct {
	c      *Client
	kind   string
	events chan Event
	wake   chan struct{}
	done   chan struct{}

	mu       sync.Mutex
	queue    []Event
	prompt   string  // the ENTER_* or ACCESS_RIGHTS message awaiting an answer
	reader   *Reader // the reader of the last prompt
	outcome  Outcome
	err      error
	finished bool
	timedOut bool
}

func newWorkflow(c *Client, kind string) *Workflow {
	return &Workflow{c: c, kind: kind, events: make(chan Event), wake: make(chan struct{}, 1), done: make(chan struct{})}
}

// Kind is MsgAuth or MsgChangePIN.
func (w *Workflow) Kind() string { return w.kind }

// Events delivers the workflow's events in order. The channel is closed
// after EventDone, or when the client closes.
func (w *Workflow) Events() <-chan Event { return w.events }

// Done is closed when the workflow has ended.
func (w *Workflow) Done() <-chan struct{} { return w.done }

// Wait blocks until the workflow ends and returns its outcome. The error is
// set only when the app gave no outcome: the connection was lost
// (drivers.ErrDisconnected) or the cancelled workflow did not end in time
// (drivers.ErrTimeout). A cancelled or failed workflow is an Outcome with
// OK false.
func (w *Workflow) Wait(ctx context.Context) (Outcome, error) {
	select {
	case <-w.done:
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.outcome, w.err
	case <-ctx.Done():
		return Outcome{}, ctx.Err()
	}
}

// Accept accepts the requested access rights.
func (w *Workflow) Accept(ctx context.Context) error {
	if err := w.take(MsgAccessRights, "accept the access rights"); err != nil {
		return err
	}
	return w.c.send(ctx, Command{Cmd: CmdAccept})
}

// SetAccessRights enables only the given optional rights (none for an
// empty list) and returns the rights now in effect.
func (w *Workflow) SetAccessRights(ctx context.Context, optional []string) (AccessRights, error) {
	if err := w.check(MsgAccessRights, "set the access rights"); err != nil {
		return AccessRights{}, err
	}
	if optional == nil {
		optional = []string{}
	}
	m, err := w.c.request(ctx, Command{Cmd: CmdSetAccessRights, Chat: optional}, []string{MsgAccessRights}, nil, nil)
	if err != nil {
		return AccessRights{}, fmt.Errorf("set access rights: %w", err)
	}
	if m.Error != "" {
		return *m.AccessRights, fmt.Errorf("set access rights: %w: %s", ErrBadState, m.Error)
	}
	return *m.AccessRights, nil
}

// Certificate returns the service provider's certificate (after
// EventAccessRights).
func (w *Workflow) Certificate(ctx context.Context) (Certificate, error) {
	m, err := w.c.request(ctx, Command{Cmd: CmdGetCertificate}, []string{MsgCertificate}, nil, nil)
	if err != nil {
		return Certificate{}, fmt.Errorf("get the provider's certificate: %w", err)
	}
	return *m.Certificate, nil
}

// SetPIN answers EventEnterPIN: 6 digits (5 or 6 in a PIN change, for a
// transport PIN), or "" when the reader has a keypad.
func (w *Workflow) SetPIN(ctx context.Context, pin string) error {
	lo := 6
	if w.kind == MsgChangePIN {
		lo = 5
	}
	return w.secret(ctx, MsgEnterPIN, CmdSetPIN, "PIN", pin, lo, 6)
}

// SetNewPIN answers EventEnterNewPIN: 6 digits, or "" with a keypad.
func (w *Workflow) SetNewPIN(ctx context.Context, pin string) error {
	return w.secret(ctx, MsgEnterNewPIN, CmdSetNewPIN, "new PIN", pin, 6, 6)
}

// SetCAN answers EventEnterCAN: the 6 digits printed on the card.
func (w *Workflow) SetCAN(ctx context.Context, can string) error {
	return w.secret(ctx, MsgEnterCAN, CmdSetCAN, "CAN", can, 6, 6)
}

// SetPUK answers EventEnterPUK: 10 digits.
func (w *Workflow) SetPUK(ctx context.Context, puk string) error {
	return w.secret(ctx, MsgEnterPUK, CmdSetPUK, "PUK", puk, 10, 10)
}

func (w *Workflow) secret(ctx context.Context, prompt, cmd, what, value string, lo, hi int) error {
	w.mu.Lock()
	keypad := w.reader != nil && w.reader.Keypad
	w.mu.Unlock()
	c := Command{Cmd: cmd}
	switch {
	case keypad && value != "":
		return fmt.Errorf("set %s: the reader has its own keypad: the %s is entered there", what, what)
	case !keypad && (len(value) < lo || len(value) > hi || !digitsOnly(value)):
		want := fmt.Sprintf("%d", lo)
		if lo != hi {
			want = fmt.Sprintf("%d or %d", lo, hi)
		}
		return fmt.Errorf("set %s: %w: the %s has %s digits", what, ErrFormat, what, want)
	case !keypad:
		c.Value = &value
	}
	if err := w.take(prompt, "set the "+what); err != nil {
		return err
	}
	return w.c.send(ctx, c)
}

// Cancel aborts the workflow; its outcome follows (OK false).
func (w *Workflow) Cancel(ctx context.Context) error {
	if w.ended() {
		return nil
	}
	w.mu.Lock()
	w.prompt = ""
	w.mu.Unlock()
	return w.c.send(ctx, Command{Cmd: CmdCancel})
}

// Interrupt stops the system's card dialog while a PIN, CAN or PUK is
// asked for (the app knows such dialogs only on iOS).
func (w *Workflow) Interrupt(ctx context.Context) error {
	w.mu.Lock()
	p := w.prompt
	w.mu.Unlock()
	if p == "" || p == MsgAccessRights {
		return fmt.Errorf("interrupt: %w: the app asks for no PIN, CAN or PUK", ErrBadState)
	}
	return w.c.send(ctx, Command{Cmd: CmdInterrupt})
}

// SetCard inserts a simulated card into reader (the app's "Simulator"
// reader, or any insertable one); sim may be nil for the default card.
func (w *Workflow) SetCard(ctx context.Context, reader string, sim *SimulatorCard) error {
	if w.ended() {
		return fmt.Errorf("set card: %w: the workflow has ended", ErrBadState)
	}
	return w.c.send(ctx, Command{Cmd: CmdSetCard, Name: reader, Simulator: sim})
}

// take checks that prompt is what the app waits for and clears it, so
// that one prompt is answered once.
func (w *Workflow) take(prompt, what string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.finished {
		return fmt.Errorf("%s: %w: the workflow has ended", what, ErrBadState)
	}
	if w.prompt != prompt {
		return fmt.Errorf("%s: %w: the app waits for %s", what, ErrBadState, orNothing(w.prompt))
	}
	w.prompt = ""
	return nil
}

func (w *Workflow) check(prompt, what string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.finished || w.prompt != prompt {
		return fmt.Errorf("%s: %w: the app waits for %s", what, ErrBadState, orNothing(w.prompt))
	}
	return nil
}

func orNothing(p string) string {
	if p == "" {
		return "nothing from you"
	}
	return p
}

func (w *Workflow) ended() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.finished
}

// handle turns a message into an event; it runs in the read loop.
func (w *Workflow) handle(m Message) {
	var k EventKind
	switch m.Type {
	case MsgAccessRights:
		k = EventAccessRights
	case MsgInsertCard:
		k = EventInsertCard
	case MsgReader:
		k = EventReader
	case MsgEnterPIN:
		k = EventEnterPIN
	case MsgEnterNewPIN:
		k = EventEnterNewPIN
	case MsgEnterCAN:
		k = EventEnterCAN
	case MsgEnterPUK:
		k = EventEnterPUK
	case MsgStatus:
		k = EventProgress
	case MsgPause:
		k = EventPause
	case MsgBadState, MsgInvalid, MsgUnknownCommand:
		k = EventRejected
	case MsgInternalError:
		k = EventInternalError
	default:
		return
	}
	w.mu.Lock()
	switch k {
	case EventAccessRights, EventEnterPIN, EventEnterNewPIN, EventEnterCAN, EventEnterPUK:
		w.prompt = m.Type
		if m.Reader != nil {
			r := *m.Reader
			w.reader = &r
		}
	case EventInsertCard:
		w.prompt = ""
	}
	w.queue = append(w.queue, Event{Kind: k, Message: m})
	w.mu.Unlock()
	w.poke()
}

// finish records the outcome; it runs with the client's lock held.
func (w *Workflow) finish(o Outcome, err error) {
	w.mu.Lock()
	if w.finished {
		w.mu.Unlock()
		return
	}
	w.finished = true
	w.prompt = ""
	if w.timedOut {
		o.TimedOut = true
		if err == nil && !o.OK {
			err = fmt.Errorf("workflow cancelled after %v: %w", w.c.opts.WorkflowTimeout, drivers.ErrTimeout)
		}
	}
	w.outcome, w.err = o, err
	oc := o
	w.queue = append(w.queue, Event{Kind: EventDone, Outcome: &oc, Err: err})
	close(w.done)
	w.mu.Unlock()
	w.poke()
}

func (w *Workflow) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// pump delivers queued events and enforces the workflow timeout; the
// client owns it.
func (w *Workflow) pump() {
	defer w.c.wg.Done()
	defer close(w.events)
	timeout := time.NewTimer(w.c.opts.WorkflowTimeout)
	defer timeout.Stop()
	var grace <-chan time.Time
	for {
		w.mu.Lock()
		var next *Event
		if len(w.queue) > 0 {
			next = &w.queue[0]
			w.queue = w.queue[1:]
		}
		w.mu.Unlock()
		if next != nil {
			select {
			case w.events <- *next:
				if next.Kind == EventDone {
					return
				}
				continue
			case <-w.c.done:
				return
			case <-timeout.C:
				grace = w.expire()
				w.mu.Lock()
				w.queue = append([]Event{*next}, w.queue...)
				w.mu.Unlock()
				continue
			case <-grace:
				w.giveUp()
				w.mu.Lock()
				w.queue = append([]Event{*next}, w.queue...)
				w.mu.Unlock()
				continue
			}
		}
		select {
		case <-w.wake:
		case <-w.c.done:
			return
		case <-timeout.C:
			grace = w.expire()
		case <-grace:
			w.giveUp()
		}
	}
}

// expire cancels a workflow that ran too long; the app then ends it.
func (w *Workflow) expire() <-chan time.Time {
	w.mu.Lock()
	if w.finished {
		w.mu.Unlock()
		return nil
	}
	w.timedOut = true
	w.mu.Unlock()
	w.c.log.Warn("eid: workflow timed out; cancelling it", "workflow", w.kind, "after", w.c.opts.WorkflowTimeout)
	ctx, cancel := context.WithTimeout(context.Background(), w.c.opts.ReplyTimeout)
	defer cancel()
	if err := w.c.send(ctx, Command{Cmd: CmdCancel}); err != nil {
		w.c.log.Warn("eid: cancel after timeout failed", "err", err)
	}
	return time.After(w.c.opts.ReplyTimeout)
}

// giveUp ends a timed-out workflow that the app did not end after CANCEL.
func (w *Workflow) giveUp() {
	w.c.mu.Lock()
	defer w.c.mu.Unlock()
	w.c.finishLocked(w, Message{}, fmt.Errorf("workflow did not end after cancel: %w", drivers.ErrTimeout))
}
