// Package facedetect finds faces, their pupils and mouth landmarks in images,
// with the pixel-intensity-comparison cascades of pigo
// (github.com/esimov/pigo). The cascades are embedded (see cascade/, MIT
// licence beside them), so a [Detector] needs no files at run time.
//
// A face is found by pigo's face finder on a grey version of the image,
// optionally shrunk first (Options.MaxDim) to bound the time a large photo
// takes; pupils and mouth landmarks are then located on the full-resolution
// grey image. Coordinates are always those of the image passed in.
//
// "Left" and "right" are the image's: LeftEye is the eye on the left side
// of the image, which is the person's right eye when the camera faces them.
package facedetect

import (
	"cmp"
	_ "embed"
	"errors"
	"fmt"
	"image"
	"math"
	"slices"

	pigo "github.com/esimov/pigo/core"
)

var (
	//go:embed cascade/facefinder
	facefinderCascade []byte
	//go:embed cascade/puploc
	puplocCascade []byte
	//go:embed cascade/lps/lp81
	lp81Cascade []byte
	//go:embed cascade/lps/lp82
	lp82Cascade []byte
	//go:embed cascade/lps/lp84
	lp84Cascade []byte
)

// Options tune the search. The zero value means the defaults.
type Options struct {
	// MinSize is the smallest face side searched for, in pixels of the
	// searched image (after any shrinking by MaxDim); default 40.
	MinSize int
	// MaxSize is the largest face side searched for; default the shorter
	// side of the searched image.
	MaxSize int
	// MaxDim, if positive, shrinks images whose longer side exceeds it to
	// that size before searching for faces (pupils and landmarks are still
	// located at full resolution). It bounds the time per image; faces
	// smaller than MinSize at the shrunk size are not found. Default 0:
	// search at full resolution.
	MaxDim int
	// ShiftFactor is the step of the search window as a fraction of its
	// size (0.1); ScaleFactor the growth of the window from one size to
	// the next (1.1).
	ShiftFactor float64
	ScaleFactor float64
	// IoU is the overlap above which detections merge into one face (0.2).
	IoU float64
	// MinScore is the detection score below which a candidate is not a
	// face (5). pigo's scores are unbounded; clear frontal faces score
	// from about 20 up.
	MinScore float64
	// Landmarks also locates the mouth (Face.Mouth). It costs about twice
	// what the pupils cost.
	Landmarks bool
}

// Validate reports options out of range, after defaults are filled in.
func (o Options) Validate() error {
	o = o.withDefaults()
	switch {
	case o.MinSize < 8:
		return fmt.Errorf("face detection: minimum face size %d px: must be at least 8", o.MinSize)
	case o.MaxSize != 0 && o.MaxSize < o.MinSize:
		return fmt.Errorf("face detection: maximum face size %d px below the minimum %d", o.MaxSize, o.MinSize)
	case o.MaxDim < 0 || (o.MaxDim > 0 && o.MaxDim < o.MinSize):
		return fmt.Errorf("face detection: shrink-to size %d px: must be 0 (off) or at least the minimum face size %d", o.MaxDim, o.MinSize)
	case o.ShiftFactor <= 0 || o.ShiftFactor > 1:
		return fmt.Errorf("face detection: shift factor %g: must be in (0, 1]", o.ShiftFactor)
	case o.ScaleFactor <= 1 || o.ScaleFactor > 3:
		return fmt.Errorf("face detection: scale factor %g: must be in (1, 3]", o.ScaleFactor)
	case o.IoU < 0 || o.IoU >= 1:
		return fmt.Errorf("face detection: IoU %g: must be in [0, 1)", o.IoU)
	case o.MinScore < 0:
		return fmt.Errorf("face detection: minimum score %g: must not be negative", o.MinScore)
	}
	return nil
}

func (o Options) withDefaults() Options {
	if o.MinSize == 0 {
		o.MinSize = 40
	}
	if o.ShiftFactor == 0 {
		o.ShiftFactor = 0.1
	}
	if o.ScaleFactor == 0 {
		o.ScaleFactor = 1.1
	}
	if o.IoU == 0 {
		o.IoU = 0.2
	}
	if o.MinScore == 0 {
		o.MinScore = 5
	}
	return o
}

// Pupil is the centre of a pupil; Found is false when it could not be
// located plausibly (the point is then the expected position).
type Pupil struct {
	image.Point
	Found bool
}

// Mouth are four landmarks of the mouth: its corners (Left and Right, in
// image terms) and the middles of the upper and lower lip (Top, Bottom).
// Found is false when the landmarks were not searched for or not found.
type Mouth struct {
	Left, Right, Top, Bottom image.Point
	Found                    bool
}

// Opening is the mouth's height (Top to Bottom) over its width (Left to
// Right); 0 when the mouth was not found.
func (m Mouth) Opening() float64 {
	if !m.Found {
		return 0
	}
	w := dist(m.Left, m.Right)
	if w == 0 {
		return 0
	}
	return dist(m.Top, m.Bottom) / w
}

