package api

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/fleet-server/audit"
	"github.com/kogge-fleet/kogge/fleet-server/commands"
	"github.com/kogge-fleet/kogge/fleet-server/registry"
	"github.com/kogge-fleet/kogge/fleet-server/rollout"
	"github.com/kogge-fleet/kogge/fleet-server/store"
	"github.com/kogge-fleet/kogge/protocol/artifact"
)

// rolloutEnv is a handler with the rollout endpoints over real services.
type rolloutEnv struct {
	*testEnv
	ro  *rollout.Service
	key ed25519.PrivateKey
	doc []byte // the merged OpenAPI document
}

func newRolloutEnv(t *testing.T) *rolloutEnv {
	t.Helper()
	key, err := artifact.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	var ro *rollout.Service
	e := buildTestEnv(t, Options{Logger: slog.New(slog.DiscardHandler)}, func(s *Services, db *store.DB, cmds *commands.Service, log *audit.Log) {
		ro, err = rollout.New(db, cmds, log, rollout.Options{Keys: artifact.NewKeyring(key.Public().(ed25519.PublicKey)),
			Logger: slog.New(slog.DiscardHandler), MaxArtifactSize: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		s.Rollouts = ro
	})
	doc, err := mergeOpenAPI(openAPIDoc, openAPIRollouts)
	if err != nil {
		t.Fatal(err)
	}
	return &rolloutEnv{testEnv: e, ro: ro, key: key, doc: doc}
}

// upload returns a multipart body with the parts in order.
func multipartBody(t *testing.T, parts ...[2]string) (string, []byte) {
	t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for _, p := range parts {
		fw, err := w.CreateFormFile(p[0], p[0])
		if err != nil {
			t.Fatal(err)
		}
		fw.Write([]byte(p[1]))
	}
	w.Close()
	return w.FormDataContentType(), buf.Bytes()
}

func (e *rolloutEnv) signed(t *testing.T, version string, bin []byte) []byte {
	t.Helper()
	m, err := artifact.Describe(artifact.Manifest{Name: "kogge-kiosk", Version: version, Apps: []string{"kiosk"}, Platform: "linux/amd64",
		Created: time.Now()}, bytes.NewReader(bin))
	if err != nil {
		t.Fatal(err)
	}
	b, err := artifact.Sign(m, e.key)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRolloutOpenAPIMatchesRoutes(t *testing.T) {
	e := newRolloutEnv(t)
	var doc openAPIDocument
	if err := json.Unmarshal(e.doc, &doc); err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := json.Unmarshal(e.doc, &raw); err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	ids := map[string]bool{}
	paramRe := regexp.MustCompile(`\{([^}]+)\}`)
	for path, item := range doc.Paths {
		for key, rawOp := range item {
			method := strings.ToUpper(key)
			documented[method+" "+path] = true
			var op openAPIOperation
			if err := json.Unmarshal(rawOp, &op); err != nil {
				t.Fatal(err)
			}
			if op.OperationID == "" || ids[op.OperationID] {
				t.Errorf("%s %s: operationId %q missing or used twice", method, path, op.OperationID)
			}
			ids[op.OperationID] = true
			for _, m := range paramRe.FindAllStringSubmatch(path, -1) {
				if !slices.ContainsFunc(op.Parameters, func(p struct {
					Name string `json:"name"`
					In   string `json:"in"`
					Ref  string `json:"$ref"`
				}) bool {
					return (p.In == "path" && p.Name == m[1]) || p.Ref == "#/components/parameters/"+m[1]
				}) {
					t.Errorf("%s %s: path parameter %q not declared", method, path, m[1])
				}
			}
			if strings.Contains(path, "artifacts") || strings.Contains(path, "rollouts") {
				checkAuth(t, e.h, method, path, false)
			}
		}
	}
	for _, rt := range e.h.Routes() {
		key := rt.Method + " " + rt.Path
		if !documented[key] {
			t.Errorf("route %s is registered but not documented", key)
		}
		delete(documented, key)
	}
	for key := range documented {
		t.Errorf("%s is documented, not registered", key)
	}
	checkRefs(t, raw, raw)

	// The served document is the merged one; without the service the
	// base document is served.
	rec := do(t, e.h, "GET", "/api/v1/openapi.json", testToken, "")
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"/api/v1/rollouts/{rollout}/abort"`) {
		t.Errorf("served document: %d, has the rollouts: %v", rec.Code, strings.Contains(rec.Body.String(), "/api/v1/rollouts"))
	}
}

func TestRolloutResponsesMatchOpenAPI(t *testing.T) {
	e := newRolloutEnv(t)
	ctx := context.Background()
	var raw map[string]any
	if err := json.Unmarshal(e.doc, &raw); err != nil {
		t.Fatal(err)
	}
	if _, err := e.reg.CreateGroup(ctx, "kiosks", "Kiosks"); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		e.enroll(t, "kiosks", fmt.Sprintf("k-%d", i), registry.Inventory{Model: "K1", Software: "1.0.0"})
	}
	bin := bytes.Repeat([]byte("kogge"), 1000)
	good := e.signed(t, "1.1.0", bin)
	tampered := bytes.Clone(bin)
	tampered[10] ^= 1

	covered := map[string]bool{}
	var audits int
	auditCount := func() int {
		es, err := audit.New(e.db, audit.Options{})
		if err != nil {
			t.Fatal(err)
		}
		list, err := es.List(ctx, audit.Filter{Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		return len(list)
	}
	type call struct {
		method, template, path string
		ctype                  string
		body                   []byte
		status                 int
		audited                bool
	}
	check := func(c call) []byte {
		t.Helper()
		before := auditCount()
		req := httptest.NewRequest(c.method, c.path, bytes.NewReader(c.body))
		req.Header.Set("Authorization", "Bearer "+testToken)
		if c.ctype != "" {
			req.Header.Set("Content-Type", c.ctype)
		}
		rec := httptest.NewRecorder()
		e.h.ServeHTTP(rec, req)
		if rec.Code != c.status {
			t.Fatalf("%s %s: status %d, want %d: %s", c.method, c.path, rec.Code, c.status, rec.Body)
		}
		if got := auditCount() - before; (got > 0) != c.audited {
			t.Errorf("%s %s: %d audit entries, audited %v", c.method, c.path, got, c.audited)
		}
		audits += auditCount() - before
		covered[c.method+" "+c.template] = true
		resp, ok := lookup(raw, "paths", c.template, strings.ToLower(c.method), "responses", fmt.Sprint(c.status))
		if !ok {
			t.Errorf("%s %s: status %d is not documented", c.method, c.template, c.status)
			return rec.Body.Bytes()
		}
		schema, hasContent := lookup(deref(raw, resp), "content", "application/json", "schema")
		if c.status == http.StatusNoContent {
			if rec.Body.Len() != 0 || hasContent {
				t.Errorf("%s %s: 204 with a body", c.method, c.template)
			}
			return nil
		}
		var v any
		if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
			t.Fatalf("%s %s: not JSON: %v", c.method, c.path, err)
		}
		for _, p := range validate(raw, schema, v, "$") {
			t.Errorf("%s %s %d: %s", c.method, c.path, c.status, p)
		}
		return rec.Body.Bytes()
	}
	ct, body := multipartBody(t, [2]string{"manifest", string(good)}, [2]string{"binary", string(bin)})
	ctBad, bodyBad := multipartBody(t, [2]string{"manifest", string(e.signed(t, "1.2.0", bin))}, [2]string{"binary", string(tampered)})
	ctSwap, bodySwap := multipartBody(t, [2]string{"binary", string(bin)}, [2]string{"manifest", string(good)})
	check(call{"GET", "/api/v1/artifacts", "/api/v1/artifacts", "", nil, 200, false})
	art := decodeInto[rollout.Artifact](t, check(call{"POST", "/api/v1/artifacts", "/api/v1/artifacts", ct, body, 201, true}))
	check(call{"POST", "/api/v1/artifacts", "/api/v1/artifacts", ct, body, 409, false})
	check(call{"POST", "/api/v1/artifacts", "/api/v1/artifacts", ctBad, bodyBad, 422, false})
	check(call{"POST", "/api/v1/artifacts", "/api/v1/artifacts", ctSwap, bodySwap, 400, false})
	check(call{"POST", "/api/v1/artifacts", "/api/v1/artifacts", "application/json", []byte("{}"), 415, false})
	big := bytes.Repeat([]byte("x"), 2<<20)
	ctBig, bodyBig := multipartBody(t, [2]string{"manifest", string(e.signed(t, "1.3.0", big))}, [2]string{"binary", string(big)})
	check(call{"POST", "/api/v1/artifacts", "/api/v1/artifacts", ctBig, bodyBig, 400, false}) // the manifest says too large
	check(call{"GET", "/api/v1/artifacts", "/api/v1/artifacts", "", nil, 200, false})
	check(call{"GET", "/api/v1/artifacts/{artifact}", "/api/v1/artifacts/" + art.ID.String(), "", nil, 200, false})
	check(call{"GET", "/api/v1/artifacts/{artifact}", "/api/v1/artifacts/" + uuid.NewString(), "", nil, 404, false})

	create := fmt.Sprintf(`{"artifact": %q, "target": {"group": "kiosks"}, "waves": ["1", "100%%"], "soak": "1m", "error_threshold": 0}`, art.ID)
	ro := decodeInto[rollout.Rollout](t, check(call{"POST", "/api/v1/rollouts", "/api/v1/rollouts", "application/json", []byte(create), 201, true}))
	if ro.Total != 4 || !slices.Equal(ro.Settings.Sizes, []int{1, 4}) || ro.Settings.Window != "19:00-07:00" {
		t.Errorf("created: %+v", ro)
	}
	check(call{"POST", "/api/v1/rollouts", "/api/v1/rollouts", "application/json", []byte(create), 409, false})
	check(call{"POST", "/api/v1/rollouts", "/api/v1/rollouts", "application/json", []byte(`{"artifact": "` + uuid.NewString() + `"}`), 404, false})
	check(call{"POST", "/api/v1/rollouts", "/api/v1/rollouts", "application/json", []byte(`{"artifact": "x"}`), 400, false})
	check(call{"POST", "/api/v1/rollouts", "/api/v1/rollouts", "application/json", []byte(`{"artifact": "` + art.ID.String() + `", "soak": "lange"}`), 400, false})
	e.ro.Step(ctx)
	check(call{"GET", "/api/v1/rollouts", "/api/v1/rollouts?state=running,paused", "", nil, 200, false})
	check(call{"GET", "/api/v1/rollouts", "/api/v1/rollouts?state=exploded", "", nil, 400, false})
	detail := check(call{"GET", "/api/v1/rollouts/{rollout}", "/api/v1/rollouts/" + ro.ID.String(), "", nil, 200, false})
	if !strings.Contains(string(detail), `"kind":"created"`) {
		t.Errorf("no events: %s", detail)
	}
	check(call{"GET", "/api/v1/rollouts/{rollout}", "/api/v1/rollouts/nope", "", nil, 404, false})
	check(call{"GET", "/api/v1/rollouts/{rollout}/devices", "/api/v1/rollouts/" + ro.ID.String() + "/devices", "", nil, 200, false})
	check(call{"GET", "/api/v1/rollouts/{rollout}/devices", "/api/v1/rollouts/" + ro.ID.String() + "/devices?state=sent,waiting", "", nil, 200, false})
	check(call{"GET", "/api/v1/rollouts/{rollout}/devices", "/api/v1/rollouts/" + uuid.NewString() + "/devices", "", nil, 404, false})
	pause := "/api/v1/rollouts/" + ro.ID.String() + "/pause"
	check(call{"POST", "/api/v1/rollouts/{rollout}/pause", pause, "", nil, 200, true})
	check(call{"POST", "/api/v1/rollouts/{rollout}/pause", pause, "", nil, 409, false})
	check(call{"POST", "/api/v1/rollouts/{rollout}/pause", "/api/v1/rollouts/" + uuid.NewString() + "/pause", "", nil, 404, false})
	check(call{"POST", "/api/v1/rollouts/{rollout}/resume", "/api/v1/rollouts/" + ro.ID.String() + "/resume", "application/json", []byte(`{}`), 200, true})
	check(call{"POST", "/api/v1/rollouts/{rollout}/resume", "/api/v1/rollouts/" + ro.ID.String() + "/resume", "", nil, 409, false})
	check(call{"POST", "/api/v1/rollouts/{rollout}/resume", "/api/v1/rollouts/" + uuid.NewString() + "/resume", "", nil, 404, false})
	check(call{"POST", "/api/v1/rollouts/{rollout}/abort", "/api/v1/rollouts/" + ro.ID.String() + "/abort", "application/json", []byte(`{"unknown": 1}`), 400, false})
	aborted := decodeInto[rollout.Rollout](t, check(call{"POST", "/api/v1/rollouts/{rollout}/abort", "/api/v1/rollouts/" + ro.ID.String() + "/abort",
		"application/json", []byte(`{"reason": "wrong build"}`), 200, true}))
	if aborted.State != rollout.Aborting || aborted.Reason != "wrong build" {
		t.Errorf("aborted: %s %q", aborted.State, aborted.Reason)
	}
	check(call{"POST", "/api/v1/rollouts/{rollout}/abort", "/api/v1/rollouts/" + ro.ID.String() + "/abort", "", nil, 409, false})
	check(call{"POST", "/api/v1/rollouts/{rollout}/abort", "/api/v1/rollouts/" + uuid.NewString() + "/abort", "", nil, 404, false})
	check(call{"DELETE", "/api/v1/artifacts/{artifact}", "/api/v1/artifacts/" + art.ID.String(), "", nil, 409, false})
	// A second artifact, unused, is deleted.
	ct2, body2 := multipartBody(t, [2]string{"manifest", string(e.signed(t, "1.4.0", bin))}, [2]string{"binary", string(bin)})
	art2 := decodeInto[rollout.Artifact](t, check(call{"POST", "/api/v1/artifacts", "/api/v1/artifacts", ct2, body2, 201, true}))
	check(call{"DELETE", "/api/v1/artifacts/{artifact}", "/api/v1/artifacts/" + art2.ID.String(), "", nil, 204, true})
	check(call{"DELETE", "/api/v1/artifacts/{artifact}", "/api/v1/artifacts/" + art2.ID.String(), "", nil, 404, false})

	var missed []string
	for _, rt := range e.h.Routes() {
		key := rt.Method + " " + rt.Path
		if (strings.Contains(key, "/artifacts") || strings.Contains(key, "/rollouts")) && !covered[key] {
			missed = append(missed, key)
		}
	}
	sort.Strings(missed)
	if len(missed) > 0 {
		t.Errorf("operations not checked against their schema: %q", missed)
	}
	if audits != 7 {
		t.Errorf("%d audit entries, want 7 (2 uploads, create, pause, resume, abort, delete)", audits)
	}
}

func FuzzDecodeUpload(f *testing.F) {
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	w.SetBoundary("kogge-boundary")
	m, _ := w.CreateFormFile("manifest", "m")
	m.Write([]byte(`{"manifest":"e30=","signatures":[]}`))
	b, _ := w.CreateFormFile("binary", "b")
	b.Write([]byte("bin"))
	w.Close()
	f.Add(buf.Bytes())
	f.Add([]byte("--kogge-boundary--\r\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, body []byte) {
		manifest, bin, err := decodeUpload("multipart/form-data; boundary=kogge-boundary", bytes.NewReader(body))
		if err != nil {
			if _, ok := err.(*httpError); !ok {
				t.Fatalf("not an HTTP error: %v", err)
			}
			return
		}
		if len(manifest) > maxManifestPart {
			t.Fatalf("manifest of %d bytes", len(manifest))
		}
		io.Copy(io.Discard, bin)
	})
}
