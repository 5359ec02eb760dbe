package enforcement

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Limits of notice numbers.
const (
	// MaxPrefix is the longest device prefix.
	MaxPrefix = 8
	// seqDigits is the width the sequence is padded to.
	seqDigits = 7
	// maxSeq keeps a notice number within the RF reference's 21
	// characters: prefix (8) + sequence (12) + check digit (1).
	maxSeq = 999_999_999_999
)

// ErrNoticeNumber means a text is not a well-formed notice number.
var ErrNoticeNumber = errors.New("not a notice number")

// NoticeNumber is a notice number, unique without a network: the
// device's prefix (given to the device at enrollment, unique in the
// fleet), a sequence number the device persists (see Sequencer), and a
// check digit, written PREFIX-SEQUENCE-C with the sequence zero-padded to
// seven digits: "HB42-0000123-1".
//
// The check digit is the Damm check digit (H. M. Damm, 2004) over the
// prefix and the sequence, each letter taken as its two-digit value A=10 …
// Z=35 (as IBANs do). It finds every wrong digit and every swap of two
// neighbouring digits of the sequence, the mistakes people make when they
// type a number from paper.
type NoticeNumber struct {
	Prefix string
	Seq    uint64
}

// CheckPrefix checks a device prefix: 1–8 upper-case letters A–Z and
// digits, starting with a letter.
func CheckPrefix(p string) error {
	if len(p) < 1 || len(p) > MaxPrefix || p[0] < 'A' || p[0] > 'Z' {
		return fmt.Errorf("device prefix %q: want 1–%d upper-case letters and digits, starting with a letter (e.g. HB42)", clip(p), MaxPrefix)
	}
	for i := range len(p) {
		if c := p[i]; !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return fmt.Errorf("device prefix %q: want 1–%d upper-case letters and digits, starting with a letter (e.g. HB42)", clip(p), MaxPrefix)
		}
	}
	return nil
}

// String returns the number as printed, "HB42-0000123-1".
func (n NoticeNumber) String() string {
	seq := fmt.Sprintf("%0*d", seqDigits, n.Seq)
	return n.Prefix + "-" + seq + "-" + strconv.Itoa(damm(n.Prefix+seq))
}

// Compact returns the number without separators, "HB4200001231".
func (n NoticeNumber) Compact() string { return strings.ReplaceAll(n.String(), "-", "") }

// PaymentReference returns the payment reference of the notice: an ISO
// 11649 structured creditor reference ("RF" + two check digits (ISO 7064
// MOD 97-10) + the compact notice number). Banks check it when it is
// typed, SEPA transfers carry it unchanged, and the EPC QR code (GiroCode)
// has a field for it, so a payment finds its notice.
func (n NoticeNumber) PaymentReference() string {
	ref := n.Compact()
	return "RF" + fmt.Sprintf("%02d", 98-mod97(ref+"RF00")) + ref
}

// ParseNoticeNumber reads a notice number ("HB42-0000123-1"; case and
// surrounding space do not matter) and checks its check digit.
func ParseNoticeNumber(s string) (NoticeNumber, error) {
	s = strings.ToUpper(strings.TrimSpace(s))
	if len(s) > 64 {
		return NoticeNumber{}, fmt.Errorf("%w: %d characters", ErrNoticeNumber, len(s))
	}
	parts := strings.Split(s, "-")
	if len(parts) != 3 {
		return NoticeNumber{}, fmt.Errorf("%w: %q: want PREFIX-SEQUENCE-CHECK, e.g. HB42-0000123-1", ErrNoticeNumber, clip(s))
	}
	if err := CheckPrefix(parts[0]); err != nil {
		return NoticeNumber{}, fmt.Errorf("%w: %v", ErrNoticeNumber, err)
	}
	if len(parts[1]) < seqDigits || len(parts[1]) > 12 || !allDigits(parts[1]) || len(parts[2]) != 1 || !allDigits(parts[2]) {
		return NoticeNumber{}, fmt.Errorf("%w: %q: want a sequence of 7–12 digits and one check digit", ErrNoticeNumber, clip(s))
	}
	seq, _ := strconv.ParseUint(parts[1], 10, 64)
	n := NoticeNumber{Prefix: parts[0], Seq: seq}
	if n.String() != s {
		return NoticeNumber{}, fmt.Errorf("%w: %q: check digit wrong (mistyped?)", ErrNoticeNumber, clip(s))
	}
	return n, nil
}

