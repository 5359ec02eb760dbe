// Package xvfbtest runs tests of a real GUI on a virtual X display. It
// starts Xvfb on a free display, runs a child of the test binary on that
// display (GUI drivers such as fyne's GL driver need the process's main
// goroutine, which a test function never has: the child's TestMain or
// init gives it to them), and takes screenshots of the display with the
// core X11 protocol, so that it needs no X library and no screenshot tool.
//
//	x := xvfbtest.Start(t, 1280, 800) // skips without Xvfb; fails with CI=true
//	out, err := x.RunChild(ctx, "TestXvfbSmoke", "MY_CHILD=1")
//
// and in the child, on the display the parent gave it:
//
//	img, err := xvfbtest.Await(ctx, os.Getenv("DISPLAY"), looksDrawn)
package xvfbtest

import (
	"bufio"
	"context"
	"fmt"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// DirEnv names a directory that keeps the screenshots of the smoke tests
// (ScreenshotPath); without it they go to the test's temporary directory.
const DirEnv = "KOGGE_UI_XVFB_DIR"

// Timeouts of the server's start and stop.
const (
	startTimeout = 30 * time.Second
	stopTimeout  = 10 * time.Second
)

// Server is a running Xvfb.
type Server struct {
	display string // ":N"
	cmd     *exec.Cmd
	stderr  *syncBuffer

	exited  chan struct{} // closed when Xvfb has exited
	waitErr error         // Wait's result, once exited is closed

	stopTimeout time.Duration // between SIGTERM and SIGKILL
	stopOnce    sync.Once
	stopErr     error
}

// Start starts Xvfb with a screen of width×height pixels at depth 24 on a
// free display and stops it when the test ends. Without Xvfb (Debian
// package xvfb) it skips the test, or fails it when the environment has
// CI=true.
func Start(tb testing.TB, width, height int) *Server {
	tb.Helper()
	path, err := exec.LookPath("Xvfb")
	if err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatal("Xvfb is not installed (Debian package xvfb; make deps installs it) and CI=true")
		}
		tb.Skip("Xvfb is not installed (Debian package xvfb); skipping the test on a virtual display")
	}
	s, err := start(path, width, height, startTimeout)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := s.Stop(); err != nil {
			tb.Error(err)
		}
	})
	return s
}

// start runs the Xvfb at path and waits up to timeout for it to name the
// display it chose (-displayfd), which it does once it accepts clients.
func start(path string, width, height int, timeout time.Duration) (*Server, error) {
	if width <= 0 || height <= 0 || width > 0x7fff || height > 0x7fff {
		return nil, fmt.Errorf("xvfb: screen %dx%d: want 1 to 32767 pixels each way", width, height)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("xvfb: %w", err)
	}
	defer r.Close()
	s := &Server{stderr: &syncBuffer{}, exited: make(chan struct{}), stopTimeout: stopTimeout}
	// -noreset: by default the server resets when its last client
	// leaves, and drops a client that connects meanwhile; screenshots
	// come and go as clients.
	s.cmd = exec.Command(path, "-displayfd", "3", "-screen", "0", fmt.Sprintf("%dx%dx24", width, height),
		"-nolisten", "tcp", "-noreset")
	s.cmd.ExtraFiles = []*os.File{w}
	s.cmd.Stderr = s.stderr
	s.cmd.WaitDelay = stopTimeout // xkbcomp children may hold stderr
	err = s.cmd.Start()
	w.Close()
	if err != nil {
		return nil, fmt.Errorf("xvfb: start %s: %w", path, err)
	}
	go func() {
		s.waitErr = s.cmd.Wait()
		close(s.exited)
	}()
	// The read ends with the display's line, or with EOF when Xvfb exits
	// (the only other holder of the pipe's write end).
	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(r).ReadString('\n')
		lines <- line
	}()
	var line string
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case line = <-lines:
	case <-timer.C:
		_ = s.cmd.Process.Kill()
		<-s.exited
		<-lines
		return nil, fmt.Errorf("xvfb: no display reported within %v; its output:\n%s", timeout, s.stderr)
	}
	num, err := displayNumber(":" + strings.TrimSpace(line))
	if err != nil {
		_ = s.cmd.Process.Kill()
		<-s.exited
		return nil, fmt.Errorf("xvfb: it exited or reported no display (%q): %v; its output:\n%s", line, s.waitErr, s.stderr)
	}
	s.display = ":" + num
	return s, nil
}

