package eid_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	eidsim "github.com/kogge-fleet/kogge/simulators/devices/eid"
)

// TestRawProtocol speaks to the simulator with a bare WebSocket, as any
// SDK client would, without the driver.
func TestRawProtocol(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sim, err := eidsim.Start(ctx, eidsim.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	conn, _, err := d.DialContext(ctx, sim.Endpoint(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	read := func() map[string]any {
		t.Helper()
		_, b, err := conn.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		return m
	}
	if m := read(); m["msg"] != "READER" || m["name"] != "Kogge Virtual Reader" || m["card"] != nil {
		t.Fatalf("first message %v", m)
	}
	for _, tc := range []struct{ send, msg, errText string }{
		{`not json`, "INVALID", ""},
		{`{"cmd":"FOO"}`, "UNKNOWN_COMMAND", "FOO"},
		{`{"cmd":"ACCEPT"}`, "BAD_STATE", "ACCEPT"},
		{`{"cmd":"SET_CARD","name":"Kogge Virtual Reader"}`, "BAD_STATE", "SET_CARD"},
		{`{"cmd":"SET_API_LEVEL","level":7}`, "API_LEVEL", "Invalid level"},
		{`{"cmd":"RUN_AUTH"}`, "AUTH", "tcTokenURL cannot be undefined"},
	} {
		if err := conn.WriteMessage(websocket.TextMessage, []byte(tc.send)); err != nil {
			t.Fatal(err)
		}
		m := read()
		if m["msg"] != tc.msg || (tc.errText != "" && m["error"] != tc.errText) {
			t.Errorf("%s: got %v, want %s %q", tc.send, m, tc.msg, tc.errText)
		}
	}
	_, resp, err := d.DialContext(ctx, sim.Endpoint(), nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("second client: %v, %v; want HTTP 429", resp, err)
	}
	_, resp, err = d.DialContext(ctx, strings.TrimSuffix(sim.Endpoint(), eidsim.Path)+"/other", nil)
	if !errors.Is(err, websocket.ErrBadHandshake) || resp.StatusCode != http.StatusNotFound {
		t.Fatalf("other path: %v, %v", resp, err)
	}
}
