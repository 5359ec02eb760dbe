package photo

import (
	"errors"
	"fmt"
	"slices"
)

// Names of the criteria, as the casefile records them (protocol/casefile
// Check.Name), plus "faces".
const (
	CheckFaces       = "faces"        // faces found; exactly one passes
	CheckImageSize   = "image-size"   // crop region's width in capture pixels; no upscaling
	CheckHeadWidth   = "head-width"   // head width / photo width
	CheckHeadHeight  = "head-height"  // head height (crown to chin) / photo height
	CheckEyePosition = "eye-position" // eye line's distance from the top / photo height
	CheckCentre      = "centre"       // face centre's distance from the left / photo width
	CheckEyeDistance = "eye-distance" // pupil distance in photo pixels
	CheckRoll        = "roll"         // eye line's angle in degrees
	CheckEyesOpen    = "eyes-open"    // share of dark iris pixels at the pupils
	CheckMouthClosed = "mouth-closed" // gap between the lips / mouth width
	CheckExposure    = "exposure"     // mean luma of the face, 0–255
	CheckSharpness   = "sharpness"    // variance of the Laplacian of the face
	CheckColourSpace = "colour-space" // mean chroma of the face; 0 for grey
	CheckBackground  = "background"   // share of uniform grey background samples
	CheckLighting    = "lighting"     // darker cheek's luma / brighter cheek's
)

// allChecks are the criteria in the order an Assessment lists them.
var allChecks = []string{
	CheckFaces, CheckImageSize, CheckHeadWidth, CheckHeadHeight, CheckEyePosition, CheckCentre,
	CheckEyeDistance, CheckRoll, CheckEyesOpen, CheckMouthClosed, CheckExposure, CheckSharpness,
	CheckColourSpace, CheckBackground, CheckLighting,
}

// Range bounds a criterion's value on both sides.
type Range struct {
	Min float64 `config:"min" json:"min"`
	Max float64 `config:"max" json:"max"`
}

func (r Range) valid() bool { return r.Min <= r.Max }

