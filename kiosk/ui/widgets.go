package ui

import (
	"image"
	"image/color"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/widget"
)

// buttonKind is a button's role, which sets its colours.
type buttonKind int

const (
	kindPrimary   buttonKind = iota // the step's main action: white on dark blue
	kindSecondary                   // another action: black on white, outlined
	kindDanger                      // cancel: white on dark red
	kindChoice                      // a choice that stays selected (language, document)
)

// button is a large touch target with a wrapped label. It is at least
// minTarget in both directions and as wide as the screen asks.
type button struct {
	widget.BaseWidget
	label    string
	kind     buttonKind
	textSize float32
	rtl      bool
	selected bool // kindChoice: chosen, drawn filled with a ticked box
	disabled bool
	width    float32 // preferred width; the label wraps inside it
	height   float32 // preferred height (at least minTarget)
	onTap    func()
	measures map[measureKey]fyne.Size // shared measurement cache, or nil
}

func newButton(label string, kind buttonKind, textSize float32, rtl bool, width float32, onTap func()) *button {
	b := &button{label: label, kind: kind, textSize: textSize, rtl: rtl, width: width, height: minTarget, onTap: onTap}
	b.ExtendBaseWidget(b)
	return b
}

// Tapped runs the button's action unless it is disabled.
func (b *button) Tapped(*fyne.PointEvent) {
	if !b.disabled && b.onTap != nil {
		b.onTap()
	}
}

func (b *button) colors() (bg, fg, stroke color.Color) {
	switch {
	case b.disabled:
		return colDisabled, colDisabledFg, colDisabledFg
	case b.kind == kindPrimary:
		return colPrimary, colOnDark, colPrimary
	case b.kind == kindDanger:
		return colDanger, colOnDark, colDanger
	case b.kind == kindChoice && b.selected:
		return colPrimary, colOnDark, colText
	}
	return colBackground, colText, colText
}

const checkSize = 40 // the tick box of a choice button

func (b *button) CreateRenderer() fyne.WidgetRenderer {
	bg := canvas.NewRectangle(colBackground)
	bg.StrokeWidth = border
	bg.CornerRadius = radius
	inner := max(b.width-2*pad, 0)
	if b.kind == kindChoice {
		inner = max(inner-checkSize-gap, 0)
	}
	lbl := newText(b.label, b.textSize, true, b.rtl, inner)
	if b.measures != nil {
		lbl.m.cache = b.measures
	}
	lbl.align = alignCenter
	if b.kind == kindChoice {
		lbl.align = alignStart
	}
	r := &buttonRenderer{b: b, bg: bg, label: lbl}
	if b.kind == kindChoice {
		r.box = canvas.NewRectangle(colBackground)
		r.box.StrokeWidth = border
		r.box.StrokeColor = colText
		r.tick1 = canvas.NewLine(colPrimary)
		r.tick2 = canvas.NewLine(colPrimary)
		r.tick1.StrokeWidth, r.tick2.StrokeWidth = 6, 6
	}
	r.Refresh()
	return r
}

type buttonRenderer struct {
	b            *button
	bg           *canvas.Rectangle
	label        *textBox
	box          *canvas.Rectangle
	tick1, tick2 *canvas.Line
}

func (r *buttonRenderer) Destroy() {}

func (r *buttonRenderer) Objects() []fyne.CanvasObject {
	objs := []fyne.CanvasObject{r.bg, r.label}
	if r.box != nil {
		objs = append(objs, r.box, r.tick1, r.tick2)
	}
	return objs
}

func (r *buttonRenderer) MinSize() fyne.Size {
	ls := r.label.MinSize()
	w := ls.Width + 2*pad
	if r.box != nil {
		w += checkSize + gap
	}
	return fyne.NewSize(max(w, r.b.width, minTarget), max(ls.Height+2*gap, r.b.height, minTarget))
}

func (r *buttonRenderer) Layout(size fyne.Size) {
	r.bg.Resize(size)
	inset := float32(pad)
	lw := size.Width - 2*inset
	lx := inset
	if r.box != nil {
		lw -= checkSize + gap
		bx := inset
		if r.b.rtl {
			bx = size.Width - inset - checkSize
		} else {
			lx += checkSize + gap
		}
		by := (size.Height - checkSize) / 2
		r.box.Move(fyne.NewPos(bx, by))
		r.box.Resize(fyne.NewSize(checkSize, checkSize))
		// A tick: short stroke down, long stroke up.
		r.tick1.Position1 = fyne.NewPos(bx+8, by+checkSize/2)
		r.tick1.Position2 = fyne.NewPos(bx+checkSize*0.42, by+checkSize-9)
		r.tick2.Position1 = r.tick1.Position2
		r.tick2.Position2 = fyne.NewPos(bx+checkSize-7, by+8)
	}
	ls := r.label.MinSize()
	r.label.Move(fyne.NewPos(lx, (size.Height-ls.Height)/2))
	r.label.Resize(fyne.NewSize(lw, ls.Height))
}

