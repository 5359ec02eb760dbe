package client

import (
	"bytes"
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/kogge-fleet/kogge/fleet-server/registry"
	"github.com/kogge-fleet/kogge/fleet-server/rollout/rollouttest"
	"github.com/kogge-fleet/kogge/protocol/artifact"
)

func TestRolloutCalls(t *testing.T) {
	s := rollouttest.New(t, nil)
	c, err := New(s.URL, rollouttest.Token, Options{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := s.Registry.CreateGroup(ctx, "mitte", "Mitte"); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"k-1", "k-2", "k-3"} {
		s.EnrollInto(t, "mitte", d, registry.Inventory{Software: "1.0.0"})
	}
	bin := bytes.Repeat([]byte("kogge"), 300_000)
	m, err := artifact.Describe(artifact.Manifest{Name: "kogge-kiosk", Version: "1.1.0", Apps: []string{"kiosk"}, Platform: "linux/amd64",
		Created: time.Now()}, bytes.NewReader(bin))
	if err != nil {
		t.Fatal(err)
	}
	signed, err := artifact.Sign(m, s.Key)
	if err != nil {
		t.Fatal(err)
	}
	a, err := c.UploadArtifact(ctx, signed, bytes.NewReader(bin))
	if err != nil || a.SHA256 != m.SHA256 || a.Size != int64(len(bin)) {
		t.Fatalf("upload: %+v %v", a, err)
	}
	tampered := bytes.Clone(bin)
	tampered[0] ^= 1
	m2 := m
	m2.Version = "1.2.0"
	signed2, _ := artifact.Sign(m2, s.Key)
	if _, err := c.UploadArtifact(ctx, signed2, bytes.NewReader(tampered)); !isStatus(err, http.StatusUnprocessableEntity) {
		t.Errorf("tampered upload: %v", err)
	}
	if list, err := c.Artifacts(ctx); err != nil || len(list) != 1 || list[0].ID != a.ID {
		t.Errorf("artifacts: %+v %v", list, err)
	}
	if got, err := c.Artifact(ctx, a.ID); err != nil || got.Version != "1.1.0" {
		t.Errorf("artifact: %+v %v", got, err)
	}
	zero := 0.0
	r, err := c.CreateRollout(ctx, RolloutRequest{Artifact: a.ID, Target: RolloutTarget{Group: "mitte"}, Waves: []string{"1", "100%"},
		ErrorThreshold: &zero, Soak: "30s", Window: "always"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Total != 3 || r.State != "running" || r.Settings.ErrorThreshold != 0 || r.Settings.Soak != "30s" || !slices.Equal(r.Settings.Sizes, []int{1, 3}) {
		t.Fatalf("rollout: %+v", r)
	}
	s.Rollouts.Step(ctx)
	got, err := c.Rollout(ctx, r.ID)
	if err != nil || got.Counts["sent"] != 1 || len(got.Events) < 2 || got.Waves[0].StartedAt.IsZero() {
		t.Fatalf("rollout after a step: %+v %v", got, err)
	}
	if devs, err := c.RolloutDevices(ctx, r.ID, "sent"); err != nil || len(devs) != 1 || devs[0].Wave != 1 {
		t.Errorf("devices: %+v %v", devs, err)
	}
	if list, err := c.Rollouts(ctx, []string{"running"}, 10); err != nil || len(list) != 1 {
		t.Errorf("rollouts: %+v %v", list, err)
	}
	if r, err = c.PauseRollout(ctx, r.ID); err != nil || r.State != "paused" {
		t.Errorf("pause: %+v %v", r.State, err)
	}
	if r, err = c.ResumeRollout(ctx, r.ID); err != nil || r.State != "running" {
		t.Errorf("resume: %+v %v", r.State, err)
	}
	if r, err = c.AbortRollout(ctx, r.ID, "test"); err != nil || r.State != "aborting" || r.Reason != "test" {
		t.Errorf("abort: %+v %v", r, err)
	}
	if err := c.DeleteArtifact(ctx, a.ID); !isStatus(err, http.StatusConflict) {
		t.Errorf("delete an artifact in use: %v", err)
	}
}
