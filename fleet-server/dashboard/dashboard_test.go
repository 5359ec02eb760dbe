package dashboard

import (
	"context"
	"encoding/json"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kogge-fleet/kogge/fleet-server/audit"
	"github.com/kogge-fleet/kogge/fleet-server/dashboard/auth"
	"github.com/kogge-fleet/kogge/fleet-server/dashboard/auth/oidctest"
	"github.com/kogge-fleet/kogge/fleet-server/store"
)

const pw = "correct horse battery"

// routePath fills a route's wildcards.
func routePath(p string) string {
	return strings.ReplaceAll(regexp.MustCompile(`\{[^}]+\}`).ReplaceAllString(p, "x"), "{$}", "")
}

// TestEveryRouteNeedsSession enumerates the router: every route that is
// not public refuses a request without a session (a page redirects to the
// sign-in, anything else is 401), so that no new route escapes.
func TestEveryRouteNeedsSession(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.client()
	guarded := 0
	for _, r := range e.h.Routes() {
		if r.Public {
			continue
		}
		guarded++
		path := routePath(r.Path)
		var p page
		if r.Method == http.MethodGet {
			p = c.get(path)
		} else {
			p = c.post(path, url.Values{"csrf": {"x"}})
		}
		switch {
		case r.Method == http.MethodGet && path == "/ws":
			// a plain GET of /ws is a page request: redirected
			fallthrough
		case r.Method == http.MethodGet:
			if p.status != http.StatusSeeOther || !strings.HasPrefix(p.location, "/login?next=") {
				t.Errorf("GET %s without a session: %d %q", path, p.status, p.location)
			}
		default:
			if p.status != http.StatusUnauthorized {
				t.Errorf("%s %s without a session: %d", r.Method, path, p.status)
			}
		}
	}
	if guarded < 30 {
		t.Errorf("only %d guarded routes: the router is not enumerated", guarded)
	}
	// A websocket upgrade without a session is refused too.
	req, _ := http.NewRequest(http.MethodGet, e.URL+"/ws", nil)
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Connection", "Upgrade")
	if p := c.do(req); p.status != http.StatusUnauthorized {
		t.Errorf("websocket without a session: %d", p.status)
	}
	// Unknown paths reveal nothing without a session.
	if p := c.get("/no/such/page"); p.status != http.StatusSeeOther {
		t.Errorf("unknown path without a session: %d", p.status)
	}
	// The public routes are the sign-in and the assets.
	var public []string
	for _, r := range e.h.Routes() {
		if r.Public {
			public = append(public, r.Method+" "+r.Path)
		}
	}
	want := []string{"GET /static/{file}", "GET /login", "POST /login", "GET /login/totp", "POST /login/totp",
		"GET /auth/oidc", "GET /auth/oidc/callback", "GET /lang"}
	if !slices.Equal(public, want) {
		t.Errorf("public routes %v, want %v", public, want)
	}
}

// TestRoles checks every route for every role: a route is refused (403)
// exactly when the role lacks the route's permission.
func TestRoles(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.addDevice("mitte", "kiosk-1")
	for _, role := range auth.Roles() {
		t.Run(string(role), func(t *testing.T) {
			e.addUser("u-"+string(role), role, pw)
			c := e.client()
			if p := c.login("u-"+string(role), pw); p.status != http.StatusSeeOther {
				t.Fatalf("login: %d", p.status)
			}
			tok := c.token()
			for _, r := range e.h.Routes() {
				if r.Public || r.Path == "/logout" || r.Path == "/ws" {
					continue
				}
				path := routePath(r.Path)
				var p page
				if r.Method == http.MethodGet {
					p = c.get(path)
				} else {
					// An empty form: refused by the role before
					// anything else, or refused as invalid, never done.
					p = c.post(path, url.Values{"csrf": {tok}})
				}
				forbidden := p.status == http.StatusForbidden
				if forbidden == role.Can(r.Permission) {
					t.Errorf("%s %s as %s: %d (may: %v)", r.Method, path, role, p.status, role.Can(r.Permission))
				}
			}
		})
	}
}

