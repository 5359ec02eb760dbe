package zvt

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// BMP numbers (bitmaps) used by Kogge.
const (
	BMPTimeout      = 0x01
	BMPServiceByte  = 0x03
	BMPAmount       = 0x04
	BMPTLV          = 0x06
	BMPTrace        = 0x0B
	BMPTime         = 0x0C
	BMPDate         = 0x0D
	BMPExpiry       = 0x0E
	BMPCardSeq      = 0x17
	BMPPaymentType  = 0x19
	BMPPAN          = 0x22
	BMPResultCode   = 0x27
	BMPTerminalID   = 0x29
	BMPVUNumber     = 0x2A
	BMPAID          = 0x3B
	BMPAdditional   = 0x3C
	BMPCurrency     = 0x49
	BMPReceiptNo    = 0x87
	BMPTurnoverNo   = 0x88
	BMPCardType     = 0x8A
	BMPCardName     = 0x8B
	BMPCardTypeID   = 0x8C
	BMPOrigTrace    = 0x37
	BMPAIDParameter = 0xBA
)

// Variable lengths: LLVAR and LLLVAR prefix the data with two or three
// bytes 0xFn holding the decimal digits of its length.
const (
	llvar  = -2
	lllvar = -3
	tlv    = -6
)

// bmpLength returns the length of a BMP's data, llvar, lllvar or tlv, and
// false for a BMP this package does not know (the rest of the sequence
// cannot be decoded then).
func bmpLength(tag byte) (int, bool) {
	switch tag {
	case 0x01, 0x02, 0x03, 0x05, 0x19, 0x27, 0x8A, 0x8C, 0xA0, 0xD0, 0xD2, 0xD3, 0xE0, 0xEA:
		return 1, true
	case 0x0D, 0x0E, 0x17, 0x3A, 0x49, 0x87:
		return 2, true
	case 0x0B, 0x0C, 0x37, 0x88:
		return 3, true
	case 0x29:
		return 4, true
	case 0xBA:
		return 5, true
	case 0x04:
		return 6, true
	case 0x3B, 0xEB:
		return 8, true
	case 0x2A:
		return 15, true
	case 0x22, 0x23, 0x2D, 0x8B, 0x92, 0xA7, 0xD1, 0xE1, 0xE2, 0xE3, 0xE4, 0xE5, 0xE6, 0xE7, 0xE8, 0xE9, 0xF1, 0xF2, 0xF3, 0xF4, 0xF5, 0xF6, 0xF7, 0xF8, 0xF9:
		return llvar, true
	case 0x24, 0x3C, 0x9A, 0xAF, 0xF0:
		return lllvar, true
	case 0x06:
		return tlv, true
	}
	return 0, false
}

// Field is one BMP and its data (without a length prefix).
type Field struct {
	Tag  byte
	Data []byte
}

// Fields is a decoded BMP sequence.
type Fields []Field

// Get returns the data of the first BMP tag.
func (fs Fields) Get(tag byte) ([]byte, bool) {
	for _, f := range fs {
		if f.Tag == tag {
			return f.Data, true
		}
	}
	return nil, false
}

// ParseFields decodes a sequence of BMPs. On an unknown BMP or a length
// running past the end it returns the fields before it and an error; the
// fields are still usable.
func ParseFields(b []byte) (Fields, error) {
	var fs Fields
	for len(b) > 0 {
		tag := b[0]
		n, ok := bmpLength(tag)
		if !ok {
			return fs, fmt.Errorf("zvt: unknown BMP %#02x", tag)
		}
		b = b[1:]
		hdr := 0
		switch n {
		case llvar, lllvar:
			hdr = -n
			if len(b) < hdr {
				return fs, fmt.Errorf("zvt: BMP %#02x: length cut off", tag)
			}
			v, err := varLength(b[:hdr])
			if err != nil {
				return fs, fmt.Errorf("zvt: BMP %#02x: %w", tag, err)
			}
			n = v
		case tlv:
			v, h, err := berLength(b)
			if err != nil {
				return fs, fmt.Errorf("zvt: BMP 06: %w", err)
			}
			n, hdr = v, h
		}
		if len(b) < hdr+n {
			return fs, fmt.Errorf("zvt: BMP %#02x: %d bytes announced, %d left", tag, n, len(b)-hdr)
		}
		fs = append(fs, Field{Tag: tag, Data: b[hdr : hdr+n]})
		b = b[hdr+n:]
	}
	return fs, nil
}

