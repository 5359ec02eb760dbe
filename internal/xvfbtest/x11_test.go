package xvfbtest

import (
	"bytes"
	"encoding/binary"
	"image/color"
	"strings"
	"testing"
)

func TestDisplayNumber(t *testing.T) {
	tests := []struct {
		display string
		want    string // "" for an error
	}{
		{":1", "1"},
		{":0", "0"},
		{":12.0", "12"},
		{":99999", "99999"},
		{"", ""},
		{"1", ""},
		{":", ""},
		{":.0", ""},
		{":x", ""},
		{":1x", ""},
		{":-1", ""},
		{":123456", ""},
		{"localhost:1", ""},
		{"host:1.0", ""},
		{"unix:1", ""},
		{":1/../../etc", ""},
		{"::1", ""},
	}
	for _, tt := range tests {
		got, err := displayNumber(tt.display)
		if tt.want == "" {
			if err == nil {
				t.Errorf("displayNumber(%q) = %q, want an error", tt.display, got)
			} else if !strings.Contains(err.Error(), tt.display) {
				t.Errorf("displayNumber(%q): error %q does not name the display", tt.display, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("displayNumber(%q) = %q, %v; want %q", tt.display, got, err, tt.want)
		}
	}
}

func TestGrabX11BadDisplay(t *testing.T) {
	for _, d := range []string{"", "remote:0", ":abc"} {
		if _, err := GrabX11(d); err == nil {
			t.Errorf("GrabX11(%q) took a screenshot", d)
		}
	}
}

// setupReply is what Xvfb -screen 0 640x480x24 answers on a little-endian
// machine, trimmed: vendor "Test", formats for depths 1 and 24, one
// screen with one depth of two visuals, the root visual second.
type setupReply struct {
	status      byte
	imageOrder  byte
	depth       byte
	bpp24       byte
	class       byte
	redMask     uint32
	rootVisual  uint32
	width       uint16
	height      uint16
	cutAt       int // keep only this many bytes of the body (0: all)
	screenCount byte
}

func goodReply() setupReply {
	return setupReply{status: 1, depth: 24, bpp24: 32, class: 4, redMask: 0xff0000, rootVisual: 0x21, width: 640, height: 480, screenCount: 1}
}

func (r setupReply) bytes() []byte {
	le := binary.LittleEndian
	var body []byte
	u8 := func(v byte) { body = append(body, v) }
	u16 := func(v uint16) { body = le.AppendUint16(body, v) }
	u32 := func(v uint32) { body = le.AppendUint32(body, v) }
	u32(12000000)     // release
	u32(0x00200000)   // resource-id-base
	u32(0x001fffff)   // resource-id-mask
	u32(256)          // motion buffer
	u16(4)            // vendor length
	u16(0xffff)       // maximum request length
	u8(r.screenCount) // screens
	u8(2)             // formats
	u8(r.imageOrder)  // image byte order
	u8(0)             // bitmap bit order
	u8(32)            // scanline unit
	u8(32)            // scanline pad
	u8(8)             // min keycode
	u8(255)           // max keycode
	u32(0)            // unused
	body = append(body, "Test"...)
	body = append(body, 1, 1, 32, 0, 0, 0, 0, 0)
	body = append(body, 24, r.bpp24, 32, 0, 0, 0, 0, 0)
	// Screen.
	u32(0x2b8)    // root
	u32(0x20)     // colormap
	u32(0xffffff) // white
	u32(0)        // black
	u32(0)        // input masks
	u16(r.width)  // width
	u16(r.height) // height
	u16(169)      // mm
	u16(127)      // mm
	u16(1)        // min maps
	u16(1)        // max maps
	u32(r.rootVisual)
	u8(0)       // backing stores
	u8(0)       // save unders
	u8(r.depth) // root depth
	u8(1)       // depths
	// Depth 24 with two visuals.
	u8(24)
	u8(0)
	u16(2)
	u32(0)
	for _, id := range []uint32{0x22, 0x21} {
		u32(id)
		u8(r.class)
		u8(8)
		u16(256)
		u32(r.redMask)
		u32(0xff00)
		u32(0xff)
		u32(0)
	}
	if r.cutAt > 0 {
		body = body[:r.cutAt]
		for len(body)%4 != 0 {
			body = body[:len(body)-1]
		}
	}
	head := []byte{r.status, 0, 11, 0, 0, 0, 0, 0}
	le.PutUint16(head[6:], uint16(len(body)/4))
	return append(head, body...)
}

func TestParseSetup(t *testing.T) {
	scr, err := parseSetup(goodReply().bytes())
	if err != nil {
		t.Fatal(err)
	}
	if scr != (screen{root: 0x2b8, width: 640, height: 480}) {
		t.Fatalf("screen %+v; want root 0x2b8, 640×480", scr)
	}

	refused := []byte{0, 14, 11, 0, 0, 0, 4, 0}
	refused = append(refused, "no such client\x00\x00"...)
	auth := []byte{2, 0, 0, 0, 0, 0, 2, 0}
	auth = append(auth, "cookie\x00\x00"...)
	badLength := goodReply().bytes()
	badLength[6]++
	tests := []struct {
		name string
		b    []byte
		want string // in the error
	}{
		{"empty", nil, "shorter than its header"},
		{"header only, length says more", badLength[:8], "0 bytes after the header"},
		{"length wrong", badLength, "the header says"},
		{"refused", refused, `refused the connection: "no such client"`},
		{"authorization", auth, `wants authorization: "cookie"`},
		{"status", func() []byte { r := goodReply(); r.status = 7; return r.bytes() }(), "status 7"},
		{"big-endian images", func() []byte { r := goodReply(); r.imageOrder = 1; return r.bytes() }(), "big-endian"},
		{"no screen", func() []byte { r := goodReply(); r.screenCount = 0; return r.bytes() }(), "no screen"},
		{"depth 16", func() []byte { r := goodReply(); r.depth = 16; return r.bytes() }(), "root depth 16"},
		{"24 in 24 bits", func() []byte { r := goodReply(); r.bpp24 = 24; return r.bytes() }(), "in 24 bits per pixel"},
		{"no pixels", func() []byte { r := goodReply(); r.width = 0; return r.bytes() }(), "no pixels"},
		{"DirectColor", func() []byte { r := goodReply(); r.class = 5; return r.bytes() }(), "class 5"},
		{"BGR masks", func() []byte { r := goodReply(); r.redMask = 0xff; return r.bytes() }(), "masks 0xff 0xff00 0xff"},
		{"no root visual", func() []byte { r := goodReply(); r.rootVisual = 0x99; return r.bytes() }(), "no root visual 0x99"},
		{"fixed part cut", func() []byte { r := goodReply(); r.cutAt = 28; return r.bytes() }(), "too short"},
		{"formats cut", func() []byte { r := goodReply(); r.cutAt = 40; return r.bytes() }(), "formats cut off"},
		{"screen cut", func() []byte { r := goodReply(); r.cutAt = 80; return r.bytes() }(), "screen cut off"},
		{"depths cut", func() []byte { r := goodReply(); r.cutAt = 96; return r.bytes() }(), "depths cut off"},
		{"visuals cut", func() []byte { r := goodReply(); r.cutAt = 140; return r.bytes() }(), "visuals cut off"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			scr, err := parseSetup(tt.b)
			if err == nil {
				t.Fatalf("parsed %+v", scr)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q; want it to say %q", err, tt.want)
			}
		})
	}
}

func FuzzParseSetup(f *testing.F) {
	f.Add(goodReply().bytes())
	f.Add([]byte{0, 3, 11, 0, 0, 0, 1, 0, 'n', 'o', '!', 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		scr, err := parseSetup(b)
		if err != nil {
			return
		}
		if scr.width == 0 || scr.height == 0 {
			t.Fatalf("accepted a screen without pixels: %+v", scr)
		}
		// A reply it accepts is one whose fixed part it read: the same
		// bytes with one more word of body no longer match the header.
		if _, err := parseSetup(append(bytes.Clone(b), 0, 0, 0, 0)); err == nil {
			t.Fatal("accepted a reply longer than its header says")
		}
	})
}

func TestDecodeZPixmap(t *testing.T) {
	// Two by two pixels, 0x00RRGGBB little-endian.
	data := []byte{
		0x40, 0x80, 0xff, 0x00, 0x00, 0x00, 0x00, 0xee,
		0xff, 0xff, 0xff, 0x00, 0x91, 0x3d, 0x0b, 0x00,
	}
	img := decodeZPixmap(data, 2, 2)
	want := map[[2]int]color.RGBA{
		{0, 0}: {0xff, 0x80, 0x40, 0xff},
		{1, 0}: {0, 0, 0, 0xff},
		{0, 1}: {0xff, 0xff, 0xff, 0xff},
		{1, 1}: {0x0b, 0x3d, 0x91, 0xff},
	}
	for p, c := range want {
		if got := img.RGBAAt(p[0], p[1]); got != c {
			t.Errorf("pixel %v = %v; want %v", p, got, c)
		}
	}
}
