package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/fleet-server/registry"
	"github.com/kogge-fleet/kogge/fleet-server/store"
	"github.com/kogge-fleet/kogge/protocol"
)

func TestTwinCommands(t *testing.T) {
	f := newFleet(t)
	f.mustCtl(t, "group", "create", "--id", "kiosks", "Kiosks")
	f.EnrollInto(t, "kiosks", "k-1", registry.Inventory{})

	file := filepath.Join(t.TempDir(), "kiosks.json")
	if err := os.WriteFile(file, []byte(`{"heartbeat_s": 30, "ui": {"lang": "de"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	out := f.mustCtl(t, "twin", "set", "--group", "kiosks", file)
	if !strings.Contains(out, "group kiosks (version 1, 2 keys)") {
		t.Errorf("twin set --group: %q", out)
	}
	// An override from standard input, in the API's {"config": …} form.
	code, out, errOut := f.ctl(t, `{"config": {"ui": {"lang": "en"}}}`, "twin", "set", "--device", "k-1", "-")
	if code != 0 || !strings.Contains(out, "override of device k-1 (ui)") || !strings.Contains(out, "version 2") {
		t.Fatalf("twin set --device: %d %q %q", code, out, errOut)
	}
	out = f.mustCtl(t, "twin", "get", "--device", "k-1")
	for _, want := range []string{"Desired version:", "2", "waiting for the device to report", `"lang": "en"`, `"heartbeat_s": 30`, "Override of this device"} {
		if !strings.Contains(out, want) {
			t.Errorf("twin get lacks %q:\n%s", want, out)
		}
	}
	// The device reports version 2.
	ctx := context.Background()
	if err := f.DB.Ingest(ctx, func(tx *store.IngestTx) error {
		return tx.PutTwinReported(ctx, "k-1", &protocol.TwinReported{Version: 2}, time.Now().UnixMilli())
	}); err != nil {
		t.Fatal(err)
	}
	if out = f.mustCtl(t, "twin", "get", "--device", "k-1"); !strings.Contains(out, "in sync") {
		t.Errorf("twin get after the report:\n%s", out)
	}
	var g map[string]any
	if err := json.Unmarshal([]byte(f.mustCtl(t, "twin", "get", "--group", "kiosks", "--json")), &g); err != nil || g["version"] != float64(1) {
		t.Errorf("twin get --group --json: %v %v", g, err)
	}

	out = f.mustCtl(t, "command", "send", "--device", "k-1", "set-log-level", "level=debug", "--ttl", "10m")
	m := regexp.MustCompile(`Command (\S+) set-log-level to k-1: queued`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("command send: %q", out)
	}
	id := uuid.MustParse(m[1])
	if err := f.DB.Ingest(ctx, func(tx *store.IngestTx) error {
		_, err := tx.PutCommandResult(ctx, "k-1", &protocol.CommandResult{ID: id, Outcome: protocol.OutcomeOK,
			Output: []byte("log level DEBUG (was INFO)"), At: protocol.At(time.Now())}, time.Now().UnixMilli())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	out = f.mustCtl(t, "command", "status", id.String())
	for _, want := range []string{"State:", "done", "Outcome:", "ok", "level=debug", "log level DEBUG (was INFO)"} {
		if !strings.Contains(out, want) {
			t.Errorf("command status lacks %q:\n%s", want, out)
		}
	}
	out = f.mustCtl(t, "command", "send", "--group", "kiosks", "sync-now")
	fm := regexp.MustCompile(`Group send (\S+): sync-now to 1 device\(s\) of kiosks`).FindStringSubmatch(out)
	if fm == nil {
		t.Fatalf("command send --group: %q", out)
	}
	if out = f.mustCtl(t, "command", "status", fm[1]); !strings.Contains(out, "sync-now") || !strings.Contains(out, "k-1") {
		t.Errorf("status of a group send:\n%s", out)
	}
	out = f.mustCtl(t, "command", "list", "--device", "k-1")
	if strings.Count(out, "k-1") != 2 || strings.Index(out, "sync-now") > strings.Index(out, "set-log-level") {
		t.Errorf("command list (newest first):\n%s", out)
	}

	bad := []struct {
		args  []string
		stdin string
		code  int
		want  string
	}{
		{[]string{"twin", "get"}, "", 2, "either --group G or --device D"},
		{[]string{"twin", "set", "--group", "kiosks"}, "", 2, "configuration FILE.json"},
		{[]string{"twin", "set", "--group", "kiosks", "-"}, "[1]", 1, "does not hold a JSON object"},
		{[]string{"twin", "set", "--group", "kiosks", "-"}, "{} {}", 1, "more than one JSON value"},
		{[]string{"twin", "set", "--group", "nope", "-"}, "{}", 1, `no group "nope"`},
		{[]string{"command", "send", "--device", "k-1"}, "", 2, "NAME"},
		{[]string{"command", "send", "ping"}, "", 2, "either --device D or --group G"},
		{[]string{"command", "send", "--device", "k-1", "ping", "novalue"}, "", 2, "KEY=VALUE"},
		{[]string{"command", "send", "--device", "k-1", "Bad Name"}, "", 1, "command.name"},
		{[]string{"command", "status", "nope"}, "", 2, "not a command id"},
		{[]string{"command", "status", uuid.NewString()}, "", 1, "404"},
		{[]string{"command", "list"}, "", 2, "--device is required"},
	}
	for _, b := range bad {
		code, out, errOut := f.ctl(t, b.stdin, b.args...)
		if code != b.code || !strings.Contains(errOut, b.want) {
			t.Errorf("koggectl %q: exit %d stderr %q (stdout %q); want %d with %q", b.args, code, errOut, out, b.code, b.want)
		}
	}
}
