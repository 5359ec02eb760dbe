// Package gnss reads positions from a GNSS receiver (GPS, Galileo, …) that
// speaks NMEA 0183 over a serial line, as USB and Bluetooth receivers in
// handhelds do.
//
// [Receiver] is the contract; [Serial] is the real implementation
// (go.bug.st/serial and github.com/adrianmo/go-nmea, checksums checked) and
// [Fake] the stand-in for unit tests. simulators/devices/gnss plays a receiver
// on a pseudo-terminal for the driver's own tests and for manual runs.
//
// # Accuracy
//
// RMC and GGA carry no accuracy in metres, only the horizontal dilution of
// precision (HDOP), a unitless factor for the satellite geometry. The driver
// estimates the horizontal error as
//
//	Accuracy = HDOP × UERE
//
// where UERE, the user-equivalent range error, defaults to 5 m: a typical
// figure for a single-frequency consumer receiver without augmentation
// (Options.UERE; about 2 m suits SBAS/DGPS receivers). The result is roughly
// a one-sigma radius: HDOP 1.0 gives about 5 m, HDOP 4 about 20 m. It is an
// estimate for deciding whether a position is good enough to record, not a
// guarantee.
package gnss

import (
	"context"
	"errors"
	"time"

	"github.com/kogge-fleet/kogge/drivers"
)

// Receiver is a source of positions.
type Receiver interface {
	// Position returns the latest valid fix and its age. If no fix has been
	// received yet, it waits for one until ctx is done and then returns an
	// error wrapping ErrNoFix. A fix is returned however old it is: the
	// caller decides from Age whether it is still good enough.
	Position(ctx context.Context) (Position, error)
	// Watch delivers every new fix until ctx is done, then closes the
	// channel. A slow reader misses intermediate fixes, never the latest.
	Watch(ctx context.Context) <-chan Position
	// Status is the receiver's state for the heartbeat.
	Status() drivers.Status
}

// ErrNoFix is returned (wrapped) by Position when no fix was received.
var ErrNoFix = errors.New("no position fix")

// Fix is one position reported by the receiver.
type Fix struct {
	// Time is the UTC time of the fix as the receiver reports it. Its date
	// comes from RMC; it is zero until the receiver sent a date.
	Time time.Time
	// Lat and Lon are WGS 84 degrees, north and east positive.
	Lat, Lon float64
	// Altitude is metres above mean sea level (from GGA, 0 if not sent).
	Altitude float64
	// Quality is the GGA fix quality: "gps", "dgps", "pps", "rtk",
	// "float-rtk" or "estimated".
	Quality string
	// Mode is 2 or 3 for a 2D or 3D fix (from GSA), 0 if unknown.
	Mode int
	// HDOP is the horizontal dilution of precision, 0 if not sent.
	HDOP float64
	// Accuracy is the estimated horizontal error in metres (see the
	// package documentation), 0 if HDOP is unknown.
	Accuracy float64
	// Satellites is the number of satellites used for the fix.
	Satellites int
	// Speed is the speed over ground in metres per second.
	Speed float64
	// Course is the course over ground in degrees from true north.
	Course float64
}

// Position is a fix as the driver hands it out.
type Position struct {
	Fix
	// Received is the local clock when the fix was read from the line.
	Received time.Time
	// Age is how old the fix was when it was handed out.
	Age time.Duration
}
