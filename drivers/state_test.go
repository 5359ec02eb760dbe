package drivers

import (
	"testing"

	"github.com/kogge-fleet/kogge/protocol"
)

// The agent converts with protocol.PeripheralState(s): values and names
// must agree.
func TestStatesMatchProtocol(t *testing.T) {
	for _, s := range []State{StateOK, StateDegraded, StateMissing, StateError} {
		if got := protocol.PeripheralState(s).String(); got != s.String() {
			t.Errorf("state %d: protocol calls it %q, drivers %q", s, got, s.String())
		}
	}
	if got := (Status{State: StateError, Reason: "paper out"}).String(); got != "error: paper out" {
		t.Errorf("String() = %q", got)
	}
	if (Status{State: StateDegraded}).OK() || !(Status{State: StateOK}).OK() {
		t.Error("OK() wrong")
	}
}
