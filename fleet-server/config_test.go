package fleetserver

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kogge-fleet/kogge/internal/config"
)

func TestDefaultDataDir(t *testing.T) {
	home := func() (string, error) { return "/home/ada", nil }
	noHome := func() (string, error) { return "", errors.New("no home") }
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	tests := []struct {
		name string
		euid int
		env  map[string]string
		home func() (string, error)
		want string
	}{
		{"root", 0, map[string]string{"XDG_DATA_HOME": "/x"}, home, "/var/lib/kogge"},
		{"user with XDG_DATA_HOME", 1000, map[string]string{"XDG_DATA_HOME": "/data/ada"}, home, "/data/ada/kogge"},
		{"relative XDG_DATA_HOME is ignored", 1000, map[string]string{"XDG_DATA_HOME": "rel"}, home, "/home/ada/.local/share/kogge"},
		{"user without XDG_DATA_HOME", 1000, nil, home, "/home/ada/.local/share/kogge"},
		{"user without home", 1000, nil, noHome, "kogge-data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := defaultDataDir(tt.euid, env(tt.env), tt.home); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDefaultConfigIsValid(t *testing.T) {
	c := DefaultConfig().Resolve()
	if err := c.Validate(); err != nil {
		t.Fatalf("default configuration invalid: %v", err)
	}
	if c.API.Listen != "127.0.0.1:8080" || c.Enroll.Listen != ":8443" || c.Broker.Listen != ":8883" || c.Broker.DevListen != "" {
		t.Errorf("listeners %q %q %q %q", c.API.Listen, c.Enroll.Listen, c.Broker.Listen, c.Broker.DevListen)
	}
	if c.Database != filepath.Join(c.DataDir, "kogge.db") {
		t.Errorf("database %q, want kogge.db in %q", c.Database, c.DataDir)
	}
	if !strings.HasPrefix(c.Broker.PublicAddress, "mqtts://") || !strings.HasSuffix(c.Broker.PublicAddress, ":8883") {
		t.Errorf("public broker address %q", c.Broker.PublicAddress)
	}
}

func TestResolveKeepsExplicitValues(t *testing.T) {
	c := DefaultConfig()
	c.Database = "postgres://db/kogge"
	c.Broker.PublicAddress = "tls://fleet:1"
	r := c.Resolve()
	if r.Database != c.Database || r.Broker.PublicAddress != c.Broker.PublicAddress {
		t.Errorf("resolve overwrote explicit values: %+v", r)
	}
	c.TLS.Names = []string{"fleet.example.org"}
	c.Broker.PublicAddress = ""
	c.Broker.Listen = "0.0.0.0:18883"
	if got := c.Resolve().Broker.PublicAddress; got != "mqtts://fleet.example.org:18883" {
		t.Errorf("derived public address %q", got)
	}
	c.Broker.Listen = "127.0.0.1:0"
	if got := c.Resolve().Broker.PublicAddress; got != "" {
		t.Errorf("public address %q derived before the port is known", got)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(c *Config)
		want string // in the error
	}{
		{"empty data dir", func(c *Config) { c.DataDir = "" }, "data-dir"},
		{"mysql", func(c *Config) { c.Database = "mysql://u:pw@db/x" }, "postgres://"},
		{"password not shown", func(c *Config) { c.Database = "mysql://u:hunter2@db/x" }, "u:xxxxx@db"},
		{"api listen", func(c *Config) { c.API.Listen = "8080" }, "api.listen"},
		{"enroll listen", func(c *Config) { c.Enroll.Listen = "" }, "enroll.listen"},
		{"dev listen", func(c *Config) { c.Broker.DevListen = "nope" }, "broker.dev-listen"},
		{"public address scheme", func(c *Config) { c.Broker.PublicAddress = "tcp://h:1883" }, "broker.public-address"},
		{"public address port", func(c *Config) { c.Broker.PublicAddress = "tls://h" }, "broker.public-address"},
		{"public address port 0", func(c *Config) { c.Broker.PublicAddress = "mqtts://h:0" }, "broker.public-address"},
		{"short token", func(c *Config) { c.API.Token = "short" }, "api.token"},
		{"no names", func(c *Config) { c.TLS.Names = nil }, "tls.names"},
		{"bad name", func(c *Config) { c.TLS.Names = []string{"a b"} }, "tls.names"},
		{"cert lifetime", func(c *Config) { c.Enroll.CertLifetime = time.Minute }, "enroll.cert-lifetime"},
		{"code ttl", func(c *Config) { c.Enroll.CodeTTL = 0 }, "enroll.code-ttl"},
		{"code ttl too long", func(c *Config) { c.Enroll.CodeTTL = 31 * 24 * time.Hour }, "enroll.code-ttl"},
		{"keepalive too short", func(c *Config) { c.Broker.Keepalive = 2 * time.Second }, "broker.keepalive"},
		{"keepalive", func(c *Config) { c.Broker.Keepalive = 0 }, "broker.keepalive"},
		{"retention", func(c *Config) { c.Heartbeat.Retention = time.Second }, "heartbeat.retention"},
		{"level", func(c *Config) { c.Log.Level = "loud" }, "log.level"},
		{"format", func(c *Config) { c.Log.Format = "xml" }, "log.format"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig().Resolve()
			tt.edit(&c)
			err := c.Validate()
			if err == nil {
				t.Fatal("Validate accepted it")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}
	t.Run("ipv6 name", func(t *testing.T) {
		c := DefaultConfig().Resolve()
		c.TLS.Names = []string{"::1", "fleet.example.org"}
		if err := c.Validate(); err != nil {
			t.Error(err)
		}
	})
}

// TestConfigFixtures loads every configuration file version the server has
// known, so that a rename of a setting cannot silently break an operator's
// file.
func TestConfigFixtures(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "config-v1.json"))
	if err != nil {
		t.Fatal(err)
	}
	c := DefaultConfig()
	if err := config.Decode(&c, b); err != nil {
		t.Fatalf("v1 fixture: %v", err)
	}
	c = c.Resolve()
	if err := c.Validate(); err != nil {
		t.Fatalf("v1 fixture invalid: %v", err)
	}
	if c.Broker.Keepalive != 45*time.Second || c.Enroll.CertLifetime != 720*time.Hour || c.Log.Format != "json" ||
		len(c.TLS.Names) != 2 || c.Broker.PublicAddress != "mqtts://fleet.example.org:9883" {
		t.Errorf("v1 fixture read as %+v", c)
	}
}

func TestLoadPrecedenceAndPrint(t *testing.T) {
	file := filepath.Join(t.TempDir(), "kogge.json")
	if err := os.WriteFile(file, []byte(`{"api": {"listen": "127.0.0.1:1"}, "broker": {"keepalive": "10s"},
		"database": "postgres://kogge:hunter2@db:5432/kogge"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	c := DefaultConfig()
	res, err := config.Load(&c, "kogge-server", config.Source{
		Args:    []string{"--config", file, "--api.listen=127.0.0.1:3", "--print-config"},
		Environ: []string{"KOGGE_API_LISTEN=127.0.0.1:2", "KOGGE_BROKER_KEEPALIVE=20s", "KOGGE_API_TOKEN=0123456789abcdefXYZ"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !res.PrintConfig {
		t.Error("--print-config not seen")
	}
	if c.API.Listen != "127.0.0.1:3" || c.Broker.Keepalive != 20*time.Second {
		t.Errorf("precedence: api.listen %q keepalive %v", c.API.Listen, c.Broker.Keepalive)
	}
	var out bytes.Buffer
	p := c.Resolve().Printable()
	if err := config.Print(&out, &p); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "hunter2") || strings.Contains(out.String(), "0123456789abcdefXYZ") {
		t.Errorf("a secret was printed:\n%s", out.String())
	}
	var tree map[string]any
	if err := json.Unmarshal(out.Bytes(), &tree); err != nil {
		t.Fatal(err)
	}
	if tree["api"].(map[string]any)["token"] != "(set)" {
		t.Errorf("token printed as %v", tree["api"])
	}
}

func TestNewLogger(t *testing.T) {
	tests := []struct {
		format   string
		wantJSON bool
	}{{"json", true}, {"text", false}, {"auto", true}} // a buffer is not a terminal
	for _, tt := range tests {
		t.Run(tt.format, func(t *testing.T) {
			var buf bytes.Buffer
			l, err := NewLogger(LogConfig{Level: "warn", Format: tt.format}, &buf)
			if err != nil {
				t.Fatal(err)
			}
			l.Info("hidden")
			l.Warn("shown", "k", "v")
			out := buf.String()
			if strings.Contains(out, "hidden") || !strings.Contains(out, "shown") {
				t.Errorf("level not applied: %q", out)
			}
			if got := json.Valid(bytes.TrimSpace(buf.Bytes())); got != tt.wantJSON {
				t.Errorf("JSON output = %v, want %v: %q", got, tt.wantJSON, out)
			}
		})
	}
	if _, err := NewLogger(LogConfig{Level: "loud", Format: "json"}, &bytes.Buffer{}); err == nil {
		t.Error("bad level accepted")
	}
}
