// Package payment takes card payments at the kiosk through a payment
// terminal that speaks ZVT (the German ECR interface; encoding in
// drivers/payment/zvt), over TCP (port 20007) or a serial line.
//
// [Terminal] is the contract; [Client] is the real implementation and
// [Fake] the stand-in for unit tests. simulators/devices/payment plays a
// terminal for the driver's tests and for manual runs.
//
// # Outcomes
//
// Every payment ends in one of four outcomes, and the driver never guesses:
//
//   - Paid: the terminal reported success (status information with result
//     code 00, or completion).
//   - Declined: the terminal reported a failure (result code and its
//     text: declined by the issuer, card not readable, …). No money was
//     taken.
//   - Aborted: nothing was booked — the terminal could not be reached,
//     refused the command (negative acknowledgement), or the payment was
//     aborted (at the terminal or by cancelling the context).
//   - Unknown: the authorisation was sent but its result never arrived
//     (timeout, line dropped). The money may have been taken. The result
//     carries a [Pending]; [Client.Reconcile] asks the terminal for its
//     last transaction (repeat receipt, 06 20) and settles the outcome.
//     Reconcile before starting another payment; persist the Pending if
//     the process may end before.
package payment

import (
	"context"
	"fmt"
	"time"

	"github.com/kogge-fleet/kogge/drivers"
)

// Terminal takes card payments.
type Terminal interface {
	// Pay asks for amount cents. A non-nil error means the terminal
	// never received the request: the outcome is Aborted and nothing was
	// booked. Cancelling ctx while the customer is at the terminal asks
	// it to abort.
	Pay(ctx context.Context, cents int64) (Result, error)
	// Reconcile settles an Unknown outcome.
	Reconcile(ctx context.Context, p Pending) (Result, error)
	// EndOfDay closes the terminal's batch and returns its totals.
	EndOfDay(ctx context.Context) (Batch, error)
	// Status is the terminal's state for the heartbeat.
	Status() drivers.Status
}

// Outcome is how a payment ended.
type Outcome uint8

const (
	// Unknown is the zero value: without news the money may have moved.
	Unknown Outcome = iota
	Paid
	Declined
	Aborted
)

func (o Outcome) String() string {
	switch o {
	case Paid:
		return "paid"
	case Declined:
		return "declined"
	case Aborted:
		return "aborted"
	}
	return "unknown"
}

// Result is a payment's outcome with what the terminal said about it.
type Result struct {
	Outcome Outcome
	// Amount is the amount in cents, as confirmed by the terminal (or as
	// requested, where it confirmed nothing).
	Amount int64
	// Reason explains the outcome to a person: the terminal's result text
	// for Declined, what happened for Aborted and Unknown.
	Reason string
	// Code is the terminal's result code (0 for success); valid for Paid
	// and Declined.
	Code byte
	// Trace and ReceiptNo identify the transaction on the terminal.
	Trace, ReceiptNo int
	TerminalID       string
	// Card is the card's name ("girocard") and PAN its masked number.
	Card, PAN string
	// Time is the terminal's time of the transaction, zero if unknown.
	Time time.Time
	// Receipt holds the customer receipt's lines the terminal sent
	// (06 D1 lines or a 06 D3 block); MerchantReceipt the merchant copy.
	Receipt, MerchantReceipt []string
	// Pending is set for Unknown: what Reconcile needs.
	Pending *Pending
}

func (r Result) String() string {
	if r.Reason == "" {
		return fmt.Sprintf("%s %d.%02d EUR", r.Outcome, r.Amount/100, r.Amount%100)
	}
	return fmt.Sprintf("%s %d.%02d EUR: %s", r.Outcome, r.Amount/100, r.Amount%100, r.Reason)
}

// Pending is a payment whose outcome is unknown.
type Pending struct {
	Amount int64
	// Started is when the authorisation was sent (local clock).
	Started time.Time
	// LastTrace is the trace number of the last transaction the client
	// saw before this one, 0 if none: a different last transaction on the
	// terminal is then this one.
	LastTrace int
}

// Batch is the result of an end of day.
type Batch struct {
	Total   int64 // cents
	Time    time.Time
	Receipt []string
}
