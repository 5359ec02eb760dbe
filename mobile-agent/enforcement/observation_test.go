package enforcement

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kogge-fleet/kogge/protocol/casefile"
)

func TestObservation(t *testing.T) {
	now := time.Date(2025, 1, 6, 9, 0, 0, 0, berlin(t))
	hour := Entry{TBNR: "141314", MinObservation: time.Hour}
	none := Entry{TBNR: "141312"}
	tests := []struct {
		name      string
		obs       Observation
		entry     Entry
		err       error         // errors.Is
		remaining time.Duration // for an *ObservationError
		says      string
	}{
		{name: "no minimum, running", obs: Observation{Start: now.Add(-time.Minute)}, entry: none},
		{name: "no minimum, just now", obs: Observation{Start: now, End: now}, entry: none},
		{name: "hour reached", obs: Observation{Start: now.Add(-time.Hour)}, entry: hour},
		{name: "hour reached with end", obs: Observation{Start: now.Add(-2 * time.Hour), End: now.Add(-time.Hour)}, entry: hour},
		{name: "42 min of an hour", obs: Observation{Start: now.Add(-42 * time.Minute)}, entry: hour,
			remaining: 18 * time.Minute, says: "offence 141314 needs 1h of observation: 42min observed, 18min remain"},
		{name: "ended too early", obs: Observation{Start: now.Add(-2 * time.Hour), End: now.Add(-90 * time.Minute)}, entry: hour,
			remaining: 30 * time.Minute, says: "30min observed, 30min remain"},
		{name: "one second short", obs: Observation{Start: now.Add(-time.Hour + time.Second)}, entry: hour,
			remaining: time.Second, says: "59min 59s observed, 1s remain"},
		{name: "no start", obs: Observation{}, entry: none, err: ErrObservationTimes, says: "no start time"},
		{name: "start in the future", obs: Observation{Start: now.Add(time.Second)}, entry: none, err: ErrObservationTimes, says: "in the future"},
		{name: "end in the future", obs: Observation{Start: now.Add(-time.Hour), End: now.Add(time.Minute)}, entry: hour, err: ErrObservationTimes, says: "end 09:01:00 is in the future"},
		{name: "end before start", obs: Observation{Start: now.Add(-time.Minute), End: now.Add(-2 * time.Minute)}, entry: none, err: ErrObservationTimes, says: "before start"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.obs.Require(tt.entry, now)
			var oe *ObservationError
			switch {
			case tt.remaining > 0:
				if !errors.As(err, &oe) || oe.Remaining != tt.remaining || oe.Need != tt.entry.MinObservation || oe.TBNR != tt.entry.TBNR {
					t.Fatalf("error %v, want %v remaining", err, tt.remaining)
				}
			case tt.err != nil:
				if !errors.Is(err, tt.err) {
					t.Fatalf("error %v, want %v", err, tt.err)
				}
			case err != nil:
				t.Fatal(err)
			}
			if tt.says != "" && !strings.Contains(err.Error(), tt.says) {
				t.Fatalf("error %q does not say %q", err, tt.says)
			}
		})
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s", -time.Second: "0s", time.Hour: "1h", 18 * time.Minute: "18min",
		time.Hour + 5*time.Minute + 30*time.Second: "1h 5min 30s",
		1500 * time.Millisecond:                    "2s",
		3 * time.Hour:                              "3h",
	} {
		if got := FormatDuration(d); got != want {
			t.Errorf("FormatDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestValves(t *testing.T) {
	for in, want := range map[string]casefile.Valve{
		"VL05": {Wheel: "VL", Hour: 5}, "vr7": {Wheel: "VR", Hour: 7}, "HL 12": {Wheel: "HL", Hour: 12}, " hr01 ": {Wheel: "HR", Hour: 1},
	} {
		got, err := ParseValve(in)
		if err != nil || got != want {
			t.Errorf("ParseValve(%q) = %+v, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "VL", "VL00", "VL13", "VX05", "VL005", "05VL", "VL-5", "VL5a"} {
		if v, err := ParseValve(in); err == nil {
			t.Errorf("ParseValve(%q) accepted: %+v", in, v)
		}
	}
	if v, err := NewValve("hl", 11); err != nil || v.String() != "HL11" {
		t.Fatalf("NewValve: %v %v", v, err)
	}
	good := []casefile.Valve{{Wheel: "VL", Hour: 5}, {Wheel: "VR", Hour: 7}, {Wheel: "HL", Hour: 11}, {Wheel: "HR", Hour: 2}}
	if err := CheckValves(good); err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]casefile.Valve{
		{{Wheel: "VL", Hour: 5}, {Wheel: "VL", Hour: 6}},
		{{Wheel: "VL", Hour: 0}},
		{{Wheel: "vl", Hour: 3}},
		{{Wheel: "XX", Hour: 3}},
	} {
		if err := CheckValves(bad); err == nil {
			t.Errorf("CheckValves(%v) accepted", bad)
		}
	}
}
