package xvfbtest

import (
	"context"
	"encoding/binary"
	"fmt"
	"image"
	"image/color"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeXvfb writes a shell script that stands in for Xvfb and returns its
// path.
func fakeXvfb(t *testing.T, script string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "Xvfb")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+script+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestStartFails(t *testing.T) {
	tests := []struct {
		name   string
		script string
		want   string
	}{
		{"exits", "echo 'cannot open display' >&2; exit 1", "cannot open display"},
		{"not a number", "echo abc >&3; exec sleep 60", `reported no display ("abc\n")`},
		{"silent", "exec sleep 60", "no display reported within 200ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := start(fakeXvfb(t, tt.script), 64, 48, 200*time.Millisecond)
			if err == nil {
				s.Stop()
				t.Fatalf("started on %s", s.Display())
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q; want it to say %q", err, tt.want)
			}
		})
	}
	if _, err := start(fakeXvfb(t, "exit 0"), 0, 48, time.Second); err == nil || !strings.Contains(err.Error(), "0x48") {
		t.Fatalf("a screen without pixels: %v", err)
	}
}

func TestStop(t *testing.T) {
	s, err := start(fakeXvfb(t, "echo 7 >&3; exec sleep 60"), 64, 48, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if s.Display() != ":7" {
		t.Fatalf("display %q; want :7", s.Display())
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	select {
	case <-s.exited:
	default:
		t.Fatal("Stop returned before the server exited")
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("second stop: %v", err)
	}

	// A server that ignores SIGTERM is killed, and Stop says so.
	s, err = start(fakeXvfb(t, "trap '' TERM; echo 8 >&3; exec sleep 60"), 64, 48, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	s.stopTimeout = 100 * time.Millisecond
	if err := s.Stop(); err == nil || !strings.Contains(err.Error(), "was killed") {
		t.Fatalf("stop of a server that ignores SIGTERM: %v", err)
	}

	// A server that died on its own is reported.
	s, err = start(fakeXvfb(t, "echo 9 >&3; echo 'fatal IO error' >&2; exit 3"), 64, 48, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	<-s.exited
	if err := s.Stop(); err == nil || !strings.Contains(err.Error(), "exited before it was stopped") || !strings.Contains(err.Error(), "fatal IO error") {
		t.Fatalf("stop of a dead server: %v", err)
	}
}

// TestXvfbStartGrab starts the real Xvfb, paints its root window a colour
// and checks that a screenshot has the screen's size and that colour, in
// the right channels; once stopped, the display is gone.
func TestXvfbStartGrab(t *testing.T) {
	x := Start(t, 320, 200)
	num, err := displayNumber(x.Display())
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("unix", "/tmp/.X11-unix/X"+num)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(x11Timeout))
	scr, err := setup(c)
	if err != nil {
		t.Fatal(err)
	}
	const pixel = 0x00ff8040
	le := binary.LittleEndian
	req := make([]byte, 32)
	req[0] = 2 // ChangeWindowAttributes: background-pixel
	le.PutUint16(req[2:], 4)
	le.PutUint32(req[4:], scr.root)
	le.PutUint32(req[8:], 0x2)
	le.PutUint32(req[12:], pixel)
	req[16] = 61 // ClearArea: the whole window
	le.PutUint16(req[18:], 4)
	le.PutUint32(req[20:], scr.root)
	if _, err := c.Write(req); err != nil {
		t.Fatal(err)
	}
	// The GetImage on the same connection comes after the clear.
	if _, err := getImage(c, scr); err != nil {
		t.Fatal(err)
	}

	img, err := GrabX11(x.Display())
	if err != nil {
		t.Fatal(err)
	}
	if img.Bounds() != image.Rect(0, 0, 320, 200) {
		t.Fatalf("screenshot of %v; want 320×200", img.Bounds())
	}
	want := color.RGBA{0xff, 0x80, 0x40, 0xff}
	for _, p := range []image.Point{{0, 0}, {319, 0}, {160, 100}, {0, 199}, {319, 199}} {
		if got := color.RGBAModel.Convert(img.At(p.X, p.Y)); got != want {
			t.Fatalf("pixel %v is %v; want %v", p, got, want)
		}
	}

	if err := x.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := GrabX11(x.Display()); err == nil {
		t.Fatalf("display %s still answers after Stop", x.Display())
	}
}

// TestXvfbRunChild runs this test again as a child on the display: the
// child grabs the display and prints its size; a child that fails makes
// RunChild fail.
func TestXvfbRunChild(t *testing.T) {
	if IsChild() {
		img, err := GrabX11(os.Getenv("DISPLAY"))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Printf("child %s saw %v with %s\n", os.Getenv(ChildEnv), img.Bounds().Size(), os.Getenv("XVFBTEST_WORD"))
		if os.Getenv("XVFBTEST_FAIL") != "" {
			t.Fatal("failing as asked")
		}
		return
	}
	x := Start(t, 320, 200)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := x.RunChild(ctx, "TestXvfbRunChild", "XVFBTEST_WORD=hello")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if want := "child TestXvfbRunChild saw (320,200) with hello"; !strings.Contains(string(out), want) {
		t.Fatalf("the child's output does not say %q:\n%s", want, out)
	}
	out, err = x.RunChild(ctx, "TestXvfbRunChild", "XVFBTEST_FAIL=1")
	if err == nil || !strings.Contains(string(out), "failing as asked") {
		t.Fatalf("a failing child: %v\n%s", err, out)
	}
}

// TestXvfbAwait waits for the third screenshot (one after the other, as
// clients that come and go: the server must not reset in between), then
// for one that never comes, and saves and loads the last.
func TestXvfbAwait(t *testing.T) {
	x := Start(t, 64, 48)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	calls := 0
	img, err := Await(ctx, x.Display(), func(image.Image) bool { calls++; return calls == 3 })
	if err != nil || img == nil || calls != 3 {
		t.Fatalf("Await: %v after %d screenshots; want the third", err, calls)
	}

	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancelShort()
	img, err = Await(short, x.Display(), func(image.Image) bool { return false })
	if err == nil || img == nil || img.Bounds() != image.Rect(0, 0, 64, 48) {
		t.Fatalf("Await of what never shows: error %v; want one, and the last screenshot", err)
	}

	p := filepath.Join(t.TempDir(), "shot.png")
	if err := SavePNG(p, img); err != nil {
		t.Fatal(err)
	}
	back, err := LoadPNG(p)
	if err != nil {
		t.Fatal(err)
	}
	if back.Bounds() != img.Bounds() || color.RGBAModel.Convert(back.At(5, 5)) != color.RGBAModel.Convert(img.At(5, 5)) {
		t.Fatal("the saved PNG is not the screenshot")
	}
}
