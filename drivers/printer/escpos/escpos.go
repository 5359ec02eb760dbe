// Package escpos encodes ESC/POS, the command language of Epson and
// compatible receipt printers, and decodes the status bytes they answer
// with. It does no I/O: drivers/printer sends what [Document] builds.
//
// Commands used (Epson ESC/POS reference):
//
//	ESC @            initialise
//	ESC t n          select code page (19 = PC858, 0 = PC437)
//	ESC E n          bold on/off
//	ESC - n          underline off/1-dot/2-dot
//	ESC a n          align left/centre/right
//	GS ! n           character size, width and height 1–8
//	ESC d n          feed n lines
//	GS ( k …         QR code: model 2, module size, error correction,
//	                 store data, print
//	GS V m n         cut (m 65 full, 66 partial), after feeding n dots
//	DLE EOT n        real-time status (n 1 printer, 2 offline cause,
//	                 3 error cause, 4 paper sensor)
package escpos

import (
	"errors"
	"fmt"
	"strings"
)

// Control bytes.
const (
	ESC = 0x1b
	GS  = 0x1d
	DLE = 0x10
	EOT = 0x04
	LF  = 0x0a
)

// Align is a horizontal alignment.
type Align uint8

const (
	Left Align = iota
	Center
	Right
)

// Underline is an underline thickness.
type Underline uint8

const (
	NoUnderline Underline = iota
	Underline1            // one dot thick
	Underline2            // two dots thick
)

// ECLevel is a QR code's error-correction level. The zero value means
// the default, ECMedium.
type ECLevel uint8

const (
	ECLow      ECLevel = iota + 1 // L, about 7 % of the code may be lost
	ECMedium                      // M, about 15 %
	ECQuartile                    // Q, about 25 %
	ECHigh                        // H, about 30 %
)

// MaxQRData is the most bytes a QR code holds (version 40, level L, byte
// mode).
const MaxQRData = 2953

// QR describes a QR code.
type QR struct {
	// Module is the size of one module in dots, 1–16. Default 6 (about
	// 0.75 mm at 203 dpi, easy for phone cameras).
	Module int
	// Level is the error correction. Default ECMedium.
	Level ECLevel
}

// Document builds a print job. Its methods append commands and return the
// document, so that calls chain; the first error (a size out of range, a
// QR code too large) is kept and returned by Bytes.
type Document struct {
	buf      []byte
	enc      encoder
	err      error
	replaced int
}

// NewDocument starts a job: it initialises the printer (ESC @, which also
// resets styles left over from an earlier job) and selects the code page.
func NewDocument(page CodePage) *Document {
	d := &Document{enc: newEncoder(page)}
	if page.Table() == nil {
		d.err = fmt.Errorf("code page %d is not supported", page)
	}
	d.buf = append(d.buf, ESC, '@', ESC, 't', byte(page))
	return d
}

func (d *Document) fail(err error) *Document {
	if d.err == nil {
		d.err = err
	}
	return d
}

// Align sets the alignment of the following lines. Printers apply it at
// the start of a line.
func (d *Document) Align(a Align) *Document {
	if a > Right {
		return d.fail(fmt.Errorf("alignment %d is not left, centre or right", a))
	}
	d.buf = append(d.buf, ESC, 'a', byte(a))
	return d
}

// Bold switches emphasised printing.
func (d *Document) Bold(on bool) *Document {
	d.buf = append(d.buf, ESC, 'E', b2i(on))
	return d
}

// Underline sets the underline.
func (d *Document) Underline(u Underline) *Document {
	if u > Underline2 {
		return d.fail(fmt.Errorf("underline %d is not 0, 1 or 2", u))
	}
	d.buf = append(d.buf, ESC, '-', byte(u))
	return d
}

// Size sets the character width and height multipliers, 1–8 each.
func (d *Document) Size(width, height int) *Document {
	if width < 1 || width > 8 || height < 1 || height > 8 {
		return d.fail(fmt.Errorf("character size %d×%d is outside 1–8", width, height))
	}
	d.buf = append(d.buf, GS, '!', byte((width-1)<<4|(height-1)))
	return d
}

