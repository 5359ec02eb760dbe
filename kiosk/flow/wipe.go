package flow

import (
	"bytes"
	"image"
	"image/png"

	"github.com/kogge-fleet/kogge/protocol/casefile"
)

// held are the buffers of a session's personal data that outlive the
// step that made them: crops, fingerprint PNGs, the signature PNG, the
// encoded application, and the last camera frames the screen may still
// show. wipe zeroes them all.
type held struct {
	bufs [][]byte
	imgs []image.Image
}

// bytes holds b and returns it.
func (h *held) bytes(b []byte) []byte {
	if len(b) > 0 {
		h.bufs = append(h.bufs, b)
	}
	return b
}

// image holds img.
func (h *held) image(img image.Image) {
	if img != nil {
		h.imgs = append(h.imgs, img)
	}
}

// wipe zeroes everything held and drops it.
func (h *held) wipe() {
	for _, b := range h.bufs {
		clear(b)
	}
	for _, img := range h.imgs {
		zeroImage(img)
	}
	h.bufs, h.imgs = nil, nil
}

// wipe zeroes every buffer of personal data the session holds and drops
// the references: frames, crops, fingerprint images and PNGs, the
// signature and its strokes, the encoded application. The screen shows no
// frame after it.
func (r *Run) wipe() {
	r.held.wipe()
	for _, b := range r.blobs {
		clear(b.Data)
	}
	r.blobs = nil
	if s := r.app.Signature; s != nil {
		for i := range s.Strokes {
			clear(s.Strokes[i].Points)
		}
	}
	r.app = casefile.Application{}
	r.view.Frame, r.view.Candidates, r.view.Guidance = nil, nil, nil
}

// zeroImage zeroes the pixels of the image types cameras and scanners
// deliver; a sub-image shares its parent's pixels and zeroes them all.
func zeroImage(img image.Image) {
	switch m := img.(type) {
	case *image.RGBA:
		clear(m.Pix)
	case *image.NRGBA:
		clear(m.Pix)
	case *image.RGBA64:
		clear(m.Pix)
	case *image.NRGBA64:
		clear(m.Pix)
	case *image.Gray:
		clear(m.Pix)
	case *image.Gray16:
		clear(m.Pix)
	case *image.CMYK:
		clear(m.Pix)
	case *image.Paletted:
		clear(m.Pix)
	case *image.Alpha:
		clear(m.Pix)
	case *image.YCbCr:
		clear(m.Y)
		clear(m.Cb)
		clear(m.Cr)
	case *image.NYCbCrA:
		clear(m.Y)
		clear(m.Cb)
		clear(m.Cr)
		clear(m.A)
	}
}

// encodeGray encodes a fingerprint as an 8-bit grey PNG into a buffer
// sized up front, so that no half-written copy is left behind in memory
// the session cannot zero.
func encodeGray(g *image.Gray) ([]byte, error) {
	buf := bytes.NewBuffer(make([]byte, 0, len(g.Pix)+g.Rect.Dy()+4096))
	if err := png.Encode(buf, g); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
