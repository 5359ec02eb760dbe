package photo

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// Segment is one marker segment of a JPEG file.
type Segment struct {
	// Marker is the second byte of the marker, for example 0xE1 for APP1.
	Marker byte
	// Offset is where the marker starts in the file.
	Offset int
	// Data is the segment's payload after the length field (nil for
	// markers without one: SOI, EOI, RSTn).
	Data []byte
}

// JPEG markers the package names.
const (
	markerSOI  = 0xD8
	markerEOI  = 0xD9
	markerSOS  = 0xDA
	markerAPP0 = 0xE0
	markerAPP1 = 0xE1
	markerAPP2 = 0xE2
	markerAP13 = 0xED
	markerAP14 = 0xEE
	markerCOM  = 0xFE
)

// ErrNotJPEG means the bytes are not a JPEG file.
var ErrNotJPEG = errors.New("not a JPEG file")

// Segments parses the marker segments of a whole JPEG file, from SOI to
// EOI, skipping the entropy-coded data after each SOS. Bytes after EOI are
// reported as trailing, since they are where some cameras hide further
// data.
func Segments(b []byte) (segs []Segment, trailing int, err error) {
	if len(b) < 4 || b[0] != 0xFF || b[1] != markerSOI {
		return nil, 0, ErrNotJPEG
	}
	segs = append(segs, Segment{Marker: markerSOI})
	i := 2
	for {
		// Fill bytes (0xFF) may precede a marker.
		if i >= len(b) || b[i] != 0xFF {
			return segs, 0, fmt.Errorf("%w: no marker at byte %d", errCorrupt, i)
		}
		for i < len(b) && b[i] == 0xFF {
			i++
		}
		if i >= len(b) {
			return segs, 0, fmt.Errorf("%w: ends inside a marker", errCorrupt)
		}
		m, at := b[i], i-1
		i++
		switch {
		case m == markerEOI:
			segs = append(segs, Segment{Marker: m, Offset: at})
			return segs, len(b) - i, nil
		case m == markerSOI || m == 0x00 || m >= 0xD0 && m <= 0xD7 || m == 0x01:
			segs = append(segs, Segment{Marker: m, Offset: at})
			continue
		}
		if i+2 > len(b) {
			return segs, 0, fmt.Errorf("%w: segment %02X at byte %d has no length", errCorrupt, m, at)
		}
		n := int(binary.BigEndian.Uint16(b[i:]))
		if n < 2 || i+n > len(b) {
			return segs, 0, fmt.Errorf("%w: segment %02X at byte %d runs past the end", errCorrupt, m, at)
		}
		segs = append(segs, Segment{Marker: m, Offset: at, Data: b[i+2 : i+n]})
		i += n
		if m != markerSOS {
			continue
		}
		// Entropy-coded data: up to the next marker that is neither a
		// stuffed 0xFF00 nor a restart marker.
		for {
			j := bytes.IndexByte(b[i:], 0xFF)
			if j < 0 || i+j+1 >= len(b) {
				return segs, 0, fmt.Errorf("%w: scan data has no end", errCorrupt)
			}
			i += j
			if n := b[i+1]; n == 0x00 || n >= 0xD0 && n <= 0xD7 || n == 0xFF {
				i++
				if n != 0xFF {
					i++
				}
				continue
			}
			break
		}
	}
}

var errCorrupt = errors.New("corrupt JPEG")

// Metadata lists the metadata a JPEG file carries, by kind: "exif",
// "xmp", "icc", "iptc", "comment", "jfif-thumbnail", "app<n>" for other
// application segments, and "trailing-data" for bytes after the image. An
// image written by Clean has none.
func Metadata(b []byte) ([]string, error) {
	segs, trailing, err := Segments(b)
	if err != nil {
		return nil, err
	}
	var kinds []string
	add := func(k string) {
		for _, have := range kinds {
			if have == k {
				return
			}
		}
		kinds = append(kinds, k)
	}
	for _, s := range segs {
		switch {
		case s.Marker == markerAPP1 && bytes.HasPrefix(s.Data, []byte("Exif\x00")):
			add("exif")
		case s.Marker == markerAPP1 && bytes.HasPrefix(s.Data, []byte("http://ns.adobe.com/")):
			add("xmp")
		case s.Marker == markerAPP2 && bytes.HasPrefix(s.Data, []byte("ICC_PROFILE\x00")):
			add("icc")
		case s.Marker == markerAP13:
			add("iptc")
		case s.Marker == markerCOM:
			add("comment")
		case s.Marker == markerAPP0 && bytes.HasPrefix(s.Data, []byte("JFIF\x00")):
			// A bare JFIF header (16 bytes) carries nothing but the
			// density; more is an embedded thumbnail.
			if len(s.Data) > 14 {
				add("jfif-thumbnail")
			}
		case s.Marker >= markerAPP0 && s.Marker <= 0xEF:
			add(fmt.Sprintf("app%d", s.Marker-markerAPP0))
		}
	}
	if trailing > 0 {
		add("trailing-data")
	}
	return kinds, nil
}

// Orientation values of EXIF tag 0x0112: how the stored pixels must be
// turned for display.
const (
	OrientNormal     = 1
	OrientFlipH      = 2
	OrientRotate180  = 3
	OrientFlipV      = 4
	OrientTranspose  = 5
	OrientRotate90   = 6 // clockwise
	OrientTransverse = 7
	OrientRotate270  = 8 // clockwise (90 counter-clockwise)
)

// Orientation returns the EXIF orientation of a JPEG file (1 to 8), or
// OrientNormal if the file has no EXIF block, no orientation tag or an
// unreadable one. It reads only the segments before the first scan.
func Orientation(b []byte) int {
	if len(b) < 4 || b[0] != 0xFF || b[1] != markerSOI {
		return OrientNormal
	}
	i := 2
	for i+4 <= len(b) && b[i] == 0xFF {
		m := b[i+1]
		if m == markerSOS || m == markerEOI {
			break
		}
		n := int(binary.BigEndian.Uint16(b[i+2:]))
		if n < 2 || i+2+n > len(b) {
			break
		}
		data := b[i+4 : i+2+n]
		if m == markerAPP1 && bytes.HasPrefix(data, []byte("Exif\x00\x00")) {
			if o := tiffOrientation(data[6:]); o >= OrientNormal && o <= OrientRotate270 {
				return o
			}
			return OrientNormal
		}
		i += 2 + n
	}
	return OrientNormal
}

// tiffOrientation reads tag 0x0112 of IFD0 of a TIFF block, 0 if absent.
func tiffOrientation(t []byte) int {
	if len(t) < 8 {
		return 0
	}
	var bo binary.ByteOrder
	switch string(t[:2]) {
	case "II":
		bo = binary.LittleEndian
	case "MM":
		bo = binary.BigEndian
	default:
		return 0
	}
	if bo.Uint16(t[2:]) != 42 {
		return 0
	}
	ifd := int64(bo.Uint32(t[4:]))
	if ifd < 8 || ifd+2 > int64(len(t)) {
		return 0
	}
	n := int64(bo.Uint16(t[ifd:]))
	for k := int64(0); k < n; k++ {
		e := ifd + 2 + 12*k
		if e+12 > int64(len(t)) {
			return 0
		}
		if bo.Uint16(t[e:]) != 0x0112 {
			continue
		}
		// SHORT (3), count 1: the value sits in the first two bytes of the
		// value field.
		if bo.Uint16(t[e+2:]) != 3 || bo.Uint32(t[e+4:]) != 1 {
			return 0
		}
		return int(bo.Uint16(t[e+8:]))
	}
	return 0
}
