package fingerprint

import (
	"image"
	"math"
	"math/rand/v2"
)

// Synthetic fingerprints.
//
// A print is cos(ψ) shaped into ridges and valleys, on an elliptical
// finger area with pressure fading towards its edge. The phase ψ is built
// in two parts, after Larkin and Fletcher's FM model of fingerprints:
//
//   - the ridge flow: 2π/T times a distance-like field g whose level lines
//     are the ridges, T the ridge period (8.5–10.5 pixels, 0.43–0.53 mm
//     at 500 ppi). For a loop, g is the distance to a ray from the core:
//     ridges come in from one side, recurve around the core and leave on
//     the same side. For a whorl, g is the distance to a short segment
//     through the core: closed ovals. Both meet the flat ridges near the
//     finger's crease (the distance to a line at the bottom) through the
//     minimum of the two fields, which makes the deltas where the systems
//     meet. An arch is a bent line field without singular points. A slow
//     sinusoidal warp of the coordinates bends the ridges like skin.
//   - the minutiae: each adds a spiral phase ±arg(z − m), which ends one
//     ridge (or splits it) at m and leaves the flow elsewhere in place.
//
// Every image is a pure function of its size and seed. Good prints have
// dark ridges on light valleys with little noise. The bad ones are the
// cases the kiosk must refuse: faint and partial (PoorImage), smeared by a
// wet finger (SmudgedImage), a fingertip at the sensor's edge
// (PartialImage), and the sensor without a finger (EmptyImage).

// background is the grey level of the empty sensor.
const background = 235

// GoodImage returns a clear synthetic fingerprint of w × h pixels. The
// seed picks the pattern (left or right loop, whorl, arch), its core,
// period, warp and minutiae.
func GoodImage(w, h int, seed uint64) *image.Gray {
	return render(w, h, newPrint(w, h, seed), style{ridge: 190, valley: 30, noise: 6, cover: 1, ex: 0.5, ey: 0.55})
}

// PoorImage returns a faint, noisy, smeared print of which only part lies
// on the sensor.
func PoorImage(w, h int, seed uint64) *image.Gray {
	g := render(w, h, newPrint(w, h, seed), style{ridge: 45, valley: 50, noise: 22, cover: 0.55, ex: 0.5, ey: 0.55})
	return boxBlur(g, 2)
}

// SmudgedImage returns the print of a wet or greasy finger: the ridges run
// into each other, leaving dark blotches with hardly any ridge structure.
func SmudgedImage(w, h int, seed uint64) *image.Gray {
	p := newPrint(w, h, seed)
	g := render(w, h, p, style{ridge: 150, valley: 70, noise: 4, cover: 1, ex: 0.5, ey: 0.55, blotch: 0.9})
	return boxBlur(boxBlur(g, 4), 3)
}

// PartialImage returns a clear print of which only the fingertip's edge
// touches the sensor, in one corner.
func PartialImage(w, h int, seed uint64) *image.Gray {
	p := newPrint(w, h, seed)
	rng := rand.New(rand.NewPCG(seed, 5))
	ex := -0.12
	if rng.IntN(2) == 1 {
		ex = 1.12
	}
	return render(w, h, p, style{ridge: 190, valley: 30, noise: 6, cover: 1, ex: ex, ey: 0.95})
}

// EmptyImage is the sensor without a finger: light grey with noise.
func EmptyImage(w, h int, seed uint64) *image.Gray {
	rng := rand.New(rand.NewPCG(seed, 3))
	g := image.NewGray(image.Rect(0, 0, w, h))
	for i := range g.Pix {
		g.Pix[i] = clamp(background + rng.NormFloat64()*3)
	}
	return g
}

// pattern is a ridge-flow class.
type pattern int

const (
	leftLoop pattern = iota
	rightLoop
	whorl
	arch
)

