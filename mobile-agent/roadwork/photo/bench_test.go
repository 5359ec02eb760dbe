package photo

import (
	"encoding/binary"
	"image/color"
	"testing"
)

// BenchmarkFindPlates runs the plate finder on a 1600×1200 street photo.
func BenchmarkFindPlates(b *testing.B) {
	img, _ := withPlate(1600, 1200, "HB AB 1234", color.RGBA{245, 245, 240, 255})
	p := newPlates(b)
	for b.Loop() {
		if len(p.FindPlates(img)) != 1 {
			b.Fatal("plate not found")
		}
	}
}

// BenchmarkProcess makes both copies of a 12-megapixel camera JPEG
// (4000×3000) with the real face finder and the plate finder.
func BenchmarkProcess(b *testing.B) {
	img, _ := withPlate(4000, 3000, "HB AB 1234", color.RGBA{245, 245, 240, 255})
	data := cameraJPEG(b, img, OrientRotate90, binary.LittleEndian)
	faces, err := NewFaces(DefaultFaceOptions)
	if err != nil {
		b.Fatal(err)
	}
	p, err := NewProcessor(faces, newPlates(b), Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := p.Process(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkClean strips a 12-megapixel camera JPEG without a public copy.
func BenchmarkClean(b *testing.B) {
	img, _ := street(4000, 3000, 1)
	data := cameraJPEG(b, img, OrientNormal, binary.LittleEndian)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := (Options{}).Clean(data); err != nil {
			b.Fatal(err)
		}
	}
}
