package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kogge-fleet/kogge/internal/config"
	"github.com/kogge-fleet/kogge/mobile-agent/shift"
)

// Every version of the configuration file still loads and validates.
func TestConfigFixtures(t *testing.T) {
	files, err := filepath.Glob("testdata/config-v*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, f := range files {
		cfg := DefaultConfig()
		if _, err := config.Load(&cfg, "kogge-mobile", config.Source{Args: []string{"--config", f}}); err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if err := cfg.Validate(); err != nil {
			t.Errorf("%s: %v", f, err)
		}
		keys, err := cfg.officeKeys()
		if err != nil || len(keys) != 2 || keys["ordnungsamt"].KeyID != "ordnungsamt-2026-1" {
			t.Errorf("%s: office keys %v, %v", f, keys, err)
		}
		if cfg.NoticePrefix != "HB07" || cfg.Devices.Printer != "/dev/rfcomm0" || cfg.Issuer.PaymentDays != 7 {
			t.Errorf("%s: %+v", f, cfg)
		}
	}
}

func TestBadConfiguration(t *testing.T) {
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"--notice-prefix=hb 1", "--office-keys=nonsense"}, nil, nil, &out, &errOut)
	if code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
	for _, want := range []string{"notice-prefix", "office-keys \"nonsense\"", "officers-file is not set", "issuer"} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut.String())
		}
	}
	errOut.Reset()
	if code := run(context.Background(), []string{"--help"}, nil, nil, &out, &errOut); code != 0 || !strings.Contains(out.String(), "--simulate") {
		t.Errorf("--help: exit %d\n%s", code, out.String())
	}
}

func TestHashPIN(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"--hash-pin"}, nil, strings.NewReader("2468\n"), &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	h := strings.TrimSpace(out.String())
	if ok, err := shift.CheckPIN(h, "2468"); !ok || err != nil {
		t.Errorf("hash %q does not check: %v", h, err)
	}
	out.Reset()
	if code := run(context.Background(), []string{"--hash-pin"}, nil, strings.NewReader("12\n"), &out, &errOut); code != 1 {
		t.Errorf("a two-digit PIN: exit %d", code)
	}
}

// The whole chain: offline notice and report, delivery to the owi and
// Open311 simulators, the statuses back on the handheld.
func TestSimulate(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end simulation")
	}
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"--simulate", "--log.level=debug"}, nil, nil, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errOut.String())
	}
	text := out.String()
	for _, want := range []string{
		"handheld enrolled as handheld-sim-1",
		"OFFLINE",
		"notice SIM1-0000001-",
		"printer simulator read back notice SIM1-0000001-",
		"plates blurred: 1",
		"offline: notice and report saved on the handheld, 2 records queued",
		"reached the owi procedure as OWI-",
		"reached the Open311 procedure as request",
		`the handheld shows the report "In Bearbeitung"`,
		`the handheld shows the report "Erledigt"`,
		"done: one notice and one report, each delivered once",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "kept in") {
		t.Errorf("the data directory was kept without --keep:\n%s", text)
	}
}

// --script replaces the simulation's offline part; a script that fails
// fails the simulation and names the line.
func TestSimulateScript(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end simulation")
	}
	dir := t.TempDir()
	script := filepath.Join(dir, "bad.script")
	if err := os.WriteFile(script, []byte("login 4711 1234\nshift start\nnotice new\nnotice issue\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"--simulate", "--script", script}, nil, nil, &out, &errOut)
	if code != 1 || !strings.Contains(errOut.String(), "line 4: notice issue") {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errOut.String())
	}
	kept := strings.TrimSpace(out.String()[strings.LastIndex(out.String(), "kept in ")+len("kept in "):])
	if kept == "" || !strings.HasPrefix(kept, os.TempDir()) {
		t.Fatalf("no kept directory named:\n%s", out.String())
	}
	if _, err := os.Stat(filepath.Join(kept, "simulation.log")); err != nil {
		t.Errorf("the failed run's log is not kept: %v", err)
	}
	os.RemoveAll(kept)
}
