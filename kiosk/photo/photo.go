// Package photo checks live camera frames against the rules for ID
// document photos (BSI TR-03121-3, ICAO 9303; DOMAIN.md §1), tells the
// citizen how to improve, picks the best of several attempts, cuts the
// 1244×1600 JPEG, and scores presentation attacks.
//
// A [Checker] assesses one frame at a time (Assess) and is safe for
// concurrent use. It finds the faces with internal/facedetect (pigo), and
// from the one face its pupils, then derives the head's extent: the crown
// from where the hair meets the uniform background above the eyes (or, on
// a cluttered background, 1.9 pupil distances above the eye line), the
// chin 1.9 pupil distances below it, the width from where the head meets
// the background at the eye line (or 2.45 pupil distances). Around that
// head it places the crop region of the photo's aspect ratio so that the
// head height is in the middle of its range, the eye line and the centre
// as the rules want them, then moves and shrinks the region to fit the
// frame. The criteria are judged on that region, as they will hold in the
// photo:
//
//   - faces: the faces the detector found with at least MinFaceScore;
//     exactly one passes.
//   - image-size: the region's width in capture-mode pixels (a preview
//     frame is scaled to the capture mode); below OutputWidth the photo
//     would need upscaling: "too far".
//   - head-width, head-height: the head's extent over the region's.
//   - eye-position: the eye line's distance from the region's top over
//     its height; centre: the pupils' midpoint's distance from its left
//     over its width.
//   - eye-distance: the pupil distance scaled to the photo.
//   - roll: the eye line's angle; when the pupils are not visible (eyes
//     closed) the angle of the line through the mouth's corners.
//   - eyes-open: at each pupil, the share of pixels in a small window that
//     are much darker than the cheeks (an open eye shows its iris; a
//     closed lid is skin with a thin lash line); the lower of the two eyes.
//   - mouth-closed: the gap between the lips over the mouth's width. The
//     mouth is found by its corners (pigo's lp84 landmark cascade; else
//     1.12 pupil distances below the eyes); in seven columns across its
//     middle, the longest vertical run of pixels that are neither skin nor
//     lip (much darker than the cheeks: the inside of the mouth; or as
//     bright and far less saturated: teeth), the median of the seven. pigo's
//     lip landmarks (lp82, lp81) are too unsteady to measure the opening
//     themselves: their distance over the mouth's width is 0.26 on a real
//     closed mouth, 0.4–0.48 on a drawn closed one, 0.55 on an opened one.
//   - exposure: the mean luma of the face between the eyes and the mouth.
//   - sharpness: the variance of the 4-neighbour Laplacian of the face,
//     shrunk to a fixed 128 px width first so the value does not depend on
//     the camera's resolution.
//   - colour-space: the mean chroma of the face (0 for a grey image or a
//     grey colour model); the photo is written as 24-bit colour JPEG.
//   - background: the share of samples of the region outside the head
//     (above it and beside it down to the chin) that are grey within the
//     range, near neutral and near the background's median.
//   - lighting: the darker cheek's mean luma over the brighter's.
//
// Yaw and pitch are not estimated: pigo gives no landmarks to measure them
// reliably; a strongly turned face fails detection, eye distance or centre.
//
// Guidance follows from the failed criteria, most important first: several
// faces or no face (alone); too close (a head ratio above its range) or too
// far (image size, a head ratio below its range, eye distance); left or
// right (centre; for the citizen facing an unmirrored camera, or the
// picture when Config.Mirrored); higher or lower (eye position); look
// straight (roll); hold still (sharpness); eyes closed; mouth open; too
// dark or too bright (exposure); background. Colour space and lighting
// give no guidance: the citizen cannot fix them.
package photo

import (
	"fmt"
	"image"
	"math"
	"slices"

	"github.com/kogge-fleet/kogge/internal/facedetect"
)

// Guidance keys (kiosk/i18n catalogue; kiosk/flow View.Guidance).
const (
	GuideTooClose     = "photo.too-close"
	GuideTooFar       = "photo.too-far"
	GuideHigher       = "photo.higher"
	GuideLower        = "photo.lower"
	GuideLeft         = "photo.left"
	GuideRight        = "photo.right"
	GuideHoldStill    = "photo.hold-still"
	GuideLookStraight = "photo.look-straight"
	GuideSeveralFaces = "photo.several-faces"
	GuideNoFace       = "photo.no-face"
	GuideEyesClosed   = "photo.eyes-closed"
	GuideMouthOpen    = "photo.mouth-open"
	GuideTooDark      = "photo.too-dark"
	GuideTooBright    = "photo.too-bright"
	GuideBackground   = "photo.background"
)

