// Package api is the fleet server's REST API: JSON over HTTP under /api/v1,
// with bearer-token authentication, an OpenAPI 3 document at
// /api/v1/openapi.json, and /healthz, /readyz and /metrics without
// authentication.
//
// Request bodies are decoded strictly: at most MaxBodySize bytes, one JSON
// value, no unknown fields. Every error is a JSON object {"error": "..."}
// with a 4xx or 5xx status. Every call that changes something appends an
// entry to the audit log (fleet-server/audit): actor the API token
// (audit.APIToken), the action, its target and details.
package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kogge-fleet/kogge/fleet-server/audit"
)

// Prefix is the root of the authenticated API.
const Prefix = "/api/v1"

// ReadyCheck is one condition of /readyz: the store answers, the broker
// runs, ingest runs.
type ReadyCheck struct {
	Name  string
	Check func(ctx context.Context) error
}

// Options are the optional settings of New.
type Options struct {
	// Logger receives the access log and the audit lines.
	Logger *slog.Logger
	// Metrics is the registry /metrics serves; the API registers its own
	// request metrics in it. Default: a fresh registry.
	Metrics *prometheus.Registry
	// Ready are the checks of /readyz; without any, /readyz reports ready
	// as soon as the process serves.
	Ready []ReadyCheck
	// ReadyTimeout bounds each readiness check; default 2s.
	ReadyTimeout time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

func (o *Options) setDefaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = prometheus.NewRegistry()
	}
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = 2 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Validate checks the options.
func (o *Options) Validate() error {
	for i, c := range o.Ready {
		if c.Name == "" || c.Check == nil {
			return fmt.Errorf("ready check %d: needs a name and a function", i)
		}
	}
	return nil
}

// Route is one registered endpoint.
type Route struct {
	Method string
	// Path is the pattern with {name} wildcards, as in OpenAPI.
	Path string
	// Public routes need no token.
	Public bool
}

// Handler serves the API. It is an http.Handler.
type Handler struct {
	mux      *http.ServeMux
	routes   []Route
	tokenSum [sha256.Size]byte
	actor    string // the audit actor of requests with the token
	svc      Services
	log      *slog.Logger
	now      func() time.Time
	ready    []ReadyCheck
	readyTO  time.Duration

	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// New returns the API handler. token is the bearer token every request under
// /api/v1 must carry.
func New(token string, svc Services, opts Options) (*Handler, error) {
	if token == "" {
		return nil, errors.New("api: empty token")
	}
	if err := svc.validate(); err != nil {
		return nil, err
	}
	opts.setDefaults()
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	h := &Handler{
		mux:      http.NewServeMux(),
		tokenSum: sha256.Sum256([]byte(token)),
		actor:    audit.APIToken(token),
		svc:      svc,
		log:      opts.Logger,
		now:      opts.Now,
		ready:    opts.Ready,
		readyTO:  opts.ReadyTimeout,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kogge_api_requests_total",
			Help: "HTTP requests served by the API, by route and status code.",
		}, []string{"method", "route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kogge_api_request_duration_seconds",
			Help:    "Time to serve an API request, by route.",
			Buckets: prometheus.DefBuckets,
		}, []string{"method", "route"}),
	}
	for _, c := range []prometheus.Collector{h.requests, h.duration} {
		if err := opts.Metrics.Register(c); err != nil {
			return nil, fmt.Errorf("api: register metrics: %w", err)
		}
	}

	h.public("GET /healthz", h.healthz)
	h.public("GET /readyz", h.readyz)
	h.publicHandler("GET /metrics", promhttp.HandlerFor(opts.Metrics, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(opts.Logger.Handler(), slog.LevelWarn),
	}))
	h.handle("GET "+Prefix+"/openapi.json", h.openAPI)
	h.registerRoutes()

	// An unknown path under /api/v1 is a JSON 404 (after authentication,
	// so that it reveals nothing); other unknown paths too.
	h.mux.HandleFunc(Prefix+"/", h.authenticated(func(w http.ResponseWriter, r *http.Request) error {
		return errorf(http.StatusNotFound, "no such endpoint: %s %s", r.Method, r.URL.Path)
	}))
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, errorf(http.StatusNotFound, "no such endpoint: %s %s; the API lives under %s", r.Method, r.URL.Path, Prefix))
	})
	h.registerMethodFallbacks()
	return h, nil
}

// Routes lists the registered endpoints, for the OpenAPI check.
func (h *Handler) Routes() []Route { return slices.Clone(h.routes) }

// ServeHTTP serves one request, with the access log and request metrics.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := h.now()
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	h.mux.ServeHTTP(rec, r)
	elapsed := h.now().Sub(start)

	route := r.Pattern
	if _, p, ok := strings.Cut(route, " "); ok {
		route = p
	}
	if route == "" || route == "/" || route == Prefix+"/" {
		route = "unmatched"
	}
	h.requests.WithLabelValues(r.Method, route, fmt.Sprint(rec.status)).Inc()
	h.duration.WithLabelValues(r.Method, route).Observe(elapsed.Seconds())

	level := slog.LevelInfo
	if route == "/healthz" || route == "/readyz" || route == "/metrics" {
		level = slog.LevelDebug
	}
	h.log.Log(r.Context(), level, "http request", "method", r.Method, "path", r.URL.Path,
		"status", rec.status, "duration", elapsed.Round(time.Microsecond), "remote", r.RemoteAddr)
}

