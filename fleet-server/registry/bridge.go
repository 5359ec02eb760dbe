package registry

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kogge-fleet/kogge/fleet-server/store"
	"github.com/kogge-fleet/kogge/protocol"
)

// Bridge certificates. A bridge (kogge-bridge, next to an office's
// procedure) authenticates to the fleet server's bridge API with a client
// certificate from the fleet CA:
//
//	Subject: O=Kogge, OU=Kogge bridge, CN=bridge.<office>
//	ExtKeyUsage: client auth; lifetime Options.BridgeCertLifetime
//
// Its serial is stored (table bridge_certs); [Registry.BridgeOffice]
// accepts a certificate only when it carries the bridge unit, its serial is
// stored for that office and not revoked. A device certificate (no bridge
// unit, no stored serial) is never a bridge's, whatever its common name.
//
// Flow: the bridge's operator makes an ECDSA P-256 key and a CSR on the
// bridge's machine (the key never leaves it), e.g.
//
//	openssl ecparam -name prime256v1 -genkey -noout -out bridge.key
//	openssl req -new -key bridge.key -subj /CN=bridge -out bridge.csr
//
// and an admin has it signed through the REST API (POST
// /api/v1/bridge-certificates {"office", "csr"}), for example with
// `koggectl bridge-cert --office OFFICE --csr bridge.csr --out bridge.crt`,
// which also writes the CA certificate (bridge.crt.ca) the bridge trusts.
// The CSR's subject is ignored. Revoke with
// `koggectl bridge-cert revoke SERIAL` (POST
// /api/v1/bridge-certificates/{serial}/revoke): the next request of the
// bridge is refused.

// BridgeUnit is the organizational unit that marks bridge certificates.
const BridgeUnit = "Kogge bridge"

// BridgePrefix starts the common name of a bridge certificate.
const BridgePrefix = "bridge."

// ErrNotBridge is returned by BridgeOffice for a certificate that is not a
// bridge certificate of this fleet.
var ErrNotBridge = errors.New("not a bridge certificate")

// BridgeCertificate is a certificate issued to a bridge. Certificate and CA
// are PEM, set only when it is issued.
type BridgeCertificate struct {
	Serial      string     `json:"serial"`
	Office      string     `json:"office"`
	CommonName  string     `json:"common_name"`
	NotBefore   time.Time  `json:"not_before"`
	NotAfter    time.Time  `json:"not_after"`
	IssuedAt    time.Time  `json:"issued_at"`
	RevokedAt   *time.Time `json:"revoked_at,omitempty"`
	Certificate string     `json:"certificate,omitempty"`
	CA          string     `json:"ca,omitempty"`
}

// IssueBridgeCertificate signs a client certificate for office's bridge
// from a PEM CSR for an ECDSA P-256 key, and stores its serial.
func (r *Registry) IssueBridgeCertificate(ctx context.Context, office string, csr []byte) (BridgeCertificate, error) {
	if err := protocol.ValidateDeviceID(office); err != nil {
		// Offices follow the same naming rule as device ids.
		detail := err.Error()
		var pe *protocol.Error
		if errors.As(err, &pe) && pe.Detail != "" {
			detail = pe.Detail
		}
		return BridgeCertificate{}, fmt.Errorf("%w: office %q: %s", ErrInvalid, office, detail)
	}
	pub, err := parseCSR(csr)
	if err != nil {
		return BridgeCertificate{}, err
	}
	now := r.now()
	leaf, err := r.ca.issueBridge(pub, office, now, r.opts.BridgeCertLifetime)
	if err != nil {
		return BridgeCertificate{}, err
	}
	c := store.BridgeCert{
		Serial: serialText(leaf.SerialNumber), Office: office,
		NotBefore: leaf.NotBefore.UnixMilli(), NotAfter: leaf.NotAfter.UnixMilli(), CreatedAt: now.UnixMilli(),
	}
	if err := r.db.AddBridgeCert(ctx, c); err != nil {
		return BridgeCertificate{}, err
	}
	r.log.Info("issued bridge certificate", "office", office, "serial", c.Serial, "not_after", leaf.NotAfter)
	out := bridgeFrom(c)
	out.Certificate = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw}))
	out.CA = string(r.CAPEM())
	return out, nil
}

