package fleetserver

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kogge-fleet/kogge/fleet-server/bridge/bridgeconfig"
	"github.com/kogge-fleet/kogge/fleet-server/registry"
	"github.com/kogge-fleet/kogge/fleet-server/retention"
)

// Config is the fleet server's configuration. Every field can be set in the
// JSON configuration file, as a KOGGE_* environment variable and as a flag
// (see internal/config); `kogge-server --print-config` prints the result.
//
// The data directory holds the SQLite database (unless Database names
// PostgreSQL), the generated API token, and the blobs the devices upload.
// Its default is /var/lib/kogge when the server runs as root, and otherwise
// $XDG_DATA_HOME/kogge, or ~/.local/share/kogge when XDG_DATA_HOME is unset.
type Config struct {
	DataDir  string `config:"data-dir" usage:"where the server keeps its data: database, API token, blobs (default /var/lib/kogge for root, else $XDG_DATA_HOME/kogge or ~/.local/share/kogge)"`
	Database string `config:"database" usage:"database: a SQLite file path or a postgres:// URL (default: kogge.db in the data directory)"`
	// Replica names this server among the replicas of a fleet (see
	// config_cluster.go); default the host name.
	Replica string `config:"replica" usage:"this replica's id among the fleet's replicas (a-z, 0-9, '.', '_', '-'); its identity at an external broker is kogge-server:ID (default: the host name)"`

	API       APIConfig       `config:"api"`
	Enroll    EnrollConfig    `config:"enroll"`
	Broker    BrokerConfig    `config:"broker"`
	TLS       TLSConfig       `config:"tls"`
	Heartbeat HeartbeatConfig `config:"heartbeat"`
	Log       LogConfig       `config:"log"`
	Dashboard DashboardConfig `config:"dashboard"`
	Delivery  DeliveryConfig  `config:"delivery"`
	Retention RetentionConfig `config:"retention"`
	Rollout   RolloutConfig   `config:"rollout"`

	// BridgesFile is a JSON file with a list of bridges to run inside the
	// server (see Bridges); New reads it and appends them to Bridges.
	BridgesFile string `config:"bridges-file" usage:"JSON file with a list of in-process bridges (bridgeconfig.Config objects: office, keys or key-secrets, connector, procedure, bridge); see the trade-off in the docs"`
	// Bridges are the offices' bridges the server runs in-process, on its
	// own delivery queue, for the one-command default (see
	// app_delivery.go for the trade-off: the offices' private keys then
	// live in the server). They are set in Go or through BridgesFile, not
	// as flags or environment variables.
	Bridges []bridgeconfig.Config
}

// APIConfig configures the REST API.
type APIConfig struct {
	// Listen is the plain-HTTP address of the API. Production puts it
	// behind a TLS-terminating proxy; the default listens on loopback only.
	Listen string `config:"listen" usage:"address of the REST API, /metrics and health (plain HTTP; put TLS in front in production)"`
	// Token is the bearer token for /api/v1. Empty: one is generated at the
	// first start and kept in TokenFile.
	Token string `config:"token" secret:"true" usage:"bearer token for /api/v1 (default: generated once and stored in the data directory)"`
}

// EnrollConfig configures enrollment.
type EnrollConfig struct {
	// Listen is the HTTPS address devices enroll and renew at.
	Listen string `config:"listen" usage:"HTTPS address of the enrollment endpoint (POST /enroll/v1)"`
	// CertLifetime is how long a device certificate is valid.
	CertLifetime time.Duration `config:"cert-lifetime" usage:"lifetime of device certificates"`
	// CodeTTL is the default lifetime of an enrollment code.
	CodeTTL time.Duration `config:"code-ttl" usage:"default lifetime of enrollment codes"`
}

