package photo

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"math"
)

// ErrUpscale is wrapped by Crop's error when the region is smaller than the
// photo: the citizen stood too far, or the camera mode is too small.
var ErrUpscale = errors.New("crop region smaller than the photo; it is never upscaled")

// Crop cuts region (Assessment.Region of this frame) out of frame, scales
// it down to OutputWidth×OutputHeight with an exact area average, and
// encodes it as a baseline JPEG at JPEGQuality (100 by default). Go's
// encoder writes JFIF YCbCr with 4:2:0 chroma, which viewers read as sRGB.
func (c *Checker) Crop(frame image.Image, region image.Rectangle) ([]byte, error) {
	img, err := c.CropImage(frame, region)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: c.cfg.JPEGQuality}); err != nil {
		return nil, fmt.Errorf("encode photo: %w", err)
	}
	return buf.Bytes(), nil
}

// CropImage is Crop without the encoding: the photo as 8-bit RGB.
func (c *Checker) CropImage(frame image.Image, region image.Rectangle) (*image.RGBA, error) {
	ow, oh := c.cfg.OutputWidth, c.cfg.OutputHeight
	switch {
	case region.Empty():
		return nil, errors.New("crop photo: no region; crop only a frame Assess found one face in")
	case !region.In(frame.Bounds()):
		return nil, fmt.Errorf("crop photo: region %v outside the frame %v; crop the frame that was assessed", region, frame.Bounds())
	case region.Dx() < ow || region.Dy() < oh:
		return nil, fmt.Errorf("crop photo: region %dx%d for a %dx%d photo: %w", region.Dx(), region.Dy(), ow, oh, ErrUpscale)
	}
	return resample(frame, region, ow, oh), nil
}

// span is the share (weight, summing to 1) of source pixel i in one target
// pixel.
type span struct {
	i int
	w float64
}

// spans maps n source pixels onto m ≤ n target pixels, each target pixel
// averaging exactly the source area it covers.
func spans(n, m int) [][]span {
	k := float64(n) / float64(m)
	out := make([][]span, m)
	for t := range m {
		a, b := float64(t)*k, float64(t+1)*k
		for i := int(a); i < n && float64(i) < b; i++ {
			w := math.Min(b, float64(i+1)) - math.Max(a, float64(i))
			if w > 1e-9 {
				out[t] = append(out[t], span{i, w / k})
			}
		}
	}
	return out
}

// resample scales region of src down to w×h. Each source row is reduced
// horizontally once and added, weighted, to the one or two target rows it
// covers.
func resample(src image.Image, region image.Rectangle, w, h int) *image.RGBA {
	out := image.NewRGBA(image.Rect(0, 0, w, h))
	sw, sh := region.Dx(), region.Dy()
	cols, rows := spans(sw, w), spans(sh, h)
	// rowOf lists, per source row, the target rows and weights.
	type share struct {
		t int
		w float64
	}
	rowOf := make([][]share, sh)
	for t, ss := range rows {
		for _, s := range ss {
			rowOf[s.i] = append(rowOf[s.i], share{t, s.w})
		}
	}
	line := make([]uint8, 3*sw)
	small := make([]float64, 3*w)
	acc := map[int][]float64{}
	for sy := range sh {
		y := region.Min.Y + sy
		for sx := range sw {
			line[3*sx], line[3*sx+1], line[3*sx+2] = rgbAt(src, region.Min.X+sx, y)
		}
		for t, ss := range cols {
			var r, g, b float64
			for _, s := range ss {
				r += s.w * float64(line[3*s.i])
				g += s.w * float64(line[3*s.i+1])
				b += s.w * float64(line[3*s.i+2])
			}
			small[3*t], small[3*t+1], small[3*t+2] = r, g, b
		}
		for _, s := range rowOf[sy] {
			a := acc[s.t]
			if a == nil {
				a = make([]float64, 3*w)
				acc[s.t] = a
			}
			for i, v := range small {
				a[i] += s.w * v
			}
		}
		// Target rows no later source row adds to are done.
		for t, a := range acc {
			if (t+1)*sh <= (sy+1)*h {
				px := out.Pix[t*out.Stride:]
				for x := range w {
					px[4*x] = uint8(math.Min(255, a[3*x]+0.5))
					px[4*x+1] = uint8(math.Min(255, a[3*x+1]+0.5))
					px[4*x+2] = uint8(math.Min(255, a[3*x+2]+0.5))
					px[4*x+3] = 0xFF
				}
				delete(acc, t)
			}
		}
	}
	return out
}
