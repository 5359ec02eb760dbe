package dashboard

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/fleet-server/dashboard/auth"
	"github.com/kogge-fleet/kogge/fleet-server/store"
)

const (
	sessionCookie = "kogge_session"
	preCookie     = "kogge_pre"
	langCookie    = "kogge_lang"
	oidcCookie    = "kogge_oidc"
	// totpStageFor is how long a session waits for its second factor.
	totpStageFor = 5 * time.Minute
	// touchEvery bounds the writes that keep a session alive.
	touchEvery = time.Minute
)

// session is the signed-in user of a request.
type session struct {
	store.Session
	token string
	User  store.User
	Role  auth.Role
	lang  string
}

// csrf is the session's CSRF token: an HMAC of the session token, so that
// it is tied to the session and needs no storage.
func (s *session) csrf() string { return csrfToken(s.token, "session") }

func csrfToken(secret, purpose string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte("kogge-csrf:" + purpose))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// loadSession returns the request's session, or nil when it has none that
// is valid. A session of a disabled or deleted user is ended.
func (h *Handler) loadSession(r *http.Request) (*session, error) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" || len(c.Value) > 100 {
		return nil, nil
	}
	ctx := r.Context()
	now := h.opts.Clock()
	idHash := hashToken(c.Value)
	st, err := h.svc.Users.Session(ctx, idHash, now.UnixMilli())
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	u, err := h.svc.Users.User(ctx, st.User)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if u.DisabledAt != 0 || !auth.Role(u.Role).Valid() {
		if err := h.svc.Users.DeleteSession(ctx, idHash); err != nil {
			return nil, err
		}
		return nil, nil
	}
	s := &session{Session: st, token: c.Value, User: u, Role: auth.Role(u.Role)}
	s.lang = h.requestLang(r, s)
	if st.Stage == store.SessionFull && now.Sub(time.UnixMilli(st.LastSeen)) >= touchEvery {
		exp := min(now.Add(h.opts.SessionIdle).UnixMilli(), st.CreatedAt+h.opts.SessionMax.Milliseconds())
		if err := h.svc.Users.TouchSession(ctx, idHash, now.UnixMilli(), exp); err != nil {
			h.log.Warn("keeping a dashboard session alive failed", "err", err)
		}
	}
	return s, nil
}

// newSession starts a session of stage for u and sets its cookie.
func (h *Handler) newSession(w http.ResponseWriter, r *http.Request, u store.User, stage string) (*session, error) {
	tok, err := auth.RandomToken(32)
	if err != nil {
		return nil, err
	}
	now := h.opts.Clock()
	exp := now.Add(h.opts.SessionIdle)
	if stage == store.SessionTOTP {
		exp = now.Add(totpStageFor)
	}
	st := store.Session{IDHash: hashToken(tok), User: u.ID, Stage: stage, CreatedAt: now.UnixMilli(),
		LastSeen: now.UnixMilli(), ExpiresAt: exp.UnixMilli(), Remote: clientAddr(r), UserAgent: clip(r.UserAgent(), 200)}
	if err := h.svc.Users.CreateSession(r.Context(), st); err != nil {
		return nil, err
	}
	h.setCookie(w, r, sessionCookie, tok, 0)
	s := &session{Session: st, token: tok, User: u, Role: auth.Role(u.Role)}
	s.lang = h.requestLang(r, s)
	return s, nil
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

func (h *Handler) setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", HttpOnly: true,
		Secure: h.secureRequest(r), SameSite: http.SameSiteStrictMode, MaxAge: maxAge})
}

// csrfOK checks the form's CSRF token against the signed-in session, or,
// before the sign-in is complete, against the pre-session cookie of the
// sign-in forms.
func (h *Handler) csrfOK(r *http.Request, s *session) bool {
	got := r.PostFormValue("csrf")
	if got == "" {
		return false
	}
	want := ""
	if s != nil && s.Stage == store.SessionFull {
		want = s.csrf()
	} else if c, err := r.Cookie(preCookie); err == nil && c.Value != "" {
		want = csrfToken(c.Value, "pre")
	}
	return want != "" && hmac.Equal([]byte(got), []byte(want))
}

