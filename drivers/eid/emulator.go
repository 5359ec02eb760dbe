package eid

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// EmulatedCard is an eID card in the [Emulator]: its secrets, its PIN retry
// counter and the scripted faults.
type EmulatedCard struct {
	PIN string // 6 digits (5 for a transport PIN)
	CAN string // 6 digits, printed on the card
	PUK string // 10 digits
	// RetryCounter is the PIN attempts left: 3, 2, 1 (the CAN is asked
	// first) or 0 (the PUK is asked).
	RetryCounter int
	// Deactivated cards have the eID function switched off: the workflow
	// waits for another card.
	Deactivated bool
	// Inoperative cards have used up their PUK: a correct PUK is answered
	// with ENTER_PUK and inoperative set.
	Inoperative bool
	// PullAfterPIN pulls the card out right after a correct PIN, while the
	// data would be read: the workflow ends with Card_Removed.
	PullAfterPIN bool
}

// DefaultCard returns a working card: PIN 123456, CAN 500540, PUK
// 9876543210, three attempts.
func DefaultCard() EmulatedCard {
	return EmulatedCard{PIN: "123456", CAN: "500540", PUK: "9876543210", RetryCounter: 3}
}

// EmulatedReader is a card reader of the [Emulator].
type EmulatedReader struct {
	Name string
	// Keypad readers take the PIN on their own pad: SET_PIN comes without
	// a value and the emulator takes it as the correct one.
	Keypad bool
	// Insertable readers accept SET_CARD.
	Insertable bool
}

// EmulatorOptions describe the emulated AusweisApp.
type EmulatorOptions struct {
	// Readers default to one insertable reader without keypad named
	// "Kogge Virtual Reader".
	Readers []EmulatedReader
	// SetCard is the card that SET_CARD inserts (default DefaultCard()).
	SetCard *EmulatedCard
	// ServiceURL is the tcTokenURL prefix of the simulated eID service
	// ("https://eid.kogge.test/"). RUN_AUTH with any other URL fails as
	// the real app fails when it cannot reach the eID server.
	ServiceURL string
	// AccessRights the service asks for.
	AccessRights AccessRights
	// Certificate of the service.
	Certificate Certificate
	// APILevels offered ([1 2]); the highest is current at first.
	APILevels []int
}

func (o EmulatorOptions) withDefaults() EmulatorOptions {
	if len(o.Readers) == 0 {
		o.Readers = []EmulatedReader{{Name: "Kogge Virtual Reader", Insertable: true}}
	}
	if o.SetCard == nil {
		c := DefaultCard()
		o.SetCard = &c
	}
	if o.ServiceURL == "" {
		o.ServiceURL = "https://eid.kogge.test/"
	}
	if o.AccessRights.Required == nil && o.AccessRights.Optional == nil {
		o.AccessRights = AccessRights{
			Required: []string{"FamilyName", "GivenNames", "DateOfBirth", "Address"},
			Optional: []string{"DoctoralDegree"},
		}
		o.AccessRights.Effective = append(slices.Clone(o.AccessRights.Required), o.AccessRights.Optional...)
	}
	if o.Certificate.SubjectName == "" {
		o.Certificate = Certificate{
			IssuerName: "Kogge Test DVCA", IssuerURL: "https://eid.kogge.test",
			SubjectName: "Bürgeramt Kogge (Test)", SubjectURL: "https://eid.kogge.test",
			Purpose: "Antrag auf ein Ausweisdokument", TermsOfUsage: "Test service; no personal data leaves the simulator.",
			EffectiveDate: "2026-01-01", ExpirationDate: "2026-12-31",
		}
	}
	if len(o.APILevels) == 0 {
		o.APILevels = []int{1, 2}
	}
	return o
}

// ErrAttached is returned by [Emulator.Attach] while another client is
// attached; the simulator answers it with HTTP 429 like the real app.
var ErrAttached = errors.New("another client is attached")

// Emulator is the AusweisApp SDK's documented state machine in memory: it
// takes commands and emits the messages the real app would send, with
// scripted cards (PIN retry counter, CAN at 1, PUK at 0, deactivated cards,
// cards pulled mid-read). [Fake] runs the real [Client] over it; the device
// simulator serves it over a WebSocket. It is safe for concurrent use; it
// calls the attached output function with its lock held, so that function
// must not call back into the emulator.
type Emulator struct {
	mu      sync.Mutex
	opts    EmulatorOptions
	out     func(Message)
	readers []*emuReader
	level   int
	wf      *emuWorkflow
	refs    int // result URL counter
}

