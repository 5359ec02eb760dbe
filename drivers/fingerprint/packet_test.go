package fingerprint_test

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"image"
	"strings"
	"testing"

	"github.com/kogge-fleet/kogge/drivers/fingerprint"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Packets as the R30x user manuals print them.
var golden = []struct {
	name string
	pkt  fingerprint.Packet
	wire string
}{
	{"GenImg", fingerprint.Packet{Address: 0xFFFFFFFF, PID: 0x01, Payload: []byte{0x01}}, "EF01 FFFFFFFF 01 0003 01 0005"},
	{"UpImage", fingerprint.Packet{Address: 0xFFFFFFFF, PID: 0x01, Payload: []byte{0x0A}}, "EF01 FFFFFFFF 01 0003 0A 000E"},
	{"ReadSysPara", fingerprint.Packet{Address: 0xFFFFFFFF, PID: 0x01, Payload: []byte{0x0F}}, "EF01 FFFFFFFF 01 0003 0F 0013"},
	{"VfyPwd 0", fingerprint.Packet{Address: 0xFFFFFFFF, PID: 0x01, Payload: []byte{0x13, 0, 0, 0, 0}}, "EF01 FFFFFFFF 01 0007 13 00000000 001B"},
	{"Img2Tz buffer 1", fingerprint.Packet{Address: 0xFFFFFFFF, PID: 0x01, Payload: []byte{0x02, 0x01}}, "EF01 FFFFFFFF 01 0004 02 01 0008"},
	{"ack ok", fingerprint.Packet{Address: 0xFFFFFFFF, PID: 0x07, Payload: []byte{0x00}}, "EF01 FFFFFFFF 07 0003 00 000A"},
	{"ack no finger", fingerprint.Packet{Address: 0xFFFFFFFF, PID: 0x07, Payload: []byte{0x02}}, "EF01 FFFFFFFF 07 0003 02 000C"},
}

func TestPacketGolden(t *testing.T) {
	for _, tc := range golden {
		b, err := tc.pkt.Encode()
		if err != nil || !bytes.Equal(b, unhex(t, tc.wire)) {
			t.Errorf("%s: encoded % X, %v; want %s", tc.name, b, err, tc.wire)
		}
		p, err := fingerprint.ReadPacket(bufio.NewReader(bytes.NewReader(unhex(t, tc.wire))))
		if err != nil || p.Address != tc.pkt.Address || p.PID != tc.pkt.PID || !bytes.Equal(p.Payload, tc.pkt.Payload) {
			t.Errorf("%s: decoded %+v, %v", tc.name, p, err)
		}
	}
}

func TestReadPacketResyncs(t *testing.T) {
	in := unhex(t, "00 FF EF 00 EF01FFFFFFFF07000302000C"+ // noise, then ack no finger
		"EF01FFFFFFFF070003020099"+ // bad checksum
		"EF01FFFFFFFF07000300000A")
	br := bufio.NewReader(bytes.NewReader(in))
	p, err := fingerprint.ReadPacket(br)
	if err != nil || p.Payload[0] != 0x02 {
		t.Fatalf("first: %+v, %v", p, err)
	}
	if _, err := fingerprint.ReadPacket(br); !errors.Is(err, fingerprint.ErrChecksum) {
		t.Fatalf("second: %v, want ErrChecksum", err)
	}
	if p, err := fingerprint.ReadPacket(br); err != nil || p.Payload[0] != 0x00 {
		t.Fatalf("third: %+v, %v", p, err)
	}
	for _, bad := range []string{"EF01FFFFFFFF070001", "EF01FFFFFFFF07FFFF00", "EF01FFFFFFFF09000300000C", "EF01FFFFFFFF0700"} {
		if p, err := fingerprint.ReadPacket(bufio.NewReader(bytes.NewReader(unhex(t, bad)))); err == nil {
			t.Errorf("%s decoded to %+v", bad, p)
		}
	}
}

func TestImagePacking(t *testing.T) {
	g := image.NewGray(image.Rect(0, 0, 4, 2))
	copy(g.Pix, []byte{0x00, 0xFF, 0x12, 0x9A, 0x80, 0x7F, 0xF0, 0x0F})
	packed := fingerprint.PackImage(g)
	if !bytes.Equal(packed, []byte{0x0F, 0x19, 0x87, 0xF0}) {
		t.Fatalf("packed % X", packed)
	}
	back, err := fingerprint.UnpackImage(packed, 4, 2)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back.Pix, []byte{0x00, 0xFF, 0x11, 0x99, 0x88, 0x77, 0xFF, 0x00}) {
		t.Fatalf("unpacked % X", back.Pix)
	}
	if _, err := fingerprint.UnpackImage(packed, 4, 3); err == nil {
		t.Fatal("short data unpacked")
	}
}

// FuzzReadPacket offers arbitrary bytes from the serial line to the packet
// decoder: it never panics, and every packet it returns encodes back to
// bytes that decode to the same packet.
func FuzzReadPacket(f *testing.F) {
	for _, g := range golden {
		f.Add(unhex(f, g.wire))
	}
	f.Add(unhex(f, "0000EF01FFFFFFFF02000501020300 0B"))
	f.Fuzz(func(t *testing.T, data []byte) {
		br := bufio.NewReader(bytes.NewReader(data))
		for range 64 {
			p, err := fingerprint.ReadPacket(br)
			if err != nil {
				if errors.Is(err, fingerprint.ErrChecksum) {
					continue
				}
				return
			}
			b, err := p.Encode()
			if err != nil {
				t.Fatalf("encode %+v: %v", p, err)
			}
			q, err := fingerprint.ReadPacket(bufio.NewReader(bytes.NewReader(b)))
			if err != nil || q.Address != p.Address || q.PID != p.PID || !bytes.Equal(q.Payload, p.Payload) {
				t.Fatalf("round trip of %+v: %+v, %v", p, q, err)
			}
		}
	})
}
