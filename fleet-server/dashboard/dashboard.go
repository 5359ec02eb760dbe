// Package dashboard is the fleet server's web dashboard: server-rendered
// HTML (html/template, embedded templates and assets, no build step) with a
// little progressive JavaScript that keeps the pages live over a websocket.
// Everything but the live updates works with JavaScript off.
//
// Pages: overview, devices (filter, search, a device's health timeline,
// peripherals, configuration, commands, certificates, revocation), the
// records pipeline (counts only, never personal data), delivery (queues,
// rates, dead letters with replay and discard), alerts (rules, firing and
// resolved), the audit log, users and the own account.
//
// Sign-in: local users with argon2id password hashes and an optional TOTP
// second factor, or OpenID Connect. Sessions are cookies (HttpOnly,
// SameSite=Strict, Secure over TLS) naming a server-side session; every
// form carries a CSRF token derived from the session; sign-ins are rate
// limited per address and accounts lock after repeated failures. Roles
// (package auth) are checked on every route; every change is audited.
//
// The dashboard reads and acts through the same services as the REST API
// (registry, store, commands, twin, delivery, audit), declared here as
// small interfaces.
package dashboard

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/fleet-server/alerts"
	"github.com/kogge-fleet/kogge/fleet-server/audit"
	"github.com/kogge-fleet/kogge/fleet-server/dashboard/auth"
	"github.com/kogge-fleet/kogge/fleet-server/registry"
	"github.com/kogge-fleet/kogge/fleet-server/store"
	"github.com/kogge-fleet/kogge/fleet-server/twin"
)

// Registry is what the dashboard needs of fleet-server/registry.
type Registry interface {
	Groups(ctx context.Context) ([]registry.Group, error)
	Devices(ctx context.Context, f registry.DeviceFilter) ([]registry.Device, error)
	Device(ctx context.Context, id string) (registry.Device, error)
	RevokeDevice(ctx context.Context, id, reason string) error
}

// Fleet is what the dashboard reads of presence, health and records
// (fleet-server/store).
type Fleet interface {
	Presence(ctx context.Context, device string) (store.Presence, error)
	Presences(ctx context.Context, after string, limit int, onlineOnly bool) ([]store.Presence, error)
	PresenceChanges(ctx context.Context, since int64) ([]store.Presence, error)
	LatestHealth(ctx context.Context, device string) (store.Health, error)
	LatestHealthPage(ctx context.Context, after string, limit int) ([]store.Health, error)
	HealthHistory(ctx context.Context, f store.HealthFilter) ([]store.Health, error)
	DeviceSync(ctx context.Context, device string) (store.DeviceSync, error)
	RecordCounts(ctx context.Context, since int64) ([]store.RecordCount, error)
}

// Users is where the dashboard keeps its users and sessions
// (fleet-server/store).
type Users interface {
	CreateUser(ctx context.Context, u store.User) error
	User(ctx context.Context, id string) (store.User, error)
	UserByName(ctx context.Context, name string) (store.User, error)
	UserByOIDC(ctx context.Context, subject string) (store.User, error)
	Users(ctx context.Context) ([]store.User, error)
	CountUsers(ctx context.Context) (users, admins int, err error)
	UpdateUser(ctx context.Context, id string, u store.UserUpdate, at int64) error
	DeleteUser(ctx context.Context, id string) error
	SetPassword(ctx context.Context, id, hash string, at int64) error
	SetTOTP(ctx context.Context, id, secret string, enabled bool, at int64) error
	UseTOTPStep(ctx context.Context, id string, step int64) (bool, error)
	LoginFailed(ctx context.Context, id string, at int64, maxFailures int, lockFor int64) (int64, error)
	LoginSucceeded(ctx context.Context, id string, at int64) error
	UnlockUser(ctx context.Context, id string, at int64) error

	CreateSession(ctx context.Context, s store.Session) error
	Session(ctx context.Context, idHash string, now int64) (store.Session, error)
	UserSessions(ctx context.Context, user string, now int64) ([]store.Session, error)
	TouchSession(ctx context.Context, idHash string, lastSeen, expiresAt int64) error
	DeleteSession(ctx context.Context, idHash string) error
	DeleteUserSessions(ctx context.Context, user, keep string) (int64, error)
	DeleteExpiredSessions(ctx context.Context, now int64) (int64, error)

	SettingOrPut(ctx context.Context, key string, value []byte) ([]byte, error)
}

