package photo

import (
	"image"
	"image/draw"
)

// toRGBA copies img into a new *image.RGBA with its origin at (0, 0).
func toRGBA(img image.Image) *image.RGBA {
	b := img.Bounds()
	out := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	draw.Draw(out, out.Bounds(), img, b.Min, draw.Src)
	return out
}

// orient returns src turned for display according to the EXIF
// orientation o (1 to 8); src itself for 1 or an unknown value.
func orient(src *image.RGBA, o int) *image.RGBA {
	if o <= OrientNormal || o > OrientRotate270 {
		return src
	}
	w, h := src.Rect.Dx(), src.Rect.Dy()
	dw, dh := w, h
	if o >= OrientTranspose {
		dw, dh = h, w
	}
	dst := image.NewRGBA(image.Rect(0, 0, dw, dh))
	// from maps a destination pixel to its source pixel.
	var from func(x, y int) (int, int)
	switch o {
	case OrientFlipH:
		from = func(x, y int) (int, int) { return w - 1 - x, y }
	case OrientRotate180:
		from = func(x, y int) (int, int) { return w - 1 - x, h - 1 - y }
	case OrientFlipV:
		from = func(x, y int) (int, int) { return x, h - 1 - y }
	case OrientTranspose:
		from = func(x, y int) (int, int) { return y, x }
	case OrientRotate90:
		from = func(x, y int) (int, int) { return y, h - 1 - x }
	case OrientTransverse:
		from = func(x, y int) (int, int) { return w - 1 - y, h - 1 - x }
	case OrientRotate270:
		from = func(x, y int) (int, int) { return w - 1 - y, x }
	}
	for y := 0; y < dh; y++ {
		row := dst.Pix[y*dst.Stride : y*dst.Stride+4*dw]
		for x := 0; x < dw; x++ {
			sx, sy := from(x, y)
			s := sy*src.Stride + 4*sx
			copy(row[4*x:4*x+4], src.Pix[s:s+4])
		}
	}
	return dst
}

// shrink returns src scaled down so that its longer side is at most
// maxSide, by area averaging; src itself if it is small enough or maxSide
// is 0.
func shrink(src *image.RGBA, maxSide int) *image.RGBA {
	w, h := src.Rect.Dx(), src.Rect.Dy()
	if maxSide <= 0 || max(w, h) <= maxSide {
		return src
	}
	dw, dh := maxSide, max(1, (h*maxSide+w/2)/w)
	if h > w {
		dw, dh = max(1, (w*maxSide+h/2)/h), maxSide
	}
	return resample(src, dw, dh)
}

// resample scales src down to dw×dh by averaging the source area under
// each destination pixel: a box filter with fractional edges, weights in
// 1/256 of a source pixel.
func resample(src *image.RGBA, dw, dh int) *image.RGBA {
	w, h := src.Rect.Dx(), src.Rect.Dy()
	dst := image.NewRGBA(image.Rect(0, 0, dw, dh))
	hs, vs := spans(w, dw), spans(h, dh)
	// tmp holds the horizontal averages ×256, dw×h×4.
	tmp := make([]uint32, dw*h*4)
	for y := range h {
		row := src.Pix[y*src.Stride : y*src.Stride+4*w]
		out := tmp[y*dw*4 : (y+1)*dw*4]
		for d, s := range hs {
			var r, g, b, a, total uint64
			for k, wt := range s.w {
				p := row[4*(s.first+k) : 4*(s.first+k)+4]
				w64 := uint64(wt)
				r += w64 * uint64(p[0])
				g += w64 * uint64(p[1])
				b += w64 * uint64(p[2])
				a += w64 * uint64(p[3])
				total += w64
			}
			o := out[4*d : 4*d+4]
			o[0] = uint32((r<<8 + total/2) / total)
			o[1] = uint32((g<<8 + total/2) / total)
			o[2] = uint32((b<<8 + total/2) / total)
			o[3] = uint32((a<<8 + total/2) / total)
		}
	}
	acc := make([]uint64, dw*4)
	for d, s := range vs {
		clear(acc)
		var total uint64
		for k, wt := range s.w {
			t := tmp[(s.first+k)*dw*4 : (s.first+k+1)*dw*4]
			w64 := uint64(wt)
			for i, v := range t {
				acc[i] += w64 * uint64(v)
			}
			total += w64
		}
		div := total << 8
		out := dst.Pix[d*dst.Stride : d*dst.Stride+4*dw]
		for i := range out {
			out[i] = uint8(min((acc[i]+div/2)/div, 255))
		}
	}
	return dst
}

// span is the source pixels under one destination pixel: from first on,
// with their weights in 1/256 of a pixel.
type span struct {
	first int
	w     []uint32
}

// spans maps n source pixels onto dn ≤ n destination pixels.
func spans(n, dn int) []span {
	out := make([]span, dn)
	for d := range dn {
		a := d * n * 256 / dn // in 1/256 source pixels
		b := (d + 1) * n * 256 / dn
		first, last := a/256, min((b-1)/256, n-1)
		s := span{first: first, w: make([]uint32, last-first+1)}
		for i := first; i <= last; i++ {
			lo, hi := max(a, i*256), min(b, (i+1)*256)
			s.w[i-first] = uint32(max(hi-lo, 0))
		}
		out[d] = s
	}
	return out
}