func (r *buttonRenderer) Refresh() {
	bg, fg, stroke := r.b.colors()
	r.bg.FillColor, r.bg.StrokeColor = bg, stroke
	r.label.color = fg
	r.label.Refresh()
	if r.box != nil {
		r.tick1.Hidden = !r.b.selected
		r.tick2.Hidden = !r.b.selected
	}
	r.Layout(r.b.Size())
	canvas.Refresh(r.b)
}

// setDisabled changes whether the button reacts and redraws it.
func (b *button) setDisabled(d bool) {
	b.disabled = d
	b.Refresh()
}

// tapArea is an invisible (or coloured) area that reports taps, behind
// other controls: the welcome screen's "touch anywhere", the timeout
// warning's backdrop.
type tapArea struct {
	widget.BaseWidget
	fill  color.Color
	onTap func()
	min   fyne.Size
}

func newTapArea(fill color.Color, min fyne.Size, onTap func()) *tapArea {
	a := &tapArea{fill: fill, onTap: onTap, min: min}
	a.ExtendBaseWidget(a)
	return a
}

// Tapped reports the tap.
func (a *tapArea) Tapped(*fyne.PointEvent) {
	if a.onTap != nil {
		a.onTap()
	}
}

func (a *tapArea) MinSize() fyne.Size { return a.min }

func (a *tapArea) CreateRenderer() fyne.WidgetRenderer {
	fill := a.fill
	if fill == nil {
		fill = color.Transparent
	}
	return widget.NewSimpleRenderer(canvas.NewRectangle(fill))
}

// progressBar shows how many of the citizen's steps are done; it fills
// from the start side of the language.
type progressBar struct {
	widget.BaseWidget
	done, total int
	rtl         bool
}

func newProgressBar(done, total int, rtl bool) *progressBar {
	p := &progressBar{done: done, total: total, rtl: rtl}
	p.ExtendBaseWidget(p)
	return p
}

func (p *progressBar) fraction() float32 {
	if p.total <= 0 {
		return 0
	}
	return min(max(float32(p.done)/float32(p.total), 0), 1)
}

func (p *progressBar) CreateRenderer() fyne.WidgetRenderer {
	track := canvas.NewRectangle(colTrack)
	track.StrokeColor = colText
	track.StrokeWidth = 2
	track.CornerRadius = 6
	fill := canvas.NewRectangle(colPrimary)
	fill.CornerRadius = 6
	return &progressRenderer{p: p, track: track, fill: fill}
}

type progressRenderer struct {
	p           *progressBar
	track, fill *canvas.Rectangle
}

func (r *progressRenderer) Destroy()                     {}
func (r *progressRenderer) Objects() []fyne.CanvasObject { return []fyne.CanvasObject{r.track, r.fill} }
func (r *progressRenderer) MinSize() fyne.Size           { return fyne.NewSize(minTarget, 20) }
func (r *progressRenderer) Refresh()                     { r.Layout(r.p.Size()); canvas.Refresh(r.p) }

func (r *progressRenderer) Layout(size fyne.Size) {
	r.track.Resize(size)
	w := size.Width * r.p.fraction()
	r.fill.Resize(fyne.NewSize(w, size.Height))
	if r.p.rtl {
		r.fill.Move(fyne.NewPos(size.Width-w, 0))
	} else {
		r.fill.Move(fyne.NewPos(0, 0))
	}
}

// tapImage is a photo to pick: the image, a caption, a thick outline.
type tapImage struct {
	widget.BaseWidget
	img     image.Image
	caption *textBox
	size    fyne.Size // of the image
	onTap   func()
}

func newTapImage(img image.Image, caption *textBox, size fyne.Size, onTap func()) *tapImage {
	t := &tapImage{img: img, caption: caption, size: size, onTap: onTap}
	t.ExtendBaseWidget(t)
	return t
}

// Tapped picks the image.
func (t *tapImage) Tapped(*fyne.PointEvent) {
	if t.onTap != nil {
		t.onTap()
	}
}

func (t *tapImage) CreateRenderer() fyne.WidgetRenderer {
	img := canvas.NewImageFromImage(t.img)
	img.FillMode = canvas.ImageFillContain
	img.ScaleMode = canvas.ImageScaleFastest
	frame := canvas.NewRectangle(colBackground)
	frame.StrokeColor = colText
	frame.StrokeWidth = border
	frame.CornerRadius = radius
	return &tapImageRenderer{t: t, img: img, frame: frame}
}

