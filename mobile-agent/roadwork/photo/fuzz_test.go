package photo

import (
	"bytes"
	"encoding/binary"
	"image"
	"image/png"
	"testing"
)

func fuzzSeeds(f *testing.F) {
	img, _ := street(48, 32, 1)
	f.Add(cameraJPEG(f, img, OrientRotate90, binary.LittleEndian))
	f.Add(cameraJPEG(f, img, OrientTransverse, binary.BigEndian))
	var buf bytes.Buffer
	png.Encode(&buf, img)
	f.Add(buf.Bytes())
	f.Add([]byte{0xFF, 0xD8, 0xFF, 0xE1, 0x00, 0x10, 'E', 'x', 'i', 'f', 0, 0, 'I', 'I', 42, 0, 8, 0, 0, 0})
	f.Add([]byte("\x89PNG\r\n\x1a\n"))
	f.Add([]byte{})
}

// FuzzProcess feeds arbitrary bytes through the whole path a camera photo
// takes: decode, orientation, both copies. It must fail with an error,
// never panic, and whatever it returns carries no metadata.
func FuzzProcess(f *testing.F) {
	fuzzSeeds(f)
	p, err := NewProcessor(fakeFaces(image.Rect(2, 2, 20, 20)), newPlates(f),
		Options{MaxPixels: 1 << 16, MaxBytes: 1 << 20})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := p.Process(data, image.Rect(-5, -5, 1000, 3))
		if err != nil {
			return
		}
		for _, b := range [][]byte{res.Private, res.Public} {
			if md, err := Metadata(b); err != nil || len(md) > 0 {
				t.Fatalf("output metadata %v, %v", md, err)
			}
		}
	})
}

// FuzzSegments runs the JPEG segment parser and the EXIF orientation
// reader on arbitrary bytes.
func FuzzSegments(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		segs, trailing, err := Segments(data)
		if err == nil && (len(segs) < 2 || trailing < 0 || trailing > len(data)) {
			t.Fatalf("%d segments, %d trailing of %d bytes", len(segs), trailing, len(data))
		}
		Metadata(data)
		if o := Orientation(data); o < OrientNormal || o > OrientRotate270 {
			t.Fatalf("orientation %d", o)
		}
	})
}
