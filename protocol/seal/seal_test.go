package seal

import (
	"bytes"
	"errors"
	"testing"
)

func TestSealOpen(t *testing.T) {
	r1, s1, err := GenerateKey("buergeramt-mitte", "2026-1")
	if err != nil {
		t.Fatal(err)
	}
	r2, s2, err := GenerateKey("buergeramt-mitte", "2026-2")
	if err != nil {
		t.Fatal(err)
	}
	if err := r1.Validate(); err != nil {
		t.Fatal(err)
	}
	ring := NewKeyring("buergeramt-mitte")
	if err := ring.Add("2026-1", s1); err != nil {
		t.Fatal(err)
	}
	if err := ring.Add("2026-2", s2); err != nil {
		t.Fatal(err)
	}
	plain := bytes.Repeat([]byte("Erika Mustermann, B-KG 1234 "), 5000)
	old, err := Seal(r1, plain)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(old, []byte("Mustermann")) {
		t.Fatal("sealed data contains the plaintext")
	}
	current, err := Seal(r2, plain)
	if err != nil {
		t.Fatal(err)
	}
	// Both keys open what was sealed for them: rotation keeps old records
	// openable.
	for id, sealed := range map[string][]byte{"2026-1": old, "2026-2": current} {
		got, err := ring.Open(id, sealed)
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("Open(%s) = %d bytes, %v", id, len(got), err)
		}
	}
	// The wrong key opens nothing.
	if _, err := ring.Open("2026-2", old); !errors.Is(err, ErrNotOpenable) {
		t.Errorf("Open with the wrong key = %v, want ErrNotOpenable", err)
	}
	// A retired key opens nothing; an unknown one neither.
	ring.Retire("2026-1")
	if _, err := ring.Open("2026-1", old); !errors.Is(err, ErrRetired) {
		t.Errorf("Open with a retired key = %v, want ErrRetired", err)
	}
	if _, err := ring.Open("nope", current); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("Open with an unknown key = %v, want ErrUnknownKey", err)
	}
	// A flipped byte is detected.
	damaged := bytes.Clone(current)
	damaged[len(damaged)-20] ^= 1
	if _, err := ring.Open("2026-2", damaged); !errors.Is(err, ErrNotOpenable) {
		t.Errorf("Open of damaged data = %v, want ErrNotOpenable", err)
	}
	pub, err := ring.Recipient("2026-2")
	if err != nil || pub != r2 {
		t.Errorf("Recipient = %+v, %v; want %+v", pub, err, r2)
	}
}

func TestRecipientValidate(t *testing.T) {
	for _, r := range []Recipient{
		{},
		{Office: "o", KeyID: "k", PublicKey: "age1notakey"},
		{Office: "o", PublicKey: "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"},
	} {
		if err := r.Validate(); err == nil {
			t.Errorf("Validate(%+v) accepted", r)
		}
	}
}

// FuzzOpen feeds arbitrary sealed data to Open: an error, never a panic.
func FuzzOpen(f *testing.F) {
	r, s, err := GenerateKey("o", "k")
	if err != nil {
		f.Fatal(err)
	}
	ring := NewKeyring("o")
	if err := ring.Add("k", s); err != nil {
		f.Fatal(err)
	}
	sealed, err := Seal(r, []byte("hello"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sealed)
	f.Add([]byte("age-encryption.org/v1\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := ring.Open("k", b)
		if err != nil {
			if !errors.Is(err, ErrNotOpenable) {
				t.Fatalf("error %v is not ErrNotOpenable", err)
			}
			return
		}
		// age authenticates header and payload: only the data we sealed
		// opens, and it yields what we sealed.
		if !bytes.Equal(b, sealed) || !bytes.Equal(got, []byte("hello")) {
			t.Fatalf("opened forged data: %q", got)
		}
	})
}
