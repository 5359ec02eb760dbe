package open311

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxAnswer bounds an answer the connector reads.
const MaxAnswer = 4 << 20

// ID is a service request id or a token. Servers send it as a JSON string
// or number; it is kept as text.
type ID string

func (id *ID) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		*id = ""
		return nil
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*id = ID(s)
	default:
		var n json.Number
		if err := json.Unmarshal(b, &n); err != nil {
			return errors.New("id is neither text nor a number")
		}
		*id = ID(n.String())
	}
	return nil
}

// valid reports whether the id can serve as a reference: non-empty,
// printable, at most 128 bytes, no path separators.
func (id ID) valid() bool {
	s := string(id)
	if s == "" || len(s) > 128 || !utf8.ValidString(s) || strings.ContainsAny(s, "/\\?#%") {
		return false
	}
	for _, r := range s {
		if r <= 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// ServiceRequest is the part of a GeoReport v2 service request the
// connector reads.
type ServiceRequest struct {
	ID              ID     `json:"service_request_id"`
	Token           ID     `json:"token,omitempty"`
	Status          string `json:"status"`
	StatusNotes     string `json:"status_notes"`
	ServiceCode     string `json:"service_code"`
	ServiceNotice   string `json:"service_notice"`
	UpdatedDatetime string `json:"updated_datetime"`
}

// APIError is a GeoReport v2 error.
type APIError struct {
	Code        int    `json:"code"`
	Description string `json:"description"`
}

// parseArray reads a JSON array of objects of T, as GeoReport v2 answers.
// A single object is accepted as an array of one (some servers answer so).
func parseArray[T any](b []byte) ([]T, error) {
	if len(b) > MaxAnswer {
		return nil, fmt.Errorf("answer of %d bytes, at most %d", len(b), MaxAnswer)
	}
	b = bytes.TrimSpace(b)
	var out []T
	if len(b) > 0 && b[0] == '{' {
		var one T
		if err := strictJSON(b, &one); err != nil {
			return nil, err
		}
		return []T{one}, nil
	}
	if err := strictJSON(b, &out); err != nil {
		return nil, err
	}
	return out, nil
}

func strictJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(v); err != nil {
		return errors.New("answer is not the GeoReport v2 JSON expected")
	}
	if dec.More() {
		return errors.New("trailing data after the GeoReport v2 JSON answer")
	}
	return nil
}

// ParseCreated reads the answer to POST requests: the new request's id, or
// a token to resolve later.
func ParseCreated(b []byte) (id, token ID, notice string, err error) {
	rs, err := parseArray[ServiceRequest](b)
	if err != nil {
		return "", "", "", err
	}
	if len(rs) != 1 {
		return "", "", "", fmt.Errorf("answer names %d requests, want 1", len(rs))
	}
	r := rs[0]
	switch {
	case r.ID != "":
		if !r.ID.valid() {
			return "", "", "", errors.New("service_request_id is not a usable reference")
		}
		return r.ID, "", clipNote(r.ServiceNotice), nil
	case r.Token != "":
		if !r.Token.valid() {
			return "", "", "", errors.New("token is not usable")
		}
		return "", r.Token, clipNote(r.ServiceNotice), nil
	}
	return "", "", "", errors.New("answer has neither a service_request_id nor a token")
}

// ParseToken reads the answer to GET tokens/{token}: the request id, or ""
// while the server has not assigned one.
func ParseToken(b []byte) (ID, error) {
	rs, err := parseArray[ServiceRequest](b)
	if err != nil {
		return "", err
	}
	if len(rs) == 0 {
		return "", nil
	}
	if len(rs) > 1 {
		return "", fmt.Errorf("token names %d requests, want 1", len(rs))
	}
	id := rs[0].ID
	if id != "" && !id.valid() {
		return "", errors.New("service_request_id is not a usable reference")
	}
	return id, nil
}

// ParseRequests reads the answer to GET requests or GET requests/{id}.
func ParseRequests(b []byte) ([]ServiceRequest, error) {
	rs, err := parseArray[ServiceRequest](b)
	if err != nil {
		return nil, err
	}
	for i := range rs {
		if !rs[i].ID.valid() {
			return nil, errors.New("a request in the answer has no usable service_request_id")
		}
		rs[i].Status = strings.ToLower(strings.TrimSpace(rs[i].Status))
		rs[i].StatusNotes = clipNote(rs[i].StatusNotes)
	}
	return rs, nil
}

// ParseErrors reads a GeoReport v2 error answer; it returns nil when the
// body is not one.
func ParseErrors(b []byte) []APIError {
	es, err := parseArray[APIError](b)
	if err != nil {
		return nil
	}
	for i := range es {
		es[i].Description = clipNote(es[i].Description)
	}
	return es
}

// clipNote keeps a note within 512 bytes of valid UTF-8 without control
// characters but newlines.
func clipNote(s string) string {
	s = strings.ToValidUTF8(s, "")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\n' || r == 0x7f {
			return -1
		}
		return r
	}, s)
	if len(s) > 512 {
		s = s[:509]
		for !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
		s += "…"
	}
	return strings.TrimSpace(s)
}

// formatCoord renders a coordinate for a form.
func formatCoord(f float64) string { return strconv.FormatFloat(f, 'f', 7, 64) }
