package gnss

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// sentence frames an NMEA body with $, checksum and CR LF.
func sentence(body string) string {
	var sum byte
	for i := 0; i < len(body); i++ {
		sum ^= body[i]
	}
	return fmt.Sprintf("$%s*%02X\r\n", body, sum)
}

// knot is one knot in metres per second.
const knot = 1852.0 / 3600.0

func fixEpoch(talker string, t time.Time, p Point, speed, course float64, sats int, hdop float64) []byte {
	hms := t.Format("150405.00")
	lat, ns := ddmm(p.Lat, 2, "N", "S")
	lon, ew := ddmm(p.Lon, 3, "E", "W")
	prns := make([]string, 12)
	for i := range min(sats, 12) {
		prns[i] = fmt.Sprintf("%02d", i*3+2)
	}
	pdop, vdop := hdop*1.6, hdop*1.3
	var b strings.Builder
	b.WriteString(sentence(fmt.Sprintf("%sRMC,%s,A,%s,%s,%s,%s,%.3f,%.1f,%s,,,A",
		talker, hms, lat, ns, lon, ew, speed/knot, course, t.Format("020106"))))
	b.WriteString(sentence(fmt.Sprintf("%sGGA,%s,%s,%s,%s,%s,1,%02d,%.1f,12.0,M,47.0,M,,",
		talker, hms, lat, ns, lon, ew, sats, hdop)))
	b.WriteString(sentence(fmt.Sprintf("%sGSA,A,3,%s,%.1f,%.1f,%.1f",
		talker, strings.Join(prns, ","), pdop, hdop, vdop)))
	return []byte(b.String())
}

func noFixEpoch(talker string, t time.Time) []byte {
	hms := t.Format("150405.00")
	var b strings.Builder
	b.WriteString(sentence(fmt.Sprintf("%sRMC,%s,V,,,,,,,%s,,,N", talker, hms, t.Format("020106"))))
	b.WriteString(sentence(fmt.Sprintf("%sGGA,%s,,,,,0,00,99.99,,,,,,", talker, hms)))
	b.WriteString(sentence(talker + "GSA,A,1,,,,,,,,,,,,,99.99,99.99,99.99"))
	return []byte(b.String())
}

// ddmm formats degrees as NMEA (d)ddmm.mmmmm with a hemisphere letter.
func ddmm(deg float64, width int, pos, neg string) (string, string) {
	h := pos
	if deg < 0 {
		h, deg = neg, -deg
	}
	d := math.Floor(deg)
	m := (deg - d) * 60
	if m >= 59.999995 { // would print as 60.00000
		d, m = d+1, 0
	}
	return fmt.Sprintf("%0*d%08.5f", width, int(d), m), h
}

// garbage returns text as lines, or a default mix of what broken lines
// look like: a wrong checksum, a cut sentence, binary noise (wrong baud
// rate) and an overlong line.
func garbage(text string) []byte {
	if text != "" {
		if !strings.HasSuffix(text, "\n") {
			text += "\r\n"
		}
		return []byte(text)
	}
	var b strings.Builder
	b.WriteString("$GNGGA,080000.00,5304.5510,N,00848.4302,E,1,09,0.9,12.0,M,47.0,M,,*00\r\n")
	b.WriteString("$GNRMC,080000.00,A,5304.55\r\n")
	b.WriteString("\x00\xff\xfe\x80\x13\x37 noise \x8a\r\n")
	b.WriteString("$" + strings.Repeat("X", 600) + "\r\n")
	return []byte(b.String())
}
