// Package registry knows the fleet: the fleet CA, device groups, one-time
// enrollment codes, devices with their inventory and certificates, and
// revocation. Its state lives in the store (tables of migration 0010 and the
// setting "registry.ca").
//
// # The fleet CA
//
// An ECDSA P-256 CA is created on the first start and kept in the store's
// settings (certificate and PKCS #8 key under "registry.ca"), so that
// replicas on one PostgreSQL share it. The store and its backups therefore
// hold the CA's private key: protect them like it. The key is never logged
// or returned. The CA issues device certificates (CN = device id,
// ExtKeyUsageClientAuth, lifetime Options.CertLifetime) and the server
// certificate of the broker and the HTTPS endpoints (SANs localhost,
// 127.0.0.1, ::1 and Options.ServerNames; a fresh key at every start).
// Devices pin the CA by [Fingerprint]: SHA-256 of its DER, lower-case hex,
// as [Registry.CAFingerprint] returns it.
//
// # Admin API (for the REST layer)
//
// Every method takes a context and returns errors that wrap one of the
// sentinels below, with a message meant for a person:
//
//	CreateGroup(ctx, id, name) (Group, error)       id "" derives one from name
//	Groups(ctx) ([]Group, error)
//	Group(ctx, id) (Group, error)
//	RenameGroup(ctx, id, name) (Group, error)
//	DeleteGroup(ctx, id) error                       ErrGroupNotEmpty while devices are in it
//	CreateCode(ctx, group, CodeOptions) (NewCode, error)   the code is returned only here
//	Codes(ctx, group) ([]Code, error)                group "" for all; never the code itself
//	RevokeCode(ctx, id) error
//	Devices(ctx, DeviceFilter) ([]Device, error)
//	Device(ctx, id) (Device, error)                  with its certificates
//	RevokeDevice(ctx, id, reason) error              disconnects it at once (OnRevoke listeners)
//	RevokeCertificate(ctx, serial) error
//	IssueBridgeCertificate(ctx, office, csr) (BridgeCertificate, error)   see bridge.go
//	BridgeCertificates(ctx, office) ([]BridgeCertificate, error)
//	RevokeBridgeCertificate(ctx, serial) (BridgeCertificate, error)
//
// Error mapping for REST: ErrNotFound → 404, ErrExists and ErrGroupNotEmpty
// → 409, ErrInvalid → 400, ErrCodeUnknown, ErrCodeUsed, ErrCodeExpired,
// ErrCodeRevoked and ErrRevoked → 403.
//
// # Device side
//
// [Registry.Handler] serves POST /enroll/v1 (code, CSR, inventory → device
// id, certificate, CA, broker address) and POST /enroll/v1/renew (mTLS with
// the current certificate, new CSR → new certificate). Serve it over HTTPS
// with [Registry.HTTPSTLSConfig]. The device-side client is agent/enroll.
//
// # For other components
//
// The broker calls [Registry.IsRevoked] on every connect (an in-memory
// lookup) and is told of revocations through [Registry.OnRevoke]. Ingest and
// presence report devices with [Registry.Touch] (batched, flushed by Run)
// and [Registry.UpdateInventory]. [Registry.Run] flushes last-seen times and
// reloads the revocation cache from the store every RefreshInterval, so that
// revocations made by another replica take effect here within that time.
// The bridge API asks [Registry.BridgeOffice] which office a bridge's
// client certificate belongs to (a store lookup per request, so that a
// revoked bridge certificate is refused at once on every replica).
package registry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/big"
	"sync"
	"time"

	"github.com/kogge-fleet/kogge/fleet-server/store"
)

// Errors that callers act on; every error of this package that is about the
// request (rather than the store) wraps one of them.
var (
	ErrNotFound      = errors.New("not found")
	ErrExists        = errors.New("already exists")
	ErrGroupNotEmpty = errors.New("group has devices")
	ErrInvalid       = errors.New("invalid")
	ErrCodeUnknown   = errors.New("unknown enrollment code")
	ErrCodeUsed      = errors.New("enrollment code already used")
	ErrCodeExpired   = errors.New("enrollment code expired")
	ErrCodeRevoked   = errors.New("enrollment code revoked")
	ErrRevoked       = errors.New("device revoked")
)

