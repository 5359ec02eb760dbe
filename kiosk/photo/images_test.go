package photo_test

import (
	"bytes"
	"image"
	"image/color"
	"image/draw"
	"image/jpeg"
	"math"
	"sync"
	"testing"

	"github.com/kogge-fleet/kogge/internal/facedetect/facedetecttest"
)

// Test images: pigo's sample portrait (a real face) transformed with the
// standard library, and the camera simulator's synthetic faces.

// Where the sample's features are, measured by eye (pixels of the sample).
var (
	sampleEyes  = [2]image.Point{{113, 184}, {201, 182}}
	sampleMouth = [2]image.Point{{125, 281}, {198, 280}}
)

// idGrey is a background grey within #A1A1A1–#E1E1E1.
var idGrey = color.RGBA{0xC4, 0xC4, 0xC4, 0xFF}

func rgba(img image.Image) *image.RGBA {
	b := img.Bounds()
	out := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	draw.Draw(out, out.Rect, img, b.Min, draw.Src)
	return out
}

// onGrey returns the sample with its light background (everything light
// and unsaturated connected to the top and the sides above the shoulders)
// painted idGrey: the sample as if taken in front of an ID-photo wall.
func onGrey(t testing.TB) *image.RGBA {
	sample := facedetecttest.Sample(t)
	greyOnce.Do(func() { greySample = paintBackground(sample) })
	return rgba(greySample)
}

// The sample on grey, made once for all tests.
var (
	greyOnce   sync.Once
	greySample *image.RGBA
)

func paintBackground(sample image.Image) *image.RGBA {
	img := rgba(sample)
	b := img.Bounds()
	light := func(x, y int) bool {
		c := img.RGBAAt(x, y)
		lo, hi := min(c.R, c.G, c.B), max(c.R, c.G, c.B)
		return lo > 195 && hi-lo < 30
	}
	seen := make([]bool, b.Dx()*b.Dy())
	var stack []image.Point
	push := func(x, y int) {
		if x < 0 || y < 0 || x >= b.Dx() || y >= 300 || seen[y*b.Dx()+x] || !light(x, y) {
			return
		}
		seen[y*b.Dx()+x] = true
		stack = append(stack, image.Pt(x, y))
	}
	for x := range b.Dx() {
		push(x, 0)
	}
	for y := range 300 {
		push(0, y)
		push(b.Dx()-1, y)
	}
	for len(stack) > 0 {
		p := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		push(p.X+1, p.Y)
		push(p.X-1, p.Y)
		push(p.X, p.Y+1)
		push(p.X, p.Y-1)
	}
	for i, s := range seen {
		if s {
			img.SetRGBA(i%b.Dx(), i/b.Dx(), idGrey)
		}
	}
	return img
}

// frame places img scaled by k with its top-left corner at off on a w×h
// canvas of idGrey.
func frame(img image.Image, w, h int, k float64, off image.Point) *image.RGBA {
	src := rgba(img)
	out := image.NewRGBA(image.Rect(0, 0, w, h))
	b := src.Rect
	for y := range h {
		for x := range w {
			sx, sy := (float64(x-off.X)+0.5)/k-0.5, (float64(y-off.Y)+0.5)/k-0.5
			i := out.PixOffset(x, y)
			c := idGrey
			if sx >= -0.5 && sy >= -0.5 && sx <= float64(b.Dx())-0.5 && sy <= float64(b.Dy())-0.5 {
				c = bilinearAt(src, sx, sy)
			}
			out.Pix[i], out.Pix[i+1], out.Pix[i+2], out.Pix[i+3] = c.R, c.G, c.B, c.A
		}
	}
	return out
}

// bilinearAt samples img at the real-valued point (x, y), clamped to its
// edges.
func bilinearAt(img *image.RGBA, x, y float64) color.RGBA {
	b := img.Rect
	x = max(0, min(float64(b.Dx()-1), x))
	y = max(0, min(float64(b.Dy()-1), y))
	x0, y0 := int(x), int(y)
	x1, y1 := min(x0+1, b.Dx()-1), min(y0+1, b.Dy()-1)
	ax, ay := x-float64(x0), y-float64(y0)
	var c [3]float64
	for _, p := range [4]struct {
		x, y int
		w    float64
	}{{x0, y0, (1 - ax) * (1 - ay)}, {x1, y0, ax * (1 - ay)}, {x0, y1, (1 - ax) * ay}, {x1, y1, ax * ay}} {
		i := p.y*img.Stride + 4*p.x
		c[0] += p.w * float64(img.Pix[i])
		c[1] += p.w * float64(img.Pix[i+1])
		c[2] += p.w * float64(img.Pix[i+2])
	}
	return color.RGBA{uint8(c[0] + 0.5), uint8(c[1] + 0.5), uint8(c[2] + 0.5), 0xFF}
}

