package client

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kogge-fleet/kogge/fleet-server/api/apitest"
	"github.com/kogge-fleet/kogge/fleet-server/registry"
)

func newClient(t *testing.T, s *apitest.Server) *Client {
	t.Helper()
	c, err := New(s.URL, apitest.Token, Options{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNew(t *testing.T) {
	for _, tt := range []struct{ server, token string }{
		{"", "t"}, {"ftp://x", "t"}, {"http://", "t"}, {"127.0.0.1:8080", "t"}, {"http://127.0.0.1:8080", ""},
	} {
		if _, err := New(tt.server, tt.token, Options{}); err == nil {
			t.Errorf("New(%q, %q) accepted", tt.server, tt.token)
		}
	}
}

func TestRegistryCalls(t *testing.T) {
	s := apitest.New(t)
	c := newClient(t, s)
	ctx := context.Background()

	g, err := c.CreateGroup(ctx, "", "Bürgeramt Mitte kiosks")
	if err != nil || g.ID != "buergeramt-mitte-kiosks" {
		t.Fatalf("create group: %+v %v", g, err)
	}
	if _, err := c.CreateGroup(ctx, g.ID, "again"); !isStatus(err, http.StatusConflict) {
		t.Errorf("duplicate group: %v", err)
	}
	if g2, err := c.RenameGroup(ctx, g.ID, "Kiosks"); err != nil || g2.Name != "Kiosks" {
		t.Errorf("rename: %+v %v", g2, err)
	}
	if gs, err := c.Groups(ctx); err != nil || len(gs) != 1 {
		t.Errorf("groups: %+v %v", gs, err)
	}
	if _, err := c.Group(ctx, "nope"); !IsNotFound(err) {
		t.Errorf("unknown group: %v", err)
	}

	code, err := c.CreateCode(ctx, CodeRequest{Group: g.ID, TTL: 3 * time.Hour, Note: "kiosk 3"})
	if err != nil || code.Secret == "" || code.CAFingerprint != s.Registry.CAFingerprint() || code.ExpiresAt.Sub(code.CreatedAt) != 3*time.Hour {
		t.Fatalf("create code: %+v %v", code, err)
	}
	s.Enroll(t, code.Secret, "kiosk-1", registry.Inventory{Model: "K1", Software: "1.0.0"})
	codes, err := c.Codes(ctx, g.ID)
	if err != nil || len(codes) != 1 || codes[0].State != "used" || codes[0].Device != "kiosk-1" {
		t.Fatalf("codes: %+v %v", codes, err)
	}
	if err := c.RevokeCode(ctx, code.ID); !isStatus(err, http.StatusConflict) {
		t.Errorf("revoke a used code: %v", err)
	}
	other, err := c.CreateCode(ctx, CodeRequest{Group: g.ID})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.RevokeCode(ctx, other.ID); err != nil {
		t.Errorf("revoke code: %v", err)
	}

	page, err := c.Devices(ctx, DeviceQuery{Group: g.ID, State: "never-connected", Software: "1.*"})
	if err != nil || len(page.Devices) != 1 || page.Devices[0].ID != "kiosk-1" || page.Devices[0].Inventory.Model != "K1" {
		t.Fatalf("devices: %+v %v", page, err)
	}
	if page, err := c.Devices(ctx, DeviceQuery{SeenAfter: time.Now().Add(-time.Hour)}); err != nil || len(page.Devices) != 0 {
		t.Errorf("devices seen in the last hour: %+v %v", page, err)
	}
	d, err := c.Device(ctx, "kiosk-1")
	if err != nil || d.Group != g.ID || len(d.Certificates) != 1 {
		t.Fatalf("device: %+v %v", d, err)
	}
	rd, err := c.RevokeDevice(ctx, "kiosk-1", "stolen")
	if err != nil || rd.State != "revoked" || rd.RevokedReason != "stolen" {
		t.Errorf("revoke: %+v %v", rd, err)
	}
	if err := c.DeleteGroup(ctx, g.ID); !isStatus(err, http.StatusConflict) {
		t.Errorf("delete a group with devices: %v", err)
	}
}

func TestErrors(t *testing.T) {
	s := apitest.New(t)
	c, err := New(s.URL, "wrong-token-wrong-token", Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Groups(context.Background())
	var e *Error
	if !errors.As(err, &e) || e.Status != 401 || !strings.Contains(e.Message, "token") {
		t.Errorf("wrong token: %v", err)
	}
	c, err = New("http://127.0.0.1:1", apitest.Token, Options{Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Groups(context.Background()); err == nil || errors.As(err, &e) {
		t.Errorf("no server: %v", err)
	}
}

func TestDecodeResponse(t *testing.T) {
	tests := []struct {
		status int
		body   string
		want   string // error text, "" for success
	}{
		{200, `{"id": "g"}`, ""},
		{204, ``, ""},
		{200, `{"id": 5}`, "not the JSON expected"},
		{404, `{"error": "no group \"g\""}`, `404 Not Found: no group "g"`},
		{502, `<html>bad gateway</html>`, "502 Bad Gateway: <html>bad gateway</html>"},
		{500, ``, "500 Internal Server Error: Internal Server Error"},
		{400, strings.Repeat("x", 600), "…"},
	}
	for _, tt := range tests {
		var g Group
		err := decodeResponse(tt.status, []byte(tt.body), &g)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%d %q: %v", tt.status, tt.body, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%d %q: error %v, want %q", tt.status, tt.body, err, tt.want)
		}
	}
}

// FuzzDecodeResponse: a response never panics the client, an error status
// is always an *Error with a bounded message, and a success either decodes or
// fails with an error.
func FuzzDecodeResponse(f *testing.F) {
	f.Add(200, []byte(`{"devices": [{"id": "a", "state": "online"}], "next": "a"}`))
	f.Add(404, []byte(`{"error": "x"}`))
	f.Add(500, []byte(`not json`))
	f.Add(200, []byte(`{"devices": 5}`))
	f.Fuzz(func(t *testing.T, status int, b []byte) {
		var page DevicePage
		err := decodeResponse(status, b, &page)
		if status < 200 || status > 299 {
			var e *Error
			if !errors.As(err, &e) || e.Status != status || e.Message == "" || len(e.Message) > 510 {
				t.Fatalf("status %d: %v", status, err)
			}
		}
	})
}

func isStatus(err error, status int) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == status
}

func TestTwinAndCommandCalls(t *testing.T) {
	s := apitest.New(t)
	c := newClient(t, s)
	ctx := context.Background()
	if _, err := c.CreateGroup(ctx, "kiosks", "Kiosks"); err != nil {
		t.Fatal(err)
	}
	s.EnrollInto(t, "kiosks", "k-1", registry.Inventory{})

	g, err := c.SetGroupTwin(ctx, "kiosks", map[string]any{"heartbeat_s": 30, "ui": map[string]any{"lang": "de"}})
	if err != nil || g.Version != 1 {
		t.Fatalf("set group twin: %+v %v", g, err)
	}
	if g, err := c.GroupTwin(ctx, "kiosks"); err != nil || g.Config["heartbeat_s"] != float64(30) {
		t.Errorf("group twin: %+v %v", g, err)
	}
	v, err := c.SetOverride(ctx, "k-1", map[string]any{"ui": map[string]any{"lang": "en"}})
	if err != nil || v.Version != 2 || v.Desired["ui"].(map[string]any)["lang"] != "en" {
		t.Fatalf("set override: %+v %v", v, err)
	}
	if v, err = c.SetOverride(ctx, "k-1", nil); err != nil || v.Override != nil || v.Version != 3 {
		t.Errorf("remove override: %+v %v", v, err)
	}
	if v, err = c.DeviceTwin(ctx, "k-1"); err != nil || v.Diff.DesiredVersion != 3 || v.Reported != nil {
		t.Errorf("device twin: %+v %v", v, err)
	}

	sent, err := c.SendCommand(ctx, CommandRequest{Device: "k-1", Name: "ping", TTL: time.Minute})
	if err != nil || len(sent.Commands) != 1 || sent.Commands[0].State != "queued" {
		t.Fatalf("send: %+v %v", sent, err)
	}
	if cmd, err := c.Command(ctx, sent.Commands[0].ID); err != nil || cmd.Name != "ping" {
		t.Errorf("command: %+v %v", cmd, err)
	}
	gs, err := c.SendCommand(ctx, CommandRequest{Group: "kiosks", Name: "sync-now", Args: map[string]string{"why": "test"}})
	if err != nil || gs.Fanout == nil || len(gs.Commands) != 1 {
		t.Fatalf("group send: %+v %v", gs, err)
	}
	if f, err := c.Fanout(ctx, *gs.Fanout); err != nil || len(f.Commands) != 1 || f.Commands[0].Args["why"] != "test" {
		t.Errorf("fan-out: %+v %v", f, err)
	}
	page, err := c.DeviceCommands(ctx, "k-1", "", 1)
	if err != nil || len(page.Commands) != 1 || page.Next == "" {
		t.Fatalf("history: %+v %v", page, err)
	}
	if page, err = c.DeviceCommands(ctx, "k-1", page.Next, 1); err != nil || len(page.Commands) != 1 || page.Commands[0].Name != "ping" {
		t.Errorf("history page 2: %+v %v", page, err)
	}
	if _, err := c.SendCommand(ctx, CommandRequest{Device: "k-1", Group: "kiosks", Name: "ping"}); !isStatus(err, 400) {
		t.Errorf("device and group: %v", err)
	}
}
