package camera

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/textproto"
	"strconv"
	"strings"
)

// Part is one part of an MJPEG stream: its headers and its body (a JPEG).
type Part struct {
	Header textproto.MIMEHeader
	Body   []byte
}

// Limits of the part reader.
const (
	maxLine    = 4096
	maxHeaders = 32
)

// PartReader reads the parts of a multipart/x-mixed-replace stream as
// cameras send it, tolerant of their habits: a boundary with or without
// the leading "--", junk between parts, parts with and without
// Content-Length. Every read is bounded by the part size limit.
type PartReader struct {
	r        *bufio.Reader
	delim    []byte // "--" + boundary
	maxPart  int
	pending  bool // a delimiter line was consumed while reading a body
	finished bool
}

// NewPartReader reads parts separated by boundary, each at most maxPart
// bytes.
func NewPartReader(r io.Reader, boundary string, maxPart int) *PartReader {
	boundary = strings.TrimPrefix(boundary, "--")
	return &PartReader{r: bufio.NewReaderSize(r, 64<<10), delim: []byte("--" + boundary), maxPart: maxPart}
}

// ErrPartTooLarge is returned for a part beyond the size limit; the stream
// is then not trusted further.
var ErrPartTooLarge = errors.New("stream part exceeds the size limit")

// Next returns the next part, io.EOF after the closing boundary or at the
// end of the stream.
func (p *PartReader) Next() (Part, error) {
	if p.finished {
		return Part{}, io.EOF
	}
	if !p.pending {
		if err := p.skipToDelimiter(); err != nil {
			return Part{}, err
		}
	}
	p.pending = false
	h, err := p.readHeader()
	if err != nil {
		return Part{}, err
	}
	if cl := h.Get("Content-Length"); cl != "" {
		n, err := strconv.Atoi(strings.TrimSpace(cl))
		if err != nil || n < 0 {
			return Part{}, fmt.Errorf("part with Content-Length %q", cl)
		}
		if n > p.maxPart {
			return Part{}, fmt.Errorf("%w: %d bytes, limit %d", ErrPartTooLarge, n, p.maxPart)
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(p.r, body); err != nil {
			return Part{}, fmt.Errorf("part body: %w", unexpectedEOF(err))
		}
		return Part{Header: h, Body: body}, nil
	}
	body, err := p.readUntilDelimiter()
	if err != nil {
		return Part{}, err
	}
	return Part{Header: h, Body: body}, nil
}

// line reads one line without its line ending, at most maxLine bytes.
func (p *PartReader) line() ([]byte, error) {
	var out []byte
	for {
		chunk, err := p.r.ReadSlice('\n')
		out = append(out, chunk...)
		if len(out) > maxLine {
			return nil, fmt.Errorf("stream line longer than %d bytes", maxLine)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			if err == io.EOF && len(out) > 0 {
				return bytes.TrimRight(out, "\r\n"), nil
			}
			return nil, err
		}
		return bytes.TrimRight(out, "\r\n"), nil
	}
}

// isDelimiter reports whether a line is the boundary (or the closing
// one); some cameras leave out the leading "--".
func (p *PartReader) isDelimiter(l []byte) (ok, closing bool) {
	l = bytes.TrimRight(l, " \t")
	for _, d := range [][]byte{p.delim, p.delim[2:]} {
		if bytes.Equal(l, d) {
			return true, false
		}
		if len(l) == len(d)+2 && bytes.HasPrefix(l, d) && bytes.HasSuffix(l, []byte("--")) {
			return true, true
		}
	}
	return false, false
}

func (p *PartReader) skipToDelimiter() error {
	skipped := 0
	for {
		l, err := p.line()
		if err != nil {
			return err
		}
		if ok, closing := p.isDelimiter(l); ok {
			if closing {
				p.finished = true
				return io.EOF
			}
			return nil
		}
		if skipped += len(l); skipped > p.maxPart {
			return fmt.Errorf("no boundary within %d bytes", p.maxPart)
		}
	}
}

func (p *PartReader) readHeader() (textproto.MIMEHeader, error) {
	h := textproto.MIMEHeader{}
	for n := 0; ; n++ {
		if n > maxHeaders {
			return nil, fmt.Errorf("part with more than %d header lines", maxHeaders)
		}
		l, err := p.line()
		if err != nil {
			return nil, fmt.Errorf("part header: %w", unexpectedEOF(err))
		}
		if len(l) == 0 {
			return h, nil
		}
		k, v, ok := bytes.Cut(l, []byte(":"))
		if !ok {
			return nil, fmt.Errorf("part header line %q", l)
		}
		h.Add(textproto.CanonicalMIMEHeaderKey(string(bytes.TrimSpace(k))), string(bytes.TrimSpace(v)))
	}
}

// readUntilDelimiter reads a body without Content-Length: up to the line
// ending before the next boundary.
func (p *PartReader) readUntilDelimiter() ([]byte, error) {
	var body []byte
	for {
		chunk, err := p.r.ReadSlice('\n')
		if len(chunk) > 0 {
			if ok, closing := p.isDelimiter(bytes.TrimRight(chunk, "\r\n")); ok {
				p.pending = !closing
				p.finished = closing
				return bytes.TrimSuffix(bytes.TrimSuffix(body, []byte("\n")), []byte("\r")), nil
			}
			body = append(body, chunk...)
			if len(body) > p.maxPart {
				return nil, fmt.Errorf("%w: limit %d", ErrPartTooLarge, p.maxPart)
			}
		}
		switch {
		case err == bufio.ErrBufferFull:
		case err == io.EOF:
			if len(body) == 0 {
				return nil, io.EOF
			}
			return body, nil
		case err != nil:
			return nil, err
		}
	}
}

func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
