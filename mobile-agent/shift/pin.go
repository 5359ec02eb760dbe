package shift

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Params are the argon2id cost parameters of a PIN hash.
type Params struct {
	// Memory is the memory cost in KiB.
	Memory uint32
	// Time is the number of passes.
	Time uint32
	// Threads is the degree of parallelism.
	Threads uint8
}

// DefaultParams are the parameters HashPIN uses unless told otherwise:
// argon2id with 19 MiB, 2 passes and 1 thread, the OWASP minimum for
// argon2id. It takes some 50 ms on a handheld-class CPU, so a PIN guess
// costs the attacker as much, on top of the lock-out.
var DefaultParams = Params{Memory: 19 * 1024, Time: 2, Threads: 1}

// Bounds of what a configured hash may ask for, so that a bad
// configuration cannot make a login take minutes or exhaust the memory.
const (
	maxMemory  = 256 * 1024 // KiB
	maxTime    = 16
	maxThreads = 16
	saltLen    = 16
	keyLen     = 32
)

// PIN rules: digits only, MinPINLength to MaxPINLength of them.
const (
	MinPINLength = 4
	MaxPINLength = 12
)

// ErrBadHash means a configured PIN hash cannot be read.
var ErrBadHash = errors.New("not an argon2id PIN hash")

// CheckPINFormat checks that pin is MinPINLength to MaxPINLength digits.
func CheckPINFormat(pin string) error {
	if len(pin) < MinPINLength || len(pin) > MaxPINLength {
		return fmt.Errorf("a PIN has %d to %d digits, this one %d", MinPINLength, MaxPINLength, len(pin))
	}
	for i := 0; i < len(pin); i++ {
		if pin[i] < '0' || pin[i] > '9' {
			return errors.New("a PIN has digits only")
		}
	}
	return nil
}

// HashPIN returns the argon2id hash of pin with a fresh random salt, in the
// PHC string format the configuration holds:
//
//	$argon2id$v=19$m=19456,t=2,p=1$<salt, base64 without padding>$<hash>
//
// It is for provisioning: the device stores and compares only hashes.
func HashPIN(pin string, p Params) (string, error) {
	if err := CheckPINFormat(pin); err != nil {
		return "", fmt.Errorf("hash PIN: %w", err)
	}
	if err := p.check(); err != nil {
		return "", fmt.Errorf("hash PIN: %w", err)
	}
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("hash PIN: salt: %w", err)
	}
	key := argon2.IDKey([]byte(pin), salt, p.Time, p.Memory, p.Threads, keyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.Memory, p.Time, p.Threads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// CheckPIN reports whether pin matches the hash. It compares in constant
// time. An unreadable hash or one with parameters out of bounds is an
// error wrapping ErrBadHash.
func CheckPIN(hash, pin string) (bool, error) {
	h, err := parseHash(hash)
	if err != nil {
		return false, err
	}
	got := argon2.IDKey([]byte(pin), h.salt, h.p.Time, h.p.Memory, h.p.Threads, uint32(len(h.key)))
	return subtle.ConstantTimeCompare(got, h.key) == 1, nil
}

func (p Params) check() error {
	switch {
	case p.Memory < 8*uint32(p.Threads) || p.Memory > maxMemory:
		return fmt.Errorf("argon2id memory %d KiB: want 8×threads to %d KiB", p.Memory, maxMemory)
	case p.Time < 1 || p.Time > maxTime:
		return fmt.Errorf("argon2id time %d: want 1 to %d", p.Time, maxTime)
	case p.Threads < 1 || p.Threads > maxThreads:
		return fmt.Errorf("argon2id threads %d: want 1 to %d", p.Threads, maxThreads)
	}
	return nil
}

type pinHash struct {
	p         Params
	salt, key []byte
}

func parseHash(s string) (pinHash, error) {
	bad := func(why string) (pinHash, error) {
		return pinHash{}, fmt.Errorf("%w: %s; configure a hash made with shift.HashPIN", ErrBadHash, why)
	}
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return bad("want $argon2id$v=19$m=…,t=…,p=…$salt$hash")
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return bad("unsupported version " + parts[2])
	}
	var h pinHash
	for _, kv := range strings.Split(parts[3], ",") {
		k, v, ok := strings.Cut(kv, "=")
		n, err := strconv.ParseUint(v, 10, 32)
		if !ok || err != nil {
			return bad("parameter " + strconv.Quote(kv))
		}
		switch k {
		case "m":
			h.p.Memory = uint32(n)
		case "t":
			h.p.Time = uint32(n)
		case "p":
			if n > maxThreads {
				return bad("too many threads")
			}
			h.p.Threads = uint8(n)
		default:
			return bad("unknown parameter " + strconv.Quote(k))
		}
	}
	if err := h.p.check(); err != nil {
		return bad(err.Error())
	}
	var err error
	b64 := base64.RawStdEncoding
	if h.salt, err = b64.DecodeString(parts[4]); err != nil || len(h.salt) < 8 || len(h.salt) > 64 {
		return bad("salt must be 8 to 64 bytes in base64 without padding")
	}
	if h.key, err = b64.DecodeString(parts[5]); err != nil || len(h.key) < 16 || len(h.key) > 64 {
		return bad("hash must be 16 to 64 bytes in base64 without padding")
	}
	return h, nil
}
