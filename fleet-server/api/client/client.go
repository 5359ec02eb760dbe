// Package client is a Go client of the fleet server's REST API (see
// fleet-server/api and its OpenAPI document). koggectl uses it; devices
// never do.
//
// It imports nothing of the server: its types mirror the API's JSON, and its
// tests run it against the real handler.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// MaxResponseSize bounds a response body.
const MaxResponseSize = 32 << 20

// Error is a refusal by the server: its HTTP status and its message.
type Error struct {
	Status  int
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("server answered %d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
}

// IsNotFound reports whether err is a 404 from the server.
func IsNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == http.StatusNotFound
}

// Options are the optional settings of New.
type Options struct {
	// HTTPClient sends the requests; default a client with Timeout.
	HTTPClient *http.Client
	// Timeout bounds one request when HTTPClient is not given; default 30 s.
	Timeout time.Duration
	// UserAgent is sent with every request; default "kogge-api-client".
	UserAgent string
}

// Client talks to one fleet server with one API token.
type Client struct {
	base  *url.URL
	token string
	http  *http.Client
	agent string
}

// New returns a client of the server at server (e.g.
// "http://127.0.0.1:8080") with the API token.
func New(server, token string, opts Options) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(server, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("server %q: want a URL such as http://127.0.0.1:8080", server)
	}
	if token == "" {
		return nil, errors.New("no API token: give --token, --token-file or KOGGE_TOKEN")
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: opts.Timeout}
	}
	if opts.UserAgent == "" {
		opts.UserAgent = "kogge-api-client"
	}
	return &Client{base: u, token: token, http: opts.HTTPClient, agent: opts.UserAgent}, nil
}

// do sends a request to path (under the server's base, with query) with in
// as the JSON body (nil for none) and decodes the JSON response into out
// (nil to ignore it).
func (c *Client) do(ctx context.Context, method, path string, query url.Values, in, out any) error {
	u := c.base.JoinPath(path)
	if len(query) > 0 {
		u.RawQuery = query.Encode()
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.agent)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, u.Redacted(), err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseSize+1))
	if err != nil {
		return fmt.Errorf("%s %s: read response: %w", method, u.Path, err)
	}
	return decodeResponse(resp.StatusCode, b, out)
}

// decodeResponse turns a response into out or an *Error.
func decodeResponse(status int, b []byte, out any) error {
	if status < 200 || status > 299 {
		var e struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(b))
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		if len(msg) > 500 {
			msg = msg[:500] + "…"
		}
		if msg == "" {
			msg = http.StatusText(status)
		}
		if msg == "" {
			msg = "no reason given"
		}
		return &Error{Status: status, Message: msg}
	}
	if len(b) > MaxResponseSize {
		return fmt.Errorf("response larger than %d bytes", MaxResponseSize)
	}
	if out == nil || status == http.StatusNoContent {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("the server's answer is not the JSON expected: %w", err)
	}
	return nil
}
