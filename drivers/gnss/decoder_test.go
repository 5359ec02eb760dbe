package gnss

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	nmea "github.com/adrianmo/go-nmea"
)

func nmeaLine(body string) string { return "$" + body + "*" + nmea.Checksum(body) }

func TestDecoderLines(t *testing.T) {
	rmc := nmeaLine("GNRMC,081530.50,A,5304.5510,N,00848.4302,E,10.000,87.5,060125,,,A")
	gga := nmeaLine("GNGGA,081530.50,5304.5510,N,00848.4302,E,2,11,1.2,12.5,M,47.0,M,,")
	tests := []struct {
		name  string
		lines []string
		kinds []resultKind
		check func(t *testing.T, f Fix)
	}{
		{
			name:  "rmc then gga merge into one fix",
			lines: []string{rmc, gga, nmeaLine("GNGSA,A,3,02,05,08,,,,,,,,,,1.9,1.2,1.5")},
			kinds: []resultKind{lineInfo, lineFix, lineInfo},
			check: func(t *testing.T, f Fix) {
				wantLat := 53 + 4.5510/60
				wantLon := 8 + 48.4302/60
				if math.Abs(f.Lat-wantLat) > 1e-9 || math.Abs(f.Lon-wantLon) > 1e-9 {
					t.Errorf("position %v,%v, want %v,%v", f.Lat, f.Lon, wantLat, wantLon)
				}
				if want := 10 * 1852.0 / 3600; math.Abs(f.Speed-want) > 1e-9 {
					t.Errorf("speed %v m/s, want %v", f.Speed, want)
				}
				if f.Course != 87.5 || f.Quality != "dgps" || f.Satellites != 11 || f.Altitude != 12.5 {
					t.Errorf("fix %+v", f)
				}
				if f.HDOP != 1.2 || math.Abs(f.Accuracy-6) > 1e-9 {
					t.Errorf("hdop %v accuracy %v, want 1.2 and 6 m", f.HDOP, f.Accuracy)
				}
				if want := time.Date(2025, 1, 6, 8, 15, 30, 500e6, time.UTC); !f.Time.Equal(want) {
					t.Errorf("time %v, want %v", f.Time, want)
				}
			},
		},
		{
			name: "southern and western hemisphere, RMC only",
			lines: []string{
				nmeaLine("GPRMC,000000.00,A,3352.1234,S,15112.5678,W,0.0,0.0,311299,,,A"),
				nmeaLine("GPRMC,000001.00,A,3352.1234,S,15112.5678,W,0.0,0.0,311299,,,A"),
				nmeaLine("GPRMC,000002.00,A,3352.1234,S,15112.5678,W,0.0,0.0,311299,,,A"),
			},
			kinds: []resultKind{lineInfo, lineInfo, lineFix},
			check: func(t *testing.T, f Fix) {
				if f.Lat >= 0 || f.Lon >= 0 {
					t.Errorf("position %v,%v should be south-west", f.Lat, f.Lon)
				}
				if f.Time.Year() != 1999 {
					t.Errorf("year %d, want 1999", f.Time.Year())
				}
			},
		},
		{
			name: "GGA after midnight before the RMC with the new date",
			lines: []string{
				nmeaLine("GNRMC,235959.00,A,5304.5510,N,00848.4302,E,0,0,311225,,,A"),
				nmeaLine("GNGGA,000000.00,5304.5510,N,00848.4302,E,1,08,1.0,12.5,M,47.0,M,,"),
			},
			kinds: []resultKind{lineInfo, lineFix},
			check: func(t *testing.T, f Fix) {
				if want := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC); !f.Time.Equal(want) {
					t.Errorf("time %v, want %v", f.Time, want)
				}
			},
		},
		{
			name: "no fix in every sentence",
			lines: []string{
				nmeaLine("GNRMC,080000.00,V,,,,,,,060125,,,N"),
				nmeaLine("GNGGA,080000.00,,,,,0,00,99.99,,,,,,"),
				nmeaLine("GNGSA,A,1,,,,,,,,,,,,,99.99,99.99,99.99"),
			},
			kinds: []resultKind{lineNoFix, lineNoFix, lineNoFix},
		},
		{
			name: "garbage of many kinds",
			lines: []string{
				"$GNGGA,080000.00,5304.5510,N,00848.4302,E,1,09,0.9,12.0,M,47.0,M,,*00", // wrong checksum
				"$GNRMC,080000.00,A,5304.55", // cut off
				"GNGGA,no dollar*12",
				"\x00\xff\x13 binary",
				nmeaLine("GNRMC,080000.00,X,5304.5510,N,00848.4302,E,1,1,060125,,,A"),         // bad status
				nmeaLine("GNGGA,080000.00,9904.5510,N,00848.4302,E,1,09,0.9,12.0,M,47.0,M,,"), // latitude > 90
				"$GNRMC,1*3", // short checksum
			},
			kinds: []resultKind{lineGarbage, lineGarbage, lineGarbage, lineGarbage, lineGarbage, lineGarbage, lineGarbage},
		},
		{
			name: "other sentences are valid but unused",
			lines: []string{
				nmeaLine("GPGSV,3,1,11,03,03,111,00,04,15,270,00,06,01,010,00,13,06,292,00"),
				nmeaLine("PUBX,00,081350.00,4717.113210,N,00833.915187,E"),
			},
			kinds: []resultKind{lineOther, lineOther},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDecoder(5)
			var got []result
			d.feed([]byte(strings.Join(tt.lines, "\r\n")+"\r\n"), func(r result) { got = append(got, r) })
			if len(got) != len(tt.kinds) {
				t.Fatalf("%d results, want %d: %+v", len(got), len(tt.kinds), got)
			}
			var last Fix
			for i, r := range got {
				if r.kind != tt.kinds[i] {
					t.Errorf("line %d: kind %d, want %d (%s)", i, r.kind, tt.kinds[i], r.err)
				}
				if r.kind == lineFix {
					last = r.fix
				}
			}
			if tt.check != nil {
				tt.check(t, last)
			}
		})
	}
}

