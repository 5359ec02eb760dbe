package photo

import (
	"fmt"
	"image"
	"sort"
)

// PlateFinder finds licence plates in an image.
type PlateFinder interface {
	// FindPlates returns the plates' rectangles in img's coordinates.
	FindPlates(img image.Image) []image.Rectangle
}

// PlateOptions tune the heuristic plate finder. The zero value means the
// defaults.
type PlateOptions struct {
	// WorkWidth is the width the image is shrunk to before the search
	// (1280 px); plates narrower than about 60 px at that width are not
	// found.
	WorkWidth int
	// EdgeThreshold is the grey-level step (0–255) between the left and
	// right neighbours of a pixel that counts as a vertical edge (48).
	EdgeThreshold int
	// MinHeight is the lowest character band searched for, in pixels at
	// the work width (8).
	MinHeight int
	// MinAspect and MaxAspect bound the width over the height of a
	// plate's character band (1.8 to 9).
	MinAspect, MaxAspect float64
	// MinBackground is the share of a candidate plate that must be plate
	// background, white or yellow (0.4).
	MinBackground float64
	// MinTransitions is how many changes between dark and light a line
	// through the middle of the characters must cross (6: three
	// characters).
	MinTransitions int
}

func (o PlateOptions) withDefaults() PlateOptions {
	if o.WorkWidth == 0 {
		o.WorkWidth = 1280
	}
	if o.EdgeThreshold == 0 {
		o.EdgeThreshold = 48
	}
	if o.MinHeight == 0 {
		o.MinHeight = 8
	}
	if o.MinAspect == 0 {
		o.MinAspect = 1.8
	}
	if o.MaxAspect == 0 {
		o.MaxAspect = 9
	}
	if o.MinBackground == 0 {
		o.MinBackground = 0.4
	}
	if o.MinTransitions == 0 {
		o.MinTransitions = 6
	}
	return o
}

// Validate checks the options; zero values are valid (the defaults).
func (o PlateOptions) Validate() error {
	d := o.withDefaults()
	switch {
	case d.WorkWidth < 160 || d.WorkWidth > 8192:
		return fmt.Errorf("plate finder: work width %d px: want 160 to 8192", d.WorkWidth)
	case d.EdgeThreshold < 1 || d.EdgeThreshold > 255:
		return fmt.Errorf("plate finder: edge threshold %d: want 1 to 255", d.EdgeThreshold)
	case d.MinHeight < 4:
		return fmt.Errorf("plate finder: minimum height %d px: want at least 4", d.MinHeight)
	case d.MinAspect < 1 || d.MaxAspect <= d.MinAspect:
		return fmt.Errorf("plate finder: aspect %g to %g: want 1 ≤ min < max", d.MinAspect, d.MaxAspect)
	case d.MinBackground < 0 || d.MinBackground > 1:
		return fmt.Errorf("plate finder: background share %g: want 0 to 1", d.MinBackground)
	case d.MinTransitions < 2:
		return fmt.Errorf("plate finder: transitions %d: want at least 2", d.MinTransitions)
	}
	return nil
}

// Plates is the heuristic plate finder. It looks for what makes a European
// licence plate stand out in a photo:
//
//  1. The image is shrunk to PlateOptions.WorkWidth and turned grey.
//  2. Characters make dense vertical edges: a pixel whose left and right
//     neighbours differ by EdgeThreshold or more is an edge.
//  3. Edges closer than 1 % of the width on one row are joined (a
//     horizontal closing), short runs dropped, and short vertical gaps
//     closed, so that a group of characters becomes one solid band.
//  4. Connected bands at least MinHeight high that fill at least 40 % of
//     their bounding box are joined with their neighbours on the same
//     line (district, letters, digits); a joined band whose width over
//     height lies in MinAspect..MaxAspect is a character band.
//  5. The band is widened by the usual margins of a plate (a whole plate
//     is about 4.7:1, 520×110 mm) and checked: at least MinBackground of
//     it is light and unsaturated (white) or yellow, 5–60 % is dark, and
//     lines through the middle of the band cross at least MinTransitions
//     changes between dark and light.
//  6. The plate found is grown outwards while the columns and rows next
//     to it are mostly white or yellow, and by the EU strip on the left,
//     so that the redaction covers all of it.
//
// It finds plates seen roughly from the front or the back, white or
// yellow, at least about 60 px wide at the work width. It does not read
// plates and misses plates seen at a steep angle, dirty or in deep shadow,
// and it may take other dark text on a white ground (signs, posters) for a
// plate: blurring those too is the safe side. A Plates is safe for
// concurrent use.
type Plates struct {
	opts PlateOptions
}

var _ PlateFinder = (*Plates)(nil)

// NewPlates returns the heuristic plate finder.
func NewPlates(opts PlateOptions) (*Plates, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	return &Plates{opts: opts.withDefaults()}, nil
}

