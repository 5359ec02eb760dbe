// Package signature turns the pen strokes of a citizen's signature, drawn
// on the kiosk's touch area or a signature pad, into the PNG image the
// application record carries beside the strokes themselves.
//
// Strokes are checked first: an empty signature, one too short to be a
// signature (too few points, or a dot), coordinates outside the drawing
// area and more strokes or points than an application record holds are
// refused with an error that wraps one of the sentinels below, so that
// the kiosk can ask the citizen to sign again.
//
// The image is 8-bit grey, black ink on white, of a fixed size (800 × 300
// by default). The strokes are drawn as anti-aliased lines of a fixed
// width with round ends and joins, scaled with their aspect ratio kept
// and centred: either the ink's bounding box with a margin (Crop, the
// default) or the whole drawing area. Pressure is kept in the stroke data
// but does not change the line width.
package signature

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/png"
	"math"

	"github.com/kogge-fleet/kogge/protocol/casefile"
)

// Point is one sample of a stroke in the drawing area's coordinates (0 ≤
// X < width, 0 ≤ Y < height, Y downwards); T is milliseconds since the
// stroke began, P the pressure (0 when unknown).
type Point struct {
	X, Y int
	T    uint32
	P    uint16
}

// Errors a caller acts on; the returned errors wrap them with details.
var (
	// ErrEmpty: nothing was drawn. Ask the citizen to sign.
	ErrEmpty = errors.New("the signature is empty")
	// ErrTooShort: too few points, or the ink spans too little of the
	// area, to be a signature. Ask the citizen to sign again.
	ErrTooShort = errors.New("the signature is too short")
	// ErrOutOfRange: a point lies outside the drawing area. The input
	// device or the UI reports bad coordinates.
	ErrOutOfRange = errors.New("a signature point lies outside the drawing area")
	// ErrTooLarge: more strokes or points than an application record
	// holds.
	ErrTooLarge = errors.New("the signature has too many strokes or points")
	// ErrArea: the drawing area's size is not usable.
	ErrArea = errors.New("the signature area's size is invalid")
)

// MaxArea is the largest drawing area side; the application record
// stores coordinates as 16-bit numbers.
const MaxArea = math.MaxUint16

// Options configure the checks and the image. The zero value is not
// valid; start from DefaultOptions.
type Options struct {
	// Width and Height are the image's size in pixels (800 × 300).
	Width  int `config:"width"`
	Height int `config:"height"`
	// Crop fits the ink's bounding box into the image; false fits the
	// whole drawing area (true).
	Crop bool `config:"crop"`
	// Margin is the white border around the ink when cropping, in image
	// pixels (12).
	Margin int `config:"margin"`
	// Pen is the line width in image pixels (3.5).
	Pen float64 `config:"pen"`
	// MinPoints is the fewest points, over all strokes, a signature has
	// (10).
	MinPoints int `config:"min-points"`
	// MinExtent is the least share (0–1) of the area's width or height
	// the ink must span (0.05).
	MinExtent float64 `config:"min-extent"`
	// MaxStrokes and MaxPoints bound the input (those of the
	// application record: 512 strokes, 65536 points).
	MaxStrokes int `config:"max-strokes"`
	MaxPoints  int `config:"max-points"`
}

// DefaultOptions returns the defaults named in Options.
func DefaultOptions() Options {
	return Options{Width: 800, Height: 300, Crop: true, Margin: 12, Pen: 3.5, MinPoints: 10, MinExtent: 0.05,
		MaxStrokes: casefile.MaxStrokes, MaxPoints: casefile.MaxPoints}
}

