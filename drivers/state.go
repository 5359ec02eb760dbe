// Package drivers holds what every driver kind shares: the state a
// peripheral reports for the device's heartbeat, and the errors callers act
// on. Each kind lives in its own subpackage (drivers/gnss, drivers/printer,
// drivers/payment, …) with its interface, its real implementation and a fake.
//
// Drivers know nothing of MQTT or of Kogge's sync; the agent maps a [Status]
// to protocol.Peripheral (the numeric values of [State] equal those of
// protocol.PeripheralState, so protocol.PeripheralState(s) converts).
package drivers

import "errors"

// State is a peripheral's state for the heartbeat.
type State uint8

// The states, with the same values and names as protocol.PeripheralState.
const (
	StateOK       State = 1 // working
	StateDegraded State = 2 // working, but needs attention soon (paper low, no fix)
	StateMissing  State = 3 // not connected or not found
	StateError    State = 4 // connected but not working (cover open, paper out)
)

// String returns "ok", "degraded", "missing" or "error".
func (s State) String() string {
	switch s {
	case StateOK:
		return "ok"
	case StateDegraded:
		return "degraded"
	case StateMissing:
		return "missing"
	case StateError:
		return "error"
	}
	return "unknown"
}

// Status is a peripheral's state with a reason a person can act on
// ("paper out: load a new roll"). Reason is empty when State is StateOK.
type Status struct {
	State  State
	Reason string
}

// OK reports whether the peripheral is working.
func (s Status) OK() bool { return s.State == StateOK }

func (s Status) String() string {
	if s.Reason == "" {
		return s.State.String()
	}
	return s.State.String() + ": " + s.Reason
}

var (
	// ErrTimeout is returned (wrapped) when a device did not answer in time.
	ErrTimeout = errors.New("device did not answer in time")
	// ErrDisconnected is returned (wrapped) when a device is not connected
	// or the line dropped.
	ErrDisconnected = errors.New("device not connected")
)
