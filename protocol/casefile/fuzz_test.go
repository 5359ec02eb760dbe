package casefile_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/kogge-fleet/kogge/protocol"
	"github.com/kogge-fleet/kogge/protocol/casefile"
)

// FuzzDecode feeds arbitrary bytes to Decode for every kind. It must never
// panic, must fail with a *protocol.Error, and what it accepts must
// re-encode to a fixed point.
func FuzzDecode(f *testing.F) {
	for i, kind := range casefile.Kinds() {
		b, err := os.ReadFile(filepath.Join("testdata", kind+".cbor"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(i), b)
	}
	f.Add(uint8(0), []byte{0xa0})
	f.Add(uint8(1), []byte{0xa1, 0x01, 0x01})
	f.Fuzz(func(t *testing.T, k uint8, b []byte) {
		kinds := casefile.Kinds()
		kind := kinds[int(k)%len(kinds)]
		d, err := casefile.Decode(kind, b)
		if err != nil {
			var pe *protocol.Error
			if !errors.As(err, &pe) {
				t.Fatalf("error %T %v is not a *protocol.Error", err, err)
			}
			return
		}
		once, err := casefile.Encode(d)
		if err != nil {
			t.Fatalf("decoded document does not re-encode: %v", err)
		}
		d2, err := casefile.Decode(kind, once)
		if err != nil {
			t.Fatalf("re-encoded document does not decode: %v", err)
		}
		twice, err := casefile.Encode(d2)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(once, twice) {
			t.Fatalf("encoding is not stable:\n%x\n%x", once, twice)
		}
	})
}
