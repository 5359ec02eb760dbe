package dashboard

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/kogge-fleet/kogge/fleet-server/dashboard/auth"
	"github.com/kogge-fleet/kogge/fleet-server/store"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// pages holds the parsed templates per language and the static assets.
type pages struct {
	byLang  map[string]map[string]*template.Template
	static  map[string][]byte
	version string
}

func loadPages(cat *catalogue) (*pages, error) {
	p := &pages{byLang: map[string]map[string]*template.Template{}, static: map[string][]byte{}}
	h := sha256.New()
	entries, err := fs.ReadDir(staticFS, "static")
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		b, err := fs.ReadFile(staticFS, "static/"+e.Name())
		if err != nil {
			return nil, err
		}
		p.static[e.Name()] = b
		h.Write(b)
	}
	p.version = hex.EncodeToString(h.Sum(nil))[:12]
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	for _, lang := range languages {
		p.byLang[lang] = map[string]*template.Template{}
		for _, n := range names {
			base := strings.TrimSuffix(path.Base(n), ".html")
			if base == "layout" {
				continue
			}
			t, err := template.New("layout.html").Funcs(funcs(cat, lang, p.version)).
				ParseFS(templateFS, "templates/layout.html", n)
			if err != nil {
				return nil, fmt.Errorf("dashboard template %s: %w", n, err)
			}
			p.byLang[lang][base] = t
		}
	}
	return p, nil
}

func funcs(cat *catalogue, lang, version string) template.FuncMap {
	return template.FuncMap{
		"t": func(key string, args ...any) string { return cat.tr(lang, key, args...) },
		"can": func(r auth.Role, p string) bool {
			return r.Can(auth.Permission(p))
		},
		"asset": func(name string) string { return "/static/" + name + "?v=" + version },
		"time": func(ms int64) string {
			if ms == 0 {
				return "–"
			}
			return time.UnixMilli(ms).Local().Format("2006-01-02 15:04:05")
		},
		"isotime": func(ms int64) string {
			return time.UnixMilli(ms).UTC().Format(time.RFC3339)
		},
		"gotime": func(t time.Time) string {
			if t.IsZero() {
				return "–"
			}
			return t.Local().Format("2006-01-02 15:04")
		},
		"age": func(ms int64) string {
			if ms == 0 {
				return "–"
			}
			return humanDuration(time.Since(time.UnixMilli(ms)), lang)
		},
		"dur":   func(d time.Duration) string { return humanDuration(d, lang) },
		"durms": func(ms uint64) string { return humanDuration(time.Duration(ms)*time.Millisecond, lang) },
		"list":  func(s ...string) []string { return s },
		"bytes": humanBytes,
		"json": func(v any) string {
			if v == nil {
				return "–"
			}
			b, err := json.MarshalIndent(v, "", "  ")
			if err != nil {
				return fmt.Sprint(v)
			}
			return string(b)
		},
		"join":  strings.Join,
		"lower": strings.ToLower,
		"pct": func(a, b uint64) string {
			if b == 0 {
				return "–"
			}
			return fmt.Sprintf("%d %%", a*100/b)
		},
		"add": func(a, b int) int { return a + b },
		"short": func(s string, n int) string {
			if len(s) <= n {
				return s
			}
			return s[:n]
		},
	}
}

func humanDuration(d time.Duration, lang string) string {
	if d < 0 {
		d = -d
	}
	unit := func(n int64, en, de string) string {
		if lang == "de" {
			return fmt.Sprintf("%d %s", n, de)
		}
		return fmt.Sprintf("%d %s", n, en)
	}
	switch {
	case d < time.Minute:
		return unit(int64(d/time.Second), "s", "s")
	case d < time.Hour:
		return unit(int64(d/time.Minute), "min", "Min.")
	case d < 48*time.Hour:
		return unit(int64(d/time.Hour), "h", "Std.")
	}
	return unit(int64(d/(24*time.Hour)), "d", "Tg.")
}

func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}

// navItem is a link of the main navigation.
type navItem struct {
	Href, Key string
	Current   bool
}

// view is what every page template gets.
type view struct {
	Lang    string
	Title   string
	User    *store.User
	Role    auth.Role
	CSRF    string
	Nav     []navItem
	Path    string
	Langs   []langLink
	Live    bool
	Done    string
	Data    any
	Version string
}

type langLink struct {
	Code, Name, Href string
	Current          bool
}

var navTable = []struct {
	href, key string
	perm      auth.Permission
}{
	{"/overview", "nav.overview", auth.ReadFleet},
	{"/devices", "nav.devices", auth.ReadFleet},
	{"/records", "nav.records", auth.ReadFleet},
	{"/delivery", "nav.delivery", auth.ReadFleet},
	{"/rollouts", "nav.rollouts", auth.ReadFleet},
	{"/alerts", "nav.alerts", auth.ReadFleet},
	{"/audit", "nav.audit", auth.ReadAudit},
	{"/users", "nav.users", auth.Administer},
}

// render writes page name with data. s may be nil (sign-in pages).
func (h *Handler) render(w http.ResponseWriter, r *http.Request, s *session, status int, name, title string, data any) error {
	lang := h.requestLang(r, s)
	t := h.pages.byLang[lang][name]
	if t == nil {
		return fmt.Errorf("no template %q", name)
	}
	v := view{Lang: lang, Title: title, Path: r.URL.RequestURI(), Data: data, Version: h.pages.version}
	for _, l := range languages {
		v.Langs = append(v.Langs, langLink{Code: l, Name: h.tr(l, "lang.name"), Current: l == lang,
			Href: "/lang?to=" + l + "&back=" + urlQueryEscape(r.URL.RequestURI())})
	}
	tok, err := h.formToken(w, r, s)
	if err != nil {
		return err
	}
	v.CSRF = tok
	if s != nil && s.Stage == store.SessionFull {
		v.User, v.Role = &s.User, s.Role
		v.Live = s.Role.Can(auth.ReadFleet)
		for _, n := range navTable {
			if s.Role.Can(n.perm) {
				v.Nav = append(v.Nav, navItem{Href: n.href, Key: n.key,
					Current: r.URL.Path == n.href || strings.HasPrefix(r.URL.Path, n.href+"/")})
			}
		}
	}
	if d := r.URL.Query().Get("done"); strings.HasPrefix(d, "done.") && h.cat.has(d) {
		v.Done = d
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, v); err != nil {
		return fmt.Errorf("render %s: %w", name, err)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
	return nil
}

func (h *Handler) renderError(w http.ResponseWriter, r *http.Request, s *session, status int, msg string) {
	lang := h.requestLang(r, s)
	if err := h.render(w, r, s, status, "error", h.tr(lang, "error.title"), msg); err != nil {
		h.log.Error("rendering an error page failed", "err", err)
		http.Error(w, msg, status)
	}
}

func (h *Handler) static(w http.ResponseWriter, r *http.Request, _ *session) error {
	name := r.PathValue("file")
	b, ok := h.pages.static[name]
	if !ok {
		http.NotFound(w, r)
		return nil
	}
	ct := mime.TypeByExtension(path.Ext(name))
	if ct == "" {
		ct = "application/octet-stream"
	}
	w.Header().Set("Content-Type", ct)
	if r.URL.Query().Get("v") == h.pages.version {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		w.Header().Set("Cache-Control", "no-cache")
	}
	_, _ = w.Write(b)
	return nil
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
