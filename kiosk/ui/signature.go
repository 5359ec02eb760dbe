package ui

import (
	"math"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/widget"

	"github.com/kogge-fleet/kogge/kiosk/flow"
)

// maxSignaturePoints bounds what one signature may collect; a real one
// has a few hundred points.
const maxSignaturePoints = 20000

// signatureInk is the pen the area draws with.
const signatureInk = 4

// signature is the strokes drawn so far. It lives in the UI, not in the
// drawing area, so that redrawing the screen (a timeout warning, a text
// size change) keeps what the citizen drew.
type signature struct {
	strokes [][]flow.Point
	drawing bool      // a stroke is in progress
	began   time.Time // when the current stroke began
	points  int
}

func (s *signature) clear() { *s = signature{} }

func (s *signature) empty() bool { return len(s.strokes) == 0 }

// signaturePad is the touch area the citizen signs on with a finger (or
// the mouse): drags become strokes of points with millisecond times.
type signaturePad struct {
	widget.BaseWidget
	sig      *signature
	now      func() time.Time
	size     fyne.Size
	hint     *textBox
	onChange func() // strokes were added or cleared
	onStroke func() // a stroke ended: the citizen is active
}

func newSignaturePad(sig *signature, now func() time.Time, size fyne.Size, hint *textBox) *signaturePad {
	p := &signaturePad{sig: sig, now: now, size: size, hint: hint}
	p.ExtendBaseWidget(p)
	return p
}

// area returns the drawing area's size in whole units, as SignatureDone
// reports it.
func (p *signaturePad) area() (w, h int) {
	s := p.Size()
	if s.IsZero() {
		s = p.size
	}
	return int(math.Round(float64(s.Width))), int(math.Round(float64(s.Height)))
}

func (p *signaturePad) point(pos fyne.Position) flow.Point {
	w, h := p.area()
	x := min(max(int(math.Round(float64(pos.X))), 0), w)
	y := min(max(int(math.Round(float64(pos.Y))), 0), h)
	ms := p.now().Sub(p.sig.began).Milliseconds()
	return flow.Point{X: x, Y: y, T: uint32(min(max(ms, 0), math.MaxUint32))}
}

func (p *signaturePad) add(pos fyne.Position) {
	if p.sig.points >= maxSignaturePoints {
		return
	}
	last := &p.sig.strokes[len(p.sig.strokes)-1]
	*last = append(*last, p.point(pos))
	p.sig.points++
}

// Dragged extends the current stroke, or begins one where the drag began.
func (p *signaturePad) Dragged(e *fyne.DragEvent) {
	if !p.sig.drawing {
		p.sig.drawing = true
		p.sig.began = p.now()
		p.sig.strokes = append(p.sig.strokes, nil)
		p.add(e.Position.Subtract(e.Dragged))
	}
	p.add(e.Position)
	p.Refresh()
	if p.onChange != nil {
		p.onChange()
	}
}

// DragEnd ends the stroke.
func (p *signaturePad) DragEnd() {
	if !p.sig.drawing {
		return
	}
	p.sig.drawing = false
	if p.onStroke != nil {
		p.onStroke()
	}
}

// Tapped makes a dot, as on the i of a name.
func (p *signaturePad) Tapped(e *fyne.PointEvent) {
	if p.sig.points >= maxSignaturePoints {
		return
	}
	p.sig.began = p.now()
	p.sig.strokes = append(p.sig.strokes, []flow.Point{p.point(e.Position)})
	p.sig.points++
	p.Refresh()
	if p.onChange != nil {
		p.onChange()
	}
	if p.onStroke != nil {
		p.onStroke()
	}
}

func (p *signaturePad) MinSize() fyne.Size { return p.size }

func (p *signaturePad) CreateRenderer() fyne.WidgetRenderer {
	bg := canvas.NewRectangle(colBackground)
	bg.StrokeColor = colText
	bg.StrokeWidth = border
	base := canvas.NewLine(colHint)
	base.StrokeWidth = 2
	r := &signatureRenderer{p: p, bg: bg, base: base}
	return r
}

type signatureRenderer struct {
	p       *signaturePad
	bg      *canvas.Rectangle
	base    *canvas.Line
	ink     []fyne.CanvasObject
	objects []fyne.CanvasObject
}

func (r *signatureRenderer) Destroy()           {}
func (r *signatureRenderer) MinSize() fyne.Size { return r.p.size }

func (r *signatureRenderer) Objects() []fyne.CanvasObject {
	r.objects = append(r.objects[:0], r.bg, r.base, r.p.hint)
	return append(r.objects, r.ink...)
}

func (r *signatureRenderer) Layout(size fyne.Size) {
	r.bg.Resize(size)
	y := size.Height * 0.75
	r.base.Position1 = fyne.NewPos(pad, y)
	r.base.Position2 = fyne.NewPos(size.Width-pad, y)
	hs := r.p.hint.MinSize()
	r.p.hint.Move(fyne.NewPos(pad, y+gap/2))
	r.p.hint.Resize(fyne.NewSize(size.Width-2*pad, hs.Height))
	r.draw()
}

// draw turns the strokes into line segments (a dot for a single point).
func (r *signatureRenderer) draw() {
	r.ink = r.ink[:0]
	for _, s := range r.p.sig.strokes {
		if len(s) == 1 {
			dot := canvas.NewCircle(colText)
			c := fyne.NewPos(float32(s[0].X), float32(s[0].Y))
			dot.Move(c.SubtractXY(signatureInk/2, signatureInk/2))
			dot.Resize(fyne.NewSquareSize(signatureInk))
			r.ink = append(r.ink, dot)
			continue
		}
		for i := 1; i < len(s); i++ {
			l := canvas.NewLine(colText)
			l.StrokeWidth = signatureInk
			l.Position1 = fyne.NewPos(float32(s[i-1].X), float32(s[i-1].Y))
			l.Position2 = fyne.NewPos(float32(s[i].X), float32(s[i].Y))
			r.ink = append(r.ink, l)
		}
	}
}

func (r *signatureRenderer) Refresh() {
	r.draw()
	canvas.Refresh(r.p)
}
