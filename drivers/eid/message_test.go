package eid_test

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/kogge-fleet/kogge/drivers/eid"
)

// Messages as the real AusweisApp2 1.26.2 sent them (captured with
// --ui websocket), and examples from the SDK documentation.
var realMessages = []struct {
	name string
	json string
	want eid.Message
}{
	{"reader no card", `{"attached":true,"card":null,"insertable":true,"keypad":true,"msg":"READER","name":"Simulator"}`,
		eid.Message{Type: eid.MsgReader, Reader: &eid.Reader{Name: "Simulator", Attached: true, Insertable: true, Keypad: true}}},
	{"reader unknown name", `{"attached":false,"msg":"READER","name":"Nope"}`,
		eid.Message{Type: eid.MsgReader, Reader: &eid.Reader{Name: "Nope"}}},
	{"reader card", `{"attached":true,"card":{"deactivated":false,"inoperative":false,"retryCounter":3},"insertable":true,"keypad":true,"msg":"READER","name":"Simulator"}`,
		eid.Message{Type: eid.MsgReader, Reader: &eid.Reader{Name: "Simulator", Attached: true, Insertable: true, Keypad: true, Card: &eid.Card{RetryCounter: 3}}}},
	{"reader unknown card", `{"msg":"READER","name":"NFC","insertable":false,"attached":true,"keypad":false,"card":{}}`,
		eid.Message{Type: eid.MsgReader, Reader: &eid.Reader{Name: "NFC", Attached: true, Card: &eid.Card{Unknown: true}}}},
	{"api level", `{"available":[1,2],"current":2,"msg":"API_LEVEL"}`,
		eid.Message{Type: eid.MsgAPILevel, APILevel: &eid.APILevel{Available: []int{1, 2}, Current: 2}}},
	{"info", `{"VersionInfo":{"Implementation-Title":"AusweisApp2","Implementation-Vendor":"","Implementation-Version":"1.26.2","Name":"AusweisApp2","Specification-Title":"TR-03124","Specification-Vendor":"Federal Office for Information Security","Specification-Version":"1.3"},"msg":"INFO"}`,
		eid.Message{Type: eid.MsgInfo, Info: &eid.Info{Name: "AusweisApp2", ImplementationTitle: "AusweisApp2", ImplementationVersion: "1.26.2",
			SpecificationTitle: "TR-03124", SpecificationVendor: "Federal Office for Information Security", SpecificationVersion: "1.3"}}},
	{"reader list", `{"msg":"READER_LIST","readers":[{"attached":true,"card":null,"insertable":true,"keypad":true,"name":"Simulator"}]}`,
		eid.Message{Type: eid.MsgReaderList, Readers: []eid.Reader{{Name: "Simulator", Attached: true, Insertable: true, Keypad: true}}}},
	{"reader list level 1", `{"msg":"READER_LIST","reader":[{"attached":true,"card":null,"keypad":false,"name":"NFC"}]}`,
		eid.Message{Type: eid.MsgReaderList, Readers: []eid.Reader{{Name: "NFC", Attached: true}}}},
	{"bad state", `{"error":"ACCEPT","msg":"BAD_STATE"}`, eid.Message{Type: eid.MsgBadState, Error: "ACCEPT"}},
	{"unknown command", `{"error":"FOO","msg":"UNKNOWN_COMMAND"}`, eid.Message{Type: eid.MsgUnknownCommand, Error: "FOO"}},
	{"invalid", `{"error":"illegal value (offset: 1)","msg":"INVALID"}`, eid.Message{Type: eid.MsgInvalid, Error: "illegal value (offset: 1)"}},
	{"auth started", `{"msg":"AUTH"}`, eid.Message{Type: eid.MsgAuth}},
	{"auth refused", `{"error":"tcTokenURL cannot be undefined","msg":"AUTH"}`, eid.Message{Type: eid.MsgAuth, Error: "tcTokenURL cannot be undefined"}},
	{"status", `{"msg":"STATUS","progress":0,"state":null,"workflow":"AUTH"}`,
		eid.Message{Type: eid.MsgStatus, Progress: &eid.Progress{Workflow: "AUTH"}}},
	{"auth failed", `{"msg":"AUTH","result":{"description":"A trusted channel could not be opened.","language":"en","major":"http://www.bsi.bund.de/ecard/api/1.1/resultmajor#error","message":"It wasn't possible to connect to the server: the server sent a non-standard response.","minor":"http://www.bsi.bund.de/ecard/api/1.1/resultminor/dp#trustedChannelEstablishmentFailed"}}`,
		eid.Message{Type: eid.MsgAuth, Result: &eid.Result{Major: eid.MajorError, Minor: "http://www.bsi.bund.de/ecard/api/1.1/resultminor/dp#trustedChannelEstablishmentFailed",
			Language: "en", Description: "A trusted channel could not be opened.", Message: "It wasn't possible to connect to the server: the server sent a non-standard response."}}},
	{"auth ok", `{"msg":"AUTH","result":{"major":"http://www.bsi.bund.de/ecard/api/1.1/resultmajor#ok"},"url":"https://test.governikus-eid.de/gov_autent/async?refID=_123456789"}`,
		eid.Message{Type: eid.MsgAuth, Result: &eid.Result{Major: eid.MajorOK}, URL: "https://test.governikus-eid.de/gov_autent/async?refID=_123456789"}},
	{"change pin started", `{"msg":"CHANGE_PIN"}`, eid.Message{Type: eid.MsgChangePIN}},
	{"change pin done", `{"msg":"CHANGE_PIN","success":true}`, eid.Message{Type: eid.MsgChangePIN, Success: ptr(true)}},
	{"change pin failed", `{"msg":"CHANGE_PIN","success":false,"reason":"Card_Removed"}`, eid.Message{Type: eid.MsgChangePIN, Success: ptr(false), Reason: "Card_Removed"}},
	{"insert card", `{"msg":"INSERT_CARD"}`, eid.Message{Type: eid.MsgInsertCard}},
	{"enter pin", `{"msg":"ENTER_PIN","reader":{"attached":true,"card":{"deactivated":false,"inoperative":false,"retryCounter":3},"insertable":true,"keypad":true,"name":"Simulator"}}`,
		eid.Message{Type: eid.MsgEnterPIN, Reader: &eid.Reader{Name: "Simulator", Attached: true, Insertable: true, Keypad: true, Card: &eid.Card{RetryCounter: 3}}}},
	{"enter puk refused", `{"msg":"ENTER_PUK","error":"You must provide 10 digits","reader":{"name":"NFC","insertable":false,"attached":true,"keypad":false,"card":{"inoperative":true,"deactivated":false,"retryCounter":0}}}`,
		eid.Message{Type: eid.MsgEnterPUK, Error: "You must provide 10 digits", Reader: &eid.Reader{Name: "NFC", Attached: true, Card: &eid.Card{Inoperative: true}}}},
	{"access rights", `{"msg":"ACCESS_RIGHTS","chat":{"effective":["Address","FamilyName"],"optional":["GivenNames"],"required":["Address","FamilyName"]},"transactionInfo":"x","aux":{"requiredAge":"18"}}`,
		eid.Message{Type: eid.MsgAccessRights, AccessRights: &eid.AccessRights{Effective: []string{"Address", "FamilyName"}, Optional: []string{"GivenNames"},
			Required: []string{"Address", "FamilyName"}, TransactionInfo: "x", Aux: map[string]string{"requiredAge": "18"}}}},
	{"certificate", `{"msg":"CERTIFICATE","description":{"issuerName":"Governikus Test DVCA","subjectName":"Governikus GmbH & Co. KG","purpose":"Demo"},"validity":{"effectiveDate":"2016-07-31","expirationDate":"2016-08-30"}}`,
		eid.Message{Type: eid.MsgCertificate, Certificate: &eid.Certificate{IssuerName: "Governikus Test DVCA", SubjectName: "Governikus GmbH & Co. KG", Purpose: "Demo",
			EffectiveDate: "2016-07-31", ExpirationDate: "2016-08-30"}}},
	{"pause", `{"msg":"PAUSE","cause":"BadCardPosition"}`, eid.Message{Type: eid.MsgPause, Cause: "BadCardPosition"}},
	{"future message", `{"msg":"SOMETHING_NEW","extra":[1,2,3]}`, eid.Message{Type: "SOMETHING_NEW"}},
}

