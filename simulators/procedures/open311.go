package procedures

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Service is an Open311 service (a kind of report).
type Service struct {
	Code        string `json:"service_code"`
	Name        string `json:"service_name"`
	Description string `json:"description"`
	Metadata    bool   `json:"metadata"`
	Type        string `json:"type"`
	Keywords    string `json:"keywords"`
	Group       string `json:"group"`
}

// Open311Options configure an Open311 server.
type Open311Options struct {
	// APIKey is the key POST requests must carry.
	APIKey string
	// Services are offered; default pothole (001), damaged-sign (002),
	// streetlight (003), crack (004), subsidence (005), traffic-light
	// (006), obstacle (007), other (099).
	Services []Service
	// Tokens makes POST answer with a token instead of the id.
	Tokens bool
	// HoldIDs (with Tokens) assigns request ids only at AssignPending.
	HoldIDs bool
	// RecordAttribute is the attribute code that carries the record id,
	// for the duplicate count and the lookup extension; default
	// kogge_record_id.
	RecordAttribute string
	// CA issues the server certificate; nil: a new CA.
	CA *CA
	// LogFile, when set, receives every created request as a JSON line.
	LogFile string
	Clock   func() time.Time
}

// MaxMedia bounds an uploaded photo.
const MaxMedia = 10 << 20

// Request is a service request the server holds.
type Request struct {
	ID          string
	Token       string
	ServiceCode string
	Description string
	Lat, Long   *float64
	Address     string
	Email       string
	FirstName   string
	LastName    string
	Phone       string
	MediaURL    string
	Media       []byte
	MediaType   string
	Attributes  map[string]string
	Status      string
	Notes       string
	Requested   time.Time
	Updated     time.Time
}

// Open311 is a GeoReport v2 server for the road-maintenance procedure, at
// URL()+"/open311/v2/": GET services.json, GET services/{code}.json, POST
// requests.json (form-encoded or multipart with a "media" file), GET
// requests.json (service_request_id as a comma-separated list,
// service_code, status, start_date, end_date, and the extension
// attribute[code]=value), GET requests/{id}.json, GET tokens/{token}.json.
// JSON only. Every request takes the next scripted fault.
type Open311 struct {
	opts   Open311Options
	srv    *Server
	ledger *Ledger
	faults

	mu       sync.Mutex
	requests []*Request
	byID     map[string]*Request
	byToken  map[string]*Request
	next     int
}

// NewOpen311 starts the server on a free loopback port.
func NewOpen311(opts Open311Options) (*Open311, error) {
	if opts.APIKey == "" {
		return nil, errors.New("open311 simulator: an api key is required")
	}
	if len(opts.Services) == 0 {
		opts.Services = []Service{
			{Code: "001", Name: "Schlagloch", Description: "Pothole", Type: "realtime", Group: "road"},
			{Code: "002", Name: "Verkehrszeichen beschädigt", Description: "Damaged sign", Type: "realtime", Group: "road"},
			{Code: "003", Name: "Straßenbeleuchtung", Description: "Streetlight", Type: "realtime", Group: "light"},
			{Code: "004", Name: "Riss in der Fahrbahn", Description: "Crack", Type: "realtime", Group: "road"},
			{Code: "005", Name: "Absenkung", Description: "Subsidence", Type: "realtime", Group: "road"},
			{Code: "006", Name: "Ampelstörung", Description: "Traffic light fault", Type: "realtime", Group: "light"},
			{Code: "007", Name: "Hindernis", Description: "Obstacle", Type: "realtime", Group: "road"},
			{Code: "099", Name: "Sonstiges", Description: "Other", Type: "realtime", Group: "other"},
		}
	}
	if opts.RecordAttribute == "" {
		opts.RecordAttribute = "kogge_record_id"
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	l, err := NewLedger("311", opts.LogFile, opts.Clock)
	if err != nil {
		return nil, err
	}
	o := &Open311{opts: opts, ledger: l, byID: map[string]*Request{}, byToken: map[string]*Request{}}
	if o.srv, err = serveHTTPS(http.HandlerFunc(o.serve), opts.CA, false); err != nil {
		return nil, err
	}
	return o, nil
}

// URL returns the GeoReport v2 base URL, ending in a slash.
func (o *Open311) URL() string { return o.srv.URL() + "/open311/v2/" }

// CA returns the CA of the server certificate.
func (o *Open311) CA() *CA { return o.srv.ca }

// Ledger returns the requests created, keyed by the record attribute.
func (o *Open311) Ledger() *Ledger { return o.ledger }

// Stats returns the unique reports and the duplicates (a second request
// for a record id: a second case).
func (o *Open311) Stats() (unique, duplicates int) { return o.ledger.Stats() }

// Close stops the server.
func (o *Open311) Close() error { return errors.Join(o.srv.Close(), o.ledger.Close()) }

// Requests returns copies of the requests, in creation order.
func (o *Open311) Requests() []Request {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]Request, len(o.requests))
	for i, r := range o.requests {
		out[i] = *r
	}
	return out
}

