package mosquittotest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/kogge-fleet/kogge/fleet-server/brokerconfig"
	"github.com/kogge-fleet/kogge/fleet-server/registry"
	"github.com/kogge-fleet/kogge/fleet-server/store"
)

// Fleet is a registry on a SQLite store with a Mosquitto that runs the
// configuration brokerconfig generated for it.
type Fleet struct {
	DB       *store.DB
	Registry *registry.Registry
	CA       *brokerconfig.CA
	// Dir holds the broker's configuration, FilesDir the credentials
	// written for the command-line clients.
	Dir      string
	FilesDir string
	Port     int
	Broker   *Broker
}

// NewFleet makes a fleet (a group "kiosks"), writes the Mosquitto
// configuration for the replicas and starts the broker on a free loopback
// port.
func NewFleet(t testing.TB, replicas ...string) *Fleet {
	t.Helper()
	ctx := context.Background()
	tmp := t.TempDir()
	db, err := store.Open(ctx, filepath.Join(tmp, "kogge.db"), store.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	reg, err := registry.New(ctx, db, registry.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.CreateGroup(ctx, "kiosks", "Kiosks"); err != nil {
		t.Fatal(err)
	}
	ca, err := brokerconfig.LoadCA(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	f := &Fleet{DB: db, Registry: reg, CA: ca, Dir: filepath.Join(tmp, "broker"), FilesDir: filepath.Join(tmp, "files"),
		Port: FreePort(t)}
	if err := os.MkdirAll(f.FilesDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := brokerconfig.WriteMosquitto(ctx, db, f.Dir, brokerconfig.Mosquitto{
		Listen: "127.0.0.1:" + strconv.Itoa(f.Port), Names: []string{"127.0.0.1"}, Replicas: replicas, User: User(),
	}, time.Now()); err != nil {
		t.Fatal(err)
	}
	f.Broker = Start(t, filepath.Join(f.Dir, brokerconfig.FileConf), f.Addr())
	return f
}

// Addr is the broker's host:port.
func (f *Fleet) Addr() string { return "127.0.0.1:" + strconv.Itoa(f.Port) }

// URL is the broker's mqtts:// URL.
func (f *Fleet) URL() string { return "mqtts://" + f.Addr() }

// Device enrolls a device through the registry and returns its TLS
// certificate; its certificate and key are also written to FilesDir as
// ID.pem and ID.key for the command-line clients.
func (f *Fleet) Device(t testing.TB, id string) tls.Certificate {
	t.Helper()
	ctx := context.Background()
	code, err := f.Registry.CreateCode(ctx, "kiosks", registry.CodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	key, csr := newCSR(t)
	en, err := f.Registry.Enroll(ctx, registry.EnrollRequest{Code: code.Secret, CSR: csr, DeviceID: id,
		Inventory: registry.Inventory{Model: "Kiosk K1"}})
	if err != nil {
		t.Fatalf("enroll %s: %v", id, err)
	}
	return f.keep(t, id, en.Certificate, key)
}

// Bridge issues a bridge certificate for office (common name
// bridge.OFFICE) and writes it as bridge.OFFICE.pem and .key.
func (f *Fleet) Bridge(t testing.TB, office string) tls.Certificate {
	t.Helper()
	key, csr := newCSR(t)
	bc, err := f.Registry.IssueBridgeCertificate(context.Background(), office, csr)
	if err != nil {
		t.Fatal(err)
	}
	return f.keep(t, registry.BridgePrefix+office, []byte(bc.Certificate), key)
}

// Replica returns a client certificate for a server replica, also written
// as FilesDir/replica-ID.pem and .key.
func (f *Fleet) Replica(t testing.TB, replica string) tls.Certificate {
	t.Helper()
	c, err := f.CA.IssueReplica(replica, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]})
	f.writeFile(t, "replica-"+replica+".pem", certPEM)
	f.writeFile(t, "replica-"+replica+".key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	return c
}

// TLS returns a client TLS configuration with cert that trusts the fleet
// CA.
func (f *Fleet) TLS(cert tls.Certificate) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: f.CA.Pool(), MinVersion: tls.VersionTLS12}
}

// CAFile is the path of the fleet CA in the broker's directory.
func (f *Fleet) CAFile() string { return filepath.Join(f.Dir, brokerconfig.FileCA) }

// CertFile and KeyFile are the paths written for name (a device id,
// bridge.OFFICE or replica-ID).
func (f *Fleet) CertFile(name string) string { return filepath.Join(f.FilesDir, name+".pem") }

// KeyFile is the key written for name.
func (f *Fleet) KeyFile(name string) string { return filepath.Join(f.FilesDir, name+".key") }

// UpdateAndReload applies the store's revocations to the broker (Update,
// then SIGHUP) and waits until the broker has reloaded.
func (f *Fleet) UpdateAndReload(t testing.TB) {
	t.Helper()
	reloads := f.Broker.LogCount("Reloading config")
	changed, pidFile, err := brokerconfig.Update(context.Background(), f.DB, f.Dir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !changed {
		t.Fatal("Update changed nothing after a revocation")
	}
	if err := brokerconfig.Reload(pidFile); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.Broker.WaitLog(ctx, "Reloading config", reloads); err != nil {
		t.Fatal(err)
	}
}

func (f *Fleet) keep(t testing.TB, name string, certPEM []byte, key *ecdsa.PrivateKey) tls.Certificate {
	t.Helper()
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	f.writeFile(t, name+".pem", certPEM)
	f.writeFile(t, name+".key", keyPEM)
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (f *Fleet) writeFile(t testing.TB, name string, b []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(f.FilesDir, name), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func newCSR(t testing.TB) (*ecdsa.PrivateKey, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "device"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}