type emuReader struct {
	EmulatedReader
	card     *EmulatedCard
	detached bool
}

// Emulated workflow states.
const (
	stAccessRights = "ACCESS_RIGHTS"
	stInsertCard   = "INSERT_CARD"
	stPaused       = "PAUSED" // only deactivated cards present
	stPIN          = "ENTER_PIN"
	stCAN          = "ENTER_CAN"
	stPUK          = "ENTER_PUK"
	stNewPIN       = "ENTER_NEW_PIN"
)

type emuWorkflow struct {
	kind     string // MsgAuth or MsgChangePIN
	state    string
	rights   AccessRights
	reader   *emuReader // the reader whose card is used
	canOK    bool       // CAN verified for the last PIN attempt
	progress int
}

// NewEmulator returns an emulator with no client attached and no card
// inserted.
func NewEmulator(opts EmulatorOptions) *Emulator {
	opts = opts.withDefaults()
	e := &Emulator{opts: opts, level: slices.Max(opts.APILevels)}
	for _, r := range opts.Readers {
		e.readers = append(e.readers, &emuReader{EmulatedReader: r})
	}
	return e
}

// Attach connects a client: out receives every message from now on. Like
// the real app, the emulator first reports its readers.
func (e *Emulator) Attach(out func(Message)) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.out != nil {
		return ErrAttached
	}
	e.out = out
	for _, r := range e.readers {
		e.emitReader(r)
	}
	return nil
}

// Detach disconnects the client; a running workflow is dropped.
func (e *Emulator) Detach() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.out = nil
	e.wf = nil
}

// InsertCard puts a card into the named reader, replacing any card there.
func (e *Emulator) InsertCard(reader string, card EmulatedCard) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := e.reader(reader)
	if r == nil {
		return fmt.Errorf("insert card: no reader %q", reader)
	}
	if r.detached {
		return fmt.Errorf("insert card: reader %q is unplugged", reader)
	}
	e.insert(r, card)
	return nil
}

// RemoveCard takes the card out of the named reader.
func (e *Emulator) RemoveCard(reader string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := e.reader(reader)
	if r == nil {
		return fmt.Errorf("remove card: no reader %q", reader)
	}
	e.remove(r)
	return nil
}

// Unplug detaches the named reader, as when its cable is pulled; its card
// goes with it.
func (e *Emulator) Unplug(reader string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := e.reader(reader)
	if r == nil {
		return fmt.Errorf("unplug: no reader %q", reader)
	}
	r.detached = true
	if r.card != nil {
		e.remove(r) // reports the reader
		return nil
	}
	e.emitReader(r)
	return nil
}

// Plug attaches the named reader again.
func (e *Emulator) Plug(reader string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := e.reader(reader)
	if r == nil {
		return fmt.Errorf("plug: no reader %q", reader)
	}
	r.detached = false
	e.emitReader(r)
	return nil
}

// Card returns the card in the named reader as it is now (its PIN after a
// change, its retry counter).
func (e *Emulator) Card(reader string) (EmulatedCard, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := e.reader(reader)
	if r == nil || r.card == nil {
		return EmulatedCard{}, false
	}
	return *r.card, true
}

// InternalError makes the emulator report an INTERNAL_ERROR, as the real
// app does when it hits a bug.
func (e *Emulator) InternalError(text string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.emit(Message{Type: MsgInternalError, Error: text})
}

// HandleRaw handles one command as it arrives on the wire: broken JSON is
// answered with INVALID.
func (e *Emulator) HandleRaw(data []byte) {
	c, err := DecodeCommand(data)
	if err != nil {
		e.mu.Lock()
		defer e.mu.Unlock()
		e.emit(Message{Type: MsgInvalid, Error: err.Error()})
		return
	}
	e.Handle(c)
}

