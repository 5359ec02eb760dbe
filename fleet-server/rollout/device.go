package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/protocol/artifact"
)

// ErrForbidden wraps the reason a DeviceAuth refuses a request.
var ErrForbidden = errors.New("forbidden")

// DeviceAuth returns the device a request comes from, from its client
// certificate that TLS verified against the fleet CA; an error wrapping
// ErrForbidden refuses it (a revoked device, a bridge's certificate).
type DeviceAuth func(r *http.Request) (device string, err error)

// DeviceHandler serves the device endpoint under artifact.DevicePrefix:
// the signed manifests and binaries of artifacts (Range requests, ETag the
// quoted SHA-256, each device held to Options.DeviceBandwidth) and the
// devices' update reports. Serve it over HTTPS with client certificates.
func (s *Service) DeviceHandler(auth DeviceAuth) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /device/v1/artifacts/{artifact}", s.serveBinary)
	mux.HandleFunc("GET /device/v1/artifacts/{artifact}/manifest", s.serveManifest)
	mux.HandleFunc("POST "+artifact.ReportPath, s.serveReport)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
			deviceError(w, http.StatusUnauthorized, "the device endpoint needs the device's certificate from the fleet CA (mutual TLS)")
			return
		}
		device, err := auth(r)
		if errors.Is(err, ErrForbidden) {
			deviceError(w, http.StatusForbidden, err.Error())
			return
		}
		if err != nil {
			s.log.Error("device authentication failed", "err", err)
			deviceError(w, http.StatusInternalServerError, "internal error")
			return
		}
		mux.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), deviceKey{}, device)))
	})
}

type deviceKey struct{}

func deviceOf(r *http.Request) string { d, _ := r.Context().Value(deviceKey{}).(string); return d }

func deviceError(w http.ResponseWriter, status int, msg string) {
	b, _ := json.Marshal(map[string]string{"error": msg})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

func (s *Service) artifactOf(w http.ResponseWriter, r *http.Request) (Artifact, bool) {
	id, err := uuid.Parse(r.PathValue("artifact"))
	if err != nil {
		deviceError(w, http.StatusNotFound, "no such artifact")
		return Artifact{}, false
	}
	a, err := s.Artifact(r.Context(), id)
	if errors.Is(err, ErrNotFound) {
		deviceError(w, http.StatusNotFound, err.Error())
		return Artifact{}, false
	}
	if err != nil {
		s.log.Error("reading an artifact failed", "artifact", id, "err", err)
		deviceError(w, http.StatusInternalServerError, "internal error")
		return Artifact{}, false
	}
	return a, true
}

func (s *Service) serveManifest(w http.ResponseWriter, r *http.Request) {
	a, ok := s.artifactOf(w, r)
	if !ok {
		return
	}
	b, err := s.Manifest(r.Context(), a.ID)
	if err != nil {
		s.log.Error("reading a manifest failed", "artifact", a.ID, "err", err)
		deviceError(w, http.StatusInternalServerError, "internal error")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

func (s *Service) serveBinary(w http.ResponseWriter, r *http.Request) {
	a, ok := s.artifactOf(w, r)
	if !ok {
		return
	}
	device := deviceOf(r)
	s.log.Debug("device downloads an artifact", "device", device, "artifact", a.ID, "range", r.Header.Get("Range"))
	w.Header().Set("ETag", artifact.ETag(a.SHA256))
	w.Header().Set("Content-Type", "application/octet-stream")
	// A large binary over a slow link may take longer than the server's
	// write timeout: this response gets what its size and the device's
	// bandwidth need (a cut one resumes anyway).
	deadline := 10 * time.Minute
	if rate := s.opts.DeviceBandwidth; rate > 0 {
		deadline = max(deadline, 2*time.Duration(a.Size/rate)*time.Second)
	}
	if err := http.NewResponseController(w).SetWriteDeadline(time.Now().Add(deadline)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		s.log.Debug("cannot extend the write deadline of a download", "err", err)
	}
	lw := s.bw.writer(r.Context(), device, w)
	defer lw.done()
	http.ServeContent(lw, r, "", a.UploadedAt, s.openBinary(r.Context(), a))
}

func (s *Service) serveReport(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(io.LimitReader(r.Body, artifact.MaxReportSize+1))
	if err != nil {
		deviceError(w, http.StatusBadRequest, "read the report: "+err.Error())
		return
	}
	rep, err := artifact.DecodeReport(b)
	if err != nil {
		deviceError(w, http.StatusBadRequest, err.Error())
		return
	}
	switch err := s.Report(r.Context(), deviceOf(r), rep); {
	case errors.Is(err, ErrNotFound):
		deviceError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, ErrInvalid):
		deviceError(w, http.StatusBadRequest, err.Error())
	case err != nil && r.Context().Err() != nil:
		s.log.Debug("a device went away while its report was applied; it sends it again", "device", deviceOf(r), "err", err)
	case err != nil:
		s.log.Error("applying a device's report failed", "device", deviceOf(r), "err", err)
		deviceError(w, http.StatusInternalServerError, "internal error; send the report again")
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

// bandwidth holds each device's downloads to a rate, all its connections
// together, with a token bucket of one second's worth.
type bandwidth struct {
	rate int64

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
	users  int
}

func newBandwidth(rate int64) *bandwidth {
	return &bandwidth{rate: rate, buckets: map[string]*bucket{}}
}

// writer returns w held to the device's rate; call done when the response
// is written.
func (b *bandwidth) writer(ctx context.Context, device string, w http.ResponseWriter) *limitedWriter {
	lw := &limitedWriter{ResponseWriter: w, ctx: ctx, b: b, device: device}
	if b.rate <= 0 {
		return lw
	}
	b.mu.Lock()
	bk := b.buckets[device]
	if bk == nil {
		bk = &bucket{tokens: float64(b.rate), last: time.Now()}
		b.buckets[device] = bk
	}
	bk.users++
	b.mu.Unlock()
	return lw
}

// take takes n bytes from the device's bucket and says how long to wait
// before sending them.
func (b *bandwidth) take(device string, n int) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	bk := b.buckets[device]
	now := time.Now()
	bk.tokens = min(float64(b.rate), bk.tokens+now.Sub(bk.last).Seconds()*float64(b.rate))
	bk.last = now
	bk.tokens -= float64(n)
	if bk.tokens >= 0 {
		return 0
	}
	return time.Duration(-bk.tokens / float64(b.rate) * float64(time.Second))
}

func (b *bandwidth) release(device string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if bk := b.buckets[device]; bk != nil {
		if bk.users--; bk.users <= 0 {
			delete(b.buckets, device)
		}
	}
}

// limitedWriter is a ResponseWriter held to a device's rate.
type limitedWriter struct {
	http.ResponseWriter
	ctx    context.Context
	b      *bandwidth
	device string
}

func (w *limitedWriter) Write(p []byte) (int, error) {
	if w.b.rate <= 0 {
		return w.ResponseWriter.Write(p)
	}
	written := 0
	for len(p) > 0 {
		n := min(len(p), 16<<10)
		if d := w.b.take(w.device, n); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-w.ctx.Done():
				t.Stop()
				return written, w.ctx.Err()
			case <-t.C:
			}
		}
		k, err := w.ResponseWriter.Write(p[:n])
		written += k
		if err != nil {
			return written, err
		}
		p = p[n:]
	}
	return written, nil
}

func (w *limitedWriter) done() {
	if w.b.rate > 0 {
		w.b.release(w.device)
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (w *limitedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
