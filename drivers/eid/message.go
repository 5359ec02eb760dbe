package eid

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Command names of the AusweisApp SDK ({"cmd": …}).
const (
	CmdGetInfo         = "GET_INFO"
	CmdGetAPILevel     = "GET_API_LEVEL"
	CmdSetAPILevel     = "SET_API_LEVEL"
	CmdGetReader       = "GET_READER"
	CmdGetReaderList   = "GET_READER_LIST"
	CmdGetStatus       = "GET_STATUS"
	CmdRunAuth         = "RUN_AUTH"
	CmdRunChangePIN    = "RUN_CHANGE_PIN"
	CmdGetAccessRights = "GET_ACCESS_RIGHTS"
	CmdSetAccessRights = "SET_ACCESS_RIGHTS"
	CmdGetCertificate  = "GET_CERTIFICATE"
	CmdAccept          = "ACCEPT"
	CmdCancel          = "CANCEL"
	CmdInterrupt       = "INTERRUPT"
	CmdSetPIN          = "SET_PIN"
	CmdSetNewPIN       = "SET_NEW_PIN"
	CmdSetCAN          = "SET_CAN"
	CmdSetPUK          = "SET_PUK"
	CmdSetCard         = "SET_CARD"
	CmdContinue        = "CONTINUE"
)

// Message names of the AusweisApp SDK ({"msg": …}).
const (
	MsgAccessRights   = "ACCESS_RIGHTS"
	MsgAPILevel       = "API_LEVEL"
	MsgAuth           = "AUTH"
	MsgBadState       = "BAD_STATE"
	MsgCertificate    = "CERTIFICATE"
	MsgChangePIN      = "CHANGE_PIN"
	MsgEnterCAN       = "ENTER_CAN"
	MsgEnterNewPIN    = "ENTER_NEW_PIN"
	MsgEnterPIN       = "ENTER_PIN"
	MsgEnterPUK       = "ENTER_PUK"
	MsgInfo           = "INFO"
	MsgInsertCard     = "INSERT_CARD"
	MsgInternalError  = "INTERNAL_ERROR"
	MsgInvalid        = "INVALID"
	MsgPause          = "PAUSE"
	MsgReader         = "READER"
	MsgReaderList     = "READER_LIST"
	MsgStatus         = "STATUS"
	MsgUnknownCommand = "UNKNOWN_COMMAND"
)

// Result majors of an AUTH result (BSI TR-03112).
const (
	MajorOK    = "http://www.bsi.bund.de/ecard/api/1.1/resultmajor#ok"
	MajorError = "http://www.bsi.bund.de/ecard/api/1.1/resultmajor#error"
)

// MaxMessageSize bounds one SDK message; real ones are a few KiB (a
// certificate's terms of usage are the largest part).
const MaxMessageSize = 256 << 10

// Command is one command to the SDK. Only the fields of its Cmd are set.
type Command struct {
	Cmd string `json:"cmd"`
	// Level for SET_API_LEVEL.
	Level int `json:"level,omitempty"`
	// Name of a reader for GET_READER and SET_CARD.
	Name string `json:"name,omitempty"`
	// TCTokenURL for RUN_AUTH.
	TCTokenURL string `json:"tcTokenURL,omitempty"`
	// Status false asks RUN_AUTH and RUN_CHANGE_PIN not to send STATUS.
	Status *bool `json:"status,omitempty"`
	// Value for SET_PIN, SET_NEW_PIN, SET_CAN and SET_PUK; nil when the
	// reader has a keypad.
	Value *string `json:"value,omitempty"`
	// Chat for SET_ACCESS_RIGHTS: the optional rights to enable. A non-nil
	// empty slice disables them all and is sent as [].
	Chat []string `json:"chat,omitempty"`
	// Simulator is the content of a simulated card for SET_CARD.
	Simulator *SimulatorCard `json:"simulator,omitempty"`
}

// SimulatorCard is the "simulator" parameter of SET_CARD: files and keys of
// the SDK's virtual card, hex encoded.
type SimulatorCard struct {
	Files []SimulatorFile `json:"files,omitempty"`
	Keys  []SimulatorKey  `json:"keys,omitempty"`
}

