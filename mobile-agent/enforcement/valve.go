package enforcement

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/kogge-fleet/kogge/protocol/casefile"
)

// Wheels returns the wheel codes of valve positions, in the order wardens
// note them: front left, front right, rear left, rear right.
func Wheels() []string {
	return []string{casefile.WheelFrontLeft, casefile.WheelFrontRight, casefile.WheelRearLeft, casefile.WheelRearRight}
}

// NewValve returns the valve position of a wheel (VL, VR, HL, HR; any
// case) at a clock hour (1–12).
func NewValve(wheel string, hour int) (casefile.Valve, error) {
	w := strings.ToUpper(strings.TrimSpace(wheel))
	known := false
	for _, k := range Wheels() {
		known = known || k == w
	}
	if !known {
		return casefile.Valve{}, fmt.Errorf("valve: wheel %q is not VL, VR, HL or HR", clip(wheel))
	}
	if hour < 1 || hour > 12 {
		return casefile.Valve{}, fmt.Errorf("valve %s: clock hour %d is not 1 to 12", w, hour)
	}
	return casefile.Valve{Wheel: w, Hour: uint8(hour)}, nil
}

// ParseValve reads a valve position as wardens write it: "VL05", "vl5",
// "VL 12".
func ParseValve(s string) (casefile.Valve, error) {
	t := strings.ToUpper(strings.ReplaceAll(strings.TrimSpace(s), " ", ""))
	if len(t) < 3 || len(t) > 4 || !allDigits(t[2:]) {
		return casefile.Valve{}, fmt.Errorf("valve %q: want wheel and clock hour, e.g. VL05", clip(s))
	}
	h, _ := strconv.Atoi(t[2:])
	return NewValve(t[:2], h)
}

// CheckValves checks valve positions: known wheels, hours 1–12, each
// wheel at most once.
func CheckValves(vs []casefile.Valve) error {
	seen := map[string]bool{}
	for _, v := range vs {
		if _, err := NewValve(v.Wheel, int(v.Hour)); err != nil {
			return err
		}
		if v.Wheel != strings.ToUpper(v.Wheel) {
			return fmt.Errorf("valve: wheel %q must be upper case", v.Wheel)
		}
		if seen[v.Wheel] {
			return fmt.Errorf("valve: wheel %s given twice", v.Wheel)
		}
		seen[v.Wheel] = true
	}
	return nil
}
