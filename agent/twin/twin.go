// Package twin applies the configuration the fleet server wants a device to
// run (the retained TwinDesired) and reports what the device runs
// (TwinReported).
//
// A desired configuration is checked first: by the built-in rules
// (heartbeat interval, log level) and by the app's validator. An invalid one
// is refused and reported with the reason; the old configuration stays. A
// valid one is persisted in the store before it is applied, so that a
// restart in between applies it again at start; then it is applied and its
// version reported. A version not newer than the applied one is ignored.
package twin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	gosync "sync"
	"time"

	"github.com/kogge-fleet/kogge/protocol"
	"github.com/kogge-fleet/kogge/protocol/seal"
)

// The built-in configuration keys.
const (
	// KeyHeartbeat is the heartbeat interval in seconds (a number).
	KeyHeartbeat = "heartbeat_s"
	// KeyLogLevel is the log level: "debug", "info", "warn" or "error".
	KeyLogLevel = "log_level"
	// KeyOffices holds each destination office's current public key:
	// {"<office>": {"key_id": "…", "public_key": "age1…"}}. Captures are
	// sealed for it; see protocol/seal.
	KeyOffices = "offices"
)

// storeKey is where the applied desired document is kept.
const storeKey = "twin.applied"

// Store is what the twin needs from the device store.
type Store interface {
	GetValue(ctx context.Context, key string) ([]byte, bool, error)
	PutValue(ctx context.Context, key string, value []byte) error
}

// Sender publishes a message to the server.
type Sender interface {
	Send(ctx context.Context, msg protocol.Message) error
}

// Config is an applied configuration.
type Config struct {
	// Version is the desired version it came from; 0 before the first.
	Version uint64
	// Values is the configuration as the server sent it.
	Values map[string]any
	// Heartbeat is the heartbeat interval (built-in key heartbeat_s).
	Heartbeat time.Duration
	// LogLevel is the log level (built-in key log_level).
	LogLevel slog.Level
	// Offices are the offices' current keys by office (built-in key
	// offices).
	Offices map[string]seal.Recipient
}

// Options tune the twin.
type Options struct {
	// Check validates the app's part of a desired configuration; an error
	// refuses it, and its text is the reason reported to the server.
	Check func(values map[string]any) error
	// Apply makes a configuration take effect in the app. An error refuses
	// the configuration and the previous one is applied again.
	Apply func(Config) error
	// LogLevel is set to the configured log level, if not nil.
	LogLevel *slog.LevelVar
	// Heartbeat bounds: MinHeartbeat (5 s), MaxHeartbeat (1 h) and the
	// value without configuration, DefaultHeartbeat (30 s).
	MinHeartbeat, MaxHeartbeat, DefaultHeartbeat time.Duration
	// OpTimeout bounds store calls and sends (10 s).
	OpTimeout time.Duration
	// Logger receives the twin's log lines (slog.Default()).
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.MinHeartbeat == 0 {
		o.MinHeartbeat = 5 * time.Second
	}
	if o.MaxHeartbeat == 0 {
		o.MaxHeartbeat = time.Hour
	}
	if o.DefaultHeartbeat == 0 {
		o.DefaultHeartbeat = 30 * time.Second
	}
	if o.OpTimeout == 0 {
		o.OpTimeout = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Validate checks the options after defaults are filled in.
func (o Options) Validate() error {
	if o.MinHeartbeat <= 0 || o.MaxHeartbeat < o.MinHeartbeat ||
		o.DefaultHeartbeat < o.MinHeartbeat || o.DefaultHeartbeat > o.MaxHeartbeat {
		return fmt.Errorf("heartbeat bounds: want 0 < min %v ≤ default %v ≤ max %v",
			o.MinHeartbeat, o.DefaultHeartbeat, o.MaxHeartbeat)
	}
	if o.OpTimeout <= 0 {
		return fmt.Errorf("op timeout %v: must be positive", o.OpTimeout)
	}
	return nil
}

// Twin is the device's side of the twin.
type Twin struct {
	st   Store
	send Sender
	opts Options
	log  *slog.Logger

	offers chan *protocol.TwinDesired // newest wins
	report chan struct{}

	mu      gosync.Mutex
	applied Config
	refused uint64 // the last refused version
	reason  string
}

// New returns a twin with the default configuration; Load applies the one
// persisted before.
func New(st Store, send Sender, opts Options) (*Twin, error) {
	opts = opts.withDefaults()
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("twin options: %w", err)
	}
	return &Twin{
		st:      st,
		send:    send,
		opts:    opts,
		log:     opts.Logger,
		offers:  make(chan *protocol.TwinDesired, 1),
		report:  make(chan struct{}, 1),
		applied: Config{Heartbeat: opts.DefaultHeartbeat, LogLevel: slog.LevelInfo},
	}, nil
}

// Current returns the applied configuration.
func (t *Twin) Current() Config {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.applied
}

// Load applies the configuration persisted by an earlier run, if any. Call
// it once before Run.
func (t *Twin) Load(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, t.opts.OpTimeout)
	defer cancel()
	b, ok, err := t.st.GetValue(ctx, storeKey)
	if err != nil {
		return fmt.Errorf("load the applied configuration: %w", err)
	}
	if !ok {
		return t.apply(Config{Heartbeat: t.opts.DefaultHeartbeat, LogLevel: slog.LevelInfo})
	}
	env, err := protocol.Decode(b)
	if err != nil {
		return fmt.Errorf("load the applied configuration: stored document: %w", err)
	}
	d, ok := env.Body.(*protocol.TwinDesired)
	if !ok {
		return fmt.Errorf("load the applied configuration: stored document is a %v", env.Type())
	}
	cfg, err := t.check(d)
	if err != nil {
		return fmt.Errorf("load the applied configuration version %d: %w", d.Version, err)
	}
	if err := t.apply(cfg); err != nil {
		return fmt.Errorf("apply the stored configuration version %d: %w", d.Version, err)
	}
	return nil
}

