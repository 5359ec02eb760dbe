package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kogge-fleet/kogge/fleet-server/registry"
	"github.com/kogge-fleet/kogge/fleet-server/rollout/rollouttest"
	"github.com/kogge-fleet/kogge/protocol/artifact"
)

func TestArtifactKeygenSignVerify(t *testing.T) {
	f := newFleet(t)
	dir := t.TempDir()
	name := filepath.Join(dir, "release")
	out := f.mustCtl(t, "artifact", "keygen", "--out", name)
	if !regexp.MustCompile(`Signing key [0-9a-f]{16} written`).MatchString(out) {
		t.Errorf("keygen: %q", out)
	}
	if fi, err := os.Stat(name + ".key"); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("private key: %v %v", fi, err)
	}
	if code, _, errOut := f.ctl(t, "", "artifact", "keygen", "--out", name); code != 1 || !strings.Contains(errOut, "exists") {
		t.Errorf("keygen over an existing key: %d %q", code, errOut)
	}
	bin := filepath.Join(dir, "kogge-kiosk")
	if err := os.WriteFile(bin, bytes.Repeat([]byte("kiosk"), 10_000), 0o755); err != nil {
		t.Fatal(err)
	}
	out = f.mustCtl(t, "artifact", "sign", "--key", name+".key", "--version", "1.4.2", "--app", "kiosk", "--platform", "linux/arm64",
		"--min-version", "1.2.0", bin)
	if !strings.Contains(out, "Signed kogge-kiosk 1.4.2 for linux/arm64 (kiosk): 50000 bytes") {
		t.Errorf("sign: %q", out)
	}
	out = f.mustCtl(t, "artifact", "verify", "--keys", name+".pub", bin)
	if !strings.HasPrefix(out, "OK: kogge-kiosk 1.4.2") {
		t.Errorf("verify: %q", out)
	}
	// Another key, a changed binary, a changed manifest: refused, exit 1.
	f.mustCtl(t, "artifact", "keygen", "--out", filepath.Join(dir, "other"))
	if code, _, errOut := f.ctl(t, "", "artifact", "verify", "--keys", filepath.Join(dir, "other.pub"), bin); code != 1 ||
		!strings.Contains(errOut, "not signed by a trusted key") {
		t.Errorf("verify with another key: %d %q", code, errOut)
	}
	if err := os.WriteFile(bin, bytes.Repeat([]byte("kiosK"), 10_000), 0o755); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := f.ctl(t, "", "artifact", "verify", "--keys", name+".pub", bin); code != 1 || !strings.Contains(errOut, "does not match") {
		t.Errorf("verify a changed binary: %d %q", code, errOut)
	}
	mb, _ := os.ReadFile(bin + ".manifest")
	s, err := artifact.Decode(mb)
	if err != nil {
		t.Fatal(err)
	}
	s.Raw = bytes.Replace(s.Raw, []byte(`"1.4.2"`), []byte(`"9.4.2"`), 1)
	changed, _ := s.Encode()
	os.WriteFile(bin+".manifest", changed, 0o644)
	if code, _, errOut := f.ctl(t, "", "artifact", "verify", "--keys", name+".pub", bin); code != 1 || !strings.Contains(errOut, "signature is wrong") {
		t.Errorf("verify a changed manifest: %d %q", code, errOut)
	}
	if code, _, _ := f.ctl(t, "", "artifact", "sign", bin); code != 2 {
		t.Errorf("sign without flags: exit %d", code)
	}
}

