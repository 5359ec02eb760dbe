// Package open311 delivers road-damage reports (roadwork.report) to the
// road-maintenance procedure's Open311 GeoReport v2 endpoint, and polls the
// requests' status for the devices.
//
// # Delivery
//
// A report becomes one POST requests.json, form-encoded (multipart when a
// photo is uploaded): api_key, jurisdiction_id (if configured),
// service_code (mapped from the report's category), lat and long (and
// address_string), description (the note, at most 4000 bytes), the contact
// of a citizen (email, first_name, last_name, phone), the record id as
// attribute[kogge_record_id], and the first eligible photo as a media
// upload or as media_url (Config.Media). Only photos the reporter marked
// public are eligible unless Config.AllPhotos. The answer's
// service_request_id is the receipt; a token is resolved with GET
// tokens/{token} (a token without id yet is a transient failure: the next
// attempt resolves it, it does not post again).
//
// # Idempotency
//
// GeoReport v2 has no idempotency key, so the connector keeps a journal in
// its state directory (one JSON line per state change, fsynced before it
// acts): "posting" before the POST, "token" or "done" after it. A record
// whose journal says done is answered from the journal; a token is
// resolved. A record whose journal says posting had an earlier POST whose
// outcome is unknown (a timeout, an unreadable answer, a crash): the
// connector looks it up with GET requests.json?attribute[kogge_record_id]=
// <record id> (Config.Lookup, an extension this endpoint must support) and
// posts only when the server has no such request. With Lookup "none" it
// posts again, which may make a second request after such a failure;
// choose it only for servers that dedupe themselves. A 4xx refusal clears
// the posting state: nothing was created.
//
// # Status
//
// PollStatus asks GET requests.json?service_request_id=a,b,… for the
// requests delivered in the last Config.PollMaxAge that are not closed, and
// reports changes: open with new status notes is in progress, closed is
// closed, each with the status notes.
package open311

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/fleet-server/bridge"
	"github.com/kogge-fleet/kogge/protocol"
	"github.com/kogge-fleet/kogge/protocol/casefile"
)

// Media modes.
const (
	MediaUpload = "upload"
	MediaURL    = "url"
	MediaNone   = "none"
)

// Lookup modes.
const (
	LookupAttribute = "attribute"
	LookupNone      = "none"
)

// DefaultRecordAttribute is the attribute code that carries the record id.
const DefaultRecordAttribute = "kogge_record_id"

// Config configures the Open311 connector.
type Config struct {
	// Endpoint is the GeoReport v2 base URL, e.g.
	// https://311.example.org/open311/v2/.
	Endpoint string
	// APIKey is sent as api_key.
	APIKey string
	// Jurisdiction is sent as jurisdiction_id when set.
	Jurisdiction string
	// ServiceCodes maps report categories to service codes; the category
	// "*" maps every other category.
	ServiceCodes map[string]string
	// Media is upload (default), url or none.
	Media string
	// MediaURL is the template of media_url for Media url: {record} and
	// {blob} are replaced by the ids. The photo must be published there by
	// other means.
	MediaURL string
	// AllPhotos makes photos eligible that the reporter did not mark
	// public.
	AllPhotos bool
	// RecordAttribute is the attribute code carrying the record id;
	// default kogge_record_id.
	RecordAttribute string
	// Lookup is attribute (default) or none; see the package comment.
	Lookup string
	// StateDir holds the idempotency journal; required.
	StateDir string
	// TLS configures trusted roots and an optional client certificate.
	TLS *tls.Config
	// AllowHTTP permits a plain http:// endpoint (tests, loopback).
	AllowHTTP bool
	// Timeout bounds one request; default 30 s.
	Timeout time.Duration
	// TokenWait bounds the wait for a token's request id within one
	// delivery; default 10 s.
	TokenWait time.Duration
	// PollMaxAge is how long delivered requests are polled; default 90
	// days (GeoReport's window).
	PollMaxAge time.Duration
	// Logger receives what the connector does (no personal data).
	Logger *slog.Logger
	// Clock returns the current time; default time.Now.
	Clock func() time.Time
	// Transport replaces the HTTP transport (tests); TLS is then ignored.
	Transport http.RoundTripper
}

