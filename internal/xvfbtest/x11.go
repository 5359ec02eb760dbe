package xvfbtest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"io"
	"net"
	"strings"
	"time"
)

// x11Timeout bounds one screenshot: connecting, setup and GetImage.
const x11Timeout = 30 * time.Second

// GrabX11 takes a screenshot of a local X display's root window (":1" or
// ":1.0") with the core protocol: connection setup without authorization
// (Xvfb grants local clients), then one GetImage request. It reads what
// the X server holds, which is what a GL client's swapped buffers show
// even where the client cannot read them back itself (Mesa's software
// renderer under Xvfb leaves the GL front buffer empty to glReadPixels).
func GrabX11(display string) (image.Image, error) {
	num, err := displayNumber(display)
	if err != nil {
		return nil, err
	}
	c, err := net.DialTimeout("unix", "/tmp/.X11-unix/X"+num, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("connect to display %s: %w", display, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(x11Timeout))
	scr, err := setup(c)
	if err != nil {
		return nil, fmt.Errorf("display %s: %w", display, err)
	}
	img, err := getImage(c, scr)
	if err != nil {
		return nil, fmt.Errorf("display %s: %w", display, err)
	}
	return img, nil
}

// displayNumber is the display number of a local display name: "1" for
// ":1" and ":1.0".
func displayNumber(display string) (string, error) {
	host, rest, ok := strings.Cut(display, ":")
	if !ok || host != "" {
		return "", fmt.Errorf("display %q is not a local display such as :1", display)
	}
	num, _, _ := strings.Cut(rest, ".")
	if num == "" || len(num) > 5 || strings.Trim(num, "0123456789") != "" {
		return "", fmt.Errorf("display %q has no display number such as :1", display)
	}
	return num, nil
}

// screen is what a screenshot needs to know of the X server's first
// screen.
type screen struct {
	root          uint32
	width, height uint16
}

// setup opens the protocol on c (little-endian, version 11.0, no
// authorization) and returns the first screen.
func setup(c io.ReadWriter) (screen, error) {
	if _, err := c.Write([]byte{'l', 0, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0}); err != nil {
		return screen{}, fmt.Errorf("send setup: %w", err)
	}
	reply := make([]byte, 8, 4096)
	if _, err := io.ReadFull(c, reply); err != nil {
		return screen{}, fmt.Errorf("read setup reply: %w", err)
	}
	n := int(binary.LittleEndian.Uint16(reply[6:])) * 4
	reply = append(reply, make([]byte, n)...)
	if _, err := io.ReadFull(c, reply[8:]); err != nil {
		return screen{}, fmt.Errorf("read setup reply: %w", err)
	}
	return parseSetup(reply)
}

// parseSetup decodes the X server's reply to the connection setup (its
// 8-byte header included) and returns its first screen, which must be a
// 24-bit TrueColor screen stored as 32-bit little-endian pixels, red in
// 0xff0000: what Xvfb -screen 0 WxHx24 has on a little-endian machine.
func parseSetup(b []byte) (screen, error) {
	le := binary.LittleEndian
	if len(b) < 8 {
		return screen{}, errors.New("setup reply: shorter than its header")
	}
	body := b[8:]
	if len(body) != int(le.Uint16(b[6:]))*4 {
		return screen{}, fmt.Errorf("setup reply: %d bytes after the header, the header says %d", len(body), int(le.Uint16(b[6:]))*4)
	}
	switch b[0] {
	case 1:
	case 0: // failed: reason of length b[1]
		return screen{}, fmt.Errorf("X server refused the connection: %q", body[:min(int(b[1]), len(body))])
	case 2: // authenticate: reason padded to the body
		return screen{}, fmt.Errorf("X server wants authorization: %q", strings.TrimRight(string(body), "\x00"))
	default:
		return screen{}, fmt.Errorf("setup reply: status %d", b[0])
	}
	if len(body) < 32 {
		return screen{}, errors.New("setup reply: too short")
	}
	vendorLen, screens, formats := int(le.Uint16(body[16:])), int(body[20]), int(body[21])
	if screens == 0 {
		return screen{}, errors.New("setup reply: no screen")
	}
	if body[22] != 0 {
		return screen{}, errors.New("setup reply: images are big-endian; only little-endian pixels are decoded")
	}
	off := 32 + (vendorLen+3)/4*4
	if len(body) < off+8*formats {
		return screen{}, errors.New("setup reply: pixmap formats cut off")
	}
	bpp24 := 0
	for i := range formats {
		f := body[off+8*i:]
		if f[0] == 24 {
			bpp24 = int(f[1])
		}
	}
	off += 8 * formats
	if len(body) < off+40 {
		return screen{}, errors.New("setup reply: screen cut off")
	}
	s := body[off:]
	scr := screen{root: le.Uint32(s[0:]), width: le.Uint16(s[20:]), height: le.Uint16(s[22:])}
	visual, depth, depths := le.Uint32(s[32:]), s[38], int(s[39])
	if depth != 24 || bpp24 != 32 {
		return screen{}, fmt.Errorf("setup reply: root depth %d in %d bits per pixel; want 24 in 32 (Xvfb -screen 0 WxHx24)", depth, bpp24)
	}
	if scr.width == 0 || scr.height == 0 {
		return screen{}, errors.New("setup reply: the screen has no pixels")
	}
	// Find the root visual among the screen's depths and check its masks.
	off = 40
	for range depths {
		if len(s) < off+8 {
			return screen{}, errors.New("setup reply: depths cut off")
		}
		nv := int(le.Uint16(s[off+2:]))
		off += 8
		if len(s) < off+24*nv {
			return screen{}, errors.New("setup reply: visuals cut off")
		}
		for range nv {
			v := s[off:]
			off += 24
			if le.Uint32(v) != visual {
				continue
			}
			if v[4] != 4 || le.Uint32(v[8:]) != 0xff0000 || le.Uint32(v[12:]) != 0xff00 || le.Uint32(v[16:]) != 0xff {
				return screen{}, fmt.Errorf("setup reply: root visual of class %d with masks %#x %#x %#x; want TrueColor 0xff0000 0xff00 0xff",
					v[4], le.Uint32(v[8:]), le.Uint32(v[12:]), le.Uint32(v[16:]))
			}
			return scr, nil
		}
	}
	return screen{}, fmt.Errorf("setup reply: no root visual %#x", visual)
}

// getImage asks for the whole root window (GetImage, ZPixmap, all planes)
// and decodes the reply.
func getImage(c io.ReadWriter, scr screen) (image.Image, error) {
	le := binary.LittleEndian
	req := make([]byte, 20)
	req[0], req[1] = 73, 2 // GetImage, ZPixmap
	le.PutUint16(req[2:], 5)
	le.PutUint32(req[4:], scr.root)
	le.PutUint16(req[12:], scr.width)
	le.PutUint16(req[14:], scr.height)
	le.PutUint32(req[16:], 0xffffffff)
	if _, err := c.Write(req); err != nil {
		return nil, fmt.Errorf("send GetImage: %w", err)
	}
	rep := make([]byte, 32)
	if _, err := io.ReadFull(c, rep); err != nil {
		return nil, fmt.Errorf("read GetImage reply: %w", err)
	}
	if rep[0] != 1 {
		return nil, fmt.Errorf("GetImage failed with X error %d", rep[1])
	}
	n := int(le.Uint32(rep[4:])) * 4
	if want := int(scr.width) * int(scr.height) * 4; rep[1] != 24 || n != want {
		return nil, fmt.Errorf("GetImage: depth %d and %d bytes; want depth 24 and %d bytes", rep[1], n, want)
	}
	data := make([]byte, n)
	if _, err := io.ReadFull(c, data); err != nil {
		return nil, fmt.Errorf("read image: %w", err)
	}
	return decodeZPixmap(data, int(scr.width), int(scr.height)), nil
}

// decodeZPixmap turns 32-bit little-endian pixels 0x00RRGGBB (bytes B, G,
// R, pad) into an opaque RGBA image; data holds w×h of them.
func decodeZPixmap(data []byte, w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := range w * h {
		p := data[4*i : 4*i+4]
		img.Pix[4*i], img.Pix[4*i+1], img.Pix[4*i+2], img.Pix[4*i+3] = p[2], p[1], p[0], 0xff
	}
	return img
}
