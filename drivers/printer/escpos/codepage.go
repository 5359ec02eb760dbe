package escpos

import "unicode/utf8"

// CodePage is a character table of the printer, selected with ESC t n.
type CodePage uint8

const (
	// CP858 is PC858 (Multilingual Latin I + Euro): German umlauts, ß, €
	// and §. Epson and most compatible printers select it with ESC t 19.
	CP858 CodePage = 19
	// CP437 is PC437 (USA, Standard Europe), the power-on default: umlauts
	// and ß, but no € and no §.
	CP437 CodePage = 0
)

// cp858High is code page 858 from 0x80 to 0xFF.
const cp858High = "ÇüéâäàåçêëèïîìÄÅ" +
	"ÉæÆôöòûùÿÖÜø£Ø×ƒ" +
	"áíóúñÑªº¿®¬½¼¡«»" +
	"░▒▓│┤ÁÂÀ©╣║╗╝¢¥┐" +
	"└┴┬├─┼ãÃ╚╔╩╦╠═╬¤" +
	"ðÐÊËÈ€ÍÎÏ┘┌█▄¦Ì▀" +
	"ÓßÔÒõÕµþÞÚÛÙýÝ¯´" +
	"\u00ad±‗¾¶§÷¸°¨·¹³²■\u00a0"

// cp437High is code page 437 from 0x80 to 0xFF.
const cp437High = "ÇüéâäàåçêëèïîìÄÅ" +
	"ÉæÆôöòûùÿÖÜ¢£¥₧ƒ" +
	"áíóúñÑªº¿⌐¬½¼¡«»" +
	"░▒▓│┤╡╢╖╕╣║╗╝╜╛┐" +
	"└┴┬├─┼╞╟╚╔╩╦╠═╬╧" +
	"╨╤╥╙╘╒╓╫╪┘┌█▄▌▐▀" +
	"αßΓπΣσµτΦΘΩδ∞φε∩" +
	"≡±≥≤⌠⌡÷≈°∙·√ⁿ²■\u00a0"

// Table returns the 128 characters of the code page from 0x80 to 0xFF, or
// nil for an unknown code page.
func (c CodePage) Table() []rune {
	switch c {
	case CP858:
		return []rune(cp858High)
	case CP437:
		return []rune(cp437High)
	}
	return nil
}

// substitutes are stand-ins for common characters that the code pages
// lack: typographic quotes and dashes as German texts use them.
func substitute(r rune) (rune, bool) {
	switch r {
	case '„', '“', '”', '«', '»':
		return '"', true
	case '‚', '‘', '’', '`':
		return '\'', true
	case '–', '—', '‐', '−':
		return '-', true
	case '…':
		return '.', true
	case '\u00a0', '\u2009', '\u202f':
		return ' ', true
	}
	return 0, false
}

// encoder maps text to one code page.
type encoder struct {
	page map[rune]byte
}

func newEncoder(c CodePage) encoder {
	t := c.Table()
	e := encoder{page: make(map[rune]byte, len(t))}
	for i, r := range t {
		e.page[r] = byte(0x80 + i)
	}
	return e
}

// encode appends s in the code page to dst. Control characters become
// spaces (they would be printer commands); characters the page lacks
// become '?'. It returns how many were replaced by '?'.
func (e encoder) encode(dst []byte, s string) ([]byte, int) {
	missing := 0
	for len(s) > 0 {
		r, size := utf8.DecodeRuneInString(s)
		s = s[size:]
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, '?')
			missing++
		case r < 0x20 || r == 0x7f:
			dst = append(dst, ' ')
		case r < 0x80:
			dst = append(dst, byte(r))
		default:
			if b, ok := e.page[r]; ok {
				dst = append(dst, b)
			} else if sub, ok := substitute(r); ok {
				dst = append(dst, byte(sub))
			} else {
				dst = append(dst, '?')
				missing++
			}
		}
	}
	return dst, missing
}