// Display is the server's display, such as ":1", for DISPLAY.
func (s *Server) Display() string { return s.display }

// Stop ends Xvfb (SIGTERM, then SIGKILL after 10 s) and waits for it.
// It reports a server that had died before, or had to be killed.
// Calling it again returns the first result.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() {
		select {
		case <-s.exited:
			s.stopErr = fmt.Errorf("xvfb on %s exited before it was stopped: %v; its output:\n%s", s.display, s.waitErr, s.stderr)
			return
		default:
		}
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		timer := time.NewTimer(s.stopTimeout)
		defer timer.Stop()
		select {
		case <-s.exited:
		case <-timer.C:
			_ = s.cmd.Process.Kill()
			<-s.exited
			s.stopErr = fmt.Errorf("xvfb on %s did not end within %v of SIGTERM and was killed", s.display, s.stopTimeout)
		}
	})
	return s.stopErr
}

// ChildEnv is set, to the test's name, in the environment of a child that
// RunChild starts.
const ChildEnv = "KOGGE_XVFB_CHILD"

// IsChild reports whether this process is a child that RunChild started.
func IsChild() bool { return os.Getenv(ChildEnv) != "" }

// RunChild runs this test binary again on the server's display: only the
// test named test, with DISPLAY, ChildEnv and env ("KEY=value") added to
// this process's environment. It returns the child's combined output;
// the error says how it failed. ctx bounds the child.
func (s *Server) RunChild(ctx context.Context, test string, env ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^"+regexp.QuoteMeta(test)+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), "DISPLAY="+s.display, ChildEnv+"="+test)
	cmd.Env = append(cmd.Env, env...)
	cmd.WaitDelay = stopTimeout
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", err, ctx.Err())
		}
		return out, fmt.Errorf("child %s on display %s: %w", test, s.display, err)
	}
	return out, nil
}

// Await takes screenshots of display every 100 ms until drawn accepts one,
// which it returns, or ctx ends: then it returns the last screenshot (nil
// if none) and an error. GUI drivers draw asynchronously; this is how a
// test waits for a screen to be on the display.
func Await(ctx context.Context, display string, drawn func(image.Image) bool) (image.Image, error) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last image.Image
	for {
		img, err := GrabX11(display)
		if err != nil {
			return last, fmt.Errorf("screenshot of %s: %w", display, err)
		}
		if drawn(img) {
			return img, nil
		}
		last = img
		select {
		case <-tick.C:
		case <-ctx.Done():
			return last, fmt.Errorf("display %s never showed what the test waits for: %w", display, ctx.Err())
		}
	}
}

// OutEnv names, in the environment of a child that Shoot starts, the file
// the child writes its screenshot to.
const OutEnv = "KOGGE_UI_XVFB_OUT"

// Shoot starts Xvfb with a screen of width×height pixels, runs the calling
// test again as a child on it (RunChild) with OutEnv set to
// ScreenshotPath(name), and returns the screenshot the child wrote there
// and its path. It ends the test if the child fails or writes none.
func Shoot(t *testing.T, width, height int, name string) (image.Image, string) {
	t.Helper()
	x := Start(t, width, height)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out := ScreenshotPath(t, name)
	if b, err := x.RunChild(ctx, t.Name(), OutEnv+"="+out); err != nil {
		t.Fatalf("GL child: %v\n%s", err, b)
	}
	img, err := LoadPNG(out)
	if err != nil {
		t.Fatalf("the child wrote no screenshot: %v", err)
	}
	return img, out
}

// ScreenshotPath is where a test keeps its screenshot name: in the
// directory DirEnv names, or else in the test's temporary directory.
func ScreenshotPath(tb testing.TB, name string) string {
	dir := os.Getenv(DirEnv)
	if dir == "" {
		dir = tb.TempDir()
	}
	return filepath.Join(dir, name)
}

// SavePNG writes img to path as PNG.
func SavePNG(path string, img image.Image) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return fmt.Errorf("encode %s: %w", path, err)
	}
	return f.Close()
}

// LoadPNG reads a PNG file.
func LoadPNG(path string) (image.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", path, err)
	}
	return img, nil
}

// syncBuffer collects a process's output while it runs.
type syncBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	const max = 64 << 10 // enough for the messages; Xvfb can repeat itself
	if n := max - len(b.b); n > 0 {
		b.b = append(b.b, p[:min(n, len(p))]...)
	}
	return len(p), nil
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.b)
}
