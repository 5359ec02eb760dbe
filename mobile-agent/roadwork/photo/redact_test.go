package photo

import (
	"bytes"
	"encoding/binary"
	"image"
	"image/color"
	"image/jpeg"
	"testing"

	"github.com/kogge-fleet/kogge/internal/facedetect/facedetecttest"
)

func iou(a, b image.Rectangle) float64 {
	in := a.Intersect(b)
	if in.Empty() {
		return 0
	}
	ai, aa, ab := float64(in.Dx()*in.Dy()), float64(a.Dx()*a.Dy()), float64(b.Dx()*b.Dy())
	return ai / (aa + ab - ai)
}

func newPlates(t testing.TB) *Plates {
	t.Helper()
	p, err := NewPlates(PlateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPlatesFindsPlates(t *testing.T) {
	p := newPlates(t)
	cases := []struct {
		name   string
		w, h   int
		text   string
		ground color.Color
	}{
		{"german white", 960, 720, "HB AB 1234", color.RGBA{245, 245, 240, 255}},
		{"short", 900, 675, "B A 12", color.RGBA{235, 235, 235, 255}},
		{"yellow", 960, 720, "12 KEM 4", color.RGBA{250, 205, 20, 255}},
		{"small plate", 800, 600, "HH MK 731", color.RGBA{240, 240, 240, 255}},
		{"shrunk for the search", 1600, 1200, "M EK 4172", color.RGBA{240, 240, 240, 255}},
	}
	for _, c := range cases {
		img, truth := withPlate(c.w, c.h, c.text, c.ground)
		got := p.FindPlates(img)
		if len(got) != 1 {
			t.Errorf("%s: found %v, want one plate at %v", c.name, got, truth)
			continue
		}
		if v := iou(got[0], truth); v < 0.6 || !got[0].Union(truth).Eq(got[0].Union(truth).Intersect(img.Rect)) {
			t.Errorf("%s: found %v, plate at %v (IoU %.2f)", c.name, got[0], truth, v)
		}
	}
}

func TestPlatesIgnoresOtherThings(t *testing.T) {
	p := newPlates(t)
	scenes := map[string]*image.RGBA{}
	img, _ := street(800, 600, 5)
	scenes["street"] = img

	img, _ = street(800, 600, 6)
	fill(img, image.Rect(350, 400, 500, 432), color.RGBA{245, 245, 245, 255}) // a blank white board
	scenes["blank board"] = img

	img, _ = street(800, 600, 7)
	fill(img, image.Rect(300, 350, 500, 395), color.RGBA{0, 60, 160, 255}) // a blue street sign, white letters
	drawText(img, 310, 355, 5, "HAMBE", color.RGBA{250, 250, 250, 255})
	scenes["blue sign"] = img

	img, _ = street(800, 600, 8)
	for y := 410; y < 500; y++ { // a pothole: a dark blob with a lighter rim
		for x := 300; x < 450; x++ {
			dx, dy := float64(x-375)/75, float64(y-455)/45
			if d := dx*dx + dy*dy; d < 1 {
				g := uint8(30 + 40*d)
				img.SetRGBA(x, y, color.RGBA{g, g, g, 255})
			}
		}
	}
	scenes["pothole"] = img

	for name, img := range scenes {
		if got := p.FindPlates(img); len(got) != 0 {
			t.Errorf("%s: found plates %v in a scene without one", name, got)
		}
	}
}

// edges counts the strong edges in r: neighbouring pixels whose grey
// values differ by 30 levels or more, as at the strokes of characters or
// the features of a face.
func edges(img *image.RGBA, r image.Rectangle) int {
	var n int
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X + 1; x < r.Max.X; x++ {
			a, b := img.RGBAAt(x-1, y), img.RGBAAt(x, y)
			d := (int(a.R) + int(a.G) + int(a.B)) - (int(b.R) + int(b.G) + int(b.B))
			if max(d, -d) >= 90 {
				n++
			}
		}
	}
	return n
}

func TestRedactChangesOnlyTheRegions(t *testing.T) {
	img, plate := withPlate(800, 600, "HB AB 1234", color.RGBA{245, 245, 240, 255})
	face := image.Rect(100, 150, 150, 200)
	fill(img, face, color.RGBA{220, 180, 150, 255})
	drawText(img, 107, 160, 2, "HE", color.RGBA{40, 20, 10, 255}) // eyes, nose: detail to remove
	before := toRGBA(img)
	o := Options{}.withDefaults()
	changed := o.Redact(img, []Region{{Rect: plate, Kind: KindPlate}, {Rect: face, Kind: KindFace}})
	if len(changed) != 2 {
		t.Fatalf("changed %v", changed)
	}
	// The margins: the face grows by 30 % and 60 % upwards.
	if want := image.Rect(85, 120, 165, 215); changed[1] != want {
		t.Errorf("face region %v, want %v", changed[1], want)
	}
	if !plate.In(changed[0]) {
		t.Errorf("plate region %v does not cover the plate %v", changed[0], plate)
	}
	for i, r := range changed {
		e0, e1 := edges(before, r), edges(img, r)
		if e0 < 40 || e1 > 0 {
			t.Errorf("region %d: %d strong edges → %d, want none left", i, e0, e1)
		}
	}
	// Outside the regions every pixel is as before.
	if !sameOutside(img, before, changed) {
		t.Fatal("pixels outside the regions changed")
	}
	// The plate can no longer be found, and there is no text rhythm.
	if got := newPlates(t).FindPlates(img); len(got) != 0 {
		t.Errorf("plate still found after redaction: %v", got)
	}
}

func TestRedactIsNotRepeatable(t *testing.T) {
	// The noise makes two redactions of one image differ, so the cells
	// cannot be matched against renderings of candidate plates.
	a, plate := withPlate(800, 600, "HB AB 1234", color.RGBA{245, 245, 240, 255})
	b := toRGBA(a)
	o := Options{}.withDefaults()
	o.Redact(a, []Region{{Rect: plate, Kind: KindPlate}})
	o.Redact(b, []Region{{Rect: plate, Kind: KindPlate}})
	if bytes.Equal(a.Pix, b.Pix) {
		t.Fatal("two redactions are identical")
	}
}

func TestRedactClipsAndSkips(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, 50, 50))
	o := Options{}.withDefaults()
	got := o.Redact(img, []Region{
		{Rect: image.Rect(-20, -20, 10, 10), Kind: KindFace},
		{Rect: image.Rect(100, 100, 120, 120), Kind: KindPlate},
		{Rect: image.Rect(40, 40, 41, 41), Kind: KindManual},
	})
	if len(got) != 2 || !got[0].In(img.Rect) || got[1] != image.Rect(40, 40, 41, 41) {
		t.Fatalf("Redact = %v", got)
	}
}

