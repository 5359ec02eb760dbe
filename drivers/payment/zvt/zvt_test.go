package zvt

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

func mustMarshal(t testing.TB, a APDU) []byte {
	t.Helper()
	b, err := a.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCommandBytes(t *testing.T) {
	reg, err := Registration("000000", 0xBE, EUR)
	if err != nil {
		t.Fatal(err)
	}
	auth, err := Authorisation(1234, EUR)
	if err != nil {
		t.Fatal(err)
	}
	status, _ := StatusEnquiry("123456")
	eod, _ := EndOfDay("000000")
	repeat, _ := RepeatReceipt("000000")
	tests := []struct {
		name string
		a    APDU
		want []byte
	}{
		{"registration", reg, []byte{0x06, 0x00, 0x06, 0x00, 0x00, 0x00, 0xBE, 0x09, 0x78}},
		{"authorisation 12.34 EUR", auth, []byte{0x06, 0x01, 0x0A, 0x04, 0x00, 0x00, 0x00, 0x00, 0x12, 0x34, 0x49, 0x09, 0x78}},
		{"status enquiry", status, []byte{0x05, 0x01, 0x03, 0x12, 0x34, 0x56}},
		{"end of day", eod, []byte{0x06, 0x50, 0x03, 0x00, 0x00, 0x00}},
		{"repeat receipt", repeat, []byte{0x06, 0x20, 0x03, 0x00, 0x00, 0x00}},
		{"abort", AbortRequest(), []byte{0x06, 0xB0, 0x00}},
		{"ack", Ack(), []byte{0x80, 0x00, 0x00}},
		{"nack", Nack(0x6B), []byte{0x84, 0x6B, 0x00}},
		{"abort from PT", Abort(0x6C), []byte{0x06, 0x1E, 0x01, 0x6C}},
		{"intermediate", Intermediate(0x0A, 30), []byte{0x04, 0xFF, 0x02, 0x0A, 30}},
		{"print line", PrintLine(0, "Betrag"), []byte{0x06, 0xD1, 0x07, 0x00, 'B', 'e', 't', 'r', 'a', 'g'}},
	}
	for _, tt := range tests {
		if got := mustMarshal(t, tt.a); !bytes.Equal(got, tt.want) {
			t.Errorf("%s: % X, want % X", tt.name, got, tt.want)
		}
	}
	for _, bad := range []func() error{
		func() error { _, err := Authorisation(0, EUR); return err },
		func() error { _, err := Authorisation(1_000_000_000_000, EUR); return err },
		func() error { _, err := Registration("12345", 0, EUR); return err },
		func() error { _, err := Registration("abcdef", 0, EUR); return err },
		func() error { _, err := Registration("000000", 0, 10000); return err },
	} {
		if bad() == nil {
			t.Error("invalid command accepted")
		}
	}
}

func TestExtendedLength(t *testing.T) {
	for _, n := range []int{0, 1, 254, 255, 256, 1000, MaxData} {
		a := APDU{Class: 0x06, Instr: 0xD3, Data: bytes.Repeat([]byte{0xAB}, n)}
		b := mustMarshal(t, a)
		if extended := b[2] == 0xFF; extended != (n >= 255) {
			t.Errorf("%d bytes: extended length %v", n, extended)
		}
		if n >= 255 && (int(b[3])|int(b[4])<<8) != n {
			t.Errorf("%d bytes: length bytes % X, want little-endian", n, b[2:5])
		}
		got, used, err := Parse(append(b, 0x99))
		if err != nil || used != len(b) || !bytes.Equal(got.Data, a.Data) || got.Ctrl() != 0x06D3 {
			t.Errorf("%d bytes: Parse = %v, %d, %v", n, got, used, err)
		}
		r, err := Read(bytes.NewReader(b))
		if err != nil || !bytes.Equal(r.Data, a.Data) {
			t.Errorf("%d bytes: Read = %v, %v", n, r, err)
		}
		if _, _, err := Parse(b[:len(b)-1]); n > 0 && !errors.Is(err, ErrShort) {
			t.Errorf("%d bytes: Parse of a cut APDU: %v", n, err)
		}
	}
	if _, err := (APDU{Data: make([]byte, MaxData+1)}).Marshal(); err == nil {
		t.Error("oversized APDU marshalled")
	}
}

func TestCRC(t *testing.T) {
	if got := CRC([]byte("123456789")); got != 0x2189 {
		t.Fatalf("CRC check value %04x, want 2189", got)
	}
}

func TestFrame(t *testing.T) {
	apdu := []byte{0x06, 0x01, 0x03, 0x10, 0x00, 0x10} // two DLEs to double
	f := Frame(apdu)
	if !bytes.HasPrefix(f, []byte{DLE, STX, 0x06, 0x01, 0x03, DLE, DLE, 0x00, DLE, DLE, DLE, ETX}) {
		t.Fatalf("frame % X", f)
	}
	crc := CRC(append(append([]byte(nil), apdu...), ETX))
	if f[len(f)-2] != byte(crc) || f[len(f)-1] != byte(crc>>8) {
		t.Fatalf("CRC bytes % X, want %04x low byte first", f[len(f)-2:], crc)
	}

	var d FrameDecoder
	var events []Event
	stream := append([]byte{0x55, ACK, NAK}, f...)
	bad := Frame([]byte{0x80, 0x00, 0x00})
	bad[len(bad)-1] ^= 0xFF
	stream = append(stream, bad...)
	stream = append(stream, DLE, STX, 0x01, DLE, 0x41) // DLE and a wrong byte
	for _, c := range stream {
		if e := d.Feed(c); e.Kind != EventNone {
			events = append(events, e)
		}
	}
	kinds := []EventKind{EventAck, EventNak, EventFrame, EventBadFrame, EventBadFrame}
	if len(events) != len(kinds) {
		t.Fatalf("events %+v", events)
	}
	for i, e := range events {
		if e.Kind != kinds[i] {
			t.Errorf("event %d: %d, want %d", i, e.Kind, kinds[i])
		}
	}
	if !bytes.Equal(events[2].Data, apdu) {
		t.Errorf("frame data % X, want % X", events[2].Data, apdu)
	}
}

func TestStatusInfoRoundTrip(t *testing.T) {
	in := StatusInfo{
		Result: 0, Amount: 600, Currency: EUR, Trace: 4711, ReceiptNo: 42, TurnoverNo: 17,
		Date: 106, Clock: 81530, TerminalID: "52500001", PAN: "672559******1234",
		CardType: 5, CardName: "girocard", Text: "Zahlung erfolgt",
	}
	data, err := in.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	out, err := ParseStatusInfo(data)
	if err != nil {
		t.Fatal(err)
	}
	if out != in {
		t.Fatalf("round trip:\n%+v\n%+v", out, in)
	}
	now := time.Date(2025, 1, 6, 9, 0, 0, 0, time.UTC)
	if w := out.When(now, time.UTC); !w.Equal(time.Date(2025, 1, 6, 8, 15, 30, 0, time.UTC)) {
		t.Fatalf("When = %v", w)
	}
	newYear := time.Date(2025, 1, 1, 0, 0, 5, 0, time.UTC)
	late := StatusInfo{Date: 1231, Clock: 235959}
	if w := late.When(newYear, time.UTC); w.Year() != 2024 {
		t.Fatalf("a transaction of 31 Dec seen on 1 Jan is from %v", w)
	}
}

func TestParseFieldsErrors(t *testing.T) {
	for name, b := range map[string][]byte{
		"unknown BMP":        {0x27, 0x00, 0x5A, 0x01},
		"cut fixed field":    {0x04, 0x00, 0x00},
		"bad LLVAR":          {0x8B, 0xF1, 0x3A, 'x'},
		"LLVAR past the end": {0x8B, 0xF0, 0xF9, 'x'},
		"cut LLLVAR header":  {0x3C, 0xF0},
		"bad TLV length":     {0x06, 0x83, 0x00, 0x00, 0x00},
		"TLV past the end":   {0x06, 0x05, 0x01},
	} {
		fs, err := ParseFields(b)
		if err == nil {
			t.Errorf("%s: no error", name)
		}
		if name == "unknown BMP" && (len(fs) != 1 || fs[0].Tag != 0x27) {
			t.Errorf("fields before the unknown BMP lost: %+v", fs)
		}
	}
}

func TestPrintText(t *testing.T) {
	lines := []string{"KUNDENBELEG", "Betrag EUR 6,00", "Zahlung erfolgt", strings.Repeat("-", 40)}
	a, err := PrintText(ReceiptCustomer, lines)
	if err != nil {
		t.Fatal(err)
	}
	kind, got, err := ParsePrintText(a.Data)
	if err != nil || kind != ReceiptCustomer || strings.Join(got, "|") != strings.Join(lines, "|") {
		t.Fatalf("ParsePrintText = %d, %q, %v", kind, got, err)
	}
	// Long receipts need two-byte TLV lengths.
	long := make([]string, 30)
	for i := range long {
		long[i] = strings.Repeat("x", 40)
	}
	a, err = PrintText(ReceiptMerchant, long)
	if err != nil {
		t.Fatal(err)
	}
	if _, got, err := ParsePrintText(a.Data); err != nil || len(got) != 30 {
		t.Fatalf("long receipt: %d lines, %v", len(got), err)
	}
	attr, line, err := ParsePrintLine(PrintLine(LineLast|1, "Grüße").Data)
	if err != nil || attr != 0x81 || line != "Grüße" {
		t.Fatalf("ParsePrintLine = %x %q %v", attr, line, err)
	}
}

func TestTexts(t *testing.T) {
	for code, want := range map[byte]string{0x05: "declined", 0x6C: "aborted", 0x2A: "code 42", 0xB7: "terminal error"} {
		if got := ResultText(code); !strings.Contains(got, want) {
			t.Errorf("ResultText(%#x) = %q", code, got)
		}
	}
	if got := IntermediateText(0x0A); !strings.Contains(got, "card") {
		t.Errorf("IntermediateText(0x0A) = %q", got)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte{0x06, 0x01, 0x0A, 0x04, 0, 0, 0, 0, 0x12, 0x34, 0x49, 0x09, 0x78})
	f.Add([]byte{0x06, 0xD3, 0xFF, 0x01, 0x00, 0x00})
	f.Add([]byte{0x80, 0x00, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		a, n, err := Parse(b)
		if err != nil {
			if _, rerr := Read(bytes.NewReader(b)); rerr == nil {
				t.Fatalf("Parse failed (%v) where Read succeeded", err)
			}
			return
		}
		enc, err := a.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		// A short data length may have been sent extended; the decoded
		// APDU must survive re-encoding either way.
		again, m, err := Parse(enc)
		if err != nil || m != len(enc) || !bytes.Equal(again.Data, a.Data) || again.Ctrl() != a.Ctrl() {
			t.Fatalf("re-encoding % X gave % X", b[:n], enc)
		}
		r, err := Read(bytes.NewReader(b))
		if err != nil || !bytes.Equal(r.Data, a.Data) {
			t.Fatalf("Read disagrees with Parse: %v", err)
		}
	})
}

func FuzzFrameDecoder(f *testing.F) {
	f.Add(Frame([]byte{0x06, 0x01, 0x03, 0x10, 0x00, 0x10}))
	f.Add([]byte{ACK, NAK, DLE, STX, DLE, DLE, DLE, ETX, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		var d FrameDecoder
		for _, c := range b {
			e := d.Feed(c)
			if e.Kind == EventFrame {
				// Whatever decodes must encode to a frame that decodes to
				// the same bytes.
				var d2 FrameDecoder
				var got []byte
				for _, c2 := range Frame(e.Data) {
					if e2 := d2.Feed(c2); e2.Kind == EventFrame {
						got = e2.Data
					}
				}
				if !bytes.Equal(got, e.Data) {
					t.Fatalf("frame % X does not round-trip", e.Data)
				}
			}
			if len(d.buf) > maxFrame {
				t.Fatalf("frame buffer grew to %d", len(d.buf))
			}
		}
	})
}

func FuzzParseFields(f *testing.F) {
	si, _ := StatusInfo{Result: 5, Amount: 100, Trace: 1, CardName: "x", Text: "abgelehnt", PAN: "1234"}.Marshal()
	f.Add(si)
	pt, _ := PrintText(ReceiptCustomer, []string{"a", "b"})
	f.Add(pt.Data)
	f.Add([]byte{0x06, 0x82, 0x00, 0x04, 0x1F, 0x07, 0x01, 0x02})
	f.Fuzz(func(t *testing.T, b []byte) {
		fs, _ := ParseFields(b)
		var enc []byte
		for _, fl := range fs {
			var err error
			if enc, err = AppendField(enc, fl.Tag, fl.Data); err != nil {
				return // e.g. an LLVAR field over 99 bytes cannot be re-encoded
			}
		}
		again, err := ParseFields(enc)
		if err != nil || len(again) != len(fs) {
			t.Fatalf("re-encoded fields do not parse: %v", err)
		}
		ParseStatusInfo(b)
		ParsePrintText(b)
		ParsePrintLine(b)
		if objs, err := ParseTLV(b); err == nil {
			var enc []byte
			for _, o := range objs {
				enc = AppendTLV(enc, o.Tag, o.Data)
			}
			if _, err := ParseTLV(enc); err != nil {
				t.Fatalf("re-encoded TLV does not parse: %v", err)
			}
		}
	})
}
