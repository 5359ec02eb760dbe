package brokerconfig

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/kogge-fleet/kogge/fleet-server/registry"
	"github.com/kogge-fleet/kogge/fleet-server/store"
)

// Identities in certificates of the fleet CA besides devices and bridges.
const (
	// ServerPrefix starts the common name of a server replica's client
	// certificate, which it uses towards an external broker: the broker
	// takes the common name as the MQTT user name. ':' is not allowed in
	// device ids, so no device can hold a server's name.
	ServerPrefix = "kogge-server:"
	// ServerUnit is the organizational unit of replica certificates.
	ServerUnit = "Kogge server"
	// BrokerUnit is the organizational unit of broker certificates (server
	// certificate of the broker's TLS listener, and the client certificate
	// with which EMQX calls the server's authentication endpoint).
	BrokerUnit = "Kogge broker"
	// BrokerPrefix starts the common name of a broker certificate.
	BrokerPrefix = "kogge-broker:"
)

// clockSkew backdates certificates, as the registry does.
const clockSkew = 5 * time.Minute

// ReplicaUser returns the MQTT user name (certificate common name) of a
// server replica.
func ReplicaUser(replica string) string { return ServerPrefix + replica }

// ProbeRoot starts the topics on which each replica checks, after every
// connect, that the broker passes it messages (mqttclient.Options.ProbeTopic).
const ProbeRoot = "kogge/v1/probe/"

// ProbeTopic returns the probe topic of a replica.
func ProbeTopic(replica string) string { return ProbeRoot + ReplicaUser(replica) }

// ValidateReplica checks a replica id: 1 to 63 characters of a-z, 0-9,
// '.', '_' and '-', starting with a letter or digit.
func ValidateReplica(id string) error {
	if id == "" || len(id) > 63 {
		return fmt.Errorf("replica id %q: 1 to 63 characters", id)
	}
	for i, c := range id {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '.' || c == '_' || c == '-') && i > 0:
		default:
			return fmt.Errorf("replica id %q: character %q at %d; allowed are a-z, 0-9, '.', '_', '-', starting with a letter or digit", id, c, i)
		}
	}
	return nil
}

// CA is the fleet CA, loaded from the store, for what a deployment with an
// external broker needs signed: the broker's certificate, the replicas'
// client certificates and the certificate revocation list.
type CA struct {
	cert *x509.Certificate
	pem  []byte
	key  *ecdsa.PrivateKey
}

// LoadCA reads the fleet CA from the store. The server creates it at its
// first start; before that there is none to load.
func LoadCA(ctx context.Context, db *store.DB) (*CA, error) {
	v, err := db.Setting(ctx, registry.CASetting)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errors.New("the store holds no fleet CA yet: start kogge-server on this database once, then try again")
	}
	if err != nil {
		return nil, fmt.Errorf("read the fleet CA: %w", err)
	}
	return ParseCA(v)
}

// ParseCA parses the fleet CA as the registry stores it (registry.ParseCA).
func ParseCA(v []byte) (*CA, error) {
	cert, key, err := registry.ParseCA(v)
	if err != nil {
		return nil, fmt.Errorf("fleet CA: %w", err)
	}
	return &CA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})}, nil
}

// Certificate returns the CA certificate.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// CertPEM returns the CA certificate in PEM.
func (ca *CA) CertPEM() []byte { return bytes.Clone(ca.pem) }

// Pool returns a pool with the CA certificate.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

func randomSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 127)
	n, err := rand.Int(rand.Reader, limit)
	if err != nil {
		return nil, fmt.Errorf("make serial number: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}

func (ca *CA) sign(tmpl *x509.Certificate, pub *ecdsa.PublicKey) (*x509.Certificate, error) {
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	tmpl.BasicConstraintsValid = true
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		return nil, fmt.Errorf("sign certificate for %s: %w", tmpl.Subject.CommonName, err)
	}
	return x509.ParseCertificate(der)
}

// IssueBroker signs a certificate for a broker with the given DNS names
// and IP addresses (the first one names it): server auth for its TLS
// listener, client auth for EMQX's calls to the server's authentication
// endpoint. It returns the certificate and a fresh key, both PEM.
func (ca *CA) IssueBroker(names []string, now time.Time, lifetime time.Duration) (certPEM, keyPEM []byte, err error) {
	if len(names) == 0 {
		return nil, nil, errors.New("issue broker certificate: no names; give the broker's DNS names or IP addresses")
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{Organization: []string{"Kogge"}, OrganizationalUnit: []string{BrokerUnit}, CommonName: BrokerPrefix + names[0]},
		NotBefore:   now.Add(-clockSkew),
		NotAfter:    now.Add(lifetime),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if n != "" && !strings.ContainsAny(n, " /:") {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		} else {
			return nil, nil, fmt.Errorf("issue broker certificate: %q is neither a DNS name nor an IP address", n)
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate broker key: %w", err)
	}
	cert, err := ca.sign(tmpl, &key.PublicKey)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encode broker key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

// IssueReplica signs a client certificate for a server replica (common
// name ServerPrefix + replica, unit ServerUnit, client auth only) with a
// fresh key that only the returned tls.Certificate holds.
func (ca *CA) IssueReplica(replica string, now time.Time, lifetime time.Duration) (tls.Certificate, error) {
	if err := ValidateReplica(replica); err != nil {
		return tls.Certificate{}, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("generate replica key: %w", err)
	}
	cert, err := ca.sign(&x509.Certificate{
		Subject:     pkix.Name{Organization: []string{"Kogge"}, OrganizationalUnit: []string{ServerUnit}, CommonName: ReplicaUser(replica)},
		NotBefore:   now.Add(-clockSkew),
		NotAfter:    now.Add(lifetime),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, &key.PublicKey)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{cert.Raw, ca.cert.Raw}, PrivateKey: key, Leaf: cert}, nil
}

// CRL signs a certificate revocation list of the serials (lower-case hex,
// as the registry stores them) with the given number, valid from now for
// validity. Brokers refuse every client certificate once the CRL they hold
// has expired, so it must be signed again before then (Update does).
func (ca *CA) CRL(serials []string, number int64, now time.Time, validity time.Duration) ([]byte, error) {
	sorted := slices.Clone(serials)
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	entries := make([]x509.RevocationListEntry, 0, len(sorted))
	for _, s := range sorted {
		n, ok := new(big.Int).SetString(s, 16)
		if !ok || n.Sign() <= 0 {
			return nil, fmt.Errorf("CRL: serial %q is not a positive hexadecimal number", s)
		}
		entries = append(entries, x509.RevocationListEntry{SerialNumber: n, RevocationTime: now.Truncate(time.Second)})
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:                    big.NewInt(number),
		ThisUpdate:                now.Add(-clockSkew),
		NextUpdate:                now.Add(validity),
		RevokedCertificateEntries: entries,
	}, ca.cert, ca.key)
	if err != nil {
		return nil, fmt.Errorf("sign CRL: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}), nil
}
