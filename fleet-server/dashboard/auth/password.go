// Package auth holds the dashboard's sign-in primitives: argon2id password
// hashes, TOTP second factors (RFC 6238), a rate limiter for sign-in
// attempts, OpenID Connect sign-in (authorization code flow with PKCE) and
// the roles with what each may do. It knows nothing of HTTP sessions or the
// store; fleet-server/dashboard puts the pieces together.
package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// Params are the argon2id cost parameters.
type Params struct {
	// Memory in KiB.
	Memory  uint32
	Time    uint32
	Threads uint8
}

// DefaultParams are OWASP's recommendation for argon2id (19 MiB, two
// passes, one thread): about 40 ms on one core of the target machine.
var DefaultParams = Params{Memory: 19 * 1024, Time: 2, Threads: 1}

// Validate checks the parameters.
func (p Params) Validate() error {
	if p.Memory < 1024 || p.Time < 1 || p.Threads < 1 {
		return fmt.Errorf("argon2id parameters m=%d t=%d p=%d: at least m=1024 (KiB), t=1, p=1", p.Memory, p.Time, p.Threads)
	}
	return nil
}

const (
	saltLen = 16
	keyLen  = 32
	// MinPasswordLen and MaxPasswordLen bound a password in characters.
	MinPasswordLen = 12
	MaxPasswordLen = 256
)

// ErrWeakPassword says why a new password is refused.
var ErrWeakPassword = errors.New("password refused")

// CheckPassword checks a new password: at least MinPasswordLen characters
// and at most MaxPasswordLen, not the user name.
func CheckPassword(password, user string) error {
	n := utf8.RuneCountInString(password)
	switch {
	case n < MinPasswordLen:
		return fmt.Errorf("%w: at least %d characters are needed", ErrWeakPassword, MinPasswordLen)
	case n > MaxPasswordLen:
		return fmt.Errorf("%w: at most %d characters", ErrWeakPassword, MaxPasswordLen)
	case user != "" && strings.EqualFold(password, user):
		return fmt.Errorf("%w: it must not be the user name", ErrWeakPassword)
	}
	return nil
}

// HashPassword returns the argon2id hash of password as a PHC string:
// $argon2id$v=19$m=MEMORY,t=TIME,p=THREADS$SALT$HASH.
func HashPassword(password string, p Params) (string, error) {
	if err := p.Validate(); err != nil {
		return "", err
	}
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, keyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

// ErrBadHash is returned for a stored hash that is not an argon2id PHC
// string this package can check.
var ErrBadHash = errors.New("not an argon2id password hash")

// maxParams bounds the parameters of a stored hash, so that a tampered
// hash cannot make a sign-in take the server's memory.
var maxParams = Params{Memory: 1 << 20, Time: 16, Threads: 16}

// ParseHash reads a PHC string.
func ParseHash(hash string) (p Params, salt, key []byte, err error) {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return Params{}, nil, nil, ErrBadHash
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return Params{}, nil, nil, fmt.Errorf("%w: version %q", ErrBadHash, parts[2])
	}
	for kv := range strings.SplitSeq(parts[3], ",") {
		k, v, ok := strings.Cut(kv, "=")
		n, perr := strconv.ParseUint(v, 10, 32)
		if !ok || perr != nil {
			return Params{}, nil, nil, fmt.Errorf("%w: parameter %q", ErrBadHash, kv)
		}
		switch k {
		case "m":
			p.Memory = uint32(n)
		case "t":
			p.Time = uint32(n)
		case "p":
			if n > 255 {
				return Params{}, nil, nil, fmt.Errorf("%w: parameter %q", ErrBadHash, kv)
			}
			p.Threads = uint8(n)
		default:
			return Params{}, nil, nil, fmt.Errorf("%w: parameter %q", ErrBadHash, kv)
		}
	}
	if err := p.Validate(); err != nil || p.Memory > maxParams.Memory || p.Time > maxParams.Time || p.Threads > maxParams.Threads {
		return Params{}, nil, nil, fmt.Errorf("%w: parameters out of range", ErrBadHash)
	}
	if salt, err = base64.RawStdEncoding.DecodeString(parts[4]); err != nil || len(salt) < 8 || len(salt) > 64 {
		return Params{}, nil, nil, fmt.Errorf("%w: salt", ErrBadHash)
	}
	if key, err = base64.RawStdEncoding.DecodeString(parts[5]); err != nil || len(key) < 16 || len(key) > 64 {
		return Params{}, nil, nil, fmt.Errorf("%w: hash", ErrBadHash)
	}
	return p, salt, key, nil
}

// VerifyPassword reports whether password matches hash, and whether the
// hash should be renewed because it was made with other parameters than
// want.
func VerifyPassword(hash, password string, want Params) (ok, rehash bool, err error) {
	p, salt, key, err := ParseHash(hash)
	if err != nil {
		return false, false, err
	}
	got := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, uint32(len(key)))
	if subtle.ConstantTimeCompare(got, key) != 1 {
		return false, false, nil
	}
	return true, p != want, nil
}

// DummyVerify spends the time of a password check, so that a sign-in with
// an unknown user name takes as long as one with a wrong password.
func DummyVerify(password string, p Params) {
	argon2.IDKey([]byte(password), make([]byte, saltLen), p.Time, p.Memory, p.Threads, keyLen)
}

// RandomPassword returns a random password of 26 characters (128 bits,
// base32: letters and digits 2–7).
func RandomPassword() string { return rand.Text() }

// RandomToken returns n random bytes, base64url-encoded.
func RandomToken(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