// Advance sets a request's status (open or closed) and notes.
func (o *Open311) Advance(id, status, notes string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	r, ok := o.byID[id]
	if !ok {
		return fmt.Errorf("no request %s", id)
	}
	r.Status, r.Notes, r.Updated = status, notes, o.opts.Clock()
	return nil
}

// AssignPending gives the requests that wait for an id (HoldIDs) their id.
func (o *Open311) AssignPending() {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, r := range o.requests {
		if r.ID == "" {
			o.assign(r)
		}
	}
}

// assign gives r its id; o.mu is held.
func (o *Open311) assign(r *Request) {
	o.next++
	r.ID = strconv.Itoa(100000 + o.next)
	o.byID[r.ID] = r
}

func (o *Open311) serve(w http.ResponseWriter, r *http.Request) {
	path, ok := strings.CutPrefix(r.URL.Path, "/open311/v2/")
	if !ok {
		writeErrors(w, http.StatusNotFound, "not a GeoReport v2 path")
		return
	}
	fault := o.faults.next()
	switch fault {
	case Fault500:
		writeErrors(w, http.StatusInternalServerError, "internal error (scripted)")
		return
	case FaultTimeout:
		o.srv.hold(r)
		return
	case FaultDrop:
		drop(w)
		return
	case FaultRefuse:
		writeErrors(w, http.StatusBadRequest, "refused (scripted)")
		return
	}
	status, body := o.route(r, path)
	if fault == FaultGarbage {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `[{"service_request_id": <html>`)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(body)
}

func writeErrors(w http.ResponseWriter, status int, desc string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode([]map[string]any{{"code": status, "description": desc}})
}

func apiErr(status int, desc string) (int, any) {
	return status, []map[string]any{{"code": status, "description": desc}}
}

func (o *Open311) route(r *http.Request, path string) (int, any) {
	switch {
	case r.Method == http.MethodGet && path == "services.json":
		return http.StatusOK, o.opts.Services
	case r.Method == http.MethodGet && strings.HasPrefix(path, "services/"):
		code := strings.TrimSuffix(strings.TrimPrefix(path, "services/"), ".json")
		if !o.knownService(code) {
			return apiErr(http.StatusNotFound, "unknown service_code")
		}
		return http.StatusOK, map[string]any{"service_code": code, "attributes": []map[string]any{{
			"variable": true, "code": o.opts.RecordAttribute, "datatype": "string", "required": false,
			"description": "Kogge record id", "order": 1,
		}}}
	case r.Method == http.MethodPost && path == "requests.json":
		return o.create(r)
	case r.Method == http.MethodGet && path == "requests.json":
		return o.query(r.URL.Query())
	case r.Method == http.MethodGet && strings.HasPrefix(path, "requests/"):
		id := strings.TrimSuffix(strings.TrimPrefix(path, "requests/"), ".json")
		o.mu.Lock()
		defer o.mu.Unlock()
		req, ok := o.byID[id]
		if !ok {
			return apiErr(http.StatusNotFound, "unknown service_request_id")
		}
		return http.StatusOK, []map[string]any{o.render(req)}
	case r.Method == http.MethodGet && strings.HasPrefix(path, "tokens/"):
		token := strings.TrimSuffix(strings.TrimPrefix(path, "tokens/"), ".json")
		o.mu.Lock()
		defer o.mu.Unlock()
		req, ok := o.byToken[token]
		if !ok {
			return apiErr(http.StatusNotFound, "unknown token")
		}
		var id any
		if req.ID != "" {
			id = req.ID
		}
		return http.StatusOK, []map[string]any{{"service_request_id": id, "token": token}}
	}
	return apiErr(http.StatusNotFound, "no such endpoint")
}

