package webhook_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/kogge-fleet/kogge/fleet-server/bridge/bridgetest"
	"github.com/kogge-fleet/kogge/fleet-server/connectors/webhook"
	"github.com/kogge-fleet/kogge/protocol/casefile"
)

// FuzzParseAnswer feeds arbitrary answers to ParseAnswer: it must not
// panic, and a receipt it accepts is valid UTF-8 without control
// characters in the reference and within the limits.
func FuzzParseAnswer(f *testing.F) {
	f.Add("application/json", "", []byte(`{"reference":"PA-1","note":"ok"}`))
	f.Add("", "PA-2", []byte(``))
	f.Add("text/html", "", []byte(`<html>`))
	f.Add("application/json; charset=utf-8", "X", []byte(`{"reference": 17`))
	f.Fuzz(func(t *testing.T, ctype, header string, body []byte) {
		h := http.Header{}
		h.Set("Content-Type", ctype)
		h.Set(webhook.HeaderReference, header)
		rc, err := webhook.ParseAnswer(h, body)
		if err != nil {
			return
		}
		if !utf8.ValidString(rc.Reference) || !utf8.ValidString(rc.Note) || len(rc.Reference) > 256 || len(rc.Note) > 1024 {
			t.Fatalf("accepted receipt %+q", rc)
		}
		for _, r := range rc.Reference {
			if r < 0x20 || r == 0x7f {
				t.Fatalf("reference with a control character: %q", rc.Reference)
			}
		}
	})
}

// FuzzParseDocument feeds arbitrary bodies to ParseDocument, the
// receiver's parser: no panic, and what it accepts has an id and a kind.
func FuzzParseDocument(f *testing.F) {
	for _, kind := range casefile.Kinds() {
		doc, err := webhook.NewDocument(bridgetest.Case(kind, 64))
		if err != nil {
			f.Fatal(err)
		}
		b, err := json.Marshal(doc)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`{"version":1,"id":"019acd6e-6400-7000-8000-000000000001","kind":"x.y","blobs":[{"id":"019acd6e-6400-7000-8000-000000000002","size":0,"sha256":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := webhook.ParseDocument(b)
		if err != nil {
			return
		}
		if d.ID.String() == "00000000-0000-0000-0000-000000000000" || d.Kind == "" || d.Version < 1 {
			t.Fatalf("accepted document without id, kind or version: %+v", d)
		}
	})
}

// FuzzVerify: arbitrary signature headers never verify unless they are the
// signature of the body.
func FuzzVerify(f *testing.F) {
	f.Add("1800000000", "sha256=00", []byte("{}"))
	f.Add("", "", []byte(""))
	f.Fuzz(func(t *testing.T, ts, sig string, body []byte) {
		h := http.Header{}
		h.Set(webhook.HeaderTimestamp, ts)
		h.Set(webhook.HeaderSignature, sig)
		err := webhook.Verify(secret, h, body, time.Unix(1_800_000_000, 0), time.Hour)
		if err == nil && sig != webhook.Sign(secret, ts, body) {
			t.Fatalf("verified a signature that is not the body's: %q", sig)
		}
	})
}