// rotate turns img by deg degrees clockwise about its centre, filling
// with idGrey.
func rotate(img *image.RGBA, deg float64) *image.RGBA {
	b := img.Bounds()
	out := image.NewRGBA(b)
	sin, cos := math.Sincos(deg * math.Pi / 180)
	cx, cy := float64(b.Dx())/2, float64(b.Dy())/2
	for y := range b.Dy() {
		for x := range b.Dx() {
			dx, dy := float64(x)+0.5-cx, float64(y)+0.5-cy
			sx, sy := dx*cos+dy*sin+cx-0.5, -dx*sin+dy*cos+cy-0.5
			if sx < 0 || sy < 0 || sx > float64(b.Dx()-1) || sy > float64(b.Dy()-1) {
				out.SetRGBA(x, y, idGrey)
				continue
			}
			out.SetRGBA(x, y, bilinearAt(img, sx, sy))
		}
	}
	return out
}

// blur applies three passes of a box blur of radius r (about a Gaussian).
func blur(img *image.RGBA, r int) *image.RGBA {
	for range 3 {
		img = boxBlur(boxBlur(img, r, 4), r, img.Stride)
	}
	return img
}

// boxBlur averages each channel over 2r+1 pixels along one direction:
// step 4 is horizontal, the stride vertical.
func boxBlur(src *image.RGBA, r, step int) *image.RGBA {
	out := image.NewRGBA(src.Rect)
	w, h := src.Rect.Dx(), src.Rect.Dy()
	n, m := w, h // n pixels along the direction, m lines
	line := func(j int) int { return j * src.Stride }
	if step != 4 {
		n, m = h, w
		line = func(j int) int { return 4 * j }
	}
	for j := range m {
		base := line(j)
		for i := range n {
			var s [3]int
			cnt := 0
			for k := max(0, i-r); k <= min(n-1, i+r); k++ {
				p := base + k*step
				s[0], s[1], s[2] = s[0]+int(src.Pix[p]), s[1]+int(src.Pix[p+1]), s[2]+int(src.Pix[p+2])
				cnt++
			}
			p := base + i*step
			out.Pix[p], out.Pix[p+1], out.Pix[p+2], out.Pix[p+3] = uint8(s[0]/cnt), uint8(s[1]/cnt), uint8(s[2]/cnt), 0xFF
		}
	}
	return out
}

// light maps every channel v to k·v + d.
func light(img *image.RGBA, k, d float64) *image.RGBA {
	out := image.NewRGBA(img.Bounds())
	for i := range img.Pix {
		if i%4 == 3 {
			out.Pix[i] = 0xFF
			continue
		}
		out.Pix[i] = uint8(max(0, min(255, k*float64(img.Pix[i])+d)))
	}
	return out
}

// grey drops the colour.
func grey(img *image.RGBA) *image.Gray {
	out := image.NewGray(img.Bounds())
	for y := img.Rect.Min.Y; y < img.Rect.Max.Y; y++ {
		for x := img.Rect.Min.X; x < img.Rect.Max.X; x++ {
			out.Set(x, y, img.At(x, y))
		}
	}
	return out
}

// closeEyes paints skin over the sample's eyes (copied from just below
// them) and a lash line across each.
func closeEyes(img *image.RGBA) *image.RGBA {
	out := rgba(img)
	for _, e := range sampleEyes {
		for dy := -11; dy <= 11; dy++ {
			for dx := -22; dx <= 22; dx++ {
				if sq(float64(dx)/22)+sq(float64(dy)/11) > 1 {
					continue
				}
				out.SetRGBA(e.X+dx, e.Y+dy, img.RGBAAt(e.X+dx, e.Y+26+dy/3))
			}
		}
		for dx := -18; dx <= 18; dx++ {
			y := e.Y + 3 - int(4*(1-sq(float64(dx)/18)))
			out.SetRGBA(e.X+dx, y, color.RGBA{0x3A, 0x2A, 0x24, 0xFF})
			out.SetRGBA(e.X+dx, y+1, color.RGBA{0x50, 0x3A, 0x30, 0xFF})
		}
	}
	return out
}

// openMouth parts the sample's lips: everything below the lip line
// between the mouth corners moves down, leaving a dark gap.
func openMouth(img *image.RGBA) *image.RGBA {
	out := rgba(img)
	line := (sampleMouth[0].Y + sampleMouth[1].Y) / 2
	b := img.Bounds()
	const gap = 18
	for y := b.Max.Y - 1; y >= line; y-- {
		for x := sampleMouth[0].X - 7; x <= sampleMouth[1].X+7; x++ {
			if y-gap < line {
				out.SetRGBA(x, y, color.RGBA{0x40, 0x18, 0x18, 0xFF})
				continue
			}
			out.SetRGBA(x, y, img.RGBAAt(x, y-gap))
		}
	}
	return out
}

func sq(x float64) float64 { return x * x }

// viaJPEG encodes and decodes img as a camera's MJPEG stream would.
func viaJPEG(t testing.TB, img image.Image) image.Image {
	t.Helper()
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 85}); err != nil {
		t.Fatal(err)
	}
	out, err := jpeg.Decode(&buf)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