func (o *Open311) knownService(code string) bool {
	return slices.ContainsFunc(o.opts.Services, func(s Service) bool { return s.Code == code })
}

// create handles POST requests.json.
func (o *Open311) create(r *http.Request) (int, any) {
	r.Body = http.MaxBytesReader(nil, r.Body, MaxMedia+1<<20)
	var media []byte
	var mediaType string
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch mt {
	case "multipart/form-data":
		if err := r.ParseMultipartForm(MaxMedia + 1<<20); err != nil {
			return apiErr(http.StatusBadRequest, "unreadable multipart form")
		}
		if f, h, err := r.FormFile("media"); err == nil {
			media, err = io.ReadAll(io.LimitReader(f, MaxMedia+1))
			f.Close()
			if err != nil || len(media) > MaxMedia {
				return apiErr(http.StatusBadRequest, "media unreadable or larger than 10 MiB")
			}
			mediaType = h.Header.Get("Content-Type")
		}
	case "application/x-www-form-urlencoded":
		if err := r.ParseForm(); err != nil {
			return apiErr(http.StatusBadRequest, "unreadable form")
		}
	default:
		return apiErr(http.StatusBadRequest, "want a form")
	}
	req, status, err := o.ParseForm(r.PostForm, media, mediaType)
	if err != nil {
		return apiErr(status, err.Error())
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	now := o.opts.Clock()
	req.Status, req.Requested, req.Updated = "open", now, now
	o.requests = append(o.requests, req)
	if !o.opts.Tokens || !o.opts.HoldIDs {
		o.assign(req)
	}
	key := req.Attributes[o.opts.RecordAttribute]
	if key == "" {
		key = "request-" + strconv.Itoa(len(o.requests))
	}
	o.ledger.Record(key, "roadwork.report", len(media))
	if o.opts.Tokens {
		req.Token = fmt.Sprintf("tok-%06d", len(o.requests))
		o.byToken[req.Token] = req
		return http.StatusCreated, []map[string]any{{"token": req.Token}}
	}
	return http.StatusCreated, []map[string]any{{"service_request_id": req.ID, "service_notice": "Vielen Dank für Ihre Meldung."}}
}

// ParseForm checks the fields of POST requests as the server does and
// returns the request, or the status and why it is refused.
func (o *Open311) ParseForm(v url.Values, media []byte, mediaType string) (*Request, int, error) {
	if v.Get("api_key") != o.opts.APIKey {
		return nil, http.StatusForbidden, errors.New("invalid api_key")
	}
	req := &Request{
		ServiceCode: v.Get("service_code"), Description: v.Get("description"), Address: v.Get("address_string"),
		Email: v.Get("email"), FirstName: v.Get("first_name"), LastName: v.Get("last_name"), Phone: v.Get("phone"),
		MediaURL: v.Get("media_url"), Media: media, MediaType: mediaType, Attributes: map[string]string{},
	}
	if !o.knownService(req.ServiceCode) {
		return nil, http.StatusBadRequest, errors.New("service_code missing or unknown")
	}
	if len(req.Description) > 4000 {
		return nil, http.StatusBadRequest, errors.New("description longer than 4000 characters")
	}
	coord := func(name string, limit float64) (*float64, error) {
		s := v.Get(name)
		if s == "" {
			return nil, nil
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || f < -limit || f > limit {
			return nil, fmt.Errorf("%s is not a coordinate", name)
		}
		return &f, nil
	}
	var err error
	if req.Lat, err = coord("lat", 90); err != nil {
		return nil, http.StatusBadRequest, err
	}
	if req.Long, err = coord("long", 180); err != nil {
		return nil, http.StatusBadRequest, err
	}
	if (req.Lat == nil) != (req.Long == nil) {
		return nil, http.StatusBadRequest, errors.New("lat and long go together")
	}
	if req.Lat == nil && req.Address == "" && v.Get("address_id") == "" {
		return nil, http.StatusBadRequest, errors.New("a location is required: lat and long, address_string or address_id")
	}
	if req.MediaURL != "" {
		if u, err := url.Parse(req.MediaURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, http.StatusBadRequest, errors.New("media_url is not an http(s) URL")
		}
	}
	if len(media) > 0 && !strings.HasPrefix(http.DetectContentType(media), "image/") {
		return nil, http.StatusBadRequest, errors.New("media is not an image")
	}
	for k, vs := range v {
		if code, ok := strings.CutPrefix(k, "attribute["); ok && strings.HasSuffix(code, "]") && len(vs) > 0 {
			req.Attributes[strings.TrimSuffix(code, "]")] = vs[0]
		}
	}
	return req, 0, nil
}

// query handles GET requests.json.
func (o *Open311) query(q url.Values) (int, any) {
	var ids []string
	if s := q.Get("service_request_id"); s != "" {
		ids = strings.Split(s, ",")
	}
	var start, end time.Time
	for name, t := range map[string]*time.Time{"start_date": &start, "end_date": &end} {
		if s := q.Get(name); s != "" {
			v, err := time.Parse(time.RFC3339, s)
			if err != nil {
				return apiErr(http.StatusBadRequest, name+" is not a W3C date-time")
			}
			*t = v
		}
	}
	attrs := map[string]string{}
	for k, vs := range q {
		if code, ok := strings.CutPrefix(k, "attribute["); ok && strings.HasSuffix(code, "]") && len(vs) > 0 {
			attrs[strings.TrimSuffix(code, "]")] = vs[0]
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	out := []map[string]any{}
	for _, r := range o.requests {
		switch {
		case r.ID == "":
		case len(ids) > 0 && !slices.Contains(ids, r.ID):
		case q.Get("service_code") != "" && q.Get("service_code") != r.ServiceCode:
		case q.Get("status") != "" && !slices.Contains(strings.Split(q.Get("status"), ","), r.Status):
		case !start.IsZero() && r.Requested.Before(start):
		case !end.IsZero() && r.Requested.After(end):
		case !matches(r.Attributes, attrs):
		default:
			out = append(out, o.render(r))
		}
		if len(out) == 1000 {
			break
		}
	}
	return http.StatusOK, out
}

func matches(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// render is a request as GET requests answers it; o.mu is held.
func (o *Open311) render(r *Request) map[string]any {
	m := map[string]any{
		"service_request_id": r.ID, "status": r.Status, "status_notes": r.Notes, "service_code": r.ServiceCode,
		"description": r.Description, "agency_responsible": "Straßenbau", "service_notice": "",
		"requested_datetime": r.Requested.Format(time.RFC3339), "updated_datetime": r.Updated.Format(time.RFC3339),
		"address": r.Address, "media_url": r.MediaURL,
	}
	if r.Lat != nil {
		m["lat"], m["long"] = *r.Lat, *r.Long
	}
	if len(r.Media) > 0 && r.MediaURL == "" {
		m["media_url"] = o.srv.URL() + "/media/" + r.ID
	}
	return m
}
