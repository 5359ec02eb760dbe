package shift

import (
	"testing"
)

// FuzzParseHash feeds arbitrary configured PIN hashes to the parser: it
// must refuse garbage with an error, never panic, and never accept costs
// out of bounds (a configuration could otherwise make a login take
// minutes).
func FuzzParseHash(f *testing.F) {
	good, err := HashPIN("482913", cheap)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{good, "", "$argon2id$", "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=4294967295,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", "$2a$10$x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, err := parseHash(s)
		if err != nil {
			return
		}
		if h.p.Memory > maxMemory || h.p.Time > maxTime || h.p.Threads > maxThreads || h.p.Threads == 0 ||
			len(h.salt) < 8 || len(h.key) < 16 {
			t.Fatalf("accepted %q with %+v", s, h.p)
		}
	})
}
