package photo

import (
	"bytes"
	"encoding/binary"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"slices"
	"testing"
)

func TestMetadataFindsWhatCamerasWrite(t *testing.T) {
	img, _ := street(160, 120, 1)
	data := cameraJPEG(t, img, OrientRotate90, binary.LittleEndian)
	md, err := Metadata(data)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"exif", "xmp", "icc", "iptc", "comment", "jfif-thumbnail", "trailing-data"} {
		if !slices.Contains(md, want) {
			t.Errorf("Metadata = %v, misses %s", md, want)
		}
	}
	if o := Orientation(data); o != OrientRotate90 {
		t.Fatalf("Orientation = %d, want 6", o)
	}
	if o := Orientation(cameraJPEG(t, img, OrientRotate270, binary.BigEndian)); o != OrientRotate270 {
		t.Fatalf("big-endian Orientation = %d, want 8", o)
	}
}

func TestCleanStripsMetadata(t *testing.T) {
	img, _ := street(320, 240, 2)
	for _, bo := range []binary.ByteOrder{binary.LittleEndian, binary.BigEndian} {
		out, err := Options{}.Clean(cameraJPEG(t, img, OrientNormal, bo))
		if err != nil {
			t.Fatal(err)
		}
		segs, trailing, err := Segments(out)
		if err != nil {
			t.Fatal(err)
		}
		if trailing != 0 {
			t.Errorf("%d bytes after the image", trailing)
		}
		// Only what an image needs: SOI, DQT, SOF0, DHT, SOS, EOI.
		for _, s := range segs {
			switch s.Marker {
			case 0xD8, 0xDB, 0xC0, 0xC4, 0xDA, 0xD9:
			default:
				t.Errorf("output has a segment %02X", s.Marker)
			}
		}
		if md, err := Metadata(out); err != nil || len(md) != 0 {
			t.Errorf("Metadata(output) = %v, %v", md, err)
		}
		for _, leak := range []string{"Exif", "KameraX", "GPS", "xmpmeta", "ICC_PROFILE", "8BIM", "Kolonne", "MAKERNOTE"} {
			if bytes.Contains(out, []byte(leak)) {
				t.Errorf("output contains %q", leak)
			}
		}
		if _, err := jpeg.Decode(bytes.NewReader(out)); err != nil {
			t.Fatalf("output does not decode: %v", err)
		}
	}
}

// TestOrientation marks two corners of a landscape image, stores it with
// each EXIF orientation and checks where the corners are after Decode.
func TestOrientation(t *testing.T) {
	const w, h = 96, 64
	red, green := color.RGBA{230, 20, 20, 255}, color.RGBA{20, 200, 20, 255}
	src := image.NewRGBA(image.Rect(0, 0, w, h))
	fill(src, src.Rect, color.RGBA{128, 128, 128, 255})
	fill(src, image.Rect(0, 0, 16, 16), red)     // stored top-left
	fill(src, image.Rect(w-16, 0, w, 16), green) // stored top-right
	const (
		tl = iota
		tr
		bl
		br
	)
	cases := []struct {
		o          uint16
		red, green int // displayed corner
	}{
		{OrientNormal, tl, tr},
		{OrientFlipH, tr, tl},
		{OrientRotate180, br, bl},
		{OrientFlipV, bl, br},
		{OrientTranspose, tl, bl},
		{OrientRotate90, tr, br},
		{OrientTransverse, br, tr},
		{OrientRotate270, bl, tl},
	}
	for _, c := range cases {
		img, _, err := Options{}.Decode(cameraJPEG(t, src, c.o, binary.BigEndian))
		if err != nil {
			t.Fatal(err)
		}
		dw, dh := w, h
		if c.o >= OrientTranspose {
			dw, dh = h, w
		}
		if img.Rect.Dx() != dw || img.Rect.Dy() != dh {
			t.Fatalf("orientation %d: %v, want %d×%d", c.o, img.Rect, dw, dh)
		}
		corner := func(k int) color.RGBA {
			x, y := 8, 8
			if k == tr || k == br {
				x = dw - 9
			}
			if k == bl || k == br {
				y = dh - 9
			}
			return img.RGBAAt(x, y)
		}
		if !near(corner(c.red), red) || !near(corner(c.green), green) {
			t.Errorf("orientation %d: red corner %v, green corner %v", c.o, corner(c.red), corner(c.green))
		}
	}
}

func near(a, b color.RGBA) bool {
	d := func(x, y uint8) int { return max(int(x)-int(y), int(y)-int(x)) }
	return d(a.R, b.R) < 40 && d(a.G, b.G) < 40 && d(a.B, b.B) < 40
}

