package client

import (
	"context"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Artifact is an uploaded artifact: a signed manifest and its binary.
type Artifact struct {
	ID         uuid.UUID `json:"id"`
	Name       string    `json:"name"`
	Version    string    `json:"version"`
	Platform   string    `json:"platform"`
	Apps       []string  `json:"apps"`
	Size       int64     `json:"size"`
	SHA256     string    `json:"sha256"`
	MinVersion string    `json:"min_version,omitempty"`
	KeyIDs     []string  `json:"key_ids"`
	Notes      string    `json:"notes,omitempty"`
	Created    time.Time `json:"created"`
	UploadedAt time.Time `json:"uploaded_at"`
	UploadedBy string    `json:"uploaded_by"`
}

// RolloutTarget selects a rollout's devices: those of Group (all groups
// when empty), narrowed by the other fields that are set.
type RolloutTarget struct {
	Group    string   `json:"group,omitempty"`
	Devices  []string `json:"devices,omitempty"`
	Model    string   `json:"model,omitempty"`
	Software string   `json:"software,omitempty"`
}

// RolloutSettings are how a rollout proceeds.
type RolloutSettings struct {
	Waves            []string `json:"waves"`
	Sizes            []int    `json:"sizes"`
	SuccessThreshold float64  `json:"success_threshold"`
	ErrorThreshold   float64  `json:"error_threshold"`
	Soak             string   `json:"soak"`
	Window           string   `json:"window"`
	UpdateWithUnsent bool     `json:"update_with_unsent"`
	AllowDowngrade   bool     `json:"allow_downgrade"`
}

// WaveProgress is one wave of a rollout.
type WaveProgress struct {
	Index      int       `json:"index"`
	Devices    int       `json:"devices"`
	Cumulative int       `json:"cumulative"`
	Succeeded  int       `json:"succeeded"`
	Failed     int       `json:"failed"`
	InProgress int       `json:"in_progress"`
	StartedAt  time.Time `json:"started_at"`
	ReadyAt    time.Time `json:"ready_at"`
	DoneAt     time.Time `json:"done_at"`
}

// Rollout is a rollout with its progress.
type Rollout struct {
	ID       uuid.UUID       `json:"id"`
	Name     string          `json:"name"`
	Artifact Artifact        `json:"artifact"`
	Target   RolloutTarget   `json:"target"`
	Settings RolloutSettings `json:"settings"`
	// State is running, paused, aborting, aborted or succeeded.
	State string `json:"state"`
	// Wave is the current wave, from 1.
	Wave       int            `json:"wave"`
	Waves      []WaveProgress `json:"waves"`
	Counts     map[string]int `json:"counts"`
	Total      int            `json:"total"`
	Reason     string         `json:"reason,omitempty"`
	CreatedAt  time.Time      `json:"created_at"`
	CreatedBy  string         `json:"created_by"`
	UpdatedAt  time.Time      `json:"updated_at"`
	FinishedAt time.Time      `json:"finished_at"`
	// Events are given by Rollout, not by Rollouts.
	Events []RolloutEvent `json:"events,omitempty"`
}

// Finished reports whether the rollout has ended.
func (r Rollout) Finished() bool { return r.State == "aborted" || r.State == "succeeded" }

// RolloutEvent is something that happened to a rollout.
type RolloutEvent struct {
	At      time.Time `json:"at"`
	Kind    string    `json:"kind"`
	Wave    int       `json:"wave"`
	Message string    `json:"message"`
}

// RolloutDevice is a device's progress in a rollout.
type RolloutDevice struct {
	Device      string    `json:"device"`
	Wave        int       `json:"wave"`
	State       string    `json:"state"`
	FromVersion string    `json:"from_version,omitempty"`
	Running     string    `json:"running,omitempty"`
	Progress    int       `json:"progress,omitempty"`
	Reason      string    `json:"reason,omitempty"`
	StartedAt   time.Time `json:"started_at"`
	UpdatedAt   time.Time `json:"updated_at"`
	FinishedAt  time.Time `json:"finished_at"`
}

// RolloutRequest asks for a rollout; zero values get the server's
// defaults (pointers for the thresholds, where 0 is a setting).
type RolloutRequest struct {
	Name             string        `json:"name,omitempty"`
	Artifact         uuid.UUID     `json:"artifact"`
	Target           RolloutTarget `json:"target"`
	Waves            []string      `json:"waves,omitempty"`
	SuccessThreshold *float64      `json:"success_threshold,omitempty"`
	ErrorThreshold   *float64      `json:"error_threshold,omitempty"`
	// Soak is a duration such as "10m"; empty for the default.
	Soak             string `json:"soak,omitempty"`
	Window           string `json:"window,omitempty"`
	UpdateWithUnsent bool   `json:"update_with_unsent,omitempty"`
	AllowDowngrade   bool   `json:"allow_downgrade,omitempty"`
}

// UploadArtifact uploads an artifact: its signed manifest and its binary,
// streamed from binary. The server checks both and refuses what a trusted
// key did not sign or what does not match.
func (c *Client) UploadArtifact(ctx context.Context, signedManifest []byte, binary io.Reader) (Artifact, error) {
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		// Owned by the request: it ends when the body is read or the
		// request fails (CloseWithError unblocks it).
		err := func() error {
			p, err := mw.CreateFormFile("manifest", "manifest.json")
			if err != nil {
				return err
			}
			if _, err := p.Write(signedManifest); err != nil {
				return err
			}
			if p, err = mw.CreateFormFile("binary", "binary"); err != nil {
				return err
			}
			if _, err := io.Copy(p, binary); err != nil {
				return err
			}
			return mw.Close()
		}()
		pw.CloseWithError(err)
	}()
	u := c.base.JoinPath("/api/v1/artifacts")
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), pr)
	if err != nil {
		pr.Close()
		return Artifact{}, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.agent)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := c.http.Do(req)
	pr.Close()
	if err != nil {
		return Artifact{}, fmt.Errorf("POST %s: %w", u.Redacted(), err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseSize+1))
	if err != nil {
		return Artifact{}, fmt.Errorf("POST %s: read response: %w", u.Path, err)
	}
	var a Artifact
	return a, decodeResponse(resp.StatusCode, b, &a)
}

