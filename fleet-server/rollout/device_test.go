package rollout

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/fleet-server/store/pgtest"
	"github.com/kogge-fleet/kogge/protocol/artifact"
)

// deviceRequest is a request as TLS hands it over after verifying a client
// certificate.
func deviceRequest(method, path string, body io.Reader) *http.Request {
	r := httptest.NewRequest(method, path, body)
	r.TLS = &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{{}}}}
	return r
}

func TestDeviceEndpoint(t *testing.T) {
	pgtest.Stores(t, func(t *testing.T, db *storeDB) {
		e := newEnv(t, db, 2, nil)
		ctx := context.Background()
		bin := bytes.Repeat([]byte("0123456789"), 250_000) // 2.5 MB over three chunks
		signed, err := artifact.Sign(mustDescribe(t, "1.1.0", []string{"kiosk"}, bin), e.key)
		if err != nil {
			t.Fatal(err)
		}
		a, err := e.s.Upload(ctx, signed, bytes.NewReader(bin), "alice")
		if err != nil {
			t.Fatal(err)
		}
		h := e.s.DeviceHandler(func(r *http.Request) (string, error) {
			if r.Header.Get("X-Test-Device") == "revoked" {
				return "", fmt.Errorf("%w: device revoked", ErrForbidden)
			}
			return "kiosk-000", nil
		})
		do := func(r *http.Request) *httptest.ResponseRecorder {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			return w
		}

		// No client certificate, or a refused one.
		if w := do(httptest.NewRequest("GET", artifact.ManifestPath(a.ID), nil)); w.Code != http.StatusUnauthorized {
			t.Errorf("without a certificate: %d", w.Code)
		}
		r := deviceRequest("GET", artifact.ManifestPath(a.ID), nil)
		r.Header.Set("X-Test-Device", "revoked")
		if w := do(r); w.Code != http.StatusForbidden {
			t.Errorf("revoked: %d", w.Code)
		}

		// The manifest verifies.
		w := do(deviceRequest("GET", artifact.ManifestPath(a.ID), nil))
		if w.Code != http.StatusOK {
			t.Fatalf("manifest: %d %s", w.Code, w.Body)
		}
		if _, err := artifact.Verify(w.Body.Bytes(), e.keys); err != nil {
			t.Fatal(err)
		}
		if w := do(deviceRequest("GET", artifact.ManifestPath(uuid.New()), nil)); w.Code != http.StatusNotFound {
			t.Errorf("unknown artifact: %d", w.Code)
		}

		// The whole binary, and a resumed part of it across chunks.
		w = do(deviceRequest("GET", artifact.BinaryPath(a.ID), nil))
		if w.Code != http.StatusOK || !bytes.Equal(w.Body.Bytes(), bin) || w.Header().Get("ETag") != artifact.ETag(a.SHA256) {
			t.Fatalf("binary: %d, %d bytes, etag %q", w.Code, w.Body.Len(), w.Header().Get("ETag"))
		}
		r = deviceRequest("GET", artifact.BinaryPath(a.ID), nil)
		r.Header.Set("Range", fmt.Sprintf("bytes=%d-", ChunkSize-3))
		r.Header.Set("If-Range", artifact.ETag(a.SHA256))
		w = do(r)
		if w.Code != http.StatusPartialContent || !bytes.Equal(w.Body.Bytes(), bin[ChunkSize-3:]) {
			t.Fatalf("resumed: %d, %d bytes", w.Code, w.Body.Len())
		}
		if cr := w.Header().Get("Content-Range"); cr != fmt.Sprintf("bytes %d-%d/%d", ChunkSize-3, len(bin)-1, len(bin)) {
			t.Errorf("Content-Range %q", cr)
		}
		// A stale If-Range gets the whole binary again.
		r = deviceRequest("GET", artifact.BinaryPath(a.ID), nil)
		r.Header.Set("Range", "bytes=100-")
		r.Header.Set("If-Range", `"other"`)
		if w = do(r); w.Code != http.StatusOK || w.Body.Len() != len(bin) {
			t.Errorf("stale If-Range: %d, %d bytes", w.Code, w.Body.Len())
		}

		// Reports: applied, refused when malformed, 404 outside a rollout.
		ro, err := e.s.Create(ctx, Spec{Artifact: a.ID, Waves: []string{"100%"}, Window: Always}, "alice")
		if err != nil {
			t.Fatal(err)
		}
		post := func(body string) int {
			return do(deviceRequest("POST", artifact.ReportPath, strings.NewReader(body))).Code
		}
		rep, _ := json.Marshal(artifact.Report{Rollout: ro.ID, State: artifact.ReportDownloading, Version: "1.1.0", Running: "1.0.0",
			Progress: 50, At: time.Now(), Seq: 1})
		if c := post(string(rep)); c != http.StatusNoContent {
			t.Fatalf("report: %d", c)
		}
		if d := e.devices(ro.ID)["kiosk-000"]; d.State != DevDownloading || d.Progress != 50 {
			t.Errorf("after the report: %+v", d)
		}
		if c := post(`{"rollout":"` + ro.ID.String() + `","state":"exploded","version":"1"}`); c != http.StatusBadRequest {
			t.Errorf("malformed report: %d", c)
		}
		other, _ := json.Marshal(artifact.Report{Rollout: uuid.New(), State: artifact.ReportFailed, Version: "1.1.0", Seq: 2})
		if c := post(string(other)); c != http.StatusNotFound {
			t.Errorf("report for another rollout: %d", c)
		}
	})
}

func TestBandwidthBucket(t *testing.T) {
	b := newBandwidth(1000)
	w := b.writer(context.Background(), "kiosk-1", httptest.NewRecorder())
	defer w.done()
	if d := b.take("kiosk-1", 1000); d != 0 {
		t.Errorf("the first second's worth waits %v", d)
	}
	// Two more seconds' worth: about two seconds of waiting.
	if d := b.take("kiosk-1", 2000); d < 1900*time.Millisecond || d > 2100*time.Millisecond {
		t.Errorf("2000 bytes over the budget wait %v, want about 2s", d)
	}
	// Another device has its own bucket.
	w2 := b.writer(context.Background(), "kiosk-2", httptest.NewRecorder())
	if d := b.take("kiosk-2", 500); d != 0 {
		t.Errorf("another device waits %v", d)
	}
	w2.done()
	b.mu.Lock()
	_, kept := b.buckets["kiosk-2"]
	b.mu.Unlock()
	if kept {
		t.Error("the bucket of a finished download is kept")
	}
}
