package printer

import (
	"fmt"
	"strings"

	"golang.org/x/text/encoding/charmap"
)

// Control bytes of ESC/POS.
const (
	ht  = 0x09
	lf  = 0x0a
	cr  = 0x0d
	dle = 0x10
	eot = 0x04
	esc = 0x1b
	fs  = 0x1c
	gs  = 0x1d
)

// maxCommand bounds one command with a length field (a QR code's data, a
// raster image). A longer one is taken for garbage and skipped byte by
// byte until the stream makes sense again.
const maxCommand = 1 << 18

type align uint8

const (
	alignLeft align = iota
	alignCenter
	alignRight
)

type style struct {
	bold      bool
	underline uint8 // 0, 1 or 2 dots
	w, h      uint8 // 1–8
	reverse   bool
}

type cell struct {
	r  rune
	st style
}

// block is one printed line or symbol.
type block struct {
	cells []cell
	align align
	qr    *qrSymbol // a QR code instead of text
	note  string    // a non-text item ("raster image 8×8"), printed as a marker
}

type qrSymbol struct {
	data   string
	module int  // dots per module
	level  byte // 'L', 'M', 'Q' or 'H'
}

// printerState is what the mechanism reports.
type printerState struct {
	coverOpen, paperOut, nearEnd bool
}

// mechanism is the printer hardware as the interpreter sees it.
type mechanism interface {
	state() printerState
	// advance uses paper for n lines; false means nothing prints (paper
	// out, cover open).
	advance(n int) bool
}

// interp interprets an ESC/POS byte stream as an Epson TM printer in
// standard mode does, closely enough to check what our encoder sends:
// text in a code page, styles, alignment, line wrapping, QR codes, cuts,
// and real-time status requests. Commands it does not know are skipped
// with a note. It is fed from one goroutine.
type interp struct {
	width int // columns at size 1
	mech  mechanism
	reply func([]byte)  // answers to status requests
	done  func(Receipt) // a receipt was cut (or the stream ended)

	pending []byte // an incomplete command
	raw     []byte // bytes since the last cut

	st       style
	align    align
	lineAl   align // alignment of the current line, taken at its start
	page     *charmap.Charmap
	cur      []cell
	curCols  int
	qrModule int
	qrLevel  byte
	qrData   string

	blocks  []block
	notes   []string
	dropped int
	cutKind string // set by a cut command, handled once its bytes are in raw
}

func newInterp(width int, mech mechanism, reply func([]byte), done func(Receipt)) *interp {
	in := &interp{width: width, mech: mech, reply: reply, done: done}
	in.reset()
	return in
}

// reset is ESC @: styles, alignment, code page and QR settings to their
// power-on values; the unprinted line is discarded.
func (in *interp) reset() {
	in.st = style{w: 1, h: 1}
	in.align, in.lineAl = alignLeft, alignLeft
	in.page = charmap.CodePage437
	in.cur, in.curCols = nil, 0
	in.qrModule, in.qrLevel, in.qrData = 3, 'L', ""
}

// write feeds bytes from the line.
func (in *interp) write(p []byte) {
	in.pending = append(in.pending, p...)
	for len(in.pending) > 0 {
		n := in.command(in.pending)
		if n == 0 {
			break // incomplete: wait for more
		}
		in.raw = append(in.raw, in.pending[:n]...)
		in.pending = in.pending[n:]
		if in.cutKind != "" {
			in.finish(in.cutKind)
			in.cutKind = ""
		}
	}
	if len(in.pending) == 0 {
		in.pending = nil // let the buffer go
	}
}

// flush ends the stream: what was printed and not cut becomes a receipt.
func (in *interp) flush() {
	if len(in.pending) > 0 {
		in.notes = append(in.notes, fmt.Sprintf("stream ended inside a command: % x", head(in.pending)))
		in.raw = append(in.raw, in.pending...)
		in.pending = nil
	}
	if len(in.cur) > 0 {
		in.newline()
	}
	if len(in.blocks) > 0 || len(in.notes) > 0 || in.dropped > 0 {
		in.finish("")
	}
}

func head(b []byte) []byte { return b[:min(len(b), 8)] }

func (in *interp) note(format string, args ...any) {
	if len(in.notes) < 100 {
		in.notes = append(in.notes, fmt.Sprintf(format, args...))
	}
}

