package payment

import (
	"errors"
	"fmt"

	"github.com/kogge-fleet/kogge/drivers/payment/zvt"
)

// Behaviour is what the simulated terminal does with an authorisation,
// chosen by the last two digits of the amount in cents.
type Behaviour uint8

const (
	Approve        Behaviour = iota // any other ending: approved and completed
	Decline                         // …01: declined by the issuer (result 05)
	TimeoutBooked                   // …02: approved and booked, then silent
	DropBooked                      // …03: approved and booked, then the line drops
	CustomerAbort                   // …04: the customer presses Stop (06 1E 6C)
	AwaitAbort                      // …05: waits for a card until the ECR aborts (06 B0)
	FreezeUnbooked                  // …06: silent before anything is booked
	Refuse                          // …07: refuses the command (84 9C, busy)
)

// BehaviourOf maps an amount to the terminal's behaviour.
func BehaviourOf(cents int64) Behaviour {
	switch cents % 100 {
	case 1:
		return Decline
	case 2:
		return TimeoutBooked
	case 3:
		return DropBooked
	case 4:
		return CustomerAbort
	case 5:
		return AwaitAbort
	case 6:
		return FreezeUnbooked
	case 7:
		return Refuse
	}
	return Approve
}

func (b Behaviour) String() string {
	return [...]string{"approve", "decline", "timeout after booking", "line drop after booking",
		"customer abort", "wait for the ECR's abort", "freeze before booking", "refuse"}[b]
}

// stepKind is one thing the terminal does for a command.
type stepKind uint8

const (
	stepAck        stepKind = iota // send 80 00 00 (no answer expected)
	stepNack                       // send 84 code 00
	stepSend                       // send a message and wait for the ECR's ACK
	stepBook                       // record the transaction (approved or declined)
	stepReceipt                    // send the receipt of the booked transaction
	stepRepeat                     // send the last transaction again (04 0F, receipt)
	stepEndOfDay                   // send the batch totals and reset them
	stepRegister                   // take the registration's config
	stepAwaitAbort                 // repeat "insert card" until 06 B0, then abort
	stepFreeze                     // ignore everything until registered again
	stepDrop                       // hang up the line
)

type step struct {
	kind   stepKind
	apdu   zvt.APDU // stepSend
	code   byte     // stepNack, stepBook (result code)
	cents  int64    // stepBook
	config byte     // stepRegister
}

// plan decides how the terminal answers a command from the ECR. It is the
// terminal's parser of outside input: every command gets an
// acknowledgement first (positive or negative).
func plan(cmd zvt.APDU, password []byte) ([]step, error) {
	send := func(a zvt.APDU) step { return step{kind: stepSend, apdu: a} }
	switch cmd.Ctrl() {
	case zvt.CmdRegistration:
		if len(cmd.Data) < 4 {
			return []step{{kind: stepNack, code: 0x9A}}, errors.New("registration too short")
		}
		if string(cmd.Data[:3]) != string(password) {
			return []step{{kind: stepNack, code: 0x6B}}, errors.New("wrong password")
		}
		if len(cmd.Data) >= 6 {
			if cc, err := zvt.ParseBCD(cmd.Data[4:6]); err != nil || cc != zvt.EUR {
				return []step{{kind: stepNack, code: 0x6F}}, fmt.Errorf("currency %x not supported", cmd.Data[4:6])
			}
		}
		return []step{{kind: stepAck}, {kind: stepRegister, config: cmd.Data[3]}, send(zvt.Completion(nil))}, nil

	case zvt.CmdStatusEnquiry:
		return []step{{kind: stepAck}, {kind: stepSend}}, nil // the completion is built with the terminal id

	case zvt.CmdAuthorisation:
		cents, err := authorisation(cmd.Data)
		if err != nil {
			return []step{{kind: stepNack, code: 0x9A}}, err
		}
		insert := send(zvt.Intermediate(0x0A, 30))
		wait := send(zvt.Intermediate(0x17, 0))
		switch BehaviourOf(cents) {
		case Decline:
			return []step{{kind: stepAck}, insert, wait, {kind: stepBook, cents: cents, code: 0x05}, {kind: stepReceipt},
				send(zvt.Abort(0x05))}, nil
		case TimeoutBooked:
			return []step{{kind: stepAck}, insert, wait, {kind: stepBook, cents: cents}, {kind: stepFreeze}}, nil
		case DropBooked:
			return []step{{kind: stepAck}, insert, wait, {kind: stepBook, cents: cents}, {kind: stepDrop}}, nil
		case CustomerAbort:
			return []step{{kind: stepAck}, insert, send(zvt.Abort(0x6C))}, nil
		case AwaitAbort:
			return []step{{kind: stepAck}, {kind: stepAwaitAbort}}, nil
		case FreezeUnbooked:
			return []step{{kind: stepAck}, insert, {kind: stepFreeze}}, nil
		case Refuse:
			return []step{{kind: stepNack, code: 0x9C}}, nil
		}
		return []step{{kind: stepAck}, insert, wait, {kind: stepBook, cents: cents}, {kind: stepReceipt},
			send(zvt.Completion(nil))}, nil

	case zvt.CmdRepeatReceipt:
		return []step{{kind: stepAck}, {kind: stepRepeat}}, nil

	case zvt.CmdEndOfDay:
		return []step{{kind: stepAck}, send(zvt.Intermediate(0x17, 0)), {kind: stepEndOfDay}}, nil

	case zvt.CmdAbortECR:
		// Nothing runs that could be aborted.
		return []step{{kind: stepNack, code: 0x83}}, nil
	}
	return []step{{kind: stepNack, code: 0x83}}, fmt.Errorf("command %v not supported", cmd)
}

// authorisation reads the amount of 06 01 and checks the currency.
func authorisation(data []byte) (int64, error) {
	fs, err := zvt.ParseFields(data)
	if err != nil {
		return 0, err
	}
	amount, ok := fs.Get(zvt.BMPAmount)
	if !ok {
		return 0, errors.New("authorisation without amount")
	}
	cents, err := zvt.ParseBCD(amount)
	if err != nil || cents == 0 {
		return 0, fmt.Errorf("amount % x is not valid", amount)
	}
	if cc, ok := fs.Get(zvt.BMPCurrency); ok {
		if v, err := zvt.ParseBCD(cc); err != nil || v != zvt.EUR {
			return 0, fmt.Errorf("currency % x not supported", cc)
		}
	}
	return int64(cents), nil
}
