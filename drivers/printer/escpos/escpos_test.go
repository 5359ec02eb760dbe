package escpos

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// sampleNotice is a parking warning notice as a warden's handheld prints
// it: umlauts, ß, € and §, sizes, bold, underline, alignment, a line too
// long for 48 columns, a QR code for online payment, and a partial cut.
func sampleNotice() *Document {
	return NewDocument(CP858).
		Align(Center).Bold(true).Size(2, 2).Line("Verwarnung").
		Size(1, 1).Line("Freie Hansestadt Bremen").
		Bold(false).Line("Ordnungsamt – Verkehrsüberwachung").
		Feed(1).
		Align(Left).
		Line("Nr.:         2025-HB-000123").
		Line("Tatzeit:     06.01.2025, 08:15–08:32 Uhr").
		Line("Tatort:      Am Markt 21, 28195 Bremen").
		Line("Kennzeichen: HB AB 1234 (D), VW, grau").
		Line("Ventile:     VL05 VR07 HL11 HR02").
		Feed(1).
		Bold(true).Line("Tatbestand 141312").Bold(false).
		Lines("Sie parkten im absoluten Haltverbot (Zeichen 283). § 41 Abs. 1 iVm Anlage 2, § 49 StVO; § 24 StVG; 52 BKat", 48).
		Feed(1).
		Text("Verwarnungsgeld: ").Bold(true).Underline(Underline1).Line("25,00 €").Underline(NoUnderline).Bold(false).
		Line("Bitte zahlen Sie binnen einer Woche (§ 56 OWiG).").
		Feed(1).
		Align(Center).
		QR("https://bezahlen.bremen.de/owi/2025-HB-000123?b=2500", QR{Module: 6, Level: ECMedium}).
		Line("Online bezahlen: QR-Code scannen").
		Align(Right).Line("Beamter 4711 · Gerät hh-0042").
		Feed(3).
		Cut(true)
}

func TestSampleNoticeGolden(t *testing.T) {
	got, err := sampleNotice().Bytes()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "notice.escpos")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("notice bytes differ from %s (run with -update if the change is intended):\ngot  % x\nwant % x", path, got, want)
	}
	if n := sampleNotice().Replaced(); n != 0 {
		t.Fatalf("%d characters replaced by '?'", n)
	}
}

func TestDocumentCommands(t *testing.T) {
	tests := []struct {
		name string
		doc  *Document
		want []byte // after the ESC @ ESC t 19 prologue
	}{
		{"bold", NewDocument(CP858).Bold(true).Bold(false), []byte{ESC, 'E', 1, ESC, 'E', 0}},
		{"underline", NewDocument(CP858).Underline(Underline2), []byte{ESC, '-', 2}},
		{"align", NewDocument(CP858).Align(Right), []byte{ESC, 'a', 2}},
		{"size", NewDocument(CP858).Size(2, 3), []byte{GS, '!', 0x12}},
		{"feed", NewDocument(CP858).Feed(4), []byte{ESC, 'd', 4}},
		{"line", NewDocument(CP858).Line("Grüße"), []byte{'G', 'r', 0x81, 0xe1, 'e', LF}},
		{"full cut", NewDocument(CP858).Cut(false), []byte{GS, 'V', 'A', 0}},
		{"partial cut", NewDocument(CP858).Cut(true), []byte{GS, 'V', 'B', 0}},
		{"qr", NewDocument(CP858).QR("ab", QR{Module: 4, Level: ECHigh}), []byte{
			GS, '(', 'k', 4, 0, '1', 'A', '2', 0,
			GS, '(', 'k', 3, 0, '1', 'C', 4,
			GS, '(', 'k', 3, 0, '1', 'E', '3',
			GS, '(', 'k', 5, 0, '1', 'P', '0', 'a', 'b',
			GS, '(', 'k', 3, 0, '1', 'Q', '0',
		}},
		{"qr defaults", NewDocument(CP858).QR("x", QR{}), []byte{
			GS, '(', 'k', 4, 0, '1', 'A', '2', 0,
			GS, '(', 'k', 3, 0, '1', 'C', 6,
			GS, '(', 'k', 3, 0, '1', 'E', '1',
			GS, '(', 'k', 4, 0, '1', 'P', '0', 'x',
			GS, '(', 'k', 3, 0, '1', 'Q', '0',
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.doc.Bytes()
			if err != nil {
				t.Fatal(err)
			}
			want := append([]byte{ESC, '@', ESC, 't', 19}, tt.want...)
			if !bytes.Equal(got, want) {
				t.Fatalf("got  % x\nwant % x", got, want)
			}
		})
	}
}