func TestViewerCannotSendCommands(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.addDevice("mitte", "kiosk-1")
	e.addUser("vera", auth.Viewer, pw)
	c := e.client()
	c.login("vera", pw)
	p := c.get("/devices/kiosk-1")
	if p.status != http.StatusOK || strings.Contains(p.body, `action="/devices/kiosk-1/commands"`) {
		t.Errorf("a viewer's device page: %d, has the command form: %v", p.status, strings.Contains(p.body, "/commands\""))
	}
	p = c.post("/devices/kiosk-1/commands", url.Values{"csrf": {c.token()}, "name": {"reboot"}, "ttl": {"1h"}})
	if p.status != http.StatusForbidden {
		t.Errorf("viewer sends a command: %d", p.status)
	}
	cmds, err := e.cmds.History(context.Background(), store.CommandFilter{Device: "kiosk-1"})
	if err != nil || len(cmds) != 0 {
		t.Errorf("commands after the viewer's attempt: %v, %v", cmds, err)
	}
}

func TestCSRF(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.addDevice("mitte", "kiosk-1")
	e.addUser("otto", auth.Operator, pw)
	c := e.client()
	c.login("otto", pw)
	for _, form := range []url.Values{
		{"name": {"reboot"}},
		{"name": {"reboot"}, "csrf": {""}},
		{"name": {"reboot"}, "csrf": {"forged-token"}},
	} {
		if p := c.post("/devices/kiosk-1/commands", form); p.status != http.StatusForbidden || !strings.Contains(p.body, "security token") {
			t.Errorf("post with csrf %q: %d", form.Get("csrf"), p.status)
		}
	}
	// Another user's token does not fit this session.
	e.addUser("olga", auth.Operator, pw)
	other := e.client()
	other.login("olga", pw)
	if p := c.post("/devices/kiosk-1/commands", url.Values{"name": {"reboot"}, "csrf": {other.token()}}); p.status != http.StatusForbidden {
		t.Errorf("post with another session's token: %d", p.status)
	}
	cmds, _ := e.cmds.History(context.Background(), store.CommandFilter{Device: "kiosk-1"})
	if len(cmds) != 0 {
		t.Fatalf("a command was sent without a valid token")
	}
	// With the token it goes through, and is audited.
	p := c.post("/devices/kiosk-1/commands", url.Values{"name": {"reboot"}, "ttl": {"1h"}, "args": {"delay=5"}, "csrf": {c.token()}})
	if p.status != http.StatusSeeOther || !strings.Contains(p.location, "done=done.command") {
		t.Fatalf("post with the token: %d %q %s", p.status, p.location, p.body)
	}
	cmds, _ = e.cmds.History(context.Background(), store.CommandFilter{Device: "kiosk-1"})
	if len(cmds) != 1 || cmds[0].Name != "reboot" || cmds[0].Args["delay"] != "5" {
		t.Errorf("commands: %+v", cmds)
	}
	entries, err := e.audit.List(context.Background(), audit.Filter{Action: "command.send"})
	if err != nil || len(entries) != 1 || entries[0].Actor != "dashboard:otto" || entries[0].Target != "device:kiosk-1" {
		t.Errorf("audit of the command: %+v, %v", entries, err)
	}
	// The sign-in form itself needs the token of its pre-session cookie.
	fresh := e.client()
	if p := fresh.post("/login", url.Values{"name": {"otto"}, "password": {pw}}); p.status != http.StatusForbidden {
		t.Errorf("sign-in without a token: %d", p.status)
	}
}

