package signature_test

import (
	"bytes"
	"errors"
	"flag"
	"image"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kogge-fleet/kogge/kiosk/signature"
)

// flowPoint mirrors kiosk/flow.Point: the flow's adapter converts its
// points with signature.Point(p), which compiles only while the two
// types have the same fields.
type flowPoint struct {
	X, Y int
	T    uint32
	P    uint16
}

var _ = signature.Point(flowPoint{})

var update = flag.Bool("update", false, "rewrite the golden images in testdata")

func renderer(t testing.TB, mod func(*signature.Options)) *signature.Renderer {
	t.Helper()
	o := signature.DefaultOptions()
	if mod != nil {
		mod(&o)
	}
	r, err := signature.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// sample is a signature on a 1000 × 400 area: a cursive wave with loops,
// the dot of an i and an underline, sampled every 10 ms.
func sample() [][]signature.Point {
	var wave, under []signature.Point
	for i := range 120 {
		t := float64(i) / 119
		x := 120 + 600*t + 40*math.Sin(6*math.Pi*t)
		y := 200 - 80*math.Sin(4*math.Pi*t)*math.Exp(-t) + 40*math.Cos(6*math.Pi*t)
		wave = append(wave, signature.Point{X: int(x), Y: int(y), T: uint32(10 * i), P: 500})
	}
	for i := range 30 {
		under = append(under, signature.Point{X: 100 + 22*i, Y: 330 - i/3, T: uint32(10 * i)})
	}
	dot := []signature.Point{{X: 500, Y: 90}}
	return [][]signature.Point{wave, dot, under}
}

func decode(t *testing.T, b []byte) *image.Gray {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	g, ok := img.(*image.Gray)
	if !ok {
		t.Fatalf("decoded a %T, want 8-bit grey", img)
	}
	return g
}

// inkStats counts full ink (≤ 64), partial (65–254) and white pixels.
func inkStats(g *image.Gray) (ink, partial, white int) {
	for _, v := range g.Pix {
		switch {
		case v <= 64:
			ink++
		case v < 255:
			partial++
		default:
			white++
		}
	}
	return
}

func TestRenderGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		crop bool
		// The ink's expected share of the image, in per mille.
		inkLo, inkHi int
	}{
		{"crop", true, 15, 60},
		{"full", false, 10, 50},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := renderer(t, func(o *signature.Options) { o.Crop = tc.crop })
			b, err := r.Render(sample(), 1000, 400)
			if err != nil {
				t.Fatal(err)
			}
			g := decode(t, b)
			if g.Bounds() != image.Rect(0, 0, 800, 300) {
				t.Fatalf("image %v, want 800×300", g.Bounds())
			}
			ink, partial, white := inkStats(g)
			if pm := 1000 * ink / len(g.Pix); pm < tc.inkLo || pm > tc.inkHi {
				t.Errorf("ink on %d ‰ of the image, want %d–%d ‰", pm, tc.inkLo, tc.inkHi)
			}
			if partial < ink/4 {
				t.Errorf("%d partly inked pixels for %d inked ones: the lines are not anti-aliased", partial, ink)
			}
			if white < len(g.Pix)*8/10 {
				t.Errorf("only %d white pixels", white)
			}
			golden := filepath.Join("testdata", tc.name+".png")
			if *update {
				if err := os.WriteFile(golden, b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run the test with -update to write it)", err)
			}
			wg := decode(t, want)
			if wg.Bounds() != g.Bounds() {
				t.Fatalf("golden image is %v", wg.Bounds())
			}
			// Floating-point contraction may differ between CPUs: allow
			// a grey level or two.
			diff := 0
			for i := range g.Pix {
				if d := int(g.Pix[i]) - int(wg.Pix[i]); d > 2 || d < -2 {
					diff++
				}
			}
			if diff > 0 {
				t.Errorf("%d pixels differ from %s", diff, golden)
			}
		})
	}
}

