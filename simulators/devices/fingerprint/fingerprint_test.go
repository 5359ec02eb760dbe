package fingerprint_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	fpsim "github.com/kogge-fleet/kogge/simulators/devices/fingerprint"
)

func TestImages(t *testing.T) {
	a, b := fpsim.GoodImage(256, 288, 1), fpsim.GoodImage(256, 288, 1)
	if !bytes.Equal(a.Pix, b.Pix) {
		t.Fatal("the same seed gave different prints")
	}
	if c := fpsim.GoodImage(256, 288, 2); bytes.Equal(a.Pix, c.Pix) {
		t.Fatal("different seeds gave the same print")
	}
	if p := fpsim.PoorImage(256, 288, 1); bytes.Equal(a.Pix, p.Pix) || p.Bounds() != a.Bounds() {
		t.Fatal("poor print equals the good one")
	}
}

// TestRawPackets writes the manual's GenImg packet to the pseudo-terminal
// and reads the module's answer byte for byte.
func TestRawPackets(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sim, err := fpsim.Start(ctx, fpsim.Options{Script: []fpsim.Step{{Finger: fpsim.NoFinger}},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	tty, err := os.OpenFile(sim.Endpoint(), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	tty.SetDeadline(time.Now().Add(10 * time.Second))
	for _, tc := range []struct{ send, want string }{
		{"EF01FFFFFFFF010003010005", "EF01FFFFFFFF07000302000C"},         // GenImg → no finger
		{"EF01FFFFFFFF0100071300000000001B", "EF01FFFFFFFF07000300000A"}, // VfyPwd 0 → ok
		{"EF01FFFFFFFF010003010099", "EF01FFFFFFFF07000301000B"},         // bad checksum → receive error
	} {
		send, _ := hex.DecodeString(tc.send)
		want, _ := hex.DecodeString(tc.want)
		if _, err := tty.Write(send); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(want))
		if _, err := io.ReadFull(tty, got); err != nil {
			t.Fatalf("answer to %s: %v", tc.send, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("answer to %s: % X, want % X", tc.send, got, want)
		}
	}
}
