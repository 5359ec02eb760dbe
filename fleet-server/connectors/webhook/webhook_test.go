package webhook_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kogge-fleet/kogge/fleet-server/bridge"
	"github.com/kogge-fleet/kogge/fleet-server/bridge/bridgetest"
	"github.com/kogge-fleet/kogge/fleet-server/connectors/webhook"
	"github.com/kogge-fleet/kogge/protocol/casefile"
	"github.com/kogge-fleet/kogge/simulators/procedures"
)

var secret = []byte("shared secret of the office")

func newSim(t testing.TB, opts procedures.WebhookOptions) *procedures.Webhook {
	t.Helper()
	if opts.Secret == nil {
		opts.Secret = secret
	}
	sim, err := procedures.NewWebhook(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	return sim
}

func newConn(t testing.TB, sim *procedures.Webhook, edit func(*webhook.Config)) *webhook.Connector {
	t.Helper()
	cfg := webhook.Config{ClientConfig: webhook.ClientConfig{
		URL: sim.URL(), Secret: secret, TLS: sim.CA().ClientTLS(nil),
		Timeout: 5 * time.Second, Attempts: 3, Backoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond,
		RequireReference: true,
	}}
	if edit != nil {
		edit(&cfg)
	}
	c, err := webhook.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func deliver(t *testing.T, c bridge.Connector, cs *bridge.Case) (bridge.Receipt, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return c.Deliver(ctx, cs)
}

func TestDeliverEveryKind(t *testing.T) {
	sim := newSim(t, procedures.WebhookOptions{LogFile: t.TempDir() + "/log.jsonl"})
	conn := newConn(t, sim, nil)
	refs := map[string]bool{}
	for _, kind := range casefile.Kinds() {
		rc, err := deliver(t, conn, bridgetest.Case(kind, 2048))
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		if !strings.HasPrefix(rc.Reference, "WH-") || refs[rc.Reference] {
			t.Fatalf("%s: reference %q", kind, rc.Reference)
		}
		refs[rc.Reference] = true
	}
	if u, d := sim.Stats(); u != 3 || d != 0 {
		t.Fatalf("simulator saw %d unique, %d duplicates; want 3, 0", u, d)
	}
	kinds := map[string]bool{}
	for _, e := range sim.Ledger().Entries() {
		kinds[e.Kind] = true
	}
	if len(kinds) != 3 {
		t.Fatalf("kinds received: %v", kinds)
	}
}

// TestRedelivery: delivering the same record again (a lost ack, an expired
// lease) gives the first receipt and no second case.
func TestRedelivery(t *testing.T) {
	sim := newSim(t, procedures.WebhookOptions{})
	conn := newConn(t, sim, nil)
	cs := bridgetest.Case(casefile.KindNotice, 1024)
	first, err := deliver(t, conn, cs)
	if err != nil {
		t.Fatal(err)
	}
	again := *cs
	again.Attempt = 2
	second, err := deliver(t, conn, &again)
	if err != nil {
		t.Fatal(err)
	}
	if first != second {
		t.Fatalf("receipts differ: %+v, %+v", first, second)
	}
	if u, d := sim.Stats(); u != 1 || d != 1 {
		t.Fatalf("simulator saw %d unique, %d duplicates; want 1 case, the redelivery deduped", u, d)
	}
}

func TestFaults(t *testing.T) {
	tests := []struct {
		name      string
		fault     procedures.Fault
		n         int
		permanent bool
		ok        bool // Deliver succeeds (within its 3 attempts)
		unique    int
		dups      int // redeliveries the receiver deduped
	}{
		{"500 twice", procedures.Fault500, 2, false, true, 1, 0},
		{"500 beyond the attempts", procedures.Fault500, 3, false, false, 0, 0},
		{"garbage answer", procedures.FaultGarbage, 1, false, true, 1, 1},
		{"timeout", procedures.FaultTimeout, 1, false, true, 1, 0},
		{"connection dropped", procedures.FaultDrop, 2, false, true, 1, 0},
		{"refused", procedures.FaultRefuse, 1, true, false, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sim := newSim(t, procedures.WebhookOptions{})
			conn := newConn(t, sim, func(c *webhook.Config) {
				if tt.fault == procedures.FaultTimeout {
					c.Timeout = time.Second // only here: a loaded machine may answer others slowly
				}
			})
			sim.Inject(tt.fault, tt.n)
			cs := bridgetest.Case(casefile.KindReport, 1024)
			rc, err := deliver(t, conn, cs)
			switch {
			case tt.ok && err != nil:
				t.Fatalf("Deliver: %v", err)
			case !tt.ok && err == nil:
				t.Fatalf("Deliver succeeded with %+v", rc)
			case err != nil && errors.Is(err, bridge.ErrPermanent) != tt.permanent:
				t.Fatalf("Deliver: %v; permanent %v, want %v", err, errors.Is(err, bridge.ErrPermanent), tt.permanent)
			}
			if u, d := sim.Stats(); u != tt.unique || d != tt.dups {
				t.Fatalf("simulator saw %d unique, %d duplicates; want %d, %d", u, d, tt.unique, tt.dups)
			}
			if !tt.ok && !tt.permanent {
				// The queue redelivers: now it goes through, once.
				if _, err := deliver(t, conn, cs); err != nil {
					t.Fatalf("redelivery: %v", err)
				}
				if u, _ := sim.Stats(); u != 1 {
					t.Fatalf("%d cases after the redelivery, want 1", u)
				}
			}
		})
	}
}

func TestWrongSecretIsPermanent(t *testing.T) {
	sim := newSim(t, procedures.WebhookOptions{})
	conn := newConn(t, sim, func(c *webhook.Config) { c.Secret = []byte("another secret") })
	_, err := deliver(t, conn, bridgetest.Case(casefile.KindReport, 64))
	if !errors.Is(err, bridge.ErrPermanent) || !strings.Contains(err.Error(), "401") {
		t.Fatalf("Deliver = %v, want a permanent 401", err)
	}
	if u, _ := sim.Stats(); u != 0 {
		t.Fatalf("%d cases accepted with a wrong signature", u)
	}
}

func TestMutualTLS(t *testing.T) {
	sim := newSim(t, procedures.WebhookOptions{RequireClientCert: true})
	anonymous := newConn(t, sim, nil)
	if _, err := deliver(t, anonymous, bridgetest.Case(casefile.KindReport, 64)); err == nil {
		t.Fatal("delivered without a client certificate")
	}
	cert, err := sim.CA().Client("bridge.office-a")
	if err != nil {
		t.Fatal(err)
	}
	conn := newConn(t, sim, func(c *webhook.Config) { c.TLS = sim.CA().ClientTLS(&cert) })
	if _, err := deliver(t, conn, bridgetest.Case(casefile.KindReport, 64)); err != nil {
		t.Fatalf("with a client certificate: %v", err)
	}
	if u, _ := sim.Stats(); u != 1 {
		t.Fatalf("%d cases", u)
	}
}

func TestConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  webhook.ClientConfig
		want string
	}{
		{"plain http", webhook.ClientConfig{URL: "http://127.0.0.1:1/hook"}, "want https://"},
		{"relative", webhook.ClientConfig{URL: "/hook"}, "not an absolute URL"},
		{"negative attempts", webhook.ClientConfig{URL: "https://x/", Attempts: -1}, "must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := webhook.New(webhook.Config{ClientConfig: tt.cfg})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New = %v, want %q", err, tt.want)
			}
		})
	}
	if _, err := webhook.New(webhook.Config{ClientConfig: webhook.ClientConfig{URL: "http://127.0.0.1:1/", AllowHTTP: true}}); err != nil {
		t.Fatalf("AllowHTTP: %v", err)
	}
}

