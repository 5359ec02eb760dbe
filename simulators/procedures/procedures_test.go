package procedures_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kogge-fleet/kogge/fleet-server/bridge/bridgetest"
	"github.com/kogge-fleet/kogge/fleet-server/connectors/webhook"
	"github.com/kogge-fleet/kogge/protocol/casefile"
	"github.com/kogge-fleet/kogge/simulators/procedures"
)

func TestLedger(t *testing.T) {
	file := filepath.Join(t.TempDir(), "log.jsonl")
	l, err := procedures.NewLedger("X", file, nil)
	if err != nil {
		t.Fatal(err)
	}
	changed := l.Changed()
	r1, dup1 := l.Record("a", "k", 1)
	select {
	case <-changed:
	default:
		t.Fatal("Changed not closed by Record")
	}
	r2, dup2 := l.Record("b", "k", 2)
	r3, dup3 := l.Record("a", "k", 3)
	if r1 != "X-000001" || r2 != "X-000002" || r3 != r1 || dup1 || dup2 || !dup3 {
		t.Fatalf("references %s %s %s, duplicates %v %v %v", r1, r2, r3, dup1, dup2, dup3)
	}
	if u, d := l.Stats(); u != 2 || d != 1 {
		t.Fatalf("stats %d, %d", u, d)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var entries []procedures.Entry
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e procedures.Entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatal(err)
		}
		entries = append(entries, e)
	}
	if len(entries) != 3 || !entries[2].Duplicate || entries[2].Key != "a" {
		t.Fatalf("log %+v", entries)
	}
}

func post(t *testing.T, c *http.Client, u string, h http.Header, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = h
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestWebhookChecks: the receiver refuses unsigned, mis-signed and
// mismatched deliveries and dedupes on the key.
func TestWebhookChecks(t *testing.T) {
	secret := []byte("s3cret")
	sim, err := procedures.NewWebhook(procedures.WebhookOptions{Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: sim.CA().ClientTLS(nil)}}
	defer client.CloseIdleConnections()
	cs := bridgetest.Case(casefile.KindReport, 64)
	doc, _ := webhook.NewDocument(cs)
	body, _ := json.Marshal(doc)
	signed := func(key string, b []byte) http.Header {
		h := http.Header{}
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		h.Set(webhook.HeaderTimestamp, ts)
		h.Set(webhook.HeaderSignature, webhook.Sign(secret, ts, b))
		h.Set(webhook.HeaderIdempotencyKey, key)
		return h
	}
	tests := []struct {
		name   string
		h      http.Header
		body   []byte
		status int
	}{
		{"unsigned", http.Header{webhook.HeaderIdempotencyKey: {cs.ID.String()}}, body, 401},
		{"wrong secret", func() http.Header {
			h := signed(cs.ID.String(), body)
			h.Set(webhook.HeaderSignature, webhook.Sign([]byte("other"), h.Get(webhook.HeaderTimestamp), body))
			return h
		}(), body, 401},
		{"no key", func() http.Header { h := signed("", body); h.Del(webhook.HeaderIdempotencyKey); return h }(), body, 400},
		{"key is not the record", signed("another", body), body, 400},
		{"not a document", signed(cs.ID.String(), []byte(`{}`)), []byte(`{}`), 400},
		{"good", signed(cs.ID.String(), body), body, 200},
		{"again", signed(cs.ID.String(), body), body, 200},
	}
	var refs []string
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, answer := post(t, client, sim.URL(), tt.h, tt.body)
			if status != tt.status {
				t.Fatalf("status %d (%s), want %d", status, answer, tt.status)
			}
			if status == 200 {
				var a webhook.Answer
				if err := json.Unmarshal([]byte(answer), &a); err != nil {
					t.Fatal(err)
				}
				refs = append(refs, a.Reference)
			}
		})
	}
	if len(refs) != 2 || refs[0] != refs[1] {
		t.Fatalf("references %v, want the same twice", refs)
	}
	if u, d := sim.Stats(); u != 1 || d != 1 {
		t.Fatalf("stats %d, %d", u, d)
	}
}

