package main

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kogge-fleet/kogge/fleet-server/api/client"
	"github.com/kogge-fleet/kogge/internal/config"
	simcamera "github.com/kogge-fleet/kogge/simulators/devices/camera"
	simeid "github.com/kogge-fleet/kogge/simulators/devices/eid"
	simfinger "github.com/kogge-fleet/kogge/simulators/devices/fingerprint"
	simpayment "github.com/kogge-fleet/kogge/simulators/devices/payment"
	simprinter "github.com/kogge-fleet/kogge/simulators/devices/printer"
	"github.com/kogge-fleet/kogge/simulators/fleet"
)

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestSimulate runs `kogge-kiosk --simulate`: one citizen through the
// whole flow on simulated devices, the application sealed, synced,
// delivered through the bridge into the idpass procedure simulator and
// its receipt back on the terminal.
func TestSimulate(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out, errb syncBuffer
	if code := run(ctx, []string{"--simulate"}, nil, &out, &errb); code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errb.String())
	}
	for _, want := range []string{
		"enrolled          kiosk-mitte-1", "screen identify", "types the PIN", "picks the first",
		"screen finger-left", "pays 37,00 EUR", "screen receipt", "printed with the QR code KMI1-",
		"record            accepted", "the idpass simulator imported it: reference PA-",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

// TestServeHeadless runs the terminal against device simulators: it
// enrolls with a one-time code from the configuration, checks its
// peripherals and reports them in its heartbeat, and stops cleanly.
func TestServeHeadless(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	quiet := slog.New(slog.DiscardHandler)
	srv, err := fleet.StartServer(ctx, fleet.ServerConfig{DataDir: filepath.Join(dir, "server"), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	api := srv.API()
	if _, err := api.CreateGroup(ctx, "mitte", "Mitte"); err != nil {
		t.Fatal(err)
	}
	code, err := api.CreateCode(ctx, client.CodeRequest{Group: "mitte", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	cam, err := simcamera.Start(ctx, simcamera.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer cam.Close()
	finger, err := simfinger.Start(ctx, simfinger.Options{Link: filepath.Join(dir, "finger0"), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer finger.Close()
	pay, err := simpayment.Start(ctx, simpayment.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer pay.Close()
	prn, err := simprinter.Start(ctx, simprinter.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer prn.Close()
	ausweis, err := simeid.Start(ctx, simeid.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer ausweis.Close()

	args := []string{
		"--data-dir=" + filepath.Join(dir, "kiosk"),
		"--enroll.server=" + srv.EnrollURL(), "--enroll.code=" + code.Secret,
		"--enroll.ca-fingerprint=" + code.CAFingerprint, "--enroll.device-id=kiosk-test-1",
		"--office=buergeramt-mitte", "--number-prefix=KT1",
		"--eid.enabled", "--eid.url=" + ausweis.Endpoint(), "--eid.tc-token-url=https://eid.kogge.test/tc",
		"--photo.width=2592", "--photo.height=1944", "--photo.fps=10",
		"--devices.camera=" + cam.Endpoint(), "--devices.fingerprint=" + finger.Endpoint(),
		"--devices.payment=" + pay.Endpoint(), "--devices.printer=" + prn.Endpoint(),
		"--check-interval=200ms", "--log.format=text", "--headless",
	}
	rctx, stop := context.WithCancel(ctx)
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() { done <- run(rctx, args, nil, &out, &errb) }()

	want := map[string]bool{"camera": true, "fingerprint": true, "printer": true, "payment": true, "eid": true}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for ok := false; !ok; {
		select {
		case code := <-done:
			t.Fatalf("kogge-kiosk ended with %d:\n%s", code, errb.String())
		case <-ctx.Done():
			t.Fatalf("the heartbeat never showed every peripheral ok:\n%s", errb.String())
		case <-tick.C:
		}
		samples, err := api.Health(ctx, "kiosk-test-1", time.Time{}, time.Time{}, 1)
		if err != nil || len(samples) == 0 {
			continue
		}
		seen := 0
		for _, p := range samples[0].Heartbeat.Peripherals {
			if want[p.Name] && p.State == "ok" {
				seen++
			}
		}
		ok = seen == len(want) && strings.Contains(errb.String(), "step=welcome") // the first session shows its welcome screen after the first check round
	}
	stop()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit %d after SIGTERM:\n%s", code, errb.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("kogge-kiosk did not stop")
	}
	if !strings.Contains(errb.String(), "step=welcome") {
		t.Errorf("the headless terminal did not show its welcome screen:\n%s", errb.String())
	}
	if len(prn.Receipts()) != 0 {
		t.Errorf("a terminal nobody used printed something")
	}
}

func TestCommandLine(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"--help"}, nil, &out, &errb); code != 0 || !strings.Contains(out.String(), "--simulate") {
		t.Errorf("--help: %d\n%s", code, out.String())
	}
	out.Reset()
	code := run(context.Background(), []string{"--print-config", "--admin.pin=4711", "--office=buergeramt-mitte"}, nil, &out, &errb)
	if code != 0 || strings.Contains(out.String(), "4711") || !strings.Contains(out.String(), "buergeramt-mitte") {
		t.Errorf("--print-config: %d, the PIN must not show:\n%s", code, out.String())
	}
	errb.Reset()
	if code := run(context.Background(), nil, []string{"KOGGE_LOG_FORMAT=text"}, &out, &errb); code != 2 ||
		!strings.Contains(errb.String(), "office") || !strings.Contains(errb.String(), "devices.camera") {
		t.Errorf("without a configuration: %d\n%s", code, errb.String())
	}
	errb.Reset()
	if code := run(context.Background(), []string{"stray"}, nil, &out, &errb); code != 2 {
		t.Errorf("a stray argument: %d", code)
	}
}

// TestConfigFixture loads every configuration version kept in testdata.
func TestConfigFixture(t *testing.T) {
	cfg := DefaultConfig()
	res, err := config.Load(&cfg, "kogge-kiosk", config.Source{Args: []string{"--config", "testdata/config-v1.json"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.File == "" || cfg.NumberPrefix != "KMI1" || !cfg.EID.Enabled || cfg.Fee.Passport != 7000 ||
		cfg.Photo.Time != 30*time.Second || cfg.Admin.PIN != "4711" || cfg.Devices.Payment != "10.20.30.40:20007" {
		t.Errorf("fixture read as %+v", cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("fixture: %v", err)
	}
	k := cfg.kiosk("1.0.0")
	if k.Flow.Fees["passport"] != 7000 || k.Flow.Finger.Threshold != 30 || k.Flow.Timeouts.Identify != 3*time.Minute {
		t.Errorf("kiosk configuration %+v", k.Flow)
	}
}
