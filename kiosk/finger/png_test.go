package finger_test

import (
	"bytes"
	"encoding/binary"
	"image"
	"image/color"
	"image/png"
	"testing"

	"github.com/kogge-fleet/kogge/kiosk/finger"
	fpsim "github.com/kogge-fleet/kogge/simulators/devices/fingerprint"
)

// chunks lists a PNG's chunk types and data in order.
func chunks(t *testing.T, b []byte) (types []string, data map[string][]byte) {
	t.Helper()
	if !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) {
		t.Fatal("no PNG signature")
	}
	data = map[string][]byte{}
	for p := 8; p < len(b); {
		if p+12 > len(b) {
			t.Fatalf("truncated chunk at %d", p)
		}
		n := int(binary.BigEndian.Uint32(b[p:]))
		typ := string(b[p+4 : p+8])
		types = append(types, typ)
		data[typ] = b[p+8 : p+8+n]
		p += 12 + n
	}
	return types, data
}

func TestPNG(t *testing.T) {
	img := fpsim.GoodImage(w, h, 4)
	b, err := finger.PNG(img, 500)
	if err != nil {
		t.Fatal(err)
	}
	// The decoder checks every chunk's CRC, ours included.
	back, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	g, ok := back.(*image.Gray)
	if !ok || back.ColorModel() != color.GrayModel {
		t.Fatalf("decoded as %T, want 8-bit grey", back)
	}
	if g.Bounds() != img.Bounds() || !bytes.Equal(g.Pix, img.Pix) {
		t.Fatal("pixels changed")
	}
	types, data := chunks(t, b)
	if len(types) < 4 || types[0] != "IHDR" || types[1] != "pHYs" || types[len(types)-1] != "IEND" {
		t.Fatalf("chunks %v", types)
	}
	if ihdr := data["IHDR"]; ihdr[8] != 8 || ihdr[9] != 0 {
		t.Errorf("bit depth %d, colour type %d: want 8-bit greyscale", ihdr[8], ihdr[9])
	}
	phys := data["pHYs"]
	// 500 ppi = 19685.04 pixels per metre.
	if len(phys) != 9 || binary.BigEndian.Uint32(phys) != 19685 || binary.BigEndian.Uint32(phys[4:]) != 19685 || phys[8] != 1 {
		t.Errorf("pHYs % X", phys)
	}
}

func TestPNGWithoutResolution(t *testing.T) {
	b, err := finger.PNG(fpsim.EmptyImage(80, 90, 1), 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, data := chunks(t, b); data["pHYs"] != nil {
		t.Error("pHYs written for ppi 0")
	}
	if _, err := png.Decode(bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
}

func TestPNGErrors(t *testing.T) {
	if _, err := finger.PNG(nil, 500); err == nil {
		t.Error("nil image encoded")
	}
	if _, err := finger.PNG(&image.Gray{}, 500); err == nil {
		t.Error("empty image encoded")
	}
	if _, err := finger.PNG(image.NewGray(image.Rect(0, 0, 4, 4)), -1); err == nil {
		t.Error("negative resolution accepted")
	}
}
