package api

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Paging limits of list endpoints.
const (
	defaultLimit = 100
	maxLimit     = 1000
)

// queryParams reads and checks query parameters; the first problem is kept.
type queryParams struct {
	v   url.Values
	err error
}

func newQuery(r *http.Request, known ...string) *queryParams {
	q := &queryParams{v: r.URL.Query()}
	for k := range q.v {
		switch {
		case slices.Contains(known, k) || q.err != nil:
		case len(known) == 0:
			q.err = badRequest("unknown query parameter %s; this endpoint takes none", describe(k))
		default:
			q.err = badRequest("unknown query parameter %s; this endpoint knows %s", describe(k), strings.Join(known, ", "))
		}
	}
	return q
}

func (q *queryParams) str(name string) string {
	s := q.v.Get(name)
	if q.err == nil {
		if err := checkText(name, s, maxNameLen); err != nil {
			q.err = err
		}
	}
	return s
}

func (q *queryParams) limit() int {
	s := q.v.Get("limit")
	if s == "" {
		return defaultLimit
	}
	n, err := strconv.Atoi(s)
	if (err != nil || n < 1 || n > maxLimit) && q.err == nil {
		q.err = badRequest("limit: %s is not a number from 1 to %d", describe(s), maxLimit)
	}
	return n
}

func (q *queryParams) time(name string) time.Time {
	s := q.v.Get(name)
	if s == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil && q.err == nil {
		q.err = badRequest("%s: %s is not an RFC 3339 time such as 2026-01-02T15:04:05Z", name, describe(s))
	}
	return t
}

func (q *queryParams) int64(name string) int64 {
	s := q.v.Get(name)
	if s == "" {
		return 0
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if (err != nil || n < 0) && q.err == nil {
		q.err = badRequest("%s: %s is not a cursor from an earlier page", name, describe(s))
	}
	return n
}
