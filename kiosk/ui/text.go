package ui

import (
	"image/color"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/widget"
	"golang.org/x/text/unicode/bidi"
)

// Fyne shapes text in runs of one script and lays the runs out left to
// right in logical order. That is right for Latin and Cyrillic, and it
// joins and orders the letters within an Arabic run correctly, but in a
// right-to-left paragraph the runs themselves (an Arabic phrase, then an
// application number, then a full stop) come out in the wrong order, and
// punctuation at the edge of an Arabic phrase lands on the wrong side.
// textBox therefore wraps text itself and, per line, resolves the runs
// with the Unicode bidirectional algorithm (golang.org/x/text), orders
// them visually and hands fyne one canvas.Text per run.

// align is a logical alignment: start and end follow the text direction.
type align int

const (
	alignStart align = iota
	alignCenter
	alignEnd
)

// visualRuns splits one line into runs in visual order, left to right.
// Each run is either text fyne shapes correctly on its own (a
// left-to-right run, or an Arabic phrase that begins and ends with an
// Arabic letter) or neutral characters already reversed. rtl says whether
// the paragraph is right to left.
func visualRuns(line string, rtl bool) []string {
	if line == "" {
		return nil
	}
	if !rtl && !hasRTL(line) {
		return []string{line}
	}
	var p bidi.Paragraph
	var err error
	if rtl {
		_, err = p.SetString(line, bidi.DefaultDirection(bidi.RightToLeft))
	} else {
		_, err = p.SetString(line)
	}
	if err != nil {
		return []string{line}
	}
	o, err := p.Order()
	if err != nil || o.NumRuns() == 0 {
		return []string{line}
	}
	type run struct {
		text string
		rtl  bool
	}
	runs := make([]run, o.NumRuns())
	for i := range runs {
		r := o.Run(i)
		runs[i] = run{text: r.String(), rtl: r.Direction() == bidi.RightToLeft}
	}
	// Visual order. A right-to-left paragraph holds right-to-left runs at
	// level 1 and left-to-right ones (numbers, Latin) at level 2, so the
	// whole sequence reverses. In a left-to-right paragraph only each
	// stretch of right-to-left runs reverses.
	if rtl {
		for i, j := 0, len(runs)-1; i < j; i, j = i+1, j-1 {
			runs[i], runs[j] = runs[j], runs[i]
		}
	} else {
		for i := 0; i < len(runs); {
			if !runs[i].rtl {
				i++
				continue
			}
			j := i
			for j < len(runs) && runs[j].rtl {
				j++
			}
			for a, b := i, j-1; a < b; a, b = a+1, b-1 {
				runs[a], runs[b] = runs[b], runs[a]
			}
			i = j
		}
	}
	var out []string
	for _, r := range runs {
		if !r.rtl {
			out = append(out, r.text)
			continue
		}
		// A right-to-left run. Fyne splits a run where its font changes:
		// Arabic letters come from a fallback font, spaces and punctuation
		// often from the theme's, and the pieces would come out left to
		// right. So the run is cut into stretches of letters (with their
		// combining marks and spaces between them) and stretches of other
		// characters; the stretches go out in reverse, the latter reversed
		// themselves, with brackets mirrored.
		rs := []rune(r.text)
		var pieces []string
		for i := 0; i < len(rs); {
			j := i + 1
			letters := isRTLLetterish(rs[i])
			for j < len(rs) && (isRTLLetterish(rs[j]) == letters || letters && rs[j] == ' ' && j+1 < len(rs) && isRTLLetterish(rs[j+1])) {
				j++
			}
			if letters {
				pieces = append(pieces, string(rs[i:j]))
			} else {
				pieces = append(pieces, reverseNeutral(string(rs[i:j])))
			}
			i = j
		}
		for k := len(pieces) - 1; k >= 0; k-- {
			out = append(out, pieces[k])
		}
	}
	return out
}

// mirrored are mirror-image characters that x/text's ReverseString does
// not swap because they are not paired brackets.
var mirrored = map[rune]rune{'«': '»', '»': '«', '‹': '›', '›': '‹', '<': '>', '>': '<', '≤': '≥', '≥': '≤'}

// reverseNeutral reverses neutral characters for right-to-left display,
// with brackets and other mirror-image characters swapped.
func reverseNeutral(s string) string {
	rs := []rune(bidi.ReverseString(s))
	for i, r := range rs {
		if m, ok := mirrored[r]; ok {
			rs[i] = m
		}
	}
	return string(rs)
}

// isStrongRTL reports whether r is a right-to-left letter (bidi class R
// or AL).
func isStrongRTL(r rune) bool {
	p, _ := bidi.LookupRune(r)
	c := p.Class()
	return c == bidi.R || c == bidi.AL
}

// isRTLLetterish reports whether r belongs to a stretch of right-to-left
// letters: a letter itself, a combining mark or a joiner.
func isRTLLetterish(r rune) bool {
	p, _ := bidi.LookupRune(r)
	switch p.Class() {
	case bidi.R, bidi.AL, bidi.NSM, bidi.BN:
		return true
	}
	return false
}

func hasRTL(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r >= 0x0590 && isStrongRTL(r) })
}

// measureKey identifies a measured string.
type measureKey struct {
	s    string
	size float32
	bold bool
}

// maxMeasures bounds a measurement cache; a full set of screens in all
// languages measures a few thousand strings.
const maxMeasures = 20000

// measurer measures text of one size and style. Fyne shapes the text
// anew on every call, so measurements are cached; the UI shares one
// cache between all its text (it is used on fyne's goroutine only).
type measurer struct {
	size  float32
	style fyne.TextStyle
	cache map[measureKey]fyne.Size
}