// Commands is what the dashboard needs of fleet-server/commands.
type Commands interface {
	Send(ctx context.Context, device, name string, args map[string]string, ttl time.Duration) (store.Command, error)
	Command(ctx context.Context, id uuid.UUID) (store.Command, error)
	History(ctx context.Context, f store.CommandFilter) ([]store.Command, error)
}

// Twin is what the dashboard reads of fleet-server/twin.
type Twin interface {
	Device(ctx context.Context, device string) (twin.View, error)
}

// AlertRules manages the alert rules (fleet-server/alerts).
type AlertRules interface {
	Rules(ctx context.Context) ([]alerts.Rule, error)
	Rule(ctx context.Context, id string) (alerts.Rule, error)
	PutRule(ctx context.Context, r alerts.Rule) (alerts.Rule, error)
	DeleteRule(ctx context.Context, id string) error
}

// AlertLog lists alerts and their notifications (fleet-server/store).
type AlertLog interface {
	Alerts(ctx context.Context, f store.AlertFilter) ([]store.Alert, error)
	Alert(ctx context.Context, id string) (store.Alert, error)
	AlertNotifications(ctx context.Context, alert string) ([]store.AlertNotification, error)
}

// Delivery is what the dashboard needs of fleet-server/delivery.
type Delivery interface {
	Stats(ctx context.Context) ([]store.OfficeStats, error)
	Deliveries(ctx context.Context, f store.DeliveryFilter) ([]store.Delivery, error)
	Replay(ctx context.Context, id uuid.UUID, actor string) (store.Delivery, error)
	Discard(ctx context.Context, id uuid.UUID, reason, actor string) (store.Delivery, error)
}

// Audit is the audit log (fleet-server/audit).
type Audit interface {
	Record(ctx context.Context, actor, action, target string, details map[string]any) (audit.Entry, error)
	List(ctx context.Context, f audit.Filter) ([]audit.Entry, error)
}

// Services are the components the dashboard serves from. All are required
// but Delivery.
type Services struct {
	Registry Registry
	Fleet    Fleet
	Users    Users
	Commands Commands
	Twin     Twin
	Rules    AlertRules
	Alerts   AlertLog
	Audit    Audit
	// Delivery is nil while the server runs without the delivery queue;
	// the delivery page then says so.
	Delivery Delivery
	// Rollouts is nil while software updates are off; the rollout pages
	// then say so (see rollouts.go).
	Rollouts Rollouts
}

func (s Services) validate() error {
	var missing []string
	for _, c := range []struct {
		name string
		ok   bool
	}{{"registry", s.Registry != nil}, {"fleet", s.Fleet != nil}, {"users", s.Users != nil},
		{"commands", s.Commands != nil}, {"twin", s.Twin != nil}, {"alert rules", s.Rules != nil},
		{"alerts", s.Alerts != nil}, {"audit", s.Audit != nil}} {
		if !c.ok {
			missing = append(missing, c.name)
		}
	}
	if len(missing) > 0 {
		return errors.New("dashboard: services missing: " + strings.Join(missing, ", "))
	}
	return nil
}

// OIDCOptions configure sign-in through an OpenID Connect provider.
type OIDCOptions struct {
	auth.OIDCConfig
	// RoleClaim names the claim that carries the user's groups or roles
	// (dotted for nested claims, e.g. realm_access.roles); default
	// "groups".
	RoleClaim string
	// Values of RoleClaim that give each role; the most powerful match
	// wins. A user without a match may not sign in.
	AdminValues, OperatorValues, AuditorValues, ViewerValues []string
}

