//go:build xvfb

// The smoke test of the real fyne GL driver on a virtual X display:
//
//	go test -tags xvfb -run TestXvfbSmoke ./kiosk/ui
//
// It needs Xvfb (Debian package xvfb) and the OpenGL/X11 headers fyne
// builds with (make deps). Without Xvfb it skips, or fails with CI=true.
package ui

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/app"

	"github.com/kogge-fleet/kogge/kiosk/flow"
)

const (
	childEnv = "KOGGE_UI_XVFB_CHILD" // set: this process is the GL child
	outEnv   = "KOGGE_UI_XVFB_OUT"   // where the child writes its screenshot
)

// TestMain runs the GL child on the main goroutine, which fyne's desktop
// driver needs; otherwise it runs the tests as usual.
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		if err := glChild(os.Getenv(outEnv)); err != nil {
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
	xvfb, err := exec.LookPath("Xvfb")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("Xvfb is not installed (Debian package xvfb; make deps installs it) and CI=true")
		}
		t.Skip("Xvfb is not installed (Debian package xvfb); skipping the GL smoke test")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// Xvfb picks a free display and writes its number to the pipe.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	x := exec.CommandContext(ctx, xvfb, "-displayfd", "3", "-screen", "0", "1280x800x24", "-nolisten", "tcp")
	x.ExtraFiles = []*os.File{w}
	x.Stderr = os.Stderr
	if err := x.Start(); err != nil {
		t.Fatalf("start Xvfb: %v", err)
	}
	w.Close()
	defer func() {
		_ = x.Process.Kill()
		_ = x.Wait()
	}()
	display := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(r).ReadString('\n')
		display <- strings.TrimSpace(line)
	}()
	var dpy string
	select {
	case dpy = <-display:
	case <-time.After(30 * time.Second):
		t.Fatal("Xvfb did not report a display within 30 s")
	}
	r.Close()
	if dpy == "" {
		t.Fatal("Xvfb exited without reporting a display")
	}

	dir := os.Getenv("KOGGE_UI_XVFB_DIR") // keep the screenshot there
	if dir == "" {
		dir = t.TempDir()
	}
	out := filepath.Join(dir, "kiosk-xvfb.png")
	child := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestXvfbSmoke$")
	child.Env = append(os.Environ(), "DISPLAY=:"+dpy, childEnv+"=1", outEnv+"="+out)
	if b, err := child.CombinedOutput(); err != nil {
		t.Fatalf("GL child on display :%s failed: %v\n%s", dpy, err, b)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatalf("the child wrote no screenshot: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
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
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		img, err := grabX11(os.Getenv("DISPLAY"))
		if err != nil {
			return fmt.Errorf("screenshot: %w", err)
		}
		if looksDrawn(img) {
			f, err := os.Create(out)
			if err != nil {
				return err
			}
			defer f.Close()
			return png.Encode(f, img)
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return errors.New("the window never showed the welcome screen")
		}
	}
}

// grabX11 takes a screenshot of an X display's root window with the
// core protocol: connection setup, then one GetImage request.
func grabX11(display string) (image.Image, error) {
	num := strings.TrimPrefix(strings.SplitN(display, ".", 2)[0], ":")
	if num == "" || strings.ContainsAny(num, "/:") {
		return nil, fmt.Errorf("display %q is not a local display such as :1", display)
	}
	c, err := net.DialTimeout("unix", "/tmp/.X11-unix/X"+num, 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	le := binary.LittleEndian
	// Setup: little-endian, protocol 11.0, no authorization.
	if _, err := c.Write([]byte{'l', 0, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0}); err != nil {
		return nil, err
	}
	head := make([]byte, 8)
	if _, err := io.ReadFull(c, head); err != nil {
		return nil, fmt.Errorf("read setup reply: %w", err)
	}
	setup := make([]byte, int(le.Uint16(head[6:]))*4)
	if _, err := io.ReadFull(c, setup); err != nil {
		return nil, fmt.Errorf("read setup: %w", err)
	}
	if head[0] != 1 {
		return nil, fmt.Errorf("X server refused the connection: %q", setup[:min(int(head[1]), len(setup))])
	}
	if len(setup) < 32 {
		return nil, errors.New("short setup reply")
	}
	vendorLen := int(le.Uint16(setup[16:]))
	formats := int(setup[21])
	off := 32 + (vendorLen+3)/4*4 + 8*formats
	if len(setup) < off+40 {
		return nil, errors.New("setup reply has no screen")
	}
	scr := setup[off:]
	root := le.Uint32(scr[0:])
	w, h := le.Uint16(scr[20:]), le.Uint16(scr[22:])
	// GetImage (73), ZPixmap, the whole root window, all planes.
	req := make([]byte, 20)
	req[0], req[1] = 73, 2
	le.PutUint16(req[2:], 5)
	le.PutUint32(req[4:], root)
	le.PutUint16(req[12:], w)
	le.PutUint16(req[14:], h)
	le.PutUint32(req[16:], 0xffffffff)
	if _, err := c.Write(req); err != nil {
		return nil, err
	}
	rep := make([]byte, 32)
	if _, err := io.ReadFull(c, rep); err != nil {
		return nil, fmt.Errorf("read GetImage reply: %w", err)
	}
	if rep[0] != 1 {
		return nil, fmt.Errorf("GetImage failed with X error %d", rep[1])
	}
	data := make([]byte, int(le.Uint32(rep[4:]))*4)
	if _, err := io.ReadFull(c, data); err != nil {
		return nil, fmt.Errorf("read image: %w", err)
	}
	if rep[1] != 24 || len(data) < int(w)*int(h)*4 {
		return nil, fmt.Errorf("root window has depth %d and %d bytes; want 24-bit pixels in 32", rep[1], len(data))
	}
	img := image.NewRGBA(image.Rect(0, 0, int(w), int(h)))
	for i := 0; i < int(w)*int(h); i++ {
		img.Pix[4*i], img.Pix[4*i+1], img.Pix[4*i+2], img.Pix[4*i+3] = data[4*i+2], data[4*i+1], data[4*i], 0xff
	}
	return img, nil
}
