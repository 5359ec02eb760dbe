package brokerconfig

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kogge-fleet/kogge/fleet-server/registry"
	"github.com/kogge-fleet/kogge/fleet-server/store"
	"github.com/kogge-fleet/kogge/protocol"
)

// EMQXPrefix is where EMQXHandler serves: EMQXPrefix+"authn" for EMQX's
// HTTP authentication, EMQXPrefix+"authz" for its HTTP authorization.
const EMQXPrefix = "/broker/v1/emqx/"

// maxEMQXBody bounds a request body.
const maxEMQXBody = 16 << 10

// EMQX describes an EMQX 5 cluster for a fleet.
type EMQX struct {
	// ConfDir is the directory as EMQX sees it, for the paths in the
	// generated configuration; default: the directory written to.
	ConfDir string
	// Listen is the address of EMQX's TLS listener; default 0.0.0.0:8883.
	Listen string
	// Names are the DNS names and IP addresses in the broker's
	// certificate.
	Names []string
	// ServerURL is the base URL of kogge-server's HTTPS (enrollment)
	// endpoint as EMQX reaches it, e.g. https://fleet.internal:8443; EMQX
	// calls its /broker/v1/emqx/ endpoints with the broker certificate.
	ServerURL string
	// CertLifetime is the lifetime of the broker certificate; default 365
	// days.
	CertLifetime time.Duration
}

func (e *EMQX) defaults(dir string) {
	if e.ConfDir == "" {
		e.ConfDir = dir
	}
	if e.Listen == "" {
		e.Listen = "0.0.0.0:8883"
	}
	if e.CertLifetime == 0 {
		e.CertLifetime = DefaultCertLifetime
	}
}

// Validate checks the description after defaults are filled in.
func (e *EMQX) Validate() error {
	var errs []error
	if !filepath.IsAbs(e.ConfDir) {
		errs = append(errs, fmt.Errorf("configuration directory %q must be an absolute path", e.ConfDir))
	}
	if _, _, err := listenParts(e.Listen); err != nil {
		errs = append(errs, err)
	}
	if len(e.Names) == 0 {
		errs = append(errs, errors.New("no broker names: give the DNS names or IP addresses devices and replicas connect to"))
	}
	u, err := url.Parse(e.ServerURL)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.Path != "" && u.Path != "/" {
		errs = append(errs, fmt.Errorf("server URL %q: want https://HOST:PORT of kogge-server's enrollment endpoint", e.ServerURL))
	}
	if e.CertLifetime < time.Hour {
		errs = append(errs, errors.New("certificate lifetime must be at least an hour"))
	}
	for _, s := range append([]string{e.ConfDir, e.ServerURL, e.Listen}, e.Names...) {
		if strings.ContainsAny(s, "\"\n\r\\") {
			errs = append(errs, fmt.Errorf("%q contains a quote, backslash or line break", s))
		}
	}
	return errors.Join(errs...)
}

// HOCON returns emqx-kogge.hocon, to include in EMQX's base.hocon (or
// emqx.conf).
func (e *EMQX) HOCON() []byte {
	p := func(name string) string { return filepath.Join(e.ConfDir, name) }
	base := strings.TrimRight(e.ServerURL, "/")
	host := e.ServerURL
	if u, err := url.Parse(e.ServerURL); err == nil {
		host = u.Hostname()
	}
	ssl := fmt.Sprintf(`ssl {
      enable = true
      verify = verify_peer
      cacertfile = "%s"
      certfile = "%s"
      keyfile = "%s"
      server_name_indication = "%s"
    }`, p(FileCA), p(FileCert), p(FileKey), host)
	var b bytes.Buffer
	fmt.Fprintf(&b, `# EMQX 5 for a Kogge fleet, written by koggectl broker-config emqx.
# Include it from base.hocon: include "%s"

# Devices and kogge-server replicas connect with mutual TLS (fleet CA).
listeners.tcp.default.enable = false
listeners.ws.default.enable = false
listeners.wss.default.enable = false
listeners.ssl.default {
  bind = "%s"
  ssl_options {
    cacertfile = "%s"
    certfile = "%s"
    keyfile = "%s"
    verify = verify_peer
    fail_if_no_peer_cert = true
  }
}

mqtt {
  # The certificate's common name (the device id) is the user name and the
  # client id: no device can take over another's session.
  peer_cert_as_username = cn
  peer_cert_as_clientid = cn
  # The replicas subscribe with $share/%s/...: hash_clientid gives all
  # messages of one device to the same replica, in order.
  shared_subscription_strategy = hash_clientid
  max_packet_size = %dB
}

# kogge-server decides who may connect (revoked devices and bridge
# certificates may not; replicas are superusers)...
authentication = [
  {
    mechanism = password_based
    backend = http
    method = post
    url = "%s%sauthn"
    headers { "content-type" = "application/json" }
    body {
      clientid = "${clientid}"
      username = "${username}"
      cert_common_name = "${cert_common_name}"
      peerhost = "${peerhost}"
    }
    request_timeout = "5s"
    %s
  }
]

# ...and what a device may publish and subscribe to (its own topics only).
authorization {
  no_match = deny
  deny_action = disconnect
  cache { enable = true, max_size = 32, ttl = "1m" }
  sources = [
    {
      type = http
      method = post
      url = "%s%sauthz"
      headers { "content-type" = "application/json" }
      body {
        clientid = "${clientid}"
        username = "${username}"
        topic = "${topic}"
        action = "${action}"
      }
      request_timeout = "5s"
      %s
    }
  ]
}
`, p(FileEMQX), e.Listen, p(FileCA), p(FileCert), p(FileKey), ShareGroup, protocol.MaxMessageSize+64<<10,
		base, EMQXPrefix, ssl, base, EMQXPrefix, ssl)
	return b.Bytes()
}

