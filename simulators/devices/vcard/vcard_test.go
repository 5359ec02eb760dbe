package vcard_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/kogge-fleet/kogge/simulators/devices/vcard"
)

const bound = 10 * time.Second

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestATR(t *testing.T) {
	atr := vcard.ATR([]byte("KoggeVCard"))
	if atr[0] != 0x3B || atr[1] != 0x8A || atr[2] != 0x01 || string(atr[3:13]) != "KoggeVCard" {
		t.Fatalf("ATR % X", atr)
	}
	var x byte
	for _, b := range atr[1:] {
		x ^= b
	}
	if x != 0 {
		t.Fatalf("check byte wrong: T0..TCK xor to %02X", x)
	}
}

func TestParseAPDU(t *testing.T) {
	for _, tc := range []struct {
		in       string
		data     string
		le       int
		wantFail bool
	}{
		{"00A40400", "", -1, false},
		{"00B0000010", "", 16, false},
		{"00B0000000", "", 256, false},
		{"00A4040C02AABB", "AABB", -1, false},
		{"00A4040C02AABB00", "AABB", 256, false},
		{"00B00000000100", "", 256, false},
		{"00B00000000000", "", 65536, false},
		{"00A4040C000002AABB", "AABB", -1, false},
		{"00A4040C000002AABB0010", "AABB", 16, false},
		{"00A4", "", 0, true},
		{"00A4040C03AABB", "", 0, true},
		{"00A4040C0000", "", 0, true},
		{"00A4040C000000AA", "", 0, true},
	} {
		a, err := vcard.ParseAPDU(unhex(t, tc.in))
		if tc.wantFail {
			if err == nil {
				t.Errorf("%s: parsed as %+v", tc.in, a)
			}
			continue
		}
		if err != nil || !bytes.Equal(a.Data, unhex(t, tc.data)) || a.Le != tc.le {
			t.Errorf("%s: %+v, %v; want data %s Le %d", tc.in, a, err, tc.data, tc.le)
		}
	}
}

func TestCardPower(t *testing.T) {
	c := vcard.NewCard(vcard.ATR(nil), vcard.DefaultApplets())
	sel := unhex(t, "00 A4 04 0C 06 D2 76 00 01 24 01")
	if rsp := c.Handle(sel); !bytes.Equal(rsp, []byte{0x6F, 0x00}) {
		t.Fatalf("APDU while powered off: % X", rsp)
	}
	if rsp := c.Handle([]byte{vcard.CtrlATR}); !bytes.Equal(rsp, vcard.ATR(nil)) {
		t.Fatalf("ATR request: % X", rsp)
	}
	if rsp := c.Handle([]byte{vcard.CtrlPowerOn}); rsp != nil {
		t.Fatalf("power on answered % X", rsp)
	}
	if rsp := c.Handle(sel); !bytes.Equal(rsp, []byte{0x90, 0x00}) {
		t.Fatalf("select: % X", rsp)
	}
	c.Handle([]byte{vcard.CtrlReset})
	if rsp := c.Handle(unhex(t, "00 A4 02 0C 02 01 01")); !bytes.Equal(rsp, []byte{0x6A, 0x82}) {
		t.Fatalf("select EF after reset (no applet): % X", rsp)
	}
}

func TestFrames(t *testing.T) {
	var buf bytes.Buffer
	for _, p := range [][]byte{{4}, unhex(t, "00A4040C02AABB"), bytes.Repeat([]byte{7}, vcard.MaxFrame)} {
		if err := vcard.WriteFrame(&buf, p); err != nil {
			t.Fatal(err)
		}
		got, err := vcard.ReadFrame(&buf)
		if err != nil || !bytes.Equal(got, p) {
			t.Fatalf("frame of %d bytes: got %d, %v", len(p), len(got), err)
		}
	}
	if err := vcard.WriteFrame(&buf, nil); err == nil {
		t.Fatal("empty frame written")
	}
	for _, in := range []string{"", "00", "0000", "0003AABB"} {
		if _, err := vcard.ReadFrame(bytes.NewReader(unhex(t, in))); err == nil {
			t.Errorf("ReadFrame(%s) did not fail", in)
		}
	}
}

