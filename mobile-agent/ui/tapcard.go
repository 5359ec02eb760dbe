package ui

import (
	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"
)

// tapCard is a list entry the whole of which is a touch target: wrapped
// lines on a light panel, at least minTarget high.
type tapCard struct {
	widget.BaseWidget
	lines  []fyne.CanvasObject
	onTap  func()
	chosen bool
	danger bool
}

// newTapCard returns a card of objects (labels, badges) that calls onTap.
func newTapCard(onTap func(), lines ...fyne.CanvasObject) *tapCard {
	c := &tapCard{lines: lines, onTap: onTap}
	c.ExtendBaseWidget(c)
	return c
}

// Tapped implements fyne.Tappable.
func (c *tapCard) Tapped(*fyne.PointEvent) {
	if c.onTap != nil {
		c.onTap()
	}
}

func (c *tapCard) CreateRenderer() fyne.WidgetRenderer {
	bg := canvas.NewRectangle(colPanel)
	bg.CornerRadius = 8
	bg.StrokeColor = colLine
	bg.StrokeWidth = 2
	if c.chosen {
		bg.FillColor, bg.StrokeColor = colPrimary, colPrimary
		if c.danger {
			bg.FillColor, bg.StrokeColor = colDanger, colDanger
		}
	}
	body := container.NewPadded(container.NewVBox(c.lines...))
	return widget.NewSimpleRenderer(atLeast(container.NewStack(bg, body), 0, minTarget))
}

// choice is a pick-list entry as a card: its label wraps, a chosen one
// is dark blue (dark red with danger) with white text.
func choice(label string, chosen, danger bool, onTap func()) *tapCard {
	fg := colText
	if chosen {
		fg = colOnDark
	}
	t := widget.NewRichText(&widget.TextSegment{Text: label, Style: widget.RichTextStyle{
		// The caption size keeps words such as "Verkehrszeichen" whole in
		// half the phone's width.
		ColorName: colorName(fg), TextStyle: fyne.TextStyle{Bold: true}, SizeName: theme.SizeNameCaptionText,
	}})
	t.Wrapping = fyne.TextWrapWord
	c := newTapCard(onTap, t)
	c.chosen, c.danger = chosen, danger
	return c
}
