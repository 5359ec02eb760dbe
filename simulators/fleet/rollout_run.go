package fleet

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/google/uuid"

	fleetserver "github.com/kogge-fleet/kogge/fleet-server"
	"github.com/kogge-fleet/kogge/fleet-server/api/client"
	"github.com/kogge-fleet/kogge/protocol/artifact"
)

// RolloutSimConfig configures a RolloutSim.
type RolloutSimConfig struct {
	// Dir holds the server's and the devices' data.
	Dir string
	// Devices is the number of devices, all in group Group (default
	// "mitte").
	Devices int
	Group   string
	// Tick is the rollout scheduler's tick; default 200 ms.
	Tick time.Duration
	// Update tunes the devices (Keys is set from the generated key).
	Update UpdateOptions
	// Server may change the server configuration (after the simulator's
	// choices).
	Server func(*fleetserver.Config)
	Logger *slog.Logger
}

// RolloutSim is a fleet server that trusts a freshly made signing key, and
// an UpdateFleet enrolled at it and running.
type RolloutSim struct {
	Server *Server
	Fleet  *UpdateFleet
	// Key signs the artifacts the server and the devices trust.
	Key ed25519.PrivateKey
	API *client.Client
	// Enrolled is how long the enrollment of the devices took, Online how
	// long after it until every device had a session.
	Enrolled, Online time.Duration
}

// StartRolloutSim starts the server and the devices and waits until every
// device has a session.
func StartRolloutSim(ctx context.Context, cfg RolloutSimConfig) (*RolloutSim, error) {
	if cfg.Dir == "" || cfg.Devices < 1 {
		return nil, errors.New("rollout sim: a directory and at least one device are required")
	}
	if cfg.Group == "" {
		cfg.Group = "mitte"
	}
	if cfg.Tick == 0 {
		cfg.Tick = 200 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	key, err := artifact.GenerateKey()
	if err != nil {
		return nil, err
	}
	pub, err := artifact.MarshalPublicKey(key.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, err
	}
	keyFile := filepath.Join(cfg.Dir, "artifact-signing.pub")
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(keyFile, pub, 0o600); err != nil {
		return nil, err
	}
	srv, err := StartServer(ctx, ServerConfig{DataDir: filepath.Join(cfg.Dir, "server"), Logger: cfg.Logger.With("side", "server"),
		Customize: func(c *fleetserver.Config) {
			c.Rollout.Keys = []string{keyFile}
			c.Rollout.Tick = cfg.Tick
			if cfg.Server != nil {
				cfg.Server(c)
			}
		}})
	if err != nil {
		return nil, err
	}
	s := &RolloutSim{Server: srv, Key: key, API: srv.API()}
	uo := cfg.Update
	uo.Keys = artifact.NewKeyring(key.Public().(ed25519.PublicKey))
	if uo.Logger == nil {
		uo.Logger = cfg.Logger.With("side", "fleet")
	}
	if s.Fleet, err = NewUpdateFleet(srv, filepath.Join(cfg.Dir, "devices"), uo); err != nil {
		srv.Stop()
		return nil, err
	}
	ids := make([]string, cfg.Devices)
	for i := range ids {
		ids[i] = fmt.Sprintf("kiosk-%s-%03d", cfg.Group, i+1)
	}
	start := time.Now()
	if err := s.Fleet.Enroll(ctx, cfg.Group, ids); err != nil {
		srv.Stop()
		return nil, err
	}
	s.Enrolled, start = time.Since(start), time.Now()
	s.Fleet.Start()
	deadline := time.Now().Add(2 * time.Minute)
	for s.Fleet.Online() < cfg.Devices {
		if time.Now().After(deadline) || !sleep(ctx, 100*time.Millisecond) {
			n := s.Fleet.Online()
			s.Close()
			return nil, fmt.Errorf("rollout sim: %d of %d devices online after 2m", n, cfg.Devices)
		}
	}
	s.Online = time.Since(start)
	return s, nil
}

// Close stops the devices and the server.
func (s *RolloutSim) Close() error {
	s.Fleet.Stop()
	return s.Server.Stop()
}

// Publish makes a simulated version of size bytes that behaves as b, signs
// it and uploads it.
func (s *RolloutSim) Publish(ctx context.Context, version string, b Behaviour, size int) (client.Artifact, error) {
	bin := SimBinary(version, b, size)
	signed, err := SignSimBinary(s.Key, version, s.Fleet.opts.App, bin)
	if err != nil {
		return client.Artifact{}, err
	}
	return s.API.UploadArtifact(ctx, signed, bytes.NewReader(bin))
}

// Roll starts a rollout and waits until it has ended or timeout has
// passed, calling progress with each new state of it.
func (s *RolloutSim) Roll(ctx context.Context, req client.RolloutRequest, timeout time.Duration, progress func(client.Rollout)) (client.Rollout, error) {
	r, err := s.API.CreateRollout(ctx, req)
	if err != nil {
		return r, err
	}
	return s.Wait(ctx, r.ID, timeout, progress)
}

// Wait waits until the rollout id has ended or timeout has passed.
func (s *RolloutSim) Wait(ctx context.Context, id uuid.UUID, timeout time.Duration, progress func(client.Rollout)) (client.Rollout, error) {
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		r, err := s.API.Rollout(ctx, id)
		if err != nil {
			return r, err
		}
		if key := fmt.Sprint(r.State, r.Wave, r.Counts); key != last && progress != nil {
			progress(r)
			last = key
		}
		if r.Finished() {
			return r, nil
		}
		if time.Now().After(deadline) {
			return r, fmt.Errorf("rollout %s still %s in wave %d after %v: %v", r.ID, r.State, r.Wave, timeout, r.Counts)
		}
		if !sleep(ctx, 100*time.Millisecond) {
			return r, ctx.Err()
		}
	}
}

// WaveTiming is how long one wave of a rollout took.
type WaveTiming struct {
	Wave, Devices int
	// Start is when the wave started, after the rollout was created.
	Start time.Duration
	// Ready is how long the wave took to reach its success threshold;
	// Done how long until the next wave started (Ready plus the soak).
	Ready, Done time.Duration
}

// WaveTimings reads the wave timings of a rollout.
func WaveTimings(r client.Rollout) []WaveTiming {
	var out []WaveTiming
	for _, w := range r.Waves {
		if w.StartedAt.IsZero() {
			continue
		}
		wt := WaveTiming{Wave: w.Index, Devices: w.Devices, Start: w.StartedAt.Sub(r.CreatedAt)}
		if !w.ReadyAt.IsZero() {
			wt.Ready = w.ReadyAt.Sub(w.StartedAt)
		}
		if !w.DoneAt.IsZero() {
			wt.Done = w.DoneAt.Sub(w.StartedAt)
		}
		out = append(out, wt)
	}
	return out
}