// command interprets the command at the start of b and returns its length,
// or 0 if b holds only part of it.
func (in *interp) command(b []byte) int {
	c := b[0]
	switch {
	case c == lf:
		in.newline()
		return 1
	case c == cr:
		return 1
	case c == ht: // to the next tab stop, every 8 columns
		for range 8 {
			in.text(' ')
			if in.curCols%8 == 0 {
				break
			}
		}
		return 1
	case c == dle:
		return in.dle(b)
	case c == esc:
		return in.esc(b)
	case c == gs:
		return in.gs(b)
	case c == fs:
		return in.fs(b)
	case c < 0x20 || c == 0x7f:
		in.note("control byte %#02x ignored", c)
		return 1
	}
	in.text(in.page.DecodeByte(c))
	return 1
}

// need returns n if b holds n bytes, else 0.
func need(b []byte, n int) int {
	if len(b) < n {
		return 0
	}
	return n
}

func (in *interp) dle(b []byte) int {
	if len(b) < 2 {
		return 0
	}
	switch b[1] {
	case eot: // DLE EOT n: real-time status
		if need(b, 3) == 0 {
			return 0
		}
		if b[2] >= 1 && b[2] <= 4 {
			in.reply([]byte{statusByte(b[2], in.mech.state())})
		} else {
			in.note("DLE EOT %d: unknown status kind", b[2])
		}
		return 3
	case 0x05: // DLE ENQ n: real-time request to recover
		return need(b, 3)
	case 0x14: // DLE DC4 fn …
		if len(b) < 3 {
			return 0
		}
		if b[2] == 8 {
			return need(b, 10)
		}
		return need(b, 5)
	}
	in.note("DLE %#02x ignored", b[1])
	return 1
}

// statusByte answers DLE EOT kind (Epson: bits 1 and 4 always set).
func statusByte(kind byte, s printerState) byte {
	b := byte(0x12)
	offline := s.coverOpen || s.paperOut
	switch kind {
	case 1:
		if offline {
			b |= 0x08
		}
	case 2:
		if s.coverOpen {
			b |= 0x04
		}
		if s.paperOut {
			b |= 0x20
		}
	case 4:
		if s.nearEnd || s.paperOut {
			b |= 0x0c
		}
		if s.paperOut {
			b |= 0x60
		}
	}
	return b
}

func (in *interp) esc(b []byte) int {
	if len(b) < 2 {
		return 0
	}
	arg := func(f func(n byte)) int {
		if len(b) < 3 {
			return 0
		}
		f(b[2])
		return 3
	}
	switch b[1] {
	case '@':
		in.reset()
		return 2
	case 'E', 'G': // emphasised, double-strike
		return arg(func(n byte) { in.st.bold = n&1 == 1 })
	case '-':
		return arg(func(n byte) { in.st.underline = min(n&0x0f, 2) })
	case 'a':
		return arg(func(n byte) {
			if a := n & 0x0f; a <= 2 {
				in.align = align(a)
				if len(in.cur) == 0 {
					in.lineAl = in.align
				}
			}
		})
	case 'd': // print and feed n lines
		return arg(func(n byte) {
			lines := int(n)
			if len(in.cur) > 0 {
				in.newline()
				lines--
			}
			for range max(lines, 0) {
				in.newline()
			}
		})
	case 'J': // print and feed n dots
		return arg(func(n byte) {
			if len(in.cur) > 0 {
				in.newline()
			}
			for range int(n) / 30 {
				in.newline()
			}
		})
	case 't':
		return arg(func(n byte) {
			switch n {
			case 0:
				in.page = charmap.CodePage437
			case 2:
				in.page = charmap.CodePage850
			case 16:
				in.page = charmap.Windows1252
			case 19:
				in.page = charmap.CodePage858
			default:
				in.note("code page %d unknown, PC437 used", n)
				in.page = charmap.CodePage437
			}
		})
	case '!': // print mode
		return arg(func(n byte) {
			in.st.bold = n&0x08 != 0
			in.st.h = 1 + (n>>4)&1
			in.st.w = 1 + (n>>5)&1
			in.st.underline = (n >> 7) & 1
		})
	case 'M', '3', 'R', 'V', '{', 'r', 'U', ' ', '=', 'T', 'u', 'v':
		return need(b, 3)
	case '2', 'i', 'm', 'L', 'S', '<', 'F':
		return 2
	case 'c':
		return need(b, 4)
	case '$', '\\':
		return need(b, 4)
	case 'p': // drawer kick
		return need(b, 5)
	case 'W':
		return need(b, 10)
	case 'D': // tab positions, NUL-terminated, at most 32
		for i := 2; i < len(b) && i < 35; i++ {
			if b[i] == 0 {
				return i + 1
			}
		}
		if len(b) >= 35 {
			in.note("ESC D without end")
			return 2
		}
		return 0
	case '*': // bit image
		if len(b) < 5 {
			return 0
		}
		per := 1
		if b[2] == 32 || b[2] == 33 {
			per = 3
		}
		n := 5 + per*(int(b[3])+int(b[4])<<8)
		if n > maxCommand {
			in.note("ESC * too long")
			return 1
		}
		if need(b, n) == 0 {
			return 0
		}
		in.item(fmt.Sprintf("bit image, %d columns", (n-5)/per))
		return n
	}
	in.note("ESC %q (%#02x) unknown", b[1], b[1])
	return 2
}