// Options are the optional settings of New.
type Options struct {
	Logger *slog.Logger
	// Clock returns the current time; default time.Now.
	Clock func() time.Time
	// PublicURL is the dashboard's address as users reach it (e.g.
	// https://fleet.example.org). With https, cookies are Secure even
	// behind a TLS-terminating proxy.
	PublicURL string
	// Lang is the default language, "de" or "en"; default "de".
	Lang string
	// Password are the argon2id parameters of new hashes; default
	// auth.DefaultParams.
	Password auth.Params
	// SessionIdle ends a session after this long without a request;
	// default 1 h. SessionMax ends it this long after sign-in; default
	// 12 h.
	SessionIdle time.Duration
	SessionMax  time.Duration
	// MaxFailures failed sign-ins lock an account for LockFor; defaults 5
	// and 15 min.
	MaxFailures int
	LockFor     time.Duration
	// LoginRate and LoginBurst limit sign-in attempts per client address:
	// LoginBurst at once, then one per LoginRate; defaults 10 and 6 s.
	LoginBurst int
	LoginRate  time.Duration
	// OIDC enables sign-in through an OpenID Connect provider.
	OIDC *OIDCOptions
	// PollEvery is how often presence and commands are polled for live
	// updates; default 1 s.
	PollEvery time.Duration
	// ClientBuffer bounds the live messages queued for one browser; a
	// browser that falls further behind is disconnected (it reconnects
	// and reloads); default 64.
	ClientBuffer int
	// Rates reports capture and delivery rates; nil shows none.
	Rates *Rates
}

func (o *Options) defaults() {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Lang == "" {
		o.Lang = "de"
	}
	if o.Password == (auth.Params{}) {
		o.Password = auth.DefaultParams
	}
	if o.SessionIdle == 0 {
		o.SessionIdle = time.Hour
	}
	if o.SessionMax == 0 {
		o.SessionMax = 12 * time.Hour
	}
	if o.MaxFailures == 0 {
		o.MaxFailures = 5
	}
	if o.LockFor == 0 {
		o.LockFor = 15 * time.Minute
	}
	if o.LoginBurst == 0 {
		o.LoginBurst = 10
	}
	if o.LoginRate == 0 {
		o.LoginRate = 6 * time.Second
	}
	if o.PollEvery == 0 {
		o.PollEvery = time.Second
	}
	if o.ClientBuffer == 0 {
		o.ClientBuffer = 64
	}
	if o.OIDC != nil && o.OIDC.RoleClaim == "" {
		o.OIDC.RoleClaim = "groups"
	}
}

// Validate checks the options after defaults are filled in.
func (o *Options) Validate() error {
	var errs []error
	if o.PublicURL != "" {
		u, err := url.Parse(o.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("dashboard public URL %q: want http(s)://HOST[:PORT]", o.PublicURL))
		}
	}
	if !slices.Contains(languages, o.Lang) {
		errs = append(errs, fmt.Errorf("dashboard language %q: want de or en", o.Lang))
	}
	if err := o.Password.Validate(); err != nil {
		errs = append(errs, err)
	}
	if o.SessionIdle < time.Minute || o.SessionMax < o.SessionIdle {
		errs = append(errs, fmt.Errorf("dashboard sessions: idle %v at least 1m and at most the maximum %v", o.SessionIdle, o.SessionMax))
	}
	if o.MaxFailures < 1 || o.LockFor < time.Second || o.LoginBurst < 1 || o.LoginRate <= 0 {
		errs = append(errs, errors.New("dashboard sign-in limits must be positive"))
	}
	if o.PollEvery < 10*time.Millisecond || o.ClientBuffer < 1 {
		errs = append(errs, errors.New("dashboard poll interval at least 10ms, client buffer at least 1"))
	}
	if o.OIDC != nil {
		if len(o.OIDC.AdminValues)+len(o.OIDC.OperatorValues)+len(o.OIDC.AuditorValues)+len(o.OIDC.ViewerValues) == 0 {
			errs = append(errs, errors.New("dashboard OIDC: no claim value gives a role; nobody could sign in"))
		}
	}
	return errors.Join(errs...)
}

// Route is one registered route.
type Route struct {
	Method string
	Path   string
	// Public routes need no session; the others need the permission.
	Public     bool
	Permission auth.Permission
}

