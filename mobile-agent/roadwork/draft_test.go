package roadwork

import (
	"bytes"
	"encoding/binary"
	"errors"
	"image"
	"image/color"
	"image/draw"
	"image/jpeg"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/kogge-fleet/kogge/drivers/gnss"
	"github.com/kogge-fleet/kogge/mobile-agent/roadwork/photo"
	"github.com/kogge-fleet/kogge/protocol/casefile"
)

var now = time.Date(2026, 5, 4, 9, 30, 0, 0, time.UTC)

// cameraShot is a small camera JPEG with an EXIF block (orientation and a
// GPS pointer), as a handheld's camera writes it.
func cameraShot(t testing.TB) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 320, 240))
	draw.Draw(img, img.Rect, image.NewUniform(color.RGBA{90, 90, 95, 255}), image.Point{}, draw.Src)
	draw.Draw(img, image.Rect(100, 120, 220, 180), image.NewUniform(color.RGBA{30, 30, 30, 255}), image.Point{}, draw.Src)
	draw.Draw(img, image.Rect(20, 20, 60, 60), image.NewUniform(color.RGBA{220, 180, 150, 255}), image.Point{}, draw.Src)
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, nil); err != nil {
		t.Fatal(err)
	}
	// TIFF, little-endian: IFD0 with the orientation (1) and a GPS IFD
	// pointer.
	tiff := []byte("II*\x00\x08\x00\x00\x00\x02\x00" +
		"\x12\x01\x03\x00\x01\x00\x00\x00\x01\x00\x00\x00" +
		"\x25\x88\x04\x00\x01\x00\x00\x00\x26\x00\x00\x00" +
		"\x00\x00\x00\x00" +
		"\x01\x00\x01\x00\x02\x00\x02\x00\x00\x00N\x00\x00\x00\x00\x00\x00\x00")
	app1 := append([]byte("Exif\x00\x00"), tiff...)
	seg := []byte{0xFF, 0xE1, 0, 0}
	binary.BigEndian.PutUint16(seg[2:], uint16(len(app1)+2))
	out := append([]byte{0xFF, 0xD8}, seg...)
	out = append(out, app1...)
	return append(out, buf.Bytes()[2:]...)
}

