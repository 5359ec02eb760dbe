package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
)

// MaxBodySize bounds a request body. The largest bodies are twin
// configurations, which must fit in one MQTT message (protocol.MaxMessageSize).
const MaxBodySize = 1 << 20

// httpError is an error with the status the client gets for it. Its message
// is shown to the client, so it never carries internals.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func errorf(status int, format string, args ...any) *httpError {
	return &httpError{status: status, msg: fmt.Sprintf(format, args...)}
}

func badRequest(format string, args ...any) *httpError {
	return errorf(http.StatusBadRequest, format, args...)
}

// readBody reads r's body, at most MaxBodySize bytes, after checking that it
// is declared JSON (or not declared at all).
func readBody(r *http.Request) ([]byte, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return nil, errorf(http.StatusUnsupportedMediaType, "content type %q: send application/json", ct)
		}
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, MaxBodySize+1))
	if err != nil {
		return nil, badRequest("read request body: %v", err)
	}
	if len(b) > MaxBodySize {
		return nil, errorf(http.StatusRequestEntityTooLarge, "request body larger than %d bytes", MaxBodySize)
	}
	return b, nil
}

// decodeStrict decodes exactly one JSON value from b into v: no unknown
// fields, nothing after the value, and errors that name the place.
func decodeStrict(b []byte, v any) error { return decodeJSON(b, v, false) }

// decodeStrictNumbers is decodeStrict with numbers in free-form values kept
// as json.Number, so that large integers keep their precision.
func decodeStrictNumbers(b []byte, v any) error { return decodeJSON(b, v, true) }

func decodeJSON(b []byte, v any, numbers bool) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return badRequest("empty request body: send a JSON object")
	}
	if len(b) > MaxBodySize {
		return errorf(http.StatusRequestEntityTooLarge, "request body larger than %d bytes", MaxBodySize)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if numbers {
		dec.UseNumber()
	}
	if err := dec.Decode(v); err != nil {
		return badRequest("%s", describeJSONError(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return badRequest("request body: trailing data after the JSON value")
	}
	return nil
}

func describeJSONError(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("request body is not valid JSON at byte %d: %v", se.Offset, se)
	case errors.As(err, &te):
		if te.Field != "" {
			return fmt.Sprintf("request body: field %q must be %s, not a JSON %s", te.Field, jsonKind(te.Type.Kind().String()), te.Value)
		}
		return fmt.Sprintf("request body must be %s, not a JSON %s", jsonKind(te.Type.Kind().String()), te.Value)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "request body ends before the JSON value does"
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return "request body: unknown field " + name
	}
	return "request body: " + err.Error()
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "struct", "map":
		return "an object"
	case "slice", "array":
		return "an array"
	case "bool":
		return "true or false"
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64", "float32", "float64":
		return "a number"
	}
	return "a " + goKind
}
