package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

const testToken = "test-token-0123456789"

// syncBuffer is a bytes.Buffer safe for the logger and the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func do(t *testing.T, h http.Handler, method, path, token, body string) *httptest.ResponseRecorder {
	t.Helper()
	var rd *strings.Reader
	if body != "" {
		rd = strings.NewReader(body)
	} else {
		rd = strings.NewReader("")
	}
	req := httptest.NewRequest(method, path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func errorBody(t *testing.T, rec *httptest.ResponseRecorder) string {
	t.Helper()
	var e map[string]string
	if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
		t.Fatalf("body %q is not a JSON error: %v", rec.Body.String(), err)
	}
	if e["error"] == "" || len(e) != 1 {
		t.Fatalf("body %q is not {\"error\": ...}", rec.Body.String())
	}
	return e["error"]
}

func TestAuth(t *testing.T) {
	h := newTestHandler(t, nil)
	tests := []struct {
		name   string
		header string
		want   int
	}{
		{"none", "", http.StatusUnauthorized},
		{"wrong token", "Bearer " + testToken + "x", http.StatusUnauthorized},
		{"prefix of token", "Bearer " + testToken[:10], http.StatusUnauthorized},
		{"basic", "Basic " + testToken, http.StatusUnauthorized},
		{"bearer without token", "Bearer", http.StatusUnauthorized},
		{"right", "Bearer " + testToken, http.StatusOK},
		{"scheme case-insensitive", "bearer " + testToken, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "/api/v1/openapi.json", nil)
			if tt.header != "" {
				req.Header.Set("Authorization", tt.header)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.want {
				t.Fatalf("status %d, want %d", rec.Code, tt.want)
			}
			if tt.want == http.StatusUnauthorized {
				errorBody(t, rec)
			}
		})
	}
}

func TestUnknownRoutesAndMethods(t *testing.T) {
	h := newTestHandler(t, nil)
	tests := []struct {
		method, path, token string
		want                int
		allow               string
	}{
		{"GET", "/api/v1/nothing-here", testToken, http.StatusNotFound, ""},
		{"GET", "/api/v1/nothing-here", "", http.StatusUnauthorized, ""},
		{"GET", "/elsewhere", "", http.StatusNotFound, ""},
		{"DELETE", "/api/v1/openapi.json", testToken, http.StatusMethodNotAllowed, "GET, HEAD"},
		{"DELETE", "/api/v1/openapi.json", "", http.StatusUnauthorized, ""},
		{"POST", "/healthz", "", http.StatusMethodNotAllowed, "GET, HEAD"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			rec := do(t, h, tt.method, tt.path, tt.token, "")
			if rec.Code != tt.want {
				t.Fatalf("status %d, want %d (%s)", rec.Code, tt.want, rec.Body.String())
			}
			errorBody(t, rec)
			if got := rec.Header().Get("Allow"); got != tt.allow {
				t.Errorf("Allow %q, want %q", got, tt.allow)
			}
		})
	}
}

func TestHealthReadyMetrics(t *testing.T) {
	var mu sync.Mutex
	brokerErr := errors.New("broker not running")
	reg := prometheus.NewRegistry()
	h := newTestHandler(t, func(o *Options) {
		o.Metrics = reg
		o.Ready = []ReadyCheck{
			{Name: "store", Check: func(context.Context) error { return nil }},
			{Name: "broker", Check: func(context.Context) error { mu.Lock(); defer mu.Unlock(); return brokerErr }},
		}
	})

	if rec := do(t, h, "GET", "/healthz", "", ""); rec.Code != http.StatusOK {
		t.Errorf("healthz %d", rec.Code)
	}
	rec := do(t, h, "GET", "/readyz", "", "")
	var ready readyResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &ready); err != nil {
		t.Fatal(err)
	}
	if rec.Code != http.StatusServiceUnavailable || ready.Checks["broker"] != "broker not running" || ready.Checks["store"] != "ok" {
		t.Errorf("readyz with a failing check: %d %+v", rec.Code, ready)
	}
	mu.Lock()
	brokerErr = nil
	mu.Unlock()
	if rec := do(t, h, "GET", "/readyz", "", ""); rec.Code != http.StatusOK {
		t.Errorf("readyz with passing checks: %d %s", rec.Code, rec.Body.String())
	}

	rec = do(t, h, "GET", "/metrics", "", "")
	if rec.Code != http.StatusOK {
		t.Fatalf("metrics %d", rec.Code)
	}
	for _, want := range []string{
		`kogge_api_requests_total{code="200",method="GET",route="/healthz"} 1`,
		`kogge_api_requests_total{code="503",method="GET",route="/readyz"} 1`,
		`kogge_api_request_duration_seconds_bucket`,
	} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("metrics lack %q:\n%s", want, rec.Body.String())
		}
	}
}