// BrokerConfig configures the embedded MQTT broker.
type BrokerConfig struct {
	// Listen is the mTLS listener devices connect to.
	Listen string `config:"listen" usage:"address of the MQTT broker's TLS listener (client certificates required)"`
	// DevListen is a plain-TCP listener without client certificates, for
	// development only. Empty: off.
	DevListen string `config:"dev-listen" usage:"plain-TCP MQTT listener for development, without TLS (default off)"`
	// PublicAddress is the broker address devices get at enrollment, for
	// example mqtts://fleet.example.org:8883. Empty: mqtts:// with the first
	// TLS name and the port of Listen.
	PublicAddress string `config:"public-address" usage:"broker address given to devices at enrollment (default mqtts://FIRST-TLS-NAME:PORT)"`
	// Keepalive is the MQTT keepalive devices are expected to use; presence
	// declares a silent device offline after twice this.
	Keepalive time.Duration `config:"keepalive" usage:"MQTT keepalive; a silent device is offline after at most twice this"`
	// Mode is embedded or external; External configures the latter (see
	// config_cluster.go).
	Mode     string               `config:"mode" usage:"embedded (the server's own broker) or external (Mosquitto or EMQX; several replicas, see docs/deploy.md)"`
	External ExternalBrokerConfig `config:"external"`
}

// TLSConfig configures the server's own certificate, which the fleet CA
// issues for the enrollment endpoint and the broker.
type TLSConfig struct {
	Names []string `config:"names" usage:"DNS names and IP addresses in the server certificate (comma-separated)"`
}

// HeartbeatConfig configures the health time series.
type HeartbeatConfig struct {
	Retention time.Duration `config:"retention" usage:"how long heartbeats are kept"`
}

// LogConfig configures logging.
type LogConfig struct {
	Level  string `config:"level" usage:"log level: debug, info, warn, error"`
	Format string `config:"format" usage:"log format: auto (text on a terminal, else JSON), text or json"`
}

// DashboardConfig configures the web dashboard and its alerts.
type DashboardConfig struct {
	// Listen is a plain-HTTP address of its own for the dashboard; empty
	// serves it on the API's address (everything outside /api/v1,
	// /healthz, /readyz and /metrics). Production puts TLS in front (and
	// sets PublicURL to https).
	Listen string `config:"listen" usage:"own address of the web dashboard (plain HTTP; put TLS in front in production); default: on the API's address"`
	// PublicURL is the dashboard's address as users reach it; with https
	// its cookies are Secure. It is the base of links in alert
	// notifications and of the OIDC callback.
	PublicURL string `config:"public-url" usage:"the dashboard's address as users reach it, e.g. https://fleet.example.org (Secure cookies with https)"`
	// Lang is the language for users who have not chosen one.
	Lang        string        `config:"lang" usage:"default language of the dashboard: de or en"`
	SessionIdle time.Duration `config:"session-idle" usage:"a dashboard session ends after this long without a request"`
	SessionMax  time.Duration `config:"session-max" usage:"a dashboard session ends this long after sign-in"`
	// AlertEvery is how often the alert rules are evaluated.
	AlertEvery    time.Duration `config:"alert-every" usage:"how often the alert rules are evaluated"`
	WebhookSecret string        `config:"webhook-secret" secret:"true" usage:"secret for the X-Kogge-Signature (HMAC-SHA256) of alert webhooks (default none)"`
	SMTP          SMTPConfig    `config:"smtp"`
	OIDC          OIDCConfig    `config:"oidc"`
}

// SMTPConfig configures e-mail notifications of alerts.
type SMTPConfig struct {
	Addr     string `config:"addr" usage:"SMTP server HOST:PORT for alert e-mails (default none: no e-mail)"`
	From     string `config:"from" usage:"sender address of alert e-mails"`
	Username string `config:"username" usage:"SMTP user (PLAIN over TLS)"`
	Password string `config:"password" secret:"true" usage:"SMTP password"`
	TLS      string `config:"tls" usage:"starttls, tls or none (none only for a relay on the same host)"`
}