// SimulatorFile is one elementary file of a simulated card.
type SimulatorFile struct {
	FileID      string `json:"fileId"`
	ShortFileID string `json:"shortFileId"`
	Content     string `json:"content"`
}

// SimulatorKey is one private key of a simulated card.
type SimulatorKey struct {
	ID      int    `json:"id"`
	Private string `json:"private"`
}

// MarshalJSON keeps an explicitly empty chat of SET_ACCESS_RIGHTS as [].
func (c Command) MarshalJSON() ([]byte, error) {
	type plain Command
	b, err := json.Marshal(plain(c))
	if err != nil || c.Cmd != CmdSetAccessRights || c.Chat == nil || len(c.Chat) > 0 {
		return b, err
	}
	return append(b[:len(b)-1], []byte(`,"chat":[]}`)...), nil
}

// DecodeCommand parses one command as a client sends it. It fails on
// anything that is not a JSON object with a string "cmd".
func DecodeCommand(data []byte) (Command, error) {
	var c Command
	if len(data) > MaxMessageSize {
		return c, fmt.Errorf("command of %d bytes: at most %d", len(data), MaxMessageSize)
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return Command{}, fmt.Errorf("decode command: %w", err)
	}
	if c.Cmd == "" {
		return Command{}, errors.New("decode command: cmd is missing")
	}
	return c, nil
}

// Reader is a card reader as the SDK reports it.
type Reader struct {
	Name string
	// Attached is false for a reader that was unplugged (or never known).
	Attached bool
	// Insertable is true when SET_CARD can insert a simulated card.
	Insertable bool
	// Keypad is true for a reader with its own PIN pad: the PIN, CAN and
	// PUK are then entered there, not sent.
	Keypad bool
	// Card is nil when no card is in the reader.
	Card *Card
}

// Card is the eID card in a reader.
type Card struct {
	// Unknown is set for a card that is not an eID card (API level 3).
	Unknown bool
	// Deactivated is set when the card's eID function is switched off: the
	// workflow waits for another card.
	Deactivated bool
	// Inoperative is set when the PUK is used up: only the issuing
	// authority can unblock the PIN.
	Inoperative bool
	// RetryCounter is how many PIN attempts remain: 3, 1 (CAN needed
	// first) or 0 (PUK needed).
	RetryCounter int
}

// AccessRights is what a service provider asks to read.
type AccessRights struct {
	Effective       []string
	Optional        []string
	Required        []string
	TransactionInfo string
	Aux             map[string]string
}

// Certificate describes the service provider's certificate.
type Certificate struct {
	IssuerName     string `json:"issuerName,omitempty"`
	IssuerURL      string `json:"issuerUrl,omitempty"`
	SubjectName    string `json:"subjectName,omitempty"`
	SubjectURL     string `json:"subjectUrl,omitempty"`
	TermsOfUsage   string `json:"termsOfUsage,omitempty"`
	Purpose        string `json:"purpose,omitempty"`
	EffectiveDate  string `json:"-"`
	ExpirationDate string `json:"-"`
}

// Result is the final result of an authentication (AUTH with result).
type Result struct {
	Major       string `json:"major"`
	Minor       string `json:"minor,omitempty"`
	Language    string `json:"language,omitempty"`
	Description string `json:"description,omitempty"`
	Message     string `json:"message,omitempty"`
	Reason      string `json:"reason,omitempty"`
}

// OK reports whether the result's major is ok.
func (r Result) OK() bool { return r.Major == MajorOK }

// APILevel is the answer to GET_API_LEVEL and SET_API_LEVEL.
type APILevel struct {
	Available []int
	Current   int
}

// Info is the answer to GET_INFO.
type Info struct {
	Name                  string `json:"Name,omitempty"`
	ImplementationTitle   string `json:"Implementation-Title,omitempty"`
	ImplementationVendor  string `json:"Implementation-Vendor,omitempty"`
	ImplementationVersion string `json:"Implementation-Version,omitempty"`
	SpecificationTitle    string `json:"Specification-Title,omitempty"`
	SpecificationVendor   string `json:"Specification-Vendor,omitempty"`
	SpecificationVersion  string `json:"Specification-Version,omitempty"`
}