// WriteEMQX writes an EMQX configuration for the fleet whose store is db
// into dir: ca.pem, a new broker certificate (server.pem, server.key) and
// emqx-kogge.hocon.
func WriteEMQX(ctx context.Context, db *store.DB, dir string, e EMQX, now time.Time) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	e.defaults(dir)
	if err := e.Validate(); err != nil {
		return fmt.Errorf("emqx configuration: %w", err)
	}
	ca, err := LoadCA(ctx, db)
	if err != nil {
		return err
	}
	certPEM, keyPEM, err := ca.IssueBroker(e.Names, now, e.CertLifetime)
	if err != nil {
		return err
	}
	w, err := newWriter(dir, "root")
	if err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{FileCA, ca.CertPEM(), 0o644},
		{FileCert, certPEM, 0o644},
		{FileKey, keyPEM, 0o600},
		{FileEMQX, e.HOCON(), 0o644},
	} {
		if err := w.write(f.name, f.data, f.mode); err != nil {
			return err
		}
	}
	return nil
}

// Revocations tells whether a device or a certificate is revoked
// (fleet-server/registry implements it, from memory).
type Revocations interface {
	IsRevoked(device string, serial *big.Int) bool
}

// EMQXRequest is what EMQX sends to the authentication and authorization
// endpoints, as the generated configuration asks it to.
type EMQXRequest struct {
	ClientID       string `json:"clientid"`
	Username       string `json:"username"`
	CertCommonName string `json:"cert_common_name,omitempty"`
	PeerHost       string `json:"peerhost,omitempty"`
	Topic          string `json:"topic,omitempty"`
	Action         string `json:"action,omitempty"`
}

// DecodeEMQXRequest reads a request body: a JSON object of strings, at most
// 16 KiB, every value valid UTF-8.
func DecodeEMQXRequest(b []byte) (EMQXRequest, error) {
	var r EMQXRequest
	if len(b) > maxEMQXBody {
		return r, fmt.Errorf("request of %d bytes, at most %d", len(b), maxEMQXBody)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&r); err != nil {
		return r, fmt.Errorf("request is not a JSON object of strings: %w", err)
	}
	if dec.More() {
		return r, errors.New("request holds more than one JSON value")
	}
	for _, s := range []string{r.ClientID, r.Username, r.CertCommonName, r.PeerHost, r.Topic, r.Action} {
		if !utf8.ValidString(s) {
			return r, errors.New("request holds invalid UTF-8")
		}
	}
	return r, nil
}

// EMQXResult is the answer EMQX expects.
type EMQXResult struct {
	Result      string `json:"result"` // allow, deny
	IsSuperuser bool   `json:"is_superuser"`
}

// EMQXOptions are the optional settings of EMQXHandler.
type EMQXOptions struct {
	Logger *slog.Logger
	// Authorize checks the caller; default: a verified client certificate
	// of the fleet CA with unit BrokerUnit (the broker certificate).
	Authorize func(r *http.Request) error
}

