package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
)

type openAPIDocument struct {
	OpenAPI  string                                `json:"openapi"`
	Security []map[string][]string                 `json:"security"`
	Paths    map[string]map[string]json.RawMessage `json:"paths"`
}

type openAPIOperation struct {
	OperationID string                 `json:"operationId"`
	Security    *[]map[string][]string `json:"security"`
	Parameters  []struct {
		Name string `json:"name"`
		In   string `json:"in"`
		Ref  string `json:"$ref"`
	} `json:"parameters"`
	Responses map[string]json.RawMessage `json:"responses"`
}

var httpMethods = []string{"get", "put", "post", "delete", "patch", "head", "options", "trace"}

func loadOpenAPI(t *testing.T) (openAPIDocument, map[string]any) {
	t.Helper()
	var doc openAPIDocument
	if err := json.Unmarshal(openAPIDoc, &doc); err != nil {
		t.Fatalf("openapi.json is not JSON: %v", err)
	}
	var raw map[string]any
	if err := json.Unmarshal(openAPIDoc, &raw); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.0.") {
		t.Fatalf("openapi version %q, want 3.0.x", doc.OpenAPI)
	}
	if len(doc.Security) == 0 {
		t.Fatal("openapi.json has no global security requirement")
	}
	return doc, raw
}

// TestOpenAPIMatchesRoutes checks the OpenAPI document against the routes the
// handler registers, in both directions, and that the document's security
// is what the server does: every operation without "security: []" answers
// 401 without a token, the others answer without one.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	doc, raw := loadOpenAPI(t)
	h := newTestHandler(t, nil)

	documented := map[string]bool{}
	ids := map[string]string{}
	paramRe := regexp.MustCompile(`\{([^}]+)\}`)
	for path, item := range doc.Paths {
		for key, rawOp := range item {
			if key == "parameters" {
				continue
			}
			if !slices.Contains(httpMethods, key) {
				t.Errorf("%s: unknown key %q in path item", path, key)
				continue
			}
			method := strings.ToUpper(key)
			documented[method+" "+path] = true
			var op openAPIOperation
			if err := json.Unmarshal(rawOp, &op); err != nil {
				t.Errorf("%s %s: %v", method, path, err)
				continue
			}
			if op.OperationID == "" {
				t.Errorf("%s %s: no operationId", method, path)
			} else if other, dup := ids[op.OperationID]; dup {
				t.Errorf("operationId %q used by %s and %s %s", op.OperationID, other, method, path)
			}
			ids[op.OperationID] = method + " " + path
			if len(op.Responses) == 0 {
				t.Errorf("%s %s: no responses", method, path)
			}
			for _, m := range paramRe.FindAllStringSubmatch(path, -1) {
				found := false
				for _, p := range op.Parameters {
					if (p.In == "path" && p.Name == m[1]) || p.Ref == "#/components/parameters/"+m[1] {
						found = true
					}
				}
				if !found {
					t.Errorf("%s %s: path parameter %q not declared", method, path, m[1])
				}
			}
			public := op.Security != nil && len(*op.Security) == 0
			checkAuth(t, h, method, path, public)
		}
	}

	registered := map[string]bool{}
	for _, rt := range h.Routes() {
		key := rt.Method + " " + rt.Path
		registered[key] = true
		if !documented[key] {
			t.Errorf("route %s is registered but not in openapi.json", key)
		}
	}
	for key := range documented {
		if !registered[key] {
			t.Errorf("openapi.json documents %s, which is not registered", key)
		}
	}
	if len(registered) < 4 {
		t.Fatalf("only %d routes registered", len(registered))
	}
	checkRefs(t, raw, raw)
}

// checkAuth requests a documented operation without a token and with a
// wrong one.
func checkAuth(t *testing.T, h http.Handler, method, path string, public bool) {
	t.Helper()
	url := strings.NewReplacer("{", "", "}", "").Replace(path) // {id} becomes "id"
	for _, auth := range []string{"", "Bearer wrong-token-wrong-token", "Basic dXNlcjpwdw=="} {
		req := httptest.NewRequest(method, url, strings.NewReader("{}"))
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch {
		case public && rec.Code == http.StatusUnauthorized:
			t.Errorf("%s %s is documented as public but answers 401", method, path)
		case !public && rec.Code != http.StatusUnauthorized:
			t.Errorf("%s %s with Authorization %q: status %d, want 401", method, path, auth, rec.Code)
		case !public:
			var body map[string]string
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body["error"] == "" {
				t.Errorf("%s %s: 401 body %q is not a JSON error", method, path, rec.Body.String())
			}
			if rec.Header().Get("WWW-Authenticate") == "" {
				t.Errorf("%s %s: 401 without WWW-Authenticate", method, path)
			}
		}
		if public {
			break
		}
	}
}

// checkRefs fails for every $ref that does not resolve within the document.
func checkRefs(t *testing.T, root map[string]any, v any) {
	t.Helper()
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if k == "$ref" {
				ref, _ := e.(string)
				if !resolves(root, ref) {
					t.Errorf("$ref %q does not resolve", ref)
				}
				continue
			}
			checkRefs(t, root, e)
		}
	case []any:
		for _, e := range x {
			checkRefs(t, root, e)
		}
	}
}

func resolves(root map[string]any, ref string) bool {
	rest, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return false
	}
	var cur any = root
	for _, part := range strings.Split(rest, "/") {
		m, ok := cur.(map[string]any)
		if !ok {
			return false
		}
		if cur, ok = m[part]; !ok {
			return false
		}
	}
	return true
}

func TestOpenAPIServed(t *testing.T) {
	h := newTestHandler(t, nil)
	rec := do(t, h, "GET", "/api/v1/openapi.json", testToken, "")
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("status %d, content type %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	if rec.Body.String() != string(openAPIDoc) {
		t.Error("served document differs from the embedded one")
	}
}
