package fingerprint

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"io"
)

// The packet protocol of the R30x family (R305, R307, R503, ZFM-20 and
// their clones), from the modules' user manuals:
//
//	header 0xEF01 | address (4) | packet id (1) | length (2) | payload | checksum (2)
//
// All numbers are big-endian. The length counts the payload and the
// checksum; the checksum is the low 16 bits of the sum of the packet id,
// the two length bytes and the payload bytes.
const (
	Header         = 0xEF01
	DefaultAddress = 0xFFFFFFFF

	PIDCommand = 0x01 // host → module: instruction code and parameters
	PIDData    = 0x02 // data, more follows
	PIDAck     = 0x07 // module → host: confirmation code and results
	PIDEnd     = 0x08 // the last data packet

	// MaxPayload bounds a payload: data packets carry at most 256 bytes,
	// commands and acknowledgements far less.
	MaxPayload = 256
)

// Instruction codes.
const (
	InsGenImg      = 0x01 // take an image into the image buffer
	InsImg2Tz      = 0x02 // extract features into a character buffer
	InsUpImage     = 0x0A // upload the image buffer in data packets
	InsReadSysPara = 0x0F // read the system parameters
	InsVfyPwd      = 0x13 // verify the module password
)

// Confirmation codes.
const (
	CodeOK            = 0x00
	CodeReceiveError  = 0x01 // error receiving the packet
	CodeNoFinger      = 0x02 // no finger on the sensor
	CodeImageFailed   = 0x03 // failed to take the image
	CodeImageMessy    = 0x06 // image too disorderly for features
	CodeTooFewPoints  = 0x07 // too few feature points
	CodeUploadFailed  = 0x0F // cannot send the following data packets
	CodeWrongPassword = 0x13
	CodeBadInstr      = 0x1F // some clones: unknown instruction
)

// Packet is one packet of the protocol.
type Packet struct {
	Address uint32
	PID     byte
	Payload []byte
}

// ErrChecksum is returned (wrapped) by ReadPacket for a packet whose
// checksum does not match; a module answers it with CodeReceiveError.
var ErrChecksum = errors.New("checksum mismatch")

var errGarbage = errors.New("no packet header in the data")

// maxSkip bounds the bytes skipped while looking for a header.
const maxSkip = 4096

// Encode renders the packet on the wire.
func (p Packet) Encode() ([]byte, error) {
	if len(p.Payload) > MaxPayload {
		return nil, fmt.Errorf("packet payload of %d bytes: at most %d", len(p.Payload), MaxPayload)
	}
	n := len(p.Payload) + 2
	b := make([]byte, 0, 9+n)
	b = binary.BigEndian.AppendUint16(b, Header)
	b = binary.BigEndian.AppendUint32(b, p.Address)
	b = append(b, p.PID)
	b = binary.BigEndian.AppendUint16(b, uint16(n))
	b = append(b, p.Payload...)
	return binary.BigEndian.AppendUint16(b, checksum(p.PID, uint16(n), p.Payload)), nil
}

func checksum(pid byte, length uint16, payload []byte) uint16 {
	sum := uint16(pid) + length>>8 + length&0xFF
	for _, b := range payload {
		sum += uint16(b)
	}
	return sum
}

// ReadPacket reads the next packet, skipping bytes before a header (line
// noise after a plug-in). It fails on a bad length or checksum; the next
// call resynchronises on the following header.
func ReadPacket(r *bufio.Reader) (Packet, error) {
	skipped := 0
	for {
		b, err := r.ReadByte()
		if err != nil {
			return Packet{}, err
		}
		if b != Header>>8 {
			if skipped++; skipped > maxSkip {
				return Packet{}, errGarbage
			}
			continue
		}
		next, err := r.Peek(1)
		if err != nil {
			return Packet{}, err
		}
		if next[0] != Header&0xFF {
			skipped++
			continue
		}
		r.ReadByte()
		break
	}
	var hdr [7]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return Packet{}, unexpected(err)
	}
	p := Packet{Address: binary.BigEndian.Uint32(hdr[:4]), PID: hdr[4]}
	n := binary.BigEndian.Uint16(hdr[5:])
	if n < 2 || int(n) > MaxPayload+2 {
		return Packet{}, fmt.Errorf("packet length %d: must be 2 to %d", n, MaxPayload+2)
	}
	switch p.PID {
	case PIDCommand, PIDData, PIDAck, PIDEnd:
	default:
		return Packet{}, fmt.Errorf("packet id %#02x unknown", p.PID)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return Packet{}, unexpected(err)
	}
	p.Payload = body[:n-2]
	if got, want := binary.BigEndian.Uint16(body[n-2:]), checksum(p.PID, n, p.Payload); got != want {
		return Packet{}, fmt.Errorf("packet %#02x: %w (got %#04x, want %#04x)", p.PID, ErrChecksum, got, want)
	}
	return p, nil
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// Image geometry of the R30x sensors: 256 × 288 pixels at 500 ppi; the
// module uploads 4 bits per pixel, two pixels per byte, the left one in
// the high nibble.
const (
	SensorWidth  = 256
	SensorHeight = 288
	SensorPPI    = 500
)

// PackImage packs an 8-bit image into the upload format (its width must
// be even).
func PackImage(g *image.Gray) []byte {
	b := g.Bounds()
	out := make([]byte, 0, b.Dx()*b.Dy()/2)
	for y := b.Min.Y; y < b.Max.Y; y++ {
		row := g.Pix[(y-b.Min.Y)*g.Stride:]
		for x := 0; x+1 < b.Dx(); x += 2 {
			out = append(out, row[x]&0xF0|row[x+1]>>4)
		}
	}
	return out
}

// UnpackImage turns uploaded image data into an 8-bit grey image,
// stretching the 16 levels over 0–255.
func UnpackImage(data []byte, width, height int) (*image.Gray, error) {
	if width <= 0 || height <= 0 || width%2 != 0 {
		return nil, fmt.Errorf("image of %d×%d: the width must be even and positive", width, height)
	}
	if len(data) != width*height/2 {
		return nil, fmt.Errorf("image data of %d bytes: a %d×%d image has %d", len(data), width, height, width*height/2)
	}
	g := image.NewGray(image.Rect(0, 0, width, height))
	for i, b := range data {
		g.Pix[2*i] = (b >> 4) * 17
		g.Pix[2*i+1] = (b & 0x0F) * 17
	}
	return g, nil
}
