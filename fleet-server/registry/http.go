package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"time"
)

// The enrollment wire format (JSON over HTTPS). agent/enroll holds the same
// types on the device side.
//
//	POST /enroll/v1        {"code", "csr", "device_id"?, "inventory"}
//	POST /enroll/v1/renew  {"csr"}            (mTLS with the current certificate)
//	200 → {"device_id", "certificate", "ca", "broker", "not_after"}
//	4xx → {"error": "<reason>", "message": "<for a person>"}
//
// Reasons: bad_request, too_large, unsupported_media_type, code_unknown,
// code_used, code_expired, code_revoked, device_exists, certificate_required,
// revoked; 500 is "internal".

// MaxRequestBody bounds a request body, in bytes.
const MaxRequestBody = 64 << 10

type enrollRequestJSON struct {
	Code      string    `json:"code"`
	CSR       string    `json:"csr"`
	DeviceID  string    `json:"device_id,omitempty"`
	Inventory Inventory `json:"inventory"`
}

type renewRequestJSON struct {
	CSR string `json:"csr"`
}

type enrollmentJSON struct {
	DeviceID    string    `json:"device_id"`
	Certificate string    `json:"certificate"`
	CA          string    `json:"ca"`
	Broker      string    `json:"broker"`
	NotAfter    time.Time `json:"not_after"`
}

type errorJSON struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

// errTooLarge is returned by decodeStrict for an oversized body.
var errTooLarge = errors.New("request body too large")

// Handler returns the device-side HTTP handler: POST /enroll/v1 and POST
// /enroll/v1/renew. Serve it over HTTPS with HTTPSTLSConfig.
func (r *Registry) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /enroll/v1", r.serveEnroll)
	mux.HandleFunc("POST /enroll/v1/renew", r.serveRenew)
	return mux
}

func (r *Registry) serveEnroll(w http.ResponseWriter, req *http.Request) {
	if !jsonRequest(w, req) {
		return
	}
	er, err := decodeEnrollRequest(req.Body)
	if err != nil {
		r.writeError(w, req, err)
		return
	}
	e, err := r.Enroll(req.Context(), er)
	if err != nil {
		r.writeError(w, req, err)
		return
	}
	writeEnrollment(w, e)
}

func (r *Registry) serveRenew(w http.ResponseWriter, req *http.Request) {
	if req.TLS == nil || len(req.TLS.VerifiedChains) == 0 || len(req.TLS.VerifiedChains[0]) == 0 {
		writeJSON(w, http.StatusUnauthorized, errorJSON{"certificate_required",
			"renewal needs the device's current certificate from the fleet CA (mutual TLS)"})
		return
	}
	if !jsonRequest(w, req) {
		return
	}
	csr, err := decodeRenewRequest(req.Body)
	if err != nil {
		r.writeError(w, req, err)
		return
	}
	e, err := r.Renew(req.Context(), req.TLS.VerifiedChains[0][0], csr)
	if err != nil {
		r.writeError(w, req, err)
		return
	}
	writeEnrollment(w, e)
}

// decodeEnrollRequest reads an enrollment request strictly: at most
// MaxRequestBody bytes, one JSON object, no unknown fields. It does not
// check the values; Enroll does.
func decodeEnrollRequest(body io.Reader) (EnrollRequest, error) {
	var v enrollRequestJSON
	if err := decodeStrict(body, &v); err != nil {
		return EnrollRequest{}, err
	}
	return EnrollRequest{Code: v.Code, CSR: []byte(v.CSR), DeviceID: v.DeviceID, Inventory: v.Inventory}, nil
}

// decodeRenewRequest reads a renewal request like decodeEnrollRequest and
// returns its CSR.
func decodeRenewRequest(body io.Reader) ([]byte, error) {
	var v renewRequestJSON
	if err := decodeStrict(body, &v); err != nil {
		return nil, err
	}
	return []byte(v.CSR), nil
}

func decodeStrict(body io.Reader, v any) error {
	b, err := io.ReadAll(io.LimitReader(body, MaxRequestBody+1))
	if err != nil {
		return fmt.Errorf("%w: reading the body: %v", ErrInvalid, err)
	}
	if len(b) > MaxRequestBody {
		return errTooLarge
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: body is not the expected JSON object: %v", ErrInvalid, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: body holds more than one JSON value", ErrInvalid)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: body has data after the JSON object", ErrInvalid)
	}
	return nil
}

func jsonRequest(w http.ResponseWriter, req *http.Request) bool {
	mt, _, err := mime.ParseMediaType(req.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		writeJSON(w, http.StatusUnsupportedMediaType, errorJSON{"unsupported_media_type", "send the request as application/json"})
		return false
	}
	return true
}

func writeEnrollment(w http.ResponseWriter, e Enrollment) {
	writeJSON(w, http.StatusOK, enrollmentJSON{
		DeviceID: e.DeviceID, Certificate: string(e.Certificate), CA: string(e.CA),
		Broker: e.Broker, NotAfter: e.NotAfter.UTC(),
	})
}

func (r *Registry) writeError(w http.ResponseWriter, req *http.Request, err error) {
	status, reason := http.StatusInternalServerError, "internal"
	for _, m := range []struct {
		err    error
		status int
		reason string
	}{
		{errTooLarge, http.StatusRequestEntityTooLarge, "too_large"},
		{ErrInvalid, http.StatusBadRequest, "bad_request"},
		{ErrCodeUnknown, http.StatusForbidden, "code_unknown"},
		{ErrCodeUsed, http.StatusForbidden, "code_used"},
		{ErrCodeExpired, http.StatusForbidden, "code_expired"},
		{ErrCodeRevoked, http.StatusForbidden, "code_revoked"},
		{ErrExists, http.StatusConflict, "device_exists"},
		{ErrRevoked, http.StatusForbidden, "revoked"},
	} {
		if errors.Is(err, m.err) {
			status, reason = m.status, m.reason
			break
		}
	}
	msg := err.Error()
	switch status {
	case http.StatusInternalServerError:
		r.log.Error("enrollment request failed", "path", req.URL.Path, "remote", req.RemoteAddr, "error", err)
		msg = "the server could not handle the request; try again later"
	case http.StatusRequestEntityTooLarge:
		msg = fmt.Sprintf("the request body exceeds %d bytes", MaxRequestBody)
	default:
		r.log.Info("enrollment request refused", "path", req.URL.Path, "remote", req.RemoteAddr, "reason", reason, "error", err)
	}
	writeJSON(w, status, errorJSON{reason, msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