// Defaults of Config.
const (
	DefaultTimeout    = 30 * time.Second
	DefaultTokenWait  = 10 * time.Second
	DefaultPollMaxAge = 90 * 24 * time.Hour
	maxDescription    = 4000
	pollBatch         = 50
)

// Connector delivers road reports to an Open311 endpoint.
type Connector struct {
	cfg  Config
	base *url.URL
	http *http.Client
	j    *journal
	log  *slog.Logger
}

var (
	_ bridge.Connector    = (*Connector)(nil)
	_ bridge.StatusPoller = (*Connector)(nil)
)

// New checks cfg, opens the journal and returns the connector. Close it.
func New(cfg Config) (*Connector, error) {
	if cfg.Media == "" {
		cfg.Media = MediaUpload
	}
	if cfg.Lookup == "" {
		cfg.Lookup = LookupAttribute
	}
	if cfg.RecordAttribute == "" {
		cfg.RecordAttribute = DefaultRecordAttribute
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.TokenWait == 0 {
		cfg.TokenWait = DefaultTokenWait
	}
	if cfg.PollMaxAge == 0 {
		cfg.PollMaxAge = DefaultPollMaxAge
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	u, err := url.Parse(cfg.Endpoint)
	switch {
	case err != nil || u.Host == "":
		return nil, fmt.Errorf("open311: endpoint %q is not an absolute URL", cfg.Endpoint)
	case u.Scheme != "https" && !(u.Scheme == "http" && cfg.AllowHTTP):
		return nil, fmt.Errorf("open311: endpoint %q: want https://", cfg.Endpoint)
	case cfg.APIKey == "":
		return nil, errors.New("open311: the api key is not set")
	case len(cfg.ServiceCodes) == 0:
		return nil, errors.New("open311: no service codes: map the report categories to the endpoint's service codes")
	case cfg.Media != MediaUpload && cfg.Media != MediaURL && cfg.Media != MediaNone:
		return nil, fmt.Errorf("open311: media %q, want upload, url or none", cfg.Media)
	case cfg.Media == MediaURL && !strings.Contains(cfg.MediaURL, "{blob}"):
		return nil, errors.New("open311: media url needs a template with {blob}")
	case cfg.Lookup != LookupAttribute && cfg.Lookup != LookupNone:
		return nil, fmt.Errorf("open311: lookup %q, want attribute or none", cfg.Lookup)
	case cfg.Timeout < 0 || cfg.TokenWait < 0 || cfg.PollMaxAge < 0:
		return nil, errors.New("open311: timeouts must be positive")
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}
	j, err := openJournal(cfg.StateDir, cfg.Clock().Add(-cfg.PollMaxAge))
	if err != nil {
		return nil, fmt.Errorf("open311: %w", err)
	}
	tr := cfg.Transport
	if tr == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		if cfg.TLS != nil {
			t.TLSClientConfig = cfg.TLS.Clone()
		}
		tr = t
	}
	return &Connector{
		cfg: cfg, base: u, j: j, log: cfg.Logger,
		http: &http.Client{Transport: tr, Timeout: cfg.Timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
	}, nil
}

// Close closes the journal and idle connections.
func (c *Connector) Close() error {
	c.http.CloseIdleConnections()
	return c.j.close()
}

// Deliver creates the service request of a road report once.
func (c *Connector) Deliver(ctx context.Context, cs *bridge.Case) (bridge.Receipt, error) {
	rep, ok := cs.Doc.(*casefile.Report)
	if !ok {
		return bridge.Receipt{}, bridge.Permanent(fmt.Errorf("open311 delivers %s records, not %s", casefile.KindReport, cs.Kind))
	}
	code, ok := c.cfg.ServiceCodes[rep.Category]
	if !ok {
		if code, ok = c.cfg.ServiceCodes["*"]; !ok {
			return bridge.Receipt{}, bridge.Permanent(fmt.Errorf("open311: no service code for category %q: map it in the configuration, then replay", rep.Category))
		}
	}
	if e, ok := c.j.get(cs.ID); ok {
		switch e.State {
		case stateDone:
			return bridge.Receipt{Reference: string(e.Request)}, nil
		case stateToken:
			return c.resolve(ctx, e)
		case statePosting:
			if c.cfg.Lookup == LookupAttribute {
				found, err := c.lookup(ctx, cs.ID)
				if err != nil {
					return bridge.Receipt{}, fmt.Errorf("open311: look up the request of an earlier attempt: %w", err)
				}
				if found != "" {
					if err := c.j.put(entry{ID: cs.ID, State: stateDone, Request: found, Status: "open", At: c.cfg.Clock()}); err != nil {
						return bridge.Receipt{}, fmt.Errorf("open311: %w", err)
					}
					c.log.Info("open311: an earlier attempt had created the request", "record", cs.ID, "request", found)
					return bridge.Receipt{Reference: string(found)}, nil
				}
			} else {
				c.log.Warn("open311: posting again after an attempt with unknown outcome; the request may exist twice", "record", cs.ID)
			}
		}
	}
	body, ctype, err := c.form(cs, rep, code)
	if err != nil {
		return bridge.Receipt{}, bridge.Permanent(fmt.Errorf("open311: %w", err))
	}
	defer clear(body)
	if err := c.j.put(entry{ID: cs.ID, State: statePosting, At: c.cfg.Clock()}); err != nil {
		return bridge.Receipt{}, fmt.Errorf("open311: %w", err)
	}
	status, answer, err := c.do(ctx, http.MethodPost, "requests.json", ctype, body)
	if err != nil {
		return bridge.Receipt{}, fmt.Errorf("open311: post request: %w", err)
	}
	if status < 200 || status > 299 {
		err := answerError(status, answer)
		if errors.Is(err, bridge.ErrPermanent) {
			// Refused: nothing was created, a later replay may post.
			if jerr := c.j.put(entry{ID: cs.ID, State: statePosting, Deleted: true, At: c.cfg.Clock()}); jerr != nil {
				return bridge.Receipt{}, fmt.Errorf("open311: %w", jerr)
			}
		}
		return bridge.Receipt{}, fmt.Errorf("open311: post request: %w", err)
	}
	id, token, notice, err := ParseCreated(answer)
	if err != nil {
		return bridge.Receipt{}, fmt.Errorf("open311: answer to the request: %w; the next attempt looks it up", err)
	}
	if id != "" {
		if err := c.j.put(entry{ID: cs.ID, State: stateDone, Request: id, Status: "open", At: c.cfg.Clock()}); err != nil {
			return bridge.Receipt{}, fmt.Errorf("open311: %w", err)
		}
		return bridge.Receipt{Reference: string(id), Note: notice}, nil
	}
	e := entry{ID: cs.ID, State: stateToken, Token: token, At: c.cfg.Clock()}
	if err := c.j.put(e); err != nil {
		return bridge.Receipt{}, fmt.Errorf("open311: %w", err)
	}
	return c.resolve(ctx, e)
}

// resolve waits up to TokenWait for the token's request id.
func (c *Connector) resolve(ctx context.Context, e entry) (bridge.Receipt, error) {
	deadline := time.NewTimer(c.cfg.TokenWait)
	defer deadline.Stop()
	wait := 100 * time.Millisecond
	for {
		id, err := c.token(ctx, e.Token)
		if err == nil && id != "" {
			if err := c.j.put(entry{ID: e.ID, State: stateDone, Request: id, Status: "open", At: c.cfg.Clock()}); err != nil {
				return bridge.Receipt{}, fmt.Errorf("open311: %w", err)
			}
			return bridge.Receipt{Reference: string(id)}, nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return bridge.Receipt{}, fmt.Errorf("open311: token %s has no request id yet (%v); the next attempt asks again", e.Token, ctx.Err())
		case <-deadline.C:
			t.Stop()
			if err != nil {
				return bridge.Receipt{}, fmt.Errorf("open311: resolve token %s: %w", e.Token, err)
			}
			return bridge.Receipt{}, fmt.Errorf("open311: token %s has no request id after %v; the next attempt asks again", e.Token, c.cfg.TokenWait)
		case <-t.C:
		}
		wait = min(2*wait, 2*time.Second)
	}
}

func (c *Connector) token(ctx context.Context, token ID) (ID, error) {
	status, answer, err := c.do(ctx, http.MethodGet, "tokens/"+url.PathEscape(string(token))+".json", "", nil)
	if err != nil {
		return "", err
	}
	if status == http.StatusNotFound {
		return "", nil
	}
	if status != http.StatusOK {
		return "", answerError(status, answer)
	}
	return ParseToken(answer)
}

// lookup finds the request carrying the record id, "" if there is none.
func (c *Connector) lookup(ctx context.Context, id uuid.UUID) (ID, error) {
	q := url.Values{}
	q.Set("attribute["+c.cfg.RecordAttribute+"]", id.String())
	status, answer, err := c.do(ctx, http.MethodGet, "requests.json?"+q.Encode(), "", nil)
	if err != nil {
		return "", err
	}
	if status != http.StatusOK {
		return "", answerError(status, answer)
	}
	rs, err := ParseRequests(answer)
	if err != nil {
		return "", err
	}
	switch len(rs) {
	case 0:
		return "", nil
	case 1:
		return rs[0].ID, nil
	}
	return "", bridge.Permanent(fmt.Errorf("%d requests carry record %v already: resolve them in the road-maintenance system", len(rs), id))
}

// form builds the POST body.
func (c *Connector) form(cs *bridge.Case, rep *casefile.Report, code string) ([]byte, string, error) {
	v := url.Values{}
	v.Set("api_key", c.cfg.APIKey)
	if c.cfg.Jurisdiction != "" {
		v.Set("jurisdiction_id", c.cfg.Jurisdiction)
	}
	v.Set("service_code", code)
	if p := rep.Location.Position; p != nil {
		v.Set("lat", formatCoord(p.Lat))
		v.Set("long", formatCoord(p.Lon))
	}
	if addr := address(rep.Location); addr != "" {
		v.Set("address_string", addr)
	}
	desc := rep.Note
	if desc == "" {
		desc = rep.Category
	}
	if len(desc) > maxDescription {
		desc = clipBytes(desc, maxDescription)
	}
	v.Set("description", desc)
	if ct := rep.Contact; ct != nil {
		setIf(v, "email", ct.Email)
		setIf(v, "first_name", ct.FirstName)
		setIf(v, "last_name", ct.LastName)
		setIf(v, "phone", ct.Phone)
	}
	if c.cfg.RecordAttribute != "" {
		v.Set("attribute["+c.cfg.RecordAttribute+"]", cs.ID.String())
	}
	photo, ok := c.photo(cs, rep)
	switch {
	case !ok || c.cfg.Media == MediaNone:
	case c.cfg.Media == MediaURL:
		r := strings.NewReplacer("{record}", cs.ID.String(), "{blob}", photo.Ref.ID.String())
		v.Set("media_url", r.Replace(c.cfg.MediaURL))
	case c.cfg.Media == MediaUpload:
		return multipartForm(v, photo)
	}
	return []byte(v.Encode()), "application/x-www-form-urlencoded", nil
}

// photo returns the first eligible photo.
func (c *Connector) photo(cs *bridge.Case, rep *casefile.Report) (bridge.Blob, bool) {
	for _, p := range rep.Photos {
		if !p.Public && !c.cfg.AllPhotos {
			continue
		}
		if b, ok := cs.Blob(p.Image); ok {
			return b, true
		}
	}
	return bridge.Blob{}, false
}

func multipartForm(v url.Values, photo bridge.Blob) ([]byte, string, error) {
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for k, vs := range v {
		for _, s := range vs {
			if err := w.WriteField(k, s); err != nil {
				return nil, "", err
			}
		}
	}
	ctype := photo.ContentType()
	ext := ".bin"
	switch ctype {
	case "image/jpeg":
		ext = ".jpg"
	case "image/png":
		ext = ".png"
	}
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="media"; filename="`+photo.Ref.ID.String()+ext+`"`)
	h.Set("Content-Type", ctype)
	part, err := w.CreatePart(h)
	if err != nil {
		return nil, "", err
	}
	if _, err := part.Write(photo.Data); err != nil {
		return nil, "", err
	}
	if err := w.Close(); err != nil {
		return nil, "", err
	}
	return buf.Bytes(), w.FormDataContentType(), nil
}

func setIf(v url.Values, k, s string) {
	if s != "" {
		v.Set(k, s)
	}
}

func address(p casefile.Place) string {
	street := strings.TrimSpace(p.Street + " " + p.HouseNumber)
	city := strings.TrimSpace(p.PostalCode + " " + p.City)
	switch {
	case street != "" && city != "":
		return street + ", " + city
	case street != "":
		return street
	}
	return ""
}

func clipBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !isRuneStart(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	if len(s) > 0 {
		s = s[:len(s)-1]
	}
	return s
}

func isRuneStart(b byte) bool { return b&0xc0 != 0x80 }

// do sends one request and returns the status and the answer body.
func (c *Connector) do(ctx context.Context, method, path, ctype string, body []byte) (int, []byte, error) {
	u := c.base.ResolveReference(&url.URL{Path: strings.SplitN(path, "?", 2)[0]})
	if _, q, ok := strings.Cut(path, "?"); ok {
		u.RawQuery = q
	}
	if method == http.MethodGet {
		q := u.Query()
		q.Set("api_key", c.cfg.APIKey)
		if c.cfg.Jurisdiction != "" {
			q.Set("jurisdiction_id", c.cfg.Jurisdiction)
		}
		u.RawQuery = q.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return 0, nil, bridge.Permanent(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL carries the api key
		}
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxAnswer+1))
	if err != nil {
		return 0, nil, fmt.Errorf("read the answer: %w", err)
	}
	return resp.StatusCode, b, nil
}

// answerError sorts a failed answer: 4xx but 408, 425 and 429 is
// permanent, the rest transient.
func answerError(status int, body []byte) error {
	msg := fmt.Sprintf("endpoint answered %d %s", status, http.StatusText(status))
	if es := ParseErrors(body); len(es) > 0 && es[0].Description != "" {
		msg += ": " + es[0].Description
	}
	err := errors.New(msg)
	switch {
	case status == http.StatusRequestTimeout, status == http.StatusTooEarly, status == http.StatusTooManyRequests:
		return err
	case status >= 400 && status < 500, status >= 300 && status < 400:
		return bridge.Permanent(err)
	}
	return err
}

// PollStatus reports status changes of the requests delivered in the last
// PollMaxAge that are not closed.
func (c *Connector) PollStatus(ctx context.Context, report func(bridge.StatusChange) error) error {
	open := c.j.open(c.cfg.Clock().Add(-c.cfg.PollMaxAge))
	var errs []error
	for len(open) > 0 {
		batch := open[:min(pollBatch, len(open))]
		open = open[len(batch):]
		byRequest := map[ID]entry{}
		ids := make([]string, len(batch))
		for i, e := range batch {
			byRequest[e.Request] = e
			ids[i] = string(e.Request)
		}
		q := url.Values{}
		q.Set("service_request_id", strings.Join(ids, ","))
		status, answer, err := c.do(ctx, http.MethodGet, "requests.json?"+q.Encode(), "", nil)
		if err == nil && status != http.StatusOK {
			err = answerError(status, answer)
		}
		var rs []ServiceRequest
		if err == nil {
			rs, err = ParseRequests(answer)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("open311: poll status: %w", err))
			continue
		}
		for _, r := range rs {
			e, ok := byRequest[r.ID]
			if !ok || (r.Status == e.Status && r.StatusNotes == e.Notes) {
				continue
			}
			var state protocol.DeliveryState
			switch r.Status {
			case "closed":
				state = protocol.Closed
			case "open":
				if r.StatusNotes == "" {
					continue
				}
				state = protocol.InProgress
			default:
				continue
			}
			if err := report(bridge.StatusChange{ID: e.ID, State: state, Reference: string(r.ID), Note: r.StatusNotes}); err != nil {
				errs = append(errs, fmt.Errorf("open311: report status of record %v: %w", e.ID, err))
				continue
			}
			e.Status, e.Notes, e.At = r.Status, r.StatusNotes, c.cfg.Clock()
			if err := c.j.put(e); err != nil {
				return err
			}
		}
	}
	return errors.Join(errs...)
}
