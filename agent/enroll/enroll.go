// Package enroll is the device side of enrollment: it makes the device's key
// and a CSR, sends them with a one-time enrollment code to the fleet server
// over HTTPS, and saves the certificate it gets; later it renews that
// certificate before it expires.
//
// Before enrollment the device trusts nothing but the fleet CA's fingerprint
// (SHA-256 of the CA certificate's DER, as `koggectl enroll-code create`
// prints it next to the code): the TLS connection is accepted only if the
// server presents that CA and a server certificate signed by it for the host
// dialled. Renewal uses mutual TLS with the current certificate and the
// saved CA.
//
// The identity lives in one directory (created 0700, files 0600, each
// replaced atomically):
//
//	identity.pem     the device certificate and its private key (PKCS #8)
//	ca.pem           the fleet CA
//	enrollment.json  device id, server URL and broker address
//
// The wire format mirrors fleet-server/registry (the two sides share no Go
// package): POST {server}/enroll/v1 and POST {server}/enroll/v1/renew.
package enroll

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Inventory is what the device tells the server about itself.
type Inventory struct {
	Model       string       `json:"model"`
	Serial      string       `json:"serial"`
	Software    string       `json:"software"`
	Peripherals []Peripheral `json:"peripherals,omitempty"`
	Location    string       `json:"location,omitempty"`
}

// Peripheral is a peripheral of the device.
type Peripheral struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
}

// Request is what Enroll needs.
type Request struct {
	// Server is the fleet server's HTTPS base URL, e.g.
	// "https://fleet.example.org:8443".
	Server string
	// Code is the one-time enrollment code as the admin handed it out.
	Code string
	// CAFingerprint is the fleet CA's SHA-256 fingerprint in hex (colons,
	// spaces and a "sha256:" prefix are allowed).
	CAFingerprint string
	// DeviceID is the id to ask for; empty lets the server choose.
	DeviceID  string
	Inventory Inventory
}

// Options are the optional settings of Enroll and Renew.
type Options struct {
	// Timeout bounds one request, connection included; default 30 s.
	Timeout time.Duration
}

func (o Options) timeout() time.Duration {
	if o.Timeout <= 0 {
		return 30 * time.Second
	}
	return o.Timeout
}

// ServerError is a refusal by the server, with its reason
// ("code_used", "code_expired", "code_unknown", "code_revoked",
// "device_exists", "revoked", "bad_request", …) and a message for a person.
type ServerError struct {
	Status  int
	Reason  string
	Message string
}

func (e *ServerError) Error() string {
	return fmt.Sprintf("fleet server refused (%d %s): %s", e.Status, e.Reason, e.Message)
}

// Identity is an enrolled device's identity.
type Identity struct {
	Dir      string
	DeviceID string
	// Server is the HTTPS base URL used for enrollment and renewal.
	Server string
	// Broker is the MQTT broker address the server named.
	Broker string
	// Certificate is the device certificate with its key; Leaf is set.
	Certificate tls.Certificate
	CA          *x509.Certificate
}

// NotAfter returns when the device certificate expires.
func (id *Identity) NotAfter() time.Time { return id.Certificate.Leaf.NotAfter }

// RenewalDue reports whether less than a third of the certificate's
// lifetime is left at now.
func (id *Identity) RenewalDue(now time.Time) bool {
	leaf := id.Certificate.Leaf
	return leaf.NotAfter.Sub(now) < leaf.NotAfter.Sub(leaf.NotBefore)/3
}

// TLSConfig returns the client TLS configuration for the broker: the device
// certificate, and the fleet CA as the only root.
func (id *Identity) TLSConfig() *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(id.CA)
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		RootCAs:      pool,
		Certificates: []tls.Certificate{id.Certificate},
	}
}

// ParseFingerprint reads a SHA-256 fingerprint in hex.
func ParseFingerprint(s string) ([sha256.Size]byte, error) {
	var fp [sha256.Size]byte
	s = strings.ToLower(strings.TrimSpace(s))
	s = strings.TrimPrefix(s, "sha256:")
	s = strings.NewReplacer(":", "", " ", "", "-", "").Replace(s)
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != sha256.Size {
		return fp, fmt.Errorf("CA fingerprint must be %d hex digits (SHA-256), got %q", 2*sha256.Size, s)
	}
	copy(fp[:], b)
	return fp, nil
}

