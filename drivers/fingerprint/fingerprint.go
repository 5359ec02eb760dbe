// Package fingerprint captures fingerprints from an optical scanner: wait
// for a finger, take a 500 ppi 8-bit grey image, report whether a finger is
// on the sensor. [R30x] is the real implementation for the packet protocol
// of the R30x module family over a serial line (go.bug.st/serial); [Fake]
// serves scripted images for unit tests; simulators/devices/fingerprint
// plays the module on a real pseudo-terminal.
//
// Quality scoring (NFIQ 2) is not the scanner's job: the kiosk scores the
// returned image.
package fingerprint

import (
	"context"
	"errors"
	"image"
	"time"

	"github.com/kogge-fleet/kogge/drivers"
)

// Scanner is a fingerprint scanner as the kiosk uses it.
type Scanner interface {
	// Capture waits until a finger is on the sensor, takes an image and
	// returns it. Without a finger before ctx's deadline it fails with
	// ErrNoFinger (which wraps drivers.ErrTimeout).
	Capture(ctx context.Context) (Image, error)
	// FingerPresent reports whether a finger is on the sensor now.
	FingerPresent(ctx context.Context) (bool, error)
	// Status is the peripheral's state for the heartbeat.
	Status() drivers.Status
	// Close releases the scanner.
	Close() error
}

var (
	_ Scanner = (*R30x)(nil)
	_ Scanner = (*Fake)(nil)
)

// Image is one capture.
type Image struct {
	// Gray is the image, 8 bits per pixel.
	Gray *image.Gray
	// PPI is the resolution in pixels per inch (500).
	PPI int
	// Time is when the image was taken.
	Time time.Time
}

// Errors callers act on. A scanner that does not answer wraps
// drivers.ErrTimeout; an unplugged one drivers.ErrDisconnected.
var (
	// ErrNoFinger: no finger came to the sensor in time.
	ErrNoFinger = errors.New("no finger on the sensor")
	// ErrImageFailed: the sensor saw a finger but could not take an image
	// (finger moved, too wet or too dry): ask for another try.
	ErrImageFailed = errors.New("the sensor could not take an image")
)
