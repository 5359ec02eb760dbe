package facedetect

import (
	"image"
	"image/color"
)

// Gray returns img as an 8-bit grey image with the luma of ITU-R BT.601
// (the Y of JPEG), the weights pigo's cascades were trained with. A
// *image.Gray is returned as it is; a *image.YCbCr gives its Y plane
// without conversion.
func Gray(img image.Image) *image.Gray {
	b := img.Bounds()
	switch src := img.(type) {
	case *image.Gray:
		return src
	case *image.YCbCr:
		g := image.NewGray(b)
		for y := b.Min.Y; y < b.Max.Y; y++ {
			i := src.YOffset(b.Min.X, y)
			copy(g.Pix[(y-b.Min.Y)*g.Stride:], src.Y[i:i+b.Dx()])
		}
		return g
	case *image.RGBA:
		g := image.NewGray(b)
		for y := b.Min.Y; y < b.Max.Y; y++ {
			row := src.Pix[src.PixOffset(b.Min.X, y):]
			out := g.Pix[(y-b.Min.Y)*g.Stride:]
			for x := range b.Dx() {
				out[x] = luma(row[4*x], row[4*x+1], row[4*x+2])
			}
		}
		return g
	case *image.NRGBA:
		g := image.NewGray(b)
		for y := b.Min.Y; y < b.Max.Y; y++ {
			row := src.Pix[src.PixOffset(b.Min.X, y):]
			out := g.Pix[(y-b.Min.Y)*g.Stride:]
			for x := range b.Dx() {
				// Over black, like the other paths' premultiplied colours.
				a := uint32(row[4*x+3])
				out[x] = luma(uint8(uint32(row[4*x])*a/255), uint8(uint32(row[4*x+1])*a/255), uint8(uint32(row[4*x+2])*a/255))
			}
		}
		return g
	}
	g := image.NewGray(b)
	for y := b.Min.Y; y < b.Max.Y; y++ {
		out := g.Pix[(y-b.Min.Y)*g.Stride:]
		for x := b.Min.X; x < b.Max.X; x++ {
			out[x-b.Min.X] = color.GrayModel.Convert(img.At(x, y)).(color.Gray).Y
		}
	}
	return g
}

// luma is BT.601 luma in 16.16 fixed point, as color.GrayModel rounds it.
func luma(r, g, b uint8) uint8 {
	return uint8((19595*uint32(r) + 38470*uint32(g) + 7471*uint32(b) + 1<<15) >> 16)
}

// pixels returns g's pixels as one contiguous w×h slice.
func pixels(g *image.Gray) []uint8 {
	b := g.Bounds()
	w, h := b.Dx(), b.Dy()
	if g.Stride == w && len(g.Pix) >= w*h {
		return g.Pix[:w*h]
	}
	p := make([]uint8, w*h)
	for y := range h {
		copy(p[y*w:], g.Pix[y*g.Stride:y*g.Stride+w])
	}
	return p
}

// Shrink returns g reduced to w×h by averaging the source pixels each
// target pixel covers (a box filter). It never enlarges: a target side
// longer than the source's is clamped to it.
func Shrink(g *image.Gray, w, h int) *image.Gray {
	b := g.Bounds()
	sw, sh := b.Dx(), b.Dy()
	w, h = max(1, min(w, sw)), max(1, min(h, sh))
	out := image.NewGray(image.Rect(0, 0, w, h))
	if sw == 0 || sh == 0 {
		return out
	}
	// Column spans, computed once.
	x0s, x1s := make([]int, w), make([]int, w)
	for x := range w {
		x0s[x] = x * sw / w
		x1s[x] = max(x0s[x]+1, (x+1)*sw/w)
	}
	sums := make([]uint32, w)
	for y := range h {
		y0, y1 := y*sh/h, max(y*sh/h+1, (y+1)*sh/h)
		clear(sums)
		for sy := y0; sy < y1; sy++ {
			row := g.Pix[sy*g.Stride : sy*g.Stride+sw]
			for x := range w {
				s := uint32(0)
				for _, v := range row[x0s[x]:x1s[x]] {
					s += uint32(v)
				}
				sums[x] += s
			}
		}
		o := out.Pix[y*out.Stride:]
		for x := range w {
			n := uint32((y1 - y0) * (x1s[x] - x0s[x]))
			o[x] = uint8((sums[x] + n/2) / n)
		}
	}
	return out
}
