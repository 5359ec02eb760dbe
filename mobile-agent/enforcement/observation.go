package enforcement

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Observation is the time a warden watched the vehicle: from Start (when
// the offence was first seen, or the expiry time a parking ticket or
// meter shows) to End. A zero End means the observation is still running;
// issuing the notice ends it.
type Observation struct {
	Start time.Time
	End   time.Time
}

// Errors of an observation a caller acts on.
var (
	// ErrObservationTimes: start missing, end before start, or a time in
	// the future.
	ErrObservationTimes = errors.New("observation times are wrong")
)

// ObservationError says that an offence needs a longer observation and how
// much longer: the warden comes back after Remaining.
type ObservationError struct {
	TBNR      string
	Need      time.Duration // the catalogue's minimum
	Observed  time.Duration // so far (until End, or until now)
	Remaining time.Duration // Need − Observed
}

func (e *ObservationError) Error() string {
	return fmt.Sprintf("offence %s needs %s of observation: %s observed, %s remain", e.TBNR, FormatDuration(e.Need), FormatDuration(e.Observed.Truncate(time.Second)), FormatDuration(e.Remaining))
}

// Check checks the times against now: a start is needed, neither time
// may lie in the future, and the end may not come before the start. It
// returns an error wrapping ErrObservationTimes.
func (o Observation) Check(now time.Time) error {
	switch {
	case o.Start.IsZero():
		return fmt.Errorf("%w: no start time", ErrObservationTimes)
	case o.Start.After(now):
		return fmt.Errorf("%w: start %s is in the future (now %s); check the device clock", ErrObservationTimes, o.Start.Format(time.TimeOnly), now.Format(time.TimeOnly))
	case o.End.IsZero():
		return nil
	case o.End.After(now):
		return fmt.Errorf("%w: end %s is in the future (now %s)", ErrObservationTimes, o.End.Format(time.TimeOnly), now.Format(time.TimeOnly))
	case o.End.Before(o.Start):
		return fmt.Errorf("%w: end %s is before start %s", ErrObservationTimes, o.End.Format(time.TimeOnly), o.Start.Format(time.TimeOnly))
	}
	return nil
}

// Observed is how long the vehicle was watched: until End, or until now
// while the observation runs.
func (o Observation) Observed(now time.Time) time.Duration {
	end := o.End
	if end.IsZero() {
		end = now
	}
	return max(end.Sub(o.Start), 0)
}

// Require checks the times (see Check) and that the observation covers
// the entry's minimum duration. A too short observation is an
// *ObservationError saying how long remains.
func (o Observation) Require(e Entry, now time.Time) error {
	if err := o.Check(now); err != nil {
		return err
	}
	if e.MinObservation <= 0 {
		return nil
	}
	if got := o.Observed(now); got < e.MinObservation {
		return &ObservationError{TBNR: e.TBNR, Need: e.MinObservation, Observed: got, Remaining: e.MinObservation - got}
	}
	return nil
}

// FormatDuration writes a duration for people, rounded up to whole
// seconds: "1h", "18min", "1h 5min 30s".
func FormatDuration(d time.Duration) string {
	if d <= 0 {
		return "0s"
	}
	d = (d + time.Second - 1).Truncate(time.Second)
	h, m, s := int(d/time.Hour), int(d%time.Hour/time.Minute), int(d%time.Minute/time.Second)
	var parts []string
	if h > 0 {
		parts = append(parts, strconv.Itoa(h)+"h")
	}
	if m > 0 {
		parts = append(parts, strconv.Itoa(m)+"min")
	}
	if s > 0 {
		parts = append(parts, strconv.Itoa(s)+"s")
	}
	return strings.Join(parts, " ")
}
