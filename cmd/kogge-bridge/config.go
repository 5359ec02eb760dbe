package main

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/kogge-fleet/kogge/fleet-server/bridge"
	"github.com/kogge-fleet/kogge/fleet-server/connectors/owi"
)

// Config is kogge-bridge's configuration: flags over KOGGE_* environment
// over the JSON file (internal/config).
type Config struct {
	// Server is the fleet server's bridge API (its enrollment listener).
	Server string `config:"server" usage:"fleet server's bridge API, e.g. https://fleet.example.org:8443"`
	// Office is the office this bridge serves.
	Office string `config:"office" usage:"the office this bridge serves (its certificate's CN is bridge.OFFICE)"`
	// TLS is the bridge's identity towards the fleet server.
	TLS TLSConfig `config:"tls"`
	// Keys are the office's private keys as KEY-ID=FILE.
	Keys []string `config:"keys" usage:"office private keys as KEY-ID=FILE (AGE-SECRET-KEY-1…, mode 0600), comma-separated"`
	// RetiredKeys are key ids the office retired: records sealed for them
	// become dead letters.
	RetiredKeys []string `config:"retired-keys" usage:"key ids the office has retired, comma-separated"`
	// StateDir holds the connector's state (the Open311 journal).
	StateDir string `config:"state-dir" usage:"directory for the connector's state (the open311 idempotency journal)"`
	// Connector is the procedure's kind.
	Connector string `config:"connector" usage:"connector: webhook, idpass, owi or open311"`

	Procedure ProcedureConfig `config:"procedure"`
	Bridge    RunnerConfig    `config:"bridge"`
	Metrics   MetricsConfig   `config:"metrics"`
	Log       LogConfig       `config:"log"`
}

// TLSConfig names the bridge's certificate files from the fleet CA.
type TLSConfig struct {
	Cert string `config:"cert" usage:"the bridge's client certificate (PEM) from the fleet CA"`
	Key  string `config:"key" usage:"the bridge's private key (PEM)"`
	CA   string `config:"ca" usage:"the fleet CA certificate (PEM) that signs the server's certificate"`
}

// ProcedureConfig configures the connection to the procedure; which
// settings apply depends on the connector.
type ProcedureConfig struct {
	URL string `config:"url" usage:"webhook URL, idpass/owi HTTPS URL, or open311 GeoReport v2 base URL"`
	// CA, Cert, Key: TLS towards the procedure.
	CA         string        `config:"ca" usage:"CA certificate (PEM) of the procedure's server (default: system roots)"`
	Cert       string        `config:"cert" usage:"client certificate (PEM) for mutual TLS to the procedure"`
	Key        string        `config:"key" usage:"client key (PEM) for mutual TLS to the procedure"`
	SecretFile string        `config:"secret-file" usage:"file with the HMAC secret for signing (webhook; idpass/owi over https)"`
	Timeout    time.Duration `config:"timeout" usage:"timeout of one request to the procedure"`
	Attempts   int           `config:"attempts" usage:"tries of one HTTPS delivery before the queue retries it"`

	Transport      string        `config:"transport" usage:"idpass/owi: dropdir or https"`
	Dir            string        `config:"dir" usage:"idpass/owi: the drop directory"`
	ReceiptTimeout time.Duration `config:"receipt-timeout" usage:"idpass/owi: wait for the procedure's receipt file"`
	Format         string        `config:"format" usage:"idpass: xml or json"`
	EmbedAll       bool          `config:"embed-all" usage:"idpass: embed every attempt's image, not only the selected ones"`
	Adapter        string        `config:"adapter" usage:"owi: kogge-xml, kogge-json or csv-example"`

	APIKeyFile      string   `config:"api-key-file" usage:"open311: file with the api_key"`
	Jurisdiction    string   `config:"jurisdiction" usage:"open311: jurisdiction_id"`
	ServiceCodes    []string `config:"service-codes" usage:"open311: CATEGORY=SERVICE_CODE, comma-separated; * for every other category"`
	Media           string   `config:"media" usage:"open311: upload, url or none"`
	MediaURL        string   `config:"media-url" usage:"open311: media_url template with {record} and {blob} (media url)"`
	AllPhotos       bool     `config:"all-photos" usage:"open311: also send photos the reporter did not mark public"`
	Lookup          string   `config:"lookup" usage:"open311: attribute (look up an uncertain earlier POST) or none"`
	RecordAttribute string   `config:"record-attribute" usage:"open311: attribute code carrying the record id"`
}

