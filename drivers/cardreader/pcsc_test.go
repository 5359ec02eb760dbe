package cardreader_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ebfe/scard"

	"github.com/kogge-fleet/kogge/drivers"
	"github.com/kogge-fleet/kogge/drivers/cardreader"
	"github.com/kogge-fleet/kogge/simulators/devices/vcard"
)

const bound = 10 * time.Second

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// needExternal skips a test whose external part is missing, or fails it
// under CI=true.
func needExternal(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true: %s", msg)
	}
	t.Skip(msg)
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// vpcdConf is the vpcd reader of a pcscd configuration.
type vpcdConf struct {
	addr   string // where the virtual card connects
	reader string // the PC/SC name of its first slot
}

const vpcdDriver = "/usr/lib/pcsc/drivers/serial/libifdvpcd.so"

// startPCSC makes sure a pcscd with vsmartcard's vpcd runs: the one that
// runs already (with the vpcd of /etc/reader.conf.d/vpcd), or one the test
// starts with a vpcd on a free port and stops at the end.
func startPCSC(t *testing.T) vpcdConf {
	t.Helper()
	if _, err := exec.LookPath("pcscd"); err != nil {
		needExternal(t, "pcscd not installed (Debian package pcscd)")
	}
	if _, err := os.Stat(vpcdDriver); err != nil {
		needExternal(t, "vpcd driver %s missing (Debian package vsmartcard-vpcd)", vpcdDriver)
	}
	if sc, err := scard.EstablishContext(); err == nil {
		sc.Release()
		conf, err := systemVPCD("/etc/reader.conf.d/vpcd")
		if err != nil {
			t.Fatalf("pcscd runs, but its vpcd: %v", err)
		}
		t.Logf("using the running pcscd; vpcd at %s", conf.addr)
		return conf
	}
	if os.Geteuid() != 0 {
		needExternal(t, "pcscd is not running and only root can start it (it serves /run/pcscd)")
	}
	port := freePortPair(t)
	dir := t.TempDir()
	confDir := filepath.Join(dir, "reader.conf.d")
	if err := os.Mkdir(confDir, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf("FRIENDLYNAME \"Kogge Test vpcd\"\nDEVICENAME /dev/null:0x%04X\nLIBPATH %s\nCHANNELID 0x%04X\n", port, vpcdDriver, port)
	if err := os.WriteFile(filepath.Join(confDir, "vpcd"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "pcscd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("pcscd", "--foreground", "--config", confDir)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start pcscd: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(bound):
			cmd.Process.Kill()
			<-exited
		}
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("pcscd log:\n%s", b)
		}
	})
	want := "Kogge Test vpcd 00 00"
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(bound)
	for {
		if sc, err := scard.EstablishContext(); err == nil {
			rs, _ := sc.ListReaders()
			sc.Release()
			if slices.Contains(rs, want) {
				return vpcdConf{addr: fmt.Sprintf("127.0.0.1:%d", port), reader: want}
			}
		}
		select {
		case err := <-exited:
			exited <- err
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("pcscd exited: %v\n%s", err, b)
		case <-deadline:
			t.Fatalf("pcscd did not offer reader %q in time", want)
		case <-tick.C:
		}
	}
}

// systemVPCD reads the port and name of vpcd from its reader.conf file.
func systemVPCD(path string) (vpcdConf, error) {
	f, err := os.Open(path)
	if err != nil {
		return vpcdConf{}, err
	}
	defer f.Close()
	var c vpcdConf
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		v = strings.TrimSpace(v)
		switch k {
		case "FRIENDLYNAME":
			c.reader = strings.Trim(v, `"`) + " 00 00"
		case "DEVICENAME":
			_, port, ok := strings.Cut(v, ":")
			n, err := strconv.ParseUint(strings.TrimPrefix(strings.ToLower(port), "0x"), 16, 16)
			if !ok || err != nil {
				return vpcdConf{}, fmt.Errorf("DEVICENAME %q: no port", v)
			}
			c.addr = fmt.Sprintf("127.0.0.1:%d", n)
		}
	}
	if c.addr == "" || c.reader == "" {
		return vpcdConf{}, fmt.Errorf("%s: no DEVICENAME or FRIENDLYNAME", path)
	}
	return c, sc.Err()
}

// freePortPair finds a port p with p+1 also free: vpcd opens two slots.
func freePortPair(t *testing.T) int {
	t.Helper()
	for range 50 {
		l1, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := l1.Addr().(*net.TCPAddr).Port
		l2, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p+1))
		l1.Close()
		if err == nil {
			l2.Close()
			if p+1 <= 0xFFFF {
				return p
			}
		}
	}
	t.Fatal("no two free adjacent ports")
	return 0
}