// Handle handles one command.
func (e *Emulator) Handle(c Command) {
	e.mu.Lock()
	defer e.mu.Unlock()
	wf := e.wf
	bad := func() { e.emit(Message{Type: MsgBadState, Error: c.Cmd}) }
	switch c.Cmd {
	case CmdGetInfo:
		e.emit(Message{Type: MsgInfo, Info: &Info{
			Name: "AusweisApp2", ImplementationTitle: "AusweisApp2", ImplementationVendor: "Kogge simulator",
			ImplementationVersion: "1.26.2", SpecificationTitle: "TR-03124-1",
			SpecificationVendor: "Federal Office for Information Security", SpecificationVersion: "1.3",
		}})
	case CmdGetAPILevel:
		e.emit(Message{Type: MsgAPILevel, APILevel: &APILevel{Available: slices.Clone(e.opts.APILevels), Current: e.level}})
	case CmdSetAPILevel:
		if !slices.Contains(e.opts.APILevels, c.Level) {
			e.emit(Message{Type: MsgAPILevel, Error: "Invalid level", APILevel: &APILevel{Available: slices.Clone(e.opts.APILevels), Current: e.level}})
			return
		}
		e.level = c.Level
		e.emit(Message{Type: MsgAPILevel, APILevel: &APILevel{Current: e.level}})
	case CmdGetReader:
		if r := e.reader(c.Name); r != nil {
			e.emitReader(r)
		} else {
			e.emit(Message{Type: MsgReader, Reader: &Reader{Name: c.Name}})
		}
	case CmdGetReaderList:
		list := make([]Reader, 0, len(e.readers))
		for _, r := range e.readers {
			list = append(list, r.view())
		}
		e.emit(Message{Type: MsgReaderList, Readers: list})
	case CmdGetStatus:
		p := &Progress{}
		if wf != nil {
			p.Workflow, p.Percent, p.State = wf.kind, wf.progress, wf.state
		}
		e.emit(Message{Type: MsgStatus, Progress: p})
	case CmdRunAuth:
		if wf != nil {
			bad()
			return
		}
		if c.TCTokenURL == "" {
			e.emit(Message{Type: MsgAuth, Error: "tcTokenURL cannot be undefined"})
			return
		}
		e.wf = &emuWorkflow{kind: MsgAuth, rights: cloneRights(e.opts.AccessRights)}
		e.emit(Message{Type: MsgAuth})
		e.status(0)
		if !strings.HasPrefix(c.TCTokenURL, e.opts.ServiceURL) {
			e.status(80)
			e.finish(false, &Result{
				Major: MajorError, Minor: "http://www.bsi.bund.de/ecard/api/1.1/resultminor/dp#trustedChannelEstablishmentFailed",
				Language: "en", Description: "A trusted channel could not be opened.",
				Message: "It wasn't possible to connect to the server.",
			}, "")
			return
		}
		e.wf.state = stAccessRights
		e.status(10)
		e.emitRights("")
	case CmdRunChangePIN:
		if wf != nil {
			bad()
			return
		}
		e.wf = &emuWorkflow{kind: MsgChangePIN}
		e.emit(Message{Type: MsgChangePIN})
		e.proceed()
	case CmdGetAccessRights:
		if wf == nil || wf.kind != MsgAuth || wf.state == "" {
			bad()
			return
		}
		e.emitRights("")
	case CmdSetAccessRights:
		if wf == nil || wf.state != stAccessRights {
			bad()
			return
		}
		for _, r := range c.Chat {
			if !slices.Contains(wf.rights.Optional, r) {
				e.emitRights(fmt.Sprintf("%q is not an optional access right", r))
				return
			}
		}
		wf.rights.Effective = append(slices.Clone(wf.rights.Required), c.Chat...)
		e.emitRights("")
	case CmdGetCertificate:
		if wf == nil || wf.kind != MsgAuth || wf.state == "" {
			bad()
			return
		}
		cert := e.opts.Certificate
		e.emit(Message{Type: MsgCertificate, Certificate: &cert})
	case CmdAccept:
		if wf == nil || wf.state != stAccessRights {
			bad()
			return
		}
		e.status(20)
		e.proceed()
	case CmdCancel:
		if wf == nil {
			bad()
			return
		}
		e.finish(false, &Result{
			Major: MajorError, Minor: "http://www.bsi.bund.de/ecard/api/1.1/resultminor/sal#cancellationByUser",
			Language: "en", Description: "The process has been cancelled.", Message: "The process has been cancelled.",
			Reason: "User_Cancelled",
		}, "User_Cancelled")
	case CmdInterrupt:
		if wf == nil || !isPrompt(wf.state) {
			bad()
		}
	case CmdSetCard:
		if wf == nil {
			bad()
			return
		}
		r := e.reader(c.Name)
		switch {
		case r == nil:
			e.emit(Message{Type: MsgInsertCard, Error: fmt.Sprintf("Unknown reader name %q", c.Name)})
		case !r.Insertable || r.detached:
			e.emit(Message{Type: MsgInsertCard, Error: fmt.Sprintf("Reader %q does not take a simulated card", c.Name)})
		default:
			e.insert(r, *e.opts.SetCard)
		}
	case CmdSetPIN:
		if wf == nil || wf.state != stPIN {
			bad()
			return
		}
		e.setPIN(c)
	case CmdSetNewPIN:
		if wf == nil || wf.state != stNewPIN {
			bad()
			return
		}
		v, ok := e.value(c, 6, 6)
		if !ok {
			e.prompt(MsgEnterNewPIN, "You must provide 6 digits")
			return
		}
		if v != "" {
			wf.reader.card.PIN = v
		}
		e.finish(true, nil, "")
	case CmdSetCAN:
		if wf == nil || wf.state != stCAN {
			bad()
			return
		}
		v, ok := e.value(c, 6, 6)
		if !ok {
			e.prompt(MsgEnterCAN, "You must provide 6 digits")
			return
		}
		if v != "" && v != wf.reader.card.CAN {
			e.prompt(MsgEnterCAN, "")
			return
		}
		wf.canOK = true
		wf.state = stPIN
		e.prompt(MsgEnterPIN, "")
	case CmdSetPUK:
		if wf == nil || wf.state != stPUK {
			bad()
			return
		}
		v, ok := e.value(c, 10, 10)
		if !ok {
			e.prompt(MsgEnterPUK, "You must provide 10 digits")
			return
		}
		card := wf.reader.card
		if v != "" && v != card.PUK {
			e.prompt(MsgEnterPUK, "")
			return
		}
		if card.Inoperative {
			e.prompt(MsgEnterPUK, "")
			return
		}
		card.RetryCounter = 3
		e.ask()
	case CmdContinue:
		bad()
	default:
		e.emit(Message{Type: MsgUnknownCommand, Error: c.Cmd})
	}
}

