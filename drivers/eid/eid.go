// Package eid drives the eID card through the AusweisApp SDK (Governikus):
// a JSON protocol over a WebSocket at ws://127.0.0.1:24727/eID-Kernel. The
// kiosk starts a workflow (authentication with a service's tcTokenURL, or
// a PIN change), reads its [Event]s — access rights to accept, "insert the
// card", "enter the PIN/CAN/PUK" — answers them with the workflow's methods
// and waits for the [Outcome]. The personal data never reaches the kiosk:
// the eID server hands it to the back end behind the outcome's URL.
//
// [Client] is the real implementation (one connection; the app serves one
// client at a time and answers a second with HTTP 429, [ErrBusy]). [Fake]
// runs the same client over the in-memory [Emulator] of the SDK's state
// machine; simulators/devices/eid serves that emulator over a real
// WebSocket. The tests also run against the real AusweisApp2.
package eid

import (
	"context"
	"errors"

	"github.com/kogge-fleet/kogge/drivers"
)

// DefaultURL is where the AusweisApp listens by default.
const DefaultURL = "ws://127.0.0.1:24727/eID-Kernel"

// Kernel is the eID kernel as the kiosk uses it.
type Kernel interface {
	// Readers lists the card readers the app knows.
	Readers(ctx context.Context) ([]Reader, error)
	// Auth starts an authentication for the service behind tcTokenURL.
	Auth(ctx context.Context, tcTokenURL string) (*Workflow, error)
	// ChangePIN starts a PIN change (also from a 5-digit transport PIN).
	ChangePIN(ctx context.Context) (*Workflow, error)
	// Status is the peripheral's state for the heartbeat.
	Status() drivers.Status
	// Close ends the connection; a running workflow ends with
	// drivers.ErrDisconnected.
	Close() error
}

var (
	_ Kernel = (*Client)(nil)
	_ Kernel = (*Fake)(nil)
)

// Errors callers act on. Timeouts and lost connections wrap
// drivers.ErrTimeout and drivers.ErrDisconnected.
var (
	// ErrBusy: the AusweisApp serves another client (HTTP 429), or a
	// workflow is already running.
	ErrBusy = errors.New("the AusweisApp is busy with another client or workflow")
	// ErrBadState: the command does not fit the workflow's state (the app
	// answered BAD_STATE, or it has not asked for this input).
	ErrBadState = errors.New("command not allowed in this state of the workflow")
	// ErrFormat: a PIN, CAN or PUK with the wrong number of digits.
	ErrFormat = errors.New("wrong number of digits")
)
