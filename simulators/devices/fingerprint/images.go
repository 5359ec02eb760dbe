package fingerprint

import (
	"image"
	"math"
	"math/rand/v2"
)

// Synthetic fingerprints: ridges as the level lines of a phase field that
// winds around a core (a whorl with a slight loop and a low-frequency
// warp), a ridge period of about 9 pixels (0.46 mm at 500 ppi), on an
// elliptical finger area. Good images have high contrast and little noise;
// poor ones are faint, noisy, blurred and only partly on the sensor.

// GoodImage returns a clear synthetic fingerprint of w × h pixels.
func GoodImage(w, h int, seed uint64) *image.Gray {
	return ridges(w, h, seed, ridgeStyle{mid: 125, amp: 105, noise: 6, cover: 1})
}

// PoorImage returns a faint, noisy, smeared, partial fingerprint.
func PoorImage(w, h int, seed uint64) *image.Gray {
	g := ridges(w, h, seed, ridgeStyle{mid: 165, amp: 22, noise: 22, cover: 0.55})
	return boxBlur(g, 2)
}

// EmptyImage is the sensor without a finger: light grey with noise.
func EmptyImage(w, h int, seed uint64) *image.Gray {
	rng := rand.New(rand.NewPCG(seed, 3))
	g := image.NewGray(image.Rect(0, 0, w, h))
	for i := range g.Pix {
		g.Pix[i] = clamp(235 + rng.NormFloat64()*3)
	}
	return g
}

type ridgeStyle struct {
	mid, amp, noise float64
	cover           float64 // fraction of the finger ellipse's height on the sensor
}

func ridges(w, h int, seed uint64, st ridgeStyle) *image.Gray {
	rng := rand.New(rand.NewPCG(seed, 1))
	g := image.NewGray(image.Rect(0, 0, w, h))
	fw, fh := float64(w), float64(h)
	// Core position and shape vary with the seed.
	cx := fw * (0.45 + 0.1*rng.Float64())
	cy := fh * (0.40 + 0.1*rng.Float64())
	period := 8.5 + 1.5*rng.Float64()
	loop := 1.5 + 2*rng.Float64()
	wx, wy := 25+20*rng.Float64(), 25+20*rng.Float64()
	// The finger: an ellipse, cut at the top for partial prints.
	ex, ey, ea, eb := fw/2, fh*0.55, fw*0.44, fh*0.5
	top := ey + eb - 2*eb*st.cover
	for y := range h {
		for x := range w {
			fx, fy := float64(x), float64(y)
			dx, dy := (fx-ex)/ea, (fy-ey)/eb
			d := dx*dx + dy*dy
			if d > 1 || fy < top {
				g.Pix[y*g.Stride+x] = clamp(235 + rng.NormFloat64()*3)
				continue
			}
			rx, ry := fx-cx, (fy-cy)*1.15
			r := math.Hypot(rx, ry)
			theta := math.Atan2(ry, rx)
			phase := 2*math.Pi*r/period + loop*math.Sin(theta) + 1.2*math.Sin(fx/wx) + 0.9*math.Cos(fy/wy)
			v := math.Cos(phase)
			// Pressure fades towards the finger's edge.
			fade := math.Min(1, (1-d)*4)
			p := 235 - fade*(235-st.mid) - fade*st.amp*v + rng.NormFloat64()*st.noise
			g.Pix[y*g.Stride+x] = clamp(p)
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
