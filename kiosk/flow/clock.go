package flow

import "time"

// Clock is the flow's time source: every timeout of a session (inactivity,
// the photo window, the finger timeout) runs on it, so that tests drive
// them with a fake clock (kiosk/flow/flowtest) instead of waiting.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// AfterFunc calls f in its own goroutine once d has passed; stop
	// prevents the call if it has not happened yet and reports whether
	// it did so.
	AfterFunc(d time.Duration, f func()) (stop func() bool)
}

// SystemClock returns the wall clock.
func SystemClock() Clock { return systemClock{} }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) AfterFunc(d time.Duration, f func()) func() bool {
	return time.AfterFunc(d, f).Stop
}
