package delivery

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/fleet-server/audit"
)

// The bridge API, served on the enrollment HTTPS listener. A bridge
// authenticates with its client certificate from the fleet CA (CN
// bridge.<office>, issued by the registry) and may touch only its own
// office's records.
//
//	POST /bridge/v1/lease                    LeaseRequest → 200 LeaseResponse
//	GET  /bridge/v1/records/{id}/blobs/{blob}             → 200 application/octet-stream
//	     (Content-Length: the blob's size; X-Kogge-Blob-SHA256: its digest in hex)
//	POST /bridge/v1/records/{id}/ack         AckRequest    → 204
//	POST /bridge/v1/records/{id}/fail        FailRequest   → 204
//	POST /bridge/v1/records/{id}/status      StatusRequest → 204
//
// Errors are ErrorResponse bodies: 400 a bad request, 401 no client
// certificate, 403 not a bridge certificate, a revoked one, or another
// office's record or queue, 404 no such record or blob, 409 lease lost
// (ErrLeaseLost), 413 a body too large, 500 the server failed.

// BridgePrefix is the root of the bridge API.
const BridgePrefix = "/bridge/v1/"

// BlobDigestHeader carries a blob's SHA-256 in hex.
const BlobDigestHeader = "X-Kogge-Blob-SHA256"

// ErrForbidden refuses a bridge: its certificate is no bridge's or is
// revoked, or the record belongs to another office.
var ErrForbidden = errors.New("forbidden")

// Authenticate returns the office of a bridge from its verified client
// certificate. An error wrapping ErrForbidden refuses the bridge (403); any
// other error is a failure (500). fleet-server/registry's BridgeOffice does
// the work; the app translates its errors.
type Authenticate func(ctx context.Context, cert *x509.Certificate) (string, error)

// HandlerOptions are the optional settings of NewHandler.
type HandlerOptions struct {
	Logger *slog.Logger
}

type handler struct {
	q    *Queue
	auth Authenticate
	log  *slog.Logger
	mux  *http.ServeMux
}

// NewHandler returns the bridge API over q. Serve it over TLS that asks
// for client certificates from the fleet CA (registry.HTTPSTLSConfig).
func NewHandler(q *Queue, auth Authenticate, opts HandlerOptions) (http.Handler, error) {
	if q == nil || auth == nil {
		return nil, errors.New("delivery: bridge API needs the queue and an authenticator")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	h := &handler{q: q, auth: auth, log: opts.Logger, mux: http.NewServeMux()}
	h.mux.HandleFunc("POST "+BridgePrefix+"lease", h.bridge(h.lease))
	h.mux.HandleFunc("GET "+BridgePrefix+"records/{id}/blobs/{blob}", h.bridge(h.record(h.blob)))
	h.mux.HandleFunc("POST "+BridgePrefix+"records/{id}/ack", h.bridge(h.record(h.ack)))
	h.mux.HandleFunc("POST "+BridgePrefix+"records/{id}/fail", h.bridge(h.record(h.fail)))
	h.mux.HandleFunc("POST "+BridgePrefix+"records/{id}/status", h.bridge(h.record(h.status)))
	h.mux.HandleFunc(BridgePrefix, func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such endpoint: %s %s", r.Method, r.URL.Path))
	})
	return h.mux, nil
}

// bridgeFunc serves a request of the bridge of office.
type bridgeFunc func(w http.ResponseWriter, r *http.Request, office string) error

// bridge authenticates the bridge and writes fn's error.
func (h *handler) bridge(fn bridgeFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
			writeError(w, http.StatusUnauthorized, "the bridge API needs the bridge's client certificate from the fleet CA (mutual TLS)")
			return
		}
		cert := r.TLS.VerifiedChains[0][0]
		office, err := h.auth(r.Context(), cert)
		if err != nil {
			h.writeErr(w, r, err)
			return
		}
		ctx := audit.WithActor(r.Context(), audit.Bridge(office))
		if err := fn(w, r.WithContext(ctx), office); err != nil {
			h.writeErr(w, r, err)
		}
	}
}

// record checks that the record in the path belongs to the bridge's office.
func (h *handler) record(fn func(w http.ResponseWriter, r *http.Request, id uuid.UUID) error) bridgeFunc {
	return func(w http.ResponseWriter, r *http.Request, office string) error {
		id, err := uuid.Parse(r.PathValue("id"))
		if err != nil {
			return invalidf("record id %q is not a UUID", clip(r.PathValue("id")))
		}
		owner, err := h.q.OfficeOf(r.Context(), id)
		if err != nil {
			return err
		}
		if owner != office {
			return fmt.Errorf("%w: record %v goes to another office, not to %s", ErrForbidden, id, office)
		}
		return fn(w, r, id)
	}
}