// TestSimulatorConnects plays vpcd on a loopback port: the card connects,
// answers the ATR request and APDUs, leaves on Remove and comes back on
// Insert.
func TestSimulatorConnects(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	sim, err := vcard.Start(ctx, vcard.Options{Addr: ln.Addr().String(), Retry: 10 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()

	accept := func() net.Conn {
		t.Helper()
		ln.(*net.TCPListener).SetDeadline(time.Now().Add(bound))
		conn, err := ln.Accept()
		if err != nil {
			t.Fatalf("the card did not connect: %v", err)
		}
		conn.SetDeadline(time.Now().Add(bound))
		return conn
	}
	roundTrip := func(conn net.Conn, p []byte) []byte {
		t.Helper()
		if err := vcard.WriteFrame(conn, p); err != nil {
			t.Fatal(err)
		}
		rsp, err := vcard.ReadFrame(conn)
		if err != nil {
			t.Fatal(err)
		}
		return rsp
	}

	conn := accept()
	if err := sim.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	if atr := roundTrip(conn, []byte{vcard.CtrlATR}); !bytes.Equal(atr, sim.ATR()) {
		t.Fatalf("ATR % X", atr)
	}
	if err := vcard.WriteFrame(conn, []byte{vcard.CtrlPowerOn}); err != nil {
		t.Fatal(err)
	}
	if rsp := roundTrip(conn, unhex(t, "00 A4 04 0C 06 D2 76 00 01 24 01")); !bytes.Equal(rsp, []byte{0x90, 0x00}) {
		t.Fatalf("select: % X", rsp)
	}
	sim.Remove()
	if _, err := vcard.ReadFrame(conn); !errors.Is(err, io.EOF) {
		t.Fatalf("after Remove the card's connection ends; got %v", err)
	}
	conn.Close()
	sim.Insert()
	conn = accept()
	defer conn.Close()
	if atr := roundTrip(conn, []byte{vcard.CtrlATR}); !bytes.Equal(atr, sim.ATR()) {
		t.Fatalf("ATR after reinsertion % X", atr)
	}
}

// FuzzReadFrame offers arbitrary bytes as vpcd's stream: ReadFrame never
// panics, never returns more than it was given, and what it reads writes
// back to the same bytes.
func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{0, 1, 4})
	f.Add([]byte{0, 7, 0, 0xA4, 4, 0xC, 2, 0xAA, 0xBB, 0, 1, 1})
	f.Add([]byte{0xFF, 0xFF, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		for {
			p, err := vcard.ReadFrame(r)
			if err != nil {
				return
			}
			var buf bytes.Buffer
			if err := vcard.WriteFrame(&buf, p); err != nil {
				t.Fatalf("rewrite %d bytes: %v", len(p), err)
			}
			consumed := len(data) - r.Len()
			if !bytes.Equal(buf.Bytes(), data[consumed-buf.Len():consumed]) {
				t.Fatal("frame does not write back to its bytes")
			}
		}
	})
}

// FuzzCard offers arbitrary payloads from vpcd to a powered card: it never
// panics and answers every APDU with at least a status word.
func FuzzCard(f *testing.F) {
	for _, s := range []string{
		"00A4040C06D27600012401", "00A4020C020102", "00B0000000", "00B0820000", "00B0010000",
		"00A4040006D2760001240100", "80CA000000", "00B00000000100", "04",
	} {
		b, _ := hex.DecodeString(s)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		c := vcard.NewCard(vcard.ATR(nil), vcard.DefaultApplets())
		c.Handle([]byte{vcard.CtrlPowerOn})
		c.Handle(unhex(t, "00A4040C06D27600012401"))
		rsp := c.Handle(p)
		if len(p) == 1 {
			return // control commands
		}
		if len(rsp) < 2 || len(rsp) > 256+2 {
			t.Fatalf("answer of %d bytes to % X", len(rsp), p)
		}
		if sw1 := rsp[len(rsp)-2]; sw1 != 0x90 && sw1>>4 != 6 {
			t.Fatalf("status word % X", rsp[len(rsp)-2:])
		}
	})
}