// Validate reports a setting out of range.
func (o Options) Validate() error {
	var errs []error
	if o.Width < 16 || o.Height < 16 || o.Width > 4096 || o.Height > 4096 {
		errs = append(errs, fmt.Errorf("signature image of %d×%d pixels: give 16–4096 pixels a side (800×300)", o.Width, o.Height))
	}
	if !(o.Pen >= 0.5 && o.Pen <= 64) {
		errs = append(errs, fmt.Errorf("signature pen width %g: give 0.5–64 pixels (3.5)", o.Pen))
	}
	if o.Margin < 0 || 2*float64(o.Margin)+o.Pen >= float64(min(o.Width, o.Height))/2 {
		errs = append(errs, fmt.Errorf("signature margin %d with pen width %g: margins and pen must take less than half the image's smaller side (12)", o.Margin, o.Pen))
	}
	if o.MinPoints < 1 {
		errs = append(errs, fmt.Errorf("signature min-points %d: give at least 1 (10)", o.MinPoints))
	}
	if !(o.MinExtent >= 0 && o.MinExtent <= 1) {
		errs = append(errs, fmt.Errorf("signature min-extent %g: give a share of the area in [0, 1] (0.05)", o.MinExtent))
	}
	if o.MaxStrokes < 1 || o.MaxStrokes > casefile.MaxStrokes {
		errs = append(errs, fmt.Errorf("signature max-strokes %d: give 1–%d", o.MaxStrokes, casefile.MaxStrokes))
	}
	if o.MaxPoints < o.MinPoints || o.MaxPoints > casefile.MaxPoints {
		errs = append(errs, fmt.Errorf("signature max-points %d: give min-points–%d", o.MaxPoints, casefile.MaxPoints))
	}
	return errors.Join(errs...)
}

// Renderer checks and renders signatures. It is safe for concurrent use.
type Renderer struct {
	opts Options
}

// New returns a Renderer for opts.
func New(opts Options) (*Renderer, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	return &Renderer{opts: opts}, nil
}

// Options returns the settings the Renderer runs with.
func (r *Renderer) Options() Options { return r.opts }

// Check validates strokes drawn on a w × h area; the error wraps one of
// ErrArea, ErrEmpty, ErrTooLarge, ErrOutOfRange and ErrTooShort.
func (r *Renderer) Check(strokes [][]Point, w, h int) error {
	_, err := r.check(strokes, w, h)
	return err
}

// bbox is the ink's bounding box in area coordinates, inclusive.
type bbox struct{ x0, y0, x1, y1 int }

func (r *Renderer) check(strokes [][]Point, w, h int) (bbox, error) {
	if w < 1 || h < 1 || w > MaxArea || h > MaxArea {
		return bbox{}, fmt.Errorf("%w: %d×%d; each side must be 1–%d", ErrArea, w, h, MaxArea)
	}
	if len(strokes) > r.opts.MaxStrokes {
		return bbox{}, fmt.Errorf("%w: %d strokes, at most %d", ErrTooLarge, len(strokes), r.opts.MaxStrokes)
	}
	n := 0
	for _, s := range strokes {
		n += len(s)
	}
	if n == 0 {
		return bbox{}, ErrEmpty
	}
	if n > r.opts.MaxPoints {
		return bbox{}, fmt.Errorf("%w: %d points, at most %d", ErrTooLarge, n, r.opts.MaxPoints)
	}
	b := bbox{x0: w, y0: h, x1: -1, y1: -1}
	for i, s := range strokes {
		for j, p := range s {
			if p.X < 0 || p.Y < 0 || p.X >= w || p.Y >= h {
				return bbox{}, fmt.Errorf("%w: stroke %d, point %d at (%d, %d) on a %d×%d area", ErrOutOfRange, i+1, j+1, p.X, p.Y, w, h)
			}
			b.x0, b.y0 = min(b.x0, p.X), min(b.y0, p.Y)
			b.x1, b.y1 = max(b.x1, p.X), max(b.y1, p.Y)
		}
	}
	if n < r.opts.MinPoints {
		return bbox{}, fmt.Errorf("%w: %d points, at least %d are needed", ErrTooShort, n, r.opts.MinPoints)
	}
	ex, ey := float64(b.x1-b.x0+1)/float64(w), float64(b.y1-b.y0+1)/float64(h)
	if max(ex, ey) < r.opts.MinExtent {
		return bbox{}, fmt.Errorf("%w: the ink spans %.0f %% × %.0f %% of the area, at least %.0f %% of its width or height is needed",
			ErrTooShort, 100*ex, 100*ey, 100*r.opts.MinExtent)
	}
	return b, nil
}

