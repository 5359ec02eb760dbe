package registry

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kogge-fleet/kogge/fleet-server/store"
	"github.com/kogge-fleet/kogge/protocol"
)

// MaxCSRSize bounds a CSR in PEM, in bytes.
const MaxCSRSize = 8 << 10

// EnrollRequest is what a device sends to enroll.
type EnrollRequest struct {
	// Code is the one-time enrollment code as typed.
	Code string
	// CSR is a PEM certificate request for an ECDSA P-256 key.
	CSR []byte
	// DeviceID is the id the device asks for; empty lets the registry name
	// it after its group.
	DeviceID  string
	Inventory Inventory
}

// Enrollment is what a device gets back at enrollment and renewal.
type Enrollment struct {
	DeviceID string
	// Certificate is the device certificate in PEM.
	Certificate []byte
	// CA is the fleet CA certificate in PEM.
	CA []byte
	// Broker is the MQTT broker address.
	Broker   string
	NotAfter time.Time
}

// Enroll enrolls a device: it checks the request, consumes the code and
// creates the device with its first certificate in one transaction.
func (r *Registry) Enroll(ctx context.Context, req EnrollRequest) (Enrollment, error) {
	code, err := normalizeCode(req.Code)
	if err != nil {
		return Enrollment{}, err
	}
	pub, err := parseCSR(req.CSR)
	if err != nil {
		return Enrollment{}, err
	}
	if err := req.Inventory.Validate(); err != nil {
		return Enrollment{}, err
	}
	if req.DeviceID != "" {
		if err := protocol.ValidateDeviceID(req.DeviceID); err != nil {
			return Enrollment{}, fmt.Errorf("%w: device id: %v", ErrInvalid, err)
		}
		if strings.HasPrefix(req.DeviceID, BridgePrefix) {
			return Enrollment{}, fmt.Errorf("%w: device id %q: ids starting with %q name bridges, not devices", ErrInvalid, req.DeviceID, BridgePrefix)
		}
	}
	inv, err := storeInventory(req.Inventory)
	if err != nil {
		return Enrollment{}, err
	}
	hash := codeHash(code)
	// A generated id may collide with an existing device; then the
	// transaction is rolled back, the code stays unused, and another id is
	// tried.
	attempts := 1
	if req.DeviceID == "" {
		attempts = 5
	}
	for range attempts {
		var leaf *x509.Certificate
		now := r.now()
		build := func(codeID, group string) (store.Device, store.DeviceCert, error) {
			id := req.DeviceID
			if id == "" {
				suffix, err := randomID(6)
				if err != nil {
					return store.Device{}, store.DeviceCert{}, err
				}
				id = group + "-" + suffix
			}
			leaf, err = r.ca.issueClient(pub, id, now, r.opts.CertLifetime)
			if err != nil {
				return store.Device{}, store.DeviceCert{}, err
			}
			dev := store.Device{
				ID: id, CreatedAt: now.UnixMilli(), InventoryAt: now.UnixMilli(),
				Model: inv.Model, SerialNumber: inv.SerialNumber, SoftwareVersion: inv.SoftwareVersion,
				Peripherals: inv.Peripherals, LocationLabel: inv.LocationLabel,
			}
			return dev, certRow(leaf, id, now), nil
		}
		dev, _, err := r.db.Enroll(ctx, hash, now.UnixMilli(), build)
		switch {
		case err == nil:
			r.log.Info("enrolled device", "device", dev.ID, "group", dev.GroupID, "code_id", dev.EnrollCodeID,
				"serial", serialText(leaf.SerialNumber), "not_after", leaf.NotAfter)
			return r.enrollment(leaf), nil
		case errors.Is(err, store.ErrDeviceExists) && req.DeviceID == "":
			continue
		case errors.Is(err, store.ErrDeviceExists):
			return Enrollment{}, fmt.Errorf("%w: device id %q is taken; ask for another or leave it empty", ErrExists, req.DeviceID)
		case errors.Is(err, store.ErrCodeUnknown):
			return Enrollment{}, fmt.Errorf("%w: check the code you typed, or ask your administrator for a new one", ErrCodeUnknown)
		case errors.Is(err, store.ErrCodeUsed):
			return Enrollment{}, fmt.Errorf("%w: each code enrolls one device; ask your administrator for a new one", ErrCodeUsed)
		case errors.Is(err, store.ErrCodeExpired):
			return Enrollment{}, fmt.Errorf("%w: ask your administrator for a new one", ErrCodeExpired)
		case errors.Is(err, store.ErrCodeRevoked):
			return Enrollment{}, fmt.Errorf("%w: an administrator withdrew it; ask for a new one", ErrCodeRevoked)
		default:
			return Enrollment{}, err
		}
	}
	return Enrollment{}, fmt.Errorf("enroll: no free device id after %d tries", attempts)
}

