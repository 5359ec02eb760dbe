package camera

import (
	"fmt"
	"image"
	"image/color"
	_ "image/jpeg" // image files of the scene
	_ "image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// Face is a synthetic head: a shaded oval with hair, eyes, brows, a nose
// and a mouth, a neck and shoulders, drawn so that a face detector finds
// it.
type Face struct {
	// X and Y are the face's centre as fractions of the frame's width
	// and height.
	X, Y float64
	// Size is the face's height (brows to chin, about 0.88 of the head's
	// height with its hair) as a fraction of the frame's height.
	Size float64
	// Roll tilts the head by degrees, clockwise in the image (the eye on
	// the image's right goes down).
	Roll float64
	// EyesClosed and MouthOpen change the expression.
	EyesClosed, MouthOpen bool
}

// Step is a stretch of the script.
type Step struct {
	// Frames is how many frames the step lasts; 0 means for good (the
	// last step lasts for good anyway).
	Frames int
	// Faces at the step's start; To, if set (one per face), where they
	// are at its end: the faces move and grow or shrink in between.
	Faces []Face
	To    []Face
	// Light changes the brightness: -0.5 halves it, 0.5 adds half.
	Light float64
	// Blur is a box blur radius in pixels (out of focus, moving).
	Blur int
	// Defocus adds a box blur whose radius is this fraction of the
	// frame's height, so the frame is as blurred in every mode.
	Defocus float64
	// Sway moves the faces gently from side to side and up and down, by
	// this fraction of their size, as a live person does (about 1.3 s a
	// sway at 15 fps).
	Sway float64
}

// DefaultScript is one face, centred, upright and swaying gently, for
// good: a live citizen in front of the terminal. Its frames pass every
// mandatory check of kiosk/photo in [CaptureMode] and in [PreviewMode].
func DefaultScript() []Step {
	return []Step{{Faces: []Face{goodFace()}, Sway: 0.01}}
}

func goodFace() Face { return Face{X: 0.5, Y: 0.52, Size: 0.6} }

// Scenarios are scripts for the photo step's failure paths, by name: each
// starts with a few frames of a good face, then fails for good.
//
//	too-far      the citizen stands back: the photo would need upscaling
//	too-close    the head overflows the photo
//	off-centre   the citizen stands so far to one side the photo cannot
//	             be centred
//	two-faces    someone else is in the picture
//	dark         the light fails
//	bright       overexposed
//	blurred      out of focus
//	moving       moving fast: blurred and shifting
//	tilted       the head is tilted by 12°
//	eyes-closed  the eyes are closed
//	mouth-open   the mouth is open
//	no-face      the citizen left
func Scenarios() map[string][]Step {
	good := goodFace()
	with := func(f func(*Face)) Face {
		g := good
		f(&g)
		return g
	}
	lead := Step{Frames: 5, Faces: []Face{good}, Sway: 0.01}
	fail := func(st Step) []Step {
		if st.Sway == 0 {
			st.Sway = 0.01
		}
		return []Step{lead, st}
	}
	return map[string][]Step{
		"too-far":     fail(Step{Faces: []Face{with(func(f *Face) { f.Size = 0.3 })}}),
		"too-close":   fail(Step{Faces: []Face{with(func(f *Face) { f.Size, f.Y = 0.85, 0.55 })}}),
		"off-centre":  fail(Step{Faces: []Face{with(func(f *Face) { f.X = 0.2 })}}),
		"two-faces":   fail(Step{Faces: []Face{{X: 0.3, Y: 0.5, Size: 0.4}, {X: 0.72, Y: 0.5, Size: 0.38}}}),
		"dark":        fail(Step{Faces: []Face{good}, Light: -0.65}),
		"bright":      fail(Step{Faces: []Face{good}, Light: 0.4}),
		"blurred":     fail(Step{Faces: []Face{good}, Defocus: 0.008}),
		"moving":      fail(Step{Frames: 30, Faces: []Face{with(func(f *Face) { f.X = 0.4 })}, To: []Face{with(func(f *Face) { f.X = 0.6 })}, Defocus: 0.006}),
		"tilted":      fail(Step{Faces: []Face{with(func(f *Face) { f.Roll = 12 })}}),
		"eyes-closed": fail(Step{Faces: []Face{with(func(f *Face) { f.EyesClosed = true })}}),
		"mouth-open":  fail(Step{Faces: []Face{with(func(f *Face) { f.MouthOpen = true })}}),
		"no-face":     fail(Step{}),
	}
}

// scene renders frames of a script, from synthetic faces or from image
// files, and keeps the encoded frames that repeat.
type scene struct {
	script []Step
	files  []image.Image

	mu    sync.Mutex
	cache map[frameKey][]byte
}

// swayPeriod is the number of frames of one sway.
const swayPeriod = 20

// maxCached bounds the encoded frames a scene keeps (a sway's worth and
// some).
const maxCached = 32

// frameKey tells frames apart that look different: the script's step and
// how far into it, the sway's phase, the image file, and the size.
type frameKey struct {
	step        int
	t           float64
	phase, file int
	w, h        int
}

func (s *scene) key(n, w, h int) frameKey {
	i, st, t := s.atIndex(n)
	k := frameKey{step: i, t: t, w: w, h: h}
	if st.Sway != 0 {
		k.phase = n % swayPeriod
	}
	if len(s.files) > 0 {
		k.file = n % len(s.files)
	}
	return k
}

// encoded returns the frame for k from the cache, or encodes it with
// encode and keeps it.
func (s *scene) encoded(k frameKey, encode func() ([]byte, error)) ([]byte, error) {
	s.mu.Lock()
	b, ok := s.cache[k]
	s.mu.Unlock()
	if ok {
		return b, nil
	}
	b, err := encode()
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cache == nil || len(s.cache) >= maxCached {
		s.cache = map[frameKey][]byte{}
	}
	s.cache[k] = b
	return b, nil
}

// loadImages reads the PNG and JPEG files of dir, sorted by name.
func loadImages(dir string) ([]image.Image, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		switch strings.ToLower(filepath.Ext(e.Name())) {
		case ".png", ".jpg", ".jpeg":
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	var imgs []image.Image
	for _, n := range names {
		f, err := os.Open(filepath.Join(dir, n))
		if err != nil {
			return nil, err
		}
		img, _, err := image.Decode(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n, err)
		}
		imgs = append(imgs, img)
	}
	if len(imgs) == 0 {
		return nil, fmt.Errorf("no PNG or JPEG files in %s", dir)
	}
	return imgs, nil
}

// at returns the script's state at frame n: its step and how far into it.
func (s *scene) at(n int) (Step, float64) {
	_, st, t := s.atIndex(n)
	return st, t
}

// atIndex is at with the step's index.
func (s *scene) atIndex(n int) (int, Step, float64) {
	for i, st := range s.script {
		if st.Frames <= 0 || i == len(s.script)-1 || n < st.Frames {
			if st.Frames <= 0 {
				return i, st, 0
			}
			return i, st, min(float64(n)/float64(st.Frames), 1)
		}
		n -= st.Frames
	}
	return -1, Step{}, 0
}

// Render draws frame n of script at w×h, as the simulator streams it
// before JPEG encoding.
func Render(script []Step, n, w, h int) *image.RGBA {
	return (&scene{script: script}).render(n, w, h)
}

// render draws frame n at w × h.
func (s *scene) render(n, w, h int) *image.RGBA {
	st, t := s.at(n)
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	if len(s.files) > 0 {
		scaleInto(img, s.files[n%len(s.files)])
	} else {
		fill(img, color.RGBA{0xB4, 0xB4, 0xB4, 0xFF}) // the uniform grey of ID photos
		for i, f := range st.Faces {
			if i < len(st.To) {
				to := st.To[i]
				f.X, f.Y = f.X+(to.X-f.X)*t, f.Y+(to.Y-f.Y)*t
				f.Size, f.Roll = f.Size+(to.Size-f.Size)*t, f.Roll+(to.Roll-f.Roll)*t
			}
			if st.Sway != 0 {
				a := 2 * math.Pi * float64(n%swayPeriod) / swayPeriod
				f.X += st.Sway * f.Size * math.Sin(a) * float64(h) / float64(w)
				f.Y += st.Sway * f.Size * 0.5 * math.Sin(2*a)
			}
			drawFace(img, f)
		}
	}
	if st.Light != 0 {
		light(img, 1+st.Light)
	}
	if r := st.Blur + int(st.Defocus*float64(h)+0.5); r > 0 {
		img = blur(img, r)
	}
	return img
}

func fill(img *image.RGBA, c color.RGBA) {
	for i := 0; i < len(img.Pix); i += 4 {
		img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = c.R, c.G, c.B, c.A
	}
}

// scaleInto draws src scaled to dst's size, nearest neighbour.
func scaleInto(dst *image.RGBA, src image.Image) {
	db, sb := dst.Bounds(), src.Bounds()
	for y := range db.Dy() {
		sy := sb.Min.Y + y*sb.Dy()/db.Dy()
		for x := range db.Dx() {
			sx := sb.Min.X + x*sb.Dx()/db.Dx()
			r, g, b, _ := src.At(sx, sy).RGBA()
			i := y*dst.Stride + x*4
			dst.Pix[i], dst.Pix[i+1], dst.Pix[i+2], dst.Pix[i+3] = uint8(r>>8), uint8(g>>8), uint8(b>>8), 0xFF
		}
	}
}

// light scales every colour channel by k.
func light(img *image.RGBA, k float64) {
	for i := 0; i < len(img.Pix); i += 4 {
		for c := range 3 {
			v := float64(img.Pix[i+c]) * k
			img.Pix[i+c] = uint8(max(0, min(255, v)))
		}
	}
}

// blur is a separable box blur of radius r.
func blur(src *image.RGBA, r int) *image.RGBA {
	w, h := src.Bounds().Dx(), src.Bounds().Dy()
	tmp := image.NewRGBA(src.Bounds())
	pass := func(dst, s *image.RGBA, n, m int, idx func(a, b int) int) {
		for a := range m {
			for c := range 3 {
				sum, cnt := 0, 0
				for b := 0; b <= min(r, n-1); b++ {
					sum += int(s.Pix[idx(a, b)+c])
					cnt++
				}
				for b := range n {
					dst.Pix[idx(a, b)+c] = uint8(sum / cnt)
					if b+r+1 < n {
						sum += int(s.Pix[idx(a, b+r+1)+c])
						cnt++
					}
					if b-r >= 0 {
						sum -= int(s.Pix[idx(a, b-r)+c])
						cnt--
					}
				}
			}
			for b := range n {
				dst.Pix[idx(a, b)+3] = 0xFF
			}
		}
	}
	pass(tmp, src, w, h, func(y, x int) int { return y*src.Stride + x*4 })
	out := image.NewRGBA(src.Bounds())
	pass(out, tmp, h, w, func(x, y int) int { return y*src.Stride + x*4 })
	return out
}
