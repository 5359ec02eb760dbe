package zvt

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/text/encoding/charmap"
)

// Config bits of the registration (06 00).
const (
	ConfigReceiptPaymentByECR = 0x02 // the ECR prints payment receipts
	ConfigReceiptAdminByECR   = 0x04 // the ECR prints administration receipts
	ConfigIntermediateStatus  = 0x08 // the PT sends intermediate status (04 FF)
	ConfigECRPaymentControl   = 0x10 // amount entry on the PT not possible
	ConfigECRAdminControl     = 0x20 // administration on the PT not possible
	ConfigPrintLines          = 0x80 // receipts come as print lines (06 D1/06 D3)
)

// EUR is the ISO 4217 numeric code of the euro.
const EUR = 978

// Registration is 06 00: password, config byte, currency code.
func Registration(password string, config byte, currency int) (APDU, error) {
	pw, err := Password(password)
	if err != nil {
		return APDU{}, err
	}
	cc, err := Currency(currency)
	if err != nil {
		return APDU{}, err
	}
	return New(CmdRegistration, append(append(pw, config), cc...)), nil
}

// Authorisation is 06 01 with BMP 04 (amount in cents) and 49 (currency).
func Authorisation(cents int64, currency int) (APDU, error) {
	if cents <= 0 {
		return APDU{}, errors.New("zvt: the amount must be positive")
	}
	amount, err := Amount(cents)
	if err != nil {
		return APDU{}, err
	}
	cc, err := Currency(currency)
	if err != nil {
		return APDU{}, err
	}
	data, _ := AppendField(nil, BMPAmount, amount)
	data, _ = AppendField(data, BMPCurrency, cc)
	return New(CmdAuthorisation, data), nil
}

// withPassword builds a command whose data is only the password.
func withPassword(ctrl Ctrl, password string) (APDU, error) {
	pw, err := Password(password)
	if err != nil {
		return APDU{}, err
	}
	return New(ctrl, pw), nil
}

// StatusEnquiry is 05 01.
func StatusEnquiry(password string) (APDU, error) { return withPassword(CmdStatusEnquiry, password) }

// EndOfDay is 06 50.
func EndOfDay(password string) (APDU, error) { return withPassword(CmdEndOfDay, password) }

// RepeatReceipt is 06 20: the PT sends the last transaction again.
func RepeatReceipt(password string) (APDU, error) { return withPassword(CmdRepeatReceipt, password) }

// AbortRequest is 06 B0 from the ECR: stop the running command.
func AbortRequest() APDU { return New(CmdAbortECR, nil) }

// StatusInfo is the content of 04 0F, the result of a transaction.
type StatusInfo struct {
	Result     byte  // BMP 27, 0 for success
	Amount     int64 // BMP 04, cents
	Currency   int   // BMP 49
	Trace      int   // BMP 0B
	ReceiptNo  int   // BMP 87
	TurnoverNo int   // BMP 88
	Date       int   // BMP 0D, MMDD
	Clock      int   // BMP 0C, hhmmss
	TerminalID string
	PAN        string // masked digits
	Expiry     string // YYMM
	CardType   byte   // BMP 8A
	CardName   string // BMP 8B
	Text       string // BMP 3C, additional text
}