func TestOpen311Form(t *testing.T) {
	sim, err := procedures.NewOpen311(procedures.Open311Options{APIKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	base := url.Values{"api_key": {"k"}, "service_code": {"001"}, "lat": {"53.07"}, "long": {"8.8"}, "attribute[kogge_record_id]": {"r1"}}
	tests := []struct {
		name   string
		edit   func(v url.Values)
		status int
	}{
		{"good", func(url.Values) {}, 0},
		{"address only", func(v url.Values) { v.Del("lat"); v.Del("long"); v.Set("address_string", "Am Wall 1") }, 0},
		{"wrong key", func(v url.Values) { v.Set("api_key", "x") }, 403},
		{"unknown service", func(v url.Values) { v.Set("service_code", "777") }, 400},
		{"no location", func(v url.Values) { v.Del("lat"); v.Del("long") }, 400},
		{"lat without long", func(v url.Values) { v.Del("long") }, 400},
		{"latitude 95", func(v url.Values) { v.Set("lat", "95") }, 400},
		{"long description", func(v url.Values) { v.Set("description", strings.Repeat("x", 4001)) }, 400},
		{"media url not http", func(v url.Values) { v.Set("media_url", "file:///etc/passwd") }, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := url.Values{}
			for k, vs := range base {
				v[k] = append([]string(nil), vs...)
			}
			tt.edit(v)
			req, status, err := sim.ParseForm(v, nil, "")
			if status != tt.status {
				t.Fatalf("status %d (%v), want %d", status, err, tt.status)
			}
			if status == 0 && req.Attributes["kogge_record_id"] != "r1" {
				t.Fatalf("attributes %v", req.Attributes)
			}
		})
	}
	if _, status, _ := sim.ParseForm(base, []byte("plain text, not an image"), "image/jpeg"); status != 400 {
		t.Fatalf("media that is no image: status %d", status)
	}
}

// TestOpen311Query: requests are found by id list and by the record
// attribute, and their status advances.
func TestOpen311Query(t *testing.T) {
	sim, err := procedures.NewOpen311(procedures.Open311Options{APIKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: sim.CA().ClientTLS(nil)}}
	defer client.CloseIdleConnections()
	for _, rec := range []string{"r1", "r2"} {
		v := url.Values{"api_key": {"k"}, "service_code": {"001"}, "address_string": {"Am Wall 1"}, "attribute[kogge_record_id]": {rec}}
		h := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
		if status, answer := post(t, client, sim.URL()+"requests.json", h, []byte(v.Encode())); status != 201 {
			t.Fatalf("create: %d %s", status, answer)
		}
	}
	if err := sim.Advance("100002", "closed", "done"); err != nil {
		t.Fatal(err)
	}
	get := func(q string) []map[string]any {
		t.Helper()
		resp, err := client.Get(sim.URL() + q)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out []map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return out
	}
	if got := get("requests.json?attribute%5Bkogge_record_id%5D=r2"); len(got) != 1 || got[0]["service_request_id"] != "100002" || got[0]["status"] != "closed" {
		t.Fatalf("by attribute: %v", got)
	}
	if got := get("requests.json?service_request_id=100001,100002&status=open"); len(got) != 1 || got[0]["service_request_id"] != "100001" {
		t.Fatalf("by ids and status: %v", got)
	}
	if got := get("requests/100001.json"); len(got) != 1 || got[0]["status_notes"] != "" {
		t.Fatalf("by id: %v", got)
	}
	if got := get("services.json"); len(got) != 8 {
		t.Fatalf("services: %v", got)
	}
}

func TestDropDirRejects(t *testing.T) {
	dir := t.TempDir()
	d, err := procedures.NewIDPassDrop(procedures.DropDirOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for name, content := range map[string]string{
		"rec-1.xml":     "<not-a-gid-log/>",
		".rec-2.xml":    "hidden: a write in progress",
		"rec-3.receipt": "PA-1",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	d.Scan()
	b, err := os.ReadFile(filepath.Join(dir, "rec-1.receipt"))
	if err != nil || !strings.Contains(string(b), `"status":"rejected"`) {
		t.Fatalf("receipt of a bad file: %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "rejected", "rec-1.xml")); err != nil {
		t.Fatalf("bad file not moved aside: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, ".rec-2.xml")); err != nil {
		t.Fatalf("hidden file touched: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "rec-2.receipt")); !os.IsNotExist(err) {
		t.Fatalf("hidden file imported: %v", err)
	}
	if u, _ := d.Stats(); u != 0 || len(d.Errors()) != 0 {
		t.Fatalf("%d imported, errors %v", u, d.Errors())
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := d.Run(ctx); err != nil {
		t.Fatal(err)
	}
}
