package escpos

import "fmt"

// StatusKind selects what DLE EOT n asks for.
type StatusKind uint8

const (
	PrinterStatus StatusKind = 1 // online/offline, drawer
	OfflineCause  StatusKind = 2 // cover, feed button, paper end, error
	ErrorCause    StatusKind = 3 // cutter, unrecoverable, auto-recoverable
	PaperSensor   StatusKind = 4 // roll paper near end, paper end
)

// StatusRequest returns the real-time status request DLE EOT n. Printers
// answer it with one byte at once, even while busy or offline.
func StatusRequest(k StatusKind) []byte { return []byte{DLE, EOT, byte(k)} }

// Status is what the status bytes say. The zero value is a ready printer.
type Status struct {
	Offline         bool // not ready to print (from any cause)
	CoverOpen       bool
	FeedButton      bool // paper being fed with the feed button
	PaperOut        bool // the roll is empty (or printing stopped for it)
	PaperNearEnd    bool // the roll is nearly empty
	Error           bool // an error occurred (see the three below)
	CutterError     bool
	Unrecoverable   bool
	AutoRecoverable bool // e.g. print head too hot; clears by itself
}

// Apply merges the answer b to the request of kind k into s. Every answer
// byte has fixed bits (bit 1 and bit 4 set, bits 0 and 7 clear); a byte
// without them is not a status answer, and Apply returns an error.
func (s *Status) Apply(k StatusKind, b byte) error {
	if b&0x93 != 0x12 {
		return fmt.Errorf("byte %#02x is not a status answer (fixed bits wrong)", b)
	}
	switch k {
	case PrinterStatus:
		s.Offline = b&0x08 != 0
	case OfflineCause:
		s.CoverOpen = b&0x04 != 0
		s.FeedButton = b&0x08 != 0
		s.PaperOut = s.PaperOut || b&0x20 != 0
		s.Error = b&0x40 != 0
	case ErrorCause:
		s.CutterError = b&0x08 != 0
		s.Unrecoverable = b&0x20 != 0
		s.AutoRecoverable = b&0x40 != 0
	case PaperSensor:
		s.PaperNearEnd = b&0x0c == 0x0c
		s.PaperOut = s.PaperOut || b&0x60 == 0x60
	default:
		return fmt.Errorf("status kind %d is not 1–4", k)
	}
	return nil
}

// StatusByte is the answer a printer in state s gives to DLE EOT k: the
// inverse of Apply, for simulators.
func StatusByte(k StatusKind, s Status) byte {
	b := byte(0x12)
	set := func(on bool, bits byte) {
		if on {
			b |= bits
		}
	}
	switch k {
	case PrinterStatus:
		set(s.Offline, 0x08)
	case OfflineCause:
		set(s.CoverOpen, 0x04)
		set(s.FeedButton, 0x08)
		set(s.PaperOut, 0x20)
		set(s.Error, 0x40)
	case ErrorCause:
		set(s.CutterError, 0x08)
		set(s.Unrecoverable, 0x20)
		set(s.AutoRecoverable, 0x40)
	case PaperSensor:
		set(s.PaperNearEnd, 0x0c)
		set(s.PaperOut, 0x60)
	}
	return b
}
