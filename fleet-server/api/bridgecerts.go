package api

import (
	"net/http"
	"strings"

	"github.com/kogge-fleet/kogge/fleet-server/registry"
)

// issueBridgeCertRequest is the body of POST /api/v1/bridge-certificates.
type issueBridgeCertRequest struct {
	Office string `json:"office"`
	// CSR is a PEM certificate request for an ECDSA P-256 key.
	CSR string `json:"csr"`
}

func decodeIssueBridgeCert(b []byte) (issueBridgeCertRequest, error) {
	var v issueBridgeCertRequest
	if err := decodeStrict(b, &v); err != nil {
		return v, err
	}
	if v.Office == "" {
		return v, badRequest("office: name the office whose bridge gets the certificate")
	}
	if err := checkText("office", v.Office, maxNameLen); err != nil {
		return v, err
	}
	if !strings.Contains(v.CSR, "CERTIFICATE REQUEST") {
		return v, badRequest(`csr: send the bridge's certificate request in PEM ("-----BEGIN CERTIFICATE REQUEST-----")`)
	}
	if len(v.CSR) > registry.MaxCSRSize {
		return v, badRequest("csr: %d bytes, at most %d", len(v.CSR), registry.MaxCSRSize)
	}
	return v, nil
}

type bridgeCertList struct {
	Certificates []registry.BridgeCertificate `json:"certificates"`
}

func (h *Handler) listBridgeCerts(w http.ResponseWriter, r *http.Request) error {
	q := newQuery(r, "office")
	office := q.str("office")
	if q.err != nil {
		return q.err
	}
	cs, err := h.svc.BridgeCerts.BridgeCertificates(r.Context(), office)
	if err != nil {
		return mapError(err)
	}
	if cs == nil {
		cs = []registry.BridgeCertificate{}
	}
	return writeJSON(w, http.StatusOK, bridgeCertList{Certificates: cs})
}

// issueBridgeCert answers with the certificate and the fleet CA in PEM; the
// bridge's private key never comes here.
func (h *Handler) issueBridgeCert(w http.ResponseWriter, r *http.Request) error {
	b, err := readBody(r)
	if err != nil {
		return err
	}
	req, err := decodeIssueBridgeCert(b)
	if err != nil {
		return err
	}
	c, err := h.svc.BridgeCerts.IssueBridgeCertificate(r.Context(), req.Office, []byte(req.CSR))
	if err != nil {
		return mapError(err)
	}
	h.audit(r, "bridge_certificate.issue", "bridge_certificate", c.Serial, "office", c.Office, "not_after", c.NotAfter)
	return writeJSON(w, http.StatusCreated, c)
}

func (h *Handler) revokeBridgeCert(w http.ResponseWriter, r *http.Request) error {
	serial := r.PathValue("serial")
	c, err := h.svc.BridgeCerts.RevokeBridgeCertificate(r.Context(), serial)
	if err != nil {
		return mapError(err)
	}
	h.audit(r, "bridge_certificate.revoke", "bridge_certificate", c.Serial, "office", c.Office)
	return writeJSON(w, http.StatusOK, c)
}