// Renew issues a new certificate to a device that presented its current,
// verified certificate (mTLS) and a CSR for its new key. Only a device that
// is not revoked may renew; its older certificates stay valid until they
// expire.
func (r *Registry) Renew(ctx context.Context, current *x509.Certificate, csr []byte) (Enrollment, error) {
	device := current.Subject.CommonName
	if r.IsRevoked(device, current.SerialNumber) {
		return Enrollment{}, fmt.Errorf("%w: device %q or its certificate is revoked; it must be enrolled again", ErrRevoked, device)
	}
	pub, err := parseCSR(csr)
	if err != nil {
		return Enrollment{}, err
	}
	now := r.now()
	leaf, err := r.ca.issueClient(pub, device, now, r.opts.CertLifetime)
	if err != nil {
		return Enrollment{}, err
	}
	switch err := r.db.AddDeviceCert(ctx, certRow(leaf, device, now)); {
	case errors.Is(err, store.ErrNotFound):
		return Enrollment{}, fmt.Errorf("%w: device %q is not registered; it must be enrolled again", ErrRevoked, device)
	case errors.Is(err, store.ErrDeviceRevoked):
		return Enrollment{}, fmt.Errorf("%w: device %q is revoked; it must be enrolled again", ErrRevoked, device)
	case err != nil:
		return Enrollment{}, err
	}
	r.log.Info("renewed device certificate", "device", device, "serial", serialText(leaf.SerialNumber),
		"previous", serialText(current.SerialNumber), "not_after", leaf.NotAfter)
	return r.enrollment(leaf), nil
}

func (r *Registry) enrollment(leaf *x509.Certificate) Enrollment {
	return Enrollment{
		DeviceID:    leaf.Subject.CommonName,
		Certificate: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw}),
		CA:          r.CAPEM(),
		Broker:      r.opts.BrokerAddress,
		NotAfter:    leaf.NotAfter,
	}
}

func certRow(leaf *x509.Certificate, device string, now time.Time) store.DeviceCert {
	return store.DeviceCert{
		Serial: serialText(leaf.SerialNumber), DeviceID: device,
		NotBefore: leaf.NotBefore.UnixMilli(), NotAfter: leaf.NotAfter.UnixMilli(), CreatedAt: now.UnixMilli(),
	}
}

// parseCSR reads a PEM certificate request, checks its signature and
// returns its ECDSA P-256 public key. The subject is ignored: the registry
// names the device.
func parseCSR(b []byte) (*ecdsa.PublicKey, error) {
	if len(b) > MaxCSRSize {
		return nil, fmt.Errorf("%w: csr has %d bytes, at most %d", ErrInvalid, len(b), MaxCSRSize)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, fmt.Errorf("%w: csr must be a PEM \"CERTIFICATE REQUEST\"", ErrInvalid)
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: csr does not parse: %v", ErrInvalid, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w: csr signature does not verify: %v", ErrInvalid, err)
	}
	pub, ok := csr.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return nil, fmt.Errorf("%w: csr key must be ECDSA P-256", ErrInvalid)
	}
	return pub, nil
}
