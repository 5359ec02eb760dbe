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
)

// Face is a synthetic face: an oval with hair, eyes and a mouth.
type Face struct {
	// X and Y are the face's centre as fractions of the frame's width
	// and height.
	X, Y float64
	// Size is the face's height as a fraction of the frame's height.
	Size float64
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
}

// DefaultScript is one face, centred and upright, for good.
func DefaultScript() []Step {
	return []Step{{Faces: []Face{{X: 0.5, Y: 0.45, Size: 0.55}}}}
}

// scene renders frames of a script, from synthetic faces or from image
// files.
type scene struct {
	script []Step
	files  []image.Image
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
	for i, st := range s.script {
		if st.Frames <= 0 || i == len(s.script)-1 || n < st.Frames {
			if st.Frames <= 0 {
				return st, 0
			}
			return st, min(float64(n)/float64(st.Frames), 1)
		}
		n -= st.Frames
	}
	return Step{}, 0
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
				f = Face{X: f.X + (to.X-f.X)*t, Y: f.Y + (to.Y-f.Y)*t, Size: f.Size + (to.Size-f.Size)*t}
			}
			drawFace(img, f)
		}
	}
	if st.Light != 0 {
		light(img, 1+st.Light)
	}
	if st.Blur > 0 {
		img = blur(img, st.Blur)
	}
	return img
}

// drawFace paints hair, the oval, eyes with pupils, brows and a mouth.
func drawFace(img *image.RGBA, f Face) {
	b := img.Bounds()
	fh := f.Size * float64(b.Dy())
	fw := fh * 0.74
	cx, cy := f.X*float64(b.Dx()), f.Y*float64(b.Dy())
	top := cy - fh/2
	ellipse(img, cx, cy-fh*0.08, fw*0.56, fh*0.56, color.RGBA{0x3B, 0x2A, 0x1E, 0xFF}) // hair
	ellipse(img, cx, cy, fw/2, fh/2, color.RGBA{0xE0, 0xBD, 0xA0, 0xFF})               // skin
	ey := top + fh*0.42
	for _, side := range []float64{-1, 1} {
		ex := cx + side*fw*0.2
		ellipse(img, ex, ey, fw*0.09, fh*0.035, color.RGBA{0xF5, 0xF5, 0xF0, 0xFF})
		ellipse(img, ex, ey, fh*0.025, fh*0.025, color.RGBA{0x30, 0x22, 0x18, 0xFF})
		ellipse(img, ex, ey-fh*0.07, fw*0.1, fh*0.012, color.RGBA{0x3B, 0x2A, 0x1E, 0xFF})
	}
	ellipse(img, cx, top+fh*0.62, fw*0.035, fh*0.06, color.RGBA{0xC8, 0x9E, 0x84, 0xFF}) // nose
	ellipse(img, cx, top+fh*0.77, fw*0.16, fh*0.025, color.RGBA{0x9E, 0x3B, 0x3B, 0xFF}) // mouth, closed
}

// ellipse fills the ellipse with centre (cx, cy) and radii rx, ry.
func ellipse(img *image.RGBA, cx, cy, rx, ry float64, c color.RGBA) {
	b := img.Bounds()
	if rx <= 0 || ry <= 0 {
		return
	}
	for y := max(b.Min.Y, int(cy-ry)); y <= min(b.Max.Y-1, int(cy+ry)+1); y++ {
		dy := (float64(y) + 0.5 - cy) / ry
		if dy*dy > 1 {
			continue
		}
		half := rx * math.Sqrt(1-dy*dy)
		x0, x1 := max(b.Min.X, int(cx-half+0.5)), min(b.Max.X-1, int(cx+half-0.5))
		row := img.Pix[(y-b.Min.Y)*img.Stride:]
		for x := x0; x <= x1; x++ {
			i := (x - b.Min.X) * 4
			row[i], row[i+1], row[i+2], row[i+3] = c.R, c.G, c.B, c.A
		}
	}
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
