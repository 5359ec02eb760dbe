package kiosk_test

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"testing"

	"github.com/kogge-fleet/kogge/kiosk"
	"github.com/kogge-fleet/kogge/kiosk/flow"
)

func grey(w, h int, y uint8) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := 0; i < len(img.Pix); i += 4 {
		img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = y, y, y, 255
	}
	return img
}

func TestStandInFaces(t *testing.T) {
	var f kiosk.StandInFaces
	frame := grey(640, 480, 160)
	fc := f.Assess(frame)
	if !fc.OK || fc.Mandatory != 1 || len(fc.Guidance) != 0 {
		t.Fatalf("grey frame: %+v", fc)
	}
	if r := fc.Region; r.Dy() != 480 || r.Dx() != 373 || r.Min.X != 133 {
		t.Errorf("region %v: want the centre at 1244:1600", r)
	}
	b, err := f.Crop(frame, fc)
	if err != nil {
		t.Fatal(err)
	}
	img, err := jpeg.Decode(bytes.NewReader(b))
	if err != nil || img.Bounds().Dx() != 373 || img.Bounds().Dy() != 480 {
		t.Fatalf("crop: %v, %v: want a JPEG of the region, not scaled", err, img.Bounds())
	}
	for y, want := range map[uint8]string{10: "photo.too-dark", 250: "photo.too-bright"} {
		fc := f.Assess(grey(64, 48, y))
		if fc.OK || len(fc.Guidance) != 1 || fc.Guidance[0] != want {
			t.Errorf("grey %d: %+v, want %s", y, fc, want)
		}
	}
	if f.PAD(nil) != 0 {
		t.Error("the stand-in has no PAD detector")
	}
}

func TestStandInFingers(t *testing.T) {
	var f kiosk.StandInFingers
	blank := image.NewGray(image.Rect(0, 0, 64, 64))
	for i := range blank.Pix {
		blank.Pix[i] = 235
	}
	if s := f.Score(blank); s >= 30 {
		t.Errorf("blank sensor scores %d", s)
	}
	if s := f.Score(ridges()); s < 30 || s > 100 {
		t.Errorf("ridges score %d", s)
	}
	if s := f.Score(&image.Gray{}); s != 255 {
		t.Errorf("empty image scores %d, want 255", s)
	}
}

func TestStandInSignatures(t *testing.T) {
	var s kiosk.StandInSignatures
	b, err := s.Render([][]flow.Point{{{X: 10, Y: 10}, {X: 90, Y: 30}}}, 100, 40)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil || img.Bounds().Dx() != 100 || img.Bounds().Dy() != 40 {
		t.Fatalf("png: %v %v", err, img.Bounds())
	}
	ink := 0
	for y := range 40 {
		for x := range 100 {
			if color.GrayModel.Convert(img.At(x, y)).(color.Gray).Y < 128 {
				ink++
			}
		}
	}
	if ink < 80 {
		t.Errorf("%d ink pixels for a line of 80", ink)
	}
	if _, err := s.Render(nil, 100, 40); err == nil {
		t.Error("an empty signature rendered")
	}
}