// Offer hands a received TwinDesired to the twin. It never blocks; a newer
// offer replaces one not yet handled.
func (t *Twin) Offer(d *protocol.TwinDesired) {
	for {
		select {
		case t.offers <- d:
			return
		default:
		}
		select {
		case <-t.offers:
		default:
		}
	}
}

// Reconnected makes the twin report its state again (a new session).
func (t *Twin) Reconnected() {
	select {
	case t.report <- struct{}{}:
	default:
	}
}

// Run handles offers and reports until ctx ends.
func (t *Twin) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case d := <-t.offers:
			t.handle(ctx, d)
		case <-t.report:
			t.sendReport(ctx)
		}
	}
}

func (t *Twin) handle(ctx context.Context, d *protocol.TwinDesired) {
	t.mu.Lock()
	old := t.applied
	seen := d.Version <= old.Version || d.Version == t.refused
	t.mu.Unlock()
	if seen {
		return
	}
	cfg, err := t.check(d)
	if err == nil {
		err = t.persistAndApply(ctx, d, cfg, old)
	}
	t.mu.Lock()
	if err != nil {
		t.refused, t.reason = d.Version, clip(err.Error())
		t.log.Warn("refused a configuration from the server; the old one stays",
			"version", d.Version, "applied", old.Version, "reason", t.reason)
	} else {
		t.log.Info("applied a configuration from the server", "version", d.Version)
	}
	t.mu.Unlock()
	t.sendReport(ctx)
}

// persistAndApply stores the document, then applies it; if applying fails
// it restores the old one.
func (t *Twin) persistAndApply(ctx context.Context, d *protocol.TwinDesired, cfg Config, old Config) error {
	// The envelope only wraps the document for storage, so that it is read
	// back with the protocol's own checks.
	doc, err := protocol.Encode(protocol.NewEnvelope("twin", 0, time.Now(), d))
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	prev, hadPrev, err := t.get(ctx)
	if err != nil {
		return err
	}
	if err := t.put(ctx, doc); err != nil {
		return err
	}
	if err := t.apply(cfg); err != nil {
		// Back to the old configuration, in the store and in the app.
		if hadPrev {
			if perr := t.put(ctx, prev); perr != nil {
				t.log.Error("cannot restore the previous configuration in the store", "err", perr)
			}
		}
		if aerr := t.apply(old); aerr != nil {
			t.log.Error("cannot apply the previous configuration again", "version", old.Version, "err", aerr)
		}
		return fmt.Errorf("apply: %w", err)
	}
	return nil
}

func (t *Twin) get(ctx context.Context) ([]byte, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, t.opts.OpTimeout)
	defer cancel()
	b, ok, err := t.st.GetValue(ctx, storeKey)
	if err != nil {
		return nil, false, fmt.Errorf("read the applied configuration: %w", err)
	}
	return b, ok, nil
}