func (e *Emulator) setPIN(c Command) {
	wf := e.wf
	minLen := 6
	if wf.kind == MsgChangePIN {
		minLen = 5 // a transport PIN
	}
	v, ok := e.value(c, minLen, 6)
	if !ok {
		e.prompt(MsgEnterPIN, "You must provide 6 digits")
		return
	}
	card := wf.reader.card
	if v != "" && v != card.PIN {
		card.RetryCounter--
		wf.canOK = false
		e.ask()
		return
	}
	card.RetryCounter = 3
	wf.canOK = false
	if card.PullAfterPIN {
		r := wf.reader
		r.card = nil
		e.emitReader(r)
		e.finish(false, &Result{
			Major: MajorError, Minor: "http://www.bsi.bund.de/ecard/api/1.1/resultminor/al/common#internalError",
			Language: "en", Description: "An internal error has occurred during processing.",
			Message: "The connection to the ID card has been lost. The process was aborted.", Reason: "Card_Removed",
		}, "Card_Removed")
		return
	}
	if wf.kind == MsgChangePIN {
		wf.state = stNewPIN
		e.prompt(MsgEnterNewPIN, "")
		return
	}
	e.status(90)
	e.finish(true, &Result{Major: MajorOK}, "")
}

// value returns the digits of a SET_* command, "" for a keypad reader.
func (e *Emulator) value(c Command, minLen, maxLen int) (string, bool) {
	if e.wf.reader.Keypad {
		return "", c.Value == nil
	}
	if c.Value == nil {
		return "", false
	}
	v := *c.Value
	return v, len(v) >= minLen && len(v) <= maxLen && digitsOnly(v)
}

