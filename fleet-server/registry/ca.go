package registry

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
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/kogge-fleet/kogge/fleet-server/store"
)

// CASetting is the settings key under which the fleet CA lives: its
// certificate and its PKCS #8 private key, both PEM, in one value so that
// they are created together. Keeping the CA in the store lets replicas on one
// PostgreSQL share it; it also means that the store and its backups hold the
// CA's private key and must be protected like it (the SQLite file readable
// by the server's user only).
const CASetting = "registry.ca"

const (
	caLifetime = 20 * 365 * 24 * time.Hour
	// clockSkew backdates certificates so that devices whose clocks run a
	// little behind accept them at once.
	clockSkew = 5 * time.Minute
)

// authority is the fleet CA. Its private key never leaves this struct: it is
// not logged, not returned and not printed.
type authority struct {
	cert    *x509.Certificate
	certPEM []byte
	key     *ecdsa.PrivateKey
	pool    *x509.CertPool
}

// loadCA reads the fleet CA from the store, creating it on first start.
func loadCA(ctx context.Context, db *store.DB, now time.Time) (*authority, bool, error) {
	v, err := db.Setting(ctx, CASetting)
	created := false
	if errors.Is(err, store.ErrNotFound) {
		fresh, err := newCAPEM(now)
		if err != nil {
			return nil, false, err
		}
		// Replicas starting together all end up with the one that was
		// stored first.
		if v, err = db.SettingOrPut(ctx, CASetting, fresh); err != nil {
			return nil, false, fmt.Errorf("store fleet CA: %w", err)
		}
		created = bytes.Equal(v, fresh)
	} else if err != nil {
		return nil, false, fmt.Errorf("read fleet CA: %w", err)
	}
	ca, err := parseCA(v)
	if err != nil {
		return nil, false, fmt.Errorf("fleet CA in the store (setting %q) is unusable: %w", CASetting, err)
	}
	return ca, created, nil
}

func newCAPEM(now time.Time) ([]byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate CA key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"Kogge"}, CommonName: "Kogge fleet CA " + serial.Text(16)[:8]},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(caLifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("create CA certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode CA key: %w", err)
	}
	var b bytes.Buffer
	pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	pem.Encode(&b, &pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	return b.Bytes(), nil
}

func parseCA(v []byte) (*authority, error) {
	cert, key, err := ParseCA(v)
	if err != nil {
		return nil, err
	}
	ca := &authority{cert: cert, key: key, pool: x509.NewCertPool(),
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})}
	ca.pool.AddCert(cert)
	return ca, nil
}

// ParseCA parses the fleet CA as the registry keeps it under CASetting: a
// CERTIFICATE and a PRIVATE KEY (PKCS #8, ECDSA) block in PEM. It checks
// that the certificate is a CA and that the key is its key. Other parts that
// sign with the fleet CA (fleet-server/brokerconfig) read it so.
func ParseCA(v []byte) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	var cert *x509.Certificate
	var key *ecdsa.PrivateKey
	for {
		var block *pem.Block
		block, v = pem.Decode(v)
		if block == nil {
			break
		}
		switch block.Type {
		case "CERTIFICATE":
			c, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, nil, fmt.Errorf("certificate: %w", err)
			}
			cert = c
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
			if err != nil {
				return nil, nil, errors.New("private key does not parse")
			}
			ek, ok := k.(*ecdsa.PrivateKey)
			if !ok {
				return nil, nil, errors.New("private key is not ECDSA")
			}
			key = ek
		}
	}
	if cert == nil || key == nil {
		return nil, nil, errors.New("certificate or private key missing")
	}
	if !cert.IsCA {
		return nil, nil, errors.New("certificate is not a CA")
	}
	if pub, ok := cert.PublicKey.(*ecdsa.PublicKey); !ok || !pub.Equal(&key.PublicKey) {
		return nil, nil, errors.New("private key does not match the certificate")
	}
	return cert, key, nil
}

// Fingerprint returns the SHA-256 of a certificate's DER in lower-case hex:
// the form in which an admin hands the CA's identity to a device.
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return hex.EncodeToString(sum[:])
}

// randomSerial returns a positive random 127-bit serial number.
func randomSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 127)
	n, err := rand.Int(rand.Reader, limit)
	if err != nil {
		return nil, fmt.Errorf("make serial number: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}

// serialText is how serial numbers are stored and compared: lower-case hex.
func serialText(n *big.Int) string { return n.Text(16) }

// issueClient signs a device certificate: CN = device id, client auth only.
func (ca *authority) issueClient(pub *ecdsa.PublicKey, device string, now time.Time, lifetime time.Duration) (*x509.Certificate, error) {
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"Kogge"}, CommonName: device},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(lifetime),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	return ca.sign(tmpl, pub)
}

func (ca *authority) sign(tmpl *x509.Certificate, pub *ecdsa.PublicKey) (*x509.Certificate, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		return nil, fmt.Errorf("sign certificate for %s: %w", tmpl.Subject.CommonName, err)
	}
	return x509.ParseCertificate(der)
}

// serverCerts issues the TLS server certificate of the broker and the HTTPS
// endpoints, and issues it anew when less than a third of its lifetime is
// left. Its key is made fresh at every start and never stored: devices trust
// the CA, not this certificate.
type serverCerts struct {
	ca       *authority
	names    []string
	lifetime time.Duration
	now      func() time.Time

	mu   sync.Mutex
	cert *tls.Certificate
}

func (s *serverCerts) get() (*tls.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if c := s.cert; c != nil && c.Leaf.NotAfter.Sub(now) > c.Leaf.NotAfter.Sub(c.Leaf.NotBefore)/3 {
		return c, nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate server key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"Kogge"}, CommonName: "Kogge fleet server"},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(s.lifetime),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	for _, n := range s.names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	leaf, err := s.ca.sign(tmpl, &key.PublicKey)
	if err != nil {
		return nil, err
	}
	s.cert = &tls.Certificate{
		// The chain includes the CA so that a device that knows only the
		// CA's fingerprint can find and pin it.
		Certificate: [][]byte{leaf.Raw, s.ca.cert.Raw},
		PrivateKey:  key,
		Leaf:        leaf,
	}
	return s.cert, nil
}

// serverNames returns the default names plus the configured ones, without
// duplicates, after checking that each is a host name or an IP address.
func serverNames(extra []string) ([]string, error) {
	names := []string{"localhost", "127.0.0.1", "::1"}
	seen := map[string]bool{"localhost": true, "127.0.0.1": true, "::1": true}
	for _, n := range extra {
		n = strings.ToLower(strings.TrimSpace(n))
		if seen[n] {
			continue
		}
		if net.ParseIP(n) == nil && !validHostname(n) {
			return nil, fmt.Errorf("server name %q is neither a host name nor an IP address", n)
		}
		seen[n] = true
		names = append(names, n)
	}
	return names, nil
}

func validHostname(n string) bool {
	if n == "" || len(n) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimPrefix(n, "*."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
