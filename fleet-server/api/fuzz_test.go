package api

import (
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"
)

// Every decoder of a request body has a fuzz target. The invariants: it never
// panics; it fails only with a 4xx *httpError; what it accepts satisfies the
// checks and survives a round trip through JSON.

func checkDecodeError(t *testing.T, err error) {
	t.Helper()
	var he *httpError
	if !errors.As(err, &he) || he.status < 400 || he.status > 499 || he.msg == "" {
		t.Fatalf("decode error %v (%T) is not a 4xx with a message", err, err)
	}
}

func checkAccepted(t *testing.T, field, s string, max int) {
	t.Helper()
	if len(s) > max || !utf8.ValidString(s) || strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		t.Fatalf("accepted %s %q", field, s)
	}
}

func roundTrip[T comparable](t *testing.T, v T, decode func([]byte) (T, error)) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	again, err := decode(b)
	if err != nil || again != v {
		t.Fatalf("round trip of %+v: %+v, %v", v, again, err)
	}
}

var fuzzSeeds = []string{
	``, `{}`, `null`, `[]`, `"x"`, `{"name": "Kiosks"}`, `{"id": "kiosks", "name": "Kiosks"}`,
	`{"name": "a", "extra": 1}`, `{"name": 5}`, `{"name": "a"} {}`, `{"name": "\u0000"}`,
	`{"group": "kiosks", "ttl": "24h", "note": "kiosk 3"}`, `{"group": "kiosks", "ttl": "-1s"}`,
	`{"reason": "stolen"}`, `{"config": {"a": 1}}`, `{"device": "d", "name": "reboot", "args": {"a": "b"}, "ttl": "1h"}`,
}

func FuzzDecodeCreateGroup(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := decodeCreateGroup(b)
		if err != nil {
			checkDecodeError(t, err)
			return
		}
		if strings.TrimSpace(v.Name) == "" {
			t.Fatal("accepted an empty name")
		}
		checkAccepted(t, "name", v.Name, maxNameLen)
		checkAccepted(t, "id", v.ID, maxNameLen)
		roundTrip(t, v, decodeCreateGroup)
	})
}

func FuzzDecodeRenameGroup(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := decodeRenameGroup(b)
		if err != nil {
			checkDecodeError(t, err)
			return
		}
		checkAccepted(t, "name", v.Name, maxNameLen)
		roundTrip(t, v, decodeRenameGroup)
	})
}

func FuzzDecodeCreateCode(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, ttl, err := decodeCreateCode(b)
		if err != nil {
			checkDecodeError(t, err)
			return
		}
		if v.Group == "" || ttl < 0 || ttl > maxTTL || (v.TTL == "") != (ttl == 0) {
			t.Fatalf("accepted %+v with ttl %v", v, ttl)
		}
		checkAccepted(t, "group", v.Group, maxNameLen)
		checkAccepted(t, "note", v.Note, maxReasonLen)
		roundTrip(t, v, func(b []byte) (createCodeRequest, error) {
			v, _, err := decodeCreateCode(b)
			return v, err
		})
	})
}

func FuzzDecodeRevokeDevice(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := decodeRevokeDevice(b)
		if err != nil {
			checkDecodeError(t, err)
			return
		}
		checkAccepted(t, "reason", v.Reason, maxReasonLen)
		roundTrip(t, v, decodeRevokeDevice)
	})
}

func FuzzDecodeSendCommand(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Add([]byte(`{"group": "kiosks", "name": "reboot", "ttl": "10m"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, ttl, err := decodeSendCommand(b)
		if err != nil {
			checkDecodeError(t, err)
			return
		}
		if (v.Device == "") == (v.Group == "") || v.Name == "" || len(v.Args) > maxCommandArgs || ttl < 0 || ttl > maxTTL {
			t.Fatalf("accepted %+v ttl %v", v, ttl)
		}
		for k, a := range v.Args {
			checkAccepted(t, "args key", k, maxNameLen)
			checkAccepted(t, "args value", a, maxCommandArgLen)
		}
		again, ttl2, err := decodeSendCommand(mustJSON(t, v))
		if err != nil || ttl2 != ttl || again.Device != v.Device || again.Group != v.Group || again.Name != v.Name || len(again.Args) != len(v.Args) {
			t.Fatalf("round trip of %+v: %+v %v", v, again, err)
		}
	})
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func FuzzDecodeTwin(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Add([]byte(`{"config": {"a": {"b": [1, 2.5, "x", null, true]}, "n": 12345678901234567890}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := decodeTwin(b)
		if err != nil {
			checkDecodeError(t, err)
			return
		}
		if v.Config == nil || jsonDepth(v.Config) > maxTwinDepth {
			t.Fatalf("accepted %+v", v)
		}
		again, err := decodeTwin(mustJSON(t, v))
		if err != nil || string(mustJSON(t, again)) != string(mustJSON(t, v)) {
			t.Fatalf("round trip of %s: %s %v", mustJSON(t, v), mustJSON(t, again), err)
		}
	})
}

// FuzzQuery: query parameters never panic the parsers; what they accept is
// in range.
func FuzzQuery(f *testing.F) {
	for _, s := range []string{"", "limit=10", "limit=0", "limit=x", "after=5", "after=-1", "since=2026-01-02T15:04:05Z",
		"since=yesterday", "group=a&group=b", "colour=red", "group=%ff", "group=a%00b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.URL.RawQuery = raw
		q := newQuery(r, "group", "limit", "after", "since")
		group := q.str("group")
		limit := q.limit()
		after := q.int64("after")
		since := q.time("since")
		if q.err != nil {
			checkDecodeError(t, q.err)
			return
		}
		if limit < 1 || limit > maxLimit || after < 0 {
			t.Fatalf("accepted limit %d after %d", limit, after)
		}
		checkAccepted(t, "group", group, maxNameLen)
		_ = since
	})
}