func (in *interp) gs(b []byte) int {
	if len(b) < 2 {
		return 0
	}
	switch b[1] {
	case '!':
		if need(b, 3) == 0 {
			return 0
		}
		in.st.w = 1 + (b[2]>>4)&7
		in.st.h = 1 + b[2]&7
		return 3
	case 'B':
		if need(b, 3) == 0 {
			return 0
		}
		in.st.reverse = b[2]&1 == 1
		return 3
	case 'V':
		if len(b) < 3 {
			return 0
		}
		switch m := b[2]; m {
		case 0, 48:
			in.cut("full")
			return 3
		case 1, 49:
			in.cut("partial")
			return 3
		case 65, 97, 103:
			if need(b, 4) == 0 {
				return 0
			}
			in.cut("full")
			return 4
		case 66, 98, 104:
			if need(b, 4) == 0 {
				return 0
			}
			in.cut("partial")
			return 4
		}
		in.note("GS V %d unknown", b[2])
		return 3
	case '(': // GS ( fn pL pH …
		if len(b) < 5 {
			return 0
		}
		n := 5 + int(b[3]) + int(b[4])<<8
		if need(b, n) == 0 {
			return 0
		}
		if b[2] == 'k' {
			in.symbol(b[5:n])
		}
		return n
	case 'r':
		if need(b, 3) == 0 {
			return 0
		}
		if b[2] == 1 || b[2] == 49 {
			s := in.mech.state()
			var v byte
			if s.nearEnd || s.paperOut {
				v |= 0x03
			}
			if s.paperOut {
				v |= 0x0c
			}
			in.reply([]byte{v})
		}
		return 3
	case 'I':
		if need(b, 3) == 0 {
			return 0
		}
		if b[2] >= 1 && b[2] <= 3 {
			in.reply([]byte{[]byte{0x20, 0x02, 0x00}[b[2]-1]})
		}
		return 3
	case 'a', 'H', 'f', 'h', 'w', 'b', 'T', '/':
		return need(b, 3)
	case 'L', 'W', '$', '\\', 'P':
		return need(b, 4)
	case 'k': // barcode
		if len(b) < 3 {
			return 0
		}
		if m := b[2]; m <= 6 { // data up to NUL, at most 255 bytes
			const limit = 3 + 256
			for i := 3; i < len(b) && i < limit; i++ {
				if b[i] == 0 {
					in.item(fmt.Sprintf("barcode %d: %q", m, b[3:i]))
					return i + 1
				}
			}
			if len(b) >= limit {
				in.note("GS k without end")
				return 3
			}
			return 0
		}
		if len(b) < 4 {
			return 0
		}
		n := 4 + int(b[3])
		if need(b, n) == 0 {
			return 0
		}
		in.item(fmt.Sprintf("barcode %d: %q", b[2], b[4:n]))
		return n
	case 'v': // GS v 0 m xL xH yL yH raster image
		if len(b) < 8 {
			return 0
		}
		x, y := int(b[4])+int(b[5])<<8, int(b[6])+int(b[7])<<8
		n := 8 + x*y
		if n > maxCommand {
			in.note("GS v 0 image too large")
			return 1
		}
		if need(b, n) == 0 {
			return 0
		}
		in.item(fmt.Sprintf("raster image %d×%d dots", x*8, y))
		return n
	}
	in.note("GS %q (%#02x) unknown", b[1], b[1])
	return 2
}

