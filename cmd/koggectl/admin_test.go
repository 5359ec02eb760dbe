package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/kogge-fleet/kogge/fleet-server/api/apitest"
	"github.com/kogge-fleet/kogge/fleet-server/registry"
)

// fleet is the real API (apitest) and the environment koggectl sees.
type fleet struct {
	*apitest.Server
	url string
	reg *registry.Registry
	env map[string]string
}

func newFleet(t *testing.T) *fleet {
	t.Helper()
	s := apitest.New(t)
	// HOME points into the test's directory, so that no default token file
	// of the machine is found.
	return &fleet{Server: s, url: s.URL, reg: s.Registry,
		env: map[string]string{"KOGGE_SERVER": s.URL, "KOGGE_TOKEN": testToken, "HOME": t.TempDir()}}
}

const testToken = apitest.Token

// ctl runs koggectl and returns its exit code, stdout and stderr.
func (f *fleet) ctl(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := runWith(args, func(k string) string { return f.env[k] }, strings.NewReader(stdin), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func (f *fleet) mustCtl(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := f.ctl(t, "", args...)
	if code != 0 {
		t.Fatalf("koggectl %q: exit %d\n%s%s", args, code, out, errOut)
	}
	return out
}

func (f *fleet) enroll(t *testing.T, code, id string, inv registry.Inventory) {
	t.Helper()
	f.Enroll(t, code, id, inv)
}

func TestEnrollCodeAndDevices(t *testing.T) {
	f := newFleet(t)
	out := f.mustCtl(t, "group", "create", "--id", "kiosks", "Bürgeramt Mitte kiosks")
	if !strings.Contains(out, "Created group kiosks") {
		t.Errorf("group create: %q", out)
	}
	out = f.mustCtl(t, "enroll-code", "create", "--group", "kiosks", "--ttl", "2h", "--note", "kiosk 3")
	code := regexp.MustCompile(`Enrollment code:\s+(\S+)`).FindStringSubmatch(out)
	if code == nil || !strings.Contains(out, f.reg.CAFingerprint()) || !strings.Contains(out, "shown only now") {
		t.Fatalf("enroll-code create output:\n%s", out)
	}
	f.enroll(t, code[1], "kiosk-1", registry.Inventory{Model: "Kiosk K1", Software: "1.4.2"})

	// --json gives the API's document, with the code.
	var created map[string]any
	if err := json.Unmarshal([]byte(f.mustCtl(t, "enroll-code", "create", "--group=kiosks", "--json")), &created); err != nil {
		t.Fatal(err)
	}
	if created["code"] == "" || created["ca_fingerprint"] != f.reg.CAFingerprint() || created["state"] != "active" {
		t.Errorf("enroll-code create --json: %v", created)
	}
	out = f.mustCtl(t, "enroll-code", "list", "--group", "kiosks")
	if !strings.Contains(out, "used") || !strings.Contains(out, "kiosk-1") || strings.Contains(out, code[1]) {
		t.Errorf("enroll-code list:\n%s", out)
	}
	f.mustCtl(t, "enroll-code", "revoke", created["id"].(string))

	out = f.mustCtl(t, "device", "list")
	if !regexp.MustCompile(`kiosk-1\s+kiosks\s+never-connected\s+Kiosk K1\s+1\.4\.2`).MatchString(out) || !strings.Contains(out, "1 device(s)") {
		t.Errorf("device list:\n%s", out)
	}
	out = f.mustCtl(t, "device", "list", "--software", "2.*", "--json")
	if strings.TrimSpace(out) != "{\n  \"devices\": []\n}" {
		t.Errorf("device list with no match, --json: %q", out)
	}
	out = f.mustCtl(t, "device", "show", "kiosk-1")
	for _, want := range []string{"Group:", "kiosks", "Kiosk K1", "Certificates:", "SERIAL", "never connected", "no heartbeat yet", "seq 0"} {
		if !strings.Contains(out, want) {
			t.Errorf("device show lacks %q:\n%s", want, out)
		}
	}
	out = f.mustCtl(t, "device", "revoke", "kiosk-1", "--reason", "stolen")
	if !strings.Contains(out, "Revoked device kiosk-1") {
		t.Errorf("device revoke: %q", out)
	}
	if !f.reg.IsRevoked("kiosk-1", nil) {
		t.Error("the device is not revoked")
	}
	out = f.mustCtl(t, "device", "list", "--state", "revoked", "--json")
	if !strings.Contains(out, `"revoked_reason": "stolen"`) {
		t.Errorf("revoked devices: %s", out)
	}
}

func TestAdminErrors(t *testing.T) {
	f := newFleet(t)
	tests := []struct {
		name string
		env  map[string]string
		args []string
		code int
		want string // in stderr
	}{
		{"unknown device", nil, []string{"device", "show", "nope"}, 1, `404 Not Found: not found: no device "nope"`},
		{"missing argument", nil, []string{"device", "show"}, 2, "want a device id"},
		{"extra argument", nil, []string{"device", "list", "x"}, 2, "want no arguments"},
		{"unknown subcommand", nil, []string{"device", "frob"}, 2, "device list|revoke|show"},
		{"unknown flag", nil, []string{"device", "list", "--colour", "red"}, 2, "colour"},
		{"missing group", nil, []string{"enroll-code", "create"}, 2, "--group is required"},
		{"unknown group", nil, []string{"enroll-code", "create", "--group", "nope"}, 1, "no group"},
		{"wrong token", map[string]string{"KOGGE_TOKEN": "wrong-wrong-wrong-wrong"}, []string{"device", "list"}, 1, "401"},
		{"no token", map[string]string{"KOGGE_TOKEN": ""}, []string{"device", "list"}, 1, "no API token"},
		{"no server", map[string]string{"KOGGE_SERVER": "http://127.0.0.1:1"}, []string{"device", "list", "--timeout", "2s"}, 1, "127.0.0.1:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := *f
			g.env = map[string]string{}
			for k, v := range f.env {
				g.env[k] = v
			}
			for k, v := range tt.env {
				g.env[k] = v
			}
			code, out, errOut := g.ctl(t, "", tt.args...)
			if code != tt.code || !strings.Contains(errOut, tt.want) {
				t.Errorf("exit %d, stderr %q (stdout %q); want exit %d with %q", code, errOut, out, tt.code, tt.want)
			}
		})
	}
}

func TestTokenSources(t *testing.T) {
	f := newFleet(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "api-token")
	if err := os.WriteFile(file, []byte(testToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	def := filepath.Join(home, ".local", "share", "kogge")
	if err := os.MkdirAll(def, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(def, "api-token"), []byte(testToken), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		env  map[string]string
		args []string
		ok   bool
	}{
		{"flag", nil, []string{"--token", testToken}, true},
		{"flag wins over environment", map[string]string{"KOGGE_TOKEN": "wrong-wrong-wrong"}, []string{"--token", testToken}, true},
		{"token file flag", map[string]string{"KOGGE_TOKEN": "wrong-wrong-wrong"}, []string{"--token-file", file}, true},
		{"token file environment", map[string]string{"KOGGE_TOKEN_FILE": file}, nil, true},
		{"environment", map[string]string{"KOGGE_TOKEN": testToken}, nil, true},
		{"default file of the server", map[string]string{"HOME": home}, nil, true},
		{"missing token file", nil, []string{"--token-file", filepath.Join(dir, "nope")}, false},
		{"none", nil, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := *f
			g.env = map[string]string{"KOGGE_SERVER": f.url, "HOME": t.TempDir()}
			for k, v := range tt.env {
				g.env[k] = v
			}
			code, _, errOut := g.ctl(t, "", append([]string{"group", "list"}, tt.args...)...)
			if (code == 0) != tt.ok {
				t.Errorf("exit %d (%s), want success %v", code, errOut, tt.ok)
			}
		})
	}
}

func TestParseInterleaved(t *testing.T) {
	tests := []struct {
		args    []string
		pos     []string
		ttl     string
		verbose bool
	}{
		{[]string{"reboot"}, []string{"reboot"}, "", false},
		{[]string{"--ttl", "5m", "reboot", "a=b"}, []string{"reboot", "a=b"}, "5m", false},
		{[]string{"reboot", "--ttl=5m", "a=b", "-v"}, []string{"reboot", "a=b"}, "5m", true},
		{[]string{"reboot", "--", "--ttl=5m"}, []string{"reboot", "--ttl=5m"}, "", false},
	}
	for _, tt := range tests {
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		ttl := fs.String("ttl", "", "")
		v := fs.Bool("v", false, "")
		pos, err := parseInterleaved(fs, tt.args)
		if err != nil || !slices.Equal(pos, tt.pos) || *ttl != tt.ttl || *v != tt.verbose {
			t.Errorf("%q: pos %q ttl %q v %v err %v", tt.args, pos, *ttl, *v, err)
		}
	}
}
