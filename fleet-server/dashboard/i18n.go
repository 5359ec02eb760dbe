package dashboard

import (
	"embed"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// languages are the UI's languages; the first is the fallback for a key
// that a catalogue lacks (the test makes sure none does).
var languages = []string{"de", "en"}

//go:embed locales/*.json
var localeFS embed.FS

// catalogue holds the UI's messages per language.
type catalogue struct {
	msgs map[string]map[string]string
}

func loadCatalogue() (*catalogue, error) {
	c := &catalogue{msgs: map[string]map[string]string{}}
	for _, l := range languages {
		b, err := localeFS.ReadFile("locales/" + l + ".json")
		if err != nil {
			return nil, fmt.Errorf("dashboard messages %s: %w", l, err)
		}
		m := map[string]string{}
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("dashboard messages %s: %w", l, err)
		}
		c.msgs[l] = m
	}
	return c, nil
}

func (c *catalogue) has(key string) bool {
	_, ok := c.msgs[languages[0]][key]
	return ok
}

// tr returns the message key in lang, formatted with args.
func (c *catalogue) tr(lang, key string, args ...any) string {
	s, ok := c.msgs[lang][key]
	if !ok {
		if s, ok = c.msgs[languages[0]][key]; !ok {
			return key
		}
	}
	if len(args) > 0 {
		return fmt.Sprintf(s, args...)
	}
	return s
}

func (h *Handler) tr(lang, key string, args ...any) string { return h.cat.tr(lang, key, args...) }

// requestLang is the language of a request: the user's choice, else the
// language cookie, else the browser's preference, else the default.
func (h *Handler) requestLang(r *http.Request, s *session) string {
	if s != nil && slices.Contains(languages, s.User.Lang) {
		return s.User.Lang
	}
	if c, err := r.Cookie(langCookie); err == nil && slices.Contains(languages, c.Value) {
		return c.Value
	}
	for part := range strings.SplitSeq(r.Header.Get("Accept-Language"), ",") {
		tag, _, _ := strings.Cut(strings.TrimSpace(part), ";")
		base, _, _ := strings.Cut(strings.ToLower(tag), "-")
		if slices.Contains(languages, base) {
			return base
		}
	}
	return h.opts.Lang
}

func urlQueryEscape(s string) string { return url.QueryEscape(s) }
