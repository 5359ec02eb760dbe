// Package bridgeclient is the client of the fleet server's bridge API
// (fleet-server/delivery, http.go) for bridges in their own process
// (kogge-bridge). It offers the five operations of delivery.Queue with the
// same signatures and errors, so that a bridge runs the same against the
// queue in-process and over HTTPS.
//
// Every request has a timeout (Options.Timeout). Network errors, timeouts
// and 5xx answers are retried with exponential backoff and jitter, up to
// Options.Retries times; 4xx answers are not. All five operations are safe
// to repeat: a repeated ack or failure report of the same attempt changes
// nothing, and a lease whose answer was lost expires and is leased again.
//
// Errors: delivery.ErrLeaseLost (409) and delivery.ErrNotFound (404),
// also as ErrLeaseLost and ErrNotFound here; delivery.ErrForbidden (403);
// delivery.ErrInvalid (400); otherwise a *StatusError or a transport error.
package bridgeclient

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/fleet-server/delivery"
	"github.com/kogge-fleet/kogge/protocol"
)

// The errors callers act on; the same values as delivery's.
var (
	ErrLeaseLost = delivery.ErrLeaseLost
	ErrNotFound  = delivery.ErrNotFound
)

// StatusError is an answer of the server that is no success and has no
// sentinel: its status and message.
type StatusError struct {
	Status  int
	Message string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("fleet server answered %d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
}

// Options are the optional settings of New.
type Options struct {
	// HTTPClient sends the requests; default a client over TLS, whose
	// Timeout is not used (Options.Timeout bounds each request).
	HTTPClient *http.Client
	// Timeout bounds one request (a blob's included); default 60 s.
	Timeout time.Duration
	// Retries is how often a failed request is retried; default 4.
	Retries int
	// BackoffBase and BackoffMax bound the wait between tries: base·2^n,
	// at most max, with up to half of it as jitter; defaults 250 ms and
	// 10 s.
	BackoffBase time.Duration
	BackoffMax  time.Duration
	// Logger receives the retries.
	Logger *slog.Logger
}

// Client talks to one fleet server's bridge API.
type Client struct {
	base *url.URL
	http *http.Client
	opts Options
	log  *slog.Logger
}

// New returns a client of the bridge API at server (e.g.
// "https://fleet.example.org:8443") over TLS configured by tlsConfig: the
// bridge's certificate and key, and the fleet CA as RootCAs. tlsConfig may
// be nil when opts.HTTPClient brings its own transport.
func New(server string, tlsConfig *tls.Config, opts Options) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(server, "/"))
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("bridge API %q: want an https:// URL such as https://fleet.example.org:8443", server)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 60 * time.Second
	}
	if opts.Retries == 0 {
		opts.Retries = 4
	}
	if opts.Retries < 0 {
		opts.Retries = 0
	}
	if opts.BackoffBase <= 0 {
		opts.BackoffBase = 250 * time.Millisecond
	}
	if opts.BackoffMax < opts.BackoffBase {
		opts.BackoffMax = max(10*time.Second, opts.BackoffBase)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.HTTPClient == nil {
		if tlsConfig == nil {
			return nil, errors.New("bridge API client: no TLS configuration (certificate, key, fleet CA)")
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = tlsConfig.Clone()
		tr.ForceAttemptHTTP2 = true
		opts.HTTPClient = &http.Client{Transport: tr}
	}
	return &Client{base: u, http: opts.HTTPClient, opts: opts, log: opts.Logger}, nil
}

// Lease leases up to max of office's records for visibility.
func (c *Client) Lease(ctx context.Context, office string, max int, visibility time.Duration) ([]delivery.Delivery, error) {
	req := delivery.LeaseRequest{Office: office, Max: max, VisibilityMS: visibility.Milliseconds()}
	var out []delivery.Delivery
	err := c.call(ctx, http.MethodPost, "lease", req, func(resp *http.Response) error {
		b, err := readAll(resp.Body, delivery.MaxLeaseResponse)
		if err != nil {
			return err
		}
		lr, err := delivery.DecodeLeaseResponse(b)
		if err != nil {
			return fmt.Errorf("the server's lease answer: %w", err)
		}
		out = lr.Deliveries
		return nil
	})
	return out, err
}

// Blob writes the bytes of a sealed blob to w, after checking their size
// and SHA-256 against what the server declares; nothing is written when
// they do not match (the fetch is retried).
func (c *Client) Blob(ctx context.Context, id, blob uuid.UUID, w io.Writer) error {
	var data []byte
	err := c.call(ctx, http.MethodGet, "records/"+id.String()+"/blobs/"+blob.String(), nil, func(resp *http.Response) error {
		size, err := strconv.ParseInt(resp.Header.Get("Content-Length"), 10, 64)
		if err != nil || size < 0 || size > protocol.MaxBlobSize {
			return &retryable{fmt.Errorf("blob %v: the server declared no usable size", blob)}
		}
		want, err := hex.DecodeString(resp.Header.Get(delivery.BlobDigestHeader))
		if err != nil || len(want) != sha256.Size {
			return &retryable{fmt.Errorf("blob %v: the server declared no usable digest", blob)}
		}
		b, err := readAll(resp.Body, protocol.MaxBlobSize)
		if err != nil {
			return &retryable{fmt.Errorf("blob %v: %w", blob, err)}
		}
		if int64(len(b)) != size {
			return &retryable{fmt.Errorf("blob %v: got %d of %d bytes", blob, len(b), size)}
		}
		if got := sha256.Sum256(b); !bytes.Equal(got[:], want) {
			return &retryable{fmt.Errorf("blob %v: its bytes do not match the declared SHA-256", blob)}
		}
		data = b
		return nil
	})
	if err != nil {
		return err
	}
	_, err = w.Write(data)
	return err
}

// Ack acks the lease attempt with the procedure's receipt.
func (c *Client) Ack(ctx context.Context, id uuid.UUID, attempt int, r delivery.Receipt) error {
	return c.call(ctx, http.MethodPost, "records/"+id.String()+"/ack",
		delivery.AckRequest{Attempt: attempt, Reference: r.Reference, Note: r.Note}, nil)
}

// Fail reports a failed lease attempt.
func (c *Client) Fail(ctx context.Context, id uuid.UUID, attempt int, reason string, permanent bool) error {
	return c.call(ctx, http.MethodPost, "records/"+id.String()+"/fail",
		delivery.FailRequest{Attempt: attempt, Reason: reason, Permanent: permanent}, nil)
}

// Update reports later news from the procedure.
func (c *Client) Update(ctx context.Context, id uuid.UUID, state protocol.DeliveryState, reference, note string) error {
	return c.call(ctx, http.MethodPost, "records/"+id.String()+"/status",
		delivery.StatusRequest{State: state.String(), Reference: reference, Note: note}, nil)
}

// retryable marks an error of a response that is worth another try.
type retryable struct{ err error }

func (r *retryable) Error() string { return r.err.Error() }
func (r *retryable) Unwrap() error { return r.err }

// call sends a request to path under the bridge API, with in as JSON body
// (nil for none), and hands a 2xx response to read (nil to ignore it),
// retrying as the package doc says.
func (c *Client) call(ctx context.Context, method, path string, in any, read func(*http.Response) error) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
	}
	u := c.base.JoinPath(delivery.BridgePrefix, path).String()
	var err error
	for try := 0; ; try++ {
		var again bool
		again, err = c.once(ctx, method, u, body, read)
		if err == nil || !again || try >= c.opts.Retries || ctx.Err() != nil {
			return err
		}
		wait := c.backoff(try)
		c.log.Debug("bridge API request failed; retrying", "method", method, "path", path, "try", try+1, "wait", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return errors.Join(err, ctx.Err())
		case <-t.C:
		}
	}
}