// formToken returns the CSRF token for a form shown to the request, setting
// the pre-session cookie when there is no session.
func (h *Handler) formToken(w http.ResponseWriter, r *http.Request, s *session) (string, error) {
	if s != nil && s.Stage == store.SessionFull {
		return s.csrf(), nil
	}
	if c, err := r.Cookie(preCookie); err == nil && c.Value != "" && len(c.Value) <= 100 {
		return csrfToken(c.Value, "pre"), nil
	}
	tok, err := auth.RandomToken(24)
	if err != nil {
		return "", err
	}
	h.setCookie(w, r, preCookie, tok, 3600)
	return csrfToken(tok, "pre"), nil
}

// safeNext returns next when it is a path on this site, else "/".
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") ||
		strings.HasPrefix(next, "/login") || strings.HasPrefix(next, "/auth/") {
		return "/"
	}
	return next
}

type loginData struct {
	Next, Name, Error string
	OIDC              bool
}

func (h *Handler) loginForm(w http.ResponseWriter, r *http.Request, s *session) error {
	if s != nil && s.Stage == store.SessionFull {
		http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
		return nil
	}
	return h.renderLogin(w, r, s, http.StatusOK, loginData{Next: safeNext(r.URL.Query().Get("next"))})
}

func (h *Handler) renderLogin(w http.ResponseWriter, r *http.Request, s *session, status int, d loginData) error {
	d.OIDC = h.oidc != nil
	if s != nil && s.Stage != store.SessionFull {
		s = nil // a half-done sign-in starts over
	}
	return h.render(w, r, s, status, "login", h.tr(h.requestLang(r, s), "login.title"), d)
}

// login checks a user name and password.
func (h *Handler) login(w http.ResponseWriter, r *http.Request, s *session) error {
	ctx := r.Context()
	lang := h.requestLang(r, s)
	d := loginData{Next: safeNext(r.PostFormValue("next")), Name: strings.TrimSpace(r.PostFormValue("name"))}
	if ok, retry := h.limit.Allow(clientAddr(r)); !ok {
		w.Header().Set("Retry-After", fmt.Sprint(int(retry.Seconds())+1))
		d.Error = h.tr(lang, "login.ratelimited")
		return h.renderLogin(w, r, nil, http.StatusTooManyRequests, d)
	}
	name := strings.ToLower(d.Name)
	password := r.PostFormValue("password")
	now := h.opts.Clock()
	u, err := h.svc.Users.UserByName(ctx, name)
	if errors.Is(err, store.ErrNotFound) || (err == nil && (u.PasswordHash == "" || u.DisabledAt != 0)) {
		auth.DummyVerify(password, h.opts.Password)
		if err := h.audit(ctx, nil, "user.login_failed", "user:"+clip(name, 64), map[string]any{"reason": "unknown or disabled user", "remote": clientAddr(r)}); err != nil {
			return err
		}
		d.Error = h.tr(lang, "login.wrong")
		return h.renderLogin(w, r, nil, http.StatusUnauthorized, d)
	}
	if err != nil {
		return err
	}
	if u.LockedUntil > now.UnixMilli() {
		d.Error = h.tr(lang, "login.locked", time.UnixMilli(u.LockedUntil).In(time.Local).Format("15:04"))
		return h.renderLogin(w, r, nil, http.StatusForbidden, d)
	}
	ok, rehash, err := auth.VerifyPassword(u.PasswordHash, password, h.opts.Password)
	if err != nil {
		h.log.Error("a user's stored password hash is unreadable", "user", u.Name, "err", err)
	}
	if !ok {
		return h.loginFailed(w, r, u, d, "wrong password")
	}
	if rehash {
		if nh, err := auth.HashPassword(password, h.opts.Password); err == nil {
			if err := h.svc.Users.SetPassword(ctx, u.ID, nh, now.UnixMilli()); err != nil {
				h.log.Warn("renewing a password hash failed", "user", u.Name, "err", err)
			}
		}
	}
	if u.TOTPEnabled {
		if _, err := h.newSession(w, r, u, store.SessionTOTP); err != nil {
			return err
		}
		http.Redirect(w, r, "/login/totp?next="+url.QueryEscape(d.Next), http.StatusSeeOther)
		return nil
	}
	return h.signedIn(w, r, s, u, "password", d.Next)
}

