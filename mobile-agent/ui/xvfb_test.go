//go:build xvfb

// The smoke test of the handheld UI on fyne's real GL driver on a virtual
// X display:
//
//	go test -tags xvfb -run TestXvfbSmoke ./mobile-agent/ui
//
// It needs Xvfb (Debian package xvfb) and the OpenGL/X11 headers fyne
// builds with (make deps). Without Xvfb it skips, or fails with CI=true.
// KOGGE_UI_XVFB_DIR keeps the screenshot.
package ui

import (
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"os"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/app"
	"fyne.io/fyne/v2/theme"

	"github.com/kogge-fleet/kogge/internal/xvfbtest"
)

func init() { xvfbChild = runGLChild }

// runGLChild is the GL child (see TestMain): it shows the UI with the
// real driver, writes the screenshot and ends the process.
func runGLChild() {
	if err := glChild(os.Getenv(xvfbtest.OutEnv)); err != nil {
		fmt.Fprintln(os.Stderr, "xvfb child:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// TestXvfbSmoke starts Xvfb on a free display, runs the handheld UI with
// the real GL driver in a child process on it, in a phone-sized window as
// kogge-mobile --windowed shows it, and checks the screenshot the child
// took of the first screen, the PIN login.
func TestXvfbSmoke(t *testing.T) {
	img, out := xvfbtest.Shoot(t, 1280, 1024, "mobile-xvfb.png")
	if err := loginDrawn(img); err != nil {
		t.Fatalf("the screenshot %s does not show the login screen: %v", out, err)
	}
	t.Logf("screenshot of the GL window: %s (%v)", out, img.Bounds().Size())
}

// loginDrawn says what of the login screen, in the handheld's sunlight
// theme, a screenshot lacks (nil: nothing): the yellow status bar with
// black text, the grey keypad with black digits, the dark blue OK button
// with white text, and black text on white (title and hint).
func loginDrawn(img image.Image) error {
	var missing []error
	need := func(what string, got, min int) {
		if got < min {
			missing = append(missing, fmt.Errorf("%s: %d pixels, want at least %d", what, got, min))
		}
	}
	// The 420×900 window: a status bar across it, eleven grey keys and an
	// OK button of about 130×128 each, text on all of them.
	need("status bar yellow", count(img, colStatus), 420*40)
	need("keypad grey", count(img, colButton), 11*100*100)
	need("OK button blue", count(img, colPrimary), 100*100)
	need("white ground", count(img, colBackground), 420*200)
	need("black text on the status bar", textOn(img, colText, colStatus), 400)
	need("black digits and ⌫ on the keys", textOn(img, colText, colButton), 10*40)
	need("white OK on the blue button", textOn(img, colOnDark, colPrimary), 80)
	need("black title and hint on white", textOn(img, colText, colBackground), 1000)
	return errors.Join(missing...)
}

// count is the number of pixels of a colour.
func count(img image.Image, want color.NRGBA) int {
	n := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if near(rgb(img.At(x, y)), want) {
				n++
			}
		}
	}
	return n
}

// textOn counts the pixels of colour fg in short stretches of a row
// between two pixels of colour ground: the strokes of text in fg on
// ground, anti-aliased edges and all. What is not on ground (the black
// root window around the fyne window) does not count.
func textOn(img image.Image, fg, ground color.NRGBA) int {
	const maxGlyph = 40 // pixels across a glyph of the largest text
	total := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		last, n := -1, 0 // the last ground pixel; fg pixels since
		for x := b.Min.X; x < b.Max.X; x++ {
			c := rgb(img.At(x, y))
			switch {
			case near(c, ground):
				if last >= 0 && x-last-1 <= maxGlyph {
					total += n
				}
				last, n = x, 0
			case near(c, fg):
				n++
			}
		}
	}
	return total
}

// rgb is a colour's 8-bit channels.
func rgb(c color.Color) [3]uint8 {
	r, g, b, _ := c.RGBA()
	return [3]uint8{uint8(r >> 8), uint8(g >> 8), uint8(b >> 8)}
}

// near reports whether c is want give or take a little in every channel
// (the GL driver's blending of anti-aliased edges aside).
func near(c [3]uint8, want color.NRGBA) bool {
	d := func(a, b uint8) int {
		if a > b {
			return int(a - b)
		}
		return int(b - a)
	}
	return d(c[0], want.R) <= 6 && d(c[1], want.G) <= 6 && d(c[2], want.B) <= 6
}

// glChild runs the UI with the GL driver over a real app with fake
// peripherals and, once the first screen is on the display, writes a
// screenshot of the display to out.
func glChild(out string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	dir, err := os.MkdirTemp("", "kogge-mobile-xvfb-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	m, stop, err := startApp(ctx, dir, appDeps{})
	if err != nil {
		return err
	}
	defer stop()

	fa := app.NewWithID("org.kogge.mobile.smoke")
	// As cmd/kogge-mobile --windowed: the default size, PhoneSize.
	u, err := New(fa, m, Options{Lang: "de", Windowed: true})
	if err != nil {
		return err
	}
	result := make(chan error, 1)
	go func() { // ends with Await, which ctx bounds; waited for below
		result <- capture(ctx, out)
		fyne.Do(fa.Quit)
	}()
	u.ShowAndRun()
	return <-result
}

// capture takes screenshots of the X display until one shows the login
// screen (the driver draws asynchronously), up to ctx's deadline, and
// writes it to out; on failure it writes the last screenshot there for
// the person who reads the error. The screenshot comes from the X server:
// fyne's own Canvas.Capture reads the GL front buffer, which Mesa's
// software renderer under Xvfb leaves empty.
func capture(ctx context.Context, out string) error {
	img, err := xvfbtest.Await(ctx, os.Getenv("DISPLAY"), func(img image.Image) bool { return loginDrawn(img) == nil })
	if err != nil {
		if img != nil && xvfbtest.SavePNG(out, img) == nil {
			return fmt.Errorf("%w; the last screenshot is %s and lacks: %v", err, out, loginDrawn(img))
		}
		return err
	}
	return xvfbtest.SavePNG(out, img)
}

// TestXvfbLoginCheck checks the check: it accepts the login screen as
// fyne's test driver paints it, and rejects the same screen in fyne's
// default theme and a black screen.
func TestXvfbLoginCheck(t *testing.T) {
	h := newHarness(t, "de")
	if err := loginDrawn(h.u.win.Canvas().Capture()); err != nil {
		t.Fatalf("the check rejects the login screen as fyne's test driver paints it: %v", err)
	}
	h.u.fa.Settings().SetTheme(theme.DefaultTheme())
	h.u.render()
	if loginDrawn(h.u.win.Canvas().Capture()) == nil {
		t.Fatal("the check accepts the login screen in fyne's default theme")
	}
	if loginDrawn(image.NewRGBA(image.Rect(0, 0, 420, 900))) == nil {
		t.Fatal("the check accepts a black screen")
	}
}