func TestLoginLockout(t *testing.T) {
	e := newEnv(t, envOptions{tune: func(o *Options) { o.MaxFailures = 3; o.LockFor = time.Hour; o.LoginBurst = 100 }})
	e.addUser("anna", auth.Admin, pw)
	c := e.client()
	if p := c.login("nobody", pw); p.status != http.StatusUnauthorized || !strings.Contains(p.body, "Wrong user name or password") {
		t.Errorf("unknown user: %d", p.status)
	}
	for i := range 2 {
		if p := c.login("anna", "wrong password"); p.status != http.StatusUnauthorized {
			t.Errorf("failure %d: %d", i+1, p.status)
		}
	}
	if p := c.login("anna", "wrong password"); p.status != http.StatusForbidden || !strings.Contains(p.body, "locked until") {
		t.Errorf("third failure: %d", p.status)
	}
	// Locked: even the right password is refused.
	if p := c.login("anna", pw); p.status != http.StatusForbidden {
		t.Errorf("right password while locked: %d", p.status)
	}
	entries, _ := e.audit.List(context.Background(), audit.Filter{Action: "user.login_failed"})
	if len(entries) != 4 {
		t.Errorf("%d failed sign-ins audited, want 4", len(entries))
	}
	u, _ := e.db.UserByName(context.Background(), "anna")
	if err := e.db.UnlockUser(context.Background(), u.ID, time.Now().UnixMilli()); err != nil {
		t.Fatal(err)
	}
	if p := c.login("anna", pw); p.status != http.StatusSeeOther || p.location != "/overview" {
		t.Errorf("after unlock: %d %q", p.status, p.location)
	}
}

func TestLoginRateLimit(t *testing.T) {
	e := newEnv(t, envOptions{tune: func(o *Options) { o.LoginBurst = 3; o.LoginRate = time.Hour }})
	e.addUser("anna", auth.Admin, pw)
	c := e.client()
	for range 3 {
		c.login("nobody", "x")
	}
	if p := c.login("anna", pw); p.status != http.StatusTooManyRequests {
		t.Errorf("fourth attempt: %d", p.status)
	}
}

func TestTOTPLogin(t *testing.T) {
	e := newEnv(t, envOptions{})
	u := e.addUser("anna", auth.Admin, pw)
	c := e.client()
	c.login("anna", pw)
	// Enrol the second factor on the account page.
	p := c.get("/account")
	secret := regexp.MustCompile(`class="secret-value">([A-Z2-7]+)<`).FindStringSubmatch(p.body)
	if secret == nil || !strings.Contains(p.body, `src="data:image/png;base64,`) {
		t.Fatalf("account page has no TOTP secret or QR code")
	}
	if p := c.post("/account/totp", url.Values{"csrf": {p.csrf()}, "code": {"000000"}}); p.status != http.StatusBadRequest {
		t.Errorf("wrong enrolment code: %d", p.status)
	}
	code, _ := auth.TOTPCode(secret[1], time.Now())
	if p := c.post("/account/totp", url.Values{"csrf": {c.token()}, "code": {code}}); p.status != http.StatusSeeOther {
		t.Fatalf("enable TOTP: %d %s", p.status, p.body)
	}
	got, _ := e.db.User(context.Background(), u.ID)
	if !got.TOTPEnabled {
		t.Fatal("TOTP not enabled")
	}

	c2 := e.client()
	p = c2.login("anna", pw)
	if p.status != http.StatusSeeOther || !strings.HasPrefix(p.location, "/login/totp") {
		t.Fatalf("password step: %d %q", p.status, p.location)
	}
	// Half signed in: no page yet.
	if p := c2.get("/overview"); p.status != http.StatusSeeOther || !strings.HasPrefix(p.location, "/login") {
		t.Errorf("overview before the second factor: %d %q", p.status, p.location)
	}
	// Starting again from the sign-in form works while the second factor
	// is due (the forms share the pre-session token).
	if p := c2.get("/login"); p.csrf() == "" {
		t.Fatal("no sign-in form while the second factor is due")
	} else if p2 := c2.post("/login", url.Values{"csrf": {p.csrf()}, "name": {"anna"}, "password": {pw}}); p2.status != http.StatusSeeOther || !strings.HasPrefix(p2.location, "/login/totp") {
		t.Fatalf("sign in again during the second factor: %d %q", p2.status, p2.location)
	}
	form := c2.get("/login/totp")
	// The code used for enrolment is spent.
	if p := c2.post("/login/totp", url.Values{"csrf": {form.csrf()}, "code": {code}}); p.status != http.StatusUnauthorized {
		t.Errorf("replayed code: %d", p.status)
	}
	next, _ := auth.TOTPCode(secret[1], time.Now().Add(auth.TOTPStep))
	if p := c2.post("/login/totp", url.Values{"csrf": {form.csrf()}, "code": {next}}); p.status != http.StatusSeeOther || p.location != "/overview" {
		t.Fatalf("second factor: %d %q %s", p.status, p.location, p.body)
	}
	if p := c2.get("/overview"); p.status != http.StatusOK {
		t.Errorf("overview after sign-in: %d", p.status)
	}
}