// Artifacts lists the artifacts, newest first.
func (c *Client) Artifacts(ctx context.Context) ([]Artifact, error) {
	var out struct {
		Artifacts []Artifact `json:"artifacts"`
	}
	err := c.do(ctx, http.MethodGet, "/api/v1/artifacts", nil, nil, &out)
	return out.Artifacts, err
}

// Artifact returns an artifact.
func (c *Client) Artifact(ctx context.Context, id uuid.UUID) (Artifact, error) {
	var a Artifact
	err := c.do(ctx, http.MethodGet, "/api/v1/artifacts/"+id.String(), nil, nil, &a)
	return a, err
}

// DeleteArtifact deletes an artifact that no rollout uses.
func (c *Client) DeleteArtifact(ctx context.Context, id uuid.UUID) error {
	return c.do(ctx, http.MethodDelete, "/api/v1/artifacts/"+id.String(), nil, nil, nil)
}

// CreateRollout starts a rollout.
func (c *Client) CreateRollout(ctx context.Context, r RolloutRequest) (Rollout, error) {
	var out Rollout
	err := c.do(ctx, http.MethodPost, "/api/v1/rollouts", nil, r, &out)
	return out, err
}

// Rollouts lists rollouts with their progress, newest first: of the
// states given (all when none), at most limit (0: the server's default).
func (c *Client) Rollouts(ctx context.Context, states []string, limit int) ([]Rollout, error) {
	q := url.Values{}
	if len(states) > 0 {
		q.Set("state", strings.Join(states, ","))
	}
	if limit > 0 {
		q.Set("limit", fmt.Sprint(limit))
	}
	var out struct {
		Rollouts []Rollout `json:"rollouts"`
	}
	err := c.do(ctx, http.MethodGet, "/api/v1/rollouts", q, nil, &out)
	return out.Rollouts, err
}

// Rollout returns a rollout with its progress and events.
func (c *Client) Rollout(ctx context.Context, id uuid.UUID) (Rollout, error) {
	var out Rollout
	err := c.do(ctx, http.MethodGet, "/api/v1/rollouts/"+id.String(), nil, nil, &out)
	return out, err
}

// RolloutDevices lists a rollout's devices, of the states given (all when
// none).
func (c *Client) RolloutDevices(ctx context.Context, id uuid.UUID, states ...string) ([]RolloutDevice, error) {
	q := url.Values{}
	if len(states) > 0 {
		q.Set("state", strings.Join(states, ","))
	}
	var out struct {
		Devices []RolloutDevice `json:"devices"`
	}
	err := c.do(ctx, http.MethodGet, "/api/v1/rollouts/"+id.String()+"/devices", q, nil, &out)
	return out.Devices, err
}

// PauseRollout pauses a running rollout.
func (c *Client) PauseRollout(ctx context.Context, id uuid.UUID) (Rollout, error) {
	return c.rolloutAction(ctx, id, "pause", "")
}

// ResumeRollout resumes a paused rollout.
func (c *Client) ResumeRollout(ctx context.Context, id uuid.UUID) (Rollout, error) {
	return c.rolloutAction(ctx, id, "resume", "")
}

// AbortRollout aborts a rollout: its updated devices go back.
func (c *Client) AbortRollout(ctx context.Context, id uuid.UUID, reason string) (Rollout, error) {
	return c.rolloutAction(ctx, id, "abort", reason)
}

func (c *Client) rolloutAction(ctx context.Context, id uuid.UUID, action, reason string) (Rollout, error) {
	var out Rollout
	body := map[string]string{}
	if reason != "" {
		body["reason"] = reason
	}
	err := c.do(ctx, http.MethodPost, "/api/v1/rollouts/"+id.String()+"/"+action, nil, body, &out)
	return out, err
}
