package finger

import (
	"errors"
	"fmt"
	"image"
	"math"
	"slices"
)

// Failed is the score of an image that could not be scored (NFIQ 2's
// 255): nil, too small, too large or malformed.
const Failed uint8 = 255

// Image sizes Score accepts, in pixels per side.
const (
	MinSide = 64
	MaxSide = 4096
)

// Config holds the scoring settings. The zero value is not valid; start
// from DefaultConfig.
type Config struct {
	// Threshold is the enrolment threshold: a capture scoring below it is
	// refused (30 for index fingers).
	Threshold uint8 `config:"threshold"`
	// MinForeground is the share of the image (0–1) the finger must cover
	// for a full score; below it the score falls, to 0 at half of it.
	MinForeground float64 `config:"min-foreground"`
	// PPI is the images' resolution (500); block sizes and the plausible
	// ridge periods scale with it.
	PPI int `config:"ppi"`
}

// DefaultConfig returns threshold 30, a minimum foreground of 30 % of the
// image and 500 ppi.
func DefaultConfig() Config {
	return Config{Threshold: 30, MinForeground: 0.3, PPI: 500}
}

// Validate reports a setting out of range.
func (c Config) Validate() error {
	var errs []error
	if c.Threshold > 100 {
		errs = append(errs, fmt.Errorf("fingerprint threshold %d: scores run from 0 to 100 (30 for index fingers)", c.Threshold))
	}
	if !(c.MinForeground > 0 && c.MinForeground <= 1) {
		errs = append(errs, fmt.Errorf("fingerprint min-foreground %g: give the share of the image the finger must cover, in (0, 1] (0.3)", c.MinForeground))
	}
	if c.PPI < 250 || c.PPI > 1000 {
		errs = append(errs, fmt.Errorf("fingerprint ppi %d: give the scanner's resolution, 250–1000 (500)", c.PPI))
	}
	return errors.Join(errs...)
}

// Scorer scores fingerprint images. It is safe for concurrent use.
type Scorer struct {
	cfg    Config
	block  int // block side in pixels
	window int // window side (and profile length) in pixels
	// The candidate ridge periods and their cosine and sine tables over
	// a profile.
	periods                []float64
	cos, sin               [][]float64
	minP, maxP, okLo, okHi float64 // plausible periods in pixels
}

// New returns a Scorer for cfg.
func New(cfg Config) (*Scorer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	scale := float64(cfg.PPI) / 500
	s := &Scorer{cfg: cfg, block: max(8, int(math.Round(16*scale)))}
	s.window = 2 * s.block
	pxPerMM := float64(cfg.PPI) / 25.4
	s.minP, s.okLo, s.okHi, s.maxP = 0.2*pxPerMM, 0.3*pxPerMM, 0.76*pxPerMM, 1.0*pxPerMM
	for p := math.Floor(s.minP); p <= math.Ceil(s.maxP)+0.001; p += 0.25 {
		s.periods = append(s.periods, p)
		c, sn := make([]float64, s.window), make([]float64, s.window)
		for k := range s.window {
			w := 2 * math.Pi * float64(k) / p
			c[k], sn[k] = math.Cos(w), math.Sin(w)
		}
		s.cos, s.sin = append(s.cos, c), append(s.sin, sn)
	}
	return s, nil
}

// Config returns the settings the Scorer runs with.
func (s *Scorer) Config() Config { return s.cfg }

// Accept reports whether a score meets the enrolment threshold.
func (s *Scorer) Accept(score uint8) bool {
	return score != Failed && score >= s.cfg.Threshold
}

// Score returns the quality of a fingerprint image, 0–100, or Failed
// when it cannot be scored (Assess says why).
func (s *Scorer) Score(img *image.Gray) uint8 {
	a, err := s.Assess(img)
	if err != nil {
		return Failed
	}
	return a.Score
}

// Assessment is a score with the measurements behind it, for the
// application record and the logs.
type Assessment struct {
	// Score is the quality, 0–100.
	Score uint8
	// Foreground is the share of the image on the finger (0–1).
	Foreground float64
	// Quality is the mean block quality over the finger (0–1); Area the
	// area factor (0–1). Score is 100 × Quality × Area, rounded.
	Quality, Area float64
	// Contrast, Coherence and Clarity are the means of the block factors
	// over the finger (0–1).
	Contrast, Coherence, Clarity float64
	// Period is the median ridge period over the finger in pixels (0
	// without a finger).
	Period float64
}

