package open311_test

import (
	"testing"

	"github.com/kogge-fleet/kogge/fleet-server/connectors/open311"
)

// FuzzParseAnswers feeds arbitrary answers to the GeoReport v2 parsers: no
// panics, and every id they accept is usable as a reference.
func FuzzParseAnswers(f *testing.F) {
	f.Add([]byte(`[{"service_request_id":"100001","service_notice":"danke"}]`))
	f.Add([]byte(`[{"token":"tok-1"}]`))
	f.Add([]byte(`[{"service_request_id":100001,"token":"t"}]`))
	f.Add([]byte(`[{"service_request_id":"1","status":"closed","status_notes":"fixed"},{"service_request_id":"2","status":"open"}]`))
	f.Add([]byte(`{"service_request_id":null}`))
	f.Add([]byte(`[{"code":403,"description":"invalid api_key"}]`))
	f.Add([]byte(`<html>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		check := func(what string, id open311.ID) {
			for _, r := range string(id) {
				if r <= 0x20 || r == '/' || r == '?' || r == '#' || r == '%' {
					t.Fatalf("%s accepted an id with %q: %q", what, r, id)
				}
			}
			if len(id) > 128 {
				t.Fatalf("%s accepted an id of %d bytes", what, len(id))
			}
		}
		if id, token, notice, err := open311.ParseCreated(b); err == nil {
			if (id == "") == (token == "") {
				t.Fatalf("ParseCreated gave id %q and token %q", id, token)
			}
			check("ParseCreated", id)
			check("ParseCreated", token)
			if len(notice) > 520 {
				t.Fatalf("notice of %d bytes", len(notice))
			}
		}
		if id, err := open311.ParseToken(b); err == nil {
			check("ParseToken", id)
		}
		if rs, err := open311.ParseRequests(b); err == nil {
			for _, r := range rs {
				if r.ID == "" {
					t.Fatal("ParseRequests accepted a request without id")
				}
				check("ParseRequests", r.ID)
			}
		}
		for _, e := range open311.ParseErrors(b) {
			if len(e.Description) > 520 {
				t.Fatalf("error description of %d bytes", len(e.Description))
			}
		}
	})
}