type tapImageRenderer struct {
	t     *tapImage
	img   *canvas.Image
	frame *canvas.Rectangle
}

func (r *tapImageRenderer) Destroy() {}
func (r *tapImageRenderer) Objects() []fyne.CanvasObject {
	return []fyne.CanvasObject{r.frame, r.img, r.t.caption}
}
func (r *tapImageRenderer) Refresh() { r.Layout(r.t.Size()); canvas.Refresh(r.t) }

func (r *tapImageRenderer) MinSize() fyne.Size {
	cs := r.t.caption.MinSize()
	return fyne.NewSize(max(r.t.size.Width, cs.Width)+2*gap, r.t.size.Height+cs.Height+3*gap)
}

func (r *tapImageRenderer) Layout(size fyne.Size) {
	r.frame.Resize(size)
	cs := r.t.caption.MinSize()
	r.img.Move(fyne.NewPos(gap, gap))
	r.img.Resize(fyne.NewSize(size.Width-2*gap, size.Height-cs.Height-3*gap))
	r.t.caption.Move(fyne.NewPos(gap, size.Height-cs.Height-gap))
	r.t.caption.Resize(fyne.NewSize(size.Width-2*gap, cs.Height))
}

// insetLayout lays its first object over the whole area (a background)
// and the others inset by p on every side.
type insetLayout struct{ p float32 }

func (l insetLayout) Layout(objs []fyne.CanvasObject, size fyne.Size) {
	for i, o := range objs {
		if i == 0 {
			o.Move(fyne.NewPos(0, 0))
			o.Resize(size)
			continue
		}
		o.Move(fyne.NewPos(l.p, l.p))
		o.Resize(fyne.NewSize(size.Width-2*l.p, size.Height-2*l.p))
	}
}

func (l insetLayout) MinSize(objs []fyne.CanvasObject) fyne.Size {
	var s fyne.Size
	for _, o := range objs[min(1, len(objs)):] {
		s = s.Max(o.MinSize())
	}
	return s.Add(fyne.NewSize(2*l.p, 2*l.p))
}

// boxed draws content on a filled, outlined panel.
func boxed(content fyne.CanvasObject, fill, stroke color.Color) *fyne.Container {
	bg := canvas.NewRectangle(fill)
	bg.StrokeColor = stroke
	bg.StrokeWidth = border
	bg.CornerRadius = radius
	return container.New(insetLayout{p: gap}, bg, content)
}

// fixedLayout gives its objects a fixed minimum size and stacks them.
type fixedLayout struct{ size fyne.Size }

func (l fixedLayout) Layout(objs []fyne.CanvasObject, size fyne.Size) {
	for _, o := range objs {
		o.Move(fyne.NewPos(0, 0))
		o.Resize(size)
	}
}

func (l fixedLayout) MinSize([]fyne.CanvasObject) fyne.Size { return l.size }

// handIcon draws a hand seen from above, lying on the scanner, with the
// index finger highlighted: the right hand has its thumb on the left.
func handIcon(right bool, unit float32) fyne.CanvasObject {
	part := func(x, y, w, h float32, hi bool) fyne.CanvasObject {
		r := canvas.NewRectangle(colTrack)
		if hi {
			r.FillColor = colPrimary
		}
		r.StrokeColor = colText
		r.StrokeWidth = 2
		r.CornerRadius = w * unit / 2
		if !right {
			x = 10 - x - w // mirror within a 10-unit-wide drawing
		}
		r.Move(fyne.NewPos(x*unit, y*unit))
		r.Resize(fyne.NewSize(w*unit, h*unit))
		return r
	}
	palm := canvas.NewRectangle(colTrack)
	palm.StrokeColor = colText
	palm.StrokeWidth = 2
	palm.CornerRadius = unit
	palm.Move(fyne.NewPos(1.8*unit, 5*unit))
	palm.Resize(fyne.NewSize(6.6*unit, 6*unit))
	objs := []fyne.CanvasObject{
		part(0.2, 6.2, 1.6, 3.4, false), // thumb
		part(2.0, 1.2, 1.5, 5.0, true),  // index
		part(3.7, 0.4, 1.5, 5.8, false), // middle
		part(5.4, 0.9, 1.5, 5.3, false), // ring
		part(7.1, 2.4, 1.3, 4.2, false), // little
		palm,
	}
	return container.New(fixedLayout{size: fyne.NewSize(10*unit, 11.5*unit)}, container.NewWithoutLayout(objs...))
}
