package registry

import (
	"bytes"
	"crypto/elliptic"
	"encoding/json"
	"errors"
	"testing"
)

func fuzzSeeds(f *testing.F) {
	_, csr := csrPEM(f, elliptic.P256())
	good, _ := json.Marshal(enrollRequestJSON{
		Code: "7KQ2-M9XD-4HTN-B3WE", CSR: string(csr), DeviceID: "kiosk-1",
		Inventory: Inventory{Model: "K1", Peripherals: []Peripheral{{Name: "cam0", Kind: "camera"}}},
	})
	for _, s := range [][]byte{
		good, []byte(`{}`), []byte(`{"csr":"x"}`), []byte(`{"code":1}`), []byte(`{"a":1}`),
		[]byte(`{"code":"x"} {}`), []byte(`[]`), []byte(`null`), []byte(``), []byte(`{"inventory":{"peripherals":[{}]}}`),
	} {
		f.Add(s)
	}
}

// decoded checks the contract of a decoder: an error wraps ErrInvalid or is
// errTooLarge, and nothing larger than MaxRequestBody is accepted.
func decoded(t *testing.T, b []byte, err error) bool {
	if err != nil {
		if !errors.Is(err, ErrInvalid) && !errors.Is(err, errTooLarge) {
			t.Fatalf("error wraps no sentinel: %v", err)
		}
		return false
	}
	if len(b) > MaxRequestBody {
		t.Fatalf("accepted a body of %d bytes", len(b))
	}
	return true
}

func FuzzDecodeEnrollRequest(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := decodeEnrollRequest(bytes.NewReader(b))
		if !decoded(t, b, err) {
			return
		}
		// The checks Enroll runs on decoded input must not panic, and
		// refuse only with ErrInvalid.
		for _, err := range []error{
			func() error { _, err := normalizeCode(req.Code); return err }(),
			func() error { _, err := parseCSR(req.CSR); return err }(),
			req.Inventory.Validate(),
		} {
			if err != nil && !errors.Is(err, ErrInvalid) {
				t.Fatalf("check refused without ErrInvalid: %v", err)
			}
		}
	})
}

func FuzzDecodeRenewRequest(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		csr, err := decodeRenewRequest(bytes.NewReader(b))
		if !decoded(t, b, err) {
			return
		}
		if _, err := parseCSR(csr); err != nil && !errors.Is(err, ErrInvalid) {
			t.Fatalf("parseCSR refused without ErrInvalid: %v", err)
		}
	})
}