// Check is one criterion's value. Min and Max are nil where there is no
// bound. Its fields match kiosk/flow.CheckValue and casefile.Check.
type Check struct {
	Name      string
	Value     float64
	Min, Max  *float64
	Mandatory bool
	Passed    bool
}

// Assessment is the judgement of one frame.
type Assessment struct {
	// Checks are the criteria in a fixed order (faces first); with no
	// face or several, only faces.
	Checks []Check
	// Guidance are catalogue keys derived from the failed criteria, most
	// important first.
	Guidance []string
	// Mandatory and Optional count the criteria met; OK says every
	// mandatory one is.
	Mandatory, Optional int
	OK                  bool
	// Region is where the photo is cut from, in frame coordinates (empty
	// without exactly one face).
	Region image.Rectangle
	// Faces counts the faces found.
	Faces int
	// Face is the face judged (zero without exactly one).
	Face facedetect.Face
}

// Check returns the criterion named name, and whether it was judged.
func (a Assessment) Check(name string) (Check, bool) {
	i := slices.IndexFunc(a.Checks, func(c Check) bool { return c.Name == name })
	if i < 0 {
		return Check{}, false
	}
	return a.Checks[i], true
}

// Checker assesses frames, crops photos and scores presentation attacks.
// It is safe for concurrent use.
type Checker struct {
	cfg       Config
	det       *facedetect.Detector
	pad       PAD
	mandatory map[string]bool
}

// New returns a checker for cfg. pad scores presentation attacks; nil
// means the built-in heuristic ([NewMotionTexturePAD]).
func New(cfg Config, pad PAD) (*Checker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	det, err := facedetect.NewWithOptions(facedetect.Options{
		MinSize: 32, MaxDim: cfg.SearchSize, MinScore: cfg.MinFaceScore, Landmarks: true,
	})
	if err != nil {
		return nil, fmt.Errorf("photo checker: %w", err)
	}
	c := &Checker{cfg: cfg, det: det, pad: pad, mandatory: map[string]bool{}}
	for _, m := range cfg.Mandatory {
		c.mandatory[m] = true
	}
	if c.pad == nil {
		c.pad = NewMotionTexturePAD(det)
	}
	return c, nil
}

// Config returns the checker's rules.
func (c *Checker) Config() Config { return c.cfg }

// PAD scores recent frames for a presentation attack, in [0,1] (higher is
// more likely an attack). Log it; never show it.
func (c *Checker) PAD(frames []image.Image) float64 {
	s := c.pad.Score(frames)
	if s != s { // NaN from a broken detector counts as an attack
		return 1
	}
	return max(0, min(1, s))
}

// judge collects checks and counts.
type judge struct {
	c      *Checker
	checks []Check
}

func ptr(f float64) *float64 { return &f }

func (j *judge) add(name string, v float64, lo, hi *float64) Check {
	ok := v == v && (lo == nil || v >= *lo) && (hi == nil || v <= *hi)
	ch := Check{Name: name, Value: round(v), Min: lo, Max: hi, Mandatory: j.c.mandatory[name], Passed: ok}
	j.checks = append(j.checks, ch)
	return ch
}

func round(v float64) float64 {
	if v != v || math.IsInf(v, 0) {
		return 0
	}
	return math.Round(v*1e4) / 1e4
}

func (j *judge) assessment() Assessment {
	a := Assessment{Checks: j.checks, OK: true}
	for _, ch := range j.checks {
		switch {
		case ch.Passed && ch.Mandatory:
			a.Mandatory++
		case ch.Passed:
			a.Optional++
		case ch.Mandatory:
			a.OK = false
		}
	}
	return a
}