// Enroll enrolls the device and saves its identity in dir. It refuses to
// overwrite an identity that is already there.
func Enroll(ctx context.Context, dir string, req Request, opts Options) (*Identity, error) {
	fp, err := ParseFingerprint(req.CAFingerprint)
	if err != nil {
		return nil, err
	}
	base, err := serverURL(req.Server)
	if err != nil {
		return nil, err
	}
	if req.Code == "" {
		return nil, errors.New("enroll: no enrollment code")
	}
	if _, err := Load(dir); err == nil {
		return nil, fmt.Errorf("enroll: %s already holds an enrolled identity; remove it to enroll again", dir)
	}
	key, csr, err := newKeyAndCSR(req.DeviceID)
	if err != nil {
		return nil, err
	}
	body, err := json.Marshal(enrollRequestJSON{Code: req.Code, CSR: string(csr), DeviceID: req.DeviceID, Inventory: req.Inventory})
	if err != nil {
		return nil, fmt.Errorf("enroll: encode request: %w", err)
	}
	cfg := pinnedTLS(fp, base.Hostname())
	resp, err := post(ctx, cfg, base.JoinPath("enroll/v1").String(), body, opts)
	if err != nil {
		return nil, fmt.Errorf("enroll at %s: %w", base.Redacted(), err)
	}
	id, err := identityFrom(resp, key, fp[:], nil)
	if err != nil {
		return nil, fmt.Errorf("enroll at %s: %w", base.Redacted(), err)
	}
	if req.DeviceID != "" && id.DeviceID != req.DeviceID {
		return nil, fmt.Errorf("enroll: asked for device id %q, got a certificate for %q", req.DeviceID, id.DeviceID)
	}
	id.Dir, id.Server = dir, base.String()
	if err := id.save(true); err != nil {
		return nil, err
	}
	return id, nil
}

// Renew makes a new key, has the server certify it (authenticated by the
// current certificate) and saves the new identity. The returned identity
// replaces id.
func (id *Identity) Renew(ctx context.Context, opts Options) (*Identity, error) {
	base, err := serverURL(id.Server)
	if err != nil {
		return nil, err
	}
	key, csr, err := newKeyAndCSR(id.DeviceID)
	if err != nil {
		return nil, err
	}
	body, err := json.Marshal(renewRequestJSON{CSR: string(csr)})
	if err != nil {
		return nil, fmt.Errorf("renew: encode request: %w", err)
	}
	resp, err := post(ctx, id.TLSConfig(), base.JoinPath("enroll/v1/renew").String(), body, opts)
	if err != nil {
		return nil, fmt.Errorf("renew certificate of %s at %s: %w", id.DeviceID, base.Redacted(), err)
	}
	caFP := sha256.Sum256(id.CA.Raw)
	next, err := identityFrom(resp, key, caFP[:], &id.DeviceID)
	if err != nil {
		return nil, fmt.Errorf("renew certificate of %s: %w", id.DeviceID, err)
	}
	next.Dir, next.Server = id.Dir, id.Server
	if err := next.save(false); err != nil {
		return nil, err
	}
	return next, nil
}

// RenewIfDue renews when RenewalDue(now); it returns the identity to use
// and whether it renewed.
func (id *Identity) RenewIfDue(ctx context.Context, now time.Time, opts Options) (*Identity, bool, error) {
	if !id.RenewalDue(now) {
		return id, false, nil
	}
	next, err := id.Renew(ctx, opts)
	if err != nil {
		return id, false, err
	}
	return next, true, nil
}

func serverURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("fleet server URL %q must be https://host[:port]", s)
	}
	return u, nil
}

func newKeyAndCSR(device string) (*ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate device key: %w", err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: device},
	}, key)
	if err != nil {
		return nil, nil, fmt.Errorf("make certificate request: %w", err)
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// pinnedTLS accepts a server only if it presents the CA with fingerprint fp
// and a leaf certificate from that CA valid for host.
func pinnedTLS(fp [sha256.Size]byte, host string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// The chain is verified in VerifyConnection, against the pinned
		// CA instead of the system roots.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			var ca *x509.Certificate
			for _, c := range cs.PeerCertificates {
				if sha256.Sum256(c.Raw) == fp {
					ca = c
				}
			}
			if ca == nil || len(cs.PeerCertificates) == 0 {
				return fmt.Errorf("the server does not present the fleet CA with fingerprint %x; check the fingerprint and the server address", fp)
			}
			if !ca.IsCA {
				return errors.New("the certificate with the pinned fingerprint is not a CA")
			}
			pool := x509.NewCertPool()
			pool.AddCert(ca)
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
				Roots: pool, DNSName: host, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			})
			if err != nil {
				return fmt.Errorf("server certificate not valid for %s under the pinned CA: %w", host, err)
			}
			return nil
		},
	}
}