func (h *handler) lease(w http.ResponseWriter, r *http.Request, office string) error {
	b, err := readBody(w, r)
	if err != nil {
		return err
	}
	req, err := DecodeLeaseRequest(b)
	if err != nil {
		return err
	}
	if req.Office != office {
		return fmt.Errorf("%w: this certificate is for office %s, not %s", ErrForbidden, office, req.Office)
	}
	ds, err := h.q.Lease(r.Context(), office, req.Max, time.Duration(req.VisibilityMS)*time.Millisecond)
	if err != nil {
		return err
	}
	if ds == nil {
		ds = []Delivery{}
	}
	return writeJSON(w, http.StatusOK, LeaseResponse{Deliveries: ds})
}

func (h *handler) blob(w http.ResponseWriter, r *http.Request, id uuid.UUID) error {
	blob, err := uuid.Parse(r.PathValue("blob"))
	if err != nil {
		return invalidf("blob id %q is not a UUID", clip(r.PathValue("blob")))
	}
	info, err := h.q.BlobInfo(r.Context(), id, blob)
	if err != nil {
		return err
	}
	lw := &lazyWriter{w: w, header: func() {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatUint(info.Size, 10))
		w.Header().Set(BlobDigestHeader, hex.EncodeToString(info.SHA256[:]))
		w.Header().Set("Cache-Control", "no-store")
	}}
	err = h.q.Blob(r.Context(), id, blob, lw)
	if err != nil && lw.wrote {
		// The status is out; the short body tells the client.
		h.log.Warn("bridge API: sending a blob failed midway", "record", id, "blob", blob, "err", err)
		return nil
	}
	if err == nil && !lw.wrote {
		lw.header()
		w.WriteHeader(http.StatusOK)
	}
	return err
}

// lazyWriter sets the headers of a successful answer only at the first
// write, so that an error before it can still be answered as such.
type lazyWriter struct {
	w      http.ResponseWriter
	header func()
	wrote  bool
}

func (l *lazyWriter) Write(b []byte) (int, error) {
	if !l.wrote {
		l.wrote = true
		l.header()
	}
	return l.w.Write(b)
}

func (h *handler) ack(w http.ResponseWriter, r *http.Request, id uuid.UUID) error {
	b, err := readBody(w, r)
	if err != nil {
		return err
	}
	req, err := DecodeAckRequest(b)
	if err != nil {
		return err
	}
	if err := h.q.Ack(r.Context(), id, req.Attempt, Receipt{Reference: req.Reference, Note: req.Note}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *handler) fail(w http.ResponseWriter, r *http.Request, id uuid.UUID) error {
	b, err := readBody(w, r)
	if err != nil {
		return err
	}
	req, err := DecodeFailRequest(b)
	if err != nil {
		return err
	}
	if err := h.q.Fail(r.Context(), id, req.Attempt, req.Reason, req.Permanent); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *handler) status(w http.ResponseWriter, r *http.Request, id uuid.UUID) error {
	b, err := readBody(w, r)
	if err != nil {
		return err
	}
	req, st, err := DecodeStatusRequest(b)
	if err != nil {
		return err
	}
	if err := h.q.Update(r.Context(), id, st, req.Reference, req.Note); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// errTooLarge is a request body beyond MaxRequestBody.
var errTooLarge = errors.New("request body too large")

func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxRequestBody))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, errTooLarge
	}
	if err != nil {
		return nil, invalidf("reading the body: %v", err)
	}
	return b, nil
}

// writeErr answers err with its status; failures of the server are logged
// and answered without their details.
func (h *handler) writeErr(w http.ResponseWriter, r *http.Request, err error) {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, errTooLarge):
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", MaxRequestBody))
		return
	case errors.Is(err, ErrInvalid):
		status = http.StatusBadRequest
	case errors.Is(err, ErrForbidden):
		status = http.StatusForbidden
	case errors.Is(err, ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, ErrLeaseLost):
		status = http.StatusConflict
	}
	if status == http.StatusInternalServerError {
		if r.Context().Err() != nil {
			return
		}
		h.log.Error("bridge API request failed", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "err", err)
		writeError(w, status, "the server could not handle the request; try again later")
		return
	}
	if status == http.StatusForbidden {
		h.log.Warn("bridge API request refused", "path", r.URL.Path, "remote", r.RemoteAddr, "err", err)
	}
	writeError(w, status, err.Error())
}

func writeError(w http.ResponseWriter, status int, msg string) {
	_ = writeJSON(w, status, ErrorResponse{Error: msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode response: %w", err)
	}
	w.Header().Del("Content-Length")
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
	return nil
}