// Text prints s in the document's code page, without a line end.
// Characters the code page lacks are printed as '?' (see Replaced);
// control characters as spaces.
func (d *Document) Text(s string) *Document {
	var n int
	d.buf, n = d.enc.encode(d.buf, s)
	d.replaced += n
	return d
}

// Line prints s and ends the line.
func (d *Document) Line(s string) *Document {
	d.Text(s)
	d.buf = append(d.buf, LF)
	return d
}

// Feed feeds n lines (0–255).
func (d *Document) Feed(n int) *Document {
	if n < 0 || n > 255 {
		return d.fail(fmt.Errorf("feed of %d lines is outside 0–255", n))
	}
	d.buf = append(d.buf, ESC, 'd', byte(n))
	return d
}

// QR prints data as a QR code (model 2) on lines of its own; printing
// continues at the start of the next line.
func (d *Document) QR(data string, q QR) *Document {
	if q.Module == 0 {
		q.Module = 6
	}
	if q.Level == 0 {
		q.Level = ECMedium
	}
	switch {
	case data == "":
		return d.fail(errors.New("QR code without data"))
	case len(data) > MaxQRData:
		return d.fail(fmt.Errorf("QR code data of %d bytes exceeds %d", len(data), MaxQRData))
	case q.Module < 1 || q.Module > 16:
		return d.fail(fmt.Errorf("QR module size %d is outside 1–16", q.Module))
	case q.Level > ECHigh:
		return d.fail(fmt.Errorf("QR error correction %d is not L, M, Q or H", q.Level))
	}
	qr := func(fn byte, params ...byte) {
		n := len(params) + 2
		d.buf = append(d.buf, GS, '(', 'k', byte(n), byte(n>>8), '1', fn)
		d.buf = append(d.buf, params...)
	}
	qr('A', '2', 0)                          // fn 65: model 2
	qr('C', byte(q.Module))                  // fn 67: module size
	qr('E', '0'+byte(q.Level-1))             // fn 69: error correction 48–51
	qr('P', append([]byte{'0'}, data...)...) // fn 80: store
	qr('Q', '0')                             // fn 81: print
	return d
}

// Cut feeds the paper to the cutter and cuts it, fully or leaving a
// small hinge (partial), which most receipt printers prefer.
func (d *Document) Cut(partial bool) *Document {
	m := byte('A')
	if partial {
		m = 'B'
	}
	d.buf = append(d.buf, GS, 'V', m, 0)
	return d
}

// Raw appends bytes as they are, for commands this package lacks.
func (d *Document) Raw(b []byte) *Document {
	d.buf = append(d.buf, b...)
	return d
}

// Replaced is the number of characters printed as '?' because the code
// page lacks them.
func (d *Document) Replaced() int { return d.replaced }

// Bytes returns the job, or the first error of the building calls.
func (d *Document) Bytes() ([]byte, error) {
	if d.err != nil {
		return nil, fmt.Errorf("escpos: %w", d.err)
	}
	return append([]byte(nil), d.buf...), nil
}

// Wrap breaks text into lines of at most width characters at spaces, as
// a printer's own wrapping (which breaks words anywhere) does not. A word
// longer than width is broken. Existing line breaks are kept.
func Wrap(text string, width int) []string {
	if width < 1 {
		width = 1
	}
	var lines []string
	for _, para := range strings.Split(text, "\n") {
		var line []rune
		for _, word := range strings.Fields(para) {
			w := []rune(word)
			for len(w) > width { // a word longer than a line
				if len(line) > 0 {
					lines = append(lines, string(line))
					line = nil
				}
				lines = append(lines, string(w[:width]))
				w = w[width:]
			}
			switch {
			case len(line) == 0:
				line = w
			case len(line)+1+len(w) <= width:
				line = append(append(line, ' '), w...)
			default:
				lines = append(lines, string(line))
				line = w
			}
		}
		lines = append(lines, string(line))
	}
	return lines
}

// Lines prints each line of Wrap(text, width).
func (d *Document) Lines(text string, width int) *Document {
	for _, l := range Wrap(text, width) {
		d.Line(l)
	}
	return d
}

func b2i(b bool) byte {
	if b {
		return 1
	}
	return 0
}
