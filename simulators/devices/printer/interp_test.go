package printer

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// paperRoll is a mechanism for interpreter tests.
type paperRoll struct {
	left      int // -1 endless
	coverOpen bool
}

func (p *paperRoll) state() printerState {
	return printerState{coverOpen: p.coverOpen, paperOut: p.left == 0, nearEnd: p.left > 0 && p.left <= 5}
}

func (p *paperRoll) advance(n int) bool {
	if p.coverOpen || p.left == 0 {
		return false
	}
	if p.left > 0 {
		p.left = max(p.left-n, 0)
	}
	return true
}

// run interprets in, fed in chunks of n bytes (all at once for n <= 0),
// and returns the receipts and the replies.
func run(in []byte, n int, roll *paperRoll) ([]Receipt, []byte) {
	if roll == nil {
		roll = &paperRoll{left: -1}
	}
	var out []Receipt
	var replies []byte
	it := newInterp(48, roll, func(b []byte) { replies = append(replies, b...) }, func(r Receipt) { out = append(out, r) })
	if n <= 0 {
		n = len(in) + 1
	}
	for len(in) > 0 {
		k := min(n, len(in))
		it.write(in[:k])
		in = in[k:]
	}
	it.flush()
	return out, replies
}

// The notice's bytes are the encoder's golden file: the simulator's
// rendering of exactly those bytes is golden too.
const noticeBytes = "../../../drivers/printer/escpos/testdata/notice.escpos"

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
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
		t.Errorf("%s differs (run with -update if the change is intended); got:\n%s", path, got)
	}
}

func TestNoticeGolden(t *testing.T) {
	job, err := os.ReadFile(noticeBytes)
	if err != nil {
		t.Fatal(err)
	}
	receipts, _ := run(job, 0, nil)
	if len(receipts) != 1 {
		t.Fatalf("%d receipts, want 1", len(receipts))
	}
	r := receipts[0]
	golden(t, filepath.Join("testdata", "notice.txt"), []byte(r.Text))
	png, err := r.PNG()
	if err != nil {
		t.Fatal(err)
	}
	golden(t, filepath.Join("testdata", "notice.png"), png)

	if r.Cut != "partial" || len(r.Notes) != 0 || r.Dropped != 0 {
		t.Errorf("cut %q, notes %q, dropped %d; want a clean partial cut", r.Cut, r.Notes, r.Dropped)
	}
	if !bytes.Equal(r.Raw, job) {
		t.Errorf("Raw holds %d bytes, want the %d of the job", len(r.Raw), len(job))
	}
	if len(r.QR) != 1 || r.QR[0] != "https://bezahlen.bremen.de/owi/2025-HB-000123?b=2500" {
		t.Errorf("QR codes %q", r.QR)
	}
	for _, want := range []string{"Verkehrsüberwachung", "25,00 €", "§ 56 OWiG", "Gerät hh-0042"} {
		if !strings.Contains(strings.Join(r.Lines, "\n"), want) {
			t.Errorf("printed lines lack %q", want)
		}
	}
}

func TestInterpSplitAnywhere(t *testing.T) {
	job, err := os.ReadFile(noticeBytes)
	if err != nil {
		t.Fatal(err)
	}
	whole, _ := run(job, 0, nil)
	for _, n := range []int{1, 2, 3, 7, 64} {
		split, _ := run(job, n, nil)
		if len(split) != 1 || split[0].Text != whole[0].Text {
			t.Fatalf("fed in chunks of %d the rendering differs:\n%s", n, split[0].Text)
		}
	}
}

func TestInterpStatus(t *testing.T) {
	tests := []struct {
		name string
		roll paperRoll
		want []byte // answers to DLE EOT 1, 2, 3, 4 and GS r 1
	}{
		{"ready", paperRoll{left: -1}, []byte{0x12, 0x12, 0x12, 0x12, 0x00}},
		{"paper near end", paperRoll{left: 3}, []byte{0x12, 0x12, 0x12, 0x1e, 0x03}},
		{"paper out", paperRoll{left: 0}, []byte{0x1a, 0x32, 0x12, 0x7e, 0x0f}},
		{"cover open", paperRoll{left: -1, coverOpen: true}, []byte{0x1a, 0x16, 0x12, 0x12, 0x00}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, replies := run([]byte("\x10\x04\x01\x10\x04\x02\x10\x04\x03\x10\x04\x04\x1dr\x01"), 0, &tt.roll)
			if !bytes.Equal(replies, tt.want) {
				t.Fatalf("replies % x, want % x", replies, tt.want)
			}
		})
	}
}

