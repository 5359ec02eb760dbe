package procedures_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kogge-fleet/kogge/fleet-server/bridge/bridgetest"
	"github.com/kogge-fleet/kogge/fleet-server/connectors/webhook"
	"github.com/kogge-fleet/kogge/protocol/casefile"
	"github.com/kogge-fleet/kogge/simulators/procedures"
)

// FuzzWebhookCheck feeds arbitrary requests to the receiver's check: no
// panics, and nothing unsigned or mis-keyed passes.
func FuzzWebhookCheck(f *testing.F) {
	secret := []byte("s")
	sim, err := procedures.NewWebhook(procedures.WebhookOptions{Secret: secret})
	if err != nil {
		f.Fatal(err)
	}
	defer sim.Close()
	doc, _ := webhook.NewDocument(bridgetest.Case(casefile.KindReport, 64))
	body, _ := json.Marshal(doc)
	f.Add("1800000000", webhook.Sign(secret, "1800000000", body), doc.ID.String(), body)
	f.Add("", "", "", []byte(`{}`))
	f.Fuzz(func(t *testing.T, ts, sig, key string, body []byte) {
		h := http.Header{}
		h.Set(webhook.HeaderTimestamp, ts)
		h.Set(webhook.HeaderSignature, sig)
		h.Set(webhook.HeaderIdempotencyKey, key)
		got, _, status, err := sim.Check(h, body)
		if err != nil {
			if status < 400 || status > 499 {
				t.Fatalf("refusal with status %d", status)
			}
			return
		}
		if got != key || sig != webhook.Sign(secret, ts, body) {
			t.Fatalf("accepted key %q with signature %q", got, sig)
		}
	})
}

// FuzzOpen311Form feeds arbitrary forms to the server's POST check.
func FuzzOpen311Form(f *testing.F) {
	sim, err := procedures.NewOpen311(procedures.Open311Options{APIKey: "k", Clock: func() time.Time { return time.Unix(0, 0) }})
	if err != nil {
		f.Fatal(err)
	}
	defer sim.Close()
	f.Add("api_key=k&service_code=001&lat=53.1&long=8.8&attribute%5Bkogge_record_id%5D=r1", []byte(nil))
	f.Add("api_key=k&service_code=001&address_string=x&media_url=https://e/x.jpg", []byte("\xff\xd8\xff\xe0"))
	f.Fuzz(func(t *testing.T, form string, media []byte) {
		v, err := url.ParseQuery(form)
		if err != nil {
			return
		}
		req, status, err := sim.ParseForm(v, media, "image/jpeg")
		if err != nil {
			if status < 400 || status > 499 {
				t.Fatalf("refusal with status %d", status)
			}
			return
		}
		if v.Get("api_key") != "k" || req.ServiceCode == "" || (req.Lat == nil && req.Address == "" && v.Get("address_id") == "") {
			t.Fatalf("accepted %v", v)
		}
	})
}

// FuzzDropFile feeds arbitrary files to the drop-directory parsers.
func FuzzDropFile(f *testing.F) {
	for _, name := range []string{"application.xml", "application.json"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "fleet-server", "connectors", "idpass", "testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add("019acd6e-6400-7000-8000-000000000001."+filepath.Ext(name)[1:], b)
	}
	for _, name := range []string{"notice.xml", "notice.json"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "fleet-server", "connectors", "owi", "testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add("019acd6e-6400-7000-8000-000000000002."+filepath.Ext(name)[1:], b)
	}
	f.Fuzz(func(t *testing.T, name string, b []byte) {
		for _, parse := range []procedures.ParseFunc{procedures.ParseIDPass, procedures.ParseOWI} {
			key, kind, err := parse(name, b)
			if err == nil && (key == "" || kind == "") {
				t.Fatalf("accepted without key or kind: %q %q", key, kind)
			}
		}
	})
}