func TestArtifactAndRolloutCommands(t *testing.T) {
	s := rollouttest.New(t, nil)
	f := &fleet{Server: s.Server, url: s.URL, reg: s.Registry,
		env: map[string]string{"KOGGE_SERVER": s.URL, "KOGGE_TOKEN": testToken, "HOME": t.TempDir()}}
	ctx := context.Background()
	f.mustCtl(t, "group", "create", "--id", "kiosks", "Kiosks")
	for _, d := range []string{"k-1", "k-2", "k-3", "k-4"} {
		f.EnrollInto(t, "kiosks", d, registry.Inventory{Model: "K1", Software: "1.0.0"})
	}
	dir := t.TempDir()
	priv, err := artifact.MarshalPrivateKey(s.Key)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "release.key")
	os.WriteFile(keyFile, priv, 0o600)
	bin := filepath.Join(dir, "kogge-kiosk")
	os.WriteFile(bin, bytes.Repeat([]byte("kiosk"), 300_000), 0o755)
	f.mustCtl(t, "artifact", "sign", "--key", keyFile, "--version", "1.1.0", "--app", "kiosk", bin)
	out := f.mustCtl(t, "artifact", "upload", bin)
	m := regexp.MustCompile(`Uploaded kogge-kiosk 1.1.0 for \S+ as artifact (\S+) \(1500000 bytes\)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("upload: %q", out)
	}
	art := m[1]
	if code, _, errOut := f.ctl(t, "", "artifact", "upload", bin); code != 1 || !strings.Contains(errOut, "409") {
		t.Errorf("the same upload again: %d %q", code, errOut)
	}
	if out := f.mustCtl(t, "artifact", "list"); !strings.Contains(out, art) || !strings.Contains(out, "1.1.0") {
		t.Errorf("artifact list: %q", out)
	}
	if out := f.mustCtl(t, "artifact", "show", art); !strings.Contains(out, "1500000") {
		t.Errorf("artifact show: %q", out)
	}

	out = f.mustCtl(t, "rollout", "create", "--artifact", art, "--group", "kiosks", "--waves", "1,100%", "--soak", "1m",
		"--errors", "0", "--window", "always")
	m = regexp.MustCompile(`Rollout (\S+) started: kogge-kiosk 1.1.0 to 4 devices in waves of 1, 4 \(soak 1m0s, window always\)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("rollout create: %q", out)
	}
	id := m[1]
	s.Rollouts.Step(ctx)
	if out := f.mustCtl(t, "rollout", "list"); !strings.Contains(out, id) || !strings.Contains(out, "1 sent, 3 pending") {
		t.Errorf("rollout list: %q", out)
	}
	out = f.mustCtl(t, "rollout", "show", id)
	for _, want := range []string{"kogge-kiosk 1.1.0", "running", "1 of 2", "success 95%, errors 0%", "wave-started", "created"} {
		if !strings.Contains(out, want) {
			t.Errorf("rollout show lacks %q:\n%s", want, out)
		}
	}
	if out := f.mustCtl(t, "rollout", "devices", id, "--state", "sent"); strings.Count(out, "\n") != 2 {
		t.Errorf("rollout devices --state sent:\n%s", out)
	}
	if out := f.mustCtl(t, "rollout", "pause", id); !strings.Contains(out, "is paused") {
		t.Errorf("pause: %q", out)
	}
	if out := f.mustCtl(t, "rollout", "resume", id); !strings.Contains(out, "is running") {
		t.Errorf("resume: %q", out)
	}
	if out := f.mustCtl(t, "rollout", "abort", id, "--reason", "wrong build"); !strings.Contains(out, "is aborting") {
		t.Errorf("abort: %q", out)
	}
	s.Rollouts.Step(ctx)
	var r struct {
		State  string         `json:"state"`
		Counts map[string]int `json:"counts"`
	}
	if err := json.Unmarshal([]byte(f.mustCtl(t, "rollout", "show", id, "--json")), &r); err != nil {
		t.Fatal(err)
	}
	if r.State != "aborting" || r.Counts["rolling-back"] != 1 || r.Counts["cancelled"] != 3 {
		t.Errorf("after the abort: %+v", r)
	}
	if code, _, errOut := f.ctl(t, "", "rollout", "create", "--artifact", "x"); code != 2 || !strings.Contains(errOut, "not an id") {
		t.Errorf("create with a bad id: %d %q", code, errOut)
	}
	if code, _, errOut := f.ctl(t, "", "rollout", "pause", id); code != 1 || !strings.Contains(errOut, "409") {
		t.Errorf("pausing an aborting rollout: %d %q", code, errOut)
	}
}
