// Package artifact is the contract of a software update: a binary and its
// manifest (what it is, for which app and platform, its size and SHA-256,
// the oldest version it may replace), signed with ed25519.
//
// The fleet server stores and serves artifacts (fleet-server/rollout); the
// devices verify them before they install anything (agent/update); koggectl
// makes keys and signs. They meet here, as they meet in protocol for the
// MQTT messages. The package does no I/O beyond the readers it is given.
//
// # Wire form
//
// A signed manifest is a JSON object:
//
//	{"manifest": "<base64 of the manifest's JSON bytes>",
//	 "signatures": [{"key": "<key id>", "sig": "<base64 ed25519 signature>"}]}
//
// The signature covers SignaturePrefix followed by the manifest bytes
// exactly as they travel, so that no canonical JSON is needed. A key id is
// the first 8 bytes of the SHA-256 of the raw 32-byte public key, in hex
// ([KeyID]). Several signatures allow a key to be rotated: a verifier
// accepts the manifest when one signature of a key it trusts is valid.
package artifact

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
	"time"
)

// Format is the manifest format this package writes and reads.
const Format = 1

// SignaturePrefix separates artifact signatures from any other use of the
// same key.
const SignaturePrefix = "kogge-artifact-manifest-v1\x00"

// Limits.
const (
	// MaxSignedSize bounds a signed manifest.
	MaxSignedSize = 64 << 10
	// MaxManifestSize bounds the manifest inside it.
	MaxManifestSize = 32 << 10
	// MaxSignatures bounds the signatures of one manifest.
	MaxSignatures = 8
	// MaxSize bounds an artifact's binary (4 GiB).
	MaxSize = 4 << 30
	// MaxApps bounds the apps one artifact targets.
	MaxApps = 8
	// maxNameLen bounds names, apps and platforms.
	maxNameLen = 64
	// maxNotesLen bounds the release notes.
	maxNotesLen = 4096
)

// Errors a caller acts on. Every error of this package wraps one of them.
var (
	// ErrMalformed: the bytes are not a signed manifest of this format.
	ErrMalformed = errors.New("malformed artifact manifest")
	// ErrUnsigned: the manifest carries no signature.
	ErrUnsigned = errors.New("artifact manifest is not signed")
	// ErrUnknownKey: no signature is by a key the verifier trusts.
	ErrUnknownKey = errors.New("artifact manifest is not signed by a trusted key")
	// ErrSignature: a signature by a trusted key does not verify: the
	// manifest was changed after it was signed.
	ErrSignature = errors.New("artifact manifest signature is wrong")
	// ErrPlatform: the artifact is for another platform (GOOS/GOARCH).
	ErrPlatform = errors.New("artifact is for another platform")
	// ErrApp: the artifact is for other apps.
	ErrApp = errors.New("artifact is for another app")
	// ErrDowngrade: the artifact is older than the running version and
	// no rollback to it was allowed.
	ErrDowngrade = errors.New("artifact is older than the running version")
	// ErrCurrent: the artifact is the running version.
	ErrCurrent = errors.New("artifact is the running version")
	// ErrMinVersion: the running version is older than the artifact's
	// minimum prior version.
	ErrMinVersion = errors.New("running version is older than the artifact's minimum prior version")
	// ErrMismatch: the binary's size or SHA-256 is not the manifest's:
	// it was damaged or tampered with.
	ErrMismatch = errors.New("artifact binary does not match its manifest")
)

// Manifest describes one artifact.
type Manifest struct {
	Format int `json:"format"`
	// Name is the product, e.g. kogge-kiosk (a-z, 0-9, '.', '_', '-').
	Name string `json:"name"`
	// Version is the version the binary reports (see ParseVersion).
	Version string `json:"version"`
	// Apps are the apps the binary is, e.g. kiosk or mobile-agent.
	Apps []string `json:"apps"`
	// Platform is GOOS/GOARCH, e.g. linux/amd64.
	Platform string `json:"platform"`
	// Size is the binary's size in bytes.
	Size int64 `json:"size"`
	// SHA256 is the binary's SHA-256 in lower-case hex.
	SHA256 string `json:"sha256"`
	// MinVersion, when set, is the oldest running version the artifact
	// may replace (a migration it relies on came in then).
	MinVersion string `json:"min_version,omitempty"`
	// Created is when the manifest was made.
	Created time.Time `json:"created"`
	// Notes are release notes for admins.
	Notes string `json:"notes,omitempty"`
}

