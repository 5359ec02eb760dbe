// Package cardreader reads smart cards through PC/SC (pcscd on Linux):
// the readers, a card's arrival and removal, its ATR, and APDU exchange
// over T=1. [PCSC] is the real implementation (github.com/ebfe/scard);
// [Fake] keeps readers and cards in memory for unit tests. The tests run
// PCSC against a real pcscd with vsmartcard's vpcd driver and the virtual
// card of simulators/devices/vcard.
package cardreader

import (
	"context"
	"encoding/binary"
	"errors"

	"github.com/kogge-fleet/kogge/drivers"
)

// Service is PC/SC as the kiosk uses it.
type Service interface {
	// Readers lists the attached readers.
	Readers(ctx context.Context) ([]string, error)
	// WaitCard blocks until a card is in reader ("" for any reader) and
	// returns where it is and its ATR.
	WaitCard(ctx context.Context, reader string) (Presence, error)
	// WaitRemoved blocks until reader holds no card.
	WaitRemoved(ctx context.Context, reader string) error
	// Connect opens the card in reader for APDU exchange.
	Connect(ctx context.Context, reader string) (Card, error)
	// Status is the peripheral's state for the heartbeat, as the last call
	// found it.
	Status() drivers.Status
	// Close releases PC/SC.
	Close() error
}

// Card is a connected card.
type Card interface {
	// ATR is the card's answer to reset.
	ATR() []byte
	// Transmit sends a command APDU and returns the response APDU (data
	// and the two status bytes).
	Transmit(ctx context.Context, apdu []byte) ([]byte, error)
	// Close disconnects, leaving the card powered.
	Close() error
}

var (
	_ Service = (*PCSC)(nil)
	_ Service = (*Fake)(nil)
	_ Card    = (*pcscCard)(nil)
	_ Card    = (*fakeCard)(nil)
)

// Presence is a card found in a reader.
type Presence struct {
	Reader string
	ATR    []byte
}

// Errors callers act on. A PC/SC service that is not running wraps
// drivers.ErrDisconnected; waits that run out wrap drivers.ErrTimeout.
var (
	// ErrNoReader: the reader is not attached (or was unplugged).
	ErrNoReader = errors.New("card reader not attached")
	// ErrNoCard: no card in the reader.
	ErrNoCard = errors.New("no card in the reader")
	// ErrCardRemoved: the card was pulled while it was in use.
	ErrCardRemoved = errors.New("the card was removed")
)

// SW returns the status word at the end of a response APDU, 0 if there is
// none.
func SW(rsp []byte) uint16 {
	if len(rsp) < 2 {
		return 0
	}
	return binary.BigEndian.Uint16(rsp[len(rsp)-2:])
}
