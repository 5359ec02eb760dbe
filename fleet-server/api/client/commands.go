package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/google/uuid"
)

// Command is a command with its state and result.
type Command struct {
	ID     uuid.UUID         `json:"id"`
	Device string            `json:"device"`
	Fanout *uuid.UUID        `json:"fanout,omitempty"`
	Name   string            `json:"name"`
	Args   map[string]string `json:"args,omitempty"`
	// State is queued, sent, done or expired.
	State       string         `json:"state"`
	IssuedAt    time.Time      `json:"issued_at"`
	ExpiresAt   time.Time      `json:"expires_at"`
	SentCount   int            `json:"sent_count"`
	FirstSentAt *time.Time     `json:"first_sent_at,omitempty"`
	LastSentAt  *time.Time     `json:"last_sent_at,omitempty"`
	ExpiredAt   *time.Time     `json:"expired_at,omitempty"`
	Result      *CommandResult `json:"result,omitempty"`
}

// CommandResult is how a command ended.
type CommandResult struct {
	// Outcome is ok, failed, expired or rejected.
	Outcome      string    `json:"outcome"`
	Message      string    `json:"message,omitempty"`
	Output       string    `json:"output,omitempty"`
	OutputBase64 []byte    `json:"output_base64,omitempty"`
	At           time.Time `json:"at"`
	ReceivedAt   time.Time `json:"received_at"`
}

// CommandRequest asks for a command to one device or to every device of a
// group (exactly one of Device and Group).
type CommandRequest struct {
	Device, Group string
	Name          string
	Args          map[string]string
	// TTL is the command's time to live; 0 for the server's default.
	TTL time.Duration
}

// SentCommands are the commands a send queued, one per device; Fanout is
// set for a group send.
type SentCommands struct {
	Fanout   *uuid.UUID `json:"fanout,omitempty"`
	Commands []Command  `json:"commands"`
}

// SendCommand queues a command; it is published at once to devices online.
func (c *Client) SendCommand(ctx context.Context, r CommandRequest) (SentCommands, error) {
	body := map[string]any{"name": r.Name}
	if r.Device != "" {
		body["device"] = r.Device
	}
	if r.Group != "" {
		body["group"] = r.Group
	}
	if len(r.Args) > 0 {
		body["args"] = r.Args
	}
	if r.TTL > 0 {
		body["ttl"] = r.TTL.String()
	}
	var out SentCommands
	err := c.do(ctx, http.MethodPost, "api/v1/commands", nil, body, &out)
	return out, err
}

// Command returns a command's state and result.
func (c *Client) Command(ctx context.Context, id uuid.UUID) (Command, error) {
	var out Command
	err := c.do(ctx, http.MethodGet, "api/v1/commands/"+id.String(), nil, nil, &out)
	return out, err
}

// Fanout returns the commands of one group send.
func (c *Client) Fanout(ctx context.Context, id uuid.UUID) (SentCommands, error) {
	var out SentCommands
	err := c.do(ctx, http.MethodGet, "api/v1/fanouts/"+id.String(), nil, nil, &out)
	return out, err
}

// CommandPage is one page of a device's commands, newest first.
type CommandPage struct {
	Commands []Command `json:"commands"`
	Next     string    `json:"next,omitempty"`
}

// DeviceCommands lists one page of a device's commands, newest first;
// before is the Next of the previous page.
func (c *Client) DeviceCommands(ctx context.Context, device, before string, limit int) (CommandPage, error) {
	v := url.Values{}
	if before != "" {
		v.Set("before", before)
	}
	if limit > 0 {
		v.Set("limit", strconv.Itoa(limit))
	}
	var out CommandPage
	err := c.do(ctx, http.MethodGet, "api/v1/devices/"+url.PathEscape(device)+"/commands", v, nil, &out)
	return out, err
}