// statusRecorder remembers the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
}

func (s *statusRecorder) WriteHeader(code int) {
	if !s.wroteHeader {
		s.status, s.wroteHeader = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	s.wroteHeader = true
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// handlerFunc is an endpoint that returns its error instead of writing it.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// handle registers an authenticated endpoint; pattern is "METHOD /path".
func (h *Handler) handle(pattern string, fn handlerFunc) {
	h.addRoute(pattern, false)
	h.mux.HandleFunc(pattern, h.authenticated(fn))
}

// public registers an endpoint without authentication.
func (h *Handler) public(pattern string, fn handlerFunc) {
	h.publicHandler(pattern, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := fn(w, r); err != nil {
			h.writeErr(w, r, err)
		}
	}))
}

func (h *Handler) publicHandler(pattern string, hd http.Handler) {
	h.addRoute(pattern, true)
	h.mux.Handle(pattern, hd)
}

func (h *Handler) addRoute(pattern string, public bool) {
	method, path, ok := strings.Cut(pattern, " ")
	if !ok {
		panic("api: route pattern without a method: " + pattern)
	}
	h.routes = append(h.routes, Route{Method: method, Path: path, Public: public})
}

// registerMethodFallbacks answers a known path with an unknown method with a
// JSON 405 and an Allow header (the mux's own 405 is plain text).
func (h *Handler) registerMethodFallbacks() {
	allowed := map[string][]string{}
	public := map[string]bool{}
	var paths []string
	for _, rt := range h.routes {
		if _, ok := allowed[rt.Path]; !ok {
			paths = append(paths, rt.Path)
		}
		allowed[rt.Path] = append(allowed[rt.Path], rt.Method)
		public[rt.Path] = rt.Public
	}
	for _, p := range paths {
		methods := allowed[p]
		if slices.Contains(methods, http.MethodGet) {
			methods = append(methods, http.MethodHead)
		}
		allow := strings.Join(methods, ", ")
		fn := func(w http.ResponseWriter, r *http.Request) error {
			w.Header().Set("Allow", allow)
			return errorf(http.StatusMethodNotAllowed, "method %s not allowed on %s; allowed: %s", r.Method, r.URL.Path, allow)
		}
		if public[p] {
			h.mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
				h.writeErr(w, r, fn(w, r))
			})
		} else {
			h.mux.HandleFunc(p, h.authenticated(fn))
		}
	}
}

// authenticated checks the bearer token before fn runs, and writes fn's error.
func (h *Handler) authenticated(fn handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !h.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="kogge"`)
			writeError(w, errorf(http.StatusUnauthorized, "missing or wrong API token: send Authorization: Bearer TOKEN"))
			return
		}
		if err := fn(w, r); err != nil {
			h.writeErr(w, r, err)
		}
	}
}

func (h *Handler) authorized(r *http.Request) bool {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	// Comparing digests keeps the comparison constant-time in the length
	// of the token, too.
	sum := sha256.Sum256([]byte(strings.TrimSpace(token)))
	return subtle.ConstantTimeCompare(sum[:], h.tokenSum[:]) == 1
}

// writeErr writes err as a JSON error. An error that is not an *httpError is
// an internal one: it is logged and the client gets a generic message.
func (h *Handler) writeErr(w http.ResponseWriter, r *http.Request, err error) {
	var he *httpError
	if !errors.As(err, &he) {
		if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
			// The client went away; nobody reads the answer.
			return
		}
		h.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		he = errorf(http.StatusInternalServerError, "internal error; the server log has the details")
	}
	writeError(w, he)
}

func writeError(w http.ResponseWriter, e *httpError) {
	writeJSON(w, e.status, map[string]string{"error": e.msg})
}

// writeJSON writes v as the JSON response with status.
func writeJSON(w http.ResponseWriter, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode response: %w", err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	// A failed write means the client went away after the status was sent;
	// there is nobody to tell.
	_, _ = w.Write(append(b, '\n'))
	return nil
}

// audit appends an entry for a change made through the API to the audit
// log: the actor is the API token, the target the first attribute
// ("group:kiosks"), the details all attributes (never personal data). The
// change is made already; if the entry cannot be written, that is logged
// as an error and the request still succeeds.
func (h *Handler) audit(r *http.Request, action string, attrs ...any) {
	details := map[string]any{}
	target := ""
	for i := 0; i+1 < len(attrs); i += 2 {
		k, _ := attrs[i].(string)
		details[k] = attrs[i+1]
		if i == 0 {
			target = k + ":" + fmt.Sprint(attrs[i+1])
		}
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 30*time.Second)
	defer cancel()
	if _, err := h.svc.Audit.Record(ctx, h.actor, action, target, details); err != nil {
		h.log.Error("audit entry not written; the change was made", "action", action, "target", target,
			"remote", r.RemoteAddr, "err", err)
	}
}
