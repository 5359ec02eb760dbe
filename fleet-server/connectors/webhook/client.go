package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kogge-fleet/kogge/fleet-server/bridge"
)

// Header names of a signed request.
const (
	// HeaderIdempotencyKey carries the record id; the receiver must not
	// create a second case for a key it has seen.
	HeaderIdempotencyKey = "Idempotency-Key"
	// HeaderTimestamp is the sender's clock in Unix seconds; it is part of
	// the signed message.
	HeaderTimestamp = "X-Kogge-Timestamp"
	// HeaderSignature is "sha256=" and the hex HMAC-SHA256 of
	// "<timestamp>.<body>" under the shared secret.
	HeaderSignature = "X-Kogge-Signature"
	// HeaderReference is where a receiver may put its reference number
	// instead of the JSON answer's "reference".
	HeaderReference = "X-Reference"
)

// MaxAnswer bounds the answer body the client reads.
const MaxAnswer = 64 << 10

// ClientConfig configures a Client.
type ClientConfig struct {
	// URL is the https:// endpoint (http:// only with AllowHTTP).
	URL string
	// Secret is the HMAC key; empty: requests are not signed.
	Secret []byte
	// TLS is the client's TLS configuration: trusted roots and, for mTLS,
	// its certificate. Nil: the system roots, no client certificate.
	TLS *tls.Config
	// AllowHTTP permits a plain http:// URL (tests, loopback proxies).
	AllowHTTP bool
	// Timeout bounds one request, answer included; default 30 s.
	Timeout time.Duration
	// Attempts is how often one Post tries before it returns a transient
	// error to the queue; default 3.
	Attempts int
	// Backoff is the wait before the second attempt; it doubles, with ±25 %
	// jitter, up to MaxBackoff. Defaults 500 ms and 10 s.
	Backoff    time.Duration
	MaxBackoff time.Duration
	// RequireReference makes a 2xx answer without a reference a transient
	// error (the receiver is idempotent, so the retry is harmless); when
	// false such an answer is a receipt without a reference. Default true
	// in the webhook connector's config.
	RequireReference bool
	// Header adds fixed headers to every request (for example an API key).
	Header http.Header
	// Clock returns the current time; default time.Now.
	Clock func() time.Time
	// Transport replaces the HTTP transport (tests); TLS is then ignored.
	Transport http.RoundTripper
}

// Defaults of ClientConfig.
const (
	DefaultTimeout    = 30 * time.Second
	DefaultAttempts   = 3
	DefaultBackoff    = 500 * time.Millisecond
	DefaultMaxBackoff = 10 * time.Second
)

// Client posts documents to a procedure's HTTPS endpoint: signed, with the
// record id as idempotency key, retried with backoff and jitter, and with
// the answer sorted into a receipt, a transient or a permanent error.
type Client struct {
	cfg  ClientConfig
	url  string
	http *http.Client
}

