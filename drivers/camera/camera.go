// Package camera delivers frames from a camera: the kiosk's photo station
// streams them, checks each (K7) and keeps the best. Start negotiates a
// mode (the supported resolution nearest to the wish, and a frame rate);
// Next returns the frames as they come, each with the time it was taken.
//
// Implementations: [MJPEG] reads an MJPEG-over-HTTP stream
// (multipart/x-mixed-replace), the way most IP cameras and USB camera
// servers deliver video; [V4L2] reads a Video4Linux2 device (/dev/video*)
// with memory-mapped streaming of MJPEG or YUYV frames; [Fake] serves
// generated frames for unit tests. simulators/devices/camera serves an
// MJPEG stream of a scripted synthetic scene, or of image files.
package camera

import (
	"context"
	"errors"
	"fmt"
	"image"
	"time"

	"github.com/kogge-fleet/kogge/drivers"
)

// Camera is a camera as the kiosk uses it.
type Camera interface {
	// Start negotiates the mode nearest to want and starts the stream;
	// it returns the mode in effect. Starting a started camera restarts
	// it.
	Start(ctx context.Context, want Mode) (Mode, error)
	// Next blocks for the next frame. Frames the caller did not take in
	// time are dropped: Next returns the newest.
	Next(ctx context.Context) (Frame, error)
	// Stop ends the stream; Start may follow.
	Stop() error
	// Status is the peripheral's state for the heartbeat.
	Status() drivers.Status
}

var (
	_ Camera = (*MJPEG)(nil)
	_ Camera = (*V4L2)(nil)
	_ Camera = (*Fake)(nil)
)

// Mode is a resolution and a frame rate.
type Mode struct {
	Width, Height int
	FPS           int
}

func (m Mode) String() string { return fmt.Sprintf("%dx%d@%d", m.Width, m.Height, m.FPS) }

// Frame is one image from the camera.
type Frame struct {
	Image image.Image
	// Time is when the frame was taken (or received, when the camera does
	// not say).
	Time time.Time
	// Seq counts the frames of a stream from 1; gaps are dropped frames.
	Seq uint64
}

// Errors callers act on. No frame in time wraps drivers.ErrTimeout; a
// camera that is gone wraps drivers.ErrDisconnected.
var (
	// ErrNotStarted: Next before Start, or after Stop.
	ErrNotStarted = errors.New("camera not started")
)

// Nearest returns the mode among modes whose resolution is nearest to
// want's (by the difference in pixel count, then in aspect ratio) and
// whose frame rate is nearest. It returns want if modes is empty.
func Nearest(modes []Mode, want Mode) Mode {
	if len(modes) == 0 {
		return want
	}
	best, bestScore := modes[0], -1.0
	for _, m := range modes {
		dp := float64(m.Width*m.Height - want.Width*want.Height)
		if dp < 0 {
			dp = -dp
		}
		da := 0.0
		if want.Height > 0 && m.Height > 0 {
			da = float64(m.Width)/float64(m.Height) - float64(want.Width)/float64(want.Height)
			if da < 0 {
				da = -da
			}
		}
		df := float64(m.FPS - want.FPS)
		if df < 0 {
			df = -df
		}
		score := dp*1000 + da*100 + df
		if bestScore < 0 || score < bestScore {
			best, bestScore = m, score
		}
	}
	return best
}