// fakeFaces reports fixed boxes.
func fakeFaces(boxes ...image.Rectangle) FaceFinder {
	return FacesFunc(func(image.Image) []image.Rectangle { return boxes })
}

func TestProcess(t *testing.T) {
	scene, plate := withPlate(1200, 900, "HB AB 1234", color.RGBA{245, 245, 240, 255})
	data := cameraJPEG(t, scene, OrientNormal, binary.LittleEndian)
	// The face box in the public copy's coordinates (960 px wide).
	face := image.Rect(80, 120, 120, 160)
	p, err := NewProcessor(fakeFaces(face), newPlates(t), Options{PublicMaxSide: 960})
	if err != nil {
		t.Fatal(err)
	}
	res, err := p.Process(data, image.Rect(750, 50, 800, 100))
	if err != nil {
		t.Fatal(err)
	}
	if res.Width != 1200 || res.Height != 900 || res.PublicWidth != 960 || res.PublicHeight != 720 {
		t.Fatalf("sizes %d×%d and %d×%d", res.Width, res.Height, res.PublicWidth, res.PublicHeight)
	}
	if res.Faces != 1 || res.Plates != 1 || len(res.Redacted) != 3 {
		t.Fatalf("faces %d plates %d redacted %v", res.Faces, res.Plates, res.Redacted)
	}
	for name, b := range map[string][]byte{"private": res.Private, "public": res.Public} {
		if md, err := Metadata(b); err != nil || len(md) != 0 {
			t.Errorf("%s copy: metadata %v, %v", name, md, err)
		}
	}
	// The public plate region lost its detail; the private one kept it.
	pub, err := jpeg.Decode(bytes.NewReader(res.Public))
	if err != nil {
		t.Fatal(err)
	}
	priv, err := jpeg.Decode(bytes.NewReader(res.Private))
	if err != nil {
		t.Fatal(err)
	}
	k := 960.0 / 1200
	pubPlate := image.Rect(int(float64(plate.Min.X)*k), int(float64(plate.Min.Y)*k), int(float64(plate.Max.X)*k), int(float64(plate.Max.Y)*k))
	reference := shrink(toRGBA(priv), 960)
	if !pubPlate.In(res.Redacted[1]) {
		t.Fatalf("redacted %v, the plate is at %v", res.Redacted[1], pubPlate)
	}
	// Inside, not at the border of the redacted region, where it meets the
	// car.
	if e0, e1 := edges(reference, pubPlate.Inset(3)), edges(toRGBA(pub), pubPlate.Inset(3)); e0 < 100 || e1 > 0 {
		t.Errorf("strong edges in the plate: %d in the public copy, %d in the private one", e1, e0)
	}
	if newPlates(t).FindPlates(pub) != nil {
		t.Error("the public copy still shows a plate")
	}
	if len(newPlates(t).FindPlates(priv)) != 1 {
		t.Errorf("the private copy lost its plate: %v, plate at %v", newPlates(t).FindPlates(priv), plate)
	}
	// The manual region (750,50)-(800,100) is (600,40)-(640,80) in the
	// public copy.
	if want := image.Rect(600, 40, 640, 80); !slicesContain(res.Redacted, want) {
		t.Errorf("manual region not redacted as %v: %v", want, res.Redacted)
	}
	// Elsewhere the public copy is the private one scaled (up to JPEG's
	// loss).
	pubRGBA := toRGBA(pub)
	for _, pt := range []image.Point{{400, 50}, {50, 700}, {900, 500}} {
		if !near(pubRGBA.RGBAAt(pt.X, pt.Y), reference.RGBAAt(pt.X, pt.Y)) {
			t.Errorf("pixel %v differs outside the regions: %v vs %v", pt, pubRGBA.RGBAAt(pt.X, pt.Y), reference.RGBAAt(pt.X, pt.Y))
		}
	}
}