// model is the geometry of one synthetic finger, independent of how it
// is pressed on the sensor.
type model struct {
	pattern
	cx, cy   float64 // the core
	ux, uy   float64 // a loop's opening (unit vector), a whorl's axis
	axis     float64 // a whorl's half axis length
	crease   float64 // y of the line the flat bottom ridges follow
	period   float64
	warpA    float64
	wx, wy   float64 // warp wavelengths
	wpx, wpy float64 // warp phases
	minutiae []minutia
	seed     uint64
}

type minutia struct {
	x, y, sign float64
}

func newPrint(w, h int, seed uint64) model {
	rng := rand.New(rand.NewPCG(seed, 1))
	fw, fh := float64(w), float64(h)
	p := model{
		pattern: pattern(rng.IntN(4)),
		cx:      fw * (0.42 + 0.16*rng.Float64()),
		cy:      fh * (0.36 + 0.12*rng.Float64()),
		period:  8.5 + 2*rng.Float64(),
		warpA:   3 + 3*rng.Float64(),
		wx:      40 + 30*rng.Float64(),
		wy:      40 + 30*rng.Float64(),
		wpx:     2 * math.Pi * rng.Float64(),
		wpy:     2 * math.Pi * rng.Float64(),
		seed:    seed,
	}
	p.crease = fh * (0.92 + 0.1*rng.Float64())
	// A loop opens downwards to one side, 25–45° from the vertical.
	a := (25 + 20*rng.Float64()) * math.Pi / 180
	switch p.pattern {
	case leftLoop:
		p.ux, p.uy = -math.Sin(a), math.Cos(a)
	case rightLoop:
		p.ux, p.uy = math.Sin(a), math.Cos(a)
	case whorl:
		t := (rng.Float64() - 0.5) * 0.8
		p.ux, p.uy = math.Sin(t), math.Cos(t)
		p.axis = 4 + 8*rng.Float64()
	}
	n := 10 + rng.IntN(8)
	for range n {
		s := 1.0
		if rng.IntN(2) == 0 {
			s = -1
		}
		p.minutiae = append(p.minutiae, minutia{x: fw * (0.1 + 0.8*rng.Float64()), y: fh * (0.1 + 0.85*rng.Float64()), sign: s})
	}
	return p
}

// phase is ψ at (x, y).
func (p *model) phase(x, y float64) float64 {
	// Warp the skin.
	x += p.warpA * math.Sin(y/p.wy+p.wpy)
	y += p.warpA * math.Cos(x/p.wx+p.wpx)
	dx, dy := x-p.cx, y-p.cy
	var g float64
	switch p.pattern {
	case leftLoop, rightLoop:
		g = distRay(dx, dy, p.ux, p.uy, math.Inf(1))
	case whorl:
		// A segment from core − axis·u to core + axis·u.
		g = distRay(dx+p.axis*p.ux, dy+p.axis*p.uy, p.ux, p.uy, 2*p.axis)
	case arch:
		// Flat ridges bent up over the core.
		bump := 0.35 * (p.crease - p.cy) * math.Exp(-dx*dx/(2*60*60))
		g = p.crease - y - bump
		if g < 0 {
			g = -g
		}
	}
	if p.pattern != arch {
		// The flat ridges arch a little over the crease, so that they run
		// alongside a loop's open side and meet it at an angle only at
		// the delta.
		g = math.Min(g, p.crease-y-0.3*(p.crease-p.cy)*math.Exp(-dx*dx/(2*70*70)))
		if g < 0 {
			g = -g
		}
	}
	psi := 2 * math.Pi * g / p.period
	for _, m := range p.minutiae {
		psi += m.sign * math.Atan2(y-m.y, x-m.x)
	}
	return psi
}

// distRay is the distance from (dx, dy) to the segment from the origin
// along the unit vector (ux, uy) of length l (infinite: a ray).
func distRay(dx, dy, ux, uy, l float64) float64 {
	t := min(max(dx*ux+dy*uy, 0), l)
	return math.Hypot(dx-t*ux, dy-t*uy)
}