func varLength(b []byte) (int, error) {
	n := 0
	for _, c := range b {
		if c&0xF0 != 0xF0 || c&0x0F > 9 {
			return 0, fmt.Errorf("length byte %#02x is not 0xF0–0xF9", c)
		}
		n = n*10 + int(c&0x0F)
	}
	return n, nil
}

// AppendField appends a BMP with its data and, for variable BMPs, the
// length prefix. It fails for unknown BMPs and wrong lengths.
func AppendField(dst []byte, tag byte, data []byte) ([]byte, error) {
	n, ok := bmpLength(tag)
	if !ok {
		return dst, fmt.Errorf("zvt: unknown BMP %#02x", tag)
	}
	dst = append(dst, tag)
	switch {
	case n == llvar && len(data) <= 99:
		dst = append(dst, 0xF0|byte(len(data)/10), 0xF0|byte(len(data)%10))
	case n == lllvar && len(data) <= 999:
		dst = append(dst, 0xF0|byte(len(data)/100), 0xF0|byte(len(data)/10%10), 0xF0|byte(len(data)%10))
	case n == tlv:
		dst = appendBERLength(dst, len(data))
	case n != len(data):
		return dst, fmt.Errorf("zvt: BMP %#02x takes %d bytes, not %d", tag, n, len(data))
	}
	return append(dst, data...), nil
}

// BCD encodes the decimal number v right-aligned in size bytes.
func BCD(v uint64, size int) ([]byte, error) {
	b := make([]byte, size)
	for i := size - 1; i >= 0; i-- {
		b[i] = byte(v%10) | byte(v/10%10)<<4
		v /= 100
	}
	if v != 0 {
		return nil, fmt.Errorf("zvt: number too large for %d BCD bytes", size)
	}
	return b, nil
}

// ParseBCD decodes BCD digits.
func ParseBCD(b []byte) (uint64, error) {
	if len(b) > 9 {
		return 0, errors.New("zvt: BCD number longer than 18 digits")
	}
	var v uint64
	for _, c := range b {
		hi, lo := c>>4, c&0x0F
		if hi > 9 || lo > 9 {
			return 0, fmt.Errorf("zvt: %#02x is not a BCD byte", c)
		}
		v = v*100 + uint64(hi)*10 + uint64(lo)
	}
	return v, nil
}

// Digits renders BCD bytes as digits, with masked nibbles (0xE) as '*'
// and padding nibbles (0xF) dropped, as card numbers come.
func Digits(b []byte) string {
	var s strings.Builder
	for _, c := range b {
		for _, n := range []byte{c >> 4, c & 0x0F} {
			switch {
			case n <= 9:
				s.WriteByte('0' + n)
			case n == 0x0E:
				s.WriteByte('*')
			}
		}
	}
	return s.String()
}

// Amount encodes cents as BMP 04 data (6 BCD bytes, 12 digits).
func Amount(cents int64) ([]byte, error) {
	if cents < 0 {
		return nil, errors.New("zvt: negative amount")
	}
	return BCD(uint64(cents), 6)
}

// Currency encodes an ISO 4217 numeric currency code (978 for EUR).
func Currency(code int) ([]byte, error) {
	if code < 0 || code > 9999 {
		return nil, fmt.Errorf("zvt: currency code %d out of range", code)
	}
	return BCD(uint64(code), 2)
}

// Password encodes a six-digit password as three BCD bytes.
func Password(p string) ([]byte, error) {
	if len(p) != 6 {
		return nil, errors.New("zvt: the password must have six digits")
	}
	v, err := strconv.ParseUint(p, 10, 32)
	if err != nil {
		return nil, errors.New("zvt: the password must have six digits")
	}
	return BCD(v, 3)
}