// Progress is a STATUS message: the running workflow, its progress in
// percent and the state it waits in ("" when none).
type Progress struct {
	Workflow string
	Percent  int
	State    string
}

// Message is one decoded message from the SDK. Type is the "msg" field;
// only the fields that belong to it are set.
type Message struct {
	Type string
	// Error is the optional "error" of most messages: for BAD_STATE and
	// UNKNOWN_COMMAND the refused command, for ENTER_PIN and friends the
	// reason the last value was refused.
	Error string
	// Reader for READER and the ENTER_* messages.
	Reader *Reader
	// Readers for READER_LIST.
	Readers []Reader
	// Result and URL for the final AUTH.
	Result *Result
	URL    string
	// Success for the final CHANGE_PIN; Reason for its failure code.
	Success *bool
	Reason  string
	// AccessRights for ACCESS_RIGHTS.
	AccessRights *AccessRights
	// Certificate for CERTIFICATE.
	Certificate *Certificate
	// APILevel for API_LEVEL.
	APILevel *APILevel
	// Info for INFO.
	Info *Info
	// Progress for STATUS.
	Progress *Progress
	// Cause for PAUSE.
	Cause string
}

// Final reports whether the message ends a workflow: AUTH with a result,
// CHANGE_PIN with success.
func (m Message) Final() bool {
	return (m.Type == MsgAuth && m.Result != nil) || (m.Type == MsgChangePIN && m.Success != nil)
}

// wire forms.

type wireCard struct {
	Inoperative  *bool `json:"inoperative,omitempty"`
	Deactivated  *bool `json:"deactivated,omitempty"`
	RetryCounter *int  `json:"retryCounter,omitempty"`
}

type wireReader struct {
	Name       string          `json:"name"`
	Insertable *bool           `json:"insertable,omitempty"`
	Attached   bool            `json:"attached"`
	Keypad     *bool           `json:"keypad,omitempty"`
	Card       json.RawMessage `json:"card,omitempty"`
}

type wireChat struct {
	Effective []string `json:"effective"`
	Optional  []string `json:"optional"`
	Required  []string `json:"required"`
}

type wireValidity struct {
	EffectiveDate  string `json:"effectiveDate,omitempty"`
	ExpirationDate string `json:"expirationDate,omitempty"`
}

type wireMessage struct {
	Msg   string `json:"msg"`
	Error string `json:"error,omitempty"`

	// READER at top level.
	Name       string          `json:"name,omitempty"`
	Insertable *bool           `json:"insertable,omitempty"`
	Attached   *bool           `json:"attached,omitempty"`
	Keypad     *bool           `json:"keypad,omitempty"`
	Card       json.RawMessage `json:"card,omitempty"`

	// ENTER_*: an object; READER_LIST of API level 1: an array.
	Reader  json.RawMessage `json:"reader,omitempty"`
	Readers []wireReader    `json:"readers,omitempty"`

	Result  *Result `json:"result,omitempty"`
	URL     string  `json:"url,omitempty"`
	Success *bool   `json:"success,omitempty"`
	Reason  string  `json:"reason,omitempty"`

	Chat            *wireChat         `json:"chat,omitempty"`
	TransactionInfo string            `json:"transactionInfo,omitempty"`
	Aux             map[string]string `json:"aux,omitempty"`

	Description *Certificate  `json:"description,omitempty"`
	Validity    *wireValidity `json:"validity,omitempty"`

	Available []int `json:"available,omitempty"`
	Current   *int  `json:"current,omitempty"`

	VersionInfo *Info `json:"VersionInfo,omitempty"`

	Workflow *string `json:"workflow,omitempty"`
	Progress *int    `json:"progress,omitempty"`
	State    *string `json:"state,omitempty"`

	Cause string `json:"cause,omitempty"`
}

