package rollout

import (
	"errors"
	"slices"
	"testing"
	"time"
)

func TestWaveSizes(t *testing.T) {
	for _, c := range []struct {
		waves []string
		total int
		want  []int
	}{
		{DefaultWaves, 100, []int{1, 5, 25, 100}},
		{DefaultWaves, 40, []int{1, 2, 10, 40}},
		{DefaultWaves, 3, []int{1, 3}},
		{DefaultWaves, 1, []int{1}},
		{[]string{"10", "50%"}, 100, []int{10, 50, 100}},
		{[]string{"50%", "10"}, 100, []int{50, 100}},
		{[]string{"33.3%", "100%"}, 10, []int{4, 10}},
		{[]string{"500"}, 20, []int{20}},
	} {
		ws, err := ParseWaves(c.waves)
		if err != nil {
			t.Fatal(err)
		}
		if got := Sizes(ws, c.total); !slices.Equal(got, c.want) {
			t.Errorf("%v of %d: %v, want %v", c.waves, c.total, got, c.want)
		}
	}
	for _, bad := range [][]string{nil, {"0"}, {"-1"}, {"0%"}, {"101%"}, {"x"}, {"5 %"}, make([]string, 21)} {
		if _, err := ParseWaves(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestWindows(t *testing.T) {
	at := func(h, m int) time.Time { return time.Date(2026, 12, 1, h, m, 0, 0, time.UTC) }
	night, err := ParseWindow("19:00-07:00")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		t    time.Time
		open bool
	}{{at(18, 59), false}, {at(19, 0), true}, {at(23, 59), true}, {at(0, 0), true}, {at(6, 59), true}, {at(7, 0), false}, {at(12, 0), false}} {
		if got := night.Open(c.t); got != c.open {
			t.Errorf("19:00-07:00 at %s: %v", c.t.Format("15:04"), got)
		}
	}
	lunch, _ := ParseWindow("12:00-13:30")
	if !lunch.Open(at(13, 29)) || lunch.Open(at(13, 30)) || lunch.Open(at(11, 59)) {
		t.Error("12:00-13:30")
	}
	for _, s := range []string{"", "always", "00:00-24:00"} {
		w, err := ParseWindow(s)
		if err != nil || !w.Open(at(3, 0)) || w.String() != Always {
			t.Errorf("%q: %v %v", s, w, err)
		}
	}
	if night.String() != "19:00-07:00" {
		t.Errorf("String %q", night.String())
	}
	for _, bad := range []string{"19-7", "25:00-01:00", "19:00", "19:60-20:00", "7:0-8:00", "nachts"} {
		if _, err := ParseWindow(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
