// Package bridgeconfig builds one office's bridge (fleet-server/bridge's
// Runner with its connector and keyring) from configuration. kogge-bridge
// uses it for its one bridge on the fleet server's bridge API; kogge-server
// uses it for the bridges it runs in-process on its own delivery queue
// (fleetserver.Config.Bridges).
//
// Config carries `config` tags for internal/config, so the same settings
// are flags, KOGGE_* environment variables and JSON keys; Decode reads one
// bridge's JSON object and DecodeList a JSON list of them.
package bridgeconfig

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kogge-fleet/kogge/fleet-server/bridge"
	"github.com/kogge-fleet/kogge/fleet-server/connectors/dropdir"
	"github.com/kogge-fleet/kogge/fleet-server/connectors/idpass"
	"github.com/kogge-fleet/kogge/fleet-server/connectors/open311"
	"github.com/kogge-fleet/kogge/fleet-server/connectors/owi"
	"github.com/kogge-fleet/kogge/fleet-server/connectors/webhook"
	"github.com/kogge-fleet/kogge/internal/config"
	"github.com/kogge-fleet/kogge/protocol/seal"
)

// Connector kinds.
const (
	KindWebhook = "webhook"
	KindIDPass  = "idpass"
	KindOWI     = "owi"
	KindOpen311 = "open311"
)

// Config is one office's bridge: the office, its keys, the connector into
// its procedure and the runner's tuning.
type Config struct {
	// Office is the office this bridge serves.
	Office string `config:"office" usage:"the office this bridge serves (its certificate's CN is bridge.OFFICE)"`
	// Keys are the office's private keys as KEY-ID=FILE.
	Keys []string `config:"keys" usage:"office private keys as KEY-ID=FILE (AGE-SECRET-KEY-1…, mode 0600), comma-separated"`
	// KeySecrets are office private keys given inline as
	// KEY-ID=AGE-SECRET-KEY-1…, for configuration that is itself kept
	// secret; prefer Keys.
	KeySecrets []string `config:"key-secrets" secret:"true" usage:"office private keys inline as KEY-ID=AGE-SECRET-KEY-1… (prefer keys)"`
	// RetiredKeys are key ids the office retired: records sealed for them
	// become dead letters.
	RetiredKeys []string `config:"retired-keys" usage:"key ids the office has retired, comma-separated"`
	// StateDir holds the connector's state (the Open311 journal).
	StateDir string `config:"state-dir" usage:"directory for the connector's state (the open311 idempotency journal)"`
	// Connector is the procedure's kind.
	Connector string `config:"connector" usage:"connector: webhook, idpass, owi or open311"`

	Procedure Procedure `config:"procedure"`
	Bridge    Runner    `config:"bridge"`
}

// Procedure configures the connection to the procedure; which settings
// apply depends on the connector.
type Procedure struct {
	URL string `config:"url" usage:"webhook URL, idpass/owi HTTPS URL, or open311 GeoReport v2 base URL"`
	// CA, Cert, Key: TLS towards the procedure.
	CA         string        `config:"ca" usage:"CA certificate (PEM) of the procedure's server (default: system roots)"`
	Cert       string        `config:"cert" usage:"client certificate (PEM) for mutual TLS to the procedure"`
	Key        string        `config:"key" usage:"client key (PEM) for mutual TLS to the procedure"`
	SecretFile string        `config:"secret-file" usage:"file with the HMAC secret for signing (webhook; idpass/owi over https)"`
	Secret     string        `config:"secret" secret:"true" usage:"the HMAC secret inline (prefer secret-file)"`
	Timeout    time.Duration `config:"timeout" usage:"timeout of one request to the procedure"`
	Attempts   int           `config:"attempts" usage:"tries of one HTTPS delivery before the queue retries it"`

	Transport      string        `config:"transport" usage:"idpass/owi: dropdir or https"`
	Dir            string        `config:"dir" usage:"idpass/owi: the drop directory"`
	ReceiptTimeout time.Duration `config:"receipt-timeout" usage:"idpass/owi: wait for the procedure's receipt file"`
	Format         string        `config:"format" usage:"idpass: xml or json"`
	EmbedAll       bool          `config:"embed-all" usage:"idpass: embed every attempt's image, not only the selected ones"`
	Adapter        string        `config:"adapter" usage:"owi: kogge-xml, kogge-json or csv-example"`

	APIKeyFile      string   `config:"api-key-file" usage:"open311: file with the api_key"`
	APIKey          string   `config:"api-key" secret:"true" usage:"open311: the api_key inline (prefer api-key-file)"`
	Jurisdiction    string   `config:"jurisdiction" usage:"open311: jurisdiction_id"`
	ServiceCodes    []string `config:"service-codes" usage:"open311: CATEGORY=SERVICE_CODE, comma-separated; * for every other category"`
	Media           string   `config:"media" usage:"open311: upload, url or none"`
	MediaURL        string   `config:"media-url" usage:"open311: media_url template with {record} and {blob} (media url)"`
	AllPhotos       bool     `config:"all-photos" usage:"open311: also send photos the reporter did not mark public"`
	Lookup          string   `config:"lookup" usage:"open311: attribute (look up an uncertain earlier POST) or none"`
	RecordAttribute string   `config:"record-attribute" usage:"open311: attribute code carrying the record id"`
}