// TestRenderGeometry draws a horizontal line over the whole area and
// checks where it lands.
func TestRenderGeometry(t *testing.T) {
	line := [][]signature.Point{{}}
	for x := 0; x < 1000; x += 50 {
		line[0] = append(line[0], signature.Point{X: x, Y: 200})
	}
	line[0] = append(line[0], signature.Point{X: 999, Y: 200})
	at := func(g *image.Gray, x, y int) uint8 { return g.Pix[y*g.Stride+x] }

	// The whole 1000 × 400 area at 0.75 fills 750 × 300, centred: x from
	// 25 to 775; the line's centre at y = 150.4.
	full := renderer(t, func(o *signature.Options) { o.Crop = false })
	b, err := full.Render(line, 1000, 400)
	if err != nil {
		t.Fatal(err)
	}
	g := decode(t, b)
	for _, p := range []struct {
		x, y int
		dark bool
	}{
		{10, 150, false}, {22, 150, false}, {30, 150, true}, {400, 150, true}, {770, 150, true},
		{780, 150, false}, {790, 150, false}, {400, 145, false}, {400, 156, false}, {400, 0, false}, {400, 299, false},
	} {
		if v := at(g, p.x, p.y); (v < 128) != p.dark {
			t.Errorf("full area: pixel (%d, %d) is %d, want dark %v", p.x, p.y, v, p.dark)
		}
	}
	// Per column the line's ink adds up to the pen width, 3.5 pixels.
	var sum float64
	for y := range 300 {
		sum += float64(255-at(g, 400, y)) / 255
	}
	if math.Abs(sum-3.5) > 0.3 {
		t.Errorf("full area: column ink %.2f, want the pen width 3.5", sum)
	}

	// Cropped, the line spans the image less margin and pen, centred
	// vertically.
	crop := renderer(t, nil)
	b, err = crop.Render(line, 1000, 400)
	if err != nil {
		t.Fatal(err)
	}
	g = decode(t, b)
	for _, p := range []struct {
		x, y int
		dark bool
	}{
		{5, 150, false}, {20, 150, true}, {400, 150, true}, {780, 150, true}, {795, 150, false}, {400, 140, false}, {400, 160, false},
	} {
		if v := at(g, p.x, p.y); (v < 128) != p.dark {
			t.Errorf("cropped: pixel (%d, %d) is %d, want dark %v", p.x, p.y, v, p.dark)
		}
	}
}

// TestRenderDot: a stroke of one point is a round dot of the pen's width.
func TestRenderDot(t *testing.T) {
	r := renderer(t, func(o *signature.Options) { o.MinPoints, o.MinExtent, o.Crop, o.Pen = 1, 0, false, 10 })
	g, err := r.Draw([][]signature.Point{{{X: 50, Y: 50}}}, 100, 100)
	if err != nil {
		t.Fatal(err)
	}
	// 100 × 100 at 3 fits 300 × 300, centred in 800 × 300.
	var area float64
	for _, v := range g.Pix {
		area += float64(255-v) / 255
	}
	if want := math.Pi * 25; math.Abs(area-want) > 3 {
		t.Errorf("dot covers %.1f pixels, want π·5² = %.1f", area, want)
	}
	if v := g.Pix[151*g.Stride+401]; v != 0 {
		t.Errorf("the dot's centre is %d, want black", v)
	}
}

func TestRenderDeterministic(t *testing.T) {
	r := renderer(t, nil)
	a, err := r.Render(sample(), 1000, 400)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := r.Render(sample(), 1000, 400)
	if !bytes.Equal(a, b) {
		t.Fatal("the same strokes gave different PNGs")
	}
}

func TestCheckErrors(t *testing.T) {
	r := renderer(t, nil)
	points := func(n int, f func(i int) signature.Point) []signature.Point {
		var ps []signature.Point
		for i := range n {
			ps = append(ps, f(i))
		}
		return ps
	}
	diag := points(20, func(i int) signature.Point { return signature.Point{X: 10 * i, Y: 5 * i} })
	for _, tc := range []struct {
		name    string
		strokes [][]signature.Point
		w, h    int
		want    error
		detail  string
	}{
		{"area zero", [][]signature.Point{diag}, 0, 400, signature.ErrArea, "0×400"},
		{"area too large", [][]signature.Point{diag}, 70000, 400, signature.ErrArea, "70000×400"},
		{"no strokes", nil, 1000, 400, signature.ErrEmpty, ""},
		{"empty strokes", [][]signature.Point{{}, {}}, 1000, 400, signature.ErrEmpty, ""},
		{"negative x", [][]signature.Point{diag, {{X: -1, Y: 3}}}, 1000, 400, signature.ErrOutOfRange, "stroke 2, point 1 at (-1, 3)"},
		{"x at width", [][]signature.Point{append(append([]signature.Point(nil), diag...), signature.Point{X: 1000, Y: 3})}, 1000, 400, signature.ErrOutOfRange, "point 21 at (1000, 3) on a 1000×400 area"},
		{"y at height", [][]signature.Point{{{X: 3, Y: 400}}}, 1000, 400, signature.ErrOutOfRange, "(3, 400)"},
		{"too few points", [][]signature.Point{diag[:5], diag[5:9]}, 1000, 400, signature.ErrTooShort, "9 points, at least 10"},
		{"a dot", [][]signature.Point{points(30, func(i int) signature.Point { return signature.Point{X: 500 + i%3, Y: 200 + i%2} })}, 1000, 400, signature.ErrTooShort, "spans"},
		{"too many strokes", make([][]signature.Point, 513), 1000, 400, signature.ErrTooLarge, "513 strokes"},
		{"too many points", [][]signature.Point{points(65537, func(i int) signature.Point { return signature.Point{X: i % 1000, Y: 7} })}, 1000, 400, signature.ErrTooLarge, "65537 points"},
	} {
		err := r.Check(tc.strokes, tc.w, tc.h)
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.detail) {
			t.Errorf("%s: Check: %v, want %v with %q", tc.name, err, tc.want, tc.detail)
		}
		png, err := r.Render(tc.strokes, tc.w, tc.h)
		if !errors.Is(err, tc.want) || png != nil {
			t.Errorf("%s: Render: %d bytes, %v; want %v", tc.name, len(png), err, tc.want)
		}
	}
	if err := r.Check([][]signature.Point{diag}, 1000, 400); err != nil {
		t.Errorf("a diagonal of 20 points: %v", err)
	}
}