// EMQXHandler serves EMQX's HTTP authentication (EMQXPrefix+"authn") and
// authorization (EMQXPrefix+"authz") for the fleet: a device connects with
// its own certificate, its common name as user name and client id, unless
// it is revoked; kogge-server replicas connect as superusers; bridge and
// other certificates are refused. A device may publish and subscribe only
// under its own topics, as with the embedded broker. Serve it on the
// enrollment listener (HTTPS with the fleet CA, client certificates
// verified when given).
func EMQXHandler(rev Revocations, opts EMQXOptions) (http.Handler, error) {
	if rev == nil {
		return nil, errors.New("emqx handler: no revocation source")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Authorize == nil {
		opts.Authorize = brokerCertificate
	}
	h := &emqxHandler{rev: rev, opts: opts}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+EMQXPrefix+"authn", h.serve(h.authn))
	mux.HandleFunc("POST "+EMQXPrefix+"authz", h.serve(h.authz))
	return mux, nil
}

// brokerCertificate accepts a caller with a verified broker certificate.
func brokerCertificate(r *http.Request) error {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return errors.New("no verified client certificate: EMQX must call with the broker certificate (ssl.certfile)")
	}
	leaf := r.TLS.VerifiedChains[0][0]
	if !slices.Contains(leaf.Subject.OrganizationalUnit, BrokerUnit) {
		return fmt.Errorf("certificate %q is not a broker certificate", leaf.Subject.CommonName)
	}
	return nil
}

type emqxHandler struct {
	rev  Revocations
	opts EMQXOptions
}

func (h *emqxHandler) serve(decide func(EMQXRequest) (EMQXResult, string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := h.opts.Authorize(r); err != nil {
			h.opts.Logger.Warn("emqx endpoint: caller refused", "remote", r.RemoteAddr, "err", err)
			http.Error(w, "forbidden: "+err.Error(), http.StatusForbidden)
			return
		}
		b, err := io.ReadAll(io.LimitReader(r.Body, maxEMQXBody+1))
		if err != nil {
			http.Error(w, "read request: "+err.Error(), http.StatusBadRequest)
			return
		}
		req, err := DecodeEMQXRequest(b)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		res, why := decide(req)
		if res.Result == "deny" {
			h.opts.Logger.Debug("emqx: denied", "path", r.URL.Path, "user", req.Username, "client_id", req.ClientID,
				"topic", req.Topic, "action", req.Action, "reason", why)
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(res)
	}
}

var (
	allow = EMQXResult{Result: "allow"}
	deny  = EMQXResult{Result: "deny"}
)

// user is the identity of a request: the certificate's common name, or the
// user name that EMQX took from it.
func (r EMQXRequest) user() string {
	if r.CertCommonName != "" {
		return r.CertCommonName
	}
	return r.Username
}

func (h *emqxHandler) authn(r EMQXRequest) (EMQXResult, string) {
	u := r.user()
	if r.Username != "" && r.Username != u {
		return deny, "user name differs from the certificate"
	}
	if replica, ok := strings.CutPrefix(u, ServerPrefix); ok {
		if ValidateReplica(replica) != nil || r.ClientID != u {
			return deny, "malformed server identity or client id"
		}
		return EMQXResult{Result: "allow", IsSuperuser: true}, ""
	}
	switch {
	case protocol.ValidateDeviceID(u) != nil:
		return deny, "not a device id"
	case strings.HasPrefix(u, registry.BridgePrefix):
		return deny, "bridge certificate"
	case r.ClientID != u:
		return deny, "client id differs from the device id"
	case h.rev.IsRevoked(u, nil):
		return deny, "revoked"
	}
	return allow, ""
}

func (h *emqxHandler) authz(r EMQXRequest) (EMQXResult, string) {
	u := r.user()
	if strings.HasPrefix(u, ServerPrefix) {
		// Replicas are superusers; EMQX asks only if that changes.
		return allow, ""
	}
	if strings.HasPrefix(u, registry.BridgePrefix) || h.rev.IsRevoked(u, nil) {
		return deny, "revoked or bridge"
	}
	switch r.Action {
	case "publish":
		if protocol.DeviceMayPublish(u, r.Topic) {
			return allow, ""
		}
	case "subscribe":
		if protocol.DeviceMaySubscribe(u, r.Topic) {
			return allow, ""
		}
	}
	return deny, "not the device's own topic"
}