// OIDCConfig configures dashboard sign-in through an OpenID Connect
// provider (authorization code flow with PKCE), e.g. Keycloak.
type OIDCConfig struct {
	Issuer       string   `config:"issuer" usage:"OIDC issuer URL; empty: no OIDC sign-in"`
	ClientID     string   `config:"client-id" usage:"OIDC client id"`
	ClientSecret string   `config:"client-secret" secret:"true" usage:"OIDC client secret (confidential client)"`
	RedirectURL  string   `config:"redirect-url" usage:"OIDC callback URL (default PUBLIC-URL/auth/oidc/callback)"`
	RoleClaim    string   `config:"role-claim" usage:"claim with the user's groups or roles, dotted for nested claims (e.g. realm_access.roles)"`
	Admin        []string `config:"admin" usage:"claim values that make a user admin (comma-separated)"`
	Operator     []string `config:"operator" usage:"claim values that make a user operator"`
	Auditor      []string `config:"auditor" usage:"claim values that make a user auditor"`
	Viewer       []string `config:"viewer" usage:"claim values that make a user viewer"`
}

// Defaults that are not derived from the environment.
const (
	DefaultAPIListen      = "127.0.0.1:8080"
	DefaultEnrollListen   = ":8443"
	DefaultBrokerListen   = ":8883"
	DefaultCertLifetime   = 90 * 24 * time.Hour
	DefaultCodeTTL        = 24 * time.Hour
	DefaultKeepalive      = 30 * time.Second
	DefaultHeartbeatKeep  = 14 * 24 * time.Hour
	DatabaseFile          = "kogge.db"
	TokenFile             = "api-token"
	minCertLifetime       = time.Hour
	minKeepalive          = 5 * time.Second // presence needs it well above its 1 s last-seen resolution
	maxKeepalive          = 18 * time.Hour  // MQTT 3.1.1 keepalive is a 16-bit count of seconds
	minHeartbeatRetention = time.Hour
)

// DefaultConfig returns the configuration the server runs with when nothing
// is configured.
func DefaultConfig() Config {
	host, err := os.Hostname()
	names := []string{"localhost", "127.0.0.1", "::1"}
	if err == nil && host != "" && host != "localhost" {
		names = append([]string{host}, names...)
	}
	return Config{
		DataDir:   defaultDataDir(os.Geteuid(), os.Getenv, os.UserHomeDir),
		API:       APIConfig{Listen: DefaultAPIListen},
		Enroll:    EnrollConfig{Listen: DefaultEnrollListen, CertLifetime: DefaultCertLifetime, CodeTTL: DefaultCodeTTL},
		Broker:    BrokerConfig{Listen: DefaultBrokerListen, Keepalive: DefaultKeepalive, Mode: BrokerEmbedded, External: DefaultExternalBrokerConfig()},
		Replica:   DefaultReplica(),
		TLS:       TLSConfig{Names: names},
		Heartbeat: HeartbeatConfig{Retention: DefaultHeartbeatKeep},
		Log:       LogConfig{Level: "info", Format: "auto"},
		Delivery: DeliveryConfig{MaxAttempts: DefaultMaxAttempts, RetryBase: DefaultRetryBase, RetryMax: DefaultRetryMax,
			StatusResend: DefaultStatusResend},
		Retention: RetentionConfig{Biometric: retention.DefaultBiometric, BiometricKinds: retention.DefaultBiometricKinds,
			Undelivered: retention.DefaultUndelivered, Metadata: retention.DefaultMetadata, SweepEvery: retention.DefaultEvery},
		Rollout: DefaultRolloutConfig(),
		Dashboard: DashboardConfig{Lang: "de", SessionIdle: time.Hour,
			SessionMax: 12 * time.Hour, AlertEvery: 30 * time.Second, SMTP: SMTPConfig{TLS: "starttls"},
			OIDC: OIDCConfig{RoleClaim: "groups"}},
	}
}

// defaultDataDir is /var/lib/kogge for root, else $XDG_DATA_HOME/kogge or
// ~/.local/share/kogge.
func defaultDataDir(euid int, getenv func(string) string, home func() (string, error)) string {
	if euid == 0 {
		return "/var/lib/kogge"
	}
	if x := getenv("XDG_DATA_HOME"); x != "" && filepath.IsAbs(x) {
		return filepath.Join(x, "kogge")
	}
	if h, err := home(); err == nil && h != "" {
		return filepath.Join(h, ".local", "share", "kogge")
	}
	// No home: a relative directory is better than none, and Validate
	// accepts it; the start-up log names the absolute path.
	return "kogge-data"
}

