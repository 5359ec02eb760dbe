package photo

import (
	"image"
	"math"

	"github.com/kogge-fleet/kogge/internal/facedetect"
)

// PAD scores recent frames of one citizen for a presentation attack (a
// printed photo, a screen, a mask held to the camera). Score returns a
// value in [0,1], higher meaning more likely an attack. Implementations
// must be safe for concurrent use.
type PAD interface {
	Score(frames []image.Image) float64
}

// MotionTexturePAD is a simple heuristic until a certified detector takes
// its place behind [PAD]. It looks at the face of the newest frame in up
// to the last eight frames, shrunk to 64×64 pixels, and combines two cues
// in [0,1] as 1 − (1 − 0.6·stillness)(1 − 0.6·texture): either cue alone
// scores 0.6, both 0.84, neither 0.
//
//   - stillness: a live face moves a little from frame to frame (breath,
//     blinks, sway); a photo on a stand does not. The mean absolute grey
//     difference between consecutive frames of the face, less a noise
//     floor, maps 0 to a stillness of 1 and MotionFull or more to 0. A
//     single frame gives 0.5 (unknown).
//   - texture: the variance of the Laplacian over the variance of the face
//     (the share of high-frequency energy) of a live face lies in a band;
//     a recaptured print has less (its detail is blurred away), a screen
//     more (pixel grid and moiré). Inside the band 0, rising to 1 at a
//     third of its lower or three times its upper bound.
//
// No face in the newest frame scores 1.
type MotionTexturePAD struct {
	det *facedetect.Detector
	// MotionNoise is the grey difference camera noise alone causes (0.3);
	// MotionFull the difference from which a face counts as moving (2).
	MotionNoise, MotionFull float64
	// Texture is the band of high-frequency share of live faces
	// (calibrated: 0.15–2.5).
	Texture Range
}

// NewMotionTexturePAD returns the heuristic with its defaults, finding
// faces with det.
func NewMotionTexturePAD(det *facedetect.Detector) *MotionTexturePAD {
	return &MotionTexturePAD{det: det, MotionNoise: 0.3, MotionFull: 2, Texture: Range{0.15, 2.5}}
}

// padSide is the side of the face patch compared between frames.
const padSide = 64

// Score implements PAD.
func (p *MotionTexturePAD) Score(frames []image.Image) float64 {
	if len(frames) == 0 || frames[len(frames)-1] == nil {
		return 1
	}
	frames = frames[max(0, len(frames)-8):]
	last := frames[len(frames)-1]
	lb := last.Bounds()
	faces := p.det.FacesGray(facedetect.Gray(last))
	if len(faces) == 0 {
		return 1
	}
	box := faces[0].Box
	for _, f := range faces[1:] {
		if f.Box.Dx() > box.Dx() {
			box = f.Box
		}
	}
	if box.Dx() < 8 || box.Dy() < 8 {
		return 1
	}
	// The box in each frame's coordinates (frames may differ in size).
	patch := func(img image.Image) *image.Gray {
		if img == nil {
			return nil
		}
		b := img.Bounds()
		kx, ky := float64(b.Dx())/float64(lb.Dx()), float64(b.Dy())/float64(lb.Dy())
		r := image.Rect(
			b.Min.X+int(float64(box.Min.X-lb.Min.X)*kx), b.Min.Y+int(float64(box.Min.Y-lb.Min.Y)*ky),
			b.Min.X+int(float64(box.Max.X-lb.Min.X)*kx), b.Min.Y+int(float64(box.Max.Y-lb.Min.Y)*ky),
		).Intersect(b)
		if r.Dx() < 4 || r.Dy() < 4 {
			return nil
		}
		g := facedetect.Gray(subImage(img, r))
		return facedetect.Shrink(g, padSide, padSide)
	}
	stillness := 0.5
	if len(frames) > 1 {
		var prev *image.Gray
		var sum float64
		var n int
		for _, f := range frames {
			cur := patch(f)
			if cur == nil || (prev != nil && cur.Rect != prev.Rect) {
				prev = nil
				continue
			}
			if prev != nil {
				sum += meanAbsDiff(prev, cur)
				n++
			}
			prev = cur
		}
		if n > 0 {
			motion := sum/float64(n) - p.MotionNoise
			stillness = max(0, min(1, 1-motion/max(1e-9, p.MotionFull-p.MotionNoise)))
		}
	}
	anomaly := 1.0
	if r := box.Intersect(lb); !r.Empty() {
		g := facedetect.Gray(subImage(last, r))
		w := min(r.Dx(), sharpWidth)
		q := highFrequencyShare(facedetect.Shrink(g, w, max(3, r.Dy()*w/r.Dx())))
		switch lo, hi := p.Texture.Min, p.Texture.Max; {
		case q < lo:
			anomaly = min(1, (lo-q)/(lo-lo/3))
		case q > hi:
			anomaly = min(1, (q-hi)/(3*hi-hi))
		default:
			anomaly = 0
		}
	}
	return max(0, min(1, 1-(1-0.6*stillness)*(1-0.6*anomaly)))
}

// subImage cuts r out of img without copying where the type allows.
func subImage(img image.Image, r image.Rectangle) image.Image {
	if s, ok := img.(interface {
		SubImage(image.Rectangle) image.Image
	}); ok {
		return s.SubImage(r)
	}
	out := image.NewRGBA(r)
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			out.Set(x, y, img.At(x, y))
		}
	}
	return out
}

func meanAbsDiff(a, b *image.Gray) float64 {
	var sum float64
	for i := range a.Pix {
		sum += math.Abs(float64(a.Pix[i]) - float64(b.Pix[i]))
	}
	return sum / float64(len(a.Pix))
}

// highFrequencyShare is the variance of the 4-neighbour Laplacian over
// the variance of the grey values.
func highFrequencyShare(g *image.Gray) float64 {
	w, h := g.Rect.Dx(), g.Rect.Dy()
	var s, s2, l, l2, n float64
	for y := 1; y < h-1; y++ {
		row := g.Pix[y*g.Stride:]
		up, down := g.Pix[(y-1)*g.Stride:], g.Pix[(y+1)*g.Stride:]
		for x := 1; x < w-1; x++ {
			v := float64(row[x])
			lap := float64(up[x]) + float64(down[x]) + float64(row[x-1]) + float64(row[x+1]) - 4*v
			s, s2, l, l2 = s+v, s2+v*v, l+lap, l2+lap*lap
			n++
		}
	}
	if n == 0 {
		return 0
	}
	vv := s2/n - (s/n)*(s/n)
	if vv < 1 {
		return 0 // a flat patch: no texture at all
	}
	return (l2/n - (l/n)*(l/n)) / vv
}
