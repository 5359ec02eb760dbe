package vcard

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
)

// vpcd control commands: a 1-byte payload from the reader.
const (
	CtrlPowerOff = 0
	CtrlPowerOn  = 1
	CtrlReset    = 2
	CtrlATR      = 4
)

// MaxFrame bounds a frame's payload: an extended APDU (65,535 bytes of
// data plus header and Le) fits.
const MaxFrame = 0xFFFF

// ReadFrame reads one vpcd frame: a 2-byte big-endian length, then the
// payload.
func ReadFrame(r io.Reader) ([]byte, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(hdr[:]))
	if n == 0 {
		return nil, errors.New("vpcd frame of length 0")
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("vpcd frame of %d bytes: %w", n, err)
	}
	return p, nil
}

// WriteFrame writes one vpcd frame.
func WriteFrame(w io.Writer, p []byte) error {
	if len(p) == 0 || len(p) > MaxFrame {
		return fmt.Errorf("vpcd frame of %d bytes: must be 1 to %d", len(p), MaxFrame)
	}
	b := make([]byte, 2+len(p))
	binary.BigEndian.PutUint16(b, uint16(len(p)))
	copy(b[2:], p)
	_, err := w.Write(b)
	return err
}

// Status words the card answers with.
const (
	SWOK             = 0x9000
	SWEndOfFile      = 0x6282 // fewer bytes than Le before the end of the file
	SWWrongLength    = 0x6700
	SWNoCurrentEF    = 0x6986
	SWFileNotFound   = 0x6A82
	SWWrongP1P2      = 0x6A86
	SWWrongOffset    = 0x6B00
	SWINSNotSupp     = 0x6D00
	SWCLANotSupp     = 0x6E00
	SWNotPoweredUp   = 0x6F00 // no precise diagnosis: the card was powered off
	insSelect        = 0xA4
	insReadBinary    = 0xB0
	selectByName     = 0x04
	selectEFUnderDF  = 0x02
	selectByFIDFirst = 0x00
)

// Applet is an application on the card: its AID and its elementary files
// by file identifier. Short file identifiers are the FID's low 5 bits.
type Applet struct {
	AID   []byte
	Files map[uint16][]byte
}

// DefaultATR is a T=1 ATR with the historical bytes "KoggeVCard".
var defaultHistorical = []byte("KoggeVCard")

// ATR builds a T=1-only ATR with the given historical bytes (at most 15)
// and its check byte.
func ATR(historical []byte) []byte {
	if len(historical) > 15 {
		historical = historical[:15]
	}
	atr := []byte{0x3B, 0x80 | byte(len(historical)), 0x01} // TD1: T=1, no more interface bytes
	atr = append(atr, historical...)
	var tck byte
	for _, b := range atr[1:] {
		tck ^= b
	}
	return append(atr, tck)
}

// DefaultApplets is a demo application with two files: EF 0101 (a short
// text) and EF 0102 (300 bytes, more than one READ BINARY).
func DefaultApplets() []Applet {
	long := make([]byte, 300)
	for i := range long {
		long[i] = byte(i)
	}
	return []Applet{{
		AID: []byte{0xD2, 0x76, 0x00, 0x01, 0x24, 0x01}, // an AID in the German national registration range
		Files: map[uint16][]byte{
			0x0101: []byte("Kogge virtual card"),
			0x0102: long,
		},
	}}
}

// Card is the card's logic: power state, selected applet and file. It is
// safe for concurrent use.
type Card struct {
	atr     []byte
	applets []Applet

	mu       sync.Mutex
	powered  bool
	applet   *Applet
	current  uint16
	selected bool
}

// NewCard returns a card with the given ATR and applets.
func NewCard(atr []byte, applets []Applet) *Card {
	return &Card{atr: bytes.Clone(atr), applets: applets}
}

// Handle answers one payload from vpcd: a control command (nil answer for
// power and reset, the ATR for CtrlATR) or a command APDU (the response
// APDU).
func (c *Card) Handle(p []byte) []byte {
	if len(p) == 1 {
		c.mu.Lock()
		defer c.mu.Unlock()
		switch p[0] {
		case CtrlPowerOff:
			c.powered = false
			c.reset()
		case CtrlPowerOn, CtrlReset:
			c.powered = true
			c.reset()
		case CtrlATR:
			return bytes.Clone(c.atr)
		}
		return nil
	}
	return c.Process(p)
}

func (c *Card) reset() {
	c.applet, c.selected = nil, false
}

// APDU is a parsed command APDU (short or extended form).
type APDU struct {
	CLA, INS, P1, P2 byte
	Data             []byte
	Le               int // -1 when absent; 256 or 65536 for a zero Le
}

