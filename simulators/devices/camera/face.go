package camera

import (
	"image"
	"math"
)

// The synthetic head is drawn pixel by pixel in the face's own frame
// (rotated by its roll): hair, a shaded oval with eye sockets, almond eyes
// with iris and pupil, brows, a nose with nostrils, lips, a neck and
// shoulders. The shading is what lets a face detector trained on real
// faces (pigo's) find it: eye regions darker than the cheeks, a lighter
// nose bridge, darker sides. All sizes are fractions of the face's height
// fh, so a frame looks the same at every resolution.
var (
	skinTone    = [3]float64{0xE0, 0xBD, 0xA0}
	hairTone    = [3]float64{0x3B, 0x2A, 0x1E}
	browTone    = [3]float64{0x45, 0x32, 0x24}
	scleraTone  = [3]float64{0xE6, 0xE0, 0xD8}
	irisTone    = [3]float64{0x5B, 0x40, 0x30}
	pupilTone   = [3]float64{0x14, 0x10, 0x10}
	lidTone     = [3]float64{0x2E, 0x20, 0x18}
	lipTone     = [3]float64{0xB5, 0x65, 0x5E}
	lipLine     = [3]float64{0x6E, 0x2E, 0x2E}
	mouthInside = [3]float64{0x3A, 0x14, 0x14}
	teethTone   = [3]float64{0xE8, 0xE4, 0xD8}
	nostrilTone = [3]float64{0x8A, 0x64, 0x50}
	clothTone   = [3]float64{0x33, 0x41, 0x4F}
)

// headExtent is how far the drawing reaches from the face's centre, in
// face heights: the shoulders are wide and low.
const headExtent = 1.4

// drawFace paints one head.
func drawFace(img *image.RGBA, f Face) {
	b := img.Bounds()
	fh := f.Size * float64(b.Dy())
	if fh < 4 {
		return
	}
	fw := fh * 0.74
	cx, cy := f.X*float64(b.Dx()), f.Y*float64(b.Dy())
	sin, cos := math.Sincos(f.Roll * math.Pi / 180)
	reach := headExtent * fh
	x0, x1 := max(b.Min.X, int(cx-reach)), min(b.Max.X, int(cx+reach)+1)
	y0, y1 := max(b.Min.Y, int(cy-0.7*fh)), min(b.Max.Y, int(cy+reach)+1)
	for y := y0; y < y1; y++ {
		row := img.Pix[(y-b.Min.Y)*img.Stride:]
		for x := x0; x < x1; x++ {
			dx, dy := float64(x)+0.5-cx, float64(y)+0.5-cy
			u, v := dx*cos+dy*sin, -dx*sin+dy*cos // the face's frame
			c, ok := headColour(u/fw, v/fh, f, fh)
			if !ok {
				continue
			}
			i := (x - b.Min.X) * 4
			row[i], row[i+1], row[i+2], row[i+3] = clamp8(c[0]), clamp8(c[1]), clamp8(c[2]), 0xFF
		}
	}
}

// headColour is the colour at (u, v): u in face widths from the centre
// (right positive), v in face heights (down positive). ok is false outside
// the head (background).
func headColour(u, v float64, f Face, fh float64) ([3]float64, bool) {
	face := sq(u/0.5) + sq(v/0.5)
	hair := sq(u/0.56) + sq((v+0.08)/0.56)
	switch {
	case face <= 1:
		return faceColour(u, v, face, f, fh), true
	case v > 0.2 && math.Abs(u) < 0.3 && v < 0.9:
		// The neck, in the chin's shadow near the face.
		return scale(skinTone, 0.8+0.06*min(1, (v-0.45)/0.4)), true
	case hair <= 1 && v < 0.25:
		return scale(hairTone, 1+0.12*strands(u, v)), true
	case sq(u/1.15)+sq((v-1.25)/0.55) <= 1:
		return scale(clothTone, 1.05-0.15*min(1, max(0, v-0.75))), true
	}
	return [3]float64{}, false
}

