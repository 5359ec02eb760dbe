package printer

import (
	"bufio"
	"bytes"
	_ "embed"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"strings"
	"unicode/utf8"

	"github.com/skip2/go-qrcode"
)

// Receipt is what the printer printed between two cuts.
type Receipt struct {
	// Text is a rendering for people and golden files: one row per
	// printed line, "<styles>|<line padded to the paper width>|", where
	// styles are B (bold), U (underline), R (reverse) and W×H (size);
	// characters of double width are followed by spaces, so columns line
	// up as on paper. QR codes, images and barcodes are rows of their own,
	// then come lost lines, notes, and the cut.
	Text string
	// Lines are the printed lines as plain text (QR codes as "[QR data]").
	Lines []string
	// QR holds the data of the QR codes, in order.
	QR []string
	// Cut is "full" or "partial", or "" if the stream ended without a cut.
	Cut string
	// Dropped counts lines that did not print (paper out, cover open).
	Dropped int
	// Notes lists commands the simulator ignored or did not know.
	Notes []string
	// Raw is the bytes received for this receipt.
	Raw []byte

	blocks []block
	width  int
}

func (r Receipt) render() string {
	var b strings.Builder
	for _, bl := range r.blocks {
		switch {
		case bl.qr != nil:
			fmt.Fprintf(&b, "%-9s[%s]\n", fmt.Sprintf("QR %c %d", bl.qr.level, bl.qr.module), bl.qr.data)
		case bl.note != "":
			fmt.Fprintf(&b, "%-9s[%s]\n", "", bl.note)
		default:
			fmt.Fprintf(&b, "%-9s|%s|\n", bl.flags(), bl.layout(r.width))
		}
	}
	if r.Dropped > 0 {
		fmt.Fprintf(&b, "!! %d lines not printed (paper out or cover open)\n", r.Dropped)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "?? %s\n", n)
	}
	switch r.Cut {
	case "":
		b.WriteString("-- not cut --\n")
	default:
		fmt.Fprintf(&b, "-- %s cut --\n", r.Cut)
	}
	return b.String()
}

func (bl block) flags() string {
	var bold, under, rev bool
	var w, h uint8 = 1, 1
	for _, c := range bl.cells {
		bold = bold || c.st.bold
		under = under || c.st.underline > 0
		rev = rev || c.st.reverse
		w, h = max(w, c.st.w), max(h, c.st.h)
	}
	var f []string
	if bold {
		f = append(f, "B")
	}
	if under {
		f = append(f, "U")
	}
	if rev {
		f = append(f, "R")
	}
	if w > 1 || h > 1 {
		f = append(f, fmt.Sprintf("%dx%d", w, h))
	}
	return strings.Join(f, " ")
}

// layout is the line as it sits on paper of width columns.
func (bl block) layout(width int) string {
	var s strings.Builder
	cols := 0
	for _, c := range bl.cells {
		s.WriteRune(c.r)
		for range int(c.st.w) - 1 {
			s.WriteByte(' ')
		}
		cols += int(c.st.w)
	}
	left := bl.offset(width, cols)
	return strings.Repeat(" ", left) + s.String() + strings.Repeat(" ", max(width-left-cols, 0))
}

func (bl block) offset(width, cols int) int {
	switch bl.align {
	case alignCenter:
		return max(width-cols, 0) / 2
	case alignRight:
		return max(width-cols, 0)
	}
	return 0
}

// Dots of font A: a character cell is 12×24 dots at size 1×1; a 5×7
// glyph is drawn 2 dots wide and 3 high per cell, with a margin.
const (
	cellW   = 12
	cellH   = 24
	spacing = 6 // dots between lines
)

//go:embed font5x7.txt
var fontText string

// font maps a rune to seven rows of five bits (bit 4 is the left column).
type font map[rune][7]uint8

func parseFont(text string) (font, error) {
	f := font{' ': {}}
	sc := bufio.NewScanner(strings.NewReader(text))
	var cur rune
	row := -1
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "#") && row < 0, line == "":
			continue
		case strings.HasPrefix(line, "== "):
			r, size := utf8.DecodeRuneInString(line[3:])
			if size == 0 || 3+size != len(line) {
				return nil, fmt.Errorf("font: bad glyph header %q", line)
			}
			cur, row = r, 0
		case row >= 0 && row < 7 && len(line) == 5:
			g := f[cur]
			for i := range 5 {
				if line[i] == '#' {
					g[row] |= 1 << (4 - i)
				}
			}
			f[cur] = g
			row++
			if row == 7 {
				row = -1
			}
		default:
			return nil, fmt.Errorf("font: unexpected line %q", line)
		}
	}
	return f, sc.Err()
}

