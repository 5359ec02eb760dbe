package api

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kogge-fleet/kogge/fleet-server/registry"
	"github.com/kogge-fleet/kogge/fleet-server/store"
	"github.com/kogge-fleet/kogge/protocol"
)

func TestTwin(t *testing.T) {
	e := newTestEnv(t, nil)
	ctx := context.Background()
	if _, err := e.reg.CreateGroup(ctx, "kiosks", "Kiosks"); err != nil {
		t.Fatal(err)
	}
	e.enroll(t, "kiosks", "k-1", registry.Inventory{})
	e.enroll(t, "kiosks", "k-2", registry.Inventory{})

	g := decodeInto[groupTwinJSON](t, do(t, e.h, "GET", "/api/v1/groups/kiosks/twin", testToken, "").Body.Bytes())
	if g.Version != 0 || len(g.Config) != 0 {
		t.Errorf("unconfigured group %+v", g)
	}
	rec := do(t, e.h, "PUT", "/api/v1/groups/kiosks/twin", testToken,
		`{"config": {"heartbeat_s": 30, "log_level": "info", "ui": {"lang": "de", "idle_s": 120}, "big": 9007199254740993}}`)
	if rec.Code != 200 {
		t.Fatalf("set group: %d %s", rec.Code, rec.Body.String())
	}
	if !strings.Contains(rec.Body.String(), `"big":9007199254740993`) || !strings.Contains(rec.Body.String(), `"version":1`) {
		t.Errorf("set group answered %s", rec.Body.String())
	}
	var retained int
	for _, topic := range e.broker.published() {
		if topic == "kogge/v1/d/k-1/twin" || topic == "kogge/v1/d/k-2/twin" {
			retained++
		}
	}
	if retained != 2 {
		t.Errorf("published %q, want the twin of both devices", e.broker.published())
	}

	rec = do(t, e.h, "PUT", "/api/v1/devices/k-1/twin/override", testToken, `{"config": {"ui": {"lang": "en"}, "log_level": null}}`)
	if rec.Code != 200 {
		t.Fatalf("set override: %d %s", rec.Code, rec.Body.String())
	}
	v := decodeInto[twinViewJSON](t, do(t, e.h, "GET", "/api/v1/devices/k-1/twin", testToken, "").Body.Bytes())
	ui, _ := v.Desired["ui"].(map[string]any)
	if v.Version != 2 || v.Group != "kiosks" || ui["lang"] != "en" || ui["idle_s"] == nil || v.Desired["log_level"] != nil ||
		v.Reported != nil || v.Diff.InSync || v.Diff.DesiredVersion != 2 {
		t.Errorf("view before any report %+v", v)
	}
	o := decodeInto[overrideJSON](t, do(t, e.h, "GET", "/api/v1/devices/k-1/twin/override", testToken, "").Body.Bytes())
	if o.Override["ui"] == nil {
		t.Errorf("override %+v", o)
	}

	// The device reports the desired version: in sync.
	err := e.db.Ingest(ctx, func(tx *store.IngestTx) error {
		return tx.PutTwinReported(ctx, "k-1", &protocol.TwinReported{Version: 2}, time.Now().UnixMilli())
	})
	if err != nil {
		t.Fatal(err)
	}
	v = decodeInto[twinViewJSON](t, do(t, e.h, "GET", "/api/v1/devices/k-1/twin", testToken, "").Body.Bytes())
	if v.Reported == nil || v.Reported.Version != 2 || !v.Diff.InSync || v.Diff.AppliedVersion != 2 {
		t.Errorf("view after the report %+v reported %+v", v, v.Reported)
	}
	// k-2 refused its version.
	err = e.db.Ingest(ctx, func(tx *store.IngestTx) error {
		return tx.PutTwinReported(ctx, "k-2", &protocol.TwinReported{Rejected: 1, Reason: "heartbeat too short"}, time.Now().UnixMilli())
	})
	if err != nil {
		t.Fatal(err)
	}
	v = decodeInto[twinViewJSON](t, do(t, e.h, "GET", "/api/v1/devices/k-2/twin", testToken, "").Body.Bytes())
	if !v.Diff.Rejected || v.Diff.Reason != "heartbeat too short" || v.Diff.InSync {
		t.Errorf("rejected view %+v", v.Diff)
	}

	if rec := do(t, e.h, "DELETE", "/api/v1/devices/k-1/twin/override", testToken, ""); rec.Code != 200 {
		t.Fatalf("remove override: %d %s", rec.Code, rec.Body.String())
	}
	v = decodeInto[twinViewJSON](t, do(t, e.h, "GET", "/api/v1/devices/k-1/twin", testToken, "").Body.Bytes())
	if v.Override != nil || v.Version != 3 || v.Desired["log_level"] != "info" {
		t.Errorf("after removing the override %+v", v)
	}

	deep := `{"config": ` + strings.Repeat(`{"a": `, 20) + `1` + strings.Repeat(`}`, 20) + `}`
	bad := []struct {
		method, path, body string
		code               int
		want               string
	}{
		{"PUT", "/api/v1/groups/kiosks/twin", `{"config": [1, 2]}`, 400, "must be an object"},
		{"PUT", "/api/v1/groups/kiosks/twin", `{"config": null}`, 400, "JSON object"},
		{"PUT", "/api/v1/groups/kiosks/twin", `{}`, 400, "JSON object"},
		{"PUT", "/api/v1/groups/kiosks/twin", `{"config": {}, "version": 3}`, 400, `unknown field "version"`},
		{"PUT", "/api/v1/groups/kiosks/twin", deep, 400, "nested"},
		{"PUT", "/api/v1/groups/kiosks/twin", `{"config": {"blob": "` + strings.Repeat("x", 1<<20) + `"}}`, 413, "larger than"},
		{"PUT", "/api/v1/groups/nope/twin", `{"config": {}}`, 404, `no group "nope"`},
		{"GET", "/api/v1/groups/nope/twin", ``, 404, `no group "nope"`},
		{"GET", "/api/v1/devices/nope/twin", ``, 404, `no device "nope"`},
		{"PUT", "/api/v1/devices/nope/twin/override", `{"config": {}}`, 404, `no device "nope"`},
	}
	for _, b := range bad {
		rec := do(t, e.h, b.method, b.path, testToken, b.body)
		if rec.Code != b.code {
			t.Errorf("%s %s %.60s: %d, want %d (%.200s)", b.method, b.path, b.body, rec.Code, b.code, rec.Body.String())
			continue
		}
		if msg := errorBody(t, rec); !strings.Contains(msg, b.want) {
			t.Errorf("%s %s: error %q lacks %q", b.method, b.path, msg, b.want)
		}
	}
}
