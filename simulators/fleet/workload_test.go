package fleet

import (
	"bytes"
	"math"
	"testing"
	"time"

	"github.com/kogge-fleet/kogge/protocol/casefile"
)

func TestCurveAndClock(t *testing.T) {
	c := kioskCurve()
	tests := []struct {
		tod  time.Duration
		want float64
	}{
		{3 * time.Hour, 0},                  // night
		{8*time.Hour + 10*time.Minute, 0.5}, // the first hour: no ramp from a closed hour
		{10*time.Hour + 30*time.Minute, 1},  // the middle of the peak hour
		{11 * time.Hour, 0.95},              // halfway between 10:30 (1) and 11:30 (0.9)
		{18*time.Hour + 5*time.Minute, 0},   // closed
	}
	for _, tt := range tests {
		if got := c.At(tt.tod); math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("At(%v) = %v, want %v", tt.tod, got, tt.want)
		}
	}
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	clk := Clock{Origin: now.Add(-90 * time.Second), StartOfDay: 8 * time.Hour, Hour: time.Minute, Now: func() time.Time { return now }}
	if err := clk.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := clk.TimeOfDay(); got != 9*time.Hour+30*time.Minute {
		t.Errorf("time of day %v, want 9h30m", got)
	}
	if got := clk.Real(time.Hour); got != time.Minute {
		t.Errorf("a simulated hour lasts %v, want 1m", got)
	}
	if got := FormatTimeOfDay(clk.TimeOfDay()); got != "09:30" {
		t.Errorf("formatted %q", got)
	}
	// A kiosk at 09:30 (0.9 of the peak of 8 an hour) captures 7.2 times
	// a simulated hour, that is per real minute.
	if got := DefaultWorkload(Kiosk).RealRate(clk, 1) * 60; math.Abs(got-7.2) > 1e-9 {
		t.Errorf("kiosk rate %v per real minute, want 7.2", got)
	}
	if err := (Clock{}).Validate(); err == nil {
		t.Error("a zero clock validates")
	}
}

func TestCaptures(t *testing.T) {
	tests := []struct {
		role       Role
		office     string
		blobs      []int // min, max count
		minBytes   int   // of all blobs at scale 1
		roleprefix string
	}{
		{Kiosk, "buergeramt-mitte", []int{4, 4}, 450 << 10, "photo"},
		{Warden, "ordnungsamt", []int{3, 3}, 550 << 10, "photo-1"},
		{Crew, "strassenbau", []int{1, 3}, 190 << 10, "photo-1"},
	}
	for _, tt := range tests {
		t.Run(string(tt.role), func(t *testing.T) {
			at := func() time.Time { return time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC) }
			a := &Captures{g: newGenerator(tt.role, "dev-1", "mitte", 42, 1, at)}
			b := &Captures{g: newGenerator(tt.role, "dev-1", "mitte", 42, 1, at)}
			for range 5 {
				c, err := a.Next()
				if err != nil {
					t.Fatal(err)
				}
				c2, _ := b.Next()
				if c.Kind != tt.role.Kind() || c.Office != tt.office || c.Meta["district"] != "mitte" {
					t.Errorf("capture %s → %s, meta %v", c.Kind, c.Office, c.Meta)
				}
				doc, err := casefile.Decode(c.Kind, c.Body)
				if err != nil {
					t.Fatalf("the body is not a valid %s document: %v", c.Kind, err)
				}
				if doc.Kind() != c.Kind {
					t.Errorf("document kind %s", doc.Kind())
				}
				if n := len(c.Blobs); n < tt.blobs[0] || n > tt.blobs[1] {
					t.Errorf("%d blobs", n)
				}
				size := 0
				for _, bl := range c.Blobs {
					size += len(bl.Data)
				}
				if size < tt.minBytes*len(c.Blobs)/tt.blobs[1] {
					t.Errorf("blobs of %d bytes", size)
				}
				if c.Blobs[0].Role != tt.roleprefix {
					t.Errorf("first blob %q", c.Blobs[0].Role)
				}
				// The same seed makes the same captures.
				if !bytes.Equal(c.Body, c2.Body) || !bytes.Equal(c.Blobs[0].Data, c2.Blobs[0].Data) {
					t.Error("two generators with one seed differ")
				}
			}
			if c, _ := NewCaptures(tt.role, "dev-1", "mitte", 1, 0).Next(); len(c.Blobs) != 0 {
				t.Errorf("blob scale 0: %d blobs", len(c.Blobs))
			}
		})
	}
}

func TestDemoSpecs(t *testing.T) {
	specs := DemoSpecs(12, 20, []string{"mitte", "nord", "sued"}, 4)
	roles, procs, ids := map[Role]int{}, 0, map[string]bool{}
	districts := map[string]int{}
	for _, s := range specs {
		roles[s.Role]++
		districts[s.District]++
		if s.Process {
			procs++
		}
		if ids[s.ID] {
			t.Errorf("id %s twice", s.ID)
		}
		ids[s.ID] = true
	}
	if roles[Kiosk] != 12 || roles[Warden] != 10 || roles[Crew] != 10 || procs != 4 || len(districts) != 3 {
		t.Errorf("roles %v, %d processes, districts %v", roles, procs, districts)
	}
	if got := OfficesFor(specs); len(got) != 5 || got[0] != "buergeramt-mitte" || got[4] != "strassenbau" {
		t.Errorf("offices %v", got)
	}
}