// Handler serves the dashboard. It is an http.Handler; Run keeps its live
// updates and housekeeping going.
type Handler struct {
	svc    Services
	opts   Options
	log    *slog.Logger
	mux    *http.ServeMux
	routes []Route
	pages  *pages
	cat    *catalogue
	limit  *auth.Limiter
	oidc   *auth.OIDC
	secure bool
	// key signs the OIDC state cookie; loaded when first needed.
	keyMu sync.Mutex
	key   []byte

	hub   *hub
	watch *watcher
}

// New returns the dashboard handler.
func New(svc Services, opts Options) (*Handler, error) {
	if err := svc.validate(); err != nil {
		return nil, err
	}
	opts.defaults()
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("dashboard: %w", err)
	}
	cat, err := loadCatalogue()
	if err != nil {
		return nil, err
	}
	pg, err := loadPages(cat)
	if err != nil {
		return nil, err
	}
	h := &Handler{
		svc: svc, opts: opts, log: opts.Logger, mux: http.NewServeMux(), pages: pg, cat: cat,
		limit:  auth.NewLimiter(opts.LoginRate, opts.LoginBurst, 100_000, opts.Clock),
		secure: strings.HasPrefix(opts.PublicURL, "https://"),
	}
	if opts.OIDC != nil {
		if h.oidc, err = auth.NewOIDC(opts.OIDC.OIDCConfig); err != nil {
			return nil, fmt.Errorf("dashboard: %w", err)
		}
	}
	h.hub = newHub(opts.ClientBuffer, opts.Logger)
	h.watch = newWatcher(h)
	h.registerRoutes()
	return h, nil
}

// Routes lists the registered routes (for the test that every one is
// guarded).
func (h *Handler) Routes() []Route { return slices.Clone(h.routes) }

// handlerFunc is a page handler with the request's session.
type handlerFunc func(w http.ResponseWriter, r *http.Request, s *session) error

func (h *Handler) addRoute(method, path string, perm auth.Permission, public bool, fn handlerFunc) {
	h.routes = append(h.routes, Route{Method: method, Path: path, Public: public, Permission: perm})
	h.mux.Handle(method+" "+path, h.guard(method, perm, public, fn))
}

// page registers a route that needs a signed-in user with perm.
func (h *Handler) page(method, path string, perm auth.Permission, fn handlerFunc) {
	h.addRoute(method, path, perm, false, fn)
}

// public registers a route that needs no session.
func (h *Handler) public(method, path string, fn handlerFunc) {
	h.addRoute(method, path, "", true, fn)
}

