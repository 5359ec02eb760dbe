package client

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// GroupTwin is a group's desired configuration; Version is 0 while it has
// none.
type GroupTwin struct {
	Group   string         `json:"group"`
	Version uint64         `json:"version"`
	Config  map[string]any `json:"config"`
}

// DeviceTwin is a device's configuration: its parts, the merged desired
// document, what the device reported and the difference.
type DeviceTwin struct {
	Device      string         `json:"device"`
	Group       string         `json:"group"`
	GroupConfig map[string]any `json:"group_config"`
	Override    map[string]any `json:"override"`
	Desired     map[string]any `json:"desired"`
	Version     uint64         `json:"version"`
	Published   uint64         `json:"published"`
	UpdatedAt   *time.Time     `json:"updated_at,omitempty"`
	Reported    *TwinReported  `json:"reported"`
	Diff        TwinDiff       `json:"diff"`
}

// TwinReported is what a device last reported about its configuration.
type TwinReported struct {
	Version  uint64         `json:"version"`
	Rejected uint64         `json:"rejected,omitempty"`
	Reason   string         `json:"reason,omitempty"`
	Config   map[string]any `json:"config,omitempty"`
	At       time.Time      `json:"at"`
}

// TwinDiff says how a device differs from its desired configuration.
type TwinDiff struct {
	DesiredVersion uint64   `json:"desired_version"`
	AppliedVersion uint64   `json:"applied_version"`
	InSync         bool     `json:"in_sync"`
	Rejected       bool     `json:"rejected"`
	Reason         string   `json:"reason,omitempty"`
	Keys           []string `json:"keys,omitempty"`
}

// GroupTwin returns a group's desired configuration.
func (c *Client) GroupTwin(ctx context.Context, group string) (GroupTwin, error) {
	var out GroupTwin
	err := c.do(ctx, http.MethodGet, "api/v1/groups/"+url.PathEscape(group)+"/twin", nil, nil, &out)
	return out, err
}

// SetGroupTwin replaces a group's desired configuration.
func (c *Client) SetGroupTwin(ctx context.Context, group string, config map[string]any) (GroupTwin, error) {
	var out GroupTwin
	err := c.do(ctx, http.MethodPut, "api/v1/groups/"+url.PathEscape(group)+"/twin", nil,
		map[string]any{"config": config}, &out)
	return out, err
}

// DeviceTwin returns a device's desired and reported configuration.
func (c *Client) DeviceTwin(ctx context.Context, device string) (DeviceTwin, error) {
	var out DeviceTwin
	err := c.do(ctx, http.MethodGet, "api/v1/devices/"+url.PathEscape(device)+"/twin", nil, nil, &out)
	return out, err
}

// SetOverride sets a device's configuration override; nil removes it.
func (c *Client) SetOverride(ctx context.Context, device string, config map[string]any) (DeviceTwin, error) {
	var out DeviceTwin
	path := "api/v1/devices/" + url.PathEscape(device) + "/twin/override"
	if config == nil {
		err := c.do(ctx, http.MethodDelete, path, nil, nil, &out)
		return out, err
	}
	err := c.do(ctx, http.MethodPut, path, nil, map[string]any{"config": config}, &out)
	return out, err
}
