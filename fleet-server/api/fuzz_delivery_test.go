package api

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/uuid"
)

// Fuzz targets of the bodies of the delivery, erasure and bridge
// certificate endpoints (see fuzz_test.go for the invariants).

var deliveryFuzzSeeds = []string{
	``, `{}`, `null`, `[]`, `{"reason": "withdrawn"}`, `{"reason": 5}`, `{"reason": "a\u0001"}`,
	`{"record": "01a2258f-4f8a-7880-bddb-536b3479c72c"}`, `{"reference": "PA-2026-1"}`, `{"record": "x", "reference": "y"}`,
	`{"reference": "  "}`, `{"office": "amt-a", "csr": "-----BEGIN CERTIFICATE REQUEST-----\nAA==\n-----END CERTIFICATE REQUEST-----\n"}`,
	`{"office": "", "csr": ""}`, `{"office": "amt-a", "csr": "x", "key": "secret"}`,
}

func FuzzDecodeDiscard(f *testing.F) {
	for _, s := range deliveryFuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := decodeDiscard(b)
		if err != nil {
			checkDecodeError(t, err)
			return
		}
		checkAccepted(t, "reason", v.Reason, maxReasonLen)
		roundTrip(t, v, decodeDiscard)
	})
}

func FuzzDecodeErase(f *testing.F) {
	for _, s := range deliveryFuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := decodeErase(b)
		if err != nil {
			checkDecodeError(t, err)
			return
		}
		if (v.Record == uuid.Nil) == (v.Reference == "") {
			t.Fatalf("accepted %+v: not exactly one of record and reference", v)
		}
		if v.Reference != "" {
			checkAccepted(t, "reference", v.Reference, maxReasonLen)
		}
		body := map[string]string{"reference": v.Reference}
		if v.Record != uuid.Nil {
			body = map[string]string{"record": v.Record.String()}
		}
		again, _ := json.Marshal(body)
		if w, err := decodeErase(again); err != nil || w != v {
			t.Fatalf("round trip of %+v: %+v %v", v, w, err)
		}
	})
}

func FuzzDecodeIssueBridgeCert(f *testing.F) {
	for _, s := range deliveryFuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := decodeIssueBridgeCert(b)
		if err != nil {
			checkDecodeError(t, err)
			return
		}
		checkAccepted(t, "office", v.Office, maxNameLen)
		if v.Office == "" || !strings.Contains(v.CSR, "CERTIFICATE REQUEST") {
			t.Fatalf("accepted %+v", v)
		}
		roundTrip(t, v, decodeIssueBridgeCert)
	})
}