// Assess scores img and returns the measurements, or an error saying
// why it cannot be scored.
func (s *Scorer) Assess(img *image.Gray) (Assessment, error) {
	if img == nil {
		return Assessment{}, errors.New("score fingerprint: no image")
	}
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	if w < MinSide || h < MinSide || w > MaxSide || h > MaxSide {
		return Assessment{}, fmt.Errorf("score fingerprint: image of %d×%d pixels: sides of %d–%d pixels are needed", w, h, MinSide, MaxSide)
	}
	if img.Stride < w || len(img.Pix) < (h-1)*img.Stride+w {
		return Assessment{}, fmt.Errorf("score fingerprint: image of %d×%d pixels holds only %d bytes with stride %d", w, h, len(img.Pix), img.Stride)
	}
	m := s.measure(img, w, h)
	return m, nil
}

// plane is an image as float32s, w × h, row after row.
type plane struct {
	w, h int
	v    []float32
}

func (p plane) at(x, y int) float32 { return p.v[y*p.w+x] }

// sample is p at (x, y) by bilinear interpolation, the edge repeated
// outside.
func (p plane) sample(x, y float64) float64 {
	x = min(max(x, 0), float64(p.w-1))
	y = min(max(y, 0), float64(p.h-1))
	x0, y0 := int(x), int(y)
	x1, y1 := min(x0+1, p.w-1), min(y0+1, p.h-1)
	fx, fy := x-float64(x0), y-float64(y0)
	a := float64(p.at(x0, y0))*(1-fx) + float64(p.at(x1, y0))*fx
	c := float64(p.at(x0, y1))*(1-fx) + float64(p.at(x1, y1))*fx
	return a*(1-fy) + c*fy
}

// integral is a summed-area table of w+1 × h+1 entries.
type integral struct {
	w int
	v []float64
}

func newIntegral(w, h int, f func(i int) float64) integral {
	t := integral{w: w + 1, v: make([]float64, (w+1)*(h+1))}
	for y := range h {
		var row float64
		for x := range w {
			row += f(y*w + x)
			t.v[(y+1)*t.w+x+1] = t.v[y*t.w+x+1] + row
		}
	}
	return t
}

// sum is the sum over [x0, x1) × [y0, y1).
func (t integral) sum(x0, y0, x1, y1 int) float64 {
	return t.v[y1*t.w+x1] - t.v[y0*t.w+x1] - t.v[y1*t.w+x0] + t.v[y0*t.w+x0]
}

// blockStats are one finger block's measurements.
type blockStats struct {
	contrast, coherence, clarity, plausible float64
	period                                  float64
}