func TestDecodeRefuses(t *testing.T) {
	img, _ := street(64, 48, 3)
	good := cameraJPEG(t, img, OrientNormal, binary.LittleEndian)
	var pngBuf bytes.Buffer
	png.Encode(&pngBuf, img)
	cases := map[string]struct {
		data []byte
		opts Options
		want error
	}{
		"empty":     {nil, Options{}, ErrFormat},
		"gif":       {[]byte("GIF89a\x01\x00\x01\x00"), Options{}, ErrFormat},
		"text":      {[]byte("hello"), Options{}, ErrFormat},
		"truncated": {good[:len(good)/2], Options{}, nil},
		"bytes":     {good, Options{MaxBytes: 100}, ErrTooLarge},
		"pixels":    {good, Options{MaxPixels: 64*48 - 1}, ErrTooLarge},
		"png pix":   {pngBuf.Bytes(), Options{MaxPixels: 100}, ErrTooLarge},
	}
	for name, c := range cases {
		_, _, err := c.opts.Decode(c.data)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
	if _, f, err := (Options{}).Decode(pngBuf.Bytes()); err != nil || f != FormatPNG {
		t.Fatalf("PNG: %v, %v", f, err)
	}
}

func TestPNGTransparencyOnWhite(t *testing.T) {
	src := image.NewNRGBA(image.Rect(0, 0, 8, 8))
	var buf bytes.Buffer
	png.Encode(&buf, src)
	img, _, err := Options{}.Decode(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if c := img.RGBAAt(4, 4); c != (color.RGBA{255, 255, 255, 255}) {
		t.Fatalf("transparent pixel became %v, want white", c)
	}
}

func TestSegmentsRefuses(t *testing.T) {
	img, _ := street(32, 32, 4)
	good := cameraJPEG(t, img, OrientNormal, binary.LittleEndian)
	for name, b := range map[string][]byte{
		"not jpeg":   []byte("\x89PNG\r\n\x1a\n"),
		"no marker":  {0xFF, 0xD8, 0x00, 0x00},
		"long seg":   {0xFF, 0xD8, 0xFF, 0xE1, 0xFF, 0xFF, 0x00},
		"no length":  {0xFF, 0xD8, 0xFF, 0xE1},
		"scan noend": append(append([]byte{}, good[:len(good)-40]...), 0x12),
	} {
		if _, _, err := Segments(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestShrink(t *testing.T) {
	src := image.NewRGBA(image.Rect(0, 0, 1000, 500))
	// Vertical stripes of 0 and 200: the average is 100.
	for y := range 500 {
		for x := range 1000 {
			v := uint8(0)
			if x%2 == 1 {
				v = 200
			}
			src.SetRGBA(x, y, color.RGBA{v, v, v, 255})
		}
	}
	out := shrink(src, 250)
	if out.Rect.Dx() != 250 || out.Rect.Dy() != 125 {
		t.Fatalf("shrunk to %v", out.Rect)
	}
	for _, p := range []image.Point{{0, 0}, {150, 75}, {249, 124}} {
		if c := out.RGBAAt(p.X, p.Y); c.R != 100 || c.A != 255 {
			t.Errorf("pixel %v = %v, want 100", p, c)
		}
	}
	// A fractional factor: every pixel covers 3⅓ stripes, the mean stays.
	out = shrink(src, 300)
	var sum int
	for x := range 300 {
		sum += int(out.RGBAAt(x, 10).R)
	}
	if out.Rect.Dx() != 300 || sum/300 < 98 || sum/300 > 102 {
		t.Fatalf("fractional shrink: %v, mean %d, want 100", out.Rect, sum/300)
	}
	if shrink(src, 1000) != src || shrink(src, 0) != src {
		t.Error("shrink copied an image that fits")
	}
	tall := shrink(image.NewRGBA(image.Rect(0, 0, 30, 90)), 45)
	if tall.Rect.Dx() != 15 || tall.Rect.Dy() != 45 {
		t.Errorf("portrait shrunk to %v", tall.Rect)
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, o := range []Options{{MaxSide: 10}, {Quality: 101}, {FaceCells: 40}, {Noise: 500}, {FaceMargin: -1}} {
		if o.Validate() == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	if err := (Options{}).Validate(); err != nil {
		t.Fatal(err)
	}
	if _, err := NewProcessor(nil, nil, Options{}); err == nil {
		t.Fatal("processor without finders accepted")
	}
}
