//go:build linux

package camera

import (
	"context"
	"errors"
	"image"
	"os"
	"path/filepath"
	"testing"
	"time"
	"unsafe"

	"github.com/kogge-fleet/kogge/drivers"
)

// The structure sizes and request numbers of linux/videodev2.h on 64-bit.
func TestV4L2Layout(t *testing.T) {
	for _, tc := range []struct {
		name      string
		got, want uintptr
	}{
		{"v4l2_capability", unsafe.Sizeof(v4l2Capability{}), 104},
		{"v4l2_fmtdesc", unsafe.Sizeof(v4l2FmtDesc{}), 64},
		{"v4l2_format", unsafe.Sizeof(v4l2Format{}), 208},
		{"v4l2_requestbuffers", unsafe.Sizeof(v4l2RequestBuffers{}), 20},
		{"v4l2_buffer", unsafe.Sizeof(v4l2Buffer{}), 88},
		{"v4l2_buffer.m", unsafe.Offsetof(v4l2Buffer{}.Offset), 64},
		{"v4l2_streamparm", unsafe.Sizeof(v4l2StreamParm{}), 204},
		{"VIDIOC_QUERYCAP", vidiocQueryCap, 0x80685600},
		{"VIDIOC_ENUM_FMT", vidiocEnumFmt, 0xc0405602},
		{"VIDIOC_S_FMT", vidiocSFmt, 0xc0d05605},
		{"VIDIOC_REQBUFS", vidiocReqBufs, 0xc0145608},
		{"VIDIOC_QUERYBUF", vidiocQueryBuf, 0xc0585609},
		{"VIDIOC_QBUF", vidiocQBuf, 0xc058560f},
		{"VIDIOC_DQBUF", vidiocDQBuf, 0xc0585611},
		{"VIDIOC_STREAMON", vidiocStreamOn, 0x40045612},
		{"VIDIOC_STREAMOFF", vidiocStreamOff, 0x40045613},
		{"VIDIOC_S_PARM", vidiocSParm, 0xc0cc5616},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: %#x, want %#x", tc.name, tc.got, tc.want)
		}
	}
	if pixMJPEG != 0x47504a4d || pixYUYV != 0x56595559 {
		t.Errorf("fourcc MJPG %#x, YUYV %#x", pixMJPEG, pixYUYV)
	}
}

func TestYUYV(t *testing.T) {
	// Two rows of 2 pixels: Y0 U Y1 V.
	img, err := yuyvToYCbCr([]byte{10, 100, 20, 200, 30, 110, 40, 210}, 2, 2)
	if err != nil {
		t.Fatal(err)
	}
	if img.SubsampleRatio != image.YCbCrSubsampleRatio422 {
		t.Fatalf("ratio %v", img.SubsampleRatio)
	}
	if c := img.YCbCrAt(1, 1); c.Y != 40 || c.Cb != 110 || c.Cr != 210 {
		t.Fatalf("pixel (1,1) = %+v", c)
	}
	if _, err := yuyvToYCbCr(make([]byte, 7), 2, 2); err == nil {
		t.Fatal("short frame converted")
	}
}

func TestV4L2Missing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := NewV4L2(filepath.Join(t.TempDir(), "video9"), V4L2Options{})
	if _, err := c.Start(ctx, Mode{Width: 640, Height: 480, FPS: 15}); !errors.Is(err, drivers.ErrDisconnected) {
		t.Fatalf("start without a device: %v", err)
	}
	if s := c.Status(); s.State != drivers.StateMissing {
		t.Fatalf("status %v", s)
	}
	if _, err := c.Next(ctx); !errors.Is(err, ErrNotStarted) {
		t.Fatalf("next: %v", err)
	}
}

// TestV4L2Device streams from a real device when KOGGE_TEST_V4L2 names
// one (for example /dev/video0); this machine has none.
func TestV4L2Device(t *testing.T) {
	dev := os.Getenv("KOGGE_TEST_V4L2")
	if dev == "" {
		t.Skip("set KOGGE_TEST_V4L2=/dev/videoN to test a real camera")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := NewV4L2(dev, V4L2Options{})
	m, err := c.Start(ctx, Mode{Width: 640, Height: 480, FPS: 15})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	for range 5 {
		f, err := c.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if b := f.Image.Bounds(); b.Dx() != m.Width || b.Dy() != m.Height {
			t.Fatalf("frame %v in mode %v", b, m)
		}
	}
}