func TestAccessLog(t *testing.T) {
	var logs syncBuffer
	h := newTestHandler(t, func(o *Options) {
		o.Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	do(t, h, "POST", "/api/v1/nothing?secret=1", testToken, `{"password": "hunter2"}`)
	var line map[string]any
	for l := range strings.SplitSeq(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if m["msg"] == "http request" {
			line = m
		}
	}
	if line == nil {
		t.Fatalf("no access log line in %s", logs.String())
	}
	if line["method"] != "POST" || line["path"] != "/api/v1/nothing" || line["status"] != float64(404) || line["duration"] == nil {
		t.Errorf("access log line %v", line)
	}
	if strings.Contains(logs.String(), "hunter2") || strings.Contains(logs.String(), "secret=1") {
		t.Errorf("access log shows the body or the query: %s", logs.String())
	}
}

func TestDecodeStrict(t *testing.T) {
	type body struct {
		Name string `json:"name"`
		N    int    `json:"n"`
	}
	tests := []struct {
		name   string
		in     string
		status int
		want   string
	}{
		{"ok", `{"name": "a", "n": 1}`, 0, ""},
		{"empty", ``, 400, "empty request body"},
		{"blank", "  \n", 400, "empty request body"},
		{"unknown field", `{"name": "a", "extra": 1}`, 400, `unknown field "extra"`},
		{"wrong type", `{"name": 5}`, 400, `field "name" must be a string`},
		{"not an object", `[1]`, 400, "must be an object"},
		{"syntax", `{"name": }`, 400, "not valid JSON"},
		{"truncated", `{"name": "a"`, 400, "ends before"},
		{"trailing", `{"name": "a"} {}`, 400, "trailing data"},
		{"too large", `{"name": "` + strings.Repeat("a", MaxBodySize) + `"}`, 413, "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b body
			err := decodeStrict([]byte(tt.in), &b)
			if tt.status == 0 {
				if err != nil || b.Name != "a" {
					t.Fatalf("err %v, body %+v", err, b)
				}
				return
			}
			var he *httpError
			if !errors.As(err, &he) || he.status != tt.status || !strings.Contains(he.msg, tt.want) {
				t.Fatalf("error %v, want %d with %q", err, tt.status, tt.want)
			}
		})
	}
}

func TestReadBodyContentType(t *testing.T) {
	tests := []struct {
		ct   string
		want int
	}{{"", 0}, {"application/json", 0}, {"application/json; charset=utf-8", 0}, {"application/merge-patch+json", 0},
		{"text/plain", 415}, {"multipart/form-data; boundary=x", 415}, {"garbage;;", 415}}
	for _, tt := range tests {
		t.Run(tt.ct, func(t *testing.T) {
			req := httptest.NewRequest("POST", "/", strings.NewReader(`{}`))
			if tt.ct != "" {
				req.Header.Set("Content-Type", tt.ct)
			}
			_, err := readBody(req)
			var he *httpError
			switch {
			case tt.want == 0 && err != nil:
				t.Fatal(err)
			case tt.want != 0 && (!errors.As(err, &he) || he.status != tt.want):
				t.Fatalf("error %v, want status %d", err, tt.want)
			}
		})
	}
}

func TestNewRejects(t *testing.T) {
	if _, err := New("", Services{}, Options{}); err == nil {
		t.Error("empty token accepted")
	}
	if _, err := New(testToken, Services{}, Options{}); err == nil || !strings.Contains(err.Error(), "registry") {
		t.Errorf("missing services: err %v", err)
	}
	env := newTestEnv(t, nil)
	if _, err := New(testToken, env.h.svc, Options{Ready: []ReadyCheck{{Name: "x"}}}); err == nil {
		t.Error("ready check without a function accepted")
	}
}