func (s *Scorer) measure(img *image.Gray, w, h int) Assessment {
	// The image as floats, and smoothed by a 3 × 3 mean for segmentation.
	f := plane{w: w, h: h, v: make([]float32, w*h)}
	for y := range h {
		row := img.Pix[y*img.Stride : y*img.Stride+w]
		for x, v := range row {
			f.v[y*w+x] = float32(v)
		}
	}
	sm := boxMean3(f)
	smSum := newIntegral(w, h, func(i int) float64 { return float64(sm.v[i]) })
	smSq := newIntegral(w, h, func(i int) float64 { v := float64(sm.v[i]); return v * v })

	// Sobel gradients and the structure tensor's summed-area tables.
	gx, gy := make([]float32, w*h), make([]float32, w*h)
	for y := 1; y < h-1; y++ {
		for x := 1; x < w-1; x++ {
			i := y*w + x
			a, b, c := f.v[i-w-1], f.v[i-w], f.v[i-w+1]
			d, e := f.v[i-1], f.v[i+1]
			g, hh, k := f.v[i+w-1], f.v[i+w], f.v[i+w+1]
			gx[i] = (c + 2*e + k) - (a + 2*d + g)
			gy[i] = (g + 2*hh + k) - (a + 2*b + c)
		}
	}
	gxx := newIntegral(w, h, func(i int) float64 { return float64(gx[i]) * float64(gx[i]) })
	gyy := newIntegral(w, h, func(i int) float64 { return float64(gy[i]) * float64(gy[i]) })
	gxy := newIntegral(w, h, func(i int) float64 { return float64(gx[i]) * float64(gy[i]) })

	// 1. Segmentation.
	B := s.block
	nbx, nby := w/B, h/B
	fg := make([]bool, nbx*nby)
	n := float64(B * B)
	for by := range nby {
		for bx := range nbx {
			x0, y0 := bx*B, by*B
			sum := smSum.sum(x0, y0, x0+B, y0+B)
			sq := smSq.sum(x0, y0, x0+B, y0+B)
			mean := sum / n
			fg[by*nbx+bx] = sq/n-mean*mean >= segmentStdDev*segmentStdDev
		}
	}
	fg = cleanMask(fg, nbx, nby)

	// 2–4. Block quality.
	var stats []blockStats
	var sumQ float64
	W := s.window
	for by := range nby {
		for bx := range nbx {
			if !fg[by*nbx+bx] {
				continue
			}
			cx, cy := bx*B+B/2, by*B+B/2
			x0, y0 := max(cx-W/2, 0), max(cy-W/2, 0)
			x1, y1 := min(cx+W/2, w), min(cy+W/2, h)
			sxx, syy, sxy := gxx.sum(x0, y0, x1, y1), gyy.sum(x0, y0, x1, y1), gxy.sum(x0, y0, x1, y1)
			st := s.block1(f, float64(cx)-0.5, float64(cy)-0.5, sxx, syy, sxy)
			stats = append(stats, st)
			sumQ += st.quality()
		}
	}
	total := len(fg)
	a := Assessment{Foreground: float64(len(stats)) / float64(total)}
	if len(stats) == 0 {
		return a
	}
	a.Quality = sumQ / float64(len(stats))
	half := s.cfg.MinForeground / 2
	a.Area = clamp01((a.Foreground - half) / half)
	a.Score = uint8(math.Round(100 * clamp01(a.Quality*a.Area)))
	periods := make([]float64, len(stats))
	for i, st := range stats {
		a.Contrast += st.contrast
		a.Coherence += st.coherence
		a.Clarity += st.clarity
		periods[i] = st.period
	}
	k := float64(len(stats))
	a.Contrast, a.Coherence, a.Clarity = a.Contrast/k, a.Coherence/k, a.Clarity/k
	slices.Sort(periods)
	a.Period = periods[len(periods)/2]
	return a
}

// segmentStdDev is the smoothed grey-level standard deviation from which
// a block is on the finger.
const segmentStdDev = 10

// The factor ramps of a block's quality (see the package doc).
const (
	contrastLo, contrastHi   = 6, 30
	coherenceLo, coherenceHi = 0.3, 0.7
	clarityLo, clarityHi     = 0.25, 0.6
)

// block1 measures the block around (cx, cy) given its window's
// structure tensor sums.
func (s *Scorer) block1(f plane, cx, cy, sxx, syy, sxy float64) blockStats {
	var st blockStats
	if tr := sxx + syy; tr > 0 {
		coh := math.Sqrt((sxx-syy)*(sxx-syy)+4*sxy*sxy) / tr
		st.coherence = ramp(coh, coherenceLo, coherenceHi)
	}
	// The gradients' dominant direction is across the ridges.
	phi := 0.5 * math.Atan2(2*sxy, sxx-syy)
	nx, ny := math.Cos(phi), math.Sin(phi)
	tx, ty := -ny, nx
	L, M := s.window, s.block
	prof := make([]float64, L)
	for k := range L {
		a := float64(k) - float64(L-1)/2
		var sum float64
		for m := range M {
			b := float64(m) - float64(M-1)/2
			sum += f.sample(cx+a*nx+b*tx, cy+a*ny+b*ty)
		}
		prof[k] = sum / float64(M)
	}
	detrend(prof)
	var energy float64
	for _, v := range prof {
		energy += v * v
	}
	if energy == 0 {
		return st
	}
	best, bestPow := 0, -1.0
	for i := range s.periods {
		var c, sn float64
		cs, ss := s.cos[i], s.sin[i]
		for k, v := range prof {
			c += v * cs[k]
			sn += v * ss[k]
		}
		if p := c*c + sn*sn; p > bestPow {
			best, bestPow = i, p
		}
	}
	st.period = s.periods[best]
	amp := 2 * math.Sqrt(bestPow) / float64(L)
	st.contrast = ramp(amp, contrastLo, contrastHi)
	st.clarity = ramp(2*bestPow/float64(L)/energy, clarityLo, clarityHi)
	switch p := st.period; {
	case p < s.okLo:
		st.plausible = ramp(p, s.minP, s.okLo)
	case p > s.okHi:
		st.plausible = 1 - ramp(p, s.okHi, s.maxP)
	default:
		st.plausible = 1
	}
	return st
}