// DecodeMessage parses one message from the SDK. Unknown messages decode to
// their Type with no other field; unknown fields are skipped. It fails on
// anything that is not a JSON object with a string "msg", and on fields of
// the wrong JSON type.
func DecodeMessage(data []byte) (Message, error) {
	if len(data) > MaxMessageSize {
		return Message{}, fmt.Errorf("message of %d bytes: at most %d", len(data), MaxMessageSize)
	}
	var w wireMessage
	if err := json.Unmarshal(data, &w); err != nil {
		return Message{}, fmt.Errorf("decode message: %w", err)
	}
	if w.Msg == "" {
		return Message{}, errors.New("decode message: msg is missing")
	}
	m := Message{Type: w.Msg, Error: w.Error, URL: w.URL, Success: w.Success, Reason: w.Reason, Cause: w.Cause}
	switch w.Msg {
	case MsgReader:
		r, err := readerFromWire(wireReader{Name: w.Name, Insertable: w.Insertable, Attached: w.Attached != nil && *w.Attached, Keypad: w.Keypad, Card: w.Card})
		if err != nil {
			return Message{}, err
		}
		m.Reader = &r
	case MsgEnterPIN, MsgEnterNewPIN, MsgEnterCAN, MsgEnterPUK:
		if len(w.Reader) > 0 && !isNull(w.Reader) {
			var wr wireReader
			if err := json.Unmarshal(w.Reader, &wr); err != nil {
				return Message{}, fmt.Errorf("decode %s reader: %w", w.Msg, err)
			}
			r, err := readerFromWire(wr)
			if err != nil {
				return Message{}, err
			}
			m.Reader = &r
		}
	case MsgReaderList:
		list := w.Readers
		if list == nil && len(w.Reader) > 0 && !isNull(w.Reader) { // API level 1
			if err := json.Unmarshal(w.Reader, &list); err != nil {
				return Message{}, fmt.Errorf("decode READER_LIST: %w", err)
			}
		}
		m.Readers = make([]Reader, 0, len(list))
		for _, wr := range list {
			r, err := readerFromWire(wr)
			if err != nil {
				return Message{}, err
			}
			m.Readers = append(m.Readers, r)
		}
	case MsgAuth:
		m.Result = w.Result
	case MsgAccessRights:
		ar := &AccessRights{TransactionInfo: w.TransactionInfo, Aux: w.Aux}
		if w.Chat != nil {
			ar.Effective, ar.Optional, ar.Required = w.Chat.Effective, w.Chat.Optional, w.Chat.Required
		}
		m.AccessRights = ar
	case MsgCertificate:
		c := &Certificate{}
		if w.Description != nil {
			*c = *w.Description
		}
		if w.Validity != nil {
			c.EffectiveDate, c.ExpirationDate = w.Validity.EffectiveDate, w.Validity.ExpirationDate
		}
		m.Certificate = c
	case MsgAPILevel:
		l := &APILevel{Available: w.Available}
		if w.Current != nil {
			l.Current = *w.Current
		}
		m.APILevel = l
	case MsgInfo:
		m.Info = &Info{}
		if w.VersionInfo != nil {
			*m.Info = *w.VersionInfo
		}
	case MsgStatus:
		p := &Progress{}
		if w.Workflow != nil {
			p.Workflow = *w.Workflow
		}
		if w.Progress != nil {
			p.Percent = *w.Progress
		}
		if w.State != nil {
			p.State = *w.State
		}
		m.Progress = p
	}
	return m, nil
}

func isNull(raw json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(raw), []byte("null")) }

func readerFromWire(w wireReader) (Reader, error) {
	r := Reader{Name: w.Name, Attached: w.Attached}
	if w.Insertable != nil {
		r.Insertable = *w.Insertable
	}
	if w.Keypad != nil {
		r.Keypad = *w.Keypad
	}
	if len(w.Card) == 0 || isNull(w.Card) {
		return r, nil
	}
	var wc wireCard
	if err := json.Unmarshal(w.Card, &wc); err != nil {
		return Reader{}, fmt.Errorf("decode card of reader %q: %w", w.Name, err)
	}
	c := &Card{Unknown: wc.RetryCounter == nil && wc.Deactivated == nil && wc.Inoperative == nil}
	if wc.Inoperative != nil {
		c.Inoperative = *wc.Inoperative
	}
	if wc.Deactivated != nil {
		c.Deactivated = *wc.Deactivated
	}
	if wc.RetryCounter != nil {
		c.RetryCounter = *wc.RetryCounter
	}
	r.Card = c
	return r, nil
}