// Options are the optional settings of New.
type Options struct {
	// Logger receives enrollment, renewal and revocation events. Codes
	// and keys are never logged.
	Logger *slog.Logger
	// ServerNames are host names and IP addresses put into the server
	// certificate besides localhost, 127.0.0.1 and ::1.
	ServerNames []string
	// BrokerAddress is told to devices at enrollment; default
	// "mqtts://localhost:8883".
	BrokerAddress string
	// CertLifetime is the lifetime of device certificates; default 90 days.
	CertLifetime time.Duration
	// BridgeCertLifetime is the lifetime of bridge certificates (see
	// bridge.go); default 365 days.
	BridgeCertLifetime time.Duration
	// ServerCertLifetime is the lifetime of the server certificate; default
	// 365 days. It is issued anew when a third of it is left.
	ServerCertLifetime time.Duration
	// CodeLifetime is the default lifetime of enrollment codes; default 24 h.
	CodeLifetime time.Duration
	// TouchInterval is how often Run writes last-seen times; default 10 s.
	TouchInterval time.Duration
	// RefreshInterval is how often Run reloads revocations from the store;
	// default 30 s.
	RefreshInterval time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// MaxCodeLifetime bounds the lifetime of an enrollment code.
const MaxCodeLifetime = 30 * 24 * time.Hour

func (o *Options) setDefaults() {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.BrokerAddress == "" {
		o.BrokerAddress = "mqtts://localhost:8883"
	}
	if o.CertLifetime == 0 {
		o.CertLifetime = 90 * 24 * time.Hour
	}
	if o.BridgeCertLifetime == 0 {
		o.BridgeCertLifetime = 365 * 24 * time.Hour
	}
	if o.ServerCertLifetime == 0 {
		o.ServerCertLifetime = 365 * 24 * time.Hour
	}
	if o.CodeLifetime == 0 {
		o.CodeLifetime = 24 * time.Hour
	}
	if o.TouchInterval == 0 {
		o.TouchInterval = 10 * time.Second
	}
	if o.RefreshInterval == 0 {
		o.RefreshInterval = 30 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Validate checks the options (after defaults are filled in).
func (o *Options) Validate() error {
	switch {
	case o.CertLifetime < time.Hour:
		return fmt.Errorf("device certificate lifetime %v is shorter than an hour", o.CertLifetime)
	case o.BridgeCertLifetime < time.Hour:
		return fmt.Errorf("bridge certificate lifetime %v is shorter than an hour", o.BridgeCertLifetime)
	case o.ServerCertLifetime < time.Hour:
		return fmt.Errorf("server certificate lifetime %v is shorter than an hour", o.ServerCertLifetime)
	case o.CodeLifetime < time.Minute || o.CodeLifetime > MaxCodeLifetime:
		return fmt.Errorf("enrollment code lifetime %v is outside 1 minute to %v", o.CodeLifetime, MaxCodeLifetime)
	case o.TouchInterval < 0 || o.RefreshInterval < 0:
		return errors.New("touch and refresh intervals must be positive")
	}
	_, err := serverNames(o.ServerNames)
	return err
}

// Registry is the fleet's registry. Its methods are safe for concurrent use.
type Registry struct {
	db     *store.DB
	opts   Options
	log    *slog.Logger
	ca     *authority
	server *serverCerts

	mu       sync.RWMutex
	revDev   map[string]bool // revoked devices
	revSer   map[string]bool // revoked, unexpired certificate serials
	onRevoke []func(device string)

	touchMu sync.Mutex
	seen    map[string]int64 // device → last seen, Unix ms, not yet written
}

// New opens the registry on db: it loads the fleet CA (creating it on the
// first start) and the revocations.
func New(ctx context.Context, db *store.DB, opts Options) (*Registry, error) {
	opts.setDefaults()
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("registry options: %w", err)
	}
	names, _ := serverNames(opts.ServerNames)
	ca, created, err := loadCA(ctx, db, opts.Now())
	if err != nil {
		return nil, err
	}
	r := &Registry{
		db:   db,
		opts: opts,
		log:  opts.Logger,
		ca:   ca,
		server: &serverCerts{
			ca: ca, names: names, lifetime: opts.ServerCertLifetime, now: opts.Now,
		},
		seen: map[string]int64{},
	}
	if created {
		r.log.Info("created the fleet CA", "subject", ca.cert.Subject.CommonName, "fingerprint", r.CAFingerprint())
	}
	if _, err := r.server.get(); err != nil {
		return nil, err
	}
	if _, err := r.refresh(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

// Run writes last-seen times every TouchInterval and reloads revocations
// every RefreshInterval until ctx ends; then it writes the last ones and
// returns nil.
func (r *Registry) Run(ctx context.Context) error {
	touch := time.NewTicker(r.opts.TouchInterval)
	defer touch.Stop()
	refresh := time.NewTicker(r.opts.RefreshInterval)
	defer refresh.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			if err := r.Flush(fctx); err != nil {
				r.log.Warn("last-seen times not written at shutdown", "error", err)
			}
			return nil
		case <-touch.C:
			if err := r.Flush(ctx); err != nil && ctx.Err() == nil {
				r.log.Warn("last-seen times not written; retrying", "error", err)
			}
		case <-refresh.C:
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			newly, err := r.refresh(rctx)
			cancel()
			if err != nil && ctx.Err() == nil {
				r.log.Warn("revocations not reloaded; keeping the ones known", "error", err)
			}
			for _, d := range newly {
				r.log.Info("device revoked elsewhere; disconnecting it", "device", d)
				r.notifyRevoked(d)
			}
		}
	}
}

// refresh reloads the revocation cache and returns the devices revoked since
// the last load.
func (r *Registry) refresh(ctx context.Context) ([]string, error) {
	devs, serials, err := r.db.Revocations(ctx, r.opts.Now().UnixMilli())
	if err != nil {
		return nil, err
	}
	revDev := make(map[string]bool, len(devs))
	for _, d := range devs {
		revDev[d] = true
	}
	revSer := make(map[string]bool, len(serials))
	for _, s := range serials {
		revSer[s] = true
	}
	r.mu.Lock()
	var newly []string
	if r.revDev != nil {
		for d := range revDev {
			if !r.revDev[d] {
				newly = append(newly, d)
			}
		}
	}
	// Revocations made here since the query began stay in the cache.
	for d := range r.revDev {
		revDev[d] = true
	}
	maps.Copy(revSer, r.revSer)
	r.revDev, r.revSer = revDev, revSer
	r.mu.Unlock()
	return newly, nil
}

// IsRevoked reports whether the device or the certificate with this serial
// is revoked. It only reads memory; the broker calls it on every connect.
func (r *Registry) IsRevoked(device string, serial *big.Int) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.revDev[device] || (serial != nil && r.revSer[serialText(serial)])
}

// OnRevoke registers fn to be called with the device id after a device or
// one of its certificates is revoked (the broker disconnects it). fn must
// return quickly.
func (r *Registry) OnRevoke(fn func(device string)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.onRevoke = append(r.onRevoke, fn)
}

func (r *Registry) notifyRevoked(device string) {
	r.mu.RLock()
	fns := r.onRevoke
	r.mu.RUnlock()
	for _, fn := range fns {
		fn(device)
	}
}

// Touch notes that a device was seen at t. The times are written in batches
// by Run (or Flush); it never blocks on the store.
func (r *Registry) Touch(device string, t time.Time) {
	ms := t.UnixMilli()
	r.touchMu.Lock()
	if ms > r.seen[device] {
		r.seen[device] = ms
	}
	r.touchMu.Unlock()
}

// Flush writes the last-seen times noted by Touch. On failure they are kept
// for the next try.
func (r *Registry) Flush(ctx context.Context) error {
	r.touchMu.Lock()
	batch := r.seen
	r.seen = map[string]int64{}
	r.touchMu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	if err := r.db.TouchDevices(ctx, batch); err != nil {
		r.touchMu.Lock()
		for d, ms := range batch {
			if ms > r.seen[d] {
				r.seen[d] = ms
			}
		}
		r.touchMu.Unlock()
		return err
	}
	return nil
}

// CA returns the fleet CA's certificate.
func (r *Registry) CA() *x509.Certificate { return r.ca.cert }

// CAPEM returns the fleet CA's certificate in PEM.
func (r *Registry) CAPEM() []byte { return append([]byte(nil), r.ca.certPEM...) }

// CAFingerprint returns the SHA-256 of the CA certificate's DER in lower-case
// hex; `koggectl enroll-code create` prints it next to the code.
func (r *Registry) CAFingerprint() string { return Fingerprint(r.ca.cert) }

// ClientCAs returns a pool holding the fleet CA, for verifying devices.
func (r *Registry) ClientCAs() *x509.CertPool { return r.ca.pool.Clone() }

// ServerCertificate returns the current server certificate (chain: leaf,
// CA); it fits tls.Config.GetCertificate.
func (r *Registry) ServerCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.server.get()
}

// BrokerTLSConfig returns the TLS configuration of the MQTT broker: the
// server certificate, and a client certificate from the fleet CA required.
func (r *Registry) BrokerTLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: r.ServerCertificate,
		ClientCAs:      r.ClientCAs(),
		ClientAuth:     tls.RequireAndVerifyClientCert,
	}
}

// HTTPSTLSConfig returns the TLS configuration of the HTTPS server that
// serves Handler (and may serve the API): the server certificate, and a
// client certificate from the fleet CA verified when one is given, which
// /enroll/v1/renew requires.
func (r *Registry) HTTPSTLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: r.ServerCertificate,
		ClientCAs:      r.ClientCAs(),
		ClientAuth:     tls.VerifyClientCertIfGiven,
	}
}

// BrokerAddress returns the broker address told to devices.
func (r *Registry) BrokerAddress() string { return r.opts.BrokerAddress }

func (r *Registry) now() time.Time { return r.opts.Now() }