// CheckPaymentReference checks an ISO 11649 creditor reference ("RF79
// HB42 0000 1231", spaces allowed): RF, two check digits, 1–21 letters and
// digits, MOD 97-10 remainder 1.
func CheckPaymentReference(s string) error {
	ref := strings.ToUpper(strings.ReplaceAll(s, " ", ""))
	if len(ref) < 5 || len(ref) > 25 || !strings.HasPrefix(ref, "RF") || !allDigits(ref[2:4]) || !isAlnum(ref[4:]) {
		return fmt.Errorf("payment reference %q: want RF, two check digits and 1–21 letters or digits", clip(s))
	}
	if mod97(ref[4:]+ref[:4]) != 1 {
		return fmt.Errorf("payment reference %q: check digits wrong (mistyped?)", clip(s))
	}
	return nil
}

// CheckIBAN checks an IBAN (spaces allowed): country code, check digits
// and account number, 15–34 characters, MOD 97-10 remainder 1.
func CheckIBAN(s string) error {
	iban := strings.ToUpper(strings.ReplaceAll(s, " ", ""))
	if len(iban) < 15 || len(iban) > 34 || !isUpperAZ(iban[:2]) || !allDigits(iban[2:4]) || !isAlnum(iban[4:]) {
		return fmt.Errorf("IBAN %q: want a country code, two check digits and the account (15–34 characters)", clip(s))
	}
	if mod97(iban[4:]+iban[:4]) != 1 {
		return fmt.Errorf("IBAN %q: check digits wrong", clip(s))
	}
	return nil
}

// Group4 writes s in groups of four, as IBANs and references are printed.
func Group4(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i += 4 {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(s[i:min(i+4, len(s))])
	}
	return b.String()
}

func isAlnum(s string) bool {
	for i := range len(s) {
		if c := s[i]; !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return s != ""
}

// digitsOf expands letters to their two-digit values (A=10 … Z=35).
func digitsOf(s string, yield func(d int)) {
	for i := range len(s) {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			yield(int(c - '0'))
		case c >= 'A' && c <= 'Z':
			v := int(c-'A') + 10
			yield(v / 10)
			yield(v % 10)
		}
	}
}

// mod97 is the remainder of s, letters expanded, modulo 97.
func mod97(s string) int {
	r := 0
	digitsOf(s, func(d int) { r = (r*10 + d) % 97 })
	return r
}

// dammTable is the quasigroup of order 10 of Damm's algorithm: weakly
// totally anti-symmetric, so every single error and every adjacent
// transposition changes the check digit.
var dammTable = [10][10]uint8{
	{0, 3, 1, 7, 5, 9, 8, 6, 4, 2},
	{7, 0, 9, 2, 1, 5, 4, 8, 6, 3},
	{4, 2, 0, 6, 8, 7, 1, 3, 5, 9},
	{1, 7, 5, 0, 9, 8, 3, 4, 2, 6},
	{6, 1, 2, 3, 0, 4, 5, 9, 7, 8},
	{3, 6, 7, 4, 2, 0, 9, 5, 8, 1},
	{5, 8, 6, 9, 7, 2, 0, 1, 3, 4},
	{8, 9, 4, 5, 3, 6, 2, 0, 1, 7},
	{9, 4, 3, 8, 6, 1, 7, 2, 0, 5},
	{2, 5, 8, 1, 4, 3, 6, 7, 9, 0},
}

// damm is the Damm check digit of s, letters expanded.
func damm(s string) int {
	var interim uint8
	digitsOf(s, func(d int) { interim = dammTable[interim][d] })
	return int(interim)
}
