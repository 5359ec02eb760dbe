package fingerprint_test

import (
	"bytes"
	"image"
	"testing"

	fpsim "github.com/kogge-fleet/kogge/simulators/devices/fingerprint"
)

// coverage is the share of pixels darker than the empty sensor (below
// 200), and their mean grey level.
func coverage(g *image.Gray) (share, mean float64) {
	n, sum := 0, 0
	for _, v := range g.Pix {
		if v < 200 {
			n++
			sum += int(v)
		}
	}
	if n == 0 {
		return 0, 0
	}
	return float64(n) / float64(len(g.Pix)), float64(sum) / float64(n)
}

func TestImageKinds(t *testing.T) {
	const w, h = 256, 288
	kinds := []struct {
		name             string
		make             func(w, h int, seed uint64) *image.Gray
		minCover, maxCov float64
	}{
		// The finger ellipse covers about 69 % of the image, less where
		// the pressure fades at its edge and in the valleys.
		{"good", fpsim.GoodImage, 0.4, 0.65},
		{"poor", fpsim.PoorImage, 0.2, 0.45},
		{"smudged", fpsim.SmudgedImage, 0.55, 0.75},
		{"partial", fpsim.PartialImage, 0.04, 0.15},
		{"empty", fpsim.EmptyImage, 0, 0},
	}
	for _, k := range kinds {
		var prev *image.Gray
		for seed := uint64(1); seed <= 2; seed++ {
			a, b := k.make(w, h, seed), k.make(w, h, seed)
			if a.Bounds() != image.Rect(0, 0, w, h) {
				t.Fatalf("%s: bounds %v", k.name, a.Bounds())
			}
			if !bytes.Equal(a.Pix, b.Pix) {
				t.Fatalf("%s %d: the same seed gave different images", k.name, seed)
			}
			if prev != nil && bytes.Equal(a.Pix, prev.Pix) {
				t.Fatalf("%s %d: another seed gave the same image", k.name, seed)
			}
			prev = a
			if share, _ := coverage(a); share < k.minCover || share > k.maxCov {
				t.Errorf("%s %d: %.2f of the image is on the finger, want %.2f–%.2f", k.name, seed, share, k.minCover, k.maxCov)
			}
		}
	}
	// A wet finger is dark all over: its valleys fill up.
	_, good := coverage(fpsim.GoodImage(w, h, 1))
	_, wet := coverage(fpsim.SmudgedImage(w, h, 1))
	if wet >= good {
		t.Errorf("smudged print's finger pixels average %.0f, the good one's %.0f: want darker", wet, good)
	}
}

// TestRidgePeriod counts ridges along the middle row of good prints,
// with hysteresis against noise: the period along a row that crosses the
// ridges at an angle is at least the true one, 8.5–10.5 pixels
// (0.43–0.53 mm at 500 ppi).
func TestRidgePeriod(t *testing.T) {
	const w, h = 256, 288
	for seed := uint64(1); seed <= 5; seed++ {
		g := fpsim.GoodImage(w, h, seed)
		y := h * 3 / 5
		row := g.Pix[y*g.Stride+68 : y*g.Stride+188]
		var mean float64
		for _, v := range row {
			mean += float64(v)
		}
		mean /= float64(len(row))
		ridges, onRidge := 0, false
		for _, v := range row {
			switch {
			case !onRidge && float64(v) < mean-25:
				ridges++
				onRidge = true
			case onRidge && float64(v) > mean+25:
				onRidge = false
			}
		}
		if period := float64(len(row)) / float64(max(ridges, 1)); period < 8 || period > 30 {
			t.Errorf("seed %d: %d ridges in %d pixels: a period of %.1f", seed, ridges, len(row), period)
		}
	}
}
