package api

import (
	_ "embed"
	"net/http"
)

// openAPIDoc is the OpenAPI 3.0 description of this API. A test checks it
// against the registered routes.
//
//go:embed openapi.json
var openAPIDoc []byte

// OpenAPI returns the OpenAPI document.
func OpenAPI() []byte { return append([]byte(nil), openAPIDoc...) }

func (h *Handler) openAPI(w http.ResponseWriter, r *http.Request) error {
	doc := openAPIDoc
	if h.svc.Rollouts != nil {
		merged, err := mergeOpenAPI(openAPIDoc, openAPIRollouts)
		if err != nil {
			return err
		}
		doc = merged
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(doc)
	return nil
}