func ptr[T any](v T) *T { return &v }

func TestDecodeMessage(t *testing.T) {
	for _, tc := range realMessages {
		t.Run(tc.name, func(t *testing.T) {
			got, err := eid.DecodeMessage([]byte(tc.json))
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("decoded\n%#v\nwant\n%#v", got, tc.want)
			}
			// Our encoding reads back to the same message.
			b, err := eid.EncodeMessage(got)
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			again, err := eid.DecodeMessage(b)
			if err != nil {
				t.Fatalf("decode our encoding %s: %v", b, err)
			}
			if !reflect.DeepEqual(again, got) {
				t.Fatalf("round trip of %s:\n%#v\nwant\n%#v", b, again, got)
			}
		})
	}
}

func TestDecodeMessageRefuses(t *testing.T) {
	for _, in := range []string{
		``, `null`, `[]`, `"READER"`, `{}`, `{"msg":""}`, `{"msg":7}`, `{"msg":"READER"`,
		`{"msg":"READER","card":7}`, `{"msg":"ENTER_PIN","reader":[1]}`, `{"msg":"API_LEVEL","available":"x"}`,
		`{"msg":"READER_LIST","readers":{}}`, `{"msg":"AUTH","result":"ok"}`,
		`{"msg":"STATUS","x":"` + string(bytes.Repeat([]byte("a"), eid.MaxMessageSize)) + `"}`,
	} {
		if m, err := eid.DecodeMessage([]byte(in)); err == nil {
			t.Errorf("DecodeMessage(%.60q) = %+v, want an error", in, m)
		}
	}
}