// Image renders the receipt as the paper would look: 12 dots per column,
// black on white, QR codes drawn from their data.
func (r Receipt) Image() (*image.Gray, error) {
	f, err := parseFont(fontText)
	if err != nil {
		return nil, err
	}
	width := r.width * cellW
	height := 0
	for _, bl := range r.blocks {
		height += bl.height()
	}
	img := image.NewGray(image.Rect(0, 0, width, max(height, 1)))
	for i := range img.Pix {
		img.Pix[i] = 0xff
	}
	y := 0
	for _, bl := range r.blocks {
		switch {
		case bl.qr != nil:
			if err := drawQR(img, bl, y, width); err != nil {
				return nil, err
			}
		case bl.note != "":
			drawText(img, f, block{cells: cellsOf("[" + bl.note + "]"), align: bl.align}, y, r.width)
		default:
			drawText(img, f, bl, y, r.width)
		}
		y += bl.height()
	}
	return img, nil
}

// PNG encodes Image.
func (r Receipt) PNG() ([]byte, error) {
	img, err := r.Image()
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func cellsOf(s string) []cell {
	var cs []cell
	for _, r := range s {
		cs = append(cs, cell{r: r, st: style{w: 1, h: 1}})
	}
	return cs
}

func (bl block) height() int {
	if bl.qr != nil {
		return qrSize(bl.qr)*bl.qr.module + spacing
	}
	h := 1
	for _, c := range bl.cells {
		h = max(h, int(c.st.h))
	}
	return h*cellH + spacing
}

func qrLevel(l byte) qrcode.RecoveryLevel {
	switch l {
	case 'M':
		return qrcode.Medium
	case 'Q':
		return qrcode.High
	case 'H':
		return qrcode.Highest
	}
	return qrcode.Low
}

func qrBitmap(q *qrSymbol) ([][]bool, error) {
	code, err := qrcode.New(q.data, qrLevel(q.level))
	if err != nil {
		return nil, err
	}
	code.DisableBorder = true
	return code.Bitmap(), nil
}

func qrSize(q *qrSymbol) int {
	bm, err := qrBitmap(q)
	if err != nil {
		return 1
	}
	return len(bm)
}

func drawQR(img *image.Gray, bl block, y, width int) error {
	bm, err := qrBitmap(bl.qr)
	if err != nil {
		return fmt.Errorf("render QR code: %w", err)
	}
	m := bl.qr.module
	size := len(bm) * m
	x0 := bl.offset(width, size)
	for row := range bm {
		for col, on := range bm[row] {
			if on {
				fill(img, x0+col*m, y+row*m, m, m, 0)
			}
		}
	}
	return nil
}

func drawText(img *image.Gray, f font, bl block, y, columns int) {
	cols := 0
	hmax := 1
	for _, c := range bl.cells {
		cols += int(c.st.w)
		hmax = max(hmax, int(c.st.h))
	}
	x := bl.offset(columns, cols) * cellW
	base := y + hmax*cellH // characters stand on the line's baseline
	for _, c := range bl.cells {
		w, h := int(c.st.w), int(c.st.h)
		cw, ch := cellW*w, cellH*h
		top := base - ch
		ink := uint8(0)
		if c.st.reverse {
			fill(img, x, top, cw, ch, 0)
			ink = 0xff
		}
		g, ok := f[c.r]
		if !ok {
			g = [7]uint8{0x1f, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1f} // a box
		}
		px, py := 2*w, 3*h
		for row := range 7 {
			for col := range 5 {
				if g[row]&(1<<(4-col)) == 0 {
					continue
				}
				gx, gy := x+w+col*px, top+2*h+row*py
				fill(img, gx, gy, px, py, ink)
				if c.st.bold {
					fill(img, gx+1, gy, px, py, ink)
				}
			}
		}
		if c.st.underline > 0 {
			fill(img, x, base-2, cw, int(c.st.underline), ink)
		}
		x += cw
	}
}

func fill(img *image.Gray, x, y, w, h int, v uint8) {
	r := image.Rect(x, y, x+w, y+h).Intersect(img.Rect)
	for yy := r.Min.Y; yy < r.Max.Y; yy++ {
		for xx := r.Min.X; xx < r.Max.X; xx++ {
			img.SetGray(xx, yy, color.Gray{Y: v})
		}
	}
}
