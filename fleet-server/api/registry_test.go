package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kogge-fleet/kogge/fleet-server/registry"
)

func decodeInto[T any](t *testing.T, body []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("response %q: %v", body, err)
	}
	return v
}

func TestGroups(t *testing.T) {
	e := newTestEnv(t, nil)
	steps := []struct {
		method, path, body string
		want               int
		in                 string // in the response body
	}{
		{"GET", "/api/v1/groups", "", 200, `"groups":[]`},
		{"POST", "/api/v1/groups", `{"name": "Bürgeramt Mitte kiosks"}`, 201, `"id":"buergeramt-mitte-kiosks"`},
		{"POST", "/api/v1/groups", `{"id": "wardens", "name": "Ordnungsdienst handhelds"}`, 201, `"devices":0`},
		{"POST", "/api/v1/groups", `{"id": "wardens", "name": "other"}`, 409, "exists"},
		{"POST", "/api/v1/groups", `{"id": "Bad ID", "name": "x"}`, 400, "group id"},
		{"POST", "/api/v1/groups", `{"name": ""}`, 400, "needs a name"},
		{"POST", "/api/v1/groups", `{"name": "x", "colour": "red"}`, 400, `unknown field "colour"`},
		{"GET", "/api/v1/groups", "", 200, `"name":"Bürgeramt Mitte kiosks"`},
		{"GET", "/api/v1/groups/wardens", "", 200, `"name":"Ordnungsdienst handhelds"`},
		{"GET", "/api/v1/groups/nope", "", 404, `no group "nope"`},
		{"PATCH", "/api/v1/groups/wardens", `{"name": "Wardens"}`, 200, `"name":"Wardens"`},
		{"PATCH", "/api/v1/groups/wardens", `{"name": "Bürgeramt Mitte kiosks"}`, 409, "named"},
		{"PATCH", "/api/v1/groups/nope", `{"name": "y"}`, 404, "no group"},
		{"DELETE", "/api/v1/groups/wardens", "", 204, ""},
		{"DELETE", "/api/v1/groups/wardens", "", 404, "no group"},
		{"PUT", "/api/v1/groups/wardens", `{}`, 405, "not allowed"},
	}
	for i, s := range steps {
		t.Run(fmt.Sprintf("%d %s %s", i, s.method, s.path), func(t *testing.T) {
			rec := do(t, e.h, s.method, s.path, testToken, s.body)
			if rec.Code != s.want {
				t.Fatalf("status %d, want %d: %s", rec.Code, s.want, rec.Body.String())
			}
			if s.want >= 400 {
				if msg := errorBody(t, rec); !strings.Contains(msg, s.in) {
					t.Errorf("error %q lacks %q", msg, s.in)
				}
			} else if !strings.Contains(rec.Body.String(), s.in) {
				t.Errorf("body %s lacks %s", rec.Body.String(), s.in)
			}
		})
	}
}