// TestDocument: the document carries the case and its blobs so that a
// receiver can check them.
func TestDocument(t *testing.T) {
	cs := bridgetest.Case(casefile.KindApplication, 300)
	doc, err := webhook.NewDocument(cs)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	got, err := webhook.ParseDocument(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != cs.ID || got.Kind != cs.Kind || len(got.Blobs) != 6 || got.Blobs[5].ContentType != "image/png" ||
		got.Blobs[0].ContentType != "image/jpeg" {
		t.Fatalf("document %+v", got)
	}
	app, _ := casefile.New(casefile.KindApplication)
	if err := json.Unmarshal(got.Case, app); err != nil {
		t.Fatal(err)
	}
	if app.(*casefile.Application).Number != "A-2026-000417" {
		t.Fatalf("case %+v", app)
	}

	doc.Blobs[1].Data[0] ^= 1
	b, _ = json.Marshal(doc)
	if _, err := webhook.ParseDocument(b); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("damaged blob: %v", err)
	}
}

func TestVerify(t *testing.T) {
	body := []byte(`{"version":1}`)
	now := time.Unix(1_800_000_000, 0)
	h := http.Header{}
	h.Set(webhook.HeaderTimestamp, "1800000000")
	h.Set(webhook.HeaderSignature, webhook.Sign(secret, "1800000000", body))
	tests := []struct {
		name string
		edit func(h http.Header, body []byte) []byte
		now  time.Time
		want error
	}{
		{"good", func(h http.Header, b []byte) []byte { return b }, now, nil},
		{"body changed", func(h http.Header, b []byte) []byte { return []byte(`{"version":2}`) }, now, webhook.ErrBadSignature},
		{"timestamp changed", func(h http.Header, b []byte) []byte { h.Set(webhook.HeaderTimestamp, "1800000001"); return b }, now, webhook.ErrBadSignature},
		{"stale", func(h http.Header, b []byte) []byte { return b }, now.Add(10 * time.Minute), webhook.ErrStale},
		{"unsigned", func(h http.Header, b []byte) []byte { h.Del(webhook.HeaderSignature); return b }, now, webhook.ErrNoSignature},
		{"not a number", func(h http.Header, b []byte) []byte { h.Set(webhook.HeaderTimestamp, "soon"); return b }, now, webhook.ErrBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hh := h.Clone()
			b := tt.edit(hh, body)
			if err := webhook.Verify(secret, hh, b, tt.now, 5*time.Minute); !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestParseAnswer(t *testing.T) {
	tests := []struct {
		name    string
		ctype   string
		header  string
		body    string
		want    bridge.Receipt
		wantErr bool
	}{
		{"json", "application/json", "", `{"reference":"PA-1","note":"ok"}`, bridge.Receipt{Reference: "PA-1", Note: "ok"}, false},
		{"header", "", "PA-2", ``, bridge.Receipt{Reference: "PA-2"}, false},
		{"json without reference, header", "application/json", "PA-3", `{}`, bridge.Receipt{Reference: "PA-3"}, false},
		{"empty", "", "", ``, bridge.Receipt{}, false},
		{"text with header", "text/plain", "PA-4", `thanks`, bridge.Receipt{Reference: "PA-4"}, false},
		{"html", "text/html", "", `<html>`, bridge.Receipt{}, true},
		{"garbage json", "application/json", "", `{"reference": 17`, bridge.Receipt{}, true},
		{"number reference", "application/json", "", `{"reference": 17}`, bridge.Receipt{}, true},
		{"control characters", "application/json", "", `{"reference":"a\u0000b"}`, bridge.Receipt{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.ctype != "" {
				h.Set("Content-Type", tt.ctype)
			}
			if tt.header != "" {
				h.Set(webhook.HeaderReference, tt.header)
			}
			got, err := webhook.ParseAnswer(h, []byte(tt.body))
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("ParseAnswer = %+v, %v; want %+v, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

// TestStatusClasses checks the sorting of answers into receipts, transient
// and permanent errors against a scripted server.
func TestStatusClasses(t *testing.T) {
	ca, err := procedures.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	srv, err := procedures.ServeHTTPS(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		status, _ := strconv.Atoi(r.URL.Query().Get("status"))
		if status == 302 {
			w.Header().Set("Location", "https://elsewhere.example/")
		}
		w.WriteHeader(status)
	}), ca)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	tests := []struct {
		status    int
		permanent bool
	}{
		{400, true}, {401, true}, {403, true}, {404, true}, {409, true}, {422, true},
		{408, false}, {425, false}, {429, false}, {500, false}, {502, false}, {503, false},
		{302, true},
	}
	for _, tt := range tests {
		t.Run(http.StatusText(tt.status), func(t *testing.T) {
			c, err := webhook.NewClient(webhook.ClientConfig{
				URL: srv.URL() + "/?status=" + strconv.Itoa(tt.status), TLS: ca.ClientTLS(nil), Attempts: 1, Timeout: 5 * time.Second,
			})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_, err = c.Post(context.Background(), "k", "application/json", []byte("{}"))
			if err == nil || errors.Is(err, bridge.ErrPermanent) != tt.permanent {
				t.Fatalf("status %d: %v, want permanent %v", tt.status, err, tt.permanent)
			}
		})
	}
}
