package finger

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/png"
	"io"
	"math"
)

// EncodePNG writes img as an 8-bit greyscale PNG with a pHYs chunk that
// records its resolution (ppi, converted to pixels per metre), as the
// application record wants the raw capture. A ppi of 0 leaves the chunk
// out.
func EncodePNG(w io.Writer, img *image.Gray, ppi int) error {
	if img == nil || img.Bounds().Empty() {
		return errors.New("encode fingerprint png: no image")
	}
	if ppi < 0 || ppi > 100000 {
		return fmt.Errorf("encode fingerprint png: resolution of %d ppi is out of range", ppi)
	}
	var buf bytes.Buffer
	var enc png.Encoder
	if err := enc.Encode(&buf, img); err != nil {
		return fmt.Errorf("encode fingerprint png: %w", err)
	}
	b := buf.Bytes()
	if ppi == 0 {
		_, err := w.Write(b)
		return err
	}
	// The signature (8 bytes) and IHDR (4 + 4 + 13 + 4) come first; the
	// pHYs chunk must come before the image data, so it goes right after.
	const afterIHDR = 8 + 25
	if len(b) < afterIHDR || string(b[12:16]) != "IHDR" {
		return errors.New("encode fingerprint png: unexpected encoder output")
	}
	ppm := uint32(math.Round(float64(ppi) / 0.0254))
	chunk := make([]byte, 0, 21)
	chunk = binary.BigEndian.AppendUint32(chunk, 9)
	chunk = append(chunk, "pHYs"...)
	chunk = binary.BigEndian.AppendUint32(chunk, ppm)
	chunk = binary.BigEndian.AppendUint32(chunk, ppm)
	chunk = append(chunk, 1) // unit: metre
	chunk = binary.BigEndian.AppendUint32(chunk, crc32.ChecksumIEEE(chunk[4:]))
	for _, part := range [][]byte{b[:afterIHDR], chunk, b[afterIHDR:]} {
		if _, err := w.Write(part); err != nil {
			return fmt.Errorf("write fingerprint png: %w", err)
		}
	}
	return nil
}

// PNG is EncodePNG into a byte slice.
func PNG(img *image.Gray, ppi int) ([]byte, error) {
	var buf bytes.Buffer
	if err := EncodePNG(&buf, img, ppi); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