func TestEnrollCodes(t *testing.T) {
	e := newTestEnv(t, nil)
	do(t, e.h, "POST", "/api/v1/groups", testToken, `{"id": "kiosks", "name": "Kiosks"}`)

	rec := do(t, e.h, "POST", "/api/v1/enroll-codes", testToken, `{"group": "kiosks", "ttl": "2h", "note": "kiosk 3"}`)
	if rec.Code != http.StatusCreated {
		t.Fatalf("create: %d %s", rec.Code, rec.Body.String())
	}
	code := decodeInto[registry.NewCode](t, rec.Body.Bytes())
	if code.Secret == "" || code.CAFingerprint != e.reg.CAFingerprint() || code.State != "active" {
		t.Errorf("created code %+v", code)
	}
	if d := code.ExpiresAt.Sub(code.CreatedAt); d != 2*time.Hour {
		t.Errorf("ttl %v, want 2h", d)
	}
	if rec.Header().Get("Cache-Control") != "no-store" {
		t.Error("the response with the code may be cached")
	}

	bad := []struct{ body, want string }{
		{`{"group": "nope"}`, "no group"},
		{`{"group": ""}`, "group"},
		{`{"group": "kiosks", "ttl": "soon"}`, "not a duration"},
		{`{"group": "kiosks", "ttl": "-1h"}`, "outside"},
		{`{"group": "kiosks", "ttl": "9000h"}`, "outside"},
		{`{"group": "kiosks", "ttl": 3600}`, `field "ttl" must be a string`},
	}
	for _, b := range bad {
		rec := do(t, e.h, "POST", "/api/v1/enroll-codes", testToken, b.body)
		if rec.Code/100 != 4 {
			t.Errorf("%s: status %d", b.body, rec.Code)
			continue
		}
		if msg := errorBody(t, rec); !strings.Contains(msg, b.want) {
			t.Errorf("%s: error %q lacks %q", b.body, msg, b.want)
		}
	}

	list := decodeInto[codeList](t, do(t, e.h, "GET", "/api/v1/enroll-codes?group=kiosks", testToken, "").Body.Bytes())
	if len(list.Codes) != 1 || list.Codes[0].ID != code.ID {
		t.Fatalf("list %+v", list)
	}
	if strings.Contains(do(t, e.h, "GET", "/api/v1/enroll-codes", testToken, "").Body.String(), code.Secret) {
		t.Error("the list shows the code itself")
	}
	if rec := do(t, e.h, "GET", "/api/v1/enroll-codes?groop=kiosks", testToken, ""); rec.Code != 400 {
		t.Errorf("unknown query parameter: %d", rec.Code)
	}

	if rec := do(t, e.h, "POST", "/api/v1/enroll-codes/"+code.ID+"/revoke", testToken, ""); rec.Code != http.StatusNoContent {
		t.Fatalf("revoke: %d %s", rec.Code, rec.Body.String())
	}
	list = decodeInto[codeList](t, do(t, e.h, "GET", "/api/v1/enroll-codes", testToken, "").Body.Bytes())
	if list.Codes[0].State != "revoked" {
		t.Errorf("state after revoke %q", list.Codes[0].State)
	}
	if rec := do(t, e.h, "POST", "/api/v1/enroll-codes/nope/revoke", testToken, ""); rec.Code != 404 {
		t.Errorf("revoke unknown: %d", rec.Code)
	}

	// A used code cannot be revoked.
	used := decodeInto[registry.NewCode](t, do(t, e.h, "POST", "/api/v1/enroll-codes", testToken, `{"group": "kiosks"}`).Body.Bytes())
	e.enrollWith(t, used.Secret, "kiosk-1")
	if rec := do(t, e.h, "POST", "/api/v1/enroll-codes/"+used.ID+"/revoke", testToken, ""); rec.Code != 409 {
		t.Errorf("revoke a used code: %d %s", rec.Code, rec.Body.String())
	}
}

