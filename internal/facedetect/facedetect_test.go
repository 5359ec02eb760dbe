package facedetect_test

import (
	"image"
	"image/color"
	"image/draw"
	"math"
	"sync"
	"testing"

	"github.com/kogge-fleet/kogge/internal/facedetect"
	"github.com/kogge-fleet/kogge/internal/facedetect/facedetecttest"
)

// Where the sample's features are, measured by eye on the photo (pixels).
var (
	sampleLeftPupil  = image.Pt(113, 184)
	sampleRightPupil = image.Pt(201, 182)
	sampleMouthLeft  = image.Pt(125, 281)
	sampleMouthRight = image.Pt(198, 280)
)

func near(a, b image.Point, tol float64) bool {
	return math.Hypot(float64(a.X-b.X), float64(a.Y-b.Y)) <= tol
}

func newDetector(t testing.TB, o facedetect.Options) *facedetect.Detector {
	t.Helper()
	d, err := facedetect.NewWithOptions(o)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// canvas returns a w×h grey image with img drawn at off.
func canvas(w, h int, img image.Image, off ...image.Point) *image.RGBA {
	c := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(c, c.Bounds(), image.NewUniform(color.Gray{0xC0}), image.Point{}, draw.Src)
	for _, o := range off {
		draw.Draw(c, img.Bounds().Sub(img.Bounds().Min).Add(o), img, img.Bounds().Min, draw.Src)
	}
	return c
}

// enlarge scales img by the integer k, nearest neighbour.
func enlarge(img image.Image, k int) *image.RGBA {
	b := img.Bounds()
	out := image.NewRGBA(image.Rect(0, 0, b.Dx()*k, b.Dy()*k))
	for y := range out.Rect.Dy() {
		for x := range out.Rect.Dx() {
			out.Set(x, y, img.At(b.Min.X+x/k, b.Min.Y+y/k))
		}
	}
	return out
}

func TestSample(t *testing.T) {
	img := facedetecttest.Sample(t)
	d := newDetector(t, facedetect.Options{Landmarks: true})
	faces := d.Faces(img)
	if len(faces) != 1 {
		t.Fatalf("%d faces in the sample, want 1: %+v", len(faces), faces)
	}
	f := faces[0]
	if !f.LeftEye.In(f.Box) || !f.RightEye.In(f.Box) || f.Box.Dx() < 150 || f.Box.Dx() > 260 {
		t.Errorf("box %v with pupils %v %v", f.Box, f.LeftEye, f.RightEye)
	}
	if f.Score < 20 {
		t.Errorf("score %.1f for a clear frontal face", f.Score)
	}
	if !f.LeftEye.Found || !near(f.LeftEye.Point, sampleLeftPupil, 6) ||
		!f.RightEye.Found || !near(f.RightEye.Point, sampleRightPupil, 6) {
		t.Errorf("pupils %v and %v, want near %v and %v", f.LeftEye, f.RightEye, sampleLeftPupil, sampleRightPupil)
	}
	if d := f.EyeDistance(); d < 80 || d > 96 {
		t.Errorf("eye distance %.1f, want about 88", d)
	}
	if r := f.Roll(); math.Abs(r) > 4 {
		t.Errorf("roll %.1f°, want about -1", r)
	}
	m := f.Mouth
	if !m.Found || !near(m.Left, sampleMouthLeft, 8) || !near(m.Right, sampleMouthRight, 8) ||
		m.Top.Y >= m.Bottom.Y || m.Top.Y < 265 || m.Bottom.Y > 305 {
		t.Errorf("mouth %+v, want corners near %v and %v, lips between y 265 and 305", m, sampleMouthLeft, sampleMouthRight)
	}
	if o := m.Opening(); o <= 0 || o > 0.4 {
		t.Errorf("mouth opening %.2f of a closed mouth", o)
	}
}

// The detector reports coordinates of the image passed in, whatever its
// origin, its colour model and its size (shrunk for the search or not).
func TestCoordinates(t *testing.T) {
	img := facedetecttest.Sample(t)
	off := image.Pt(200, 50)
	big := canvas(800, 600, img, off)
	sub := big.SubImage(image.Rect(100, 20, 700, 580)) // origin (100, 20)
	big2 := enlarge(canvas(640, 480, img, off.Div(2)), 2)
	moved := func(p image.Point) image.Point { return p.Add(off) }
	for _, tc := range []struct {
		name string
		img  image.Image
		opts facedetect.Options
		at   func(image.Point) image.Point // where a point of the sample went
	}{
		{"rgba", big, facedetect.Options{MinSize: 120}, moved},
		{"sub-image", sub, facedetect.Options{MinSize: 120}, moved},
		{"gray", facedetect.Gray(big), facedetect.Options{MinSize: 120}, moved},
		{"shrunk for the search", big, facedetect.Options{MaxDim: 320, MinSize: 30}, moved},
		{"enlarged, shrunk for the search", big2, facedetect.Options{MaxDim: 400, MinSize: 30},
			func(p image.Point) image.Point { return p.Add(off.Div(2)).Mul(2) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			faces := newDetector(t, tc.opts).Faces(tc.img)
			if len(faces) != 1 {
				t.Fatalf("%d faces, want 1: %+v", len(faces), faces)
			}
			f := faces[0]
			if !f.Box.In(tc.img.Bounds()) {
				t.Errorf("box %v outside the image %v", f.Box, tc.img.Bounds())
			}
			l, r := tc.at(sampleLeftPupil), tc.at(sampleRightPupil)
			tol := 4 + 0.05*float64(r.X-l.X)
			if !near(f.LeftEye.Point, l, tol) || !near(f.RightEye.Point, r, tol) {
				t.Errorf("pupils %v %v, want near %v %v", f.LeftEye, f.RightEye, l, r)
			}
		})
	}
}

func TestCounts(t *testing.T) {
	img := facedetecttest.Sample(t)
	noise := image.NewGray(image.Rect(0, 0, 320, 240))
	seed := uint32(1)
	for i := range noise.Pix {
		seed = seed*1664525 + 1013904223
		noise.Pix[i] = uint8(seed >> 24)
	}
	for _, tc := range []struct {
		name string
		img  image.Image
		want int
	}{
		{"one", canvas(640, 480, img, image.Pt(160, 40)), 1},
		{"two side by side", canvas(700, 420, img, image.Pt(10, 10), image.Pt(370, 10)), 2},
		{"none on grey", canvas(640, 480, img), 0},
		{"none in noise", noise, 0},
		{"too small to search", image.NewGray(image.Rect(0, 0, 4, 4)), 0},
		{"empty", image.NewGray(image.Rectangle{}), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := newDetector(t, facedetect.Options{}).Faces(tc.img); len(got) != tc.want {
				t.Fatalf("%d faces, want %d: %+v", len(got), tc.want, got)
			}
		})
	}
}