// Config holds the photo rules. DefaultConfig has the values of BSI
// TR-03121-3 / ICAO 9303 (DOMAIN.md §1) where those set one, and values
// measured on test photos where they do not (marked "calibrated").
type Config struct {
	// OutputWidth and OutputHeight are the photo's size (1244×1600).
	OutputWidth  int `config:"output-width" json:"output_width" usage:"photo width in pixels"`
	OutputHeight int `config:"output-height" json:"output_height" usage:"photo height in pixels"`
	// JPEGQuality of the photo (100, the highest).
	JPEGQuality int `config:"jpeg-quality" json:"jpeg_quality" usage:"JPEG quality of the photo, 1-100"`
	// CaptureWidth and CaptureHeight are the camera mode photos are taken
	// in. Frames of another size (previews) are judged as scaled copies of
	// a capture frame with the same field of view. 0 means each frame is
	// its own capture.
	CaptureWidth  int `config:"capture-width" json:"capture_width" usage:"camera capture mode width (0: the frame's own)"`
	CaptureHeight int `config:"capture-height" json:"capture_height" usage:"camera capture mode height (0: the frame's own)"`

	HeadWidth   Range `config:"head-width" json:"head_width"`     // 0.5–0.75
	HeadHeight  Range `config:"head-height" json:"head_height"`   // 0.6–0.9
	EyePosition Range `config:"eye-position" json:"eye_position"` // 0.3–0.5 from the top
	Centre      Range `config:"centre" json:"centre"`             // 0.45–0.55
	// MinEyeDistance is the least pupil distance in the photo (300 px).
	MinEyeDistance float64 `config:"min-eye-distance" json:"min_eye_distance" usage:"least pupil distance in photo pixels"`
	// MaxRoll is the largest tilt of the eye line in degrees (8).
	MaxRoll float64 `config:"max-roll" json:"max_roll" usage:"largest roll in degrees"`
	// MinEyesOpen is the least share of dark iris pixels around each
	// pupil (calibrated: 0.45; open eyes give 0.75 and more, closed ones
	// under 0.3).
	MinEyesOpen float64 `config:"min-eyes-open" json:"min_eyes_open" usage:"least dark share at the pupils"`
	// MaxMouthOpening is the largest gap between the lips over the
	// mouth's width (calibrated: 0.12; closed mouths give under 0.05,
	// open ones 0.2 and more).
	MaxMouthOpening float64 `config:"max-mouth-opening" json:"max_mouth_opening" usage:"largest gap between the lips / mouth width"`
	// Exposure bounds the mean luma of the face (calibrated: 70–220).
	Exposure Range `config:"exposure" json:"exposure"`
	// MinSharpness is the least variance of the Laplacian of the face,
	// measured at a fixed face scale (calibrated: 40; sharp faces give
	// several hundred, a blur of 2 px at that scale under 20).
	MinSharpness float64 `config:"min-sharpness" json:"min_sharpness" usage:"least variance of the Laplacian of the face"`
	// MinChroma is the least mean chroma of the face (calibrated: 3); a
	// grey image has none.
	MinChroma float64 `config:"min-chroma" json:"min_chroma" usage:"least mean chroma of the face (colour photo)"`
	// Background is the grey range of the background (#A1A1A1–#E1E1E1
	// as 161–225); BackgroundMaxSpread is how far a sample may stray from
	// neutral grey and from the background's median (12);
	// MinBackground is the least share of samples that must be good (0.8).
	Background          Range   `config:"background" json:"background"`
	BackgroundMaxSpread float64 `config:"background-max-spread" json:"background_max_spread" usage:"largest deviation of a background sample"`
	MinBackground       float64 `config:"min-background" json:"min_background" usage:"least share of good background samples"`
	// MinLighting is the least ratio of the darker cheek's luma to the
	// brighter's (calibrated: 0.75).
	MinLighting float64 `config:"min-lighting" json:"min_lighting" usage:"least darker/brighter cheek luma"`
	// MinFaceScore is the detector score from which a face counts (8).
	MinFaceScore float64 `config:"min-face-score" json:"min_face_score" usage:"detector score from which a face counts"`
	// SearchSize is the longer side frames are shrunk to for the face
	// search (320); faces are located at full resolution afterwards.
	SearchSize int `config:"search-size" json:"search_size" usage:"longer side of the face search image"`
	// Mandatory names the criteria an acceptable photo must meet; the
	// others are optional. Default: every criterion but eyes-open,
	// background and lighting (DOMAIN.md §1).
	Mandatory []string `config:"mandatory" json:"mandatory" usage:"criteria a photo must meet"`
	// Mirrored says the preview is shown mirrored, so "left" and "right"
	// guidance follow the picture rather than the citizen's body.
	Mirrored bool `config:"mirrored" json:"mirrored" usage:"guidance for a mirrored preview"`
}

// DefaultConfig returns the rules of DOMAIN.md §1.
func DefaultConfig() Config {
	return Config{
		OutputWidth: 1244, OutputHeight: 1600, JPEGQuality: 100,
		HeadWidth:           Range{0.5, 0.75},
		HeadHeight:          Range{0.6, 0.9},
		EyePosition:         Range{0.3, 0.5},
		Centre:              Range{0.45, 0.55},
		MinEyeDistance:      300,
		MaxRoll:             8,
		MinEyesOpen:         0.45,
		MaxMouthOpening:     0.12,
		Exposure:            Range{70, 220},
		MinSharpness:        40,
		MinChroma:           3,
		Background:          Range{0xA1, 0xE1},
		BackgroundMaxSpread: 12,
		MinBackground:       0.8,
		MinLighting:         0.75,
		MinFaceScore:        8,
		SearchSize:          320,
		Mandatory: []string{CheckFaces, CheckImageSize, CheckHeadWidth, CheckHeadHeight, CheckEyePosition,
			CheckCentre, CheckEyeDistance, CheckRoll, CheckMouthClosed, CheckExposure, CheckSharpness,
			CheckColourSpace},
	}
}