// Face is one face found in an image.
type Face struct {
	// Box is the face's square, roughly forehead to chin and cheek to
	// cheek (hair and ears are outside it).
	Box image.Rectangle
	// Score is pigo's detection score: higher is surer (unbounded).
	Score float64
	// LeftEye and RightEye are the pupils on the image's left and right.
	LeftEye, RightEye Pupil
	// Mouth is set when the detector was made with Options.Landmarks.
	Mouth Mouth
}

// EyeDistance is the distance between the pupils in pixels; 0 unless
// both were found.
func (f Face) EyeDistance() float64 {
	if !f.LeftEye.Found || !f.RightEye.Found {
		return 0
	}
	return dist(f.LeftEye.Point, f.RightEye.Point)
}

// Roll is the angle of the eye line against the horizontal, in degrees,
// positive when the right eye (image right) is lower; 0 unless both pupils
// were found.
func (f Face) Roll() float64 {
	if !f.LeftEye.Found || !f.RightEye.Found {
		return 0
	}
	d := f.RightEye.Sub(f.LeftEye.Point)
	return math.Atan2(float64(d.Y), float64(d.X)) * 180 / math.Pi
}

// Detector finds faces. It is safe for concurrent use.
type Detector struct {
	opts   Options
	faces  *pigo.Pigo
	pupils *pigo.PuplocCascade
	// Mouth landmark cascades: lp84 finds a corner (mirrored, the other),
	// lp82 and lp81 the middles of the upper and lower lip.
	lp81, lp82, lp84 *pigo.PuplocCascade
}

// perturbs is the number of perturbed runs of the pupil and landmark
// cascades whose median is the answer. It must be 63: pigo sorts a pooled
// buffer of 63 entries, so fewer runs would mix in stale values.
const perturbs = 63

// New returns a detector with the default options.
func New() (*Detector, error) { return NewWithOptions(Options{}) }

// NewWithOptions returns a detector with opts.
func NewWithOptions(opts Options) (*Detector, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	d := &Detector{opts: opts.withDefaults()}
	var err error
	if d.faces, err = unpackFaces(facefinderCascade); err != nil {
		return nil, err
	}
	if d.pupils, err = unpackPuploc("puploc", puplocCascade); err != nil {
		return nil, err
	}
	if d.opts.Landmarks {
		for _, c := range []struct {
			dst  **pigo.PuplocCascade
			name string
			b    []byte
		}{{&d.lp81, "lp81", lp81Cascade}, {&d.lp82, "lp82", lp82Cascade}, {&d.lp84, "lp84", lp84Cascade}} {
			if *c.dst, err = unpackPuploc(c.name, c.b); err != nil {
				return nil, err
			}
		}
	}
	return d, nil
}

var errCascade = errors.New("embedded cascade damaged; rebuild from a clean checkout")

// unpackFaces and unpackPuploc guard against a damaged embedded file: pigo
// indexes the data without bounds checks of its own.
func unpackFaces(b []byte) (p *pigo.Pigo, err error) {
	defer func() {
		if recover() != nil {
			p, err = nil, fmt.Errorf("face cascade: %w", errCascade)
		}
	}()
	if len(b) < 16 {
		return nil, fmt.Errorf("face cascade: %w", errCascade)
	}
	return pigo.NewPigo().Unpack(b)
}

func unpackPuploc(name string, b []byte) (p *pigo.PuplocCascade, err error) {
	defer func() {
		if recover() != nil {
			p, err = nil, fmt.Errorf("%s cascade: %w", name, errCascade)
		}
	}()
	if len(b) < 16 {
		return nil, fmt.Errorf("%s cascade: %w", name, errCascade)
	}
	return pigo.NewPuplocCascade().UnpackCascade(b)
}

// Faces finds the faces in img, surest first.
func (d *Detector) Faces(img image.Image) []Face {
	return d.FacesGray(Gray(img))
}