// A mirrored photo has mirrored pupils: the eyes are told apart by the
// side they are on, not by the order the cascade ran.
func TestMirrored(t *testing.T) {
	img := facedetecttest.Sample(t)
	b := img.Bounds()
	m := image.NewRGBA(b)
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			m.Set(b.Max.X-1-x+b.Min.X, y, img.At(x, y))
		}
	}
	faces := newDetector(t, facedetect.Options{}).Faces(m)
	if len(faces) != 1 {
		t.Fatalf("%d faces", len(faces))
	}
	mirror := func(p image.Point) image.Point { return image.Pt(b.Dx()-1-p.X, p.Y) }
	f := faces[0]
	if !near(f.LeftEye.Point, mirror(sampleRightPupil), 6) || !near(f.RightEye.Point, mirror(sampleLeftPupil), 6) {
		t.Fatalf("pupils %v %v in the mirrored photo", f.LeftEye, f.RightEye)
	}
	if r := f.Roll(); r < -1 || r > 4 {
		t.Fatalf("roll %.1f° in the mirrored photo, want about +1", r)
	}
}

func TestConcurrent(t *testing.T) {
	img := canvas(480, 480, facedetecttest.Sample(t), image.Pt(80, 40))
	d := newDetector(t, facedetect.Options{Landmarks: true})
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for range 4 {
		wg.Go(func() {
			for range 2 {
				if f := d.Faces(img); len(f) != 1 || !f[0].Mouth.Found {
					errs <- "concurrent detection lost the face or its mouth"
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
}

func TestOptions(t *testing.T) {
	for _, o := range []facedetect.Options{
		{MinSize: 4},
		{MinSize: 50, MaxSize: 20},
		{MaxDim: -1},
		{MaxDim: 20},
		{ShiftFactor: 2},
		{ScaleFactor: 0.9},
		{IoU: 1},
		{MinScore: -1},
	} {
		if _, err := facedetect.NewWithOptions(o); err == nil {
			t.Errorf("options %+v accepted", o)
		}
	}
	if _, err := facedetect.New(); err != nil {
		t.Fatal(err)
	}
}

func TestGray(t *testing.T) {
	rgba := image.NewRGBA(image.Rect(3, 2, 13, 9))
	for i := range rgba.Pix {
		rgba.Pix[i] = uint8(i * 37)
	}
	for i := 3; i < len(rgba.Pix); i += 4 {
		rgba.Pix[i] = 0xFF
	}
	nrgba := image.NewNRGBA(rgba.Rect)
	copy(nrgba.Pix, rgba.Pix)
	ycc := image.NewYCbCr(rgba.Rect, image.YCbCrSubsampleRatio444)
	paletted := image.NewPaletted(rgba.Rect, color.Palette{color.Black, color.White, color.RGBA{0x80, 0x40, 0x20, 0xFF}})
	for y := rgba.Rect.Min.Y; y < rgba.Rect.Max.Y; y++ {
		for x := rgba.Rect.Min.X; x < rgba.Rect.Max.X; x++ {
			c := rgba.RGBAAt(x, y)
			yy, cb, cr := color.RGBToYCbCr(c.R, c.G, c.B)
			ycc.Y[ycc.YOffset(x, y)], ycc.Cb[ycc.COffset(x, y)], ycc.Cr[ycc.COffset(x, y)] = yy, cb, cr
			paletted.SetColorIndex(x, y, uint8((x+y)%3))
		}
	}
	for _, img := range []image.Image{rgba, nrgba, ycc, paletted} {
		g := facedetect.Gray(img)
		if g.Rect != img.Bounds() {
			t.Fatalf("%T: bounds %v, want %v", img, g.Rect, img.Bounds())
		}
		for y := g.Rect.Min.Y; y < g.Rect.Max.Y; y++ {
			for x := g.Rect.Min.X; x < g.Rect.Max.X; x++ {
				want := color.GrayModel.Convert(img.At(x, y)).(color.Gray).Y
				if got := g.GrayAt(x, y).Y; int(got)-int(want) > 1 || int(want)-int(got) > 1 {
					t.Fatalf("%T at %d,%d: %d, want %d", img, x, y, got, want)
				}
			}
		}
	}
}

func TestShrink(t *testing.T) {
	g := image.NewGray(image.Rect(0, 0, 6, 4))
	for i := range g.Pix {
		g.Pix[i] = uint8(10 * i)
	}
	s := facedetect.Shrink(g, 3, 2)
	// Each target pixel averages a 2×2 block.
	want := []uint8{35, 55, 75, 155, 175, 195}
	for i, w := range want {
		if s.Pix[i] != w {
			t.Fatalf("shrunk %v, want %v", s.Pix, want)
		}
	}
	if e := facedetect.Shrink(g, 60, 40); e.Rect.Dx() != 6 || e.Rect.Dy() != 4 {
		t.Fatalf("Shrink enlarged to %v", e.Rect)
	}
}

// FuzzFaces runs the detector on arbitrary small grey images: it must not
// panic, and every face must lie inside the image.
func FuzzFaces(f *testing.F) {
	f.Add(uint8(16), []byte{0, 255, 0, 255})
	f.Add(uint8(64), make([]byte, 64*64))
	d, err := facedetect.NewWithOptions(facedetect.Options{MinSize: 8, Landmarks: true})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, w uint8, pix []byte) {
		if w == 0 || len(pix) > 1<<14 {
			return
		}
		h := len(pix) / int(w)
		g := &image.Gray{Pix: pix, Stride: int(w), Rect: image.Rect(0, 0, int(w), h)}
		for _, fc := range d.Faces(g) {
			if !fc.Box.In(g.Rect) {
				t.Fatalf("box %v outside %v", fc.Box, g.Rect)
			}
		}
	})
}

func BenchmarkFaces640x480(b *testing.B) {
	img := canvas(640, 480, facedetecttest.Sample(b), image.Pt(160, 40))
	d := newDetector(b, facedetect.Options{MaxDim: 320, MinSize: 30})
	for b.Loop() {
		if len(d.Faces(img)) != 1 {
			b.Fatal("face lost")
		}
	}
}
