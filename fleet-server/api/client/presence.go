package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Presence is whether a device is connected.
type Presence struct {
	Device string `json:"device"`
	Online bool   `json:"online"`
	// Reason says why an offline device is offline.
	Reason    string    `json:"reason,omitempty"`
	Since     time.Time `json:"since"`
	LastHeard time.Time `json:"last_heard"`
	Session   string    `json:"session,omitempty"`
	Software  string    `json:"software,omitempty"`
}

// HealthSample is one heartbeat as the server received it.
type HealthSample struct {
	ReceivedAt time.Time `json:"received_at"`
	Heartbeat  Heartbeat `json:"heartbeat"`
}

// Heartbeat is a device's health as it reported it.
type Heartbeat struct {
	QueueDepth       uint32             `json:"queue_depth"`
	OldestUnsentMS   uint64             `json:"oldest_unsent_ms,omitempty"`
	DiskFree         uint64             `json:"disk_free"`
	BudgetUsed       uint64             `json:"budget_used"`
	BudgetTotal      uint64             `json:"budget_total"`
	Full             bool               `json:"full,omitempty"`
	Battery          int                `json:"battery"`
	Peripherals      []PeripheralHealth `json:"peripherals,omitempty"`
	Software         string             `json:"software"`
	Clock            *time.Time         `json:"clock"`
	LastSync         *time.Time         `json:"last_sync,omitempty"`
	ClockOffsetMilli int64              `json:"clock_offset_ms,omitempty"`
}

// PeripheralHealth is the state of one peripheral: ok, degraded, missing or
// error.
type PeripheralHealth struct {
	Name   string `json:"name"`
	Kind   string `json:"kind"`
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
}

// PresencePage is one page of presence.
type PresencePage struct {
	Presence []Presence `json:"presence"`
	Next     string     `json:"next,omitempty"`
}

// Presences lists the presence of the devices that have connected; state
// is "", "online" or "offline".
func (c *Client) Presences(ctx context.Context, state, after string, limit int) (PresencePage, error) {
	v := url.Values{}
	if state != "" {
		v.Set("state", state)
	}
	if after != "" {
		v.Set("after", after)
	}
	if limit > 0 {
		v.Set("limit", strconv.Itoa(limit))
	}
	var out PresencePage
	err := c.do(ctx, http.MethodGet, "api/v1/presence", v, nil, &out)
	return out, err
}

// Health returns a device's heartbeat samples received in [since, until)
// (zero for open ends), newest first.
func (c *Client) Health(ctx context.Context, device string, since, until time.Time, limit int) ([]HealthSample, error) {
	v := url.Values{}
	if !since.IsZero() {
		v.Set("since", since.UTC().Format(time.RFC3339))
	}
	if !until.IsZero() {
		v.Set("until", until.UTC().Format(time.RFC3339))
	}
	if limit > 0 {
		v.Set("limit", strconv.Itoa(limit))
	}
	var out struct {
		Samples []HealthSample `json:"samples"`
	}
	err := c.do(ctx, http.MethodGet, "api/v1/devices/"+url.PathEscape(device)+"/health", v, nil, &out)
	return out.Samples, err
}