// faceColour shades the oval and draws the features on it.
func faceColour(u, v, face float64, f Face, fh float64) [3]float64 {
	// The top of the forehead is hair.
	if v < -0.33 && sq(u/0.5)+sq((v+0.08)/0.36) > 1 {
		return scale(hairTone, 1+0.12*strands(u, v))
	}
	// Shadows and highlights, each a Gaussian cut off at three widths.
	shade := 1.04 - 0.16*face*face
	if v > -0.29 && v < 0.13 {
		for _, side := range []float64{-1, 1} {
			if ex := side * 0.2; math.Abs(u-ex) < 0.42 {
				shade *= 1 - 0.22*math.Exp(-sq((u-ex)/0.14)-sq((v+0.08)/0.07)) // eye socket
			}
		}
	}
	if math.Abs(u) < 0.18 && v > -0.34 && v < 0.38 {
		shade *= 1 + 0.05*math.Exp(-sq(u/0.05)-sq((v-0.02)/0.12))         // nose bridge
		shade *= 1 - 0.10*math.Exp(-sq((u-0.07)/0.035)-sq((v-0.08)/0.09)) // nose side
	}
	if math.Abs(u) < 0.36 && v > 0.24 && v < 0.48 {
		shade *= 1 - 0.08*math.Exp(-sq(u/0.12)-sq((v-0.36)/0.04)) // under the lip
	}
	col := scale(skinTone, shade)
	// Nostrils.
	for _, side := range []float64{-1, 1} {
		if sq((u-side*0.055)/0.03)+sq((v-0.155)/0.012) <= 1 {
			return nostrilTone
		}
	}
	// Eyes and brows.
	for _, side := range []float64{-1, 1} {
		ex, ey := side*0.2, -0.08
		du := (u - ex) / 0.11
		if math.Abs(du) <= 1 {
			arch := ey - 0.085 - 0.02*(1-du*du)
			if math.Abs(v-arch) <= 0.014*(1-0.4*du*du) {
				return browTone
			}
		}
		du = (u - ex) / 0.085
		if math.Abs(du) > 1 {
			continue
		}
		half := 0.032 * (1 - du*du)
		if f.EyesClosed {
			if math.Abs(v-ey-0.01-0.5*half) <= 0.005 {
				return lidTone
			}
			continue
		}
		if v < ey-half-0.006 || v > ey+half {
			continue
		}
		if v < ey-half {
			return lidTone // the upper lid's line
		}
		r := math.Hypot((u-ex)*0.74, v-ey) // in face heights
		switch {
		case r <= 0.013:
			return pupilTone
		case r <= 0.03:
			return irisTone
		}
		return scleraTone
	}
	// Lips: a thinner upper lip, a fuller lower one, the line between;
	// an open mouth parts them over a dark inside with the upper teeth.
	const my = 0.27
	du := u / 0.17
	if math.Abs(du) <= 1 {
		gap := 0.0
		if f.MouthOpen && math.Abs(u) < 0.13 {
			gap = 0.04 * math.Sqrt(1-sq(u/0.13))
		}
		up := 0.024*math.Pow(1-du*du, 0.7) + 0.006*math.Exp(-sq(du/0.25))
		low := 0.036 * math.Sqrt(1-du*du)
		switch d := v - my; {
		case gap > 0 && d >= -gap && d < -gap+0.016:
			return teethTone
		case gap > 0 && math.Abs(d) <= gap:
			return mouthInside
		case gap == 0 && math.Abs(d) <= 0.003*(1-du*du)+0.7/fh:
			return lipLine
		case d < 0 && d >= -gap-up:
			return scale(lipTone, 0.9)
		case d > 0 && d <= gap+low:
			return scale(lipTone, 1.05-0.1*(d-gap)/low)
		}
	}
	return col
}

// strands is a texture of fine hair strands in [-1, 1], fixed to the face
// so it scales with it.
func strands(u, v float64) float64 {
	return math.Sin(u*260+math.Sin(v*40)*3) * math.Cos(v*90+u*20)
}

func sq(x float64) float64 { return x * x }

func scale(c [3]float64, k float64) [3]float64 {
	return [3]float64{c[0] * k, c[1] * k, c[2] * k}
}

func clamp8(v float64) uint8 { return uint8(max(0, min(255, v+0.5))) }
