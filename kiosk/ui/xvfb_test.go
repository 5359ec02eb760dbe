//go:build xvfb

// The smoke test of the real fyne GL driver on a virtual X display:
//
//	go test -tags xvfb -run TestXvfbSmoke ./kiosk/ui
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
	"os"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/app"

	"github.com/kogge-fleet/kogge/internal/xvfbtest"
	"github.com/kogge-fleet/kogge/kiosk/flow"
)

// TestMain runs the GL child on the main goroutine, which fyne's desktop
// driver needs; otherwise it runs the tests as usual.
func TestMain(m *testing.M) {
	if xvfbtest.IsChild() {
		if err := glChild(os.Getenv(xvfbtest.OutEnv)); err != nil {
			fmt.Fprintln(os.Stderr, "xvfb child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestXvfbSmoke starts Xvfb on a free display, runs the kiosk UI with the
// real GL driver in a child process on it, and checks the screenshot the
// child took of the welcome screen.
func TestXvfbSmoke(t *testing.T) {
	img, out := xvfbtest.Shoot(t, 1280, 800, "kiosk-xvfb.png")
	if !looksDrawn(img) {
		t.Fatal("the screenshot does not show the welcome screen (no dark text and no blue button)")
	}
	t.Logf("screenshot of the GL window: %s (%v)", out, img.Bounds().Size())
}

// looksDrawn reports whether a screenshot shows dark text on white and
// the primary colour of the start button.
func looksDrawn(img image.Image) bool {
	b := img.Bounds()
	dark, blue, white := 0, 0, 0
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			r, g, bl, _ := img.At(x, y).RGBA()
			r, g, bl = r>>8, g>>8, bl>>8
			switch {
			case r+g+bl < 0x90:
				dark++
			case r < 0x30 && g > 0x30 && g < 0x50 && bl > 0x80 && bl < 0xa0:
				blue++
			case r > 0xf0 && g > 0xf0 && bl > 0xf0:
				white++
			}
		}
	}
	return dark > 200 && blue > 1000 && white > b.Dx()*b.Dy()/16
}

// glChild runs the UI with the GL driver, shows the welcome screen, and
// once it is on screen writes a capture of the window to out.
func glChild(out string) error {
	a := app.NewWithID("org.kogge.kiosk.smoke")
	u, err := New(a, Options{Windowed: true, Size: fyne.NewSize(1280, 800)})
	if err != nil {
		return err
	}
	s := newFakeSession()
	given := false
	next := func(ctx context.Context) flow.Session {
		if !given {
			given = true
			return s
		}
		<-ctx.Done()
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	result := make(chan error, 1)
	go func() {
		result <- capture(ctx, u, s, out)
		cancel() // ends Run
	}()
	if err := u.Run(ctx, next, nil); err != nil {
		return fmt.Errorf("run: %w", err)
	}
	return <-result
}

// capture hands the UI its first view, then takes screenshots of the X
// display until one shows it (the driver draws asynchronously), up to a
// deadline. The screenshot comes from the X server (GetImage on the root
// window): fyne's own Canvas.Capture reads the GL front buffer, which
// Mesa's software renderer under Xvfb leaves empty.
func capture(ctx context.Context, u *UI, s *fakeSession, out string) error {
	select {
	case s.views <- flow.View{Step: flow.StepWelcome, Languages: languages}:
	case <-ctx.Done():
		return errors.New("the UI did not take the first view")
	}
	img, err := xvfbtest.Await(ctx, os.Getenv("DISPLAY"), looksDrawn)
	if err != nil {
		return fmt.Errorf("the window never showed the welcome screen: %w", err)
	}
	return xvfbtest.SavePNG(out, img)
}