func (h *Handler) registerRoutes() {
	h.public(http.MethodGet, "/static/{file}", h.static)
	h.public(http.MethodGet, "/login", h.loginForm)
	h.public(http.MethodPost, "/login", h.login)
	h.public(http.MethodGet, "/login/totp", h.totpForm)
	h.public(http.MethodPost, "/login/totp", h.totpLogin)
	h.public(http.MethodGet, "/auth/oidc", h.oidcStart)
	h.public(http.MethodGet, "/auth/oidc/callback", h.oidcCallback)
	h.public(http.MethodGet, "/lang", h.setLang)
	h.page(http.MethodPost, "/logout", auth.Self, h.logout)

	h.page(http.MethodGet, "/{$}", auth.Self, h.home)
	h.page(http.MethodGet, "/overview", auth.ReadFleet, h.overview)
	h.page(http.MethodGet, "/devices", auth.ReadFleet, h.devices)
	h.page(http.MethodGet, "/devices/{device}", auth.ReadFleet, h.device)
	h.page(http.MethodPost, "/devices/{device}/commands", auth.Operate, h.sendCommand)
	h.page(http.MethodPost, "/devices/{device}/revoke", auth.Administer, h.revokeDevice)
	h.page(http.MethodGet, "/records", auth.ReadFleet, h.records)
	h.page(http.MethodGet, "/delivery", auth.ReadFleet, h.delivery)
	h.page(http.MethodPost, "/delivery/dead/{record}/replay", auth.Operate, h.replay)
	h.page(http.MethodPost, "/delivery/dead/{record}/discard", auth.Operate, h.discard)
	h.page(http.MethodGet, "/alerts", auth.ReadFleet, h.alertsPage)
	h.page(http.MethodGet, "/alerts/{alert}", auth.ReadFleet, h.alertPage)
	h.page(http.MethodGet, "/alert-rules/new", auth.Administer, h.ruleForm)
	h.page(http.MethodGet, "/alert-rules/{rule}", auth.Administer, h.ruleForm)
	h.page(http.MethodPost, "/alert-rules", auth.Administer, h.saveRule)
	h.page(http.MethodPost, "/alert-rules/{rule}", auth.Administer, h.saveRule)
	h.page(http.MethodPost, "/alert-rules/{rule}/delete", auth.Administer, h.deleteRule)
	h.page(http.MethodGet, "/audit", auth.ReadAudit, h.auditPage)
	h.page(http.MethodGet, "/users", auth.Administer, h.usersPage)
	h.page(http.MethodPost, "/users", auth.Administer, h.createUser)
	h.page(http.MethodGet, "/users/{user}", auth.Administer, h.userPage)
	h.page(http.MethodPost, "/users/{user}", auth.Administer, h.updateUser)
	h.page(http.MethodPost, "/users/{user}/password", auth.Administer, h.resetPassword)
	h.page(http.MethodPost, "/users/{user}/unlock", auth.Administer, h.unlockUser)
	h.page(http.MethodPost, "/users/{user}/totp-reset", auth.Administer, h.resetTOTP)
	h.page(http.MethodPost, "/users/{user}/delete", auth.Administer, h.deleteUser)
	h.page(http.MethodGet, "/account", auth.Self, h.account)
	h.page(http.MethodPost, "/account/password", auth.Self, h.changePassword)
	h.page(http.MethodPost, "/account/lang", auth.Self, h.accountLang)
	h.page(http.MethodPost, "/account/totp", auth.Self, h.enableTOTP)
	h.page(http.MethodPost, "/account/totp/disable", auth.Self, h.disableTOTP)
	h.page(http.MethodPost, "/account/sessions/end-others", auth.Self, h.endOtherSessions)
	h.page(http.MethodGet, "/ws", auth.ReadFleet, h.serveWS)
	h.registerRollouts()

	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s, _ := h.loadSession(r)
		if s == nil || s.Stage != store.SessionFull {
			h.refuse(w, r, nil)
			return
		}
		h.renderError(w, r, s, http.StatusNotFound, h.tr(s.lang, "error.notfound"))
	})
}

// ServeHTTP serves one request with the security headers every page gets.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
		"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Referrer-Policy", "same-origin")
	if h.secureRequest(r) {
		hd.Set("Strict-Transport-Security", "max-age=31536000")
	}
	h.mux.ServeHTTP(w, r)
}

func (h *Handler) secureRequest(r *http.Request) bool { return h.secure || r.TLS != nil }

// guard checks the session, the role and, on a POST, the CSRF token before
// fn runs.
func (h *Handler) guard(method string, perm auth.Permission, public bool, fn handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, err := h.loadSession(r)
		if err != nil {
			h.log.Error("reading the session failed", "err", err)
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		if !public {
			if s == nil || s.Stage != store.SessionFull {
				h.refuse(w, r, s)
				return
			}
			if !s.Role.Can(perm) {
				h.renderError(w, r, s, http.StatusForbidden, h.tr(s.lang, "error.forbidden"))
				return
			}
		}
		if method == http.MethodPost && !h.csrfOK(r, s) {
			lang := h.requestLang(r, s)
			h.renderError(w, r, s, http.StatusForbidden, h.tr(lang, "error.csrf"))
			return
		}
		if err := fn(w, r, s); err != nil {
			h.fail(w, r, s, err)
		}
	})
}

// refuse answers a request without a (full) session: a page is redirected
// to the sign-in, anything else is 401.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, s *session) {
	if r.Method == http.MethodGet && r.Header.Get("Upgrade") == "" {
		next := r.URL.RequestURI()
		http.Redirect(w, r, "/login?next="+url.QueryEscape(next), http.StatusSeeOther)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Error(w, "sign in first", http.StatusUnauthorized)
}