// Resolve fills in the settings whose defaults derive from others: the
// database file in the data directory and the public broker address. It is
// applied before --print-config, so that the printed configuration is the
// one the server runs with.
func (c Config) Resolve() Config {
	c.TLS.Names = append([]string(nil), c.TLS.Names...)
	if c.Broker.Mode == BrokerExternal && c.Broker.PublicAddress == "" {
		// Devices enroll to connect where the replicas do, unless told
		// otherwise.
		c.Broker.PublicAddress = c.Broker.External.URL
	}
	if c.Database == "" && c.DataDir != "" {
		c.Database = filepath.Join(c.DataDir, DatabaseFile)
	}
	// With port 0 the broker's port is known only once New has picked
	// one; New resolves again then.
	if c.Broker.PublicAddress == "" && len(c.TLS.Names) > 0 {
		if _, port, err := net.SplitHostPort(c.Broker.Listen); err == nil && port != "0" {
			c.Broker.PublicAddress = "mqtts://" + net.JoinHostPort(c.TLS.Names[0], port)
		}
	}
	return c
}

// TokenPath is where a generated API token is kept.
func (c Config) TokenPath() string { return filepath.Join(c.DataDir, TokenFile) }

// BlobDir is where uploaded blobs are kept.
func (c Config) BlobDir() string { return filepath.Join(c.DataDir, "blobs") }

// Validate checks the configuration and says what is wrong with it in words
// an operator can act on. It expects a resolved configuration.
func (c Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if c.DataDir == "" {
		add("data-dir is empty: name a directory for the server's data")
	}
	if c.Database == "" {
		add("database is empty: name a SQLite file or a postgres:// URL")
	} else if strings.Contains(c.Database, "://") {
		u, err := url.Parse(c.Database)
		if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			add("database %q: only postgres:// URLs or SQLite file paths are understood", redactURL(c.Database))
		}
	}
	for _, l := range []struct{ name, addr string }{
		{"api.listen", c.API.Listen}, {"enroll.listen", c.Enroll.Listen}, {"broker.listen", c.Broker.Listen},
	} {
		if err := checkListen(l.addr); err != nil {
			add("%s: %v", l.name, err)
		}
	}
	if c.Broker.DevListen != "" {
		if err := checkListen(c.Broker.DevListen); err != nil {
			add("broker.dev-listen: %v", err)
		}
	}
	if c.Broker.PublicAddress != "" {
		u, err := url.Parse(c.Broker.PublicAddress)
		switch {
		case err != nil:
			add("broker.public-address %q: %v", c.Broker.PublicAddress, err)
		case u.Scheme != "tls" && u.Scheme != "ssl" && u.Scheme != "mqtts":
			add("broker.public-address %q: want mqtts://HOST:PORT (devices connect with TLS)", c.Broker.PublicAddress)
		case u.Port() == "" || u.Port() == "0" || u.Hostname() == "":
			add("broker.public-address %q: want mqtts://HOST:PORT with the port devices connect to", c.Broker.PublicAddress)
		}
	}
	if c.API.Token != "" && len(c.API.Token) < 16 {
		add("api.token is %d characters long: use at least 16, or leave it empty to have one generated", len(c.API.Token))
	}
	if len(c.TLS.Names) == 0 {
		add("tls.names is empty: the server certificate needs at least one DNS name or IP address")
	}
	for _, n := range c.TLS.Names {
		if n == "" || strings.ContainsAny(n, " /:") && net.ParseIP(n) == nil {
			add("tls.names: %q is neither a DNS name nor an IP address", n)
		}
	}
	if c.Enroll.CertLifetime < minCertLifetime {
		add("enroll.cert-lifetime %v: at least %v", c.Enroll.CertLifetime, minCertLifetime)
	}
	if c.Enroll.CodeTTL < time.Minute || c.Enroll.CodeTTL > registry.MaxCodeLifetime {
		add("enroll.code-ttl %v: between 1m and %v", c.Enroll.CodeTTL, registry.MaxCodeLifetime)
	}
	if c.Broker.Keepalive < minKeepalive || c.Broker.Keepalive > maxKeepalive {
		add("broker.keepalive %v: between %v and %v", c.Broker.Keepalive, minKeepalive, maxKeepalive)
	}
	if c.Heartbeat.Retention < minHeartbeatRetention {
		add("heartbeat.retention %v: at least %v", c.Heartbeat.Retention, minHeartbeatRetention)
	}
	if c.Dashboard.Listen != "" {
		if err := checkListen(c.Dashboard.Listen); err != nil {
			add("dashboard.listen: %v", err)
		}
	}
	if c.Dashboard.AlertEvery < time.Second {
		add("dashboard.alert-every %v: at least 1s", c.Dashboard.AlertEvery)
	}
	if c.Dashboard.OIDC.Issuer != "" && c.Dashboard.OIDC.RedirectURL == "" && c.Dashboard.PublicURL == "" {
		add("dashboard.oidc: set dashboard.public-url or dashboard.oidc.redirect-url for the callback")
	}
	errs = append(errs, c.Delivery.validate()...)
	errs = append(errs, c.Rollout.validate()...)
	errs = append(errs, c.validateCluster()...)
	offices := map[string]bool{}
	for i := range c.Bridges {
		b := &c.Bridges[i]
		if err := b.Validate(); err != nil {
			add("bridge %d (%s): %v", i+1, b.Office, err)
		}
		if offices[b.Office] {
			add("bridge %d: office %s has a bridge already", i+1, b.Office)
		}
		offices[b.Office] = true
	}
	if _, err := c.Retention.options(); err != nil {
		add("%v", err)
	}
	if _, err := parseLevel(c.Log.Level); err != nil {
		add("log.level: %v", err)
	}
	switch c.Log.Format {
	case "auto", "text", "json":
	default:
		add("log.format %q: want auto, text or json", c.Log.Format)
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("invalid configuration: %w", errors.Join(errs...))
}