// ParseAPDU parses a command APDU in any of the four ISO 7816-4 cases.
func ParseAPDU(b []byte) (APDU, error) {
	if len(b) < 4 {
		return APDU{}, fmt.Errorf("apdu of %d bytes: at least 4", len(b))
	}
	a := APDU{CLA: b[0], INS: b[1], P1: b[2], P2: b[3], Le: -1}
	body := b[4:]
	switch {
	case len(body) == 0: // case 1
		return a, nil
	case len(body) == 1: // case 2 short
		a.Le = int(body[0])
		if a.Le == 0 {
			a.Le = 256
		}
		return a, nil
	case body[0] != 0: // case 3 or 4 short
		lc := int(body[0])
		switch len(body) {
		case 1 + lc:
		case 2 + lc:
			a.Le = int(body[1+lc])
			if a.Le == 0 {
				a.Le = 256
			}
		default:
			return APDU{}, fmt.Errorf("apdu: Lc %d does not match %d body bytes", lc, len(body))
		}
		a.Data = body[1 : 1+lc]
		return a, nil
	case len(body) == 3: // case 2 extended
		a.Le = int(binary.BigEndian.Uint16(body[1:]))
		if a.Le == 0 {
			a.Le = 65536
		}
		return a, nil
	case len(body) > 3: // case 3 or 4 extended
		lc := int(binary.BigEndian.Uint16(body[1:3]))
		if lc == 0 {
			return APDU{}, errors.New("apdu: extended Lc of 0")
		}
		switch len(body) {
		case 3 + lc:
		case 5 + lc:
			a.Le = int(binary.BigEndian.Uint16(body[3+lc:]))
			if a.Le == 0 {
				a.Le = 65536
			}
		default:
			return APDU{}, fmt.Errorf("apdu: extended Lc %d does not match %d body bytes", lc, len(body))
		}
		a.Data = body[3 : 3+lc]
		return a, nil
	}
	return APDU{}, fmt.Errorf("apdu: malformed body of %d bytes", len(body))
}

// Process answers a command APDU with a response APDU (data and status
// word). It never fails: errors are status words.
func (c *Card) Process(b []byte) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.powered {
		return sw(nil, SWNotPoweredUp)
	}
	a, err := ParseAPDU(b)
	if err != nil {
		return sw(nil, SWWrongLength)
	}
	if a.CLA != 0x00 {
		return sw(nil, SWCLANotSupp)
	}
	switch a.INS {
	case insSelect:
		return c.selectFile(a)
	case insReadBinary:
		return c.readBinary(a)
	}
	return sw(nil, SWINSNotSupp)
}

func (c *Card) selectFile(a APDU) []byte {
	switch a.P1 {
	case selectByName:
		for i := range c.applets {
			if bytes.Equal(c.applets[i].AID, a.Data) {
				c.applet, c.selected = &c.applets[i], false
				if a.P2&0x0C == 0x0C { // no response data
					return sw(nil, SWOK)
				}
				fci := append([]byte{0x6F, byte(2 + len(a.Data)), 0x84, byte(len(a.Data))}, a.Data...)
				return sw(fci, SWOK)
			}
		}
		return sw(nil, SWFileNotFound)
	case selectByFIDFirst, selectEFUnderDF:
		if len(a.Data) != 2 {
			return sw(nil, SWWrongLength)
		}
		fid := binary.BigEndian.Uint16(a.Data)
		if c.applet == nil {
			return sw(nil, SWFileNotFound)
		}
		if _, ok := c.applet.Files[fid]; !ok {
			return sw(nil, SWFileNotFound)
		}
		c.current, c.selected = fid, true
		return sw(nil, SWOK)
	}
	return sw(nil, SWWrongP1P2)
}

func (c *Card) readBinary(a APDU) []byte {
	if len(a.Data) > 0 {
		return sw(nil, SWWrongLength)
	}
	offset := int(a.P1&0x7F)<<8 | int(a.P2)
	if a.P1&0x80 != 0 { // short file identifier in P1, offset in P2
		if a.P1&0x60 != 0 {
			return sw(nil, SWWrongP1P2)
		}
		sfi := uint16(a.P1 & 0x1F)
		if c.applet == nil {
			return sw(nil, SWFileNotFound)
		}
		found := false
		for fid := range c.applet.Files {
			if fid&0x1F == sfi {
				c.current, c.selected, found = fid, true, true
				break
			}
		}
		if !found {
			return sw(nil, SWFileNotFound)
		}
		offset = int(a.P2)
	}
	if !c.selected || c.applet == nil {
		return sw(nil, SWNoCurrentEF)
	}
	file := c.applet.Files[c.current]
	if offset > len(file) {
		return sw(nil, SWWrongOffset)
	}
	le := a.Le
	if le < 0 {
		le = 256
	}
	end := min(offset+le, len(file), offset+256)
	data := file[offset:end]
	if len(data) < le && a.Le >= 0 && a.Le <= 256 {
		return sw(data, SWEndOfFile)
	}
	return sw(data, SWOK)
}

func sw(data []byte, status uint16) []byte {
	out := make([]byte, len(data), len(data)+2)
	copy(out, data)
	return binary.BigEndian.AppendUint16(out, status)
}