func TestCommandJSON(t *testing.T) {
	pin := "123456"
	for _, tc := range []struct {
		cmd  eid.Command
		want string
	}{
		{eid.Command{Cmd: eid.CmdSetAPILevel, Level: 2}, `{"cmd":"SET_API_LEVEL","level":2}`},
		{eid.Command{Cmd: eid.CmdRunAuth, TCTokenURL: "https://x/y?a=1&b=2"}, `{"cmd":"RUN_AUTH","tcTokenURL":"https://x/y?a=1\u0026b=2"}`},
		{eid.Command{Cmd: eid.CmdSetPIN, Value: &pin}, `{"cmd":"SET_PIN","value":"123456"}`},
		{eid.Command{Cmd: eid.CmdSetPIN}, `{"cmd":"SET_PIN"}`},
		{eid.Command{Cmd: eid.CmdSetAccessRights, Chat: []string{}}, `{"cmd":"SET_ACCESS_RIGHTS","chat":[]}`},
		{eid.Command{Cmd: eid.CmdSetAccessRights, Chat: []string{"FamilyName"}}, `{"cmd":"SET_ACCESS_RIGHTS","chat":["FamilyName"]}`},
		{eid.Command{Cmd: eid.CmdSetCard, Name: "Simulator"}, `{"cmd":"SET_CARD","name":"Simulator"}`},
	} {
		b, err := tc.cmd.MarshalJSON()
		if err != nil || string(b) != tc.want {
			t.Errorf("%s: got %s, %v; want %s", tc.cmd.Cmd, b, err, tc.want)
			continue
		}
		back, err := eid.DecodeCommand(b)
		if err != nil || back.Cmd != tc.cmd.Cmd {
			t.Errorf("decode %s: %+v, %v", b, back, err)
		}
	}
}

// FuzzDecodeMessage offers arbitrary bytes as SDK messages: the decoder
// never panics, and what it accepts encodes to JSON that decodes to the
// same encoding again.
func FuzzDecodeMessage(f *testing.F) {
	for _, m := range realMessages {
		f.Add([]byte(m.json))
	}
	f.Add([]byte(`{"msg":"READER","card":{"retryCounter":-1}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := eid.DecodeMessage(data)
		if err != nil {
			return
		}
		b1, err := eid.EncodeMessage(m)
		if err != nil {
			t.Fatalf("encode %+v: %v", m, err)
		}
		m2, err := eid.DecodeMessage(b1)
		if err != nil {
			t.Fatalf("decode our encoding %s: %v", b1, err)
		}
		b2, err := eid.EncodeMessage(m2)
		if err != nil || !bytes.Equal(b1, b2) {
			t.Fatalf("unstable encoding:\n%s\n%s (%v)", b1, b2, err)
		}
	})
}

// FuzzEmulatorCommand offers arbitrary bytes as client commands to the
// emulator the simulator serves: it never panics and answers every
// command with at least one message.
func FuzzEmulatorCommand(f *testing.F) {
	for _, s := range []string{
		`{"cmd":"RUN_AUTH","tcTokenURL":"https://eid.kogge.test/tc"}`, `{"cmd":"ACCEPT"}`, `{"cmd":"SET_PIN","value":"123456"}`,
		`{"cmd":"SET_CARD","name":"Kogge Virtual Reader"}`, `{"cmd":"RUN_CHANGE_PIN"}`, `{"cmd":"SET_PUK","value":"9876543210"}`,
		`{"cmd":"SET_ACCESS_RIGHTS","chat":["x"]}`, `not json`, `{"cmd":5}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		e := eid.NewEmulator(eid.EmulatorOptions{})
		var n int
		if err := e.Attach(func(m eid.Message) {
			n++
			if _, err := eid.EncodeMessage(m); err != nil {
				t.Fatalf("emulator emitted %+v that does not encode: %v", m, err)
			}
		}); err != nil {
			t.Fatal(err)
		}
		e.HandleRaw([]byte(`{"cmd":"RUN_CHANGE_PIN"}`))
		e.HandleRaw([]byte(`{"cmd":"SET_CARD","name":"Kogge Virtual Reader"}`))
		before := n
		e.HandleRaw(data)
		if c, err := eid.DecodeCommand(data); err == nil && c.Cmd == eid.CmdInterrupt {
			return // INTERRUPT in a prompt has no answer
		}
		if n == before {
			t.Fatalf("no answer to %q", data)
		}
	})
}
