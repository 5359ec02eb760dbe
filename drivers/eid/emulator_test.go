package eid_test

import (
	"testing"

	"github.com/kogge-fleet/kogge/drivers/eid"
)

// TestEmulatorRefusesBadInput drives the emulator with commands the client
// would refuse itself: the app's answers to malformed input.
func TestEmulatorRefusesBadInput(t *testing.T) {
	e := eid.NewEmulator(eid.EmulatorOptions{})
	var got []eid.Message
	if err := e.Attach(func(m eid.Message) { got = append(got, m) }); err != nil {
		t.Fatal(err)
	}
	if err := e.Attach(func(eid.Message) {}); err != eid.ErrAttached {
		t.Fatalf("second client: %v", err)
	}
	must(t, e.InsertCard(reader, eid.DefaultCard()))
	last := func() eid.Message {
		t.Helper()
		if len(got) == 0 {
			t.Fatal("no answer")
		}
		return got[len(got)-1]
	}
	for _, tc := range []struct {
		cmd      string
		msg, err string
		retries  int
	}{
		{`{"cmd":"RUN_CHANGE_PIN"}`, eid.MsgEnterPIN, "", 3},
		{`{"cmd":"SET_PIN","value":"12a456"}`, eid.MsgEnterPIN, "You must provide 6 digits", 3},
		{`{"cmd":"SET_PIN"}`, eid.MsgEnterPIN, "You must provide 6 digits", 3},
		{`{"cmd":"SET_PIN","value":"1234"}`, eid.MsgEnterPIN, "You must provide 6 digits", 3},
		{`{"cmd":"SET_PIN","value":"654321"}`, eid.MsgEnterPIN, "", 2},
		{`{"cmd":"SET_CAN","value":"500540"}`, eid.MsgBadState, "SET_CAN", -1},
		{`{"cmd":"SET_PIN","value":"123456"}`, eid.MsgEnterNewPIN, "", 3},
		{`{"cmd":"SET_NEW_PIN","value":"12345"}`, eid.MsgEnterNewPIN, "You must provide 6 digits", 3},
		{`{"cmd":"SET_NEW_PIN","value":"111111"}`, eid.MsgChangePIN, "", -1},
	} {
		e.HandleRaw([]byte(tc.cmd))
		m := last()
		if m.Type != tc.msg || m.Error != tc.err {
			t.Fatalf("%s: got %s %q, want %s %q", tc.cmd, m.Type, m.Error, tc.msg, tc.err)
		}
		if tc.retries >= 0 && (m.Reader == nil || m.Reader.Card == nil || m.Reader.Card.RetryCounter != tc.retries) {
			t.Fatalf("%s: reader %+v, want retry counter %d", tc.cmd, m.Reader, tc.retries)
		}
	}
	if m := last(); m.Success == nil || !*m.Success {
		t.Fatalf("change PIN: %+v", m)
	}
	if c, _ := e.Card(reader); c.PIN != "111111" || c.RetryCounter != 3 {
		t.Fatalf("card after the change: %+v", c)
	}
}