// FindPlates returns the plates found in img, in img's coordinates.
func (p *Plates) FindPlates(img image.Image) []image.Rectangle {
	src, ok := img.(*image.RGBA)
	if !ok || src.Rect.Min != (image.Point{}) {
		src = toRGBA(img)
	}
	work := src
	if w := src.Rect.Dx(); w > p.opts.WorkWidth {
		work = resample(src, p.opts.WorkWidth, max(1, (src.Rect.Dy()*p.opts.WorkWidth+w/2)/w))
	}
	kx := float64(src.Rect.Dx()) / float64(work.Rect.Dx())
	ky := float64(src.Rect.Dy()) / float64(work.Rect.Dy())
	var out []image.Rectangle
	for _, r := range p.find(work) {
		out = append(out, image.Rect(int(float64(r.Min.X)*kx), int(float64(r.Min.Y)*ky),
			int(float64(r.Max.X)*kx+0.999), int(float64(r.Max.Y)*ky+0.999)).Add(img.Bounds().Min).Intersect(img.Bounds()))
	}
	return out
}

func (p *Plates) find(img *image.RGBA) []image.Rectangle {
	w, h := img.Rect.Dx(), img.Rect.Dy()
	if w < 16 || h < p.opts.MinHeight {
		return nil
	}
	grey := make([]uint8, w*h)
	for y := range h {
		row := img.Pix[y*img.Stride:]
		for x := range w {
			q := row[4*x:]
			grey[y*w+x] = uint8((299*int(q[0]) + 587*int(q[1]) + 114*int(q[2])) / 1000)
		}
	}
	var found []image.Rectangle
	for _, b := range p.bands(grey, w, h) {
		bw, bh := b.Dx(), b.Dy()
		aspect := float64(bw) / float64(bh)
		if aspect < p.opts.MinAspect || aspect > p.opts.MaxAspect {
			continue
		}
		plate := image.Rect(b.Min.X-bw*15/100, b.Min.Y-bh*30/100,
			b.Max.X+bw*8/100, b.Max.Y+bh*30/100).Intersect(img.Rect)
		if p.plateLike(img, grey, w, plate, b) {
			found = append(found, growPlate(img, plate, b))
		}
	}
	return merge(found)
}

// bands finds the character bands of a grey image (steps 2 to 4).
func (p *Plates) bands(grey []uint8, w, h int) []image.Rectangle {
	// Vertical edges, joined along the rows.
	gap := max(3, w/100)
	minRun := 4 // drops the single edges of object borders
	mask := make([]bool, w*h)
	for y := range h {
		g := grey[y*w : (y+1)*w]
		last, start := -1, -1
		flush := func() {
			if start >= 0 && last-start+1 >= minRun {
				for x := start; x <= last; x++ {
					mask[y*w+x] = true
				}
			}
		}
		for x := 1; x < w-1; x++ {
			d := int(g[x+1]) - int(g[x-1])
			if d < 0 {
				d = -d
			}
			if d < p.opts.EdgeThreshold {
				continue
			}
			if last < 0 || x-last > gap {
				flush()
				start = x
			}
			last = x
		}
		flush()
	}
	// Rows without vertical edges (the bar of an H) split a band: close
	// short vertical gaps too.
	vgap := max(3, h/150)
	for x := range w {
		last := -1
		for y := range h {
			if !mask[y*w+x] {
				continue
			}
			if last >= 0 && y-last > 1 && y-last <= vgap+1 {
				for k := last + 1; k < y; k++ {
					mask[k*w+x] = true
				}
			}
			last = y
		}
	}
	// Groups of characters (district, letters, digits) are separate
	// bands; join those side by side on one line.
	var bands []image.Rectangle
	for _, c := range components(mask, w, h) {
		if c.box.Dy() >= p.opts.MinHeight && float64(c.n) >= 0.4*float64(c.box.Dx()*c.box.Dy()) {
			bands = append(bands, c.box)
		}
	}
	return joinLines(bands)
}

// plateGround reports whether a pixel looks like a plate's ground: white
// (also in shade: light and unsaturated) or yellow.
func plateGround(q []uint8) bool {
	r, g, b := int(q[0]), int(q[1]), int(q[2])
	hi, lo := max(r, g, b), min(r, g, b)
	return lo >= 130 && hi-lo <= 50 || r >= 150 && g >= 120 && b <= 110 && r-b >= 80
}

// growPlate widens a plate rectangle to the plate's edges: outwards from
// the character band, every column (row) whose pixels are mostly plate
// ground belongs to the plate, up to one band width (height) further; then
// it adds the EU strip on the left.
func growPlate(img *image.RGBA, plate, band image.Rectangle) image.Rectangle {
	ground := func(x0, y0, x1, y1 int) bool { // half the pixels of the line
		var n, g int
		for y := y0; y < y1; y++ {
			for x := x0; x < x1; x++ {
				n++
				if plateGround(img.Pix[img.PixOffset(x, y):]) {
					g++
				}
			}
		}
		return n > 0 && 2*g >= n
	}
	b := img.Rect
	for x := band.Min.X - 1; x >= max(b.Min.X, band.Min.X-band.Dx()) && ground(x, band.Min.Y, x+1, band.Max.Y); x-- {
		plate.Min.X = min(plate.Min.X, x)
	}
	for x := band.Max.X; x < min(b.Max.X, band.Max.X+band.Dx()) && ground(x, band.Min.Y, x+1, band.Max.Y); x++ {
		plate.Max.X = max(plate.Max.X, x+1)
	}
	for y := band.Min.Y - 1; y >= max(b.Min.Y, band.Min.Y-band.Dy()) && ground(band.Min.X, y, band.Max.X, y+1); y-- {
		plate.Min.Y = min(plate.Min.Y, y)
	}
	for y := band.Max.Y; y < min(b.Max.Y, band.Max.Y+band.Dy()) && ground(band.Min.X, y, band.Max.X, y+1); y++ {
		plate.Max.Y = max(plate.Max.Y, y+1)
	}
	// The EU strip on the left is blue, not ground: it is about 40 % of
	// the plate's height wide.
	plate.Min.X = max(b.Min.X, plate.Min.X-plate.Dy()*45/100)
	return plate
}

