package ui

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"

	"github.com/kogge-fleet/kogge/kiosk/i18n"
)

func TestVisualRuns(t *testing.T) {
	tests := []struct {
		name string
		line string
		rtl  bool
		want []string
	}{
		{"latin stays whole", "Schritt 3 von 9", false, []string{"Schritt 3 von 9"}},
		{"empty", "", true, nil},
		{"arabic alone", "العربية", true, []string{"العربية"}},
		{"arabic in a left-to-right line", "Sprache: العربية", false, []string{"Sprache: ", "العربية"}},
		{"full stop goes left", "ضع إصبعك على الماسح.", true, []string{".", "ضع إصبعك على الماسح"}},
		{"number goes left of its label", "رقم طلبك: K7-2026-0042", true, []string{"K7-2026-0042", " :", "رقم طلبك"}},
		{"digits inside", "الخطوة 3 من 9", true, []string{"9", " ", "من", " ", "3", " ", "الخطوة"}},
		{"brackets mirror", "ادفع (بطاقة) هنا", true, []string{"هنا", " (", "بطاقة", ") ", "ادفع"}},
		// Read left to right, the result shows «التالي» as it should.
		{"quotes mirror", "اضغط على «التالي».", true, []string{".«", "التالي", "» ", "اضغط على"}},
		{"money", "الرسوم 6.00\u00a0€.", true, []string{".€\u00a0", "6.00", " ", "الرسوم"}},
		{"combining marks stay", "تقدّم بنفسك", true, []string{"تقدّم بنفسك"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := visualRuns(tt.line, tt.rtl); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("visualRuns(%q) = %q, want %q", tt.line, got, tt.want)
			}
		})
	}
}

func TestWrap(t *testing.T) {
	test.NewTempApp(t)
	m := &measurer{size: 20}
	text := "one two three four five six seven eight nine ten"
	full := m.measure(text).Width
	lines := m.wrap(text, full/2)
	if len(lines) < 2 {
		t.Fatalf("wrap at half width gave %q", lines)
	}
	if strings.Join(lines, " ") != text {
		t.Errorf("wrapping lost words: %q", lines)
	}
	for _, l := range lines {
		if w := m.measure(l).Width; w > full/2 {
			t.Errorf("line %q is %v wide, more than %v", l, w, full/2)
		}
	}
	if got := m.wrap("a\nb c", 0); !reflect.DeepEqual(got, []string{"a", "b c"}) {
		t.Errorf("newlines: %q", got)
	}
	if got := m.wrap("Donaudampfschifffahrtsgesellschaft", 10); len(got) != 1 {
		t.Errorf("a long word was split: %q", got)
	}
}

// TestTextBoxLayout checks a right-to-left box aligns its lines right and
// its runs follow each other without gaps.
func TestTextBoxLayout(t *testing.T) {
	test.NewTempApp(t)
	tb := newText("رقم طلبك: K7-2026-0042 ثم اذهب إلى الشباك", 24, false, true, 260)
	ms := tb.MinSize()
	if ms.Width > 260 {
		t.Errorf("MinSize width %v exceeds the wrap width", ms.Width)
	}
	w := test.NewTempWindow(t, tb)
	w.Resize(fyne.NewSize(300, 300))
	tb.Resize(fyne.NewSize(260, ms.Height))
	runs := runsOf(tb)
	if len(runs) < 3 {
		t.Fatalf("runs = %d, want the line split into its bidi runs", len(runs))
	}
	lines := map[float32][]placedRun{}
	for _, r := range runs {
		lines[r.pos.Y] = append(lines[r.pos.Y], r)
	}
	if len(lines) < 2 {
		t.Errorf("text was not wrapped: %d line(s)", len(lines))
	}
	for y, rs := range lines {
		last := rs[len(rs)-1]
		if right := last.pos.X + last.size.Width; 260-right > 1 {
			t.Errorf("line at y=%v ends at x=%v, not at the right edge", y, right)
		}
		for i := 1; i < len(rs); i++ {
			if d := rs[i].pos.X - (rs[i-1].pos.X + rs[i-1].size.Width); d < -0.5 || d > 0.5 {
				t.Errorf("gap of %v between runs %q and %q", d, rs[i-1].text.Text, rs[i].text.Text)
			}
		}
	}
}

// codeKeys returns the catalogue keys written out as string literals in
// this package's code, with their positions.
func codeKeys(t *testing.T) map[string]string {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	prefixes := []string{"ui.", "timeout.", "welcome.", "identify.", "photo.", "photo-choice.", "signature.",
		"review.", "receipt.", "counter.", "admin.", "document.", "finger.", "payment."}
	keys := map[string]string{}
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			s, err := strconv.Unquote(lit.Value)
			if err != nil {
				return true
			}
			for _, p := range prefixes {
				if strings.HasPrefix(s, p) && !strings.HasSuffix(s, ".") && !strings.ContainsAny(s, " :") {
					keys[s] = fset.Position(lit.Pos()).String()
				}
			}
			return true
		})
	}
	return keys
}

// TestUIKeysInCatalogue checks every catalogue key written out in this
// package's code exists, so a typo cannot reach the screen as a raw key.
func TestUIKeysInCatalogue(t *testing.T) {
	keys := codeKeys(t)
	if len(keys) < 30 {
		t.Fatalf("found only %d catalogue keys in the code; the scan is broken", len(keys))
	}
	cat := i18n.Default()
	for k, pos := range keys {
		if !cat.Has("de", k) {
			t.Errorf("%s: key %q is not in the catalogue", pos, k)
		}
	}
}