func TestOptions(t *testing.T) {
	if err := signature.DefaultOptions().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for _, tc := range []struct {
		name string
		mod  func(*signature.Options)
		want string
	}{
		{"size", func(o *signature.Options) { o.Width = 0 }, "0×300"},
		{"margin", func(o *signature.Options) { o.Margin = 80 }, "margin 80"},
		{"pen", func(o *signature.Options) { o.Pen = 0 }, "pen width 0"},
		{"pen NaN", func(o *signature.Options) { o.Pen = math.NaN() }, "pen width NaN"},
		{"min points", func(o *signature.Options) { o.MinPoints = 0 }, "min-points 0"},
		{"min extent", func(o *signature.Options) { o.MinExtent = 2 }, "min-extent 2"},
		{"max strokes", func(o *signature.Options) { o.MaxStrokes = 513 }, "max-strokes 513"},
		{"max points", func(o *signature.Options) { o.MaxPoints = 5 }, "max-points 5"},
	} {
		o := signature.DefaultOptions()
		tc.mod(&o)
		if _, err := signature.New(o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: New: %v, want an error naming %q", tc.name, err, tc.want)
		}
	}
}

func BenchmarkRender(b *testing.B) {
	r := renderer(b, nil)
	s := sample()
	for b.Loop() {
		if _, err := r.Render(s, 1000, 400); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzRender renders arbitrary strokes: an error or a PNG of the
// configured size, never a panic. Each 5 bytes are a point: x and y (16
// bits each) and a flag byte whose low bit starts a new stroke.
func FuzzRender(f *testing.F) {
	f.Add(uint16(1000), uint16(400), false, []byte{0, 10, 0, 10, 1, 1, 0, 1, 0, 0, 2, 0, 0, 50, 0, 3, 0, 1, 0, 0})
	f.Add(uint16(1), uint16(1), true, []byte{0, 0, 0, 0, 0})
	f.Add(uint16(65535), uint16(2), true, []byte{255, 255, 0, 1, 1, 0, 0, 0, 0, 0})
	r := renderer(f, func(o *signature.Options) { o.MinPoints, o.MinExtent = 1, 0 })
	f.Fuzz(func(t *testing.T, w, h uint16, crop bool, data []byte) {
		if crop != r.Options().Crop {
			o := r.Options()
			o.Crop = crop
			r = renderer(t, func(p *signature.Options) { *p = o })
		}
		var strokes [][]signature.Point
		for i := 0; i+5 <= len(data); i += 5 {
			p := signature.Point{X: int(data[i])<<8 | int(data[i+1]), Y: int(data[i+2])<<8 | int(data[i+3])}
			if len(strokes) == 0 || data[i+4]&1 == 1 {
				strokes = append(strokes, nil)
			}
			strokes[len(strokes)-1] = append(strokes[len(strokes)-1], p)
		}
		b, err := r.Render(strokes, int(w), int(h))
		if err != nil {
			if b != nil {
				t.Fatal("bytes with an error")
			}
			return
		}
		img, err := png.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if img.Bounds() != image.Rect(0, 0, 800, 300) {
			t.Fatalf("image %v", img.Bounds())
		}
	})
}