func TestInterpPaperRunsOut(t *testing.T) {
	roll := &paperRoll{left: 3}
	receipts, _ := run([]byte("one\ntwo\nthree\nfour\nfive\n\x1dVB\x00"), 0, roll)
	if len(receipts) != 1 {
		t.Fatalf("%d receipts", len(receipts))
	}
	r := receipts[0]
	if got := strings.Join(r.Lines, ","); got != "one,two,three" || r.Dropped != 2 {
		t.Fatalf("printed %q, dropped %d; want three lines and two dropped", got, r.Dropped)
	}
	if !strings.Contains(r.Text, "!! 2 lines not printed") {
		t.Fatalf("rendering does not mention the lost lines:\n%s", r.Text)
	}
}

func TestInterpLayout(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"wrap at 48 columns", strings.Repeat("x", 50) + "\n",
			"         |" + strings.Repeat("x", 48) + "|\n         |xx" + strings.Repeat(" ", 46) + "|\n"},
		{"centre and right", "\x1ba\x01ab\n\x1ba\x02cd\n",
			"         |" + strings.Repeat(" ", 23) + "ab" + strings.Repeat(" ", 23) + "|\n" +
				"         |" + strings.Repeat(" ", 46) + "cd|\n"},
		{"double width", "\x1d!\x10ab\n", "2x1      |a b " + strings.Repeat(" ", 44) + "|\n"},
		{"print mode", "\x1b!\x88x\n", "B U      |x" + strings.Repeat(" ", 47) + "|\n"},
		{"reverse and underline 2", "\x1dB\x01\x1b-\x02r\n", "U R      |r" + strings.Repeat(" ", 47) + "|\n"},
		{"code page 858", "\x1bt\x13\xd5\x8e\n", "         |€Ä" + strings.Repeat(" ", 46) + "|\n"},
		{"code page 437 by default", "\xe1\n", "         |ß" + strings.Repeat(" ", 47) + "|\n"},
		{"tab", "a\tb\n", "         |a       b" + strings.Repeat(" ", 39) + "|\n"},
		{"unknown command noted", "\x1bx\x01y\n", "         |y" + strings.Repeat(" ", 47) + "|\n?? control byte 0x01 ignored\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			receipts, _ := run([]byte(tt.in), 0, nil)
			if len(receipts) != 1 {
				t.Fatalf("%d receipts", len(receipts))
			}
			got := strings.TrimSuffix(receipts[0].Text, "-- not cut --\n")
			got = strings.Replace(got, "?? ESC 'x' (0x78) unknown\n", "", 1)
			if got != tt.want {
				t.Fatalf("rendering\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

func FuzzInterp(f *testing.F) {
	if job, err := os.ReadFile(noticeBytes); err == nil {
		f.Add(job, uint8(5))
	}
	f.Add([]byte("\x1b@\x1bt\x13Grüße\n\x1d(k\x03\x001Q0\x1dVA\x03"), uint8(1))
	f.Add([]byte("\x1d(k\xff\xff1P0abc"), uint8(2))
	f.Add([]byte("\x1dv0\x00\x01\x00\x01\x00\xff\x1b*!\x02\x00abcdef\x1dk\x04123\x00\x1dkE\x02ab"), uint8(3))
	f.Add([]byte("\x10\x04\x02\x10\x14\x08\x01\x03\x14\x01\x06\x02\x08\x1bD\x08\x10\x00"), uint8(0))
	f.Fuzz(func(t *testing.T, in []byte, chunk uint8) {
		whole, r1 := run(in, 0, nil)
		split, r2 := run(in, int(chunk), nil)
		if len(whole) != len(split) || !bytes.Equal(r1, r2) {
			t.Fatalf("%d receipts and replies % x whole, %d and % x in chunks of %d", len(whole), r1, len(split), r2, chunk)
		}
		total := 0
		for i := range whole {
			if whole[i].Text != split[i].Text {
				t.Fatalf("receipt %d differs when split by %d:\n%s\n---\n%s", i, chunk, whole[i].Text, split[i].Text)
			}
			total += len(whole[i].Raw)
		}
		if total > len(in) { // a stream that printed nothing makes no receipt
			t.Fatalf("receipts hold %d raw bytes of %d", total, len(in))
		}
		for _, r := range whole {
			// Rendering is checked without QR codes: encoding them is slow
			// and not what this target is about.
			if len(r.QR) == 0 && len(r.Lines) < 200 {
				if _, err := r.Image(); err != nil {
					t.Fatalf("Image: %v", err)
				}
			}
		}
	})
}