// RunnerConfig tunes the bridge runner.
type RunnerConfig struct {
	Concurrency  int           `config:"concurrency" usage:"deliveries in flight at once"`
	Visibility   time.Duration `config:"visibility" usage:"lease time; one delivery must finish within it"`
	DrainTimeout time.Duration `config:"drain-timeout" usage:"how long SIGTERM waits for deliveries in flight"`
	PollInterval time.Duration `config:"poll-interval" usage:"how often the procedure's status is polled (open311)"`
}

// MetricsConfig configures /metrics and /healthz.
type MetricsConfig struct {
	Listen string `config:"listen" usage:"address of /metrics and /healthz (plain HTTP); empty: off"`
}

// LogConfig configures logging.
type LogConfig struct {
	Level  string `config:"level" usage:"log level: debug, info, warn, error"`
	Format string `config:"format" usage:"log format: text or json"`
}

// Connector kinds.
const (
	kindWebhook = "webhook"
	kindIDPass  = "idpass"
	kindOWI     = "owi"
	kindOpen311 = "open311"
)

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Procedure: ProcedureConfig{
			Timeout: 30 * time.Second, Attempts: 3, Transport: "dropdir", ReceiptTimeout: 2 * time.Minute,
			Format: "xml", Adapter: owi.XMLAdapter{}.Name(), Media: "upload", Lookup: "attribute",
		},
		Bridge: RunnerConfig{
			Concurrency: bridge.DefaultConcurrency, Visibility: bridge.DefaultVisibility,
			DrainTimeout: bridge.DefaultDrainTimeout, PollInterval: bridge.DefaultPollInterval,
		},
		Metrics: MetricsConfig{Listen: "127.0.0.1:9465"},
		Log:     LogConfig{Level: "info", Format: "json"},
	}
}

// Validate checks what can be checked without reading files.
func (c *Config) Validate() error {
	var errs []error
	need := func(v, name string) {
		if v == "" {
			errs = append(errs, fmt.Errorf("%s is not set", name))
		}
	}
	need(c.Server, "server")
	need(c.Office, "office")
	need(c.TLS.Cert, "tls.cert")
	need(c.TLS.Key, "tls.key")
	need(c.TLS.CA, "tls.ca")
	if u, err := url.Parse(c.Server); c.Server != "" && (err != nil || u.Scheme != "https" || u.Host == "") {
		errs = append(errs, fmt.Errorf("server %q: want https://host:port", c.Server))
	}
	if len(c.Keys) == 0 {
		errs = append(errs, errors.New("keys: no office key: give KEY-ID=FILE for every key the office has not retired"))
	}
	for _, k := range c.Keys {
		if id, file, ok := strings.Cut(k, "="); !ok || id == "" || file == "" {
			errs = append(errs, fmt.Errorf("keys: %q is not KEY-ID=FILE", k))
		}
	}
	p := &c.Procedure
	switch c.Connector {
	case kindWebhook:
		need(p.URL, "procedure.url")
		need(p.SecretFile, "procedure.secret-file")
	case kindIDPass, kindOWI:
		switch p.Transport {
		case "dropdir":
			need(p.Dir, "procedure.dir")
		case "https":
			need(p.URL, "procedure.url")
		default:
			errs = append(errs, fmt.Errorf("procedure.transport %q: want dropdir or https", p.Transport))
		}
		if c.Connector == kindOWI {
			if _, ok := owi.Adapters()[p.Adapter]; !ok {
				errs = append(errs, fmt.Errorf("procedure.adapter %q: want one of %v", p.Adapter, owi.AdapterNames()))
			}
		}
	case kindOpen311:
		need(p.URL, "procedure.url")
		need(p.APIKeyFile, "procedure.api-key-file")
		need(c.StateDir, "state-dir")
		if len(p.ServiceCodes) == 0 {
			errs = append(errs, errors.New("procedure.service-codes: map the report categories to service codes, e.g. pothole=001,*=099"))
		}
		for _, sc := range p.ServiceCodes {
			if cat, code, ok := strings.Cut(sc, "="); !ok || cat == "" || code == "" {
				errs = append(errs, fmt.Errorf("procedure.service-codes: %q is not CATEGORY=CODE", sc))
			}
		}
	case "":
		errs = append(errs, errors.New("connector is not set: webhook, idpass, owi or open311"))
	default:
		errs = append(errs, fmt.Errorf("connector %q: want webhook, idpass, owi or open311", c.Connector))
	}
	if (p.Cert == "") != (p.Key == "") {
		errs = append(errs, errors.New("procedure.cert and procedure.key go together"))
	}
	return errors.Join(errs...)
}

// readSecret reads a secret file, refusing one that others may read.
func readSecret(file, what string) ([]byte, error) {
	st, err := os.Stat(file)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s %s has mode %v: others may read it; chmod 600 it", what, file, st.Mode().Perm())
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return nil, fmt.Errorf("%s %s is empty", what, file)
	}
	return []byte(s), nil
}
