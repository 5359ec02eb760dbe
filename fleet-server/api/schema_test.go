package api

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/fleet-server/registry"
	"github.com/kogge-fleet/kogge/fleet-server/store"
	"github.com/kogge-fleet/kogge/protocol"
)

// TestResponsesMatchOpenAPI calls every operation on a fleet with data and
// checks each JSON response against the schema the document gives for its
// status: types, required and documented properties, enums.
func TestResponsesMatchOpenAPI(t *testing.T) {
	_, raw := loadOpenAPI(t)
	var logs syncBuffer
	e := newTestEnv(t, func(o *Options) { o.Logger = slog.New(slog.NewJSONHandler(&logs, nil)) })
	ctx := context.Background()

	// A fleet with something everywhere.
	if _, err := e.reg.CreateGroup(ctx, "kiosks", "Kiosks"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.reg.CreateGroup(ctx, "empty", "Empty"); err != nil {
		t.Fatal(err)
	}
	e.enroll(t, "kiosks", "k-1", registry.Inventory{Model: "K1", Software: "1.0.0", Peripherals: []registry.Peripheral{{Name: "cam", Kind: "camera"}}})
	e.enroll(t, "kiosks", "k-2", registry.Inventory{})
	recs := storeRecords(t, e.db, "k-1", 3)
	err := e.db.Ingest(ctx, func(tx *store.IngestTx) error {
		now := time.Now()
		if _, err := tx.ApplyPresence(ctx, "k-1", &protocol.Presence{State: protocol.Online, Session: uuid.New(), Software: "1.0.0", At: protocol.At(now)}, now.UnixMilli()); err != nil {
			return err
		}
		hb := &protocol.Heartbeat{DiskFree: 1, Battery: 50, Software: "1.0.0", Clock: protocol.At(now),
			Peripherals: []protocol.Peripheral{{Name: "cam", Kind: "camera", State: protocol.PeripheralDegraded, Reason: "dim"}}}
		if err := tx.PutHeartbeat(ctx, "k-1", hb, now.UnixMilli(), 1); err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// Two dead letters, and a bridge's certificate request.
	enqueue(t, e.db, "k-1", recs[1], recs[2])
	dead := deadLetters(t, e.q, "ordnungsamt", "buergeramt")
	csrBody, err := json.Marshal(map[string]string{"office": "buergeramt", "csr": string(testCSR(t))})
	if err != nil {
		t.Fatal(err)
	}

	type call struct {
		method, template, path, body string
		status                       int
	}
	calls := []call{
		{"GET", "/healthz", "/healthz", "", 200},
		{"GET", "/readyz", "/readyz", "", 200},
		{"GET", "/api/v1/groups", "/api/v1/groups", "", 200},
		{"POST", "/api/v1/groups", "/api/v1/groups", `{"name": "Wardens"}`, 201},
		{"POST", "/api/v1/groups", "/api/v1/groups", `{"name": 1}`, 400},
		{"GET", "/api/v1/groups/{group}", "/api/v1/groups/kiosks", "", 200},
		{"GET", "/api/v1/groups/{group}", "/api/v1/groups/nope", "", 404},
		{"PATCH", "/api/v1/groups/{group}", "/api/v1/groups/kiosks", `{"name": "Kiosks Mitte"}`, 200},
		{"DELETE", "/api/v1/groups/{group}", "/api/v1/groups/kiosks", "", 409},
		{"DELETE", "/api/v1/groups/{group}", "/api/v1/groups/empty", "", 204},
		{"POST", "/api/v1/enroll-codes", "/api/v1/enroll-codes", `{"group": "kiosks", "ttl": "1h"}`, 201},
		{"GET", "/api/v1/enroll-codes", "/api/v1/enroll-codes", "", 200},
		{"GET", "/api/v1/devices", "/api/v1/devices", "", 200},
		{"GET", "/api/v1/devices", "/api/v1/devices?limit=1", "", 200},
		{"GET", "/api/v1/devices/{device}", "/api/v1/devices/k-1", "", 200},
		{"GET", "/api/v1/devices/{device}", "/api/v1/devices/k-2", "", 200},
		{"GET", "/api/v1/presence", "/api/v1/presence", "", 200},
		{"GET", "/api/v1/devices/{device}/health", "/api/v1/devices/k-1/health", "", 200},
		{"GET", "/api/v1/records", "/api/v1/records?limit=2", "", 200},
		{"GET", "/api/v1/devices/{device}/records/{record}", "/api/v1/devices/k-1/records/" + recs[0].String(), "", 200},
		{"GET", "/api/v1/groups/{group}/twin", "/api/v1/groups/kiosks/twin", "", 200},
		{"PUT", "/api/v1/groups/{group}/twin", "/api/v1/groups/kiosks/twin", `{"config": {"heartbeat_s": 30}}`, 200},
		{"PUT", "/api/v1/devices/{device}/twin/override", "/api/v1/devices/k-1/twin/override", `{"config": {"log_level": "debug"}}`, 200},
		{"GET", "/api/v1/devices/{device}/twin/override", "/api/v1/devices/k-1/twin/override", "", 200},
		{"GET", "/api/v1/devices/{device}/twin/override", "/api/v1/devices/k-2/twin/override", "", 200},
		{"GET", "/api/v1/devices/{device}/twin", "/api/v1/devices/k-1/twin", "", 200},
		{"DELETE", "/api/v1/devices/{device}/twin/override", "/api/v1/devices/k-1/twin/override", "", 200},
		{"POST", "/api/v1/commands", "/api/v1/commands", `{"device": "k-1", "name": "ping", "args": {"a": "b"}}`, 201},
		{"POST", "/api/v1/commands", "/api/v1/commands", `{"group": "kiosks", "name": "ping"}`, 201},
		{"GET", "/api/v1/devices/{device}/commands", "/api/v1/devices/k-1/commands?limit=1", "", 200},
		{"POST", "/api/v1/devices/{device}/revoke", "/api/v1/devices/k-2/revoke", `{"reason": "lost"}`, 200},
		{"GET", "/api/v1/deliveries", "/api/v1/deliveries?limit=1", "", 200},
		{"GET", "/api/v1/deliveries", "/api/v1/deliveries?state=nope", "", 400},
		{"GET", "/api/v1/queues", "/api/v1/queues", "", 200},
		{"GET", "/api/v1/deliveries/{record}", "/api/v1/deliveries/" + recs[1].String(), "", 200},
		{"GET", "/api/v1/deliveries/{record}", "/api/v1/deliveries/" + uuid.NewString(), "", 404},
		{"GET", "/api/v1/dead-letters", "/api/v1/dead-letters?office=ordnungsamt", "", 200},
		{"GET", "/api/v1/dead-letters/{record}", "/api/v1/dead-letters/" + dead[0].String(), "", 200},
		{"POST", "/api/v1/dead-letters/{record}/discard", "/api/v1/dead-letters/" + dead[1].String() + "/discard", `{"reason": "withdrawn"}`, 200},
		{"POST", "/api/v1/dead-letters/{record}/replay", "/api/v1/dead-letters/" + dead[0].String() + "/replay", "", 200},
		{"POST", "/api/v1/dead-letters/{record}/replay", "/api/v1/dead-letters/" + dead[0].String() + "/replay", "", 409},
		{"GET", "/api/v1/dead-letters/{record}", "/api/v1/dead-letters/" + dead[0].String(), "", 404},
		{"POST", "/api/v1/erasures", "/api/v1/erasures", `{"reference": "PA-unknown"}`, 200},
		{"POST", "/api/v1/erasures", "/api/v1/erasures", `{"record": "not-a-uuid"}`, 400},
		{"POST", "/api/v1/bridge-certificates", "/api/v1/bridge-certificates", string(csrBody), 201},
		{"POST", "/api/v1/bridge-certificates", "/api/v1/bridge-certificates", `{"office": "x", "csr": "no"}`, 400},
		{"GET", "/api/v1/bridge-certificates", "/api/v1/bridge-certificates?office=buergeramt", "", 200},
		{"GET", "/api/v1/audit", "/api/v1/audit?limit=2", "", 200},
		{"GET", "/api/v1/audit", "/api/v1/audit?order=desc&action=group.create", "", 200},
		{"POST", "/api/v1/audit/verify", "/api/v1/audit/verify", "", 200},
	}
	var cmdID, fanoutID, codeID, serial string
	covered := map[string]bool{}
	auditSeq := func() int64 {
		t.Helper()
		seq, _, err := e.db.AuditHead(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return seq
	}
	check := func(c call) []byte {
		t.Helper()
		audits := auditSeq()
		rec := do(t, e.h, c.method, c.path, testToken, c.body)
		if rec.Code != c.status {
			t.Fatalf("%s %s: %d, want %d: %s", c.method, c.path, rec.Code, c.status, rec.Body.String())
		}
		// Every change through the API leaves one audit entry; nothing
		// else does (verifying the log changes nothing).
		changed := c.method != "GET" && rec.Code < 300 && c.template != "/api/v1/audit/verify"
		if got := auditSeq() - audits; (got == 1) != changed || got > 1 {
			t.Errorf("%s %s %d: %d audit entries", c.method, c.path, rec.Code, got)
		}
		if strings.Contains(logs.String(), `"msg":"audit entry not written`) {
			t.Fatalf("%s %s: an audit entry was not written", c.method, c.path)
		}
		covered[c.method+" "+c.template] = true
		opResp, ok := lookup(raw, "paths", c.template, strings.ToLower(c.method), "responses", fmt.Sprint(c.status))
		if !ok {
			t.Errorf("%s %s: status %d is not documented", c.method, c.template, c.status)
			return rec.Body.Bytes()
		}
		resp := deref(raw, opResp)
		content, hasContent := lookup(resp, "content", "application/json", "schema")
		if c.status == http.StatusNoContent {
			if rec.Body.Len() != 0 || hasContent {
				t.Errorf("%s %s: 204 with a body or documented content", c.method, c.template)
			}
			return nil
		}
		if !hasContent {
			t.Errorf("%s %s %d: no JSON schema documented", c.method, c.template, c.status)
			return rec.Body.Bytes()
		}
		var v any
		if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
			t.Fatalf("%s %s: not JSON: %v", c.method, c.path, err)
		}
		for _, p := range validate(raw, content, v, "$") {
			t.Errorf("%s %s %d: %s", c.method, c.path, c.status, p)
		}
		return rec.Body.Bytes()
	}
	for _, c := range calls {
		b := check(c)
		switch {
		case c.method == "POST" && c.template == "/api/v1/commands" && strings.Contains(c.body, "device"):
			cmdID = decodeInto[sentCommands](t, b).Commands[0].ID.String()
		case c.method == "POST" && c.template == "/api/v1/commands":
			fanoutID = decodeInto[sentCommands](t, b).Fanout.String()
		case c.method == "POST" && c.template == "/api/v1/enroll-codes":
			codeID = decodeInto[registry.NewCode](t, b).ID
		case c.method == "POST" && c.template == "/api/v1/bridge-certificates" && c.status == 201:
			serial = decodeInto[registry.BridgeCertificate](t, b).Serial
		}
	}
	// With a result, a twin report and a binary output, the optional parts
	// show up too.
	err = e.db.Ingest(ctx, func(tx *store.IngestTx) error {
		now := time.Now()
		if _, err := tx.PutCommandResult(ctx, "k-1", &protocol.CommandResult{ID: uuid.MustParse(cmdID), Outcome: protocol.OutcomeFailed,
			Message: "no", Output: []byte{0xff, 0xfe}, At: protocol.At(now)}, now.UnixMilli()); err != nil {
			return err
		}
		return tx.PutTwinReported(ctx, "k-1", &protocol.TwinReported{Version: 1, Rejected: 2, Reason: "bad",
			Config: map[string]any{"heartbeat_s": 30}}, now.UnixMilli())
	})
	if err != nil {
		t.Fatal(err)
	}
	check(call{"GET", "/api/v1/devices/{device}/twin", "/api/v1/devices/k-1/twin", "", 200})
	if b := check(call{"GET", "/api/v1/commands/{command}", "/api/v1/commands/" + cmdID, "", 200}); !strings.Contains(string(b), `"output_base64":"//4="`) {
		t.Errorf("binary output: %s", b)
	}
	check(call{"GET", "/api/v1/fanouts/{fanout}", "/api/v1/fanouts/" + fanoutID, "", 200})
	check(call{"POST", "/api/v1/enroll-codes/{code}/revoke", "/api/v1/enroll-codes/" + codeID + "/revoke", "", 204})
	check(call{"POST", "/api/v1/bridge-certificates/{serial}/revoke", "/api/v1/bridge-certificates/" + serial + "/revoke", "", 200})
	check(call{"POST", "/api/v1/bridge-certificates/{serial}/revoke", "/api/v1/bridge-certificates/00ff/revoke", "", 404})

	// Every operation but /metrics and the document itself was exercised.
	var missed []string
	for _, rt := range e.h.Routes() {
		key := rt.Method + " " + rt.Path
		if !covered[key] && rt.Path != "/metrics" && rt.Path != "/api/v1/openapi.json" {
			missed = append(missed, key)
		}
	}
	sort.Strings(missed)
	if len(missed) > 0 {
		t.Errorf("operations not checked against their schema: %q", missed)
	}
}

func lookup(v any, keys ...string) (any, bool) {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[k]; !ok {
			return nil, false
		}
	}
	return v, true
}

// deref follows a $ref.
func deref(root, v any) any {
	for {
		m, ok := v.(map[string]any)
		if !ok {
			return v
		}
		ref, ok := m["$ref"].(string)
		if !ok {
			return v
		}
		parts := strings.Split(strings.TrimPrefix(ref, "#/"), "/")
		v, _ = lookup(root, parts...)
	}
}

// validate checks v against an OpenAPI 3.0 schema, for the keywords this
// document uses: $ref, allOf, type, nullable, required, properties,
// additionalProperties, items, enum. An object property that the schema
// (with its allOf parts) does not name is a problem unless
// additionalProperties allows it.
func validate(root, schema, v any, at string) []string {
	s, _ := deref(root, schema).(map[string]any)
	if s == nil {
		return []string{at + ": schema is not an object"}
	}
	if v == nil {
		if n, _ := s["nullable"].(bool); n {
			return nil
		}
	}
	var probs []string
	props := map[string]any{}
	open := false
	var collect func(s map[string]any)
	collect = func(s map[string]any) {
		if p, ok := s["properties"].(map[string]any); ok {
			for k, x := range p {
				props[k] = x
			}
		}
		if ap, ok := s["additionalProperties"]; ok && ap != false {
			open = true
		}
		if all, ok := s["allOf"].([]any); ok {
			for _, part := range all {
				if ps, ok := deref(root, part).(map[string]any); ok {
					collect(ps)
				}
			}
		}
	}
	collect(s)
	if all, ok := s["allOf"].([]any); ok {
		for _, part := range all {
			ps := deref(root, part).(map[string]any)
			// Check the parts' types and required fields, not their
			// closedness: the union of properties decides that.
			probs = append(probs, validateShallow(root, ps, v, at)...)
		}
	}
	probs = append(probs, validateShallow(root, s, v, at)...)
	if obj, ok := v.(map[string]any); ok && len(props) > 0 {
		for k, x := range obj {
			ps, known := props[k]
			if !known {
				if !open {
					probs = append(probs, fmt.Sprintf("%s.%s: not in the documented schema", at, k))
				}
				continue
			}
			probs = append(probs, validate(root, ps, x, at+"."+k)...)
		}
	}
	if ap, ok := s["additionalProperties"].(map[string]any); ok {
		if obj, ok := v.(map[string]any); ok {
			for k, x := range obj {
				if _, named := props[k]; !named {
					probs = append(probs, validate(root, ap, x, at+"."+k)...)
				}
			}
		}
	}
	if items, ok := s["items"]; ok {
		if arr, ok := v.([]any); ok {
			for i, x := range arr {
				probs = append(probs, validate(root, items, x, fmt.Sprintf("%s[%d]", at, i))...)
			}
		}
	}
	return probs
}

// validateShallow checks type, nullability, required and enum of one schema.
func validateShallow(root any, s map[string]any, v any, at string) []string {
	if v == nil {
		if n, _ := s["nullable"].(bool); n || s["type"] == nil {
			return nil
		}
		return []string{at + ": null, but the schema is not nullable"}
	}
	var probs []string
	if typ, ok := s["type"].(string); ok {
		okType := false
		switch x := v.(type) {
		case map[string]any:
			okType = typ == "object"
		case []any:
			okType = typ == "array"
		case string:
			okType = typ == "string"
		case bool:
			okType = typ == "boolean"
		case float64:
			okType = typ == "number" || (typ == "integer" && x == float64(int64(x)))
		}
		if !okType {
			probs = append(probs, fmt.Sprintf("%s: %T where the schema says %s", at, v, typ))
		}
	}
	if req, ok := s["required"].([]any); ok {
		if obj, ok := v.(map[string]any); ok {
			for _, r := range req {
				if _, has := obj[r.(string)]; !has {
					probs = append(probs, fmt.Sprintf("%s: required property %q missing", at, r))
				}
			}
		}
	}
	if enum, ok := s["enum"].([]any); ok {
		found := false
		for _, e := range enum {
			if e == v {
				found = true
			}
		}
		if !found {
			probs = append(probs, fmt.Sprintf("%s: %v is not one of %v", at, v, enum))
		}
	}
	return probs
}
