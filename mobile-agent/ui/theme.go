package ui

import (
	"image/color"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/theme"
)

// Sizes in fyne units. Fyne's mobile drivers draw one unit per
// density-independent pixel (1/160 inch); its desktop driver draws at
// least one pixel per unit and 120 units per inch from 120 dpi up. A
// target of 128 units is therefore at least 2.03 cm on a handheld and
// 2.7 cm on a desktop screen.
const (
	minTarget      = 128 // height of every control a finger hits
	minTargetWidth = 112 // narrowest button (keypad: about 128 on the phone)
	pad            = 16  // space around the screen's content
	textBody       = 22
	textSmall      = 18
	textTitle      = 30
	textHuge       = 44
)

// PhoneSize is the portrait window the UI is designed for: about 2.6 by
// 5.6 inches of a handheld's screen.
var PhoneSize = fyne.NewSize(420, 900)

// Colours of the sunlight palette: black on white, white on dark blue,
// dark red or dark green. Every text/background pair reaches WCAG AAA
// (7:1) contrast, which is what stays readable in direct sun.
var (
	colBackground = color.NRGBA{0xff, 0xff, 0xff, 0xff}
	colText       = color.NRGBA{0x00, 0x00, 0x00, 0xff}
	colPrimary    = color.NRGBA{0x0b, 0x3d, 0x91, 0xff} // 10.0:1 with white
	colDanger     = color.NRGBA{0x9e, 0x00, 0x1a, 0xff} // 8.5:1 with white
	colOK         = color.NRGBA{0x00, 0x5a, 0x1b, 0xff} // 8.5:1 with white
	colWarn       = color.NRGBA{0x6b, 0x40, 0x00, 0xff} // 8.9:1 with white
	colOnDark     = color.NRGBA{0xff, 0xff, 0xff, 0xff}
	colButton     = color.NRGBA{0xe6, 0xe6, 0xe6, 0xff} // black text: 16:1
	colDisabledFg = color.NRGBA{0x3d, 0x3d, 0x3d, 0xff} // 8.7:1 with colButton
	colPanel      = color.NRGBA{0xf2, 0xf2, 0xf2, 0xff}
	colStatus     = color.NRGBA{0xff, 0xf1, 0xa8, 0xff} // status bar; black text 17:1
	colLine       = color.NRGBA{0x59, 0x59, 0x59, 0xff} // input borders, 7:1 with white
)

// sunTheme is fyne's theme for the handheld: the high-contrast palette in
// every variant (it never follows a dark mode, which washes out in the
// sun), large text and thick input borders.
type sunTheme struct{}

var _ fyne.Theme = sunTheme{}

func (sunTheme) Color(n fyne.ThemeColorName, _ fyne.ThemeVariant) color.Color {
	switch n {
	case theme.ColorNameBackground, theme.ColorNameInputBackground, theme.ColorNameOverlayBackground,
		theme.ColorNameMenuBackground, theme.ColorNameHeaderBackground:
		return colBackground
	case theme.ColorNameForeground, theme.ColorNameForegroundOnSuccess, theme.ColorNameForegroundOnWarning:
		return colText
	case theme.ColorNameForegroundOnPrimary, theme.ColorNameForegroundOnError:
		return colOnDark
	case theme.ColorNamePrimary, theme.ColorNameFocus, theme.ColorNameHyperlink, theme.ColorNameSelection:
		return colPrimary
	case theme.ColorNameError:
		return colDanger
	case theme.ColorNameSuccess:
		return colOK
	case theme.ColorNameWarning:
		return colWarn
	case theme.ColorNameButton, theme.ColorNameDisabledButton:
		return colButton
	case theme.ColorNameInputBorder:
		return colLine
	case theme.ColorNameDisabled, theme.ColorNamePlaceHolder:
		return colDisabledFg
	case theme.ColorNameScrollBar, theme.ColorNameScrollBarBackground:
		return colLine
	case theme.ColorNameShadow:
		return color.NRGBA{0, 0, 0, 0x40}
	case theme.ColorNameSeparator, theme.ColorNameHover, theme.ColorNamePressed:
		return colPanel
	}
	return theme.DefaultTheme().Color(n, theme.VariantLight)
}

func (sunTheme) Font(s fyne.TextStyle) fyne.Resource { return theme.DefaultTheme().Font(s) }

func (sunTheme) Icon(n fyne.ThemeIconName) fyne.Resource { return theme.DefaultTheme().Icon(n) }

func (sunTheme) Size(n fyne.ThemeSizeName) float32 {
	switch n {
	case theme.SizeNameText:
		return textBody
	case theme.SizeNameSubHeadingText:
		return textTitle - 4
	case theme.SizeNameHeadingText:
		return textTitle
	case theme.SizeNameCaptionText:
		return textSmall
	case theme.SizeNameInputBorder:
		return 3
	case theme.SizeNameInnerPadding:
		return 12
	case theme.SizeNamePadding:
		return 6
	case theme.SizeNameScrollBar:
		return 16
	case theme.SizeNameInlineIcon:
		return 28
	}
	return theme.DefaultTheme().Size(n)
}
