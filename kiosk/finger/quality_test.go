package finger_test

import (
	"image"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	fp "github.com/kogge-fleet/kogge/drivers/fingerprint"
	"github.com/kogge-fleet/kogge/kiosk/finger"
	fpsim "github.com/kogge-fleet/kogge/simulators/devices/fingerprint"
)

const w, h = fp.SensorWidth, fp.SensorHeight

// The flow engine's Fingers interface (kiosk/flow) takes a Scorer as it is.
var _ interface{ Score(*image.Gray) uint8 } = (*finger.Scorer)(nil)

func scorer(t testing.TB, cfg finger.Config) *finger.Scorer {
	t.Helper()
	s, err := finger.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// sensor is img as the R30x module delivers it: 4 bits per pixel.
func sensor(t testing.TB, img *image.Gray) *image.Gray {
	t.Helper()
	out, err := fp.UnpackImage(fp.PackImage(img), img.Bounds().Dx(), img.Bounds().Dy())
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func uniformNoise(seed uint64) *image.Gray {
	rng := rand.New(rand.NewPCG(seed, 9))
	g := image.NewGray(image.Rect(0, 0, w, h))
	for i := range g.Pix {
		g.Pix[i] = uint8(rng.IntN(256))
	}
	return g
}

func flat(v uint8) *image.Gray {
	g := image.NewGray(image.Rect(0, 0, w, h))
	for i := range g.Pix {
		g.Pix[i] = v
	}
	return g
}

// addNoise adds Gaussian noise of standard deviation sigma.
func addNoise(g *image.Gray, sigma float64, seed uint64) *image.Gray {
	rng := rand.New(rand.NewPCG(seed, 11))
	out := image.NewGray(g.Rect)
	for i, v := range g.Pix {
		out.Pix[i] = uint8(min(max(math.Round(float64(v)+rng.NormFloat64()*sigma), 0), 255))
	}
	return out
}

// gaussBlur blurs g with a Gaussian of standard deviation sigma
// (separable, the edge repeated).
func gaussBlur(g *image.Gray, sigma float64) *image.Gray {
	if sigma == 0 {
		return g
	}
	r := int(math.Ceil(3 * sigma))
	k := make([]float64, 2*r+1)
	var sum float64
	for i := range k {
		x := float64(i - r)
		k[i] = math.Exp(-x * x / (2 * sigma * sigma))
		sum += k[i]
	}
	for i := range k {
		k[i] /= sum
	}
	bw, bh := g.Rect.Dx(), g.Rect.Dy()
	tmp := make([]float64, bw*bh)
	for y := range bh {
		for x := range bw {
			var v float64
			for i, kv := range k {
				xx := min(max(x+i-r, 0), bw-1)
				v += kv * float64(g.Pix[y*g.Stride+xx])
			}
			tmp[y*bw+x] = v
		}
	}
	out := image.NewGray(g.Rect)
	for y := range bh {
		for x := range bw {
			var v float64
			for i, kv := range k {
				yy := min(max(y+i-r, 0), bh-1)
				v += kv * tmp[yy*bw+x]
			}
			out.Pix[y*out.Stride+x] = uint8(math.Round(v))
		}
	}
	return out
}

// TestScoreTable is the calibration: good synthetic prints well above the
// threshold, the bad kinds well below it.
func TestScoreTable(t *testing.T) {
	s := scorer(t, finger.DefaultConfig())
	type row struct {
		name   string
		img    *image.Gray
		lo, hi uint8
	}
	good := func(r row) bool { return r.lo >= 30 }
	var rows []row
	// Seeds 1, 2 and 4 make a loop, a whorl and an arch.
	for _, seed := range []uint64{1, 2, 4} {
		g := fpsim.GoodImage(w, h, seed)
		rows = append(rows,
			row{"good", g, 60, 100},
			row{"good at 4 bits", sensor(t, g), 60, 100},
			row{"poor", fpsim.PoorImage(w, h, seed), 0, 20},
			row{"smudged", fpsim.SmudgedImage(w, h, seed), 0, 10},
			row{"partial", fpsim.PartialImage(w, h, seed), 0, 10},
			row{"blank sensor", fpsim.EmptyImage(w, h, seed), 0, 0},
			row{"noise", uniformNoise(seed), 0, 5},
		)
	}
	rows = append(rows, row{"white", flat(255), 0, 0}, row{"black", flat(0), 0, 0}, row{"grey", flat(128), 0, 0})
	for i, r := range rows {
		got := s.Score(r.img)
		if got < r.lo || got > r.hi {
			a, _ := s.Assess(r.img)
			t.Errorf("%d %s: score %d, want %d–%d (%+v)", i, r.name, got, r.lo, r.hi, a)
		}
		if s.Accept(got) != good(r) {
			t.Errorf("%d %s: Accept(%d) = %v with threshold 30", i, r.name, got, s.Accept(got))
		}
	}
}

func TestAccept(t *testing.T) {
	s := scorer(t, finger.DefaultConfig())
	for _, tc := range []struct {
		score uint8
		want  bool
	}{{0, false}, {29, false}, {30, true}, {100, true}, {finger.Failed, false}} {
		if got := s.Accept(tc.score); got != tc.want {
			t.Errorf("Accept(%d) = %v, want %v", tc.score, got, tc.want)
		}
	}
	cfg := finger.DefaultConfig()
	cfg.Threshold = 50
	if s := scorer(t, cfg); s.Accept(49) || !s.Accept(50) {
		t.Error("threshold 50 not applied")
	}
}

// TestScoreMonotonic: more noise or more blur never raises the score
// (beyond a point of rounding), and enough of either sinks it.
func TestScoreMonotonic(t *testing.T) {
	s := scorer(t, finger.DefaultConfig())
	for _, seed := range []uint64{2} {
		g := fpsim.GoodImage(w, h, seed)
		check := func(kind string, levels []float64, degrade func(float64) *image.Gray) {
			var prev uint8
			var scores []uint8
			for i, l := range levels {
				sc := s.Score(degrade(l))
				scores = append(scores, sc)
				if i > 0 && sc > prev+1 {
					t.Errorf("seed %d: %s %g scores %d, more than %d at %g", seed, kind, l, sc, prev, levels[i-1])
				}
				prev = sc
			}
			t.Logf("seed %d: %s %v scores %v", seed, kind, levels, scores)
			if scores[0] < 60 || scores[len(scores)-1] >= 30 {
				t.Errorf("seed %d: %s scores %v: want ≥ 60 clean and < 30 at the end", seed, kind, scores)
			}
		}
		check("noise", []float64{0, 10, 20, 30, 40, 50, 60, 80, 100}, func(sigma float64) *image.Gray {
			return addNoise(g, sigma, seed)
		})
		check("blur", []float64{0, 1, 1.5, 2, 2.5, 3, 3.5, 4}, func(sigma float64) *image.Gray {
			return gaussBlur(g, sigma)
		})
	}
}

func TestAssessMeasurements(t *testing.T) {
	s := scorer(t, finger.DefaultConfig())
	a, err := s.Assess(fpsim.GoodImage(w, h, 3))
	if err != nil {
		t.Fatal(err)
	}
	// The simulator's prints have a period of 8.5–10.5 pixels on an
	// ellipse covering about 69 % of the image.
	if a.Period < 8 || a.Period > 11 || a.Foreground < 0.6 || a.Foreground > 0.8 || a.Area != 1 {
		t.Errorf("good print measured %+v", a)
	}
	if a.Contrast < 0.8 || a.Coherence < 0.8 || a.Clarity < 0.8 {
		t.Errorf("good print factors %+v", a)
	}
	if want := uint8(math.Round(100 * a.Quality * a.Area)); a.Score != want {
		t.Errorf("score %d, want 100 × quality × area = %d", a.Score, want)
	}
	b, err := s.Assess(fpsim.EmptyImage(w, h, 1))
	if err != nil || b != (finger.Assessment{}) {
		t.Errorf("blank sensor: %+v, %v; want zero", b, err)
	}
}

// TestMinForeground: the area rule decides a clear partial print.
func TestMinForeground(t *testing.T) {
	img := fpsim.PartialImage(w, h, 1)
	cfg := finger.DefaultConfig()
	if sc := scorer(t, cfg).Score(img); sc >= 30 {
		t.Errorf("partial print scores %d with min-foreground %g", sc, cfg.MinForeground)
	}
	cfg.MinForeground = 0.1
	if sc := scorer(t, cfg).Score(img); sc < 60 {
		t.Errorf("partial print scores %d with min-foreground %g: its ridges are clear", sc, cfg.MinForeground)
	}
}

// TestScoreLayout: a sub-image or a wider stride is scored by its pixels.
func TestScoreLayout(t *testing.T) {
	s := scorer(t, finger.DefaultConfig())
	g := fpsim.GoodImage(w, h, 5)
	want := s.Score(g)
	big := image.NewGray(image.Rect(-7, 3, w+13, h+30))
	for i := range big.Pix {
		big.Pix[i] = 17
	}
	for y := range h {
		copy(big.Pix[(y+10)*big.Stride+20:], g.Pix[y*g.Stride:y*g.Stride+w])
	}
	sub := big.SubImage(image.Rect(13, 13, 13+w, 13+h)).(*image.Gray)
	if got := s.Score(sub); got != want {
		t.Errorf("sub-image scores %d, the image %d", got, want)
	}
}

func TestScoreFailed(t *testing.T) {
	s := scorer(t, finger.DefaultConfig())
	for _, tc := range []struct {
		name string
		img  *image.Gray
		want string
	}{
		{"nil", nil, "no image"},
		{"empty", &image.Gray{}, "0×0"},
		{"too small", image.NewGray(image.Rect(0, 0, 63, 300)), "63×300"},
		{"too large", &image.Gray{Rect: image.Rect(0, 0, 5000, 100), Stride: 5000}, "5000×100"},
		{"short buffer", &image.Gray{Rect: image.Rect(0, 0, 100, 100), Stride: 100, Pix: make([]byte, 9999)}, "9999 bytes"},
		{"short stride", &image.Gray{Rect: image.Rect(0, 0, 100, 100), Stride: 50, Pix: make([]byte, 10000)}, "stride 50"},
	} {
		if got := s.Score(tc.img); got != finger.Failed {
			t.Errorf("%s: score %d, want %d", tc.name, got, finger.Failed)
		}
		if _, err := s.Assess(tc.img); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one naming %q", tc.name, err, tc.want)
		}
	}
}

func TestConfig(t *testing.T) {
	if err := finger.DefaultConfig().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for _, tc := range []struct {
		name string
		mod  func(*finger.Config)
		want string
	}{
		{"threshold", func(c *finger.Config) { c.Threshold = 101 }, "threshold 101"},
		{"foreground zero", func(c *finger.Config) { c.MinForeground = 0 }, "min-foreground 0"},
		{"foreground NaN", func(c *finger.Config) { c.MinForeground = math.NaN() }, "min-foreground NaN"},
		{"foreground above one", func(c *finger.Config) { c.MinForeground = 1.5 }, "min-foreground 1.5"},
		{"ppi", func(c *finger.Config) { c.PPI = 0 }, "ppi 0"},
	} {
		cfg := finger.DefaultConfig()
		tc.mod(&cfg)
		if _, err := finger.New(cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: New: %v, want an error naming %q", tc.name, err, tc.want)
		}
	}
}

// TestPPI: at 1000 ppi, a print scaled up twice keeps its score; left at
// 500 ppi its ridges are too wide for 1000 ppi's plausible periods.
func TestPPI(t *testing.T) {
	g := fpsim.GoodImage(w, h, 2)
	up := image.NewGray(image.Rect(0, 0, 2*w, 2*h))
	for y := range 2 * h {
		for x := range 2 * w {
			up.Pix[y*up.Stride+x] = g.Pix[(y/2)*g.Stride+x/2]
		}
	}
	cfg := finger.DefaultConfig()
	cfg.PPI = 1000
	s1000 := scorer(t, cfg)
	if sc := s1000.Score(up); sc < 60 {
		t.Errorf("print at 1000 ppi scores %d", sc)
	}
	if a, _ := s1000.Assess(up); a.Period < 16 || a.Period > 22 {
		t.Errorf("print at 1000 ppi: period %.1f pixels, want 17–21", a.Period)
	}
}

func BenchmarkScore(b *testing.B) {
	s := scorer(b, finger.DefaultConfig())
	img := sensor(b, fpsim.GoodImage(w, h, 1))
	b.ReportAllocs()
	for b.Loop() {
		if s.Score(img) == finger.Failed {
			b.Fatal("failed")
		}
	}
}

// FuzzScore scores arbitrary images: never a panic, always 0–100 or
// Failed, and Failed exactly when Assess reports an error.
func FuzzScore(f *testing.F) {
	f.Add(uint16(256), uint16(288), []byte{0, 255, 128, 7})
	f.Add(uint16(64), uint16(64), []byte{})
	f.Add(uint16(63), uint16(100), []byte{1})
	f.Add(uint16(100), uint16(70), []byte{200, 30, 200, 30, 200, 30, 200, 30, 200})
	s := scorer(f, finger.DefaultConfig())
	f.Fuzz(func(t *testing.T, fw, fh uint16, data []byte) {
		bw, bh := int(fw%400), int(fh%400)
		img := image.NewGray(image.Rect(0, 0, bw, bh))
		if len(data) > 0 {
			for i := range img.Pix {
				img.Pix[i] = data[i%len(data)] + uint8(i/len(data))
			}
		}
		sc := s.Score(img)
		if sc > 100 && sc != finger.Failed {
			t.Fatalf("score %d", sc)
		}
		_, err := s.Assess(img)
		if (err != nil) != (sc == finger.Failed) {
			t.Fatalf("score %d with error %v", sc, err)
		}
		if small := bw < finger.MinSide || bh < finger.MinSide; small != (sc == finger.Failed) {
			t.Fatalf("%d×%d scored %d", bw, bh, sc)
		}
	})
}