// Validate checks the manifest's fields.
func (m Manifest) Validate() error {
	var errs []string
	add := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	if m.Format != Format {
		add("format %d: this build reads format %d", m.Format, Format)
	}
	if !validName(m.Name, true) {
		add("name %q: 1 to %d of a-z, 0-9, '.', '_', '-'", m.Name, maxNameLen)
	}
	if _, err := ParseVersion(m.Version); err != nil {
		add("version: %v", err)
	}
	if len(m.Apps) == 0 || len(m.Apps) > MaxApps {
		add("apps: 1 to %d, got %d", MaxApps, len(m.Apps))
	}
	for _, a := range m.Apps {
		if !validName(a, false) {
			add("app %q: 1 to %d of a-z, 0-9, '-'", a, maxNameLen)
		}
	}
	if err := ValidatePlatform(m.Platform); err != nil {
		add("%v", err)
	}
	if m.Size <= 0 || m.Size > MaxSize {
		add("size %d: 1 to %d bytes", m.Size, int64(MaxSize))
	}
	if b, err := hex.DecodeString(m.SHA256); err != nil || len(b) != sha256.Size || strings.ToLower(m.SHA256) != m.SHA256 {
		add("sha256 %q: 64 lower-case hex digits", clip(m.SHA256))
	}
	if m.MinVersion != "" {
		if _, err := ParseVersion(m.MinVersion); err != nil {
			add("min_version: %v", err)
		}
	}
	if m.Created.IsZero() {
		add("created: not set")
	}
	if len(m.Notes) > maxNotesLen {
		add("notes: %d bytes, at most %d", len(m.Notes), maxNotesLen)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %s", ErrMalformed, strings.Join(errs, "; "))
	}
	return nil
}

// ValidatePlatform checks a GOOS/GOARCH pair such as linux/arm64.
func ValidatePlatform(p string) error {
	goos, goarch, ok := strings.Cut(p, "/")
	if !ok || !validName(goos, false) || !validName(goarch, false) || strings.Contains(goarch, "/") {
		return fmt.Errorf("platform %q: want GOOS/GOARCH, e.g. linux/amd64", clip(p))
	}
	return nil
}

func validName(s string, dots bool) bool {
	if s == "" || len(s) > maxNameLen {
		return false
	}
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-':
		case dots && (c == '.' || c == '_'):
		default:
			return false
		}
	}
	return true
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:77] + "..."
	}
	return s
}

// Signature is one signature of a manifest.
type Signature struct {
	Key string `json:"key"`
	Sig []byte `json:"sig"`
}

// Signed is a manifest with its signatures, as it travels.
type Signed struct {
	// Raw is the manifest's JSON, exactly as signed.
	Raw        []byte
	Signatures []Signature
	// Manifest is Raw decoded and validated.
	Manifest Manifest
}

type signedJSON struct {
	Manifest   []byte      `json:"manifest"`
	Signatures []Signature `json:"signatures"`
}

// Encode returns the signed manifest's wire form.
func (s *Signed) Encode() ([]byte, error) {
	if len(s.Raw) == 0 {
		return nil, fmt.Errorf("%w: no manifest", ErrMalformed)
	}
	return json.Marshal(signedJSON{Manifest: s.Raw, Signatures: s.Signatures})
}

// Sign makes the manifest's wire form signed by key. The manifest is
// validated first.
func Sign(m Manifest, key ed25519.PrivateKey) ([]byte, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, errors.New("sign artifact manifest: not an ed25519 private key")
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode artifact manifest: %w", err)
	}
	s := &Signed{Raw: raw}
	s.AddSignature(key)
	return s.Encode()
}

// AddSignature signs the manifest with one more key.
func (s *Signed) AddSignature(key ed25519.PrivateKey) {
	pub := key.Public().(ed25519.PublicKey)
	s.Signatures = append(s.Signatures, Signature{Key: KeyID(pub), Sig: ed25519.Sign(key, signedMessage(s.Raw))})
}

func signedMessage(raw []byte) []byte {
	return append([]byte(SignaturePrefix), raw...)
}