// maxResponse bounds a server response, in bytes.
const maxResponse = 64 << 10

func post(ctx context.Context, cfg *tls.Config, url string, body []byte, opts Options) (enrollmentJSON, error) {
	ctx, cancel := context.WithTimeout(ctx, opts.timeout())
	defer cancel()
	transport := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		TLSClientConfig:     cfg,
		TLSHandshakeTimeout: opts.timeout(),
		ForceAttemptHTTP2:   true,
	}
	defer transport.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return enrollmentJSON{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Transport: transport}).Do(req)
	if err != nil {
		return enrollmentJSON{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return enrollmentJSON{}, fmt.Errorf("read response: %w", err)
	}
	return decodeResponse(resp.StatusCode, b)
}

// decodeResponse reads the server's answer: an enrollment for 200, a
// *ServerError otherwise.
func decodeResponse(status int, b []byte) (enrollmentJSON, error) {
	if len(b) > maxResponse {
		return enrollmentJSON{}, fmt.Errorf("response exceeds %d bytes", maxResponse)
	}
	if status != http.StatusOK {
		var e errorJSON
		if err := json.Unmarshal(b, &e); err != nil || e.Error == "" {
			return enrollmentJSON{}, &ServerError{Status: status, Reason: "unknown", Message: clip(string(b))}
		}
		return enrollmentJSON{}, &ServerError{Status: status, Reason: clip(e.Error), Message: clip(e.Message)}
	}
	var v enrollmentJSON
	if err := json.Unmarshal(b, &v); err != nil {
		return enrollmentJSON{}, fmt.Errorf("response is not the expected JSON: %w", err)
	}
	return v, nil
}

func clip(s string) string {
	if len(s) > 300 {
		return s[:300] + "…"
	}
	return s
}

// identityFrom checks a response: the CA is the pinned one, the certificate
// is for key, issued by the CA for client auth, and (if device is set) for
// that device.
func identityFrom(v enrollmentJSON, key *ecdsa.PrivateKey, caFP []byte, device *string) (*Identity, error) {
	caBlock, _ := pem.Decode([]byte(v.CA))
	if caBlock == nil || caBlock.Type != "CERTIFICATE" {
		return nil, errors.New("response holds no CA certificate")
	}
	ca, err := x509.ParseCertificate(caBlock.Bytes)
	if err != nil {
		return nil, fmt.Errorf("CA certificate in the response: %w", err)
	}
	if sum := sha256.Sum256(ca.Raw); !bytes.Equal(sum[:], caFP) {
		return nil, errors.New("the CA in the response is not the pinned fleet CA")
	}
	block, _ := pem.Decode([]byte(v.Certificate))
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("response holds no device certificate")
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("device certificate in the response: %w", err)
	}
	if pub, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || !pub.Equal(&key.PublicKey) {
		return nil, errors.New("the certificate in the response is not for this device's key")
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	// Only the chain is checked here, not the validity period: a device
	// whose clock is off must still take the certificate it was given.
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: leaf.NotBefore,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return nil, fmt.Errorf("the certificate in the response does not verify under the fleet CA: %w", err)
	}
	if leaf.Subject.CommonName == "" || leaf.Subject.CommonName != v.DeviceID {
		return nil, fmt.Errorf("certificate names device %q, response %q", leaf.Subject.CommonName, v.DeviceID)
	}
	if device != nil && leaf.Subject.CommonName != *device {
		return nil, fmt.Errorf("renewed certificate names device %q, not %q", leaf.Subject.CommonName, *device)
	}
	return &Identity{
		DeviceID:    leaf.Subject.CommonName,
		Broker:      v.Broker,
		Certificate: tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf},
		CA:          ca,
	}, nil
}

// The wire types; see fleet-server/registry/http.go.
type enrollRequestJSON struct {
	Code      string    `json:"code"`
	CSR       string    `json:"csr"`
	DeviceID  string    `json:"device_id,omitempty"`
	Inventory Inventory `json:"inventory"`
}

type renewRequestJSON struct {
	CSR string `json:"csr"`
}

type enrollmentJSON struct {
	DeviceID    string    `json:"device_id"`
	Certificate string    `json:"certificate"`
	CA          string    `json:"ca"`
	Broker      string    `json:"broker"`
	NotAfter    time.Time `json:"not_after"`
}

type errorJSON struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}
