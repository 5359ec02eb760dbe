package kiosk

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/draw"
	"image/jpeg"
	"image/png"
	"math"

	"github.com/kogge-fleet/kogge/kiosk/flow"
)

// The stand-ins below take the place of the capture-quality packages
// (kiosk/photo, kiosk/finger, kiosk/signature) until their adapters are
// set in Options. They check almost nothing and must not run in an office:
// they exist so that simulations and tests run the whole flow.

// StandInFaces accepts every frame that is neither too dark nor too
// bright, crops its centre at the photo's aspect ratio without scaling,
// and has no presentation-attack detection (score 0).
type StandInFaces struct{}

var _ flow.Faces = StandInFaces{}

// photoAspect is the output photo's width to height (1244×1600).
const photoAspect = 1244.0 / 1600.0

// Assess implements flow.Faces.
func (StandInFaces) Assess(frame image.Image) flow.FaceCheck {
	b := frame.Bounds()
	if b.Empty() {
		return flow.FaceCheck{Guidance: []string{"photo.no-face"}}
	}
	mean := meanLuma(frame)
	lo, hi := 0.2, 0.9
	ok := mean >= lo && mean <= hi
	fc := flow.FaceCheck{
		Checks: []flow.CheckValue{{Name: "exposure", Value: math.Round(mean*1000) / 1000, Min: &lo, Max: &hi, Mandatory: true, Passed: ok}},
		OK:     ok, Faces: 1, Region: centre(b),
	}
	switch {
	case mean < lo:
		fc.Guidance = []string{"photo.too-dark"}
	case mean > hi:
		fc.Guidance = []string{"photo.too-bright"}
	default:
		fc.Mandatory = 1
	}
	return fc
}

// Crop implements flow.Faces: the region as a JPEG, never scaled.
func (StandInFaces) Crop(frame image.Image, fc flow.FaceCheck) ([]byte, error) {
	r := fc.Region.Intersect(frame.Bounds())
	if r.Empty() {
		return nil, errors.New("stand-in crop: empty region")
	}
	sub := image.NewRGBA(image.Rect(0, 0, r.Dx(), r.Dy()))
	draw.Draw(sub, sub.Bounds(), frame, r.Min, draw.Src)
	defer clear(sub.Pix)
	buf := bytes.NewBuffer(make([]byte, 0, len(sub.Pix)/2))
	if err := jpeg.Encode(buf, sub, &jpeg.Options{Quality: 100}); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// PAD implements flow.Faces: no detector, 0.
func (StandInFaces) PAD([]image.Image) float64 { return 0 }

// centre is the largest rectangle of the photo's aspect in the middle of b.
func centre(b image.Rectangle) image.Rectangle {
	w, h := b.Dx(), b.Dy()
	if float64(w)/float64(h) > photoAspect {
		w = int(float64(h) * photoAspect)
	} else {
		h = int(float64(w) / photoAspect)
	}
	x, y := b.Min.X+(b.Dx()-w)/2, b.Min.Y+(b.Dy()-h)/2
	return image.Rect(x, y, x+w, y+h)
}

// meanLuma is the mean brightness in [0,1], on a grid of samples.
func meanLuma(img image.Image) float64 {
	b := img.Bounds()
	step := max(1, min(b.Dx(), b.Dy())/64)
	var sum float64
	n := 0
	for y := b.Min.Y; y < b.Max.Y; y += step {
		for x := b.Min.X; x < b.Max.X; x += step {
			sum += float64(color.GrayModel.Convert(img.At(x, y)).(color.Gray).Y)
			n++
		}
	}
	return sum / float64(n) / 255
}

// StandInFingers scores a print by its contrast alone: the standard
// deviation of its grey values, scaled to 0–100; an empty image fails
// (255).
type StandInFingers struct{}

var _ flow.Fingers = StandInFingers{}

// Score implements flow.Fingers.
func (StandInFingers) Score(img *image.Gray) uint8 {
	if img == nil || len(img.Pix) == 0 {
		return 255
	}
	var sum, sq float64
	for _, p := range img.Pix {
		v := float64(p)
		sum += v
		sq += v * v
	}
	n := float64(len(img.Pix))
	sd := math.Sqrt(max(0, sq/n-(sum/n)*(sum/n)))
	return uint8(min(100, sd*1.2))
}

// StandInSignatures draws the strokes as black lines, two pixels wide, on
// a white area of the drawing's size, as a PNG.
type StandInSignatures struct{}

var _ flow.Signatures = StandInSignatures{}

// Render implements flow.Signatures.
func (StandInSignatures) Render(strokes [][]flow.Point, w, h int) ([]byte, error) {
	if w <= 0 || h <= 0 || w > 4096 || h > 4096 {
		return nil, errors.New("stand-in signature: area out of range")
	}
	img := image.NewGray(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = 255
	}
	dot := func(x, y int) {
		for dy := 0; dy < 2; dy++ {
			for dx := 0; dx < 2; dx++ {
				if p := image.Pt(x+dx, y+dy); p.In(img.Rect) {
					img.Pix[img.PixOffset(p.X, p.Y)] = 0
				}
			}
		}
	}
	ink := false
	for _, s := range strokes {
		for i := range s {
			a := s[max(i-1, 0)]
			b := s[i]
			steps := max(abs(b.X-a.X), abs(b.Y-a.Y), 1)
			for k := 0; k <= steps; k++ {
				dot(a.X+(b.X-a.X)*k/steps, a.Y+(b.Y-a.Y)*k/steps)
				ink = true
			}
		}
	}
	if !ink {
		return nil, errors.New("stand-in signature: no strokes")
	}
	buf := bytes.NewBuffer(make([]byte, 0, len(img.Pix)/4+4096))
	if err := png.Encode(buf, img); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}