// userError is an error whose message a user may read.
type userError struct {
	status int
	msg    string
}

func (e *userError) Error() string { return e.msg }

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, s *session, err error) {
	var ue *userError
	if errors.As(err, &ue) {
		h.renderError(w, r, s, ue.status, ue.msg)
		return
	}
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		return
	}
	h.log.Error("dashboard request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	lang := h.requestLang(r, s)
	h.renderError(w, r, s, http.StatusInternalServerError, h.tr(lang, "error.internal"))
}

func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// actor is how the audit log names a dashboard user.
func actor(s *session) string { return "dashboard:" + s.User.Name }

// audit records an admin action; a failure to record is an error of the
// action (nothing may happen unrecorded), so callers audit before they
// report success.
func (h *Handler) audit(ctx context.Context, s *session, action, target string, details map[string]any) error {
	who := "dashboard:anonymous"
	if s != nil && s.User.ID != "" {
		who = actor(s)
	}
	if _, err := h.svc.Audit.Record(ctx, who, action, target, details); err != nil {
		return fmt.Errorf("audit %s: %w", action, err)
	}
	return nil
}

// signed returns value with an HMAC under the dashboard's key.
func (h *Handler) sign(ctx context.Context, value string) (string, error) {
	key, err := h.cookieKey(ctx)
	if err != nil {
		return "", err
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(value))
	return base64.RawURLEncoding.EncodeToString([]byte(value)) + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil)), nil
}

// verify returns the value of a signed string.
func (h *Handler) verify(ctx context.Context, signed string) (string, bool) {
	key, err := h.cookieKey(ctx)
	if err != nil {
		return "", false
	}
	v, sig, ok := strings.Cut(signed, ".")
	if !ok {
		return "", false
	}
	value, err1 := base64.RawURLEncoding.DecodeString(v)
	got, err2 := base64.RawURLEncoding.DecodeString(sig)
	if err1 != nil || err2 != nil {
		return "", false
	}
	mac := hmac.New(sha256.New, key)
	mac.Write(value)
	return string(value), hmac.Equal(got, mac.Sum(nil))
}

// cookieKey is the dashboard's signing key, shared by replicas through the
// store's settings.
func (h *Handler) cookieKey(ctx context.Context) ([]byte, error) {
	h.keyMu.Lock()
	defer h.keyMu.Unlock()
	if h.key != nil {
		return h.key, nil
	}
	tok, err := auth.RandomToken(32)
	if err != nil {
		return nil, err
	}
	v, err := h.svc.Users.SettingOrPut(ctx, "dashboard.cookie-key", []byte(tok))
	if err != nil {
		return nil, fmt.Errorf("dashboard signing key: %w", err)
	}
	h.key = v
	return v, nil
}

// Run keeps the live updates going and deletes expired sessions until ctx
// ends; then it closes the live connections and waits for them.
func (h *Handler) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() { h.watch.run(ctx) })
	t := time.NewTicker(10 * time.Minute)
	defer t.Stop()
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-t.C:
			n, err := h.svc.Users.DeleteExpiredSessions(ctx, h.opts.Clock().UnixMilli())
			if err != nil && ctx.Err() == nil {
				h.log.Warn("deleting expired dashboard sessions failed; retrying later", "err", err)
			} else if n > 0 {
				h.log.Debug("deleted expired dashboard sessions", "sessions", n)
			}
		}
	}
	h.hub.close()
	wg.Wait()
	return nil
}

// AlertChanged passes an alert that fired or resolved to the live pages;
// give it to the alert evaluator as its OnChange. It never blocks.
func (h *Handler) AlertChanged(ev alerts.Event) {
	state := "resolved"
	if ev.Firing {
		state = "firing"
	}
	h.hub.broadcast(liveMessage{Type: "alert", ID: ev.Alert.ID, State: state, Rule: ev.Rule.Name,
		Subject: ev.Alert.Subject, Message: ev.Alert.Message, At: ev.Alert.FiredAt})
}

func hashToken(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}
