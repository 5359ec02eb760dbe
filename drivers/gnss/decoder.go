package gnss

import (
	"strings"
	"time"

	nmea "github.com/adrianmo/go-nmea"
)

// maxLine bounds one NMEA line. The standard allows 82 characters;
// proprietary sentences run longer, so a little headroom is left. Longer
// lines are garbage (a wrong baud rate produces endless "lines").
const maxLine = 256

// resultKind says what one line from the receiver meant.
type resultKind uint8

const (
	lineGarbage resultKind = iota // not a well-formed NMEA sentence
	lineOther                     // a valid sentence the driver does not use
	lineFix                       // a valid fix (Result.fix is set)
	lineNoFix                     // the receiver says it has no fix
	lineInfo                      // a used sentence that completed no fix
)

type result struct {
	kind resultKind
	fix  Fix
	err  string // for garbage: what was wrong, for logs
}

// decoder turns the byte stream of a receiver into fixes. It merges RMC
// (validity, date, speed, course), GGA (quality, satellites, HDOP,
// altitude) and GSA (2D/3D mode, HDOP) and hands out a fix after every
// valid GGA, which completes the accuracy figures; a receiver that sends no
// GGA gets a fix after every valid RMC instead. It is not safe for
// concurrent use.
type decoder struct {
	parser nmea.SentenceParser
	uere   float64

	buf     []byte // the current incomplete line
	discard bool   // the current line is overlong: drop it up to its end

	cur        Fix           // merged state of the latest sentences
	date       time.Time     // midnight UTC of the latest RMC date, zero if none
	rmcTime    time.Duration // time of day of the latest RMC
	rmcSinceGG int           // RMCs since the last GGA
}

func newDecoder(uere float64) *decoder {
	return &decoder{uere: uere, buf: make([]byte, 0, maxLine)}
}

// feed splits p into lines and calls onLine for each complete one.
func (d *decoder) feed(p []byte, onLine func(result)) {
	for _, b := range p {
		switch {
		case b == '\n':
			if d.discard {
				onLine(result{kind: lineGarbage, err: "line too long"})
			} else if line := strings.TrimRight(string(d.buf), "\r"); line != "" {
				onLine(d.line(line))
			}
			d.buf = d.buf[:0]
			d.discard = false
		case d.discard:
		case len(d.buf) >= maxLine:
			d.discard = true
			d.buf = d.buf[:0]
		default:
			d.buf = append(d.buf, b)
		}
	}
}

// line handles one line without its line end.
func (d *decoder) line(line string) result {
	typ, ok := checkSentence(line)
	if !ok {
		return result{kind: lineGarbage, err: "not an NMEA sentence or checksum wrong"}
	}
	switch typ {
	case nmea.TypeRMC, nmea.TypeGGA, nmea.TypeGSA:
	default:
		return result{kind: lineOther}
	}
	s, err := d.parser.Parse(line)
	if err != nil {
		return result{kind: lineGarbage, err: err.Error()}
	}
	switch m := s.(type) {
	case nmea.RMC:
		return d.rmc(m)
	case nmea.GGA:
		return d.gga(m)
	case nmea.GSA:
		return d.gsa(m)
	}
	return result{kind: lineOther}
}

func (d *decoder) rmc(m nmea.RMC) result {
	if m.Date.Valid {
		year := 2000 + m.Date.YY
		if m.Date.YY >= 80 {
			year = 1900 + m.Date.YY
		}
		d.date = time.Date(year, time.Month(m.Date.MM), m.Date.DD, 0, 0, 0, 0, time.UTC)
		d.rmcTime = timeOfDay(m.Time)
	}
	d.rmcSinceGG++
	if m.Validity != nmea.ValidRMC || m.FFAMode == nmea.FAAModeDataNotValid {
		return result{kind: lineNoFix}
	}
	d.cur.Lat, d.cur.Lon = m.Latitude, m.Longitude
	d.cur.Speed = m.Speed * knot
	d.cur.Course = m.Course
	d.cur.Time = d.timeOf(m.Time)
	if d.rmcSinceGG <= 2 {
		return result{kind: lineInfo} // the GGA of this epoch completes the fix
	}
	return result{kind: lineFix, fix: d.cur}
}

func (d *decoder) gga(m nmea.GGA) result {
	d.rmcSinceGG = 0
	q := quality(m.FixQuality)
	if q == "" {
		return result{kind: lineNoFix}
	}
	d.cur.Lat, d.cur.Lon = m.Latitude, m.Longitude
	d.cur.Quality = q
	d.cur.Satellites = int(m.NumSatellites)
	d.cur.Altitude = m.Altitude
	d.setHDOP(m.HDOP)
	d.cur.Time = d.timeOf(m.Time)
	return result{kind: lineFix, fix: d.cur}
}

func (d *decoder) gsa(m nmea.GSA) result {
	switch m.FixType {
	case nmea.Fix2D:
		d.cur.Mode = 2
	case nmea.Fix3D:
		d.cur.Mode = 3
	default:
		d.cur.Mode = 0
		return result{kind: lineNoFix}
	}
	d.setHDOP(m.HDOP)
	return result{kind: lineInfo}
}

func (d *decoder) setHDOP(hdop float64) {
	d.cur.HDOP = hdop
	d.cur.Accuracy = 0
	if hdop > 0 {
		d.cur.Accuracy = hdop * d.uere
	}
}

// timeOf combines a sentence's time of day with the latest RMC date. A
// time far before the RMC's is taken to be past midnight.
func (d *decoder) timeOf(t nmea.Time) time.Time {
	if !t.Valid || d.date.IsZero() {
		return time.Time{}
	}
	tod := timeOfDay(t)
	if tod < d.rmcTime-12*time.Hour {
		tod += 24 * time.Hour
	}
	return d.date.Add(tod)
}

func timeOfDay(t nmea.Time) time.Duration {
	return time.Duration(t.Hour)*time.Hour + time.Duration(t.Minute)*time.Minute +
		time.Duration(t.Second)*time.Second + time.Duration(t.Millisecond)*time.Millisecond
}

// knot is one knot in metres per second.
const knot = 1852.0 / 3600.0

// quality names a GGA fix quality, "" for no fix.
func quality(q string) string {
	switch q {
	case nmea.GPS:
		return "gps"
	case nmea.DGPS:
		return "dgps"
	case nmea.PPS:
		return "pps"
	case nmea.RTK:
		return "rtk"
	case nmea.FRTK:
		return "float-rtk"
	case nmea.EST:
		return "estimated"
	}
	return ""
}

// checkSentence reports whether line is "$<address>,…*HH" with printable
// ASCII and a correct checksum, and returns the sentence type (the address
// without its two-letter talker, "GGA" for "GNGGA").
func checkSentence(line string) (typ string, ok bool) {
	if len(line) < 9 || line[0] != '$' {
		return "", false
	}
	star := strings.LastIndexByte(line, '*')
	if star < 0 || star != len(line)-3 {
		return "", false
	}
	for i := 0; i < len(line); i++ {
		if line[i] < 0x20 || line[i] > 0x7e {
			return "", false
		}
	}
	body := line[1:star]
	if nmea.Checksum(body) != strings.ToUpper(line[star+1:]) {
		return "", false
	}
	addr, _, _ := strings.Cut(body, ",")
	if len(addr) != 5 || addr[0] == 'P' {
		return addr, true // proprietary or unusual address: valid, not ours
	}
	return addr[2:], true
}