// NewClient checks cfg, fills in defaults and returns a Client.
func NewClient(cfg ClientConfig) (*Client, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("endpoint %q is not an absolute URL", cfg.URL)
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && cfg.AllowHTTP:
	default:
		return nil, fmt.Errorf("endpoint %q: want https:// (personal data does not travel in plain HTTP)", cfg.URL)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Attempts == 0 {
		cfg.Attempts = DefaultAttempts
	}
	if cfg.Backoff == 0 {
		cfg.Backoff = DefaultBackoff
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Timeout < 0 || cfg.Attempts < 1 || cfg.Backoff < 0 || cfg.MaxBackoff < cfg.Backoff {
		return nil, errors.New("timeout, attempts and backoff must be positive, the maximum backoff not below the first")
	}
	tr := cfg.Transport
	if tr == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		if cfg.TLS != nil {
			t.TLSClientConfig = cfg.TLS.Clone()
		}
		t.MaxIdleConnsPerHost = 16
		tr = t
	}
	return &Client{
		cfg: cfg, url: u.String(),
		http: &http.Client{
			Transport: tr,
			Timeout:   cfg.Timeout,
			// A redirect of a POST with personal data is not followed.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}, nil
}

// Close releases idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// Post sends body with the idempotency key and returns the receiver's
// receipt. It tries up to Attempts times while the failure is transient;
// its errors wrap bridge.ErrPermanent when retrying cannot help.
func (c *Client) Post(ctx context.Context, key, contentType string, body []byte) (bridge.Receipt, error) {
	backoff := c.cfg.Backoff
	var err error
	for i := range c.cfg.Attempts {
		if i > 0 {
			wait := jitter(backoff)
			var ra *retryAfterError
			if errors.As(err, &ra) {
				wait = max(wait, min(ra.after, c.cfg.MaxBackoff))
			}
			if !sleep(ctx, wait) {
				return bridge.Receipt{}, fmt.Errorf("%w (gave up waiting to retry: %v)", err, ctx.Err())
			}
			backoff = min(2*backoff, c.cfg.MaxBackoff)
		}
		var rc bridge.Receipt
		rc, err = c.once(ctx, key, contentType, body)
		if err == nil || errors.Is(err, bridge.ErrPermanent) || ctx.Err() != nil {
			return rc, err
		}
	}
	return bridge.Receipt{}, err
}

func (c *Client) once(ctx context.Context, key, contentType string, body []byte) (bridge.Receipt, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return bridge.Receipt{}, bridge.Permanent(fmt.Errorf("build request: %w", err))
	}
	for k, vs := range c.cfg.Header {
		req.Header[k] = vs
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Accept", "application/json")
	req.Header.Set(HeaderIdempotencyKey, key)
	if len(c.cfg.Secret) > 0 {
		ts := strconv.FormatInt(c.cfg.Clock().Unix(), 10)
		req.Header.Set(HeaderTimestamp, ts)
		req.Header.Set(HeaderSignature, Sign(c.cfg.Secret, ts, body))
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return bridge.Receipt{}, fmt.Errorf("post to %s: %w", c.url, redact(err))
	}
	defer resp.Body.Close()
	answer, readErr := io.ReadAll(io.LimitReader(resp.Body, MaxAnswer))
	return classify(resp.StatusCode, resp.Header, answer, readErr, c.cfg.RequireReference)
}

// redact drops the URL from a transport error (it is in the message once
// already) but keeps what went wrong.
func redact(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// Answer is the JSON answer a receiver gives on success. Fields it does not
// use are ignored.
type Answer struct {
	Reference string `json:"reference"`
	Note      string `json:"note,omitempty"`
}

// classify turns an HTTP answer into a receipt or an error: 2xx is the
// receipt, 408, 425 and 429 and 5xx are transient, other 4xx and 3xx are
// permanent.
func classify(status int, h http.Header, body []byte, readErr error, requireRef bool) (bridge.Receipt, error) {
	switch {
	case status >= 200 && status < 300:
		if readErr != nil {
			return bridge.Receipt{}, fmt.Errorf("read the answer (%d): %w", status, readErr)
		}
		rc, err := ParseAnswer(h, body)
		if err != nil {
			return bridge.Receipt{}, fmt.Errorf("answer %d: %w; retrying (the receiver dedupes on the idempotency key)", status, err)
		}
		if rc.Reference == "" && requireRef {
			return bridge.Receipt{}, fmt.Errorf("answer %d carries no reference; retrying (the receiver dedupes on the idempotency key)", status)
		}
		return rc, nil
	case status == http.StatusRequestTimeout, status == http.StatusTooEarly, status == http.StatusTooManyRequests,
		status == http.StatusServiceUnavailable:
		err := fmt.Errorf("receiver answered %d %s", status, http.StatusText(status))
		if d, ok := retryAfter(h.Get("Retry-After")); ok {
			return bridge.Receipt{}, &retryAfterError{err: err, after: d}
		}
		return bridge.Receipt{}, err
	case status >= 500:
		return bridge.Receipt{}, fmt.Errorf("receiver answered %d %s", status, http.StatusText(status))
	case status >= 400:
		return bridge.Receipt{}, bridge.Permanent(fmt.Errorf("receiver refused the document: %d %s", status, http.StatusText(status)))
	default:
		return bridge.Receipt{}, bridge.Permanent(fmt.Errorf("receiver answered %d %s, which a delivery does not expect", status, http.StatusText(status)))
	}
}

// ParseAnswer reads the receipt from a 2xx answer: the JSON body's
// "reference" (and "note"), else the X-Reference header. An empty body with
// no header is a receipt without reference; a body that is not a JSON
// object, or whose fields are not text, is an error.
func ParseAnswer(h http.Header, body []byte) (bridge.Receipt, error) {
	var rc bridge.Receipt
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) > 0 {
		mt, _, _ := mime.ParseMediaType(h.Get("Content-Type"))
		if mt != "" && mt != "application/json" && !strings.HasSuffix(mt, "+json") {
			if ref := h.Get(HeaderReference); ref != "" {
				return cleanReceipt(bridge.Receipt{Reference: ref})
			}
			return rc, fmt.Errorf("answer is %s, not JSON", mt)
		}
		var a Answer
		if err := json.Unmarshal(trimmed, &a); err != nil {
			return rc, errors.New("answer is not the JSON object expected")
		}
		rc = bridge.Receipt{Reference: a.Reference, Note: a.Note}
	}
	if rc.Reference == "" {
		rc.Reference = h.Get(HeaderReference)
	}
	return cleanReceipt(rc)
}

func cleanReceipt(rc bridge.Receipt) (bridge.Receipt, error) {
	rc.Reference = strings.TrimSpace(rc.Reference)
	if !utf8.ValidString(rc.Reference) || !utf8.ValidString(rc.Note) {
		return bridge.Receipt{}, errors.New("answer is not valid UTF-8")
	}
	if len(rc.Reference) > 256 {
		return bridge.Receipt{}, fmt.Errorf("reference of %d bytes, at most 256", len(rc.Reference))
	}
	for _, r := range rc.Reference {
		if r < 0x20 || r == 0x7f {
			return bridge.Receipt{}, errors.New("reference contains control characters")
		}
	}
	if len(rc.Note) > 1024 {
		rc.Note = rc.Note[:1021] + "…"
		for !utf8.ValidString(rc.Note) {
			rc.Note = rc.Note[:len(rc.Note)-4] + "…"
		}
	}
	return rc, nil
}

type retryAfterError struct {
	err   error
	after time.Duration
}

func (e *retryAfterError) Error() string { return e.err.Error() }
func (e *retryAfterError) Unwrap() error { return e.err }

// retryAfter parses a Retry-After header in seconds (dates are not used).
func retryAfter(v string) (time.Duration, bool) {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 0 || n > 3600 {
		return 0, false
	}
	return time.Duration(n) * time.Second, true
}

// Sign returns the signature header value for body sent at timestamp ts
// (Unix seconds as text): "sha256=" and the hex HMAC-SHA256 of
// ts + "." + body.
func Sign(secret []byte, ts string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Errors of Verify.
var (
	ErrNoSignature  = errors.New("request is not signed")
	ErrBadSignature = errors.New("signature does not match")
	ErrStale        = errors.New("timestamp outside the accepted window")
)

// Verify checks a signed request as a receiver: the timestamp header must
// be within tolerance of now and the signature must match body.
func Verify(secret []byte, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	ts, sig := h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	if ts == "" || sig == "" {
		return ErrNoSignature
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: timestamp is not a number of seconds", ErrBadSignature)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return ErrStale
	}
	if !hmac.Equal([]byte(sig), []byte(Sign(secret, ts, body))) {
		return ErrBadSignature
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return d*3/4 + rand.N(d/2+1)
}
