package rollout

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// DefaultWaves are the waves of a rollout that names none: one device,
// then 5 %, 25 % and all of the target.
var DefaultWaves = []string{"1", "5%", "25%", "100%"}

// MaxWaves bounds the waves of a rollout.
const MaxWaves = 20

// Wave is the cumulative size of a wave: a number of devices or a share
// of the target.
type Wave struct {
	Count   int
	Percent float64
}

// ParseWaves reads wave sizes such as "1", "5%", "25%", "100%". They are
// cumulative: each says how many devices have the update once the wave is
// done.
func ParseWaves(ws []string) ([]Wave, error) {
	if len(ws) == 0 || len(ws) > MaxWaves {
		return nil, fmt.Errorf("%w: 1 to %d waves, e.g. 1,5%%,25%%,100%%", ErrInvalid, MaxWaves)
	}
	out := make([]Wave, 0, len(ws))
	for _, w := range ws {
		w = strings.TrimSpace(w)
		if p, ok := strings.CutSuffix(w, "%"); ok {
			f, err := strconv.ParseFloat(p, 64)
			if err != nil || f <= 0 || f > 100 || math.IsNaN(f) {
				return nil, fmt.Errorf("%w: wave %q: a share of more than 0%% and at most 100%%", ErrInvalid, w)
			}
			out = append(out, Wave{Percent: f})
			continue
		}
		n, err := strconv.Atoi(w)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%w: wave %q: a number of devices (1 or more) or a share such as 5%%", ErrInvalid, w)
		}
		out = append(out, Wave{Count: n})
	}
	return out, nil
}

// Sizes turns waves into cumulative device counts for a target of total
// devices: each at least one more than the one before, the last one all of
// them (a 100 % wave is added when the last one is smaller). Waves that add
// no device are dropped.
func Sizes(ws []Wave, total int) []int {
	var out []int
	prev := 0
	for _, w := range ws {
		n := w.Count
		if w.Percent > 0 {
			n = int(math.Ceil(w.Percent / 100 * float64(total)))
		}
		n = min(n, total)
		if n > prev {
			out = append(out, n)
			prev = n
		}
	}
	if prev < total {
		out = append(out, total)
	}
	return out
}

// Window is a daily maintenance window: devices update only within it. It
// may span midnight (19:00-07:00). The zero Window is always open.
type Window struct {
	From, To time.Duration // since midnight; From == To means always
}

// Always is the window that is always open.
const Always = "always"

// ParseWindow reads "HH:MM-HH:MM" or "always".
func ParseWindow(s string) (Window, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == Always {
		return Window{}, nil
	}
	a, b, ok := strings.Cut(s, "-")
	from, err1 := clockTime(a)
	to, err2 := clockTime(b)
	if !ok || err1 != nil || err2 != nil {
		return Window{}, fmt.Errorf("%w: maintenance window %q: want HH:MM-HH:MM, e.g. 19:00-07:00, or %q", ErrInvalid, s, Always)
	}
	if to == 24*time.Hour && from == 0 {
		return Window{}, nil
	}
	return Window{From: from, To: to}, nil
}

func clockTime(s string) (time.Duration, error) {
	h, m, ok := strings.Cut(strings.TrimSpace(s), ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if !ok || err1 != nil || err2 != nil || len(m) != 2 || hh < 0 || hh > 24 || mm < 0 || mm > 59 || (hh == 24 && mm != 0) {
		return 0, fmt.Errorf("%q is not HH:MM", s)
	}
	return time.Duration(hh)*time.Hour + time.Duration(mm)*time.Minute, nil
}

// Open reports whether the window is open at t (in t's location).
func (w Window) Open(t time.Time) bool {
	if w.From == w.To {
		return true
	}
	y, mo, d := t.Date()
	since := t.Sub(time.Date(y, mo, d, 0, 0, 0, 0, t.Location()))
	if w.From < w.To {
		return since >= w.From && since < w.To
	}
	return since >= w.From || since < w.To
}

// String renders the window as ParseWindow reads it.
func (w Window) String() string {
	if w.From == w.To {
		return Always
	}
	f := func(d time.Duration) string { return fmt.Sprintf("%02d:%02d", int(d.Hours()), int(d.Minutes())%60) }
	return f(w.From) + "-" + f(w.To)
}