// FacesGray is Faces on a grey image (see [Gray]), for callers that need the
// grey image themselves.
func (d *Detector) FacesGray(g *image.Gray) []Face {
	b := g.Bounds()
	w, h := b.Dx(), b.Dy()
	if w < 8 || h < 8 {
		return nil
	}
	full := pigo.ImageParams{Pixels: pixels(g), Rows: h, Cols: w, Dim: w}
	search, k := full, 1.0
	if d.opts.MaxDim > 0 && max(w, h) > d.opts.MaxDim {
		k = float64(max(w, h)) / float64(d.opts.MaxDim)
		sw, sh := max(1, int(float64(w)/k+0.5)), max(1, int(float64(h)/k+0.5))
		small := Shrink(g, sw, sh)
		search = pigo.ImageParams{Pixels: small.Pix, Rows: sh, Cols: sw, Dim: sw}
		k = float64(w) / float64(sw)
	}
	maxSize := d.opts.MaxSize
	if maxSize == 0 || maxSize > min(search.Rows, search.Cols) {
		maxSize = min(search.Rows, search.Cols)
	}
	if maxSize < d.opts.MinSize {
		return nil
	}
	dets := d.faces.RunCascade(pigo.CascadeParams{
		MinSize: d.opts.MinSize, MaxSize: maxSize,
		ShiftFactor: d.opts.ShiftFactor, ScaleFactor: d.opts.ScaleFactor,
		ImageParams: search,
	}, 0)
	dets = d.faces.ClusterDetections(dets, d.opts.IoU)
	// pigo's clustering leaves nested boxes of one face at different
	// scales: keep the surest of boxes that mostly overlap.
	slices.SortStableFunc(dets, func(a, b pigo.Detection) int { return cmp.Compare(b.Q, a.Q) })
	var faces []Face
	var scales []float64
	for _, det := range dets {
		if float64(det.Q) < d.opts.MinScore {
			continue
		}
		row, col, scale := float64(det.Row)*k, float64(det.Col)*k, float64(det.Scale)*k
		box := image.Rect(int(col-scale/2), int(row-scale/2), int(col+scale/2+0.5), int(row+scale/2+0.5)).
			Add(b.Min).Intersect(b)
		if slices.ContainsFunc(faces, func(f Face) bool { return overlap(f.Box, box) > nestedOverlap }) {
			continue
		}
		faces = append(faces, Face{Box: box, Score: float64(det.Q)})
		scales = append(scales, scale)
	}
	for i := range faces {
		f := &faces[i]
		c := f.Box.Min.Add(f.Box.Max).Sub(b.Min.Mul(2))
		row, col, scale := float64(c.Y)/2, float64(c.X)/2, scales[i]
		l, r := d.eyes(full, row, col, scale)
		f.LeftEye, f.RightEye = pupil(l, b.Min), pupil(r, b.Min)
		plausible(f, scale)
		if d.opts.Landmarks && f.LeftEye.Found && f.RightEye.Found {
			f.Mouth = d.mouth(full, l, r, b.Min, scale)
		}
	}
	return faces
}

// nestedOverlap is the share of the smaller of two face boxes that may lie
// inside the larger before the two count as one face.
const nestedOverlap = 0.4

// overlap is the area of a∩b over the smaller area of a and b.
func overlap(a, b image.Rectangle) float64 {
	in := a.Intersect(b)
	if in.Empty() {
		return 0
	}
	small := min(a.Dx()*a.Dy(), b.Dx()*b.Dy())
	return float64(in.Dx()*in.Dy()) / float64(small)
}

// eyes runs the pupil cascade from the pupils' usual places in a face
// square at (row, col) of side scale.
func (d *Detector) eyes(img pigo.ImageParams, row, col, scale float64) (l, r *pigo.Puploc) {
	start := func(side float64) pigo.Puploc {
		return pigo.Puploc{
			Row:      int(row - 0.075*scale),
			Col:      int(col + side*0.175*scale),
			Scale:    float32(scale * 0.25),
			Perturbs: perturbs,
		}
	}
	l = d.pupils.RunDetector(start(-1), img, 0, false)
	r = d.pupils.RunDetector(start(1), img, 0, false)
	return l, r
}

func pupil(p *pigo.Puploc, off image.Point) Pupil {
	return Pupil{Point: image.Pt(p.Col, p.Row).Add(off), Found: p.Row > 0 && p.Col > 0}
}

// plausible clears Found for pupils outside the upper part of the face
// square, on the wrong side, or on top of each other.
func plausible(f *Face, scale float64) {
	box := f.Box
	mid := (box.Min.X + box.Max.X) / 2
	upper := image.Rect(box.Min.X, box.Min.Y, box.Max.X, box.Min.Y+box.Dy()*3/5)
	if !f.LeftEye.In(upper) || f.LeftEye.X > mid {
		f.LeftEye.Found = false
	}
	if !f.RightEye.In(upper) || f.RightEye.X < mid {
		f.RightEye.Found = false
	}
	if f.LeftEye.Found && f.RightEye.Found && dist(f.LeftEye.Point, f.RightEye.Point) < 0.15*scale {
		f.LeftEye.Found, f.RightEye.Found = false, false
	}
}

// mouth locates the mouth landmarks from the pupils.
func (d *Detector) mouth(img pigo.ImageParams, l, r *pigo.Puploc, off image.Point, scale float64) Mouth {
	at := func(c *pigo.PuplocCascade, flip bool) (image.Point, bool) {
		p := c.GetLandmarkPoint(l, r, img, perturbs, flip)
		return image.Pt(p.Col, p.Row).Add(off), p.Row > 0 && p.Col > 0
	}
	c1, ok1 := at(d.lp84, false)
	c2, ok2 := at(d.lp84, true)
	top, ok3 := at(d.lp82, false)
	bottom, ok4 := at(d.lp81, false)
	m := Mouth{Left: c1, Right: c2, Top: top, Bottom: bottom, Found: ok1 && ok2 && ok3 && ok4}
	if m.Left.X > m.Right.X {
		m.Left, m.Right = m.Right, m.Left
	}
	if m.Top.Y > m.Bottom.Y {
		m.Top, m.Bottom = m.Bottom, m.Top
	}
	if dist(m.Left, m.Right) < 0.05*scale {
		m.Found = false
	}
	return m
}

func dist(a, b image.Point) float64 {
	return math.Hypot(float64(a.X-b.X), float64(a.Y-b.Y))
}
