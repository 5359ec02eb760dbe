package api

import (
	"context"
	"net/http"
	"sync"
)

// healthz reports that the process serves requests.
func (h *Handler) healthz(w http.ResponseWriter, r *http.Request) error {
	return writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyResponse is the body of /readyz.
type readyResponse struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}

// readyz runs the readiness checks concurrently, each with a timeout, and
// answers 200 when all pass and 503 otherwise.
func (h *Handler) readyz(w http.ResponseWriter, r *http.Request) error {
	res := readyResponse{Status: "ready", Checks: make(map[string]string, len(h.ready))}
	errs := make([]error, len(h.ready))
	var wg sync.WaitGroup
	for i, c := range h.ready {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(r.Context(), h.readyTO)
			defer cancel()
			errs[i] = c.Check(ctx)
		})
	}
	wg.Wait()
	status := http.StatusOK
	for i, c := range h.ready {
		if errs[i] != nil {
			res.Checks[c.Name] = errs[i].Error()
			res.Status = "not ready"
			status = http.StatusServiceUnavailable
		} else {
			res.Checks[c.Name] = "ok"
		}
	}
	return writeJSON(w, status, res)
}
