package photo

import (
	crand "crypto/rand"
	"image"
	"math/rand/v2"
)

// Kind says what a redacted region holds; it sets the margin and the
// coarseness of the redaction.
type Kind uint8

// Kinds of regions.
const (
	// KindFace is a face box of a face finder (brows to chin).
	KindFace Kind = iota + 1
	// KindPlate is a licence plate.
	KindPlate
	// KindManual is a region the user marked on the device.
	KindManual
)

// Region is a part of an image to make unrecognisable.
type Region struct {
	Rect image.Rectangle
	Kind Kind
}

// grow returns the region's rectangle with the margins of its kind: a face
// box grows by Options.FaceMargin of its size on every side and twice that
// upwards (hair, forehead); a plate box by Options.PlateMargin.
func (r Region) grow(o Options) image.Rectangle {
	w, h := r.Rect.Dx(), r.Rect.Dy()
	var mx, my, up int
	switch r.Kind {
	case KindFace:
		mx, my = int(float64(w)*o.FaceMargin+0.5), int(float64(h)*o.FaceMargin+0.5)
		up = 2 * my
	case KindPlate:
		mx, my = int(float64(w)*o.PlateMargin+0.5), int(float64(h)*o.PlateMargin+0.5)
		up = my
	default:
		return r.Rect
	}
	return image.Rect(r.Rect.Min.X-mx, r.Rect.Min.Y-up, r.Rect.Max.X+mx, r.Rect.Max.Y+my)
}

// Redact makes the regions of img unrecognisable, in place, and returns
// the rectangles it changed (the regions with their margins, clipped to
// the image). Pixels outside them are not touched.
//
// Each region is first pixelated into coarse cells, Options.FaceCells
// cells across the shorter side of a face region and Options.PlateCells
// across the height of a plate region (so that a cell is taller than half
// a character); each cell is filled with its mean colour plus random noise
// of up to ±Options.Noise per channel from a cryptographic seed, so that
// the cells cannot be matched against renderings of candidate faces or
// plates. Then the region is blurred with a box filter as wide as a cell,
// three passes (close to a Gaussian), which removes the cell edges. The
// result keeps only the rough colour of the region.
func (o Options) Redact(img *image.RGBA, regions []Region) []image.Rectangle {
	o = o.withDefaults()
	var seed [32]byte
	crand.Read(seed[:])
	rng := rand.New(rand.NewChaCha8(seed))
	var done []image.Rectangle
	for _, r := range regions {
		rect := r.grow(o).Intersect(img.Rect)
		if rect.Empty() {
			continue
		}
		var cell int
		switch r.Kind {
		case KindPlate:
			cell = (min(rect.Dx(), rect.Dy()) + o.PlateCells - 1) / o.PlateCells
		default:
			cell = (min(rect.Dx(), rect.Dy()) + o.FaceCells - 1) / o.FaceCells
		}
		cell = max(cell, o.MinCell)
		pixelate(img, rect, cell, o.Noise, rng)
		for range 3 {
			boxBlur(img, rect, cell/2)
		}
		done = append(done, rect)
	}
	return done
}

// pixelate fills each cell×cell block of rect with its mean colour plus
// noise.
func pixelate(img *image.RGBA, rect image.Rectangle, cell, noise int, rng *rand.Rand) {
	for y0 := rect.Min.Y; y0 < rect.Max.Y; y0 += cell {
		y1 := min(y0+cell, rect.Max.Y)
		for x0 := rect.Min.X; x0 < rect.Max.X; x0 += cell {
			x1 := min(x0+cell, rect.Max.X)
			var sum [3]int
			for y := y0; y < y1; y++ {
				p := img.Pix[img.PixOffset(x0, y):img.PixOffset(x1, y)]
				for i := 0; i < len(p); i += 4 {
					sum[0] += int(p[i])
					sum[1] += int(p[i+1])
					sum[2] += int(p[i+2])
				}
			}
			n := (x1 - x0) * (y1 - y0)
			var c [3]uint8
			for k := range 3 {
				v := sum[k] / n
				if noise > 0 {
					v += rng.IntN(2*noise+1) - noise
				}
				c[k] = uint8(min(max(v, 0), 255))
			}
			for y := y0; y < y1; y++ {
				p := img.Pix[img.PixOffset(x0, y):img.PixOffset(x1, y)]
				for i := 0; i < len(p); i += 4 {
					p[i], p[i+1], p[i+2], p[i+3] = c[0], c[1], c[2], 0xFF
				}
			}
		}
	}
}

// boxBlur blurs rect with a box of radius r, horizontally then
// vertically, reading and writing only pixels inside rect (the edges are
// clamped).
func boxBlur(img *image.RGBA, rect image.Rectangle, r int) {
	if r < 1 {
		return
	}
	w, h := rect.Dx(), rect.Dy()
	buf := make([]int32, max(w, h)*3)
	line := func(at func(i int) int, n int) {
		// Copy the line, then slide a window of 2r+1 over it.
		for i := range n {
			p := at(i)
			buf[3*i], buf[3*i+1], buf[3*i+2] = int32(img.Pix[p]), int32(img.Pix[p+1]), int32(img.Pix[p+2])
		}
		clampAt := func(i int) int { return min(max(i, 0), n-1) }
		var s [3]int32
		for i := -r; i <= r; i++ {
			j := clampAt(i)
			s[0] += buf[3*j]
			s[1] += buf[3*j+1]
			s[2] += buf[3*j+2]
		}
		d := int32(2*r + 1)
		for i := range n {
			p := at(i)
			img.Pix[p], img.Pix[p+1], img.Pix[p+2] = uint8((s[0]+d/2)/d), uint8((s[1]+d/2)/d), uint8((s[2]+d/2)/d)
			out, in := clampAt(i-r), clampAt(i+r+1)
			s[0] += buf[3*in] - buf[3*out]
			s[1] += buf[3*in+1] - buf[3*out+1]
			s[2] += buf[3*in+2] - buf[3*out+2]
		}
	}
	for y := rect.Min.Y; y < rect.Max.Y; y++ {
		base := img.PixOffset(rect.Min.X, y)
		line(func(i int) int { return base + 4*i }, w)
	}
	for x := rect.Min.X; x < rect.Max.X; x++ {
		base := img.PixOffset(x, rect.Min.Y)
		line(func(i int) int { return base + i*img.Stride }, h)
	}
}