// Runner tunes the bridge runner.
type Runner struct {
	Concurrency  int           `config:"concurrency" usage:"deliveries in flight at once"`
	Visibility   time.Duration `config:"visibility" usage:"lease time; one delivery must finish within it"`
	IdleWait     time.Duration `config:"idle-wait" usage:"wait after an empty lease before leasing again"`
	DrainTimeout time.Duration `config:"drain-timeout" usage:"how long a shutdown waits for deliveries in flight"`
	PollInterval time.Duration `config:"poll-interval" usage:"how often the procedure's status is polled (open311)"`
}

// Default returns the defaults.
func Default() Config {
	return Config{
		Procedure: Procedure{
			Timeout: 30 * time.Second, Attempts: 3, Transport: "dropdir", ReceiptTimeout: 2 * time.Minute,
			Format: "xml", Adapter: owi.XMLAdapter{}.Name(), Media: "upload", Lookup: "attribute",
		},
		Bridge: Runner{
			Concurrency: bridge.DefaultConcurrency, Visibility: bridge.DefaultVisibility, IdleWait: bridge.DefaultIdleWait,
			DrainTimeout: bridge.DefaultDrainTimeout, PollInterval: bridge.DefaultPollInterval,
		},
	}
}

// Decode reads one bridge's JSON object over the defaults.
func Decode(b []byte) (Config, error) {
	c := Default()
	if err := config.Decode(&c, b); err != nil {
		return Config{}, err
	}
	return c, nil
}

