// Package zvt encodes and decodes ZVT, the German protocol between an
// electronic cash register (ECR, here the kiosk) and a payment terminal
// (PT): APDUs, their bitmaps (BMPs) and TLV containers, and the serial
// transport's DLE STX … DLE ETX frames with CRC. It does no I/O; both the
// driver (drivers/payment) and the terminal simulator use it.
//
// An APDU is a control field (class and instruction byte), a length and
// data. Lengths up to 254 take one byte; longer ones are 0xFF followed by
// two bytes, least significant first.
package zvt

import (
	"errors"
	"fmt"
	"io"
)

// Ctrl is a control field: class byte and instruction byte.
type Ctrl uint16

// Control fields used by Kogge.
const (
	CmdRegistration  Ctrl = 0x0600 // ECR → PT
	CmdAuthorisation Ctrl = 0x0601 // ECR → PT
	CmdStatusEnquiry Ctrl = 0x0501 // ECR → PT
	CmdEndOfDay      Ctrl = 0x0650 // ECR → PT
	CmdRepeatReceipt Ctrl = 0x0620 // ECR → PT
	CmdAbortECR      Ctrl = 0x06B0 // ECR → PT, during a command
	MsgCompletion    Ctrl = 0x060F // PT → ECR
	MsgAbort         Ctrl = 0x061E // PT → ECR, with a result code
	MsgStatusInfo    Ctrl = 0x040F // PT → ECR
	MsgIntermediate  Ctrl = 0x04FF // PT → ECR
	MsgPrintLine     Ctrl = 0x06D1 // PT → ECR
	MsgPrintText     Ctrl = 0x06D3 // PT → ECR
	ctrlAck          Ctrl = 0x8000
)

// MaxData is the most data an APDU can carry.
const MaxData = 0xFFFF

// APDU is one ZVT message.
type APDU struct {
	Class, Instr byte
	Data         []byte
}

// New returns an APDU with control field ctrl.
func New(ctrl Ctrl, data []byte) APDU {
	return APDU{Class: byte(ctrl >> 8), Instr: byte(ctrl), Data: data}
}

// Ack is the positive acknowledgement 80 00 00.
func Ack() APDU { return APDU{Class: 0x80} }

// Nack is the negative acknowledgement 84 code 00.
func Nack(code byte) APDU { return APDU{Class: 0x84, Instr: code} }

// Ctrl is the control field.
func (a APDU) Ctrl() Ctrl { return Ctrl(a.Class)<<8 | Ctrl(a.Instr) }

// Is reports whether a has control field ctrl.
func (a APDU) Is(ctrl Ctrl) bool { return a.Ctrl() == ctrl }

// IsAck reports a positive acknowledgement (80 00, data ignored).
func (a APDU) IsAck() bool { return a.Ctrl() == ctrlAck }

// IsNack reports a negative acknowledgement (84 xx); the code is Instr.
func (a APDU) IsNack() bool { return a.Class == 0x84 }

func (a APDU) String() string {
	return fmt.Sprintf("%02X %02X (%d bytes)", a.Class, a.Instr, len(a.Data))
}

// Marshal encodes a. It fails only for data longer than MaxData.
func (a APDU) Marshal() ([]byte, error) {
	n := len(a.Data)
	if n > MaxData {
		return nil, fmt.Errorf("zvt: APDU data of %d bytes exceeds %d", n, MaxData)
	}
	b := make([]byte, 0, 5+n)
	b = append(b, a.Class, a.Instr)
	if n < 0xFF {
		b = append(b, byte(n))
	} else {
		b = append(b, 0xFF, byte(n), byte(n>>8))
	}
	return append(b, a.Data...), nil
}

// ErrShort means the bytes end inside an APDU.
var ErrShort = errors.New("zvt: APDU incomplete")

// Parse decodes the APDU at the start of b and returns it with the number
// of bytes it took. It returns ErrShort if b ends inside the APDU. The
// APDU's data aliases b.
func Parse(b []byte) (APDU, int, error) {
	if len(b) < 3 {
		return APDU{}, 0, ErrShort
	}
	n, hdr := int(b[2]), 3
	if b[2] == 0xFF {
		if len(b) < 5 {
			return APDU{}, 0, ErrShort
		}
		n, hdr = int(b[3])|int(b[4])<<8, 5
	}
	if len(b) < hdr+n {
		return APDU{}, 0, ErrShort
	}
	return APDU{Class: b[0], Instr: b[1], Data: b[hdr : hdr+n]}, hdr + n, nil
}

// Read reads one APDU from a stream (ZVT over TCP/IP).
func Read(r io.Reader) (APDU, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:3]); err != nil {
		return APDU{}, err
	}
	n := int(hdr[2])
	if hdr[2] == 0xFF {
		if _, err := io.ReadFull(r, hdr[3:5]); err != nil {
			return APDU{}, unexpected(err)
		}
		n = int(hdr[3]) | int(hdr[4])<<8
	}
	data := make([]byte, n)
	if _, err := io.ReadFull(r, data); err != nil {
		return APDU{}, unexpected(err)
	}
	return APDU{Class: hdr[0], Instr: hdr[1], Data: data}, nil
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
