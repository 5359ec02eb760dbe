package shift

import "testing"

// BenchmarkCheckPIN measures one PIN check with DefaultParams: what a login
// costs the device, and every guess an attacker.
func BenchmarkCheckPIN(b *testing.B) {
	h, err := HashPIN("482913", DefaultParams)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if ok, err := CheckPIN(h, "482913"); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}
