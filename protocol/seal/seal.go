// Package seal seals personal data on the device for the office that
// receives it, and opens it in that office's bridge. It uses age with X25519
// keys: only the office's private key opens what a device sealed, so the
// fleet server in between routes and stores opaque bytes.
//
// Offices name their keys. A device seals for the key its twin names as the
// office's current one and records the key id with the record; the bridge
// keeps every key it has not retired, so that records sealed before a
// rotation still open.
//
// This is the one package under protocol that imports a crypto library.
package seal

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"filippo.io/age"
)

// MaxPlaintext bounds what one Seal or Open handles (the largest blob).
const MaxPlaintext = 64 << 20

var (
	// ErrUnknownKey: the keyring has no key of that id.
	ErrUnknownKey = errors.New("unknown office key")
	// ErrRetired: the key was retired by its office and opens nothing.
	ErrRetired = errors.New("office key retired")
	// ErrNotOpenable: the data is not sealed for this key, or is damaged.
	ErrNotOpenable = errors.New("cannot open sealed data")
)

// Recipient is an office's public key, as devices receive it in the twin.
type Recipient struct {
	Office string `json:"office"`
	KeyID  string `json:"key_id"`
	// PublicKey is the age X25519 recipient, "age1…".
	PublicKey string `json:"public_key"`
}

// Validate checks that the recipient is complete and its key parses.
func (r Recipient) Validate() error {
	if r.Office == "" || r.KeyID == "" {
		return errors.New("office key: office and key id must be set")
	}
	if _, err := age.ParseX25519Recipient(r.PublicKey); err != nil {
		return fmt.Errorf("office key %s/%s: %w", r.Office, r.KeyID, err)
	}
	return nil
}

// Seal encrypts plaintext for the recipient.
func Seal(r Recipient, plaintext []byte) ([]byte, error) {
	if len(plaintext) > MaxPlaintext {
		return nil, fmt.Errorf("seal: %d bytes, at most %d", len(plaintext), MaxPlaintext)
	}
	rcpt, err := age.ParseX25519Recipient(r.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("seal for office key %s/%s: %w", r.Office, r.KeyID, err)
	}
	var out bytes.Buffer
	out.Grow(len(plaintext) + len(plaintext)/(64<<10)*16 + 256)
	w, err := age.Encrypt(&out, rcpt)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	if _, err := w.Write(plaintext); err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return out.Bytes(), nil
}

// GenerateKey makes a new key pair for an office. The secret ("AGE-SECRET-
// KEY-1…") belongs only in that office's bridge.
func GenerateKey(office, keyID string) (Recipient, string, error) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return Recipient{}, "", fmt.Errorf("generate office key: %w", err)
	}
	return Recipient{Office: office, KeyID: keyID, PublicKey: id.Recipient().String()}, id.String(), nil
}

// Keyring holds one office's private keys by id. It is not safe for
// concurrent modification; build it, then share it read-only.
type Keyring struct {
	office  string
	keys    map[string]*age.X25519Identity
	retired map[string]bool
}

// NewKeyring returns an empty keyring for an office.
func NewKeyring(office string) *Keyring {
	return &Keyring{office: office, keys: map[string]*age.X25519Identity{}, retired: map[string]bool{}}
}

// Add adds a private key ("AGE-SECRET-KEY-1…") under keyID.
func (k *Keyring) Add(keyID, secret string) error {
	id, err := age.ParseX25519Identity(strings.TrimSpace(secret))
	if err != nil {
		return fmt.Errorf("office key %s/%s: %w", k.office, keyID, err)
	}
	k.keys[keyID] = id
	return nil
}

// Retire marks a key as retired: Open refuses it from now on.
func (k *Keyring) Retire(keyID string) { k.retired[keyID] = true }

// Recipient returns the public half of a key in the ring.
func (k *Keyring) Recipient(keyID string) (Recipient, error) {
	id, ok := k.keys[keyID]
	if !ok {
		return Recipient{}, fmt.Errorf("%w %s/%s", ErrUnknownKey, k.office, keyID)
	}
	return Recipient{Office: k.office, KeyID: keyID, PublicKey: id.Recipient().String()}, nil
}

// Open decrypts data sealed for the key keyID.
func (k *Keyring) Open(keyID string, sealed []byte) ([]byte, error) {
	if k.retired[keyID] {
		return nil, fmt.Errorf("%w: %s/%s", ErrRetired, k.office, keyID)
	}
	id, ok := k.keys[keyID]
	if !ok {
		return nil, fmt.Errorf("%w %s/%s", ErrUnknownKey, k.office, keyID)
	}
	r, err := age.Decrypt(bytes.NewReader(sealed), id)
	if err != nil {
		return nil, fmt.Errorf("%w with key %s/%s: %v", ErrNotOpenable, k.office, keyID, err)
	}
	b, err := io.ReadAll(io.LimitReader(r, MaxPlaintext+1))
	if err != nil {
		return nil, fmt.Errorf("%w with key %s/%s: %v", ErrNotOpenable, k.office, keyID, err)
	}
	if len(b) > MaxPlaintext {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrNotOpenable, MaxPlaintext)
	}
	return b, nil
}
