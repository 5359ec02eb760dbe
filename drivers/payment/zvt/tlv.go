package zvt

import (
	"errors"
	"fmt"
)

// TLV tags used by Kogge.
const (
	TagTextLines   = 0x07   // a receipt line
	TagPrintTexts  = 0x25   // container of a receipt
	TagReceiptType = 0x1F07 // 1 merchant, 2 customer, 3 administration
)

// TLV is one data object of a BMP 06 container. Tags are kept as their
// bytes read as a big-endian number (0x1F07 for the two-byte tag 1F 07).
type TLV struct {
	Tag  uint32
	Data []byte
}

// Constructed reports whether the object holds further objects.
func (t TLV) Constructed() bool {
	first := t.Tag
	for first > 0xFF {
		first >>= 8
	}
	return first&0x20 != 0
}

// ParseTLV decodes a sequence of data objects (BER-TLV as ZVT uses it:
// tags of up to four bytes, lengths of up to two bytes).
func ParseTLV(b []byte) ([]TLV, error) {
	var out []TLV
	for len(b) > 0 {
		tag, n := uint32(b[0]), 1
		if b[0]&0x1F == 0x1F {
			for {
				if n >= len(b) {
					return out, errors.New("zvt: TLV tag cut off")
				}
				if n >= 4 {
					return out, errors.New("zvt: TLV tag longer than 4 bytes")
				}
				tag = tag<<8 | uint32(b[n])
				n++
				if b[n-1]&0x80 == 0 {
					break
				}
			}
		}
		b = b[n:]
		l, h, err := berLength(b)
		if err != nil {
			return out, fmt.Errorf("zvt: TLV tag %x: %w", tag, err)
		}
		if len(b) < h+l {
			return out, fmt.Errorf("zvt: TLV tag %x: %d bytes announced, %d left", tag, l, len(b)-h)
		}
		out = append(out, TLV{Tag: tag, Data: b[h : h+l]})
		b = b[h+l:]
	}
	return out, nil
}

// berLength decodes a length: one byte below 0x80, or 0x81 n, or 0x82 n n.
func berLength(b []byte) (n, hdr int, err error) {
	if len(b) == 0 {
		return 0, 0, errors.New("length missing")
	}
	switch c := b[0]; {
	case c < 0x80:
		return int(c), 1, nil
	case c == 0x81 && len(b) >= 2:
		return int(b[1]), 2, nil
	case c == 0x82 && len(b) >= 3:
		return int(b[1])<<8 | int(b[2]), 3, nil
	}
	return 0, 0, fmt.Errorf("length %#02x not supported or cut off", b[0])
}

func appendBERLength(dst []byte, n int) []byte {
	switch {
	case n < 0x80:
		return append(dst, byte(n))
	case n <= 0xFF:
		return append(dst, 0x81, byte(n))
	}
	return append(dst, 0x82, byte(n>>8), byte(n))
}

// AppendTLV appends one data object.
func AppendTLV(dst []byte, tag uint32, data []byte) []byte {
	switch {
	case tag > 0xFFFFFF:
		dst = append(dst, byte(tag>>24), byte(tag>>16), byte(tag>>8), byte(tag))
	case tag > 0xFFFF:
		dst = append(dst, byte(tag>>16), byte(tag>>8), byte(tag))
	case tag > 0xFF:
		dst = append(dst, byte(tag>>8), byte(tag))
	default:
		dst = append(dst, byte(tag))
	}
	dst = appendBERLength(dst, len(data))
	return append(dst, data...)
}
