package photo

import (
	"image"
	"image/color"
	"math"
	"slices"

	"github.com/kogge-fleet/kogge/internal/facedetect"
)

// Head proportions in pupil distances (adult averages: pupil distance
// 63 mm, crown to pupils 120 mm, pupils to chin 117 mm, head breadth
// 155 mm); measured values are kept within a band around them.
const (
	crownAbove   = 1.9
	chinBelow    = 1.9
	headBreadth  = 2.45
	sharpWidth   = 128 // the face is shrunk to this width for sharpness
	segmentSteps = 64  // samples along a line searched for the background
)

// measures are a frame's raw values.
type measures struct {
	region                        image.Rectangle
	captureWidth                  float64
	headWidth, headHeight         float64
	eyePosition, centre           float64
	eyeDistance, roll             float64
	eyesOpen, mouthOpening        float64
	exposure, sharpness, chroma   float64
	background, lighting          float64
	pupilDist                     float64 // in frame pixels
	crown, chin, headLeft, headRt float64
}

// measure derives the head and the crop region from face f and measures
// the criteria.
func (c *Checker) measure(frame image.Image, g *image.Gray, f facedetect.Face) measures {
	cfg := c.cfg
	b := frame.Bounds()
	var m measures
	s := float64(f.Box.Dx())
	// The pupils, or where they usually are in the face's box.
	l, r := f.LeftEye.Point, f.RightEye.Point
	if !f.LeftEye.Found || !f.RightEye.Found {
		cy := float64(f.Box.Min.Y+f.Box.Max.Y)/2 - 0.075*s
		cx := float64(f.Box.Min.X+f.Box.Max.X) / 2
		l, r = image.Pt(int(cx-0.18*s), int(cy)), image.Pt(int(cx+0.18*s), int(cy))
	} else {
		m.roll = f.Roll()
	}
	e := math.Hypot(float64(r.X-l.X), float64(r.Y-l.Y))
	if e < 2 {
		e = 0.36 * s
	}
	m.pupilDist = e
	ex, ey := float64(l.X+r.X)/2, float64(l.Y+r.Y)/2

	// The head's extent: measured against the background where it can be,
	// else from the proportions.
	bg, bgOK := backgroundColour(frame, ex, ey, e)
	up, down := crownAbove*e, chinBelow*e
	if bgOK {
		if d, ok := edgeDistance(frame, bg, ex, ey, 0, -1, 1.4*e, 2.8*e); ok {
			up = d
		}
	}
	half := headBreadth * e / 2
	if bgOK {
		dl, okl := edgeDistance(frame, bg, float64(l.X), ey, -1, 0, 0.6*e, 1.2*e)
		dr, okr := edgeDistance(frame, bg, float64(r.X), ey, 1, 0, 0.6*e, 1.2*e)
		if okl && okr {
			half = (dl + dr + e) / 2
		}
	}
	m.crown, m.chin = ey-up, ey+down
	m.headLeft, m.headRt = ex-half, ex+half
	hh, hw := up+down, 2*half

	// The crop region: head height in the middle of its range, no wider
	// than the head width's range and the eye distance allow, within the
	// frame.
	asp := float64(cfg.OutputWidth) / float64(cfg.OutputHeight)
	W := hh / ((cfg.HeadHeight.Min + cfg.HeadHeight.Max) / 2) * asp
	if lo, hi := hw/cfg.HeadWidth.Max, hw/cfg.HeadWidth.Min; lo <= hi {
		W = max(lo, min(hi, W))
	}
	if cfg.MinEyeDistance > 0 {
		W = min(W, e*float64(cfg.OutputWidth)/cfg.MinEyeDistance)
	}
	fw, fh := float64(b.Dx()), float64(b.Dy())
	W = max(1, min(W, fw, fh*asp))
	H := W / asp
	// In coordinates relative to the frame's corner from here.
	rex, rey := ex-float64(b.Min.X), ey-float64(b.Min.Y)
	x0 := rex - W/2
	// Vertically: the head centred with a little less room above than
	// below, the eye line kept inside its range.
	y0 := rey - up - (H-hh)*0.45
	pos := (rey - y0) / H
	lo, hi := cfg.EyePosition.Min+0.02, cfg.EyePosition.Max-0.02
	if lo <= hi {
		pos = max(lo, min(hi, pos))
	}
	y0 = rey - pos*H
	x0 = max(0, min(fw-W, x0))
	y0 = max(0, min(fh-H, y0))
	// Whole pixels, no smaller than the real-valued region.
	iw := int(math.Ceil(W - 1e-9))
	ih := int(math.Round(float64(iw) / asp))
	if ih > b.Dy() {
		ih = b.Dy()
		iw = int(float64(ih) * asp)
	}
	ix := max(0, min(b.Dx()-iw, int(math.Round(x0))))
	iy := max(0, min(b.Dy()-ih, int(math.Round(y0))))
	m.region = image.Rect(ix, iy, ix+iw, iy+ih).Add(b.Min)
	W, H = float64(iw), float64(ih)
	x0, y0 = float64(ix), float64(iy)

	sx, sy := 1.0, 1.0
	if cfg.CaptureWidth > 0 {
		sx, sy = float64(cfg.CaptureWidth)/fw, float64(cfg.CaptureHeight)/fh
	}
	m.captureWidth = math.Floor(min(W*sx, H*sy*asp) + 1e-6)
	m.headWidth, m.headHeight = hw/W, hh/H
	m.centre = (rex - x0) / W
	m.eyePosition = (rey - y0) / H
	m.eyeDistance = e * float64(cfg.OutputWidth) / W

	// Appearance.
	skin := skinLuma(g, ex, ey, e)
	m.eyesOpen = min(eyeOpen(g, l, e, skin), eyeOpen(g, r, e, skin))
	if !f.LeftEye.Found || !f.RightEye.Found {
		m.eyesOpen = 0
		m.roll = math.NaN()
	}
	// The mouth: from its landmarks, or where it usually is.
	mx, my, mw := ex, ey+1.12*e, 0.85*e
	if mo := f.Mouth; mo.Found {
		mx, my = float64(mo.Left.X+mo.Right.X)/2, float64(mo.Left.Y+mo.Right.Y)/2
		mw = max(0.5*e, min(1.3*e, math.Hypot(float64(mo.Right.X-mo.Left.X), float64(mo.Right.Y-mo.Left.Y))))
	}
	m.mouthOpening = mouthGap(frame, mx, my, mw, skin, min(0.15, 0.5*saturation(frame, ex, ey, e)))
	// Without visible pupils the eye line is guesswork: the line of the
	// mouth's corners, parallel to it in a frontal face, stands in.
	if mo := f.Mouth; mo.Found && (m.eyesOpen < cfg.MinEyesOpen || math.IsNaN(m.roll)) {
		m.roll = math.Atan2(float64(mo.Right.Y-mo.Left.Y), float64(mo.Right.X-mo.Left.X)) * 180 / math.Pi
	}
	m.exposure = meanLuma(g, ex-0.6*e, ey+0.15*e, ex+0.6*e, ey+0.9*e)
	m.sharpness = sharpness(g, ex-1.1*e, ey-0.6*e, ex+1.1*e, ey+1.4*e)
	m.chroma = chroma(frame, ex-0.7*e, ey+0.2*e, ex+0.7*e, ey+0.9*e)
	m.lighting = lighting(g, ex, ey, e)
	m.background = c.backgroundShare(frame, m)
	return m
}