// TestPCSC runs the driver against a real pcscd with vpcd's virtual reader
// and our virtual card.
func TestPCSC(t *testing.T) {
	env := startPCSC(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	card, err := vcard.Start(ctx, vcard.Options{Addr: env.addr, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer card.Close()
	p := cardreader.New(cardreader.Options{Logger: quiet()})
	defer p.Close()

	wait := func(t *testing.T, reader string) cardreader.Presence {
		t.Helper()
		ctx, cancel := context.WithTimeout(ctx, bound)
		defer cancel()
		pr, err := p.WaitCard(ctx, reader)
		if err != nil {
			t.Fatalf("wait for the card in %q: %v", reader, err)
		}
		return pr
	}

	t.Run("readers", func(t *testing.T) {
		rs, err := p.Readers(ctx)
		if err != nil || !slices.Contains(rs, env.reader) {
			t.Fatalf("readers %q, %v; want %q among them", rs, err, env.reader)
		}
		if s := p.Status(); !s.OK() {
			t.Fatalf("status %v", s)
		}
	})

	t.Run("card present with its ATR", func(t *testing.T) {
		pr := wait(t, env.reader)
		if !bytes.Equal(pr.ATR, card.ATR()) {
			t.Fatalf("ATR % X, want % X", pr.ATR, card.ATR())
		}
		if any := wait(t, ""); any.Reader != env.reader {
			t.Fatalf("any reader: card found in %q", any.Reader)
		}
	})

	t.Run("APDU exchange over T=1", func(t *testing.T) {
		c, err := p.Connect(ctx, env.reader)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if !bytes.Equal(c.ATR(), card.ATR()) {
			t.Fatalf("ATR % X", c.ATR())
		}
		long := make([]byte, 300)
		for i := range long {
			long[i] = byte(i)
		}
		for _, tc := range []struct {
			name, apdu string
			data       []byte
			sw         uint16
		}{
			{"select unknown AID", "00 A4 04 0C 06 D2 76 00 01 24 02", nil, 0x6A82},
			{"read before select", "00 B0 00 00 10", nil, 0x6986},
			{"read by short file id before select", "00 B0 81 00 10", nil, 0x6A82},
			{"select AID with FCI", "00 A4 04 00 06 D2 76 00 01 24 01 00", unhex(t, "6F 08 84 06 D2 76 00 01 24 01"), 0x9000},
			{"read without a current file", "00 B0 00 00 10", nil, 0x6986},
			{"select EF 0101", "00 A4 02 0C 02 01 01", nil, 0x9000},
			{"read binary exact", "00 B0 00 00 12", []byte("Kogge virtual card"), 0x9000},
			{"read binary partial", "00 B0 00 06 07", []byte("virtual"), 0x9000},
			{"read binary past the end", "00 B0 00 10 00", []byte("rd"), 0x6282},
			{"read binary wrong offset", "00 B0 00 40 01", nil, 0x6B00},
			{"read by short file id", "00 B0 82 00 00", long[:256], 0x9000},
			{"read the rest", "00 B0 01 00 00", long[256:], 0x6282},
			{"unknown instruction", "00 CA 00 00 00", nil, 0x6D00},
			{"unknown class", "80 A4 04 0C 06 D2 76 00 01 24 01", nil, 0x6E00},
			{"malformed", "00 A4 04 0C 09 01", nil, 0x6700},
		} {
			rsp, err := c.Transmit(ctx, unhex(t, tc.apdu))
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if sw := cardreader.SW(rsp); sw != tc.sw || !bytes.Equal(rsp[:len(rsp)-2], tc.data) {
				t.Errorf("%s: got % X (SW %04X), want data % X SW %04X", tc.name, rsp, sw, tc.data, tc.sw)
			}
		}
	})

	t.Run("card pulled and put back", func(t *testing.T) {
		c, err := p.Connect(ctx, env.reader)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		card.Remove()
		wctx, wcancel := context.WithTimeout(ctx, bound)
		defer wcancel()
		if err := p.WaitRemoved(wctx, env.reader); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Transmit(ctx, unhex(t, "00 A4 04 0C 06 D2 76 00 01 24 01")); !errors.Is(err, cardreader.ErrCardRemoved) {
			t.Fatalf("transmit to a pulled card: %v, want ErrCardRemoved", err)
		}
		if _, err := p.Connect(ctx, env.reader); !errors.Is(err, cardreader.ErrNoCard) {
			t.Fatalf("connect without a card: %v, want ErrNoCard", err)
		}
		short, scancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer scancel()
		if _, err := p.WaitCard(short, env.reader); !errors.Is(err, drivers.ErrTimeout) {
			t.Fatalf("wait without a card: %v, want ErrTimeout", err)
		}
		cancelled, ccancel := context.WithCancel(ctx)
		ccancel()
		if _, err := p.WaitCard(cancelled, env.reader); !errors.Is(err, context.Canceled) {
			t.Fatalf("wait with a cancelled context: %v", err)
		}
		if s := p.Status(); !s.OK() {
			t.Fatalf("status without a card: %v (the reader still works)", s)
		}
		card.Insert()
		wait(t, env.reader)
		c2, err := p.Connect(ctx, env.reader)
		if err != nil {
			t.Fatal(err)
		}
		defer c2.Close()
		rsp, err := c2.Transmit(ctx, unhex(t, "00 A4 04 0C 06 D2 76 00 01 24 01"))
		if err != nil || cardreader.SW(rsp) != 0x9000 {
			t.Fatalf("select after reinsertion: % X, %v", rsp, err)
		}
	})

	t.Run("unknown reader", func(t *testing.T) {
		if _, err := p.WaitCard(ctx, "No Such Reader 00 00"); !errors.Is(err, cardreader.ErrNoReader) {
			t.Fatalf("wait: %v, want ErrNoReader", err)
		}
		if _, err := p.Connect(ctx, "No Such Reader 00 00"); !errors.Is(err, cardreader.ErrNoReader) {
			t.Fatalf("connect: %v, want ErrNoReader", err)
		}
		if s := p.Status(); s.State != drivers.StateMissing {
			t.Fatalf("status after a missing reader: %v", s)
		}
	})
}