// style is how a print is pressed on the sensor and how the sensor sees it.
type style struct {
	ridge  float64 // how much darker a ridge's centre is than a valley
	valley float64 // how much darker a valley is than the empty sensor
	noise  float64 // sensor noise (standard deviation, grey levels)
	cover  float64 // fraction of the finger ellipse's height on the sensor
	ex, ey float64 // the finger ellipse's centre, in image widths and heights
	blotch float64 // 0–1: wet blotches that fill the valleys
}

func render(w, h int, p model, st style) *image.Gray {
	rng := rand.New(rand.NewPCG(p.seed, 2))
	g := image.NewGray(image.Rect(0, 0, w, h))
	fw, fh := float64(w), float64(h)
	ex, ey, ea, eb := fw*st.ex, fh*st.ey, fw*0.44, fh*0.5
	top := ey + eb - 2*eb*st.cover
	// Slow pressure and wetness variation over the finger.
	px, py := 2*math.Pi*rng.Float64(), 2*math.Pi*rng.Float64()
	bx, by := 2*math.Pi*rng.Float64(), 2*math.Pi*rng.Float64()
	for y := range h {
		for x := range w {
			fx, fy := float64(x), float64(y)
			dx, dy := (fx-ex)/ea, (fy-ey)/eb
			d := dx*dx + dy*dy
			if d > 1 || fy < top {
				g.Pix[y*g.Stride+x] = clamp(background + rng.NormFloat64()*3)
				continue
			}
			v := math.Cos(p.phase(fx, fy))
			// Ridges are flatter than a sine: soft-clip it. ink is 1 on a
			// ridge's centre, 0 in a valley's.
			ink := 0.5 + 0.5*math.Tanh(1.8*v)/math.Tanh(1.8)
			pressure := 0.85 + 0.15*math.Sin(fx/37+px)*math.Cos(fy/29+py)
			if st.blotch > 0 {
				wet := 0.5 + 0.5*math.Sin(fx/13+bx)*math.Sin(fy/11+by)
				ink = ink + st.blotch*wet*(1-ink)
			}
			// Pressure fades towards the finger's edge.
			fade := math.Min(1, (1-d)*4)
			v = background - fade*(st.valley+pressure*st.ridge*ink) + rng.NormFloat64()*st.noise
			g.Pix[y*g.Stride+x] = clamp(v)
		}
	}
	return g
}

// boxBlur averages each pixel with its neighbours within radius r, in two
// passes (rows, then columns) with running sums.
func boxBlur(src *image.Gray, r int) *image.Gray {
	b := src.Bounds()
	w, h := b.Dx(), b.Dy()
	tmp := make([]int, w*h)
	for y := range h {
		row := src.Pix[y*src.Stride : y*src.Stride+w]
		sum, n := 0, 0
		for x := 0; x <= min(r, w-1); x++ {
			sum += int(row[x])
			n++
		}
		for x := range w {
			tmp[y*w+x] = sum * 256 / n
			if x+r+1 < w {
				sum += int(row[x+r+1])
				n++
			}
			if x-r >= 0 {
				sum -= int(row[x-r])
				n--
			}
		}
	}
	dst := image.NewGray(b)
	for x := range w {
		sum, n := 0, 0
		for y := 0; y <= min(r, h-1); y++ {
			sum += tmp[y*w+x]
			n++
		}
		for y := range h {
			dst.Pix[y*dst.Stride+x] = uint8(sum / n / 256)
			if y+r+1 < h {
				sum += tmp[(y+r+1)*w+x]
				n++
			}
			if y-r >= 0 {
				sum -= tmp[(y-r)*w+x]
				n--
			}
		}
	}
	return dst
}

func clamp(v float64) uint8 {
	switch {
	case v < 0:
		return 0
	case v > 255:
		return 255
	}
	return uint8(v + 0.5)
}