func TestDecoderOverlongLineIsOneGarbageLine(t *testing.T) {
	d := newDecoder(5)
	var got []result
	in := "$" + strings.Repeat("A", 3*maxLine) + "\n" + nmeaLine("GNRMC,080000.00,V,,,,,,,060125,,,N") + "\n"
	d.feed([]byte(in), func(r result) { got = append(got, r) })
	if len(got) != 2 || got[0].kind != lineGarbage || got[1].kind != lineNoFix {
		t.Fatalf("results %+v, want garbage then no-fix", got)
	}
}

// feedAll runs a decoder over in, split into chunks of size n (all at
// once for n <= 0), and returns a printable trace of the results.
func feedAll(in []byte, n int) string {
	d := newDecoder(5)
	var b strings.Builder
	on := func(r result) { fmt.Fprintf(&b, "%d %+v\n", r.kind, r.fix) }
	if n <= 0 {
		d.feed(in, on)
		return b.String()
	}
	for len(in) > 0 {
		k := min(n, len(in))
		d.feed(in[:k], on)
		in = in[k:]
	}
	return b.String()
}

func FuzzDecoder(f *testing.F) {
	f.Add([]byte(nmeaLine("GNRMC,081530.50,A,5304.5510,N,00848.4302,E,10.000,87.5,060125,,,A")+"\r\n"), uint8(3))
	f.Add([]byte(nmeaLine("GNGGA,081530.50,5304.5510,N,00848.4302,E,2,11,1.2,12.5,M,47.0,M,,")+"\n"), uint8(1))
	f.Add([]byte(nmeaLine("GNGSA,A,1,,,,,,,,,,,,,99.99,99.99,99.99")+"\n\n\r\n"), uint8(7))
	f.Add([]byte("$GNRMC,1*3\n\x00\xff$"+strings.Repeat("x", 300)+"\n"), uint8(0))
	f.Fuzz(func(t *testing.T, in []byte, chunk uint8) {
		whole := feedAll(in, 0)
		if split := feedAll(in, int(chunk)); split != whole {
			t.Fatalf("results depend on how the input is split:\nwhole:\n%s\nsplit by %d:\n%s", whole, chunk, split)
		}
		d := newDecoder(5)
		d.feed(in, func(r result) {
			if r.kind == lineFix && (math.Abs(r.fix.Lat) > 90 || math.Abs(r.fix.Lon) > 180 || math.IsNaN(r.fix.Lat)) {
				t.Fatalf("impossible fix %+v", r.fix)
			}
		})
		if len(d.buf) > maxLine {
			t.Fatalf("line buffer grew to %d bytes", len(d.buf))
		}
	})
}