// rgbAt is the colour at (x, y) as 8-bit RGB, without allocating for the
// camera's usual image types.
func rgbAt(img image.Image, x, y int) (r, g, b uint8) {
	switch p := img.(type) {
	case *image.YCbCr:
		yi, ci := p.YOffset(x, y), p.COffset(x, y)
		return color.YCbCrToRGB(p.Y[yi], p.Cb[ci], p.Cr[ci])
	case *image.RGBA:
		i := p.PixOffset(x, y)
		return p.Pix[i], p.Pix[i+1], p.Pix[i+2]
	case *image.NRGBA:
		i := p.PixOffset(x, y)
		a := uint32(p.Pix[i+3])
		return uint8(uint32(p.Pix[i]) * a / 255), uint8(uint32(p.Pix[i+1]) * a / 255), uint8(uint32(p.Pix[i+2]) * a / 255)
	case *image.Gray:
		v := p.Pix[p.PixOffset(x, y)]
		return v, v, v
	}
	r32, g32, b32, _ := img.At(x, y).RGBA()
	return uint8(r32 >> 8), uint8(g32 >> 8), uint8(b32 >> 8)
}

// inside reports whether (x, y) lies in b.
func inside(b image.Rectangle, x, y float64) bool {
	return x >= float64(b.Min.X) && y >= float64(b.Min.Y) && x < float64(b.Max.X) && y < float64(b.Max.Y)
}