func TestWrap(t *testing.T) {
	tests := []struct {
		in    string
		width int
		want  []string
	}{
		{"Sie parkten im absoluten Haltverbot", 12, []string{"Sie parkten", "im absoluten", "Haltverbot"}},
		{"Donaudampfschifffahrt ok", 8, []string{"Donaudam", "pfschiff", "fahrt ok"}},
		{"a\n\nb", 5, []string{"a", "", "b"}},
		{"  spaced   out  ", 20, []string{"spaced out"}},
		{"äöü äöü", 3, []string{"äöü", "äöü"}},
		{"", 10, []string{""}},
	}
	for _, tt := range tests {
		if got := Wrap(tt.in, tt.width); strings.Join(got, "|") != strings.Join(tt.want, "|") {
			t.Errorf("Wrap(%q, %d) = %q, want %q", tt.in, tt.width, got, tt.want)
		}
	}
}

func TestQRLongData(t *testing.T) {
	data := strings.Repeat("x", 300) // more than 255: two length bytes
	got, err := NewDocument(CP437).QR(data, QR{}).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	store := []byte{GS, '(', 'k', byte(303 & 0xff), byte(303 >> 8), '1', 'P', '0'}
	if !bytes.Contains(got, store) {
		t.Fatalf("store command with pL pH for 303 bytes missing in % x", got[:40])
	}
}

func TestDocumentErrors(t *testing.T) {
	for name, d := range map[string]*Document{
		"size 0":         NewDocument(CP858).Size(0, 1),
		"size 9":         NewDocument(CP858).Size(1, 9),
		"feed 256":       NewDocument(CP858).Feed(256),
		"align 3":        NewDocument(CP858).Align(3),
		"underline 3":    NewDocument(CP858).Underline(3),
		"qr empty":       NewDocument(CP858).QR("", QR{}),
		"qr too long":    NewDocument(CP858).QR(strings.Repeat("x", MaxQRData+1), QR{}),
		"qr module 17":   NewDocument(CP858).QR("x", QR{Module: 17}),
		"qr level":       NewDocument(CP858).QR("x", QR{Level: 5}),
		"unknown page":   NewDocument(CodePage(99)),
		"first of three": NewDocument(CP858).Size(0, 0).Line("ok").Feed(-1),
	} {
		if _, err := d.Bytes(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	_, err := NewDocument(CP858).Size(0, 0).Feed(-1).Bytes()
	if err == nil || !strings.Contains(err.Error(), "size") {
		t.Errorf("error %v should be the first one (size)", err)
	}
}

func TestStatusRoundTrip(t *testing.T) {
	states := []Status{
		{},
		{Offline: true, CoverOpen: true},
		{PaperOut: true, Offline: true},
		{PaperNearEnd: true},
		{Error: true, CutterError: true, Unrecoverable: true, AutoRecoverable: true},
		{FeedButton: true},
	}
	for _, want := range states {
		var got Status
		for k := PrinterStatus; k <= PaperSensor; k++ {
			if err := got.Apply(k, StatusByte(k, want)); err != nil {
				t.Fatal(err)
			}
		}
		if got != want {
			t.Errorf("round trip %+v gave %+v", want, got)
		}
	}
	var s Status
	for _, b := range []byte{0x00, 0xff, 0x13, 0x92} {
		if err := s.Apply(OfflineCause, b); err == nil {
			t.Errorf("byte %#x accepted as a status answer", b)
		}
	}
	if err := s.Apply(5, 0x12); err == nil {
		t.Error("status kind 5 accepted")
	}
	if got := StatusRequest(PaperSensor); !bytes.Equal(got, []byte{DLE, EOT, 4}) {
		t.Errorf("StatusRequest = % x", got)
	}
}

func FuzzStatusApply(f *testing.F) {
	f.Add(uint8(2), byte(0x12))
	f.Add(uint8(4), byte(0x7e))
	f.Fuzz(func(t *testing.T, k uint8, b byte) {
		var s Status
		if err := s.Apply(StatusKind(k), b); err != nil {
			return
		}
		if k == 0 || k > 4 || b&0x93 != 0x12 {
			t.Fatalf("Apply(%d, %#x) accepted an invalid answer", k, b)
		}
		// Bits the kind does not define may be set; what Apply read must
		// survive the way back.
		var again Status
		if err := again.Apply(StatusKind(k), StatusByte(StatusKind(k), s)); err != nil || again != s {
			t.Fatalf("Apply(%d, %#x) = %+v does not round-trip: %+v, %v", k, b, s, again, err)
		}
	})
}