func (in *interp) fs(b []byte) int {
	if len(b) < 2 {
		return 0
	}
	switch b[1] {
	case '.', '&':
		return 2
	case 'C', '!', '-', 'W':
		return need(b, 3)
	case 'p', 'S':
		return need(b, 4)
	}
	in.note("FS %q (%#02x) unknown", b[1], b[1])
	return 2
}

// symbol handles GS ( k: cn fn params; cn 49 is QR code.
func (in *interp) symbol(p []byte) {
	if len(p) < 2 || p[0] != '1' {
		if len(p) >= 1 {
			in.note("2D symbol type %d ignored", p[0])
		}
		return
	}
	fn, params := p[1], p[2:]
	switch fn {
	case 'A': // model
		if len(params) >= 1 && params[0] != '2' {
			in.note("QR model %c: only model 2 is rendered", params[0])
		}
	case 'C':
		if len(params) >= 1 && params[0] >= 1 && params[0] <= 16 {
			in.qrModule = int(params[0])
		} else {
			in.note("QR module size out of range")
		}
	case 'E':
		if len(params) >= 1 && params[0] >= '0' && params[0] <= '3' {
			in.qrLevel = "LMQH"[params[0]-'0']
		} else {
			in.note("QR error correction out of range")
		}
	case 'P':
		if len(params) < 1 || params[0] != '0' {
			in.note("QR store with m != 48")
			return
		}
		in.qrData = string(params[1:])
	case 'Q':
		if in.qrData == "" {
			in.note("QR print without stored data")
			return
		}
		if len(in.cur) > 0 {
			in.newline()
		}
		q := &qrSymbol{data: in.qrData, module: in.qrModule, level: in.qrLevel}
		lines := (qrModules(len(q.data))*q.module + 23) / 24
		if !in.mech.advance(lines) {
			in.dropped += lines
			return
		}
		in.blocks = append(in.blocks, block{qr: q, align: in.align})
	case 'R':
		in.note("QR size request not answered")
	default:
		in.note("QR function %d ignored", fn)
	}
}

// qrModules estimates a QR symbol's width in modules for paper use.
func qrModules(n int) int {
	v := 1 + n/30
	return min(17+4*v, 177)
}

// item is a non-text thing printed on lines of its own.
func (in *interp) item(what string) {
	if len(in.cur) > 0 {
		in.newline()
	}
	if !in.mech.advance(1) {
		in.dropped++
		return
	}
	in.blocks = append(in.blocks, block{note: what, align: in.align})
}

// text puts one character into the line, wrapping when it is full.
func (in *interp) text(r rune) {
	w := int(in.st.w)
	if in.curCols > 0 && in.curCols+w > in.width {
		in.newline()
	}
	if len(in.cur) == 0 {
		in.lineAl = in.align
	}
	in.cur = append(in.cur, cell{r: r, st: in.st})
	in.curCols += w
}

// newline prints the current line (an empty one feeds paper).
func (in *interp) newline() {
	al := in.lineAl
	if len(in.cur) == 0 {
		al = in.align
	}
	h := 1
	for _, c := range in.cur {
		h = max(h, int(c.st.h))
	}
	if !in.mech.advance(h) {
		in.dropped += h
	} else {
		in.blocks = append(in.blocks, block{cells: in.cur, align: al})
	}
	in.cur, in.curCols = nil, 0
	in.lineAl = in.align
}

func (in *interp) cut(kind string) {
	if len(in.cur) > 0 {
		in.newline()
	}
	in.cutKind = kind
}

func (in *interp) finish(cut string) {
	r := Receipt{
		Cut:     cut,
		Dropped: in.dropped,
		Notes:   in.notes,
		Raw:     in.raw,
		blocks:  in.blocks,
		width:   in.width,
	}
	for _, b := range in.blocks {
		r.Lines = append(r.Lines, b.plain())
		if b.qr != nil {
			r.QR = append(r.QR, b.qr.data)
		}
	}
	r.Text = r.render()
	in.blocks, in.notes, in.raw, in.dropped = nil, nil, nil, 0
	in.done(r)
}

// plain is a block's text without layout.
func (b block) plain() string {
	switch {
	case b.qr != nil:
		return "[QR " + b.qr.data + "]"
	case b.note != "":
		return "[" + b.note + "]"
	}
	var s strings.Builder
	for _, c := range b.cells {
		s.WriteRune(c.r)
	}
	return strings.TrimRight(s.String(), " ")
}