// backgroundColour is the median colour of patches left and right of the
// head at forehead height and above it; ok is false when they disagree
// (no uniform background) or lie outside the frame.
func backgroundColour(img image.Image, ex, ey, e float64) ([3]float64, bool) {
	b := img.Bounds()
	var rs, gs, bs []float64
	for _, p := range [][2]float64{{ex - 2.3*e, ey - 1.2*e}, {ex + 2.3*e, ey - 1.2*e}, {ex - 2.0*e, ey - 2.4*e}, {ex + 2.0*e, ey - 2.4*e}} {
		for dy := -2; dy <= 2; dy++ {
			for dx := -2; dx <= 2; dx++ {
				x, y := p[0]+float64(dx)*e*0.04, p[1]+float64(dy)*e*0.04
				if !inside(b, x, y) {
					continue
				}
				r, g, bl := rgbAt(img, int(x), int(y))
				rs, gs, bs = append(rs, float64(r)), append(gs, float64(g)), append(bs, float64(bl))
			}
		}
	}
	if len(rs) < 25 {
		return [3]float64{}, false
	}
	med := [3]float64{median(rs), median(gs), median(bs)}
	// Uniform: most samples near the median.
	near := 0
	for i := range rs {
		if colourDist([3]float64{rs[i], gs[i], bs[i]}, med) < 30 {
			near++
		}
	}
	return med, float64(near) >= 0.8*float64(len(rs))
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func colourDist(a, b [3]float64) float64 {
	return math.Abs(a[0]-b[0]) + math.Abs(a[1]-b[1]) + math.Abs(a[2]-b[2])
}

// edgeDistance walks from (x, y) in direction (dx, dy) between from and to
// pixels and returns the distance of the first place where three samples
// in a row look like the background bg.
func edgeDistance(img image.Image, bg [3]float64, x, y, dx, dy, from, to float64) (float64, bool) {
	b := img.Bounds()
	step := (to - from) / segmentSteps
	run := 0
	for i := 0; i <= segmentSteps; i++ {
		d := from + float64(i)*step
		px, py := x+dx*d, y+dy*d
		if !inside(b, px, py) {
			return d, run > 0 || i > 0 // the frame's edge ends the head
		}
		r, g, bl := rgbAt(img, int(px), int(py))
		if colourDist([3]float64{float64(r), float64(g), float64(bl)}, bg) < 36 {
			run++
			if run == 3 {
				return d - 2*step, true
			}
		} else {
			run = 0
		}
	}
	return 0, false
}

// grid calls fn for n×n points spread over the rectangle (x0,y0)-(x1,y1),
// clipped to b.
func grid(b image.Rectangle, x0, y0, x1, y1 float64, n int, fn func(x, y int)) {
	for j := range n {
		y := y0 + (y1-y0)*(float64(j)+0.5)/float64(n)
		for i := range n {
			x := x0 + (x1-x0)*(float64(i)+0.5)/float64(n)
			if inside(b, x, y) {
				fn(int(x), int(y))
			}
		}
	}
}

// meanLuma is the mean grey level of the rectangle.
func meanLuma(g *image.Gray, x0, y0, x1, y1 float64) float64 {
	var sum, n float64
	grid(g.Rect, x0, y0, x1, y1, 24, func(x, y int) {
		sum += float64(g.Pix[g.PixOffset(x, y)])
		n++
	})
	if n == 0 {
		return 0
	}
	return sum / n
}

// skinLuma is the luma of the cheeks, the reference for "dark" at the
// eyes.
func skinLuma(g *image.Gray, ex, ey, e float64) float64 {
	return max(1, (meanLuma(g, ex-0.75*e, ey+0.35*e, ex-0.35*e, ey+0.75*e)+
		meanLuma(g, ex+0.35*e, ey+0.35*e, ex+0.75*e, ey+0.75*e))/2)
}

// saturation is the cheeks' mean (max−min)/luma of the channels.
func saturation(img image.Image, ex, ey, e float64) float64 {
	var sum, n float64
	for _, side := range []float64{-1, 1} {
		x0, x1 := ex+side*0.35*e, ex+side*0.75*e
		grid(img.Bounds(), min(x0, x1), ey+0.35*e, max(x0, x1), ey+0.75*e, 8, func(x, y int) {
			r, g, b := rgbAt(img, x, y)
			l := 0.299*float64(r) + 0.587*float64(g) + 0.114*float64(b)
			if l >= 1 {
				sum += float64(max(r, g, b)-min(r, g, b)) / l
				n++
			}
		})
	}
	if n == 0 {
		return 0
	}
	return sum / n
}

// eyeOpen is the share of pixels around pupil p that are darker than 0.62
// of the skin: the iris and pupil of an open eye fill most of a window of
// a quarter pupil distance; a closed lid leaves a thin lash line.
func eyeOpen(g *image.Gray, p image.Point, e, skin float64) float64 {
	var dark, n float64
	rx, ry := 0.09*e, 0.07*e
	grid(g.Rect, float64(p.X)-rx, float64(p.Y)-ry, float64(p.X)+rx, float64(p.Y)+ry, 12, func(x, y int) {
		if float64(g.Pix[g.PixOffset(x, y)]) < 0.62*skin {
			dark++
		}
		n++
	})
	if n == 0 {
		return 0
	}
	return dark / n
}

// sharpness is the variance of the Laplacian of the rectangle, shrunk to
// sharpWidth pixels wide (never enlarged).
func sharpness(g *image.Gray, x0, y0, x1, y1 float64) float64 {
	r := image.Rect(int(x0), int(y0), int(math.Ceil(x1)), int(math.Ceil(y1))).Intersect(g.Rect)
	if r.Dx() < 8 || r.Dy() < 8 {
		return 0
	}
	sub := g.SubImage(r).(*image.Gray)
	w := min(r.Dx(), sharpWidth)
	h := max(3, r.Dy()*w/r.Dx())
	s := facedetect.Shrink(sub, w, h)
	w, h = s.Rect.Dx(), s.Rect.Dy()
	var sum, sum2, n float64
	for y := 1; y < h-1; y++ {
		row := s.Pix[y*s.Stride:]
		up, down := s.Pix[(y-1)*s.Stride:], s.Pix[(y+1)*s.Stride:]
		for x := 1; x < w-1; x++ {
			v := float64(up[x]) + float64(down[x]) + float64(row[x-1]) + float64(row[x+1]) - 4*float64(row[x])
			sum += v
			sum2 += v * v
			n++
		}
	}
	if n == 0 {
		return 0
	}
	mean := sum / n
	return sum2/n - mean*mean
}

// chroma is the mean distance of the rectangle's colours from grey, in
// YCbCr units; 0 for grey colour models.
func chroma(img image.Image, x0, y0, x1, y1 float64) float64 {
	switch img.ColorModel() {
	case color.GrayModel, color.Gray16Model:
		return 0
	}
	var sum, n float64
	grid(img.Bounds(), x0, y0, x1, y1, 16, func(x, y int) {
		r, g, b := rgbAt(img, x, y)
		_, cb, cr := color.RGBToYCbCr(r, g, b)
		sum += math.Hypot(float64(cb)-128, float64(cr)-128)
		n++
	})
	if n == 0 {
		return 0
	}
	return sum / n
}

// lighting is the darker cheek's luma over the brighter's.
func lighting(g *image.Gray, ex, ey, e float64) float64 {
	l := meanLuma(g, ex-0.8*e, ey+0.3*e, ex-0.35*e, ey+0.8*e)
	r := meanLuma(g, ex+0.35*e, ey+0.3*e, ex+0.8*e, ey+0.8*e)
	if max(l, r) == 0 {
		return 0
	}
	return min(l, r) / max(l, r)
}

// backgroundShare samples the crop region outside the head: the band
// above the crown and the bands beside the head down to the chin. A
// sample is good when each channel is within the grey range, the channels
// are within BackgroundMaxSpread of each other, and its luma within
// BackgroundMaxSpread of the samples' median.
func (c *Checker) backgroundShare(img image.Image, m measures) float64 {
	cfg := c.cfg
	reg := m.region
	margin := 0.15 * m.pupilDist
	type sample struct{ r, g, b float64 }
	var ss []sample
	take := func(x0, y0, x1, y1 float64) {
		if x1-x0 < 2 || y1-y0 < 2 {
			return
		}
		grid(reg, x0, y0, x1, y1, 14, func(x, y int) {
			r, g, b := rgbAt(img, x, y)
			ss = append(ss, sample{float64(r), float64(g), float64(b)})
		})
	}
	rx0, ry0, rx1 := float64(reg.Min.X), float64(reg.Min.Y), float64(reg.Max.X)
	take(rx0, ry0, rx1, m.crown-margin)
	take(rx0, max(ry0, m.crown-margin), m.headLeft-margin, m.chin)
	take(m.headRt+margin, max(ry0, m.crown-margin), rx1, m.chin)
	if len(ss) == 0 {
		return 0
	}
	lumas := make([]float64, len(ss))
	for i, s := range ss {
		lumas[i] = 0.299*s.r + 0.587*s.g + 0.114*s.b
	}
	med := median(lumas)
	good := 0
	for i, s := range ss {
		lo, hi := min(s.r, s.g, s.b), max(s.r, s.g, s.b)
		if lo >= cfg.Background.Min && hi <= cfg.Background.Max && hi-lo <= cfg.BackgroundMaxSpread &&
			math.Abs(lumas[i]-med) <= cfg.BackgroundMaxSpread {
			good++
		}
	}
	return float64(good) / float64(len(ss))
}

// mouthGap is the height of the gap between the lips over the mouth's width
// w, for a mouth centred at (mx, my): in seven columns across its middle,
// the longest vertical run of pixels that are neither skin nor lip — much
// darker than the skin (the inside of the mouth) or whitish (teeth: as
// bright as the skin, with less than teethSat of saturation) — and
// of those runs the median. Closed lips leave at most the thin line
// between them.
func mouthGap(img image.Image, mx, my, w, skin, teethSat float64) float64 {
	b := img.Bounds()
	if w < 4 {
		return 0
	}
	y0, y1 := int(my-0.4*w), int(my+0.4*w)
	step := max(1, (y1-y0)/160) // bound the work on large frames
	var runs []float64
	for i := range 7 {
		x := int(mx + w*0.4*(float64(i)/6-0.5))
		best, run := 0, 0
		for y := y0; y <= y1; y += step {
			if !inside(b, float64(x), float64(y)) {
				run = 0
				continue
			}
			r, g, bl := rgbAt(img, x, y)
			l := 0.299*float64(r) + 0.587*float64(g) + 0.114*float64(bl)
			lo, hi := min(r, g, bl), max(r, g, bl)
			if l < 0.45*skin || (l > 0.95*skin && float64(hi-lo) < teethSat*l) {
				run += step
				best = max(best, run)
			} else {
				run = 0
			}
		}
		runs = append(runs, float64(best))
	}
	return median(runs) / w
}