func processor(t testing.TB) *photo.Processor {
	t.Helper()
	plates, err := photo.NewPlates(photo.PlateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	faces := photo.FacesFunc(func(image.Image) []image.Rectangle { return []image.Rectangle{image.Rect(20, 20, 60, 60)} })
	p, err := photo.NewProcessor(faces, plates, photo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func processed(t testing.TB) Photo {
	t.Helper()
	res, err := processor(t).Process(cameraShot(t))
	if err != nil {
		t.Fatal(err)
	}
	return PhotoFrom(res, now.Add(-time.Minute), "Übersicht")
}

func fix(lat, lon, acc float64, received time.Time) *gnss.Position {
	return &gnss.Position{Fix: gnss.Fix{Lat: lat, Lon: lon, Accuracy: acc, HDOP: acc / 5}, Received: received}
}

func goodDraft(t testing.TB) *Draft {
	return &Draft{
		Category: Pothole, Severity: casefile.SeverityHigh,
		Position: fix(53.0701, 8.8265, 6, now.Add(-5*time.Second)),
		Street:   "Osterdeich", HouseNumber: "12", City: "Bremen",
		Note:   "Tiefes Schlagloch, etwa 40 cm, Radfahrer gefährdet.",
		Photos: []Photo{processed(t)},
	}
}

// fields returns the fields of the FieldErrors in err.
func fields(err error) []string {
	var out []string
	var walk func(error)
	walk = func(err error) {
		var fe *FieldError
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
		} else if errors.As(err, &fe) {
			out = append(out, fe.Field)
		}
	}
	if err != nil {
		walk(err)
	}
	return out
}

func TestDraftValidate(t *testing.T) {
	raw := cameraShot(t)
	cases := []struct {
		name  string
		edit  func(d *Draft)
		field string
	}{
		{"no category", func(d *Draft) { d.Category = "" }, "category"},
		{"unknown category", func(d *Draft) { d.Category = "kerb" }, "category"},
		{"severity label", func(d *Draft) { d.Severity = "hoch" }, "severity"},
		{"inaccurate", func(d *Draft) { d.Position.Accuracy = 85 }, "position"},
		{"stale", func(d *Draft) { d.Position.Received = now.Add(-10 * time.Minute) }, "position"},
		{"stale by age", func(d *Draft) { d.Position.Received = time.Time{}; d.Position.Age = 3 * time.Minute }, "position"},
		{"null island", func(d *Draft) { d.Position.Lat, d.Position.Lon = 0, 0 }, "position"},
		{"nan", func(d *Draft) { d.Position.Lat = math.NaN() }, "position"},
		{"out of range", func(d *Draft) { d.Position.Lon = 181 }, "position"},
		{"nowhere", func(d *Draft) { d.Position, d.Street = nil, " " }, "location"},
		{"long note", func(d *Draft) { d.Note = strings.Repeat("ä", 2001) }, "note"},
		{"control", func(d *Draft) { d.Street = "Oster\x00deich" }, "street"},
		{"bad utf8", func(d *Draft) { d.City = "\xff" }, "city"},
		{"long number", func(d *Draft) { d.HouseNumber = strings.Repeat("1", 33) }, "house_number"},
		{"camera original", func(d *Draft) { d.Photos[0].Private = raw }, "photos[0]"},
		{"camera public", func(d *Draft) { d.Photos[0].Public = raw }, "photos[0]"},
		{"not a jpeg", func(d *Draft) { d.Photos[0].Private = []byte("GIF89a") }, "photos[0]"},
		{"no private", func(d *Draft) { d.Photos[0].Private = nil }, "photos[0]"},
		{"too many", func(d *Draft) {
			for range 6 {
				d.Photos = append(d.Photos, d.Photos[0])
			}
		}, "photos"},
	}
	for _, c := range cases {
		d := goodDraft(t)
		c.edit(d)
		err := d.Validate(Limits{}, now)
		got := fields(err)
		if len(got) != 1 || got[0] != c.field {
			t.Errorf("%s: fields %v (%v), want [%s]", c.name, got, err, c.field)
		}
	}
	// Multiple problems come together.
	d := &Draft{}
	if got := fields(d.Validate(Limits{}, now)); len(got) != 3 {
		t.Errorf("empty draft: %v, want category, severity, location", got)
	}
	// Valid: a position alone, a street alone, a note of exactly 4000 bytes.
	for name, edit := range map[string]func(d *Draft){
		"position only": func(d *Draft) { d.Street, d.HouseNumber, d.City = "", "", "" },
		"street only":   func(d *Draft) { d.Position = nil },
		"4000 bytes":    func(d *Draft) { d.Note = strings.Repeat("ä", 2000) + "\n" },
		"no photos":     func(d *Draft) { d.Photos = nil },
		"limits":        func(d *Draft) { d.Position.Accuracy = 49 },
	} {
		d := goodDraft(t)
		edit(d)
		if name == "4000 bytes" {
			d.Note = d.Note[:4000]
		}
		if err := d.Validate(Limits{}, now); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := (&Limits{MaxPhotos: 9}).Validate(); err == nil {
		t.Error("9 photos allowed: a record has 16 blobs")
	}
}

func TestDraftBuild(t *testing.T) {
	d := goodDraft(t)
	d.Photos = append(d.Photos, Photo{Private: d.Photos[0].Private, At: now}) // no public copy
	rep, blobs, err := d.Build(Author{Officer: "W-0417", Crew: "Kolonne Nord"}, Limits{}, now)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Category != "pothole" || rep.Severity != "high" || rep.Reporter != casefile.ReporterCrew || rep.Crew != "Kolonne Nord" ||
		rep.Location.Street != "Osterdeich" || rep.Location.Position == nil || rep.Location.Position.AccuracyM != 6 ||
		rep.CreatedAt != casefile.At(now) || rep.Note != d.Note {
		t.Fatalf("report %+v", rep)
	}
	if len(blobs) != 3 || len(rep.Photos) != 3 {
		t.Fatalf("%d blobs, %d photos; want 3 (private, public, private)", len(blobs), len(rep.Photos))
	}
	roles := []string{"photo-1", "photo-1-public", "photo-2"}
	for i, b := range blobs {
		p := rep.Photos[i]
		if b.ID != p.Image || b.ID.Version() != 7 || b.Role != roles[i] || p.Public != strings.HasSuffix(b.Role, "-public") {
			t.Errorf("blob %d %v %s vs photo %+v", i, b.ID, b.Role, p)
		}
		if md, err := photo.Metadata(b.Data); err != nil || len(md) > 0 {
			t.Errorf("blob %d carries metadata %v, %v", i, md, err)
		}
	}
	if !bytes.Equal(blobs[1].Data, d.Photos[0].Public) || rep.Photos[0].Caption != "Übersicht" {
		t.Error("public copy or caption not carried over")
	}
	// The document encodes and names exactly its blobs.
	b, err := casefile.Encode(rep)
	if err != nil {
		t.Fatal(err)
	}
	back, err := casefile.DecodeReport(b)
	if err != nil || len(back.Blobs()) != 3 {
		t.Fatalf("decode: %v, %v", back, err)
	}
	if _, _, err := (&Draft{}).Build(Author{}, Limits{}, now); err == nil {
		t.Fatal("empty draft built")
	}
}