// Decode reads a signed manifest and validates the manifest, without
// checking any signature (see Verify). A manifest without signatures is
// ErrUnsigned; anything that is not a signed manifest is ErrMalformed.
func Decode(b []byte) (*Signed, error) {
	if len(b) > MaxSignedSize {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrMalformed, len(b), MaxSignedSize)
	}
	var v signedJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		// A bare manifest is the most likely mistake: say so.
		var m Manifest
		if json.Unmarshal(b, &m) == nil && m.Format != 0 && m.SHA256 != "" {
			return nil, fmt.Errorf("%w: this is a bare manifest; sign it with koggectl artifact sign", ErrUnsigned)
		}
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: data after the signed manifest", ErrMalformed)
	}
	if len(v.Manifest) == 0 {
		return nil, fmt.Errorf("%w: no manifest", ErrMalformed)
	}
	if len(v.Manifest) > MaxManifestSize {
		return nil, fmt.Errorf("%w: manifest of %d bytes, at most %d", ErrMalformed, len(v.Manifest), MaxManifestSize)
	}
	if len(v.Signatures) > MaxSignatures {
		return nil, fmt.Errorf("%w: %d signatures, at most %d", ErrMalformed, len(v.Signatures), MaxSignatures)
	}
	for i, s := range v.Signatures {
		if len(s.Key) != 16 || len(s.Sig) != ed25519.SignatureSize {
			return nil, fmt.Errorf("%w: signature %d: want a 16-digit key id and a %d-byte signature", ErrMalformed, i, ed25519.SignatureSize)
		}
	}
	var m Manifest
	mdec := json.NewDecoder(bytes.NewReader(v.Manifest))
	if err := mdec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: manifest: %v", ErrMalformed, err)
	}
	if mdec.More() {
		return nil, fmt.Errorf("%w: data after the manifest", ErrMalformed)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	s := &Signed{Raw: v.Manifest, Signatures: v.Signatures, Manifest: m}
	if len(s.Signatures) == 0 {
		return s, fmt.Errorf("%w: %s %s has no signature", ErrUnsigned, m.Name, m.Version)
	}
	return s, nil
}

// Keyring holds the public keys a verifier trusts, by key id.
type Keyring map[string]ed25519.PublicKey

// NewKeyring returns a keyring of keys.
func NewKeyring(keys ...ed25519.PublicKey) Keyring {
	k := Keyring{}
	for _, p := range keys {
		k.Add(p)
	}
	return k
}

// Add trusts one more key.
func (k Keyring) Add(pub ed25519.PublicKey) { k[KeyID(pub)] = pub }

// IDs lists the key ids.
func (k Keyring) IDs() []string {
	ids := make([]string, 0, len(k))
	for id := range k {
		ids = append(ids, id)
	}
	return ids
}

// Verify decodes a signed manifest and checks its signatures against the
// keyring: one valid signature of a trusted key is enough; a signature of
// a trusted key that does not verify is ErrSignature even when another
// one would.
func Verify(b []byte, keys Keyring) (*Signed, error) {
	s, err := Decode(b)
	if err != nil {
		return nil, err
	}
	if err := s.Verify(keys); err != nil {
		return nil, err
	}
	return s, nil
}

// Verify checks the signatures against the keyring (see the function
// Verify).
func (s *Signed) Verify(keys Keyring) error {
	if len(s.Signatures) == 0 {
		return fmt.Errorf("%w: %s %s has no signature", ErrUnsigned, s.Manifest.Name, s.Manifest.Version)
	}
	msg := signedMessage(s.Raw)
	good := false
	for _, sig := range s.Signatures {
		pub, ok := keys[sig.Key]
		if !ok {
			continue
		}
		if !ed25519.Verify(pub, msg, sig.Sig) {
			return fmt.Errorf("%w: the signature of key %s does not match %s %s: it was changed after signing",
				ErrSignature, sig.Key, s.Manifest.Name, s.Manifest.Version)
		}
		good = true
	}
	if !good {
		keysUsed := make([]string, len(s.Signatures))
		for i, sig := range s.Signatures {
			keysUsed[i] = sig.Key
		}
		return fmt.Errorf("%w: %s %s is signed by key %s; trust the key or sign with a trusted one",
			ErrUnknownKey, s.Manifest.Name, s.Manifest.Version, strings.Join(keysUsed, ", "))
	}
	return nil
}

