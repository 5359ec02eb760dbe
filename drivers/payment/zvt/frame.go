package zvt

import "fmt"

// Bytes of the serial transport protocol.
const (
	STX = 0x02
	ETX = 0x03
	ACK = 0x06
	DLE = 0x10
	NAK = 0x15
)

// CRC is the CRC-CCITT of the serial transport protocol: polynomial
// x¹⁶+x¹²+x⁵+1 processed least significant bit first (0x8408), initial
// value 0, over the APDU bytes (before DLE doubling) and the closing ETX.
// It is sent least significant byte first. (This is the variant also
// known as CRC-16/KERMIT; its check value for "123456789" is 0x2189.)
func CRC(data []byte) uint16 {
	var crc uint16
	for _, b := range data {
		crc ^= uint16(b)
		for range 8 {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0x8408
			} else {
				crc >>= 1
			}
		}
	}
	return crc
}

func frameCRC(apdu []byte) uint16 {
	crc := CRC(apdu)
	// Continue over ETX without copying the APDU.
	crc ^= ETX
	for range 8 {
		if crc&1 != 0 {
			crc = crc>>1 ^ 0x8408
		} else {
			crc >>= 1
		}
	}
	return crc
}

// Frame wraps an encoded APDU for the serial line: DLE STX, the APDU with
// every DLE doubled, DLE ETX, CRC low byte, CRC high byte.
func Frame(apdu []byte) []byte {
	b := make([]byte, 0, len(apdu)+8)
	b = append(b, DLE, STX)
	for _, c := range apdu {
		b = append(b, c)
		if c == DLE {
			b = append(b, DLE)
		}
	}
	crc := frameCRC(apdu)
	return append(b, DLE, ETX, byte(crc), byte(crc>>8))
}

// EventKind is what a FrameDecoder found on the line.
type EventKind uint8

const (
	EventNone     EventKind = iota // nothing complete yet
	EventAck                       // an ACK byte outside a frame
	EventNak                       // a NAK byte outside a frame
	EventFrame                     // a frame with a correct CRC: Data is the APDU
	EventBadFrame                  // a damaged frame (CRC, DLE sequence, size): answer NAK
)

// Event is one result of a FrameDecoder.
type Event struct {
	Kind EventKind
	Data []byte // the APDU bytes of EventFrame
	Err  error  // why EventBadFrame
}

// FrameDecoder splits the byte stream of the serial transport into ACK,
// NAK and frames. Bytes outside frames other than ACK and NAK are noise
// and skipped.
type FrameDecoder struct {
	state uint8
	buf   []byte
	crcLo byte
}

const (
	fdIdle    = iota
	fdDLE     // DLE outside a frame
	fdData    // inside a frame
	fdDataDLE // DLE inside a frame
	fdCRC1
	fdCRC2
)

// maxFrame bounds a frame's APDU: the largest APDU plus its header.
const maxFrame = MaxData + 5

// Feed takes one byte and returns what it completed.
func (d *FrameDecoder) Feed(c byte) Event {
	switch d.state {
	case fdIdle:
		switch c {
		case ACK:
			return Event{Kind: EventAck}
		case NAK:
			return Event{Kind: EventNak}
		case DLE:
			d.state = fdDLE
		}
	case fdDLE:
		switch c {
		case STX:
			d.state, d.buf = fdData, d.buf[:0]
		case DLE:
		default:
			d.state = fdIdle
		}
	case fdData:
		if c == DLE {
			d.state = fdDataDLE
			return Event{}
		}
		if len(d.buf) >= maxFrame {
			d.state = fdIdle
			return Event{Kind: EventBadFrame, Err: fmt.Errorf("frame longer than %d bytes", maxFrame)}
		}
		d.buf = append(d.buf, c)
	case fdDataDLE:
		switch c {
		case DLE:
			d.buf = append(d.buf, DLE)
			d.state = fdData
		case ETX:
			d.state = fdCRC1
		case STX: // a new frame begins: the old one is lost
			d.buf = d.buf[:0]
			d.state = fdData
			return Event{Kind: EventBadFrame, Err: fmt.Errorf("frame restarted before its end")}
		default:
			d.state = fdIdle
			return Event{Kind: EventBadFrame, Err: fmt.Errorf("DLE %#02x inside a frame", c)}
		}
	case fdCRC1:
		d.crcLo, d.state = c, fdCRC2
	case fdCRC2:
		d.state = fdIdle
		got := uint16(d.crcLo) | uint16(c)<<8
		if want := frameCRC(d.buf); got != want {
			return Event{Kind: EventBadFrame, Err: fmt.Errorf("CRC %04x, want %04x", got, want)}
		}
		return Event{Kind: EventFrame, Data: append([]byte(nil), d.buf...)}
	}
	return Event{}
}
