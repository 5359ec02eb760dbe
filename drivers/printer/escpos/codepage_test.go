package escpos

import (
	"testing"

	"golang.org/x/text/encoding/charmap"
)

// The tables are ours; x/text's are the reference they are checked against.
func TestCodePageTables(t *testing.T) {
	for _, tt := range []struct {
		page CodePage
		ref  *charmap.Charmap
	}{
		{CP858, charmap.CodePage858},
		{CP437, charmap.CodePage437},
	} {
		table := tt.page.Table()
		if len(table) != 128 {
			t.Fatalf("code page %d: %d characters, want 128", tt.page, len(table))
		}
		for i, r := range table {
			if want := tt.ref.DecodeByte(byte(0x80 + i)); r != want {
				t.Errorf("code page %d byte %#x: %q, want %q", tt.page, 0x80+i, r, want)
			}
		}
	}
}

func TestEncodeGerman(t *testing.T) {
	got, missing := newEncoder(CP858).encode(nil, "Äöü ß € § „x“ – ✓\x1b")
	want := []byte{0x8e, 0x94, 0x81, ' ', 0xe1, ' ', 0xd5, ' ', 0xf5, ' ', '"', 'x', '"', ' ', '-', ' ', '?', ' '}
	if string(got) != string(want) || missing != 1 {
		t.Fatalf("encode = % x (%d missing), want % x (1 missing)", got, missing, want)
	}
}
