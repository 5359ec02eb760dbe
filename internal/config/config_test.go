package config

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type testConfig struct {
	DataDir string `config:"data-dir" usage:"where data lives"`
	Broker  struct {
		Listen  string        `config:"listen"`
		Dev     bool          `config:"dev-insecure"`
		Timeout time.Duration `config:"timeout"`
	} `config:"broker"`
	Workers int      `config:"workers"`
	Names   []string `config:"names"`
	Token   string   `config:"token" secret:"true"`
	Ignored string
}

func defaults() *testConfig {
	c := &testConfig{DataDir: "/var/lib/kogge", Workers: 4}
	c.Broker.Listen = ":8883"
	c.Broker.Timeout = 10 * time.Second
	return c
}

func TestPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "kogge.json")
	if err := os.WriteFile(file, []byte(`{"data-dir": "/srv/file", "workers": 8,
		"broker": {"listen": ":9000", "timeout": "1m"}, "names": ["a", "b"]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	c := defaults()
	res, err := Load(c, "kogge-test", Source{
		Args:    []string{"--config", file, "--workers=16", "--broker.dev-insecure", "pos1"},
		Environ: []string{"KOGGE_DATA_DIR=/srv/env", "KOGGE_WORKERS=12", "KOGGE_TOKEN=s3cret", "OTHER=x"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.File != file || len(res.Args) != 1 || res.Args[0] != "pos1" {
		t.Errorf("result %+v", res)
	}
	// flag > env > file > default
	if c.Workers != 16 {
		t.Errorf("workers = %d, want the flag's 16", c.Workers)
	}
	if c.DataDir != "/srv/env" {
		t.Errorf("data-dir = %q, want the environment's", c.DataDir)
	}
	if c.Broker.Listen != ":9000" || c.Broker.Timeout != time.Minute {
		t.Errorf("broker = %+v, want the file's", c.Broker)
	}
	if !c.Broker.Dev {
		t.Error("--broker.dev-insecure not applied")
	}
	if strings.Join(c.Names, ",") != "a,b" || c.Token != "s3cret" {
		t.Errorf("names %v token %q", c.Names, c.Token)
	}

	var out bytes.Buffer
	if err := Print(&out, c); err != nil {
		t.Fatal(err)
	}
	var printed map[string]any
	if err := json.Unmarshal(out.Bytes(), &printed); err != nil {
		t.Fatalf("Print is not JSON: %v", err)
	}
	if printed["token"] != "(set)" || strings.Contains(out.String(), "s3cret") {
		t.Errorf("secret printed: %s", out.String())
	}
	if printed["broker"].(map[string]any)["timeout"] != "1m0s" {
		t.Errorf("duration printed as %v", printed["broker"])
	}
	// What Print writes, Decode reads back to the same configuration.
	back := defaults()
	var trimmed map[string]any
	json.Unmarshal(out.Bytes(), &trimmed)
	delete(trimmed, "token")
	b, _ := json.Marshal(trimmed)
	if err := Decode(back, b); err != nil {
		t.Fatalf("printed configuration does not load: %v", err)
	}
	back.Token = c.Token
	if !equalJSON(t, back, c) {
		t.Errorf("round trip differs: %+v vs %+v", back, c)
	}
}

func equalJSON(t *testing.T, a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		args []string
		env  []string
		want string
	}{
		{name: "unknown key", doc: `{"nope": 1}`, want: `unknown setting "nope"`},
		{name: "unknown nested key", doc: `{"broker": {"nope": 1}}`, want: `unknown setting "broker.nope"`},
		{name: "syntax", doc: "{\n  \"workers\": ,\n}", want: "line 2"},
		{name: "wrong type", doc: `{"workers": "many"}`, want: `setting "workers"`},
		{name: "object for value", doc: `{"workers": {"a": 1}}`, want: "an object where a value belongs"},
		{name: "bad duration", doc: `{"broker": {"timeout": "soon"}}`, want: "not a duration"},
		{name: "trailing", doc: `{} {}`, want: "trailing data"},
		{name: "truncated", doc: `{"workers": 1`, want: "ends before"},
		{name: "bad env", env: []string{"KOGGE_WORKERS=x"}, want: "KOGGE_WORKERS"},
		{name: "bad flag", args: []string{"--workers=x"}, want: "--workers"},
		{name: "unknown flag", args: []string{"--nope"}, want: "nope"},
		{name: "missing file", args: []string{"--config=/nonexistent/kogge.json"}, want: "config file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if tt.doc != "" {
				file := filepath.Join(t.TempDir(), "c.json")
				os.WriteFile(file, []byte(tt.doc), 0o600)
				args = append(args, "--config", file)
			}
			_, err := Load(defaults(), "kogge-test", Source{Args: args, Environ: tt.env})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestPrintConfigFlag(t *testing.T) {
	res, err := Load(defaults(), "kogge-test", Source{Args: []string{"--print-config"}})
	if err != nil || !res.PrintConfig {
		t.Fatalf("Load = %+v, %v", res, err)
	}
	if u := Usage(defaults(), "kogge-test"); !strings.Contains(u, "--broker.listen, KOGGE_BROKER_LISTEN") {
		t.Errorf("usage lacks a setting:\n%s", u)
	}
}

// FuzzDecode feeds arbitrary configuration files to Decode: it must return an
// error or a configuration, never panic.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"data-dir": "/x", "broker": {"listen": ":1", "timeout": "5s"}, "names": ["a"]}`))
	f.Add([]byte(`{"workers": 1e99}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c := defaults()
		if err := Decode(c, b); err != nil {
			return
		}
		var out bytes.Buffer
		if err := Print(&out, c); err != nil {
			t.Fatalf("Print after Decode: %v", err)
		}
	})
}