// When is the transaction's date and time on the terminal, which sends no
// year: the one that puts it nearest to now.
func (s StatusInfo) When(now time.Time, loc *time.Location) time.Time {
	if s.Date == 0 {
		return time.Time{}
	}
	month, day := time.Month(s.Date/100), s.Date%100
	h, m, sec := s.Clock/10000, s.Clock/100%100, s.Clock%100
	best := time.Time{}
	for _, y := range []int{now.Year() - 1, now.Year(), now.Year() + 1} {
		t := time.Date(y, month, day, h, m, sec, 0, loc)
		if best.IsZero() || absDur(t.Sub(now)) < absDur(best.Sub(now)) {
			best = t
		}
	}
	return best
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// ParseStatusInfo decodes 04 0F. With an error, the fields before the
// problem are still set.
func ParseStatusInfo(data []byte) (StatusInfo, error) {
	fs, err := ParseFields(data)
	var s StatusInfo
	num := func(tag byte) int {
		b, ok := fs.Get(tag)
		if !ok {
			return 0
		}
		v, perr := ParseBCD(b)
		if perr != nil && err == nil {
			err = fmt.Errorf("zvt: BMP %#02x: %w", tag, perr)
		}
		return int(v)
	}
	if b, ok := fs.Get(BMPResultCode); ok {
		s.Result = b[0]
	}
	s.Amount = int64(num(BMPAmount))
	s.Currency = num(BMPCurrency)
	s.Trace = num(BMPTrace)
	s.ReceiptNo = num(BMPReceiptNo)
	s.TurnoverNo = num(BMPTurnoverNo)
	s.Date = num(BMPDate)
	s.Clock = num(BMPTime)
	if b, ok := fs.Get(BMPTerminalID); ok {
		s.TerminalID = Digits(b)
	}
	if b, ok := fs.Get(BMPPAN); ok {
		s.PAN = Digits(b)
	}
	if b, ok := fs.Get(BMPExpiry); ok {
		s.Expiry = Digits(b)
	}
	if b, ok := fs.Get(BMPCardType); ok {
		s.CardType = b[0]
	}
	if b, ok := fs.Get(BMPCardName); ok {
		s.CardName = text(b)
	}
	if b, ok := fs.Get(BMPAdditional); ok {
		s.Text = text(b)
	}
	return s, err
}

// Marshal encodes s as 04 0F data (the terminal's side).
func (s StatusInfo) Marshal() ([]byte, error) {
	var b []byte
	var err error
	add := func(tag byte, data []byte, e error) {
		if err == nil && e == nil {
			b, e = AppendField(b, tag, data)
		}
		if err == nil {
			err = e
		}
	}
	add(BMPResultCode, []byte{s.Result}, nil)
	if s.Amount > 0 {
		v, e := Amount(s.Amount)
		add(BMPAmount, v, e)
	}
	if s.Currency > 0 {
		v, e := Currency(s.Currency)
		add(BMPCurrency, v, e)
	}
	num := func(tag byte, v, size int) {
		if v > 0 {
			d, e := BCD(uint64(v), size)
			add(tag, d, e)
		}
	}
	num(BMPTrace, s.Trace, 3)
	num(BMPReceiptNo, s.ReceiptNo, 2)
	num(BMPTurnoverNo, s.TurnoverNo, 3)
	num(BMPTime, s.Clock, 3)
	num(BMPDate, s.Date, 2)
	if s.TerminalID != "" {
		d, e := digitsBCD(s.TerminalID, 4)
		add(BMPTerminalID, d, e)
	}
	if s.PAN != "" {
		d, e := digitsBCD(s.PAN, (len(s.PAN)+1)/2)
		add(BMPPAN, d, e)
	}
	if s.CardType != 0 {
		add(BMPCardType, []byte{s.CardType}, nil)
	}
	if s.CardName != "" {
		add(BMPCardName, encodeText(s.CardName), nil)
	}
	if s.Text != "" {
		add(BMPAdditional, encodeText(s.Text), nil)
	}
	return b, err
}

// digitsBCD packs digits ('*' for a masked digit) into size bytes,
// padding with 0xF nibbles.
func digitsBCD(s string, size int) ([]byte, error) {
	if len(s) > 2*size {
		return nil, fmt.Errorf("zvt: %d digits do not fit %d bytes", len(s), size)
	}
	nib := make([]byte, 2*size)
	for i := range nib {
		nib[i] = 0x0F
	}
	for i, c := range []byte(s) {
		switch {
		case c >= '0' && c <= '9':
			nib[i] = c - '0'
		case c == '*':
			nib[i] = 0x0E
		default:
			return nil, fmt.Errorf("zvt: %q is not a digit", c)
		}
	}
	b := make([]byte, size)
	for i := range b {
		b[i] = nib[2*i]<<4 | nib[2*i+1]
	}
	return b, nil
}

// ParseIntermediate decodes 04 FF: the status code (the optional timeout
// byte and BMPs after it are ignored).
func ParseIntermediate(data []byte) (byte, error) {
	if len(data) == 0 {
		return 0, errors.New("zvt: intermediate status without a code")
	}
	return data[0], nil
}

// Intermediate is 04 FF with a status code and a display timeout in
// seconds (0 for none).
func Intermediate(code byte, timeout byte) APDU {
	return New(MsgIntermediate, []byte{code, timeout})
}

// ParseAbort decodes 06 1E from the PT: its result code (0xFF, system
// error, if missing).
func ParseAbort(data []byte) byte {
	if len(data) == 0 {
		return 0xFF
	}
	return data[0]
}

// Abort is 06 1E from the PT with a result code.
func Abort(code byte) APDU { return New(MsgAbort, []byte{code}) }

// Print-line attributes of 06 D1.
const (
	LineLast     = 0x80 // with other bits set: the receipt's last line
	LineFeed     = 0xFF // feed lines; the count follows
	LineCentered = 0x40
)

// PrintLine is 06 D1: an attribute byte and the text in code page 437.
func PrintLine(attr byte, s string) APDU {
	return New(MsgPrintLine, append([]byte{attr}, encodeText(s)...))
}

// ParsePrintLine decodes 06 D1.
func ParsePrintLine(data []byte) (attr byte, line string, err error) {
	if len(data) == 0 {
		return 0, "", errors.New("zvt: print line without attribute")
	}
	return data[0], text(data[1:]), nil
}

// Receipt types of 06 D3 (TLV 1F07).
const (
	ReceiptMerchant = 1
	ReceiptCustomer = 2
	ReceiptAdmin    = 3
)

// PrintText is 06 D3: a receipt as a text block in a TLV container.
func PrintText(kind byte, lines []string) (APDU, error) {
	var inner []byte
	inner = AppendTLV(inner, TagReceiptType, []byte{kind})
	for _, l := range lines {
		inner = AppendTLV(inner, TagTextLines, encodeText(l))
	}
	container := AppendTLV(nil, TagPrintTexts, inner)
	data, err := AppendField(nil, BMPTLV, container)
	if err != nil {
		return APDU{}, err
	}
	if len(data) > MaxData {
		return APDU{}, errors.New("zvt: receipt too long for one APDU")
	}
	return New(MsgPrintText, data), nil
}

// ParsePrintText decodes 06 D3: the receipt type (0 if not given) and the
// lines.
func ParsePrintText(data []byte) (kind byte, lines []string, err error) {
	fs, err := ParseFields(data)
	if err != nil {
		return 0, nil, err
	}
	raw, ok := fs.Get(BMPTLV)
	if !ok {
		return 0, nil, errors.New("zvt: print text without TLV container")
	}
	objs, err := ParseTLV(raw)
	if err != nil {
		return 0, nil, err
	}
	var walk func([]TLV, int) error
	walk = func(objs []TLV, depth int) error {
		for _, o := range objs {
			switch {
			case o.Tag == TagReceiptType && len(o.Data) > 0:
				kind = o.Data[len(o.Data)-1]
			case o.Tag == TagTextLines:
				lines = append(lines, text(o.Data))
			case o.Constructed() && depth < 4:
				inner, err := ParseTLV(o.Data)
				if err != nil {
					return err
				}
				if err := walk(inner, depth+1); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return kind, lines, walk(objs, 0)
}

// text decodes terminal text (code page 437, ZVT's default).
func text(b []byte) string {
	var s strings.Builder
	for _, c := range b {
		s.WriteRune(charmap.CodePage437.DecodeByte(c))
	}
	return s.String()
}

func encodeText(s string) []byte {
	b := make([]byte, 0, len(s))
	for _, r := range s {
		c, ok := charmap.CodePage437.EncodeRune(r)
		if !ok {
			c = '?'
		}
		b = append(b, c)
	}
	return b
}

// Completion is 06 0F with BMPs (for example 27 terminal status, 29
// terminal id).
func Completion(fields []byte) APDU { return New(MsgCompletion, fields) }

// ResultText explains a result code (BMP 27, 06 1E, 84 xx) to a person.
func ResultText(code byte) string {
	switch code {
	case 0x00:
		return "no error"
	case 0x05:
		return "declined by the card issuer (do not honour)"
	case 0x33:
		return "declined: insufficient funds"
	case 0x36:
		return "declined: card expired"
	case 0x37:
		return "declined: wrong PIN"
	case 0x64:
		return "card not readable"
	case 0x65:
		return "card data not present"
	case 0x66:
		return "processing error"
	case 0x67:
		return "function not permitted for girocard and Maestro"
	case 0x68:
		return "function not permitted for credit and fuel cards"
	case 0x6A:
		return "turnover file full: run the end of day"
	case 0x6B:
		return "function deactivated (terminal not registered)"
	case 0x6C:
		return "aborted (timeout or the abort key)"
	case 0x6E:
		return "card blocked"
	case 0x6F:
		return "wrong currency"
	case 0x78:
		return "card expired"
	case 0x79:
		return "card not yet valid"
	case 0x7A:
		return "card unknown"
	case 0x83:
		return "function not possible"
	case 0x9A:
		return "ZVT protocol error"
	case 0x9C:
		return "please wait: terminal busy"
	case 0xFF:
		return "system error"
	}
	if code < 0x64 {
		return fmt.Sprintf("declined by the card issuer (code %02d)", code)
	}
	return fmt.Sprintf("terminal error %#02x", code)
}

// IntermediateText is what an intermediate status code asks of the
// customer.
func IntermediateText(code byte) string {
	switch code {
	case 0x00:
		return "waiting for the amount to be confirmed"
	case 0x01:
		return "please watch the PIN pad"
	case 0x0A:
		return "insert, tap or swipe your card"
	case 0x0B:
		return "please remove your card"
	case 0x0E, 0x17:
		return "please wait"
	case 0x15:
		return "wrong PIN"
	}
	return fmt.Sprintf("terminal status %#02x", code)
}