// Assess checks one frame against the rules.
func (c *Checker) Assess(frame image.Image) Assessment {
	j := &judge{c: c}
	b := frame.Bounds()
	if b.Dx() < 16 || b.Dy() < 16 {
		j.add(CheckFaces, 0, ptr(1), ptr(1))
		a := j.assessment()
		a.Guidance = []string{GuideNoFace}
		return a
	}
	g := facedetect.Gray(frame)
	faces := c.det.FacesGray(g)
	j.add(CheckFaces, float64(len(faces)), ptr(1), ptr(1))
	if len(faces) != 1 {
		a := j.assessment()
		a.Faces = len(faces)
		a.Guidance = []string{GuideNoFace}
		if len(faces) > 1 {
			a.Guidance = []string{GuideSeveralFaces}
		}
		return a
	}
	f := faces[0]
	m := c.measure(frame, g, f)
	cfg := c.cfg
	var gd guidance

	size := j.add(CheckImageSize, m.captureWidth, ptr(float64(cfg.OutputWidth)), nil)
	hw := j.add(CheckHeadWidth, m.headWidth, ptr(cfg.HeadWidth.Min), ptr(cfg.HeadWidth.Max))
	hh := j.add(CheckHeadHeight, m.headHeight, ptr(cfg.HeadHeight.Min), ptr(cfg.HeadHeight.Max))
	switch {
	case !hw.Passed && hw.Value > cfg.HeadWidth.Max, !hh.Passed && hh.Value > cfg.HeadHeight.Max:
		gd.add(0, GuideTooClose)
	case !size.Passed, !hw.Passed, !hh.Passed:
		gd.add(0, GuideTooFar)
	}
	if ch := j.add(CheckEyePosition, m.eyePosition, ptr(cfg.EyePosition.Min), ptr(cfg.EyePosition.Max)); !ch.Passed {
		// Eyes too high in the picture: the citizen should get lower.
		gd.add(2, pick(ch.Value < cfg.EyePosition.Min, GuideLower, GuideHigher))
	}
	if ch := j.add(CheckCentre, m.centre, ptr(cfg.Centre.Min), ptr(cfg.Centre.Max)); !ch.Passed {
		// Face left in an unmirrored picture: the citizen stands too far
		// to their right and should move to their left.
		left := ch.Value < cfg.Centre.Min
		if cfg.Mirrored {
			left = !left
		}
		gd.add(1, pick(left, GuideLeft, GuideRight))
	}
	if ch := j.add(CheckEyeDistance, m.eyeDistance, ptr(cfg.MinEyeDistance), nil); !ch.Passed {
		gd.add(0, GuideTooFar)
	}
	if ch := j.add(CheckRoll, m.roll, ptr(-cfg.MaxRoll), ptr(cfg.MaxRoll)); !ch.Passed {
		gd.add(3, GuideLookStraight)
	}
	if ch := j.add(CheckEyesOpen, m.eyesOpen, ptr(cfg.MinEyesOpen), nil); !ch.Passed {
		gd.add(5, GuideEyesClosed)
	}
	if ch := j.add(CheckMouthClosed, m.mouthOpening, nil, ptr(cfg.MaxMouthOpening)); !ch.Passed {
		gd.add(6, GuideMouthOpen)
	}
	if ch := j.add(CheckExposure, m.exposure, ptr(cfg.Exposure.Min), ptr(cfg.Exposure.Max)); !ch.Passed {
		gd.add(7, pick(ch.Value < cfg.Exposure.Min, GuideTooDark, GuideTooBright))
	}
	if ch := j.add(CheckSharpness, m.sharpness, ptr(cfg.MinSharpness), nil); !ch.Passed {
		gd.add(4, GuideHoldStill)
	}
	j.add(CheckColourSpace, m.chroma, ptr(cfg.MinChroma), nil)
	if ch := j.add(CheckBackground, m.background, ptr(cfg.MinBackground), nil); !ch.Passed {
		gd.add(8, GuideBackground)
	}
	j.add(CheckLighting, m.lighting, ptr(cfg.MinLighting), nil)

	a := j.assessment()
	a.Faces, a.Face, a.Region = 1, f, m.region
	a.Guidance = gd.keys()
	return a
}

func pick(cond bool, a, b string) string {
	if cond {
		return a
	}
	return b
}

// guidance orders keys by rank (0 most important), then by arrival.
type guidance struct {
	ranked [][]string
}

func (g *guidance) add(rank int, key string) {
	for len(g.ranked) <= rank {
		g.ranked = append(g.ranked, nil)
	}
	if !slices.Contains(g.ranked[rank], key) {
		g.ranked[rank] = append(g.ranked[rank], key)
	}
}

func (g *guidance) keys() []string {
	var out []string
	for _, r := range g.ranked {
		out = append(out, r...)
	}
	return out
}
