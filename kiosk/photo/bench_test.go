package photo_test

import (
	"image"
	"testing"
	"time"

	"github.com/kogge-fleet/kogge/kiosk/photo"
	camsim "github.com/kogge-fleet/kogge/simulators/devices/camera"
)

// reportCPU adds the process's CPU time per operation since start
// ("cpu-ns/op"): on a machine shared with other work the wall time per
// operation says more about the neighbours than about the checks.
func reportCPU(b *testing.B, start time.Duration) {
	if cpu := cpuTime(); cpu > 0 {
		b.ReportMetric(float64(cpu-start)/float64(b.N), "cpu-ns/op")
	}
}

// BenchmarkAssess judges one 640×480 preview frame, decoded from JPEG as
// the camera delivers it: the synthetic face of the camera simulator and
// the real face of pigo's sample. Target: at most 50 ms per frame.
func BenchmarkAssess(b *testing.B) {
	c, err := photo.New(previewConfig(), nil)
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		img  image.Image
	}{
		{"synthetic", viaJPEG(b, camsim.Render(camsim.DefaultScript(), 0, 640, 480))},
		{"real", viaJPEG(b, frame(onGrey(b), 640, 480, 1, image.Pt(160, 40)))},
	} {
		b.Run(bc.name, func(b *testing.B) {
			start := cpuTime()
			for b.Loop() {
				if !c.Assess(bc.img).OK {
					b.Fatal("frame not acceptable")
				}
			}
			reportCPU(b, start)
		})
	}
}

// BenchmarkAssessCapture judges a 2592×1944 capture frame.
func BenchmarkAssessCapture(b *testing.B) {
	c, err := photo.New(previewConfig(), nil)
	if err != nil {
		b.Fatal(err)
	}
	m := camsim.CaptureMode()
	img := viaJPEG(b, camsim.Render(camsim.DefaultScript(), 0, m.Width, m.Height))
	start := cpuTime()
	for b.Loop() {
		if !c.Assess(img).OK {
			b.Fatal("frame not acceptable")
		}
	}
	reportCPU(b, start)
}

// BenchmarkCrop cuts and encodes the photo from a capture frame.
func BenchmarkCrop(b *testing.B) {
	c, err := photo.New(previewConfig(), nil)
	if err != nil {
		b.Fatal(err)
	}
	m := camsim.CaptureMode()
	img := viaJPEG(b, camsim.Render(camsim.DefaultScript(), 0, m.Width, m.Height))
	a := c.Assess(img)
	start := cpuTime()
	for b.Loop() {
		if _, err := c.Crop(img, a.Region); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, start)
}