func (m *measurer) measure(s string) fyne.Size {
	k := measureKey{s: s, size: m.size, bold: m.style.Bold}
	if sz, ok := m.cache[k]; ok {
		return sz
	}
	if m.cache == nil || len(m.cache) >= maxMeasures {
		m.cache = map[measureKey]fyne.Size{}
	}
	sz := fyne.MeasureText(s, m.size, m.style)
	m.cache[k] = sz
	return sz
}

// width is the width of a line of words: the words measured one by one
// and the spaces between them, which is what wrapping needs and much
// cheaper than shaping every candidate line.
func (m *measurer) width(words []string) float32 {
	var w float32
	for i, word := range words {
		if i > 0 {
			w += m.measure(" ").Width
		}
		w += m.measure(word).Width
	}
	return w
}

// splitWords splits at spaces only: a no-break space (as in "6,00 €")
// holds its neighbours together.
func splitWords(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ' ' })
}

// wrap breaks text into lines no wider than width (0: no limit) at
// spaces; explicit newlines always break. A single word wider than width
// gets a line of its own.
func (m *measurer) wrap(text string, width float32) []string {
	var lines []string
	for _, para := range strings.Split(text, "\n") {
		words := splitWords(para)
		if width <= 0 || len(words) <= 1 {
			lines = append(lines, strings.Join(words, " "))
			continue
		}
		start := 0
		for i := 1; i < len(words); i++ {
			if m.width(words[start:i+1]) > width {
				lines = append(lines, strings.Join(words[start:i], " "))
				start = i
			}
		}
		lines = append(lines, strings.Join(words[start:], " "))
	}
	return lines
}

// textBox is a block of text: wrapped at its width, aligned by its
// direction, with right-to-left lines ordered visually (see visualRuns).
type textBox struct {
	widget.BaseWidget
	text  string
	color color.Color
	align align
	rtl   bool
	// maxWidth is the width the box wraps at to report its MinSize; the
	// screen sets it from the space it gives the box (0: no wrapping).
	maxWidth float32
	m        measurer
}

func newText(text string, size float32, bold bool, rtl bool, maxWidth float32) *textBox {
	t := &textBox{text: text, color: colText, rtl: rtl, maxWidth: maxWidth,
		m: measurer{size: size, style: fyne.TextStyle{Bold: bold}}}
	t.ExtendBaseWidget(t)
	return t
}

// Text returns the box's text as given (logical order).
func (t *textBox) Text() string { return t.text }

// SetText changes the text and redraws the box.
func (t *textBox) SetText(s string) {
	if s == t.text {
		return
	}
	t.text = s
	t.Refresh()
}

// lineHeight is the height of every line; Arabic comes from a font with
// taller lines than Latin.
func (t *textBox) lineHeight() float32 {
	h := t.m.measure("Ág").Height
	if t.rtl || hasRTL(t.text) {
		h = max(h, t.m.measure("أبج").Height)
	}
	return h
}

func (t *textBox) CreateRenderer() fyne.WidgetRenderer {
	return &textRenderer{t: t}
}

// placedRun is one run of a laid-out line, for drawing and for tests.
type placedRun struct {
	text *canvas.Text
	pos  fyne.Position
	size fyne.Size
}

type textRenderer struct {
	t       *textBox
	objects []fyne.CanvasObject
	runs    []placedRun
	laidFor fyne.Size
	laidTxt string
}

func (r *textRenderer) Destroy() {}

func (r *textRenderer) Objects() []fyne.CanvasObject { return r.objects }

func (r *textRenderer) MinSize() fyne.Size {
	lines := r.t.m.wrap(r.t.text, r.t.maxWidth)
	lh := r.t.lineHeight()
	var w, h float32
	for _, l := range lines {
		w = max(w, r.t.m.width(splitWords(l)))
		h += lh
	}
	if r.t.maxWidth > 0 {
		w = min(w, r.t.maxWidth)
	}
	return fyne.NewSize(w, h)
}

func (r *textRenderer) Refresh() {
	r.laidTxt = "\x00" // force a new layout
	r.Layout(r.t.Size())
	canvas.Refresh(r.t)
}

func (r *textRenderer) Layout(size fyne.Size) {
	if size == r.laidFor && r.laidTxt == r.t.text {
		for _, p := range r.runs {
			p.text.Color = r.t.color
		}
		return
	}
	r.laidFor, r.laidTxt = size, r.t.text
	width := size.Width
	if r.t.maxWidth > 0 && (width <= 0 || r.t.maxWidth < width) {
		width = r.t.maxWidth
	}
	lh := r.t.lineHeight()
	r.runs = r.runs[:0]
	r.objects = r.objects[:0]
	var y float32
	for _, line := range r.t.m.wrap(r.t.text, width) {
		parts := visualRuns(line, r.t.rtl)
		var lineW float32
		sizes := make([]fyne.Size, len(parts))
		for i, p := range parts {
			sizes[i] = r.t.m.measure(p)
			lineW += sizes[i].Width
		}
		lineH := lh
		var x float32
		switch {
		case r.t.align == alignCenter:
			x = (size.Width - lineW) / 2
		case (r.t.align == alignEnd) != r.t.rtl:
			x = size.Width - lineW
		}
		for i, p := range parts {
			ct := canvas.NewText(p, r.t.color)
			ct.TextSize = r.t.m.size
			ct.TextStyle = r.t.m.style
			pos := fyne.NewPos(x, y+(lineH-sizes[i].Height)/2)
			ct.Move(pos)
			ct.Resize(sizes[i])
			r.runs = append(r.runs, placedRun{text: ct, pos: pos, size: sizes[i]})
			r.objects = append(r.objects, ct)
			x += sizes[i].Width
		}
		y += lineH
	}
}