// KeyID names a public key: the first 8 bytes of the SHA-256 of the raw
// key, in hex.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// Target is what a device is: the artifact must fit it.
type Target struct {
	// App is the device's app, e.g. kiosk.
	App string
	// Platform is its GOOS/GOARCH.
	Platform string
	// Running is the version it runs. One that does not parse (a
	// development build) is treated as older than every version.
	Running string
	// AllowDowngrade names a version older than Running that may be
	// installed anyway: an admin's explicit rollback to it.
	AllowDowngrade string
}

// Check says whether the manifest may be installed on the target: the
// platform and app fit, the version is newer than the running one (or the
// allowed rollback version), and the running version is not older than the
// manifest's minimum prior version.
func (m Manifest) Check(t Target) error {
	if m.Platform != t.Platform {
		return fmt.Errorf("%w: %s %s is for %s, this device is %s", ErrPlatform, m.Name, m.Version, m.Platform, t.Platform)
	}
	if t.App != "" {
		found := false
		for _, a := range m.Apps {
			found = found || a == t.App
		}
		if !found {
			return fmt.Errorf("%w: %s %s is for %s, this device runs %s", ErrApp, m.Name, m.Version, strings.Join(m.Apps, ", "), t.App)
		}
	}
	v, err := ParseVersion(m.Version)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	running, err := ParseVersion(t.Running)
	if err != nil {
		return nil // a development build takes any version
	}
	switch c := v.Compare(running); {
	case c == 0:
		return fmt.Errorf("%w: %s", ErrCurrent, m.Version)
	case c < 0 && t.AllowDowngrade != m.Version:
		return fmt.Errorf("%w: %s is older than %s, and no rollback to it was allowed", ErrDowngrade, m.Version, t.Running)
	case c < 0:
		return nil // an explicit rollback skips the minimum prior version
	}
	if m.MinVersion != "" {
		min, err := ParseVersion(m.MinVersion)
		if err == nil && running.Compare(min) < 0 {
			return fmt.Errorf("%w: %s needs at least %s, this device runs %s; install %s first",
				ErrMinVersion, m.Version, m.MinVersion, t.Running, m.MinVersion)
		}
	}
	return nil
}

// Digest checks a binary against the manifest while it is read.
type Digest struct {
	m Manifest
	h hash.Hash
	n int64
}

// NewDigest returns a Digest for the manifest's binary.
func (m Manifest) NewDigest() *Digest { return &Digest{m: m, h: sha256.New()} }

// Write adds bytes of the binary.
func (d *Digest) Write(p []byte) (int, error) {
	d.n += int64(len(p))
	return d.h.Write(p)
}

// Check reports ErrMismatch unless the bytes written are the manifest's
// binary.
func (d *Digest) Check() error {
	if d.n != d.m.Size {
		return fmt.Errorf("%w: %s %s has %d bytes, the manifest says %d", ErrMismatch, d.m.Name, d.m.Version, d.n, d.m.Size)
	}
	if got := hex.EncodeToString(d.h.Sum(nil)); got != d.m.SHA256 {
		return fmt.Errorf("%w: %s %s has SHA-256 %s, the manifest says %s", ErrMismatch, d.m.Name, d.m.Version, got, d.m.SHA256)
	}
	return nil
}

// CheckBinary reads r to its end and reports ErrMismatch unless it is the
// manifest's binary. It reads at most one byte more than the manifest's
// size.
func (m Manifest) CheckBinary(r io.Reader) error {
	d := m.NewDigest()
	if _, err := io.Copy(d, io.LimitReader(r, m.Size+1)); err != nil {
		return fmt.Errorf("read %s %s: %w", m.Name, m.Version, err)
	}
	return d.Check()
}

// Describe returns a manifest for a binary: its size and SHA-256 read from
// r, the other fields from m.
func Describe(m Manifest, r io.Reader) (Manifest, error) {
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(r, MaxSize+1))
	if err != nil {
		return Manifest{}, fmt.Errorf("read the binary: %w", err)
	}
	m.Size, m.SHA256 = n, hex.EncodeToString(h.Sum(nil))
	if m.Format == 0 {
		m.Format = Format
	}
	return m, m.Validate()
}