// DecodeList reads a JSON list of bridges, each over the defaults.
func DecodeList(b []byte) ([]Config, error) {
	var raw []json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("want a JSON list of bridges: %w", err)
	}
	if dec.More() {
		return nil, errors.New("trailing data after the list of bridges")
	}
	out := make([]Config, 0, len(raw))
	for i, r := range raw {
		c, err := Decode(r)
		if err != nil {
			return nil, fmt.Errorf("bridge %d: %w", i+1, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// Validate checks what can be checked without reading files.
func (c *Config) Validate() error {
	var errs []error
	need := func(v, name string) {
		if v == "" {
			errs = append(errs, fmt.Errorf("%s is not set", name))
		}
	}
	need(c.Office, "office")
	if len(c.Keys)+len(c.KeySecrets) == 0 {
		errs = append(errs, errors.New("keys: no office key: give KEY-ID=FILE for every key the office has not retired"))
	}
	for _, k := range c.Keys {
		if id, file, ok := strings.Cut(k, "="); !ok || id == "" || file == "" {
			errs = append(errs, fmt.Errorf("keys: %q is not KEY-ID=FILE", k))
		}
	}
	for i, k := range c.KeySecrets {
		// Never echo a secret.
		if id, s, ok := strings.Cut(k, "="); !ok || id == "" || s == "" {
			errs = append(errs, fmt.Errorf("key-secrets: item %d is not KEY-ID=AGE-SECRET-KEY-1…", i+1))
		}
	}
	p := &c.Procedure
	secret := func(file, inline, name string) {
		if file == "" && inline == "" {
			errs = append(errs, fmt.Errorf("procedure.%s-file is not set", name))
		}
	}
	switch c.Connector {
	case KindWebhook:
		need(p.URL, "procedure.url")
		secret(p.SecretFile, p.Secret, "secret")
	case KindIDPass, KindOWI:
		switch p.Transport {
		case "dropdir":
			need(p.Dir, "procedure.dir")
		case "https":
			need(p.URL, "procedure.url")
		default:
			errs = append(errs, fmt.Errorf("procedure.transport %q: want dropdir or https", p.Transport))
		}
		if c.Connector == KindOWI {
			if _, ok := owi.Adapters()[p.Adapter]; !ok {
				errs = append(errs, fmt.Errorf("procedure.adapter %q: want one of %v", p.Adapter, owi.AdapterNames()))
			}
		}
	case KindOpen311:
		need(p.URL, "procedure.url")
		secret(p.APIKeyFile, p.APIKey, "api-key")
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

// Options are the optional parts of Build.
type Options struct {
	Logger *slog.Logger
	// Registerer receives the runner's metrics (labelled with the office);
	// nil registers none.
	Registerer prometheus.Registerer
	// Keys is the office's keyring when the caller loaded it already
	// (Config.Keyring); nil: Build loads it.
	Keys *seal.Keyring
}

// Bridge is a built bridge: the runner with the connector it owns.
type Bridge struct {
	*bridge.Runner
	closeOnce sync.Once
	closeConn func()
}

// Run runs the bridge until ctx ends (see bridge.Runner.Run) and then
// closes its connector.
func (b *Bridge) Run(ctx context.Context) error {
	defer b.Close()
	return b.Runner.Run(ctx)
}

// Close closes the connector; for a bridge that is built but never run.
// Run closes it by itself.
func (b *Bridge) Close() { b.closeOnce.Do(b.closeConn) }

// Build validates cfg, loads the office's keys, builds the connector and
// returns the bridge on src (the in-process *delivery.Queue or a
// *bridgeclient.Client).
func Build(cfg Config, src bridge.Source, opts Options) (*Bridge, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("bridge of %s: %w", cfg.Office, err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("office", cfg.Office)
	keys := opts.Keys
	if keys == nil {
		var err error
		if keys, err = cfg.Keyring(); err != nil {
			return nil, fmt.Errorf("bridge of %s: %w", cfg.Office, err)
		}
	}
	conn, closeConn, err := connector(cfg, log)
	if err != nil {
		return nil, fmt.Errorf("bridge of %s: %w", cfg.Office, err)
	}
	r := cfg.Bridge
	runner, err := bridge.New(src, keys, conn, bridge.Options{
		Office: cfg.Office, Logger: log, Registerer: opts.Registerer,
		Concurrency: r.Concurrency, Visibility: r.Visibility, IdleWait: r.IdleWait,
		DrainTimeout: r.DrainTimeout, PollInterval: r.PollInterval,
	})
	if err != nil {
		closeConn()
		return nil, fmt.Errorf("bridge of %s: %w", cfg.Office, err)
	}
	return &Bridge{Runner: runner, closeConn: closeConn}, nil
}

// Keyring loads the office's keys from Keys and KeySecrets and retires
// RetiredKeys.
func (cfg *Config) Keyring() (*seal.Keyring, error) {
	ring := seal.NewKeyring(cfg.Office)
	for _, k := range cfg.Keys {
		id, file, _ := strings.Cut(k, "=")
		secret, err := ReadSecret(file, "office key "+id)
		if err != nil {
			return nil, err
		}
		err = ring.Add(id, string(secret))
		clear(secret)
		if err != nil {
			return nil, fmt.Errorf("office key file %s: %w", file, err)
		}
	}
	for _, k := range cfg.KeySecrets {
		id, s, _ := strings.Cut(k, "=")
		if err := ring.Add(id, strings.TrimSpace(s)); err != nil {
			return nil, fmt.Errorf("office key %s (inline): %w", id, err)
		}
	}
	for _, id := range cfg.RetiredKeys {
		ring.Retire(id)
	}
	return ring, nil
}

// connector builds the configured connector and the function that closes
// it.
func connector(cfg Config, log *slog.Logger) (bridge.Connector, func(), error) {
	p := cfg.Procedure
	tc, err := procedureTLS(p)
	if err != nil {
		return nil, nil, err
	}
	secret := func(file, inline, what string) ([]byte, error) {
		if file != "" {
			return ReadSecret(file, what)
		}
		return []byte(strings.TrimSpace(inline)), nil
	}
	client := func(needSecret bool) (webhook.ClientConfig, error) {
		cc := webhook.ClientConfig{URL: p.URL, TLS: tc, Timeout: p.Timeout, Attempts: p.Attempts, RequireReference: true}
		s, err := secret(p.SecretFile, p.Secret, "procedure secret")
		if err != nil {
			return cc, err
		}
		if len(s) > 0 {
			cc.Secret = s
		} else if needSecret {
			return cc, errors.New("procedure.secret-file is not set")
		}
		return cc, nil
	}
	drop := dropdir.Config{Dir: p.Dir, ReceiptTimeout: p.ReceiptTimeout}
	switch cfg.Connector {
	case KindWebhook:
		cc, err := client(true)
		if err != nil {
			return nil, nil, err
		}
		c, err := webhook.New(webhook.Config{ClientConfig: cc})
		if err != nil {
			return nil, nil, err
		}
		return c, c.Close, nil
	case KindIDPass:
		ic := idpass.Config{Format: p.Format, Transport: p.Transport, Drop: drop, EmbedAll: p.EmbedAll}
		if p.Transport == idpass.TransportHTTPS {
			if ic.HTTPS, err = client(false); err != nil {
				return nil, nil, err
			}
		}
		c, err := idpass.New(ic)
		if err != nil {
			return nil, nil, err
		}
		return c, c.Close, nil
	case KindOWI:
		oc := owi.Config{Adapter: owi.Adapters()[p.Adapter], Transport: p.Transport, Drop: drop}
		if p.Transport == owi.TransportHTTPS {
			if oc.HTTPS, err = client(false); err != nil {
				return nil, nil, err
			}
		}
		c, err := owi.New(oc)
		if err != nil {
			return nil, nil, err
		}
		return c, c.Close, nil
	case KindOpen311:
		key, err := secret(p.APIKeyFile, p.APIKey, "open311 api key")
		if err != nil {
			return nil, nil, err
		}
		codes := map[string]string{}
		for _, sc := range p.ServiceCodes {
			cat, code, _ := strings.Cut(sc, "=")
			codes[strings.TrimSpace(cat)] = strings.TrimSpace(code)
		}
		c, err := open311.New(open311.Config{
			Endpoint: p.URL, APIKey: string(key), Jurisdiction: p.Jurisdiction, ServiceCodes: codes,
			Media: p.Media, MediaURL: p.MediaURL, AllPhotos: p.AllPhotos, Lookup: p.Lookup,
			RecordAttribute: p.RecordAttribute, StateDir: cfg.StateDir, TLS: tc, Timeout: p.Timeout, Logger: log,
		})
		if err != nil {
			return nil, nil, err
		}
		return c, func() { c.Close() }, nil
	}
	return nil, nil, fmt.Errorf("connector %q: want webhook, idpass, owi or open311", cfg.Connector)
}

// procedureTLS is the TLS towards the procedure: its CA, and the bridge's
// client certificate for mutual TLS. Nil when neither is configured.
func procedureTLS(p Procedure) (*tls.Config, error) {
	if p.CA == "" && p.Cert == "" {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if p.CA != "" {
		pool, err := LoadPool(p.CA)
		if err != nil {
			return nil, fmt.Errorf("procedure CA: %w", err)
		}
		tc.RootCAs = pool
	}
	if p.Cert != "" {
		cert, err := tls.LoadX509KeyPair(p.Cert, p.Key)
		if err != nil {
			return nil, fmt.Errorf("procedure client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// LoadPool reads a PEM file of CA certificates.
func LoadPool(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s holds no PEM certificate", file)
	}
	return pool, nil
}

// ReadSecret reads a secret file, refusing one that others may read.
func ReadSecret(file, what string) ([]byte, error) {
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