// issueBridge signs a bridge certificate: CN bridge.<office>, OU
// BridgeUnit, client auth only.
func (ca *authority) issueBridge(pub *ecdsa.PublicKey, office string, now time.Time, lifetime time.Duration) (*x509.Certificate, error) {
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	return ca.sign(&x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{Organization: []string{"Kogge"}, OrganizationalUnit: []string{BridgeUnit},
			CommonName: BridgePrefix + office},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(lifetime),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}, pub)
}

func bridgeFrom(c store.BridgeCert) BridgeCertificate {
	out := BridgeCertificate{
		Serial: c.Serial, Office: c.Office, CommonName: BridgePrefix + c.Office,
		NotBefore: time.UnixMilli(c.NotBefore).UTC(), NotAfter: time.UnixMilli(c.NotAfter).UTC(),
		IssuedAt: time.UnixMilli(c.CreatedAt).UTC(),
	}
	if c.RevokedAt != 0 {
		t := time.UnixMilli(c.RevokedAt).UTC()
		out.RevokedAt = &t
	}
	return out
}

// BridgeCertificates lists the bridge certificates of office ("" for all),
// newest first, without the certificates themselves.
func (r *Registry) BridgeCertificates(ctx context.Context, office string) ([]BridgeCertificate, error) {
	cs, err := r.db.BridgeCerts(ctx, office)
	if err != nil {
		return nil, err
	}
	out := make([]BridgeCertificate, len(cs))
	for i, c := range cs {
		out[i] = bridgeFrom(c)
	}
	return out, nil
}

// RevokeBridgeCertificate revokes a bridge certificate by serial (hex, as
// listed); the bridge's next request is refused.
func (r *Registry) RevokeBridgeCertificate(ctx context.Context, serial string) (BridgeCertificate, error) {
	c, err := r.db.RevokeBridgeCert(ctx, strings.ToLower(serial), r.now().UnixMilli())
	if errors.Is(err, store.ErrNotFound) {
		return BridgeCertificate{}, fmt.Errorf("%w: no bridge certificate with serial %q", ErrNotFound, serial)
	}
	if err != nil {
		return BridgeCertificate{}, err
	}
	r.log.Info("revoked bridge certificate", "office", c.Office, "serial", c.Serial)
	return bridgeFrom(c), nil
}

// BridgeOffice returns the office of a bridge's client certificate, which
// TLS has verified against the fleet CA. It wraps ErrNotBridge for a
// certificate that is not a stored bridge certificate of this fleet, and
// ErrRevoked for a revoked or expired one.
func (r *Registry) BridgeOffice(ctx context.Context, cert *x509.Certificate) (string, error) {
	office, ok := strings.CutPrefix(cert.Subject.CommonName, BridgePrefix)
	if !ok || len(cert.Subject.OrganizationalUnit) != 1 || cert.Subject.OrganizationalUnit[0] != BridgeUnit {
		return "", fmt.Errorf("%w: certificate %q is not a bridge certificate (CN bridge.<office>, OU %s)",
			ErrNotBridge, cert.Subject.CommonName, BridgeUnit)
	}
	c, err := r.db.BridgeCert(ctx, serialText(cert.SerialNumber))
	if errors.Is(err, store.ErrNotFound) || (err == nil && c.Office != office) {
		return "", fmt.Errorf("%w: certificate %q (serial %s) was not issued by this registry", ErrNotBridge,
			cert.Subject.CommonName, serialText(cert.SerialNumber))
	}
	if err != nil {
		return "", err
	}
	if c.RevokedAt != 0 {
		return "", fmt.Errorf("%w: bridge certificate %s of office %s is revoked", ErrRevoked, c.Serial, office)
	}
	if now := r.now(); now.After(cert.NotAfter) {
		return "", fmt.Errorf("%w: bridge certificate %s of office %s expired at %v", ErrRevoked, c.Serial, office, cert.NotAfter)
	}
	return office, nil
}