// Validate reports a rule out of range, naming the setting.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf("photo config: "+format, a...)) }
	if c.OutputWidth < 16 || c.OutputHeight < 16 || c.OutputWidth > 8192 || c.OutputHeight > 8192 {
		bad("output size %dx%d: each side must be 16 to 8192", c.OutputWidth, c.OutputHeight)
	}
	if c.JPEGQuality < 1 || c.JPEGQuality > 100 {
		bad("jpeg-quality %d: must be 1 to 100", c.JPEGQuality)
	}
	if (c.CaptureWidth == 0) != (c.CaptureHeight == 0) || c.CaptureWidth < 0 || c.CaptureHeight < 0 {
		bad("capture mode %dx%d: set both sides, or neither", c.CaptureWidth, c.CaptureHeight)
	} else if c.CaptureWidth > 0 {
		if err := c.CheckCameraMode(c.CaptureWidth, c.CaptureHeight); err != nil {
			errs = append(errs, err)
		}
	}
	for _, r := range []struct {
		name   string
		r      Range
		lo, hi float64
	}{
		{"head-width", c.HeadWidth, 0.05, 1}, {"head-height", c.HeadHeight, 0.05, 1},
		{"eye-position", c.EyePosition, 0, 1}, {"centre", c.Centre, 0, 1},
		{"exposure", c.Exposure, 0, 255}, {"background", c.Background, 0, 255},
	} {
		if !r.r.valid() || r.r.Min < r.lo || r.r.Max > r.hi {
			bad("%s %g–%g: want min ≤ max within %g–%g", r.name, r.r.Min, r.r.Max, r.lo, r.hi)
		}
	}
	for _, v := range []struct {
		name   string
		v      float64
		lo, hi float64
	}{
		{"min-eye-distance", c.MinEyeDistance, 0, float64(c.OutputWidth)},
		{"max-roll", c.MaxRoll, 0, 45},
		{"min-eyes-open", c.MinEyesOpen, 0, 1},
		{"max-mouth-opening", c.MaxMouthOpening, 0, 5},
		{"min-sharpness", c.MinSharpness, 0, 1e6},
		{"min-chroma", c.MinChroma, 0, 128},
		{"background-max-spread", c.BackgroundMaxSpread, 0, 255},
		{"min-background", c.MinBackground, 0, 1},
		{"min-lighting", c.MinLighting, 0, 1},
		{"min-face-score", c.MinFaceScore, 0, 1e6},
	} {
		if v.v < v.lo || v.v > v.hi || v.v != v.v {
			bad("%s %g: must be %g to %g", v.name, v.v, v.lo, v.hi)
		}
	}
	if c.SearchSize < 64 || c.SearchSize > 4096 {
		bad("search-size %d: must be 64 to 4096", c.SearchSize)
	}
	for _, m := range c.Mandatory {
		if !slices.Contains(allChecks, m) {
			bad("mandatory criterion %q unknown; known: %v", m, allChecks)
		}
	}
	return errors.Join(errs...)
}

// ErrCameraTooSmall is wrapped by CheckCameraMode's error.
var ErrCameraTooSmall = errors.New("camera mode too small for the photo")

// CheckCameraMode reports whether a camera mode of w×h can ever yield the
// photo without upscaling: the crop region must be at least
// OutputWidth×OutputHeight camera pixels. Call it at start with the
// negotiated capture mode; the error says what to configure.
func (c Config) CheckCameraMode(w, h int) error {
	if w >= c.OutputWidth && h >= c.OutputHeight {
		return nil
	}
	return fmt.Errorf("%w: %dx%d cannot give a %dx%d photo without upscaling; configure a capture mode at least %d wide and %d high (for example 2592x1944)",
		ErrCameraTooSmall, w, h, c.OutputWidth, c.OutputHeight, c.OutputWidth, c.OutputHeight)
}