func (c *Client) backoff(try int) time.Duration {
	d := c.opts.BackoffBase
	for i := 0; i < try && d < c.opts.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, c.opts.BackoffMax)
	return d/2 + rand.N(d/2+1)
}

// once sends one request; again reports whether a failure is worth a retry.
func (c *Client) once(ctx context.Context, method, u string, body []byte, read func(*http.Response) error) (again bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return false, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", "kogge-bridge")
	resp, err := c.http.Do(req)
	if err != nil {
		return true, fmt.Errorf("%s %s: %w", method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	// net/http may still hand over an answer that arrived after the deadline,
	// such as one a server wrote because it saw the connection close when
	// the transport gave up. Such an answer is not trusted: the request
	// timed out, and a retry asks again.
	if err := ctx.Err(); err != nil {
		return true, fmt.Errorf("%s %s: %w", method, req.URL.Path, err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		if read == nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			return false, nil
		}
		err := read(resp)
		var r *retryable
		return errors.As(err, &r), err
	}
	b, _ := readAll(resp.Body, 64<<10)
	msg := DecodeError(b)
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	switch resp.StatusCode {
	case http.StatusConflict:
		return false, fmt.Errorf("%w: %s", delivery.ErrLeaseLost, msg)
	case http.StatusNotFound:
		return false, fmt.Errorf("%w: %s", delivery.ErrNotFound, msg)
	case http.StatusForbidden:
		return false, fmt.Errorf("%w: %s", delivery.ErrForbidden, msg)
	case http.StatusBadRequest:
		return false, fmt.Errorf("%w: %s", delivery.ErrInvalid, msg)
	}
	return resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests,
		&StatusError{Status: resp.StatusCode, Message: msg}
}

// DecodeError returns the message of an error answer: the error field of a
// JSON ErrorResponse, or the body as text (clipped), or "".
func DecodeError(b []byte) string {
	var e delivery.ErrorResponse
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if dec.Decode(&e) == nil && e.Error != "" {
		return clip(e.Error)
	}
	return clip(strings.ToValidUTF8(strings.TrimSpace(string(b)), "\uFFFD"))
}

func clip(s string) string {
	if len(s) > 500 {
		return s[:500] + "…"
	}
	return s
}

// readAll reads at most limit bytes; more is an error.
func readAll(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("answer larger than %d bytes", limit)
	}
	return b, nil
}