// plateLike checks the colours and the character rhythm of a candidate.
func (p *Plates) plateLike(img *image.RGBA, grey []uint8, w int, plate, band image.Rectangle) bool {
	var bg, dark, n int
	for y := plate.Min.Y; y < plate.Max.Y; y++ {
		for x := plate.Min.X; x < plate.Max.X; x++ {
			if plateGround(img.Pix[img.PixOffset(x, y):]) {
				bg++
			}
			if grey[y*w+x] <= 90 {
				dark++
			}
			n++
		}
	}
	if n == 0 || float64(bg) < p.opts.MinBackground*float64(n) || dark*20 < n || dark*10 > 6*n {
		return false
	}
	// Transitions on three lines through the band's middle; the median
	// counts.
	var counts [3]int
	for i, f := range [3]int{40, 50, 60} {
		y := band.Min.Y + band.Dy()*f/100
		g := grey[y*w+band.Min.X : y*w+band.Max.X]
		lo, hi := uint8(255), uint8(0)
		for _, v := range g {
			lo, hi = min(lo, v), max(hi, v)
		}
		if int(hi)-int(lo) < p.opts.EdgeThreshold {
			continue
		}
		mid := uint8((int(lo) + int(hi)) / 2)
		prev := g[0] > mid
		for _, v := range g[1:] {
			if cur := v > mid; cur != prev {
				counts[i]++
				prev = cur
			}
		}
	}
	sort.Ints(counts[:])
	return counts[1] >= p.opts.MinTransitions
}

type component struct {
	box image.Rectangle
	n   int
}

// components labels the 8-connected regions of mask.
func components(mask []bool, w, h int) []component {
	seen := make([]bool, len(mask))
	var out []component
	var stack []int32
	for start, on := range mask {
		if !on || seen[start] {
			continue
		}
		c := component{box: image.Rect(start%w, start/w, start%w+1, start/w+1)}
		seen[start] = true
		stack = append(stack[:0], int32(start))
		for len(stack) > 0 {
			i := int(stack[len(stack)-1])
			stack = stack[:len(stack)-1]
			x, y := i%w, i/w
			c.n++
			c.box = c.box.Union(image.Rect(x, y, x+1, y+1))
			for dy := -1; dy <= 1; dy++ {
				for dx := -1; dx <= 1; dx++ {
					nx, ny := x+dx, y+dy
					if nx < 0 || ny < 0 || nx >= w || ny >= h {
						continue
					}
					j := ny*w + nx
					if mask[j] && !seen[j] {
						seen[j] = true
						stack = append(stack, int32(j))
					}
				}
			}
		}
		out = append(out, c)
	}
	return out
}

// joinLines joins bands that sit side by side on one line: they overlap
// vertically by at least 60 % of the lower one, their heights differ by
// less than half and the gap between them is at most 1.5 times the higher.
func joinLines(bs []image.Rectangle) []image.Rectangle {
	sameLine := func(a, b image.Rectangle) bool {
		lo, hi := min(a.Dy(), b.Dy()), max(a.Dy(), b.Dy())
		overlap := min(a.Max.Y, b.Max.Y) - max(a.Min.Y, b.Min.Y)
		gap := max(a.Min.X, b.Min.X) - min(a.Max.X, b.Max.X)
		return overlap*10 >= 6*lo && 2*hi < 3*lo && 2*gap <= 3*hi
	}
	for changed := true; changed; {
		changed = false
		for i := 0; i < len(bs) && !changed; i++ {
			for j := i + 1; j < len(bs); j++ {
				if sameLine(bs[i], bs[j]) {
					bs[i] = bs[i].Union(bs[j])
					bs = append(bs[:j], bs[j+1:]...)
					changed = true
					break
				}
			}
		}
	}
	return bs
}

// merge joins overlapping rectangles.
func merge(rs []image.Rectangle) []image.Rectangle {
	for changed := true; changed; {
		changed = false
		for i := 0; i < len(rs) && !changed; i++ {
			for j := i + 1; j < len(rs); j++ {
				if rs[i].Overlaps(rs[j]) {
					rs[i] = rs[i].Union(rs[j])
					rs = append(rs[:j], rs[j+1:]...)
					changed = true
					break
				}
			}
		}
	}
	return rs
}