func (h *Handler) loginFailed(w http.ResponseWriter, r *http.Request, u store.User, d loginData, reason string) error {
	ctx := r.Context()
	lang := h.requestLang(r, nil)
	until, err := h.svc.Users.LoginFailed(ctx, u.ID, h.opts.Clock().UnixMilli(), h.opts.MaxFailures, h.opts.LockFor.Milliseconds())
	if err != nil {
		return err
	}
	details := map[string]any{"reason": reason, "remote": clientAddr(r)}
	if until != 0 {
		details["locked_until"] = time.UnixMilli(until).UTC().Format(time.RFC3339)
	}
	if err := h.audit(ctx, nil, "user.login_failed", "user:"+u.Name, details); err != nil {
		return err
	}
	d.Error = h.tr(lang, "login.wrong")
	status := http.StatusUnauthorized
	if until != 0 {
		d.Error = h.tr(lang, "login.locked", time.UnixMilli(until).In(time.Local).Format("15:04"))
		status = http.StatusForbidden
	}
	return h.renderLogin(w, r, nil, status, d)
}

// signedIn ends a previous session, starts a full one and sends the user
// on.
func (h *Handler) signedIn(w http.ResponseWriter, r *http.Request, old *session, u store.User, method, next string) error {
	ctx := r.Context()
	if old != nil {
		if err := h.svc.Users.DeleteSession(ctx, old.IDHash); err != nil {
			return err
		}
	}
	s, err := h.newSession(w, r, u, store.SessionFull)
	if err != nil {
		return err
	}
	if err := h.svc.Users.LoginSucceeded(ctx, u.ID, h.opts.Clock().UnixMilli()); err != nil {
		return err
	}
	if err := h.audit(ctx, s, "user.login", "user:"+u.Name, map[string]any{"method": method, "remote": clientAddr(r)}); err != nil {
		return err
	}
	if next == "/" || next == "" {
		next = homeOf(s.Role)
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
	return nil
}

func homeOf(r auth.Role) string {
	if r.Can(auth.ReadFleet) {
		return "/overview"
	}
	if r.Can(auth.ReadAudit) {
		return "/audit"
	}
	return "/account"
}

type totpData struct {
	Next, Error string
}

func (h *Handler) totpForm(w http.ResponseWriter, r *http.Request, s *session) error {
	if s == nil || s.Stage != store.SessionTOTP {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return nil
	}
	return h.render(w, r, s, http.StatusOK, "totp", h.tr(s.lang, "totp.title"), totpData{Next: safeNext(r.URL.Query().Get("next"))})
}

func (h *Handler) totpLogin(w http.ResponseWriter, r *http.Request, s *session) error {
	if s == nil || s.Stage != store.SessionTOTP {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return nil
	}
	ctx := r.Context()
	d := totpData{Next: safeNext(r.PostFormValue("next"))}
	if ok, _ := h.limit.Allow(clientAddr(r)); !ok {
		d.Error = h.tr(s.lang, "login.ratelimited")
		return h.render(w, r, s, http.StatusTooManyRequests, "totp", h.tr(s.lang, "totp.title"), d)
	}
	u, err := h.svc.Users.User(ctx, s.User.ID)
	if err != nil {
		return err
	}
	now := h.opts.Clock()
	if u.LockedUntil > now.UnixMilli() {
		return h.loginFailedTOTP(w, r, s, u, d)
	}
	step, ok := auth.VerifyTOTP(u.TOTPSecret, r.PostFormValue("code"), now)
	if ok {
		if ok, err = h.svc.Users.UseTOTPStep(ctx, u.ID, step); err != nil {
			return err
		}
	}
	if !ok {
		return h.loginFailedTOTP(w, r, s, u, d)
	}
	return h.signedIn(w, r, s, u, "password+totp", d.Next)
}

func (h *Handler) loginFailedTOTP(w http.ResponseWriter, r *http.Request, s *session, u store.User, d totpData) error {
	ctx := r.Context()
	until, err := h.svc.Users.LoginFailed(ctx, u.ID, h.opts.Clock().UnixMilli(), h.opts.MaxFailures, h.opts.LockFor.Milliseconds())
	if err != nil {
		return err
	}
	if err := h.audit(ctx, nil, "user.login_failed", "user:"+u.Name, map[string]any{"reason": "wrong second-factor code", "remote": clientAddr(r)}); err != nil {
		return err
	}
	d.Error = h.tr(s.lang, "totp.wrong")
	if until != 0 || u.LockedUntil > h.opts.Clock().UnixMilli() {
		// Locked: the half-done sign-in ends.
		if err := h.svc.Users.DeleteSession(ctx, s.IDHash); err != nil {
			return err
		}
		lock := max(until, u.LockedUntil)
		return h.renderLogin(w, r, nil, http.StatusForbidden, loginData{Next: d.Next,
			Error: h.tr(s.lang, "login.locked", time.UnixMilli(lock).In(time.Local).Format("15:04"))})
	}
	return h.render(w, r, s, http.StatusUnauthorized, "totp", h.tr(s.lang, "totp.title"), d)
}

func (h *Handler) logout(w http.ResponseWriter, r *http.Request, s *session) error {
	ctx := r.Context()
	if err := h.svc.Users.DeleteSession(ctx, s.IDHash); err != nil {
		return err
	}
	if err := h.audit(ctx, s, "user.logout", "user:"+s.User.Name, nil); err != nil {
		return err
	}
	h.setCookie(w, r, sessionCookie, "", -1)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
	return nil
}

func (h *Handler) home(w http.ResponseWriter, r *http.Request, s *session) error {
	http.Redirect(w, r, homeOf(s.Role), http.StatusSeeOther)
	return nil
}

// setLang sets the language cookie and returns to the page (a plain link,
// so that it works on the sign-in page and without JavaScript).
func (h *Handler) setLang(w http.ResponseWriter, r *http.Request, s *session) error {
	lang := r.URL.Query().Get("to")
	if !slices.Contains(languages, lang) {
		lang = h.opts.Lang
	}
	h.setCookie(w, r, langCookie, lang, 365*24*3600)
	back := r.URL.Query().Get("back")
	if !strings.HasPrefix(back, "/") || strings.HasPrefix(back, "//") || strings.ContainsAny(back, "\\\r\n") {
		back = "/"
	}
	http.Redirect(w, r, back, http.StatusSeeOther)
	return nil
}

// OIDC sign-in. The state, nonce and PKCE verifier travel in a signed,
// short-lived cookie (SameSite=Lax: the provider's redirect back is a
// cross-site navigation), so that any replica can finish the sign-in.

type oidcState struct {
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"`
	Next     string `json:"x"`
	Expires  int64  `json:"e"`
}

func (h *Handler) oidcStart(w http.ResponseWriter, r *http.Request, s *session) error {
	if h.oidc == nil {
		return &userError{http.StatusNotFound, h.tr(h.requestLang(r, s), "error.notfound")}
	}
	var st oidcState
	for _, p := range []*string{&st.State, &st.Nonce, &st.Verifier} {
		v, err := auth.RandomToken(32)
		if err != nil {
			return err
		}
		*p = v
	}
	st.Next = safeNext(r.URL.Query().Get("next"))
	st.Expires = h.opts.Clock().Add(10 * time.Minute).Unix()
	b, _ := json.Marshal(st)
	signed, err := h.sign(r.Context(), string(b))
	if err != nil {
		return err
	}
	to, err := h.oidc.AuthCodeURL(r.Context(), st.State, st.Nonce, st.Verifier)
	if err != nil {
		h.log.Error("OIDC sign-in cannot start", "err", err)
		return &userError{http.StatusBadGateway, h.tr(h.requestLang(r, s), "login.oidc_down")}
	}
	http.SetCookie(w, &http.Cookie{Name: oidcCookie, Value: signed, Path: "/auth/oidc/callback", HttpOnly: true,
		Secure: h.secureRequest(r), SameSite: http.SameSiteLaxMode, MaxAge: 600})
	http.Redirect(w, r, to, http.StatusFound)
	return nil
}

func (h *Handler) oidcCallback(w http.ResponseWriter, r *http.Request, s *session) error {
	ctx := r.Context()
	lang := h.requestLang(r, s)
	if h.oidc == nil {
		return &userError{http.StatusNotFound, h.tr(lang, "error.notfound")}
	}
	refuse := func(reason string, args ...any) error {
		msg := fmt.Sprintf(reason, args...)
		h.log.Warn("OIDC sign-in refused", "reason", msg, "remote", clientAddr(r))
		if err := h.audit(ctx, nil, "user.login_failed", "oidc", map[string]any{"reason": msg, "remote": clientAddr(r)}); err != nil {
			return err
		}
		return h.renderLogin(w, r, nil, http.StatusForbidden, loginData{Error: h.tr(lang, "login.oidc_refused")})
	}
	c, err := r.Cookie(oidcCookie)
	if err != nil {
		return refuse("no sign-in in progress (state cookie missing)")
	}
	http.SetCookie(w, &http.Cookie{Name: oidcCookie, Value: "", Path: "/auth/oidc/callback", MaxAge: -1, HttpOnly: true,
		Secure: h.secureRequest(r), SameSite: http.SameSiteLaxMode})
	raw, ok := h.verify(ctx, c.Value)
	var st oidcState
	if !ok || json.Unmarshal([]byte(raw), &st) != nil || st.Expires < h.opts.Clock().Unix() {
		return refuse("state cookie invalid or expired")
	}
	q := r.URL.Query()
	if e := q.Get("error"); e != "" {
		return refuse("the provider answered %s", clip(e, 100))
	}
	if !hmac.Equal([]byte(q.Get("state")), []byte(st.State)) {
		return refuse("state does not match")
	}
	claims, err := h.oidc.Exchange(ctx, q.Get("code"), st.Verifier, st.Nonce)
	if err != nil {
		return refuse("%v", err)
	}
	role := h.oidcRole(claims)
	if role == "" {
		return refuse("user %q has no Kogge role in claim %s", claims.Subject, h.opts.OIDC.RoleClaim)
	}
	u, err := h.oidcUser(ctx, claims, role)
	if err != nil {
		var ue *userError
		if errors.As(err, &ue) {
			return refuse("%s", ue.msg)
		}
		return err
	}
	if u.DisabledAt != 0 {
		return refuse("user %s is disabled", u.Name)
	}
	ns, err := h.newSession(w, r, u, store.SessionFull)
	if err != nil {
		return err
	}
	if err := h.svc.Users.LoginSucceeded(ctx, u.ID, h.opts.Clock().UnixMilli()); err != nil {
		return err
	}
	if err := h.audit(ctx, ns, "user.login", "user:"+u.Name, map[string]any{"method": "oidc", "remote": clientAddr(r)}); err != nil {
		return err
	}
	next := st.Next
	if next == "/" {
		next = homeOf(ns.Role)
	}
	// A page, not a redirect: the browser sends the SameSite=Strict
	// session cookie only on a navigation that starts on this site.
	return h.render(w, r, ns, http.StatusOK, "continue", h.tr(ns.lang, "login.title"), next)
}

// oidcRole maps the claims to the most powerful role they give.
func (h *Handler) oidcRole(c auth.Claims) auth.Role {
	have := c.Strings(h.opts.OIDC.RoleClaim)
	for _, m := range []struct {
		role   auth.Role
		values []string
	}{{auth.Admin, h.opts.OIDC.AdminValues}, {auth.Operator, h.opts.OIDC.OperatorValues},
		{auth.Auditor, h.opts.OIDC.AuditorValues}, {auth.Viewer, h.opts.OIDC.ViewerValues}} {
		for _, v := range m.values {
			if slices.Contains(have, v) {
				return m.role
			}
		}
	}
	return ""
}

// oidcUser finds or creates the user of an OIDC subject and gives it the
// role the provider says.
func (h *Handler) oidcUser(ctx context.Context, c auth.Claims, role auth.Role) (store.User, error) {
	subject := c.Issuer + " " + c.Subject
	now := h.opts.Clock().UnixMilli()
	u, err := h.svc.Users.UserByOIDC(ctx, subject)
	if err == nil {
		display := c.Name
		r := string(role)
		if u.Role != r || (display != "" && display != u.DisplayName) {
			if err := h.svc.Users.UpdateUser(ctx, u.ID, store.UserUpdate{Role: &r, DisplayName: &display, Email: &c.Email}, now); err != nil {
				return store.User{}, err
			}
			if err := h.audit(ctx, nil, "user.update", "user:"+u.Name, map[string]any{"role": r, "by": "oidc"}); err != nil {
				return store.User{}, err
			}
			u.Role = r
		}
		return u, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return store.User{}, err
	}
	name := strings.ToLower(c.PreferredUsername)
	if ValidUserName(name) != nil {
		name = "oidc-" + strings.ToLower(clip(c.Subject, 40))
	}
	u = store.User{ID: uuid.Must(uuid.NewV7()).String(), Name: name, DisplayName: c.Name, Email: c.Email,
		Role: string(role), OIDCSubject: subject, CreatedAt: now}
	if err := h.svc.Users.CreateUser(ctx, u); errors.Is(err, store.ErrUserExists) {
		return store.User{}, &userError{http.StatusConflict, fmt.Sprintf("the user name %q is taken by a local user", name)}
	} else if err != nil {
		return store.User{}, err
	}
	if err := h.audit(ctx, nil, "user.create", "user:"+name, map[string]any{"role": string(role), "by": "oidc"}); err != nil {
		return store.User{}, err
	}
	return u, nil
}

// ValidUserName checks a login name: 1 to 64 characters of a-z, 0-9, . _ -
// and @, starting with a letter or digit.
func ValidUserName(name string) error {
	if name == "" || len(name) > 64 {
		return errors.New("a user name has 1 to 64 characters")
	}
	for i, c := range name {
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || (i > 0 && strings.ContainsRune("._-@", c))
		if !ok {
			return errors.New("a user name has lower-case letters, digits and . _ - @, and starts with a letter or digit")
		}
	}
	return nil
}

// AdminPasswordFile is the file in the data directory that holds the
// generated first admin's password.
const AdminPasswordFile = "dashboard-admin-password"

// EnsureAdmin creates the first admin, "admin" with a random password,
// when there is no user at all. The password is stored in dir (mode 0600)
// and returned, so that the caller can show it once; created is false when
// users exist.
func EnsureAdmin(ctx context.Context, users Users, dir string, p auth.Params, now time.Time) (password string, created bool, err error) {
	n, _, err := users.CountUsers(ctx)
	if err != nil || n > 0 {
		return "", false, err
	}
	password = auth.RandomPassword()
	hash, err := auth.HashPassword(password, p)
	if err != nil {
		return "", false, err
	}
	file := filepath.Join(dir, AdminPasswordFile)
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return "", false, fmt.Errorf("store the first admin's password: %w", err)
	}
	_, werr := f.WriteString("admin " + password + "\n")
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		os.Remove(file)
		return "", false, fmt.Errorf("store the first admin's password in %s: %w", file, err)
	}
	if fi, err := os.Stat(file); err == nil && fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(file, 0o600); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", false, err
		}
	}
	err = users.CreateUser(ctx, store.User{ID: uuid.Must(uuid.NewV7()).String(), Name: "admin", DisplayName: "Administrator",
		Role: string(auth.Admin), PasswordHash: hash, CreatedAt: now.UnixMilli()})
	if errors.Is(err, store.ErrUserExists) {
		// Another replica was first.
		os.Remove(file)
		return "", false, nil
	}
	if err != nil {
		os.Remove(file)
		return "", false, err
	}
	return password, true, nil
}