func checkListen(addr string) error {
	if addr == "" {
		return errors.New("empty: want HOST:PORT or :PORT")
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("%q is not HOST:PORT or :PORT", addr)
	}
	return nil
}

// Printable returns a copy fit for --print-config: a password in a
// PostgreSQL URL is replaced by xxxxx (the API token is a secret field and
// is masked by the printer).
func (c Config) Printable() Config {
	if strings.Contains(c.Database, "://") {
		c.Database = redactURL(c.Database)
	}
	return c
}

// redactURL hides the password of a URL for messages.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("%q: want debug, info, warn or error", s)
	}
	return l, nil
}

// NewLogger returns the logger the configuration asks for, writing to w.
// Format auto means text when w is a terminal and JSON otherwise.
func NewLogger(c LogConfig, w io.Writer) (*slog.Logger, error) {
	level, err := parseLevel(c.Level)
	if err != nil {
		return nil, fmt.Errorf("log.level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	format := c.Format
	if format == "auto" {
		format = "json"
		if isTerminal(w) {
			format = "text"
		}
	}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log.format %q: want auto, text or json", c.Format)
}

// isTerminal reports whether w is a character device such as a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// DeliveryConfig configures the delivery queues (fleet-server/delivery).
type DeliveryConfig struct {
	// MaxAttempts is how many leases a record gets before it becomes a
	// dead letter.
	MaxAttempts int `config:"max-attempts" usage:"leases a record gets before it becomes a dead letter"`
	// RetryBase and RetryMax bound the wait after a failed attempt
	// (doubling, with jitter).
	RetryBase time.Duration `config:"retry-base" usage:"wait after a record's first failed attempt; it doubles with each attempt"`
	RetryMax  time.Duration `config:"retry-max" usage:"longest wait between a record's attempts"`
	// StatusResend is how far back a device that connects gets the
	// statuses of its records again.
	StatusResend time.Duration `config:"status-resend" usage:"a connecting device gets the statuses of this last period again"`
}

// Defaults of the delivery queues.
const (
	DefaultMaxAttempts  = 10
	DefaultRetryBase    = 5 * time.Second
	DefaultRetryMax     = 10 * time.Minute
	DefaultStatusResend = 10 * time.Minute
)

func (c DeliveryConfig) validate() []error {
	var errs []error
	if c.MaxAttempts < 1 || c.MaxAttempts > 1000 {
		errs = append(errs, fmt.Errorf("delivery.max-attempts %d: between 1 and 1000", c.MaxAttempts))
	}
	if c.RetryBase < time.Second || c.RetryMax < c.RetryBase {
		errs = append(errs, fmt.Errorf("delivery.retry-base %v and retry-max %v: base at least 1s, max at least base", c.RetryBase, c.RetryMax))
	}
	if c.StatusResend < 0 {
		errs = append(errs, fmt.Errorf("delivery.status-resend %v: must not be negative", c.StatusResend))
	}
	return errs
}

// RetentionConfig configures how long the server keeps what devices send
// (fleet-server/retention).
type RetentionConfig struct {
	// Biometric is the hard limit for undelivered records of the
	// biometric kinds; accepted ones lose their body at once.
	Biometric      time.Duration `config:"biometric" usage:"undelivered biometric records (retention.biometric-kinds) lose body and blobs after this"`
	BiometricKinds []string      `config:"biometric-kinds" usage:"record kinds that carry biometrics (comma-separated)"`
	// Undelivered is the limit for every other kind, unless Kinds sets
	// one.
	Undelivered time.Duration `config:"undelivered" usage:"undelivered records of other kinds lose body and blobs after this"`
	// Kinds sets the limit of single kinds as KIND=DURATION.
	Kinds []string `config:"kinds" usage:"limits of single record kinds as KIND=DURATION, e.g. roadwork.report=168h (comma-separated)"`
	// Metadata is how long record metadata (no personal data) is kept.
	Metadata   time.Duration `config:"metadata" usage:"record metadata is deleted after this (default 400 days)"`
	SweepEvery time.Duration `config:"sweep-every" usage:"how often the retention policy is enforced"`
}

// options returns the retention options the configuration describes.
func (c RetentionConfig) options() (retention.Options, error) {
	o := retention.Options{
		BiometricKinds: append([]string{}, c.BiometricKinds...), Biometric: c.Biometric,
		Undelivered: c.Undelivered, Metadata: c.Metadata, Every: c.SweepEvery,
	}
	var errs []error
	for _, kv := range c.Kinds {
		kind, d, ok := strings.Cut(kv, "=")
		dur, err := time.ParseDuration(d)
		if !ok || kind == "" || err != nil {
			errs = append(errs, fmt.Errorf("retention.kinds: %q is not KIND=DURATION (e.g. roadwork.report=168h)", kv))
			continue
		}
		if o.Limits == nil {
			o.Limits = map[string]time.Duration{}
		}
		o.Limits[kind] = dur
	}
	if c.Biometric <= 0 || c.Undelivered <= 0 || c.Metadata <= 0 || c.SweepEvery <= 0 {
		errs = append(errs, errors.New("retention.biometric, undelivered, metadata and sweep-every must be positive"))
	} else if err := o.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("retention: %w", err))
	}
	return o, errors.Join(errs...)
}

// loadBridges appends the bridges of BridgesFile to Bridges.
func (c *Config) loadBridges() error {
	if c.BridgesFile == "" {
		return nil
	}
	b, err := os.ReadFile(c.BridgesFile)
	if err != nil {
		return fmt.Errorf("bridges-file: %w", err)
	}
	list, err := bridgeconfig.DecodeList(b)
	if err != nil {
		return fmt.Errorf("bridges-file %s: %w", c.BridgesFile, err)
	}
	c.Bridges = append(append([]bridgeconfig.Config(nil), c.Bridges...), list...)
	return nil
}
