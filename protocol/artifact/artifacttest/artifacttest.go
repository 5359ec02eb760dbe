// Package artifacttest helps tests that need artifact signing keys in
// files, as the settings that name trusted keys expect them.
package artifacttest

import (
	"crypto/ed25519"
	"os"
	"path/filepath"
	"testing"

	"github.com/kogge-fleet/kogge/protocol/artifact"
)

// KeyFile makes a fresh signing key and returns a file with its public
// key (see PublicKeyFile).
func KeyFile(t testing.TB) string {
	t.Helper()
	key, err := artifact.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return PublicKeyFile(t, key.Public().(ed25519.PublicKey))
}

// PublicKeyFile writes pub (PEM) into a new file of the test's temporary
// directory and returns its path.
func PublicKeyFile(t testing.TB, pub ed25519.PublicKey) string {
	t.Helper()
	b, err := artifact.MarshalPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "release.pub")
	if err := os.WriteFile(f, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}
