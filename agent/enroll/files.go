package enroll

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

const (
	identityFile = "identity.pem"
	caFile       = "ca.pem"
	metaFile     = "enrollment.json"
)

type metaJSON struct {
	DeviceID string `json:"device_id"`
	Server   string `json:"server"`
	Broker   string `json:"broker"`
}

// Load reads the identity saved in dir.
func Load(dir string) (*Identity, error) {
	mb, err := os.ReadFile(filepath.Join(dir, metaFile))
	if err != nil {
		return nil, fmt.Errorf("load identity: %w", err)
	}
	var m metaJSON
	if err := json.Unmarshal(mb, &m); err != nil {
		return nil, fmt.Errorf("load identity: %s: %w", metaFile, err)
	}
	ib, err := os.ReadFile(filepath.Join(dir, identityFile))
	if err != nil {
		return nil, fmt.Errorf("load identity: %w", err)
	}
	cert, err := tls.X509KeyPair(ib, ib)
	if err != nil {
		return nil, fmt.Errorf("load identity: %s: %w", identityFile, err)
	}
	cb, err := os.ReadFile(filepath.Join(dir, caFile))
	if err != nil {
		return nil, fmt.Errorf("load identity: %w", err)
	}
	block, _ := pem.Decode(cb)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("load identity: %s holds no certificate", caFile)
	}
	ca, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("load identity: %s: %w", caFile, err)
	}
	if cert.Leaf.Subject.CommonName != m.DeviceID {
		return nil, fmt.Errorf("load identity: certificate names %q, %s %q", cert.Leaf.Subject.CommonName, metaFile, m.DeviceID)
	}
	return &Identity{Dir: dir, DeviceID: m.DeviceID, Server: m.Server, Broker: m.Broker, Certificate: cert, CA: ca}, nil
}

// save writes the identity; with withCA also the CA. Each file is replaced
// atomically; identity.pem holds key and certificate together so that they
// never disagree.
func (id *Identity) save(withCA bool) error {
	if err := os.MkdirAll(id.Dir, 0o700); err != nil {
		return fmt.Errorf("save identity: %w", err)
	}
	key, ok := id.Certificate.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return errors.New("save identity: key is not ECDSA")
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("save identity: encode key: %w", err)
	}
	var ib bytes.Buffer
	pem.Encode(&ib, &pem.Block{Type: "CERTIFICATE", Bytes: id.Certificate.Leaf.Raw})
	pem.Encode(&ib, &pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	mb, err := json.MarshalIndent(metaJSON{DeviceID: id.DeviceID, Server: id.Server, Broker: id.Broker}, "", "  ")
	if err != nil {
		return fmt.Errorf("save identity: %w", err)
	}
	if withCA {
		if err := writeAtomic(id.Dir, caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: id.CA.Raw})); err != nil {
			return err
		}
	}
	if err := writeAtomic(id.Dir, identityFile, ib.Bytes()); err != nil {
		return err
	}
	return writeAtomic(id.Dir, metaFile, append(mb, '\n'))
}

// writeAtomic replaces dir/name with b (mode 0600): temporary file, fsync,
// rename, fsync of the directory.
func writeAtomic(dir, name string, b []byte) error {
	f, err := os.CreateTemp(dir, "."+name+".*")
	if err != nil {
		return fmt.Errorf("save %s: %w", name, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // fails harmlessly after the rename
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("save %s: %w", name, err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("save %s: %w", name, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("save %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("save %s: %w", name, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return fmt.Errorf("save %s: %w", name, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("save %s: %w", name, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("save %s: sync directory: %w", name, err)
	}
	return nil
}
