package photo

import (
	"bytes"
	"encoding/binary"
	"image"
	"image/color"
	"image/draw"
	"image/jpeg"
	"math/rand/v2"
	"testing"
)

// glyphs is a 5×7 font for the characters of the test plates.
var glyphs = map[rune][7]string{
	'A': {".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"},
	'B': {"####.", "#...#", "#...#", "####.", "#...#", "#...#", "####."},
	'E': {"#####", "#....", "#....", "####.", "#....", "#....", "#####"},
	'H': {"#...#", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"},
	'K': {"#...#", "#..#.", "#.#..", "##...", "#.#..", "#..#.", "#...#"},
	'M': {"#...#", "##.##", "#.#.#", "#.#.#", "#...#", "#...#", "#...#"},
	'1': {"..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."},
	'2': {".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"},
	'3': {"####.", "....#", "....#", ".###.", "....#", "....#", "####."},
	'4': {"...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."},
	'7': {"#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."},
}

// drawText draws text in the 5×7 font with dots of size dot at (x, y).
func drawText(img draw.Image, x, y, dot int, text string, c color.Color) {
	drawTextWH(img, x, y, dot, dot, text, c)
}

// drawTextWH draws text with dots dw wide and dh high.
func drawTextWH(img draw.Image, x, y, dw, dh int, text string, c color.Color) {
	for _, r := range text {
		if g, ok := glyphs[r]; ok {
			for gy, row := range g {
				for gx, ch := range row {
					if ch == '#' {
						draw.Draw(img, image.Rect(x+gx*dw, y+gy*dh, x+(gx+1)*dw, y+(gy+1)*dh), image.NewUniform(c), image.Point{}, draw.Src)
					}
				}
			}
		}
		x += 6 * dw
	}
}

func fill(img draw.Image, r image.Rectangle, c color.Color) {
	draw.Draw(img, r, image.NewUniform(c), image.Point{}, draw.Src)
}

// drawPlate draws a European plate of width w (height w/4.7) at (x, y):
// a white or yellow ground, a black frame, the blue EU strip and the text.
// It returns the plate's rectangle.
func drawPlate(img draw.Image, x, y, w int, text string, ground color.Color) image.Rectangle {
	h := w * 10 / 47
	r := image.Rect(x, y, x+w, y+h)
	fill(img, r, color.RGBA{20, 20, 20, 255})
	fill(img, r.Inset(max(1, h/30)), ground)
	strip := image.Rect(r.Min.X+h/30, r.Min.Y+h/30, r.Min.X+w/11, r.Max.Y-h/30)
	fill(img, strip, color.RGBA{0, 51, 153, 255})
	// Characters 70 % of the plate's height, at most as wide as a dot is
	// high, the text centred on the plate right of the strip.
	dh := max(1, h*7/10/7)
	tx := strip.Max.X + w/30
	room := r.Max.X - w/30 - tx
	dw := max(1, min(dh, room/(6*len(text)-1)))
	tx += (room - dw*(6*len(text)-1)) / 2
	ty := y + (h-7*dh)/2
	drawTextWH(img, tx, ty, dw, dh, text, color.RGBA{10, 10, 10, 255})
	return r
}

// street draws a street scene of w×h: sky, houses, road with noise, a car.
// It returns the car's rectangle.
func street(w, h int, seed uint64) (*image.RGBA, image.Rectangle) {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	rng := rand.New(rand.NewPCG(seed, 7))
	for y := range h {
		row := img.Pix[y*img.Stride : y*img.Stride+4*w]
		for x := range w {
			var c color.RGBA
			switch {
			case y < h/4: // sky, a gradient
				c = color.RGBA{uint8(110 + 60*y/(h/4)), uint8(150 + 50*y/(h/4)), 230, 255}
			case y < h/2: // house fronts
				c = color.RGBA{170, 120, 90, 255}
				if (x/(w/8))%2 == 0 {
					c = color.RGBA{190, 170, 140, 255}
				}
			default: // asphalt with grain
				g := uint8(85 + rng.IntN(30))
				c = color.RGBA{g, g, g + 5, 255}
			}
			row[4*x], row[4*x+1], row[4*x+2], row[4*x+3] = c.R, c.G, c.B, c.A
		}
	}
	car := image.Rect(w/3, h/2-h/10, w/3+w/3, h/2+h/5)
	fill(img, car, color.RGBA{120, 20, 25, 255})
	fill(img, image.Rect(car.Min.X+car.Dx()/8, car.Min.Y+car.Dy()/10, car.Max.X-car.Dx()/8, car.Min.Y+car.Dy()*4/10), color.RGBA{40, 50, 60, 255})
	return img, car
}

// withPlate is a street scene with a plate on the car's back.
func withPlate(w, h int, text string, ground color.Color) (*image.RGBA, image.Rectangle) {
	img, car := street(w, h, 1)
	pw := car.Dx() * 2 / 5
	plate := drawPlate(img, car.Min.X+(car.Dx()-pw)/2, car.Max.Y-car.Dy()/4, pw, text, ground)
	return img, plate
}

// tiff builds a TIFF block with IFD0 holding the orientation, a camera
// make and a pointer to a GPS IFD.
func tiff(bo binary.ByteOrder, orientation uint16) []byte {
	var b bytes.Buffer
	if bo == binary.LittleEndian {
		b.WriteString("II")
	} else {
		b.WriteString("MM")
	}
	w := func(v any) { binary.Write(&b, bo, v) }
	w(uint16(42))
	w(uint32(8))
	// IFD0: 3 entries at 8; after it (8+2+36+4 = 50) the make string,
	// then the GPS IFD at 64.
	w(uint16(3))
	w([]uint16{0x010F, 2})
	w(uint32(11))
	w(uint32(50))
	w([]uint16{0x0112, 3})
	w(uint32(1))
	w([]uint16{orientation, 0})
	w([]uint16{0x8825, 4})
	w(uint32(1))
	w(uint32(64))
	w(uint32(0))
	b.WriteString("KameraX-42\x00\x00\x00\x00") // 14 bytes: up to 64
	// GPS IFD: latitude ref N.
	w(uint16(1))
	w([]uint16{0x0001, 2})
	w(uint32(2))
	b.WriteString("N\x00\x00\x00")
	w(uint32(0))
	return b.Bytes()
}

func segment(marker byte, payload []byte) []byte {
	b := []byte{0xFF, marker, 0, 0}
	binary.BigEndian.PutUint16(b[2:], uint16(len(payload)+2))
	return append(b, payload...)
}

// cameraJPEG encodes img and adds what cameras add: a JFIF header with a
// thumbnail, EXIF with the orientation, a make and GPS, XMP, an ICC
// profile, IPTC, a comment and bytes after the image.
func cameraJPEG(t testing.TB, img image.Image, orientation uint16, bo binary.ByteOrder) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	plain := buf.Bytes()
	var out []byte
	out = append(out, 0xFF, 0xD8)
	out = append(out, segment(0xE0, append([]byte("JFIF\x00\x01\x02\x00\x00\x01\x00\x01\x02\x01"), make([]byte, 6)...))...)
	out = append(out, segment(0xE1, append([]byte("Exif\x00\x00"), tiff(bo, orientation)...))...)
	out = append(out, segment(0xE1, []byte("http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta><exif:GPSLatitude>53,4.8N</exif:GPSLatitude></x:xmpmeta>"))...)
	out = append(out, segment(0xE2, []byte("ICC_PROFILE\x00\x01\x01fakeprofile"))...)
	out = append(out, segment(0xED, []byte("Photoshop 3.0\x008BIM\x04\x04byline: Fotograf"))...)
	out = append(out, segment(0xFE, []byte("Aufgenommen von Kolonne Nord"))...)
	out = append(out, plain[2:]...)
	return append(out, []byte("MAKERNOTE-TRAILER")...)
}