func TestOIDCLogin(t *testing.T) {
	prov := oidctest.New(t, "kogge", "s3cret")
	var e *env
	e = newEnv(t, envOptions{tune: func(o *Options) {
		o.OIDC = &OIDCOptions{OIDCConfig: auth.OIDCConfig{Issuer: prov.URL, ClientID: "kogge", ClientSecret: "s3cret",
			RedirectURL: "http://placeholder/auth/oidc/callback"},
			RoleClaim: "realm_access.roles", OperatorValues: []string{"kogge-operator"}, AuditorValues: []string{"kogge-audit"}}
	}})
	// The callback URL is known only once the server listens.
	cfg := e.h.opts.OIDC.OIDCConfig
	cfg.RedirectURL = e.URL + "/auth/oidc/callback"
	o, err := auth.NewOIDC(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.h.oidc = o

	follow := func(c *webClient) page {
		p := c.get("/auth/oidc?next=/devices")
		for i := 0; i < 5 && p.status == http.StatusFound || p.status == http.StatusSeeOther; i++ {
			req, _ := http.NewRequest(http.MethodGet, p.location, nil)
			if !strings.HasPrefix(p.location, "http") {
				req, _ = http.NewRequest(http.MethodGet, e.URL+p.location, nil)
			}
			p = c.do(req)
		}
		return p
	}
	prov.SignIn(map[string]any{"sub": "kc-1", "preferred_username": "Bert", "name": "Bert B.",
		"realm_access": map[string]any{"roles": []any{"kogge-operator"}}})
	c := e.client()
	p := follow(c)
	if p.status != http.StatusOK || !strings.Contains(p.body, `id="continue" href="/devices"`) {
		t.Fatalf("OIDC callback: %d %s", p.status, p.body)
	}
	if p := c.get("/devices"); p.status != http.StatusOK {
		t.Errorf("devices after OIDC sign-in: %d", p.status)
	}
	u, err := e.db.UserByName(context.Background(), "bert")
	if err != nil || u.Role != "operator" || u.OIDCSubject != prov.URL+" kc-1" || u.PasswordHash != "" {
		t.Errorf("OIDC user: %+v, %v", u, err)
	}
	// The provider changes the role: it applies at the next sign-in.
	prov.SignIn(map[string]any{"sub": "kc-1", "preferred_username": "bert", "realm_access": map[string]any{"roles": []any{"kogge-audit"}}})
	c2 := e.client()
	follow(c2)
	if p := c2.get("/devices"); p.status != http.StatusForbidden {
		t.Errorf("devices as auditor: %d", p.status)
	}
	// Without a Kogge role: refused.
	prov.SignIn(map[string]any{"sub": "kc-2", "preferred_username": "carl", "realm_access": map[string]any{"roles": []any{"other"}}})
	c3 := e.client()
	if p := follow(c3); p.status != http.StatusForbidden {
		t.Errorf("user without role: %d", p.status)
	}
	if _, err := e.db.UserByName(context.Background(), "carl"); err == nil {
		t.Error("a user without role was created")
	}
	// A forged callback without the state cookie is refused.
	if p := e.client().get("/auth/oidc/callback?code=x&state=y"); p.status != http.StatusForbidden {
		t.Errorf("callback without state: %d", p.status)
	}
	if prov.Redeemed() != 3 {
		t.Errorf("%d codes redeemed, want 3", prov.Redeemed())
	}
}

func TestUserAdministration(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.addUser("anna", auth.Admin, pw)
	c := e.client()
	c.login("anna", pw)
	p := c.post("/users", url.Values{"csrf": {c.token()}, "name": {"vera"}, "role": {"viewer"}})
	pwm := regexp.MustCompile(`class="secret-value">([^<]+)<`).FindStringSubmatch(p.body)
	if p.status != http.StatusOK || pwm == nil {
		t.Fatalf("create user: %d", p.status)
	}
	v := e.client()
	if p := v.login("vera", pwm[1]); p.status != http.StatusSeeOther {
		t.Fatalf("the new user cannot sign in with the shown password: %d", p.status)
	}
	for _, bad := range []url.Values{
		{"name": {"Vera Viewer"}, "role": {"viewer"}},
		{"name": {"vera"}, "role": {"viewer"}},
		{"name": {"x"}, "role": {"root"}},
		{"name": {"y"}, "role": {"viewer"}, "password": {"short"}},
	} {
		bad.Set("csrf", c.token())
		if p := c.post("/users", bad); p.status != http.StatusBadRequest {
			t.Errorf("create %v: %d", bad, p.status)
		}
	}
	anna, _ := e.db.UserByName(context.Background(), "anna")
	vera, _ := e.db.UserByName(context.Background(), "vera")
	// The last admin cannot demote herself.
	if p := c.post("/users/"+anna.ID, url.Values{"csrf": {c.token()}, "role": {"viewer"}}); p.status != http.StatusConflict {
		t.Errorf("demote the last admin: %d", p.status)
	}
	// Disabling vera ends her session at once.
	if p := c.post("/users/"+vera.ID, url.Values{"csrf": {c.token()}, "role": {"viewer"}, "disabled": {"1"}}); p.status != http.StatusSeeOther {
		t.Fatalf("disable: %d", p.status)
	}
	if p := v.get("/overview"); p.status != http.StatusSeeOther {
		t.Errorf("disabled user's session: %d", p.status)
	}
	entries, _ := e.audit.List(context.Background(), audit.Filter{Target: "user:vera"})
	var actions []string
	for _, en := range entries {
		actions = append(actions, en.Action)
	}
	if !slices.Contains(actions, "user.create") || !slices.Contains(actions, "user.update") {
		t.Errorf("audit of vera: %v", actions)
	}
}

func TestDeadLetterReplayOverHTTP(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.addDevice("od", "hand-1")
	id := e.deadLetter("hand-1", "owi")
	e.addUser("otto", auth.Operator, pw)
	c := e.client()
	c.login("otto", pw)
	p := c.get("/delivery")
	if !strings.Contains(p.body, id.String()) {
		t.Fatalf("dead letter %s not listed", id)
	}
	if p := c.post("/delivery/dead/"+id.String()+"/discard", url.Values{"csrf": {c.token()}}); p.status != http.StatusBadRequest {
		t.Errorf("discard without reason: %d", p.status)
	}
	if p := c.post("/delivery/dead/"+id.String()+"/replay", url.Values{"csrf": {c.token()}}); p.status != http.StatusSeeOther {
		t.Fatalf("replay: %d %s", p.status, p.body)
	}
	if p := c.post("/delivery/dead/"+id.String()+"/replay", url.Values{"csrf": {c.token()}}); p.status != http.StatusConflict {
		t.Errorf("replay twice: %d", p.status)
	}
	entries, _ := e.audit.List(context.Background(), audit.Filter{Target: "record:" + id.String()})
	found := false
	for _, en := range entries {
		found = found || strings.Contains(en.Actor, "dashboard:otto")
	}
	if !found {
		t.Errorf("replay not audited with the user: %+v", entries)
	}
}

// TestCatalogue checks that German and English have the same keys and that
// every key the templates and the code use exists.
func TestCatalogue(t *testing.T) {
	cat, err := loadCatalogue()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range languages {
		for _, b := range languages {
			for k := range cat.msgs[a] {
				if _, ok := cat.msgs[b][k]; !ok {
					t.Errorf("key %q is in %s but not in %s", k, a, b)
				}
			}
		}
		for k, v := range cat.msgs[a] {
			if strings.TrimSpace(v) == "" {
				t.Errorf("%s: key %q is empty", a, k)
			}
			if strings.Count(v, "%") != strings.Count(cat.msgs[languages[0]][k], "%") {
				t.Errorf("key %q: the languages differ in their %% verbs", k)
			}
		}
	}
	used := map[string]bool{}
	lit := regexp.MustCompile(`\bt "([^"]+)"`)
	goLit := regexp.MustCompile(`\.tr\([^,()]+, "([^"]+)"|"(done\.[a-z_]+)"|"(chart\.[a-z_]+)"`)
	err = fs.WalkDir(os.DirFS("."), ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		switch {
		case filepath.Ext(path) == ".html":
			for _, m := range lit.FindAllStringSubmatch(string(b), -1) {
				used[m[1]] = true
			}
		case filepath.Ext(path) == ".go" && !strings.HasSuffix(path, "_test.go"):
			for _, m := range goLit.FindAllStringSubmatch(string(b), -1) {
				for _, g := range m[1:] {
					if g != "" {
						used[g] = true
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Keys built at run time from a prefix and a value.
	dynamic := map[string][]string{
		"state.": {"online", "offline", "never", "revoked", "alerting"}, "periph.": {"ok", "degraded", "missing", "error", "unknown"},
		"cmd.":     {store.CommandQueued, store.CommandSent, store.CommandDone, store.CommandExpired},
		"outcome.": {"ok", "failed", "expired", "rejected"}, "cert.": {"valid", "expiring", "expired", "revoked", "none"},
		"seen.": {"1h", "24h", "168h", "not-1h", "not-24h", "not-168h"}, "range.": {"1h", "24h", "7d"},
		"ttl.": {"15m", "1h", "24h", "7d"}, "day.": {"0", "1", "2", "3", "4", "5", "6"}, "lang.": languages,
		"alert.": {"firing", "resolved"},
	}
	for _, r := range auth.Roles() {
		dynamic["role."] = append(dynamic["role."], string(r), string(r)+".desc")
	}
	for p, vs := range dynamic {
		for _, v := range vs {
			used[p+v] = true
		}
	}
	for k := range commandTTLs {
		used["ttl."+k] = true
	}
	if len(used) < 200 {
		t.Fatalf("only %d keys found in use: the scan is broken", len(used))
	}
	for k := range used {
		for _, l := range languages {
			if _, ok := cat.msgs[l][k]; !ok {
				t.Errorf("key %q is used but missing in %s", k, l)
			}
		}
	}
	// The JSON files are flat objects of strings.
	for _, l := range languages {
		b, _ := localeFS.ReadFile("locales/" + l + ".json")
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		for k, v := range m {
			if _, ok := v.(string); !ok {
				t.Errorf("%s: %q is not a string", l, k)
			}
		}
	}
}

func TestLanguage(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.client()
	req, _ := http.NewRequest(http.MethodGet, e.URL+"/login", nil)
	req.Header.Set("Accept-Language", "de-DE,de;q=0.9,en;q=0.5")
	if p := c.do(req); !strings.Contains(p.body, `<html lang="de">`) || !strings.Contains(p.body, "Anmelden") {
		t.Errorf("German browser gets no German page")
	}
	if p := c.get("/lang?to=en&back=/login"); p.status != http.StatusSeeOther || p.location != "/login" {
		t.Errorf("language switch: %d %q", p.status, p.location)
	}
	if p := c.do(req); !strings.Contains(p.body, `<html lang="en">`) || !strings.Contains(p.body, "Sign in") {
		t.Errorf("the language cookie does not win over the browser")
	}
	if p := c.get("/lang?to=en&back=//evil.example"); p.location != "/" {
		t.Errorf("open redirect: %q", p.location)
	}
}

func TestSecurityHeadersAndCookies(t *testing.T) {
	e := newEnv(t, envOptions{tune: func(o *Options) { o.PublicURL = "https://fleet.example.org" }})
	e.addUser("anna", auth.Admin, pw)
	c := e.client()
	resp, err := c.c.Get(e.URL + "/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("CSP %q", csp)
	}
	p := c.get("/login")
	req, _ := http.NewRequest(http.MethodPost, e.URL+"/login", strings.NewReader(url.Values{"csrf": {p.csrf()}, "name": {"anna"}, "password": {pw}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err = c.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var session *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == sessionCookie {
			session = ck
		}
	}
	if session == nil || !session.HttpOnly || !session.Secure || session.SameSite != http.SameSiteStrictMode {
		t.Errorf("session cookie %+v: want HttpOnly, Secure (https public URL), SameSite=Strict", session)
	}
	if resp.Header.Get("Strict-Transport-Security") == "" {
		t.Error("no HSTS behind an https public URL")
	}
}

func TestEnsureAdmin(t *testing.T) {
	e := newEnv(t, envOptions{})
	dir := t.TempDir()
	pass, created, err := EnsureAdmin(context.Background(), e.db, dir, testParams, time.Now())
	if err != nil || !created {
		t.Fatalf("EnsureAdmin = %v, %v", created, err)
	}
	c := e.client()
	if p := c.login("admin", pass); p.status != http.StatusSeeOther || p.location != "/overview" {
		t.Errorf("first admin cannot sign in: %d", p.status)
	}
	if _, created, err := EnsureAdmin(context.Background(), e.db, dir, testParams, time.Now()); err != nil || created {
		t.Errorf("second EnsureAdmin = %v, %v", created, err)
	}
}

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"/devices?x=1": "/devices?x=1", "": "/", "//evil.example/": "/", "https://evil.example": "/",
		"/\\evil": "/", "/login": "/", "/auth/oidc": "/",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestHubDropsSlowClient(t *testing.T) {
	h := newHub(2, nil)
	slow, _ := h.add()
	fast, _ := h.add()
	for i := range 3 {
		h.broadcast(liveMessage{Type: "counts", Counts: map[string]int{"online": i}})
		<-fast.send
	}
	select {
	case <-slow.done:
	default:
		t.Error("a client whose buffer overflowed was not dropped")
	}
	select {
	case <-fast.done:
		t.Error("a client that keeps up was dropped")
	default:
	}
	h.remove(slow)
	h.remove(fast)
	h.close()
	if _, ok := h.add(); ok {
		t.Error("a client was added after close")
	}
}

func TestChart(t *testing.T) {
	now := time.Now()
	svg := drawChart("c<1>", "Title & <b>", "desc", []point{{now.Add(-time.Hour), 3}, {now, 7}}, now.Add(-2*time.Hour), now,
		func(v float64) string { return "<" })
	for _, bad := range []string{"<b>", "c<1>", `">`} {
		if strings.Contains(svg, bad+"<") && bad != `">` {
			t.Errorf("unescaped %q in %s", bad, svg)
		}
	}
	if !strings.Contains(svg, `role="img"`) || !strings.Contains(svg, "<polyline") || !strings.Contains(svg, "Title &amp; &lt;b&gt;") {
		t.Errorf("chart: %s", svg)
	}
	for _, tc := range []struct{ in, want float64 }{{0.7, 1}, {3, 5}, {7, 10}, {12, 20}, {480, 500}} {
		if got := niceCeil(tc.in); got != tc.want {
			t.Errorf("niceCeil(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