func (st blockStats) quality() float64 {
	return st.contrast * st.coherence * st.clarity * st.plausible
}

// detrend removes the least-squares line from v.
func detrend(v []float64) {
	n := float64(len(v))
	var sy, sxy float64
	xm := (n - 1) / 2
	var sxx float64
	for i, y := range v {
		x := float64(i) - xm
		sy += y
		sxy += x * y
		sxx += x * x
	}
	mean, slope := sy/n, sxy/sxx
	for i := range v {
		v[i] -= mean + slope*(float64(i)-xm)
	}
}

// boxMean3 is p under a 3 × 3 mean filter (the edge repeated).
func boxMean3(p plane) plane {
	w, h := p.w, p.h
	tmp := make([]float32, w*h)
	for y := range h {
		for x := range w {
			l, r := max(x-1, 0), min(x+1, w-1)
			tmp[y*w+x] = p.v[y*w+l] + p.v[y*w+x] + p.v[y*w+r]
		}
	}
	out := plane{w: w, h: h, v: make([]float32, w*h)}
	for y := range h {
		u, d := max(y-1, 0), min(y+1, h-1)
		for x := range w {
			out.v[y*w+x] = (tmp[u*w+x] + tmp[y*w+x] + tmp[d*w+x]) / 9
		}
	}
	return out
}

// cleanMask drops finger blocks with fewer than two finger neighbours and
// adds background blocks the finger encloses (not reachable from the
// image's edge through background).
func cleanMask(fg []bool, nbx, nby int) []bool {
	out := make([]bool, len(fg))
	for y := range nby {
		for x := range nbx {
			if !fg[y*nbx+x] {
				continue
			}
			nb := 0
			for dy := -1; dy <= 1; dy++ {
				for dx := -1; dx <= 1; dx++ {
					xx, yy := x+dx, y+dy
					if (dx != 0 || dy != 0) && xx >= 0 && yy >= 0 && xx < nbx && yy < nby && fg[yy*nbx+xx] {
						nb++
					}
				}
			}
			out[y*nbx+x] = nb >= 2
		}
	}
	// Flood the background from the edge (4-connected).
	outside := make([]bool, len(out))
	var stack []int
	push := func(x, y int) {
		i := y*nbx + x
		if !out[i] && !outside[i] {
			outside[i] = true
			stack = append(stack, i)
		}
	}
	for x := range nbx {
		push(x, 0)
		push(x, nby-1)
	}
	for y := range nby {
		push(0, y)
		push(nbx-1, y)
	}
	for len(stack) > 0 {
		i := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		x, y := i%nbx, i/nbx
		if x > 0 {
			push(x-1, y)
		}
		if x < nbx-1 {
			push(x+1, y)
		}
		if y > 0 {
			push(x, y-1)
		}
		if y < nby-1 {
			push(x, y+1)
		}
	}
	for i := range out {
		out[i] = !outside[i]
	}
	return out
}

// ramp is 0 at or below lo, 1 at or above hi, linear between.
func ramp(v, lo, hi float64) float64 {
	return clamp01((v - lo) / (hi - lo))
}

func clamp01(v float64) float64 {
	switch {
	case v > 0 && v < 1:
		return v
	case v >= 1:
		return 1
	}
	return 0 // also NaN
}
