package gnss

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestDDMM(t *testing.T) {
	tests := []struct {
		deg   float64
		width int
		v, h  string
	}{
		{53.07585, 2, "5304.55100", "N"},
		{-33.5, 2, "3330.00000", "S"},
		{8.80717, 3, "00848.43020", "E"},
		{-151.2, 3, "15112.00000", "W"},
		{9.9999999999, 3, "01000.00000", "E"}, // would print 60 minutes
	}
	for _, tt := range tests {
		if v, h := ddmm(tt.deg, tt.width, "N", "S"); tt.width == 2 && (v != tt.v || h != tt.h) {
			t.Errorf("ddmm(%v) = %s %s, want %s %s", tt.deg, v, h, tt.v, tt.h)
		}
		if v, h := ddmm(tt.deg, tt.width, "E", "W"); tt.width == 3 && (v != tt.v || h != tt.h) {
			t.Errorf("ddmm(%v) = %s %s, want %s %s", tt.deg, v, h, tt.v, tt.h)
		}
	}
}

func TestRouteWalk(t *testing.T) {
	s := &Simulator{opts: Options{Route: []Point{{53, 8}, {53.001, 8}}, Speed: 10}}
	p0, _ := s.at(0)
	p, course := s.at(55.6) // half of the 111 m segment
	if p0 != (Point{53, 8}) || math.Abs(p.Lat-53.0005) > 1e-5 || math.Abs(course) > 1e-6 {
		t.Fatalf("at(0) = %v, at(55.6) = %v course %v", p0, p, course)
	}
	back, course := s.at(111.2 + 30) // on the way back to the start
	if back.Lat >= 53.001 || math.Abs(course-180) > 1e-6 {
		t.Fatalf("on the way back: %v course %v", back, course)
	}
}

func TestSentences(t *testing.T) {
	at := time.Date(2025, 1, 6, 8, 15, 30, 0, time.UTC)
	fix := string(fixEpoch("GN", at, Point{53.07585, 8.80717}, 1.4, 90, 9, 0.9))
	for _, want := range []string{
		"$GNRMC,081530.00,A,5304.55100,N,00848.43020,E,2.721,90.0,060125,,,A*",
		"$GNGGA,081530.00,5304.55100,N,00848.43020,E,1,09,0.9,12.0,M,47.0,M,,*",
		"$GNGSA,A,3,02,05,08,11,14,17,20,23,26,,,,1.4,0.9,1.2*",
	} {
		if !strings.Contains(fix, want) {
			t.Errorf("epoch lacks %q:\n%s", want, fix)
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(fix+string(noFixEpoch("GP", at))), "\r\n") {
		body, sum, ok := strings.Cut(strings.TrimPrefix(line, "$"), "*")
		var x byte
		for i := 0; i < len(body); i++ {
			x ^= body[i]
		}
		if !ok || sum != strings.ToUpper(strings.TrimSpace(sprintf02X(x))) {
			t.Errorf("checksum of %q", line)
		}
	}
}

func sprintf02X(b byte) string {
	const hex = "0123456789ABCDEF"
	return string([]byte{hex[b>>4], hex[b&15]})
}
