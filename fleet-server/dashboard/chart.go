package dashboard

import (
	"fmt"
	"html"
	"html/template"
	"math"
	"strings"
	"time"

	"github.com/kogge-fleet/kogge/fleet-server/store"
)

// chart is one series of a device's health timeline: an inline SVG line
// chart with a title and a description for screen readers, and the same
// data as a table.
type chart struct {
	ID, Title, Desc string
	SVG             template.HTML
	Rows            [][2]string
}

type point struct {
	t time.Time
	v float64
}

// healthCharts draws queue depth, oldest unsent age, free disk and battery
// over [from, to] from the samples (newest first).
func healthCharts(hist []store.Health, from, to time.Time, tr func(string, ...any) string) []chart {
	type series struct {
		id, key, unit string
		value         func(store.Health) (float64, bool)
		format        func(float64) string
	}
	list := []series{
		{"queue", "chart.queue", "", func(h store.Health) (float64, bool) { return float64(h.Heartbeat.QueueDepth), true },
			func(v float64) string { return fmt.Sprintf("%.0f", v) }},
		{"unsent", "chart.unsent", "min", func(h store.Health) (float64, bool) {
			return float64(h.Heartbeat.OldestUnsentMillis) / 60000, true
		}, func(v float64) string { return fmt.Sprintf("%.0f min", v) }},
		{"disk", "chart.disk", "MiB", func(h store.Health) (float64, bool) {
			return float64(h.Heartbeat.DiskFree) / (1 << 20), true
		}, func(v float64) string { return fmt.Sprintf("%.0f MiB", v) }},
		{"battery", "chart.battery", "%", func(h store.Health) (float64, bool) {
			return float64(h.Heartbeat.Battery), h.Heartbeat.Battery >= 0
		}, func(v float64) string { return fmt.Sprintf("%.0f %%", v) }},
	}
	var out []chart
	for _, s := range list {
		var pts []point
		for i := len(hist) - 1; i >= 0; i-- {
			if v, ok := s.value(hist[i]); ok {
				pts = append(pts, point{time.UnixMilli(hist[i].ReceivedAt), v})
			}
		}
		if s.id == "battery" && len(pts) == 0 {
			continue // a device without a battery
		}
		c := chart{ID: "chart-" + s.id, Title: tr(s.key)}
		if len(pts) == 0 {
			c.Desc = tr("chart.nodata")
		} else {
			lo, hi := pts[0].v, pts[0].v
			for _, p := range pts {
				lo, hi = math.Min(lo, p.v), math.Max(hi, p.v)
			}
			c.Desc = tr("chart.desc", len(pts), s.format(lo), s.format(hi), s.format(pts[len(pts)-1].v))
		}
		c.SVG = template.HTML(drawChart(c.ID, c.Title, c.Desc, pts, from, to, s.format))
		for i := len(pts) - 1; i >= 0 && len(c.Rows) < 200; i-- {
			c.Rows = append(c.Rows, [2]string{pts[i].t.Local().Format("2006-01-02 15:04"), s.format(pts[i].v)})
		}
		out = append(out, c)
	}
	return out
}

// drawChart returns the SVG markup; all text is escaped.
func drawChart(id, title, desc string, pts []point, from, to time.Time, format func(float64) string) string {
	const w, hgt, left, right, top, bottom = 640.0, 170.0, 70.0, 12.0, 12.0, 28.0
	pw, ph := w-left-right, hgt-top-bottom
	hi := 0.0
	for _, p := range pts {
		hi = math.Max(hi, p.v)
	}
	if hi == 0 {
		hi = 1
	}
	hi = niceCeil(hi)
	span := to.Sub(from).Seconds()
	x := func(t time.Time) float64 {
		f := t.Sub(from).Seconds() / span
		return left + math.Max(0, math.Min(1, f))*pw
	}
	y := func(v float64) float64 { return top + ph - v/hi*ph }
	var b strings.Builder
	e := html.EscapeString
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %.0f %.0f" role="img" aria-labelledby="%s-t %s-d" focusable="false">`, w, hgt, e(id), e(id))
	fmt.Fprintf(&b, `<title id="%s-t">%s</title><desc id="%s-d">%s</desc>`, e(id), e(title), e(id), e(desc))
	for i := 0; i <= 2; i++ {
		v := hi * float64(i) / 2
		fmt.Fprintf(&b, `<line class="chart-grid" x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f"/>`, left, w-right, y(v), y(v))
		fmt.Fprintf(&b, `<text class="chart-label" x="%.1f" y="%.1f" text-anchor="end">%s</text>`, left-6, y(v)+4, e(format(v)))
	}
	fmt.Fprintf(&b, `<line class="chart-axis" x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f"/>`, left, left, top, top+ph)
	fmt.Fprintf(&b, `<line class="chart-axis" x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f"/>`, left, w-right, top+ph, top+ph)
	fmt.Fprintf(&b, `<text class="chart-label" x="%.1f" y="%.1f">%s</text>`, left, hgt-8, e(from.Local().Format("02.01. 15:04")))
	fmt.Fprintf(&b, `<text class="chart-label" x="%.1f" y="%.1f" text-anchor="end">%s</text>`, w-right, hgt-8, e(to.Local().Format("02.01. 15:04")))
	if len(pts) > 0 {
		var pl strings.Builder
		for i, p := range pts {
			if i > 0 {
				pl.WriteByte(' ')
			}
			fmt.Fprintf(&pl, "%.1f,%.1f", x(p.t), y(p.v))
		}
		fmt.Fprintf(&b, `<polyline class="chart-line" points="%s"/>`, pl.String())
		last := pts[len(pts)-1]
		fmt.Fprintf(&b, `<circle class="chart-dot" cx="%.1f" cy="%.1f" r="3.5"/>`, x(last.t), y(last.v))
	}
	b.WriteString(`</svg>`)
	return b.String()
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}