func (t *Twin) put(ctx context.Context, doc []byte) error {
	ctx, cancel := context.WithTimeout(ctx, t.opts.OpTimeout)
	defer cancel()
	if err := t.st.PutValue(ctx, storeKey, doc); err != nil {
		return fmt.Errorf("persist: %w", err)
	}
	return nil
}

// apply makes cfg take effect: built-ins first, then the app.
func (t *Twin) apply(cfg Config) error {
	if t.opts.Apply != nil {
		if err := t.opts.Apply(cfg); err != nil {
			return err
		}
	}
	if t.opts.LogLevel != nil {
		t.opts.LogLevel.Set(cfg.LogLevel)
	}
	t.mu.Lock()
	t.applied = cfg
	t.mu.Unlock()
	return nil
}

// check validates a desired document and returns the configuration it
// describes.
func (t *Twin) check(d *protocol.TwinDesired) (Config, error) {
	cfg := Config{Version: d.Version, Values: d.Config, Heartbeat: t.opts.DefaultHeartbeat, LogLevel: slog.LevelInfo}
	var errs []error
	if v, ok := d.Config[KeyHeartbeat]; ok {
		secs, isNum := number(v)
		switch {
		case !isNum:
			errs = append(errs, fmt.Errorf("%s: %v is not a number of seconds", KeyHeartbeat, v))
		case secs*float64(time.Second) < float64(t.opts.MinHeartbeat) || secs*float64(time.Second) > float64(t.opts.MaxHeartbeat):
			errs = append(errs, fmt.Errorf("%s: %v s is outside %v to %v", KeyHeartbeat, v, t.opts.MinHeartbeat, t.opts.MaxHeartbeat))
		default:
			cfg.Heartbeat = time.Duration(secs * float64(time.Second))
		}
	}
	if v, ok := d.Config[KeyLogLevel]; ok {
		s, _ := v.(string)
		switch strings.ToLower(s) {
		case "debug":
			cfg.LogLevel = slog.LevelDebug
		case "info":
			cfg.LogLevel = slog.LevelInfo
		case "warn", "warning":
			cfg.LogLevel = slog.LevelWarn
		case "error":
			cfg.LogLevel = slog.LevelError
		default:
			errs = append(errs, fmt.Errorf("%s: %v is not one of debug, info, warn, error", KeyLogLevel, v))
		}
	}
	if v, ok := d.Config[KeyOffices]; ok {
		offices, err := parseOffices(v)
		if err != nil {
			errs = append(errs, err)
		}
		cfg.Offices = offices
	}
	if t.opts.Check != nil {
		if err := t.opts.Check(d.Config); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// parseOffices reads the offices' keys from the configuration.
func parseOffices(v any) (map[string]seal.Recipient, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s: want an object of offices", KeyOffices)
	}
	out := make(map[string]seal.Recipient, len(m))
	for office, e := range m {
		fields, ok := e.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s.%s: want an object with key_id and public_key", KeyOffices, office)
		}
		keyID, _ := fields["key_id"].(string)
		pub, _ := fields["public_key"].(string)
		r := seal.Recipient{Office: office, KeyID: keyID, PublicKey: pub}
		if err := r.Validate(); err != nil {
			return nil, fmt.Errorf("%s.%s: %w", KeyOffices, office, err)
		}
		out[office] = r
	}
	return out, nil
}

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case uint64:
		return float64(n), true
	case int64:
		return float64(n), true
	case int:
		return float64(n), true
	case float64:
		return n, !math.IsNaN(n) && !math.IsInf(n, 0)
	case float32:
		return float64(n), true
	}
	return 0, false
}

func (t *Twin) sendReport(ctx context.Context) {
	t.mu.Lock()
	rep := &protocol.TwinReported{Version: t.applied.Version, Config: t.applied.Values}
	if t.refused > t.applied.Version {
		rep.Rejected, rep.Reason = t.refused, t.reason
	}
	t.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, t.opts.OpTimeout)
	defer cancel()
	if err := t.send.Send(ctx, rep); err != nil {
		// Sent again when the next session starts.
		t.log.Debug("cannot report the configuration now", "err", err)
	}
}

func clip(s string) string {
	if len(s) <= protocol.MaxTextLen {
		return s
	}
	return s[:protocol.MaxTextLen-3] + "..."
}
