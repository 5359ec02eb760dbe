package ui

import (
	"image/color"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/layout"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"
)

// minLayout gives its objects at least a minimum size and stacks them.
type minLayout struct{ min fyne.Size }

func (l minLayout) Layout(objs []fyne.CanvasObject, size fyne.Size) {
	for _, o := range objs {
		o.Move(fyne.NewPos(0, 0))
		o.Resize(size)
	}
}

func (l minLayout) MinSize(objs []fyne.CanvasObject) fyne.Size {
	m := l.min
	for _, o := range objs {
		m = m.Max(o.MinSize())
	}
	return m
}

// atLeast wraps o so that it is at least w×h.
func atLeast(o fyne.CanvasObject, w, h float32) fyne.CanvasObject {
	return container.New(minLayout{min: fyne.NewSize(w, h)}, o)
}

// button is a touch target at least minTarget high. kind is one of
// widget.HighImportance (primary, dark blue), widget.DangerImportance
// (dark red), widget.SuccessImportance (dark green) or
// widget.MediumImportance (grey, black text).
func button(label string, kind widget.Importance, tapped func()) *widget.Button {
	b := widget.NewButton(label, tapped)
	b.Importance = kind
	return b
}

// target wraps a button to the minimum touch size: minTarget high and at
// least minTargetWidth wide, so that three fit side by side on the phone
// (where the grid makes each about minTarget wide).
func target(b *widget.Button) fyne.CanvasObject { return atLeast(b, minTargetWidth, minTarget) }

// text is a canvas text of a size and style.
func text(s string, size float32, bold bool, c color.Color) *canvas.Text {
	t := canvas.NewText(s, c)
	t.TextSize = size
	t.TextStyle.Bold = bold
	return t
}

// title is a screen's heading.
func title(s string) fyne.CanvasObject { return text(s, textTitle, true, colText) }

// para is body text that wraps.
func para(s string) *widget.Label {
	l := widget.NewLabel(s)
	l.Wrapping = fyne.TextWrapWord
	return l
}

// caption is a field's name above it.
func caption(s string) fyne.CanvasObject { return text(s, textSmall, true, colDisabledFg) }

// badge is a status on a coloured ground: dark ground, white text.
func badge(s string, ground color.Color) fyne.CanvasObject {
	bg := canvas.NewRectangle(ground)
	bg.CornerRadius = 6
	t := text(" "+s+" ", textSmall, true, colOnDark)
	return container.NewStack(bg, container.NewPadded(t))
}

// banner is a message across the screen: an error (dark red) or a notice
// (the status yellow).
func banner(s string, isError bool) fyne.CanvasObject {
	return bannerSized(s, isError, theme.SizeNameText)
}

// bannerSized is a banner in a text size of the theme.
func bannerSized(s string, isError bool, size fyne.ThemeSizeName) fyne.CanvasObject {
	ground, fg := color.Color(colStatus), color.Color(colText)
	if isError {
		ground, fg = colDanger, colOnDark
	}
	bg := canvas.NewRectangle(ground)
	l := widget.NewRichText(&widget.TextSegment{Text: s, Style: widget.RichTextStyle{
		ColorName: colorName(fg), TextStyle: fyne.TextStyle{Bold: true}, SizeName: size,
	}})
	l.Wrapping = fyne.TextWrapWord
	return container.NewStack(bg, container.NewPadded(l))
}

// colorName maps the banner's text colour to a theme colour.
func colorName(c color.Color) fyne.ThemeColorName {
	if c == color.Color(colOnDark) {
		return theme.ColorNameForegroundOnPrimary
	}
	return theme.ColorNameForeground
}

// panel puts objects on a light grey ground.
func panel(objs ...fyne.CanvasObject) fyne.CanvasObject {
	bg := canvas.NewRectangle(colPanel)
	bg.CornerRadius = 8
	return container.NewStack(bg, container.NewPadded(container.NewVBox(objs...)))
}

// screen lays out a screen: the status bar and title on top, the content
// scrolling in the middle, the actions at the bottom, where the thumb
// reaches them.
func screen(status fyne.CanvasObject, heading string, content fyne.CanvasObject, actions ...fyne.CanvasObject) fyne.CanvasObject {
	top := container.NewVBox(status, container.NewPadded(title(heading)))
	var bottom fyne.CanvasObject
	if len(actions) > 0 {
		bottom = container.NewPadded(container.NewVBox(actions...))
	}
	body := container.NewVScroll(container.New(layout.NewCustomPaddedLayout(0, pad, pad, pad), content))
	return container.NewBorder(top, bottom, nil, nil, body)
}

// row puts actions side by side in equal widths.
func row(objs ...fyne.CanvasObject) fyne.CanvasObject {
	return container.NewGridWithColumns(len(objs), objs...)
}

// actionRow is the bottom row of a step: a secondary action at its own
// width on the left, the primary one filling the rest, under the right
// thumb.
func actionRow(secondary, primary *widget.Button) fyne.CanvasObject {
	return container.NewBorder(nil, nil, target(secondary), nil, target(primary))
}
