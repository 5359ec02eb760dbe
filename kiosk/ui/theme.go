package ui

import (
	"image/color"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/theme"
)

// Sizes are in fyne units. The desktop driver never scales below one unit
// per pixel and scales above 120 dpi so that 120 units are one inch; 96
// units are therefore at least 2 cm on any screen (2.54 cm at 96 dpi,
// 2.03 cm from 120 dpi up).
const (
	minTarget = 96 // smallest touch target, width and height
	pad       = 24 // space between blocks and around the screen
	gap       = 16 // space between neighbouring controls
	border    = 3  // outline of controls and panels
	radius    = 12 // corner radius of controls
)

// Colours of the high-contrast palette: black on white, white on dark
// blue or dark red. Every text/background pair reaches WCAG AAA (7:1).
var (
	colBackground = color.NRGBA{0xff, 0xff, 0xff, 0xff}
	colText       = color.NRGBA{0x00, 0x00, 0x00, 0xff}
	colPrimary    = color.NRGBA{0x0b, 0x3d, 0x91, 0xff} // 10.0:1 with white
	colDanger     = color.NRGBA{0x9e, 0x00, 0x1a, 0xff} // 8.5:1 with white
	colOnDark     = color.NRGBA{0xff, 0xff, 0xff, 0xff}
	colDisabled   = color.NRGBA{0xe6, 0xe6, 0xe6, 0xff}
	colDisabledFg = color.NRGBA{0x3d, 0x3d, 0x3d, 0xff} // 8.7:1 with colDisabled
	colStatus     = color.NRGBA{0xff, 0xf1, 0xa8, 0xff} // status line background
	colTrack      = color.NRGBA{0xd9, 0xd9, 0xd9, 0xff}
	colBackdrop   = color.NRGBA{0x00, 0x00, 0x00, 0xd9}
	colOK         = color.NRGBA{0x00, 0x5a, 0x1b, 0xff} // 8.5:1 with white
	colWarn       = color.NRGBA{0x6b, 0x40, 0x00, 0xff} // 8.9:1 with white
	colHint       = color.NRGBA{0x4a, 0x4a, 0x4a, 0xff} // 8.9:1 with white
)

// textSizes are the type sizes of one text-size setting.
type textSizes struct {
	small, body, button, title, huge float32
}

var (
	normalText = textSizes{small: 22, body: 28, button: 28, title: 40, huge: 80}
	largeText  = textSizes{small: 30, body: 38, button: 38, title: 54, huge: 104}
)

// kioskTheme is fyne's theme for the kiosk: the high-contrast palette in
// every variant (the terminal never follows a system dark mode) and the
// normal body size. The kiosk's own widgets take their sizes from
// textSizes; the theme covers what fyne draws itself (scroll bars).
type kioskTheme struct{}

var _ fyne.Theme = kioskTheme{}

func (kioskTheme) Color(n fyne.ThemeColorName, _ fyne.ThemeVariant) color.Color {
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
	case theme.ColorNameButton, theme.ColorNameDisabledButton, theme.ColorNameInputBorder:
		return colDisabled
	case theme.ColorNameDisabled, theme.ColorNamePlaceHolder:
		return colDisabledFg
	case theme.ColorNameScrollBar, theme.ColorNameScrollBarBackground:
		return colHint
	case theme.ColorNameShadow:
		return color.NRGBA{0, 0, 0, 0x40}
	case theme.ColorNameSeparator, theme.ColorNameHover, theme.ColorNamePressed:
		return colTrack
	}
	return theme.DefaultTheme().Color(n, theme.VariantLight)
}

func (kioskTheme) Font(s fyne.TextStyle) fyne.Resource { return theme.DefaultTheme().Font(s) }

func (kioskTheme) Icon(n fyne.ThemeIconName) fyne.Resource { return theme.DefaultTheme().Icon(n) }

func (kioskTheme) Size(n fyne.ThemeSizeName) float32 {
	switch n {
	case theme.SizeNameText:
		return normalText.body
	case theme.SizeNameScrollBar:
		return 24
	case theme.SizeNameScrollBarSmall:
		return 12
	case theme.SizeNameInputBorder:
		return border
	case theme.SizeNamePadding:
		return 8 // the space fyne's boxes leave between objects
	}
	return theme.DefaultTheme().Size(n)
}