func readerToWire(r Reader) wireReader {
	w := wireReader{Name: r.Name, Attached: r.Attached, Insertable: ptr(r.Insertable), Card: json.RawMessage("null")}
	if r.Attached {
		w.Keypad = ptr(r.Keypad)
	}
	if r.Card != nil {
		if r.Card.Unknown {
			w.Card = json.RawMessage("{}")
		} else {
			b, _ := json.Marshal(wireCard{Inoperative: ptr(r.Card.Inoperative), Deactivated: ptr(r.Card.Deactivated), RetryCounter: ptr(r.Card.RetryCounter)})
			w.Card = b
		}
	}
	return w
}

func ptr[T any](v T) *T { return &v }

// EncodeMessage renders a message in the SDK's JSON form; DecodeMessage
// reads it back. The simulators use it.
func EncodeMessage(m Message) ([]byte, error) {
	if m.Type == "" {
		return nil, errors.New("encode message: type is missing")
	}
	w := wireMessage{Msg: m.Type, Error: m.Error, URL: m.URL, Success: m.Success, Reason: m.Reason, Cause: m.Cause}
	switch m.Type {
	case MsgReader:
		if m.Reader == nil {
			return nil, errors.New("encode READER: reader is missing")
		}
		wr := readerToWire(*m.Reader)
		w.Name, w.Insertable, w.Attached, w.Keypad, w.Card = wr.Name, wr.Insertable, ptr(wr.Attached), wr.Keypad, wr.Card
	case MsgEnterPIN, MsgEnterNewPIN, MsgEnterCAN, MsgEnterPUK:
		if m.Reader != nil {
			b, err := json.Marshal(readerToWire(*m.Reader))
			if err != nil {
				return nil, err
			}
			w.Reader = b
		}
	case MsgReaderList:
		w.Readers = make([]wireReader, 0, len(m.Readers))
		for _, r := range m.Readers {
			w.Readers = append(w.Readers, readerToWire(r))
		}
	case MsgAuth:
		w.Result = m.Result
	case MsgAccessRights:
		if ar := m.AccessRights; ar != nil {
			w.Chat = &wireChat{Effective: nonNil(ar.Effective), Optional: nonNil(ar.Optional), Required: nonNil(ar.Required)}
			w.TransactionInfo, w.Aux = ar.TransactionInfo, ar.Aux
		}
	case MsgCertificate:
		if c := m.Certificate; c != nil {
			d := *c
			w.Description = &d
			w.Validity = &wireValidity{EffectiveDate: c.EffectiveDate, ExpirationDate: c.ExpirationDate}
		}
	case MsgAPILevel:
		if l := m.APILevel; l != nil {
			w.Available, w.Current = l.Available, ptr(l.Current)
		}
	case MsgInfo:
		w.VersionInfo = m.Info
	case MsgStatus:
		if p := m.Progress; p != nil {
			w.Workflow, w.Progress = nilIfEmpty(p.Workflow), ptr(p.Percent)
			w.State = nilIfEmpty(p.State)
		}
	}
	b, err := json.Marshal(w)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", m.Type, err)
	}
	if m.Type == MsgStatus && m.Progress != nil {
		// The SDK sends null for a missing workflow and state; keep that.
		b = bytes.TrimSuffix(b, []byte("}"))
		if m.Progress.Workflow == "" {
			b = append(b, []byte(`,"workflow":null`)...)
		}
		if m.Progress.State == "" {
			b = append(b, []byte(`,"state":null`)...)
		}
		b = append(b, '}')
	}
	return b, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func nilIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
