package fleet

import (
	"errors"
	"fmt"
	"time"
)

// Clock maps real time to simulated time of day, so that a working day
// with its opening hours can run in minutes: one simulated hour lasts Hour
// of real time. The simulated day starts at StartOfDay when the real clock
// reads Origin.
type Clock struct {
	// Origin is the real instant at which the simulated clock reads
	// StartOfDay.
	Origin time.Time
	// StartOfDay is the simulated time of day at Origin, e.g. 8h for 08:00.
	StartOfDay time.Duration
	// Hour is how long one simulated hour lasts in real time.
	Hour time.Duration
	// Now is the real clock; nil means time.Now.
	Now func() time.Time
}

// Validate checks the clock.
func (c Clock) Validate() error {
	var errs []error
	if c.Origin.IsZero() {
		errs = append(errs, errors.New("clock origin not set"))
	}
	if c.StartOfDay < 0 || c.StartOfDay >= 24*time.Hour {
		errs = append(errs, fmt.Errorf("start of day %v: must be 0 to 24h", c.StartOfDay))
	}
	if c.Hour < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("a simulated hour of %v is too short: at least 100ms", c.Hour))
	}
	return errors.Join(errs...)
}

func (c Clock) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// Scale is how many simulated seconds pass in one real second.
func (c Clock) Scale() float64 { return float64(time.Hour) / float64(c.Hour) }

// SimElapsed is the simulated time passed since Origin.
func (c Clock) SimElapsed() time.Duration {
	return time.Duration(float64(c.now().Sub(c.Origin)) * c.Scale())
}

// TimeOfDay is the simulated time of day now, in [0, 24h).
func (c Clock) TimeOfDay() time.Duration {
	return (c.StartOfDay + c.SimElapsed()) % (24 * time.Hour)
}

// Real converts a simulated duration to real time.
func (c Clock) Real(sim time.Duration) time.Duration {
	return time.Duration(float64(sim) / c.Scale())
}

// FormatTimeOfDay renders a time of day as 15:04.
func FormatTimeOfDay(d time.Duration) string {
	d %= 24 * time.Hour
	return fmt.Sprintf("%02d:%02d", int(d/time.Hour), int(d%time.Hour/time.Minute))
}

// Curve is a daily load shape: the share of the peak rate at each
// simulated hour of the day (index 0 is 00:00–01:00), from 0 to 1.
type Curve [24]float64

// At returns the share of the peak rate at a time of day, interpolated
// linearly between the middles of the hours so that the load ramps up and
// down instead of jumping.
func (c Curve) At(tod time.Duration) float64 {
	h := float64(tod%(24*time.Hour)) / float64(time.Hour) // 0..24
	x := h - 0.5
	i := int(x + 24) // x may be negative just after midnight
	frac := x + 24 - float64(i)
	a, b := c[i%24], c[(i+1)%24]
	// Closed hours stay closed: no ramp into an hour with no load.
	if a == 0 || b == 0 {
		return c[int(h)%24]
	}
	return a + (b-a)*frac
}

// Daily load shapes of the three kinds of device. Citizens' offices open
// 08:00–18:00 with a morning and an afternoon peak; wardens patrol
// 07:00–20:00, busiest late morning and afternoon; road crews work
// 07:00–16:00.

func kioskCurve() Curve {
	return Curve{8: 0.5, 9: 0.9, 10: 1, 11: 0.9, 12: 0.5, 13: 0.6, 14: 0.9, 15: 1, 16: 0.9, 17: 0.6}
}

func wardenCurve() Curve {
	return Curve{7: 0.4, 8: 0.6, 9: 0.8, 10: 1, 11: 1, 12: 0.7, 13: 0.7, 14: 0.9, 15: 1, 16: 1, 17: 0.8, 18: 0.6, 19: 0.4}
}

func crewCurve() Curve {
	return Curve{7: 0.6, 8: 1, 9: 1, 10: 1, 11: 0.8, 12: 0.4, 13: 0.9, 14: 1, 15: 0.7}
}

// FlatCurve is the same load around the clock (benchmarks, tests).
func FlatCurve() Curve {
	var c Curve
	for i := range c {
		c[i] = 1
	}
	return c
}