// proceed continues a workflow that needs a card.
func (e *Emulator) proceed() {
	wf := e.wf
	var deactivated *emuReader
	for _, r := range e.readers {
		if r.card == nil {
			continue
		}
		if r.card.Deactivated {
			deactivated = r
			continue
		}
		wf.reader = r
		e.ask()
		return
	}
	wf.reader = nil
	if deactivated != nil {
		if wf.state != stPaused {
			// Like the app: report the unusable card, then wait for another.
			wf.state = stPaused
			e.emitReader(deactivated)
		}
		return
	}
	if wf.state != stInsertCard {
		wf.state = stInsertCard
		e.emit(Message{Type: MsgInsertCard})
	}
}

// ask prompts for the secret the card's retry counter calls for.
func (e *Emulator) ask() {
	wf := e.wf
	card := wf.reader.card
	switch {
	case card.RetryCounter <= 0:
		wf.state = stPUK
		e.prompt(MsgEnterPUK, "")
	case card.RetryCounter == 1 && !wf.canOK:
		wf.state = stCAN
		e.prompt(MsgEnterCAN, "")
	default:
		wf.state = stPIN
		e.prompt(MsgEnterPIN, "")
	}
}

func (e *Emulator) prompt(msg, errText string) {
	v := e.wf.reader.view()
	if msg == MsgEnterPUK && e.wf.reader.card.Inoperative && e.wf.reader.card.RetryCounter <= 0 && errText == "" {
		v.Card.Inoperative = true
	}
	e.status(e.wf.progress)
	e.emit(Message{Type: msg, Error: errText, Reader: &v})
}

func (e *Emulator) insert(r *emuReader, card EmulatedCard) {
	c := card
	r.card = &c
	e.emitReader(r)
	wf := e.wf
	if wf == nil || (wf.state != stInsertCard && wf.state != stPaused) {
		return
	}
	e.proceed()
}

func (e *Emulator) remove(r *emuReader) {
	if r.card == nil {
		return
	}
	r.card = nil
	e.emitReader(r)
	wf := e.wf
	if wf != nil && wf.reader == r && isPrompt(wf.state) {
		wf.canOK = false
		e.proceed()
	}
}

// finish ends the workflow with its final message.
func (e *Emulator) finish(ok bool, res *Result, reason string) {
	wf := e.wf
	e.wf = nil
	if wf.kind == MsgChangePIN {
		e.emit(Message{Type: MsgChangePIN, Success: ptr(ok), Reason: reason})
		return
	}
	e.refs++
	path := "result"
	if !ok {
		path = "error"
	}
	e.emit(Message{Type: MsgAuth, Result: res, URL: fmt.Sprintf("%s%s?refID=%d", e.opts.ServiceURL, path, e.refs)})
}

func (e *Emulator) status(percent int) {
	wf := e.wf
	if wf == nil || wf.kind != MsgAuth || e.level < 2 {
		return
	}
	if percent > wf.progress {
		wf.progress = percent
	}
	state := ""
	if isPrompt(wf.state) || wf.state == stAccessRights || wf.state == stInsertCard {
		state = wf.state
	}
	e.emit(Message{Type: MsgStatus, Progress: &Progress{Workflow: wf.kind, Percent: wf.progress, State: state}})
}

func (e *Emulator) emitRights(errText string) {
	r := cloneRights(e.wf.rights)
	e.emit(Message{Type: MsgAccessRights, Error: errText, AccessRights: &r})
}

func (e *Emulator) emitReader(r *emuReader) {
	v := r.view()
	e.emit(Message{Type: MsgReader, Reader: &v})
}

func (e *Emulator) emit(m Message) {
	if e.out != nil {
		e.out(m)
	}
}

func (e *Emulator) reader(name string) *emuReader {
	for _, r := range e.readers {
		if r.Name == name {
			return r
		}
	}
	return nil
}

func (r *emuReader) view() Reader {
	v := Reader{Name: r.Name, Attached: !r.detached, Insertable: r.Insertable, Keypad: r.Keypad}
	if r.card != nil {
		v.Card = &Card{Deactivated: r.card.Deactivated, RetryCounter: max(r.card.RetryCounter, 0)}
	}
	return v
}

func isPrompt(state string) bool {
	return state == stPIN || state == stCAN || state == stPUK || state == stNewPIN
}

func cloneRights(a AccessRights) AccessRights {
	a.Effective, a.Optional, a.Required = slices.Clone(a.Effective), slices.Clone(a.Optional), slices.Clone(a.Required)
	return a
}

func digitsOnly(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}