// sameOutside reports whether a and b are equal outside the rectangles.
func sameOutside(a, b *image.RGBA, rs []image.Rectangle) bool {
	a, b = toRGBA(a), toRGBA(b)
	for _, r := range rs {
		fill(a, r, color.RGBA{})
		fill(b, r, color.RGBA{})
	}
	return bytes.Equal(a.Pix, b.Pix)
}

func slicesContain(rs []image.Rectangle, r image.Rectangle) bool {
	for _, x := range rs {
		if x == r {
			return true
		}
	}
	return false
}

// TestProcessBlursARealFace puts pigo's sample portrait into a street scene:
// the face finder finds it, and in the public copy no face is found any more.
func TestProcessBlursARealFace(t *testing.T) {
	portrait := facedetecttest.Sample(t)
	scene, _ := street(720, 540, 9)
	at := image.Pt(40, 70)
	pr := portrait.Bounds()
	for y := range pr.Dy() {
		for x := range pr.Dx() {
			scene.Set(at.X+x, at.Y+y, portrait.At(pr.Min.X+x, pr.Min.Y+y))
		}
	}
	faces, err := NewFaces(DefaultFaceOptions)
	if err != nil {
		t.Fatal(err)
	}
	found := faces.FindFaces(scene)
	if len(found) == 0 {
		t.Fatal("no face found in the scene with the sample portrait")
	}
	inPortrait := image.Rectangle{Min: at, Max: at.Add(pr.Size())}
	if !found[0].Overlaps(inPortrait) {
		t.Fatalf("face found at %v, the portrait is at %v", found[0], inPortrait)
	}
	p, err := NewProcessor(faces, newPlates(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := p.Process(cameraJPEG(t, scene, OrientNormal, binary.LittleEndian))
	if err != nil {
		t.Fatal(err)
	}
	if res.Faces == 0 {
		t.Fatal("Process found no face")
	}
	pub, err := jpeg.Decode(bytes.NewReader(res.Public))
	if err != nil {
		t.Fatal(err)
	}
	if left := faces.FindFaces(pub); len(left) != 0 {
		t.Fatalf("faces still found in the public copy: %v", left)
	}
}