func TestDevices(t *testing.T) {
	e := newTestEnv(t, nil)
	for _, g := range []string{"kiosks", "wardens"} {
		if _, err := e.reg.CreateGroup(t.Context(), g, g); err != nil {
			t.Fatal(err)
		}
	}
	e.enroll(t, "kiosks", "kiosk-1", registry.Inventory{Model: "K1", Software: "1.2.0"})
	e.enroll(t, "kiosks", "kiosk-2", registry.Inventory{Model: "K1", Software: "1.3.0"})
	e.enroll(t, "wardens", "hh-1", registry.Inventory{Model: "H", Software: "1.3.1"})
	e.reg.Touch("kiosk-2", time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC))
	if err := e.reg.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}

	ids := func(q string) string {
		t.Helper()
		rec := do(t, e.h, "GET", "/api/v1/devices"+q, testToken, "")
		if rec.Code != 200 {
			t.Fatalf("%s: %d %s", q, rec.Code, rec.Body.String())
		}
		l := decodeInto[deviceList](t, rec.Body.Bytes())
		var out []string
		for _, d := range l.Devices {
			out = append(out, d.ID+":"+d.State)
		}
		return strings.Join(out, ",") + "|" + l.Next
	}
	tests := []struct{ q, want string }{
		{"", "hh-1:never-connected,kiosk-1:never-connected,kiosk-2:offline|"},
		{"?group=kiosks", "kiosk-1:never-connected,kiosk-2:offline|"},
		{"?software=1.3.0", "kiosk-2:offline|"},
		{"?software=1.3*", "hh-1:never-connected,kiosk-2:offline|"},
		{"?state=never-connected", "hh-1:never-connected,kiosk-1:never-connected|"},
		{"?seen_after=2026-04-01T00:00:00Z", "kiosk-2:offline|"},
		{"?seen_before=2026-04-01T00:00:00Z", "|"},
		{"?limit=1", "hh-1:never-connected|hh-1"},
		{"?limit=1&after=hh-1", "kiosk-1:never-connected|kiosk-1"},
		{"?limit=1&after=kiosk-1", "kiosk-2:offline|"},
		{"?limit=2&after=hh-1", "kiosk-1:never-connected,kiosk-2:offline|"},
	}
	for _, tt := range tests {
		if got := ids(tt.q); got != tt.want {
			t.Errorf("devices%s = %q, want %q", tt.q, got, tt.want)
		}
	}
	for _, q := range []string{"?state=sleeping", "?limit=0", "?limit=5000", "?seen_after=yesterday", "?colour=red"} {
		if rec := do(t, e.h, "GET", "/api/v1/devices"+q, testToken, ""); rec.Code != 400 {
			t.Errorf("devices%s: %d, want 400", q, rec.Code)
		}
	}

	rec := do(t, e.h, "GET", "/api/v1/devices/kiosk-1", testToken, "")
	if rec.Code != 200 {
		t.Fatalf("show: %d %s", rec.Code, rec.Body.String())
	}
	d := decodeInto[deviceDetail](t, rec.Body.Bytes())
	if d.Group != "kiosks" || d.Inventory.Model != "K1" || len(d.Certificates) != 1 || d.Certificates[0].RevokedAt != nil {
		t.Errorf("show %+v", d)
	}
	if rec := do(t, e.h, "GET", "/api/v1/devices/nope", testToken, ""); rec.Code != 404 {
		t.Errorf("show unknown: %d", rec.Code)
	}

	rec = do(t, e.h, "POST", "/api/v1/devices/kiosk-1/revoke", testToken, `{"reason": "stolen"}`)
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"state":"revoked"`) {
		t.Fatalf("revoke: %d %s", rec.Code, rec.Body.String())
	}
	if !e.reg.IsRevoked("kiosk-1", nil) {
		t.Error("registry does not know the device is revoked")
	}
	d = decodeInto[deviceDetail](t, do(t, e.h, "GET", "/api/v1/devices/kiosk-1", testToken, "").Body.Bytes())
	if d.RevokedReason != "stolen" || d.Certificates[0].RevokedAt == nil {
		t.Errorf("after revoke %+v", d)
	}
	if got := ids("?state=revoked"); got != "kiosk-1:revoked|" {
		t.Errorf("revoked devices %q", got)
	}
	if got := ids("?state=active&group=kiosks"); got != "kiosk-2:offline|" {
		t.Errorf("active kiosks %q", got)
	}
	if rec := do(t, e.h, "POST", "/api/v1/devices/kiosk-2/revoke", testToken, ""); rec.Code != 200 {
		t.Errorf("revoke without a body: %d %s", rec.Code, rec.Body.String())
	}
	if rec := do(t, e.h, "POST", "/api/v1/devices/nope/revoke", testToken, ""); rec.Code != 404 {
		t.Errorf("revoke unknown: %d", rec.Code)
	}
	if rec := do(t, e.h, "POST", "/api/v1/devices/hh-1/revoke", testToken, `{"reason": "a\u0000b"}`); rec.Code != 400 {
		t.Errorf("revoke with a control character: %d", rec.Code)
	}
}