// Render checks strokes drawn on a w × h area and returns the signature
// as an 8-bit grey PNG.
func (r *Renderer) Render(strokes [][]Point, w, h int) ([]byte, error) {
	img, err := r.Draw(strokes, w, h)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	var enc png.Encoder
	if err := enc.Encode(&buf, img); err != nil {
		return nil, fmt.Errorf("encode signature png: %w", err)
	}
	return buf.Bytes(), nil
}

// Draw checks strokes drawn on a w × h area and draws them.
func (r *Renderer) Draw(strokes [][]Point, w, h int) (*image.Gray, error) {
	b, err := r.check(strokes, w, h)
	if err != nil {
		return nil, fmt.Errorf("signature: %w", err)
	}
	o := r.opts
	W, H := float64(o.Width), float64(o.Height)
	rad := o.Pen / 2
	// The region of the area to show: a point stands for the unit cell
	// it names, so its centre is at +0.5.
	rx0, ry0, rw, rh := 0.0, 0.0, float64(w), float64(h)
	pad := 0.0
	if o.Crop {
		rx0, ry0 = float64(b.x0), float64(b.y0)
		rw, rh = float64(b.x1-b.x0+1), float64(b.y1-b.y0+1)
		pad = float64(o.Margin) + rad
	}
	s := math.Min((W-2*pad)/rw, (H-2*pad)/rh)
	ox := (W-s*rw)/2 - s*rx0
	oy := (H-s*rh)/2 - s*ry0
	ink := make([]float32, o.Width*o.Height)
	for _, st := range strokes {
		for i := range st {
			p := st[i]
			q := p
			if i+1 < len(st) {
				q = st[i+1]
			} else if i > 0 {
				continue // the last point ends the previous segment
			}
			segment(ink, o.Width, o.Height,
				ox+s*(float64(p.X)+0.5), oy+s*(float64(p.Y)+0.5),
				ox+s*(float64(q.X)+0.5), oy+s*(float64(q.Y)+0.5), rad)
		}
	}
	img := image.NewGray(image.Rect(0, 0, o.Width, o.Height))
	for i, c := range ink {
		img.Pix[i] = uint8(math.Round(255 * (1 - float64(c))))
	}
	return img, nil
}

// segment inks the pixels within rad of the segment from (ax, ay) to
// (bx, by), anti-aliased over one pixel, keeping the darker of the old
// and new coverage so that joins are not darker than lines.
func segment(ink []float32, w, h int, ax, ay, bx, by, rad float64) {
	x0 := max(int(math.Floor(min(ax, bx)-rad-1)), 0)
	x1 := min(int(math.Ceil(max(ax, bx)+rad+1)), w-1)
	y0 := max(int(math.Floor(min(ay, by)-rad-1)), 0)
	y1 := min(int(math.Ceil(max(ay, by)+rad+1)), h-1)
	dx, dy := bx-ax, by-ay
	l2 := dx*dx + dy*dy
	for y := y0; y <= y1; y++ {
		py := float64(y) + 0.5
		for x := x0; x <= x1; x++ {
			px := float64(x) + 0.5
			t := 0.0
			if l2 > 0 {
				t = min(max(((px-ax)*dx+(py-ay)*dy)/l2, 0), 1)
			}
			d := math.Hypot(px-ax-t*dx, py-ay-t*dy)
			c := float32(min(max(rad+0.5-d, 0), 1))
			if i := y*w + x; c > ink[i] {
				ink[i] = c
			}
		}
	}
}
