package rollout

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/fleet-server/store"
	"github.com/kogge-fleet/kogge/protocol"
	"github.com/kogge-fleet/kogge/protocol/artifact"
)

// Run is the scheduler: every Tick, and soon after a report or an admin
// action, it moves every rollout that has not ended one step on, until ctx
// ends. Run it on one replica only.
func (s *Service) Run(ctx context.Context) error {
	t := time.NewTicker(s.opts.Tick)
	defer t.Stop()
	for {
		s.Step(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-s.poke:
		}
	}
}

// Step moves every rollout that has not ended one step on; Run calls it.
// Errors are logged: the next step tries again.
func (s *Service) Step(ctx context.Context) {
	rows, err := s.db.Reader().QueryContext(ctx, `SELECT `+rolloutCols+` FROM rollouts WHERE state IN ($1, $2, $3) ORDER BY created_at`,
		Running, Paused, Aborting)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("cannot list the rollouts; trying again", "err", err)
		}
		return
	}
	var list []Rollout
	var arts []uuid.UUID
	for rows.Next() {
		r, art, err := scanRollout(rows)
		if err != nil {
			s.log.Error("a rollout cannot be read; it is skipped", "err", err)
			continue
		}
		list, arts = append(list, r), append(arts, art)
	}
	rows.Close()
	for i, r := range list {
		if ctx.Err() != nil {
			return
		}
		a, err := s.Artifact(ctx, arts[i])
		if err == nil {
			err = s.step(ctx, r, a)
		}
		if err != nil && ctx.Err() == nil {
			s.log.Warn("rollout step failed; trying again", "rollout", r.ID, "err", err)
		}
		s.changed(ctx, r.ID)
	}
}

// changed tells OnChange about a rollout whose progress changed since it
// was told last.
func (s *Service) changed(ctx context.Context, id uuid.UUID) {
	if s.opts.OnChange == nil {
		return
	}
	r, err := s.Rollout(ctx, id)
	if err != nil {
		return
	}
	key := fmt.Sprint(r.State, r.Wave, r.Counts, r.Reason)
	if s.last[id] == key {
		return
	}
	s.last[id] = key
	if r.Finished() {
		delete(s.last, id)
	}
	s.opts.OnChange(r)
}

// step moves one rollout on (r.Wave counts from 0 here).
func (s *Service) step(ctx context.Context, r Rollout, a Artifact) error {
	now := s.now()
	devs, err := s.devices(ctx, r.ID)
	if err != nil {
		return err
	}
	if err := s.checkDevices(ctx, r, devs, now); err != nil {
		return err
	}
	if devs, err = s.devices(ctx, r.ID); err != nil {
		return err
	}
	if r.State == Aborting {
		return s.unwind(ctx, r, a, devs, now)
	}

	// Error threshold: failures among the devices of the waves so far.
	assigned, failed, firstReason := 0, 0, ""
	for _, d := range devs {
		if d.Wave-1 > r.Wave {
			continue
		}
		assigned++
		if failedState(d.State) {
			failed++
			if firstReason == "" {
				firstReason = d.Device + ": " + d.Reason
			}
		}
	}
	if failed > 0 && float64(failed) > r.Settings.ErrorThreshold*float64(assigned) {
		reason := fmt.Sprintf("%d of %d devices failed (%.0f%%), more than the error threshold of %.0f%%; first: %s",
			failed, assigned, 100*float64(failed)/float64(assigned), 100*r.Settings.ErrorThreshold, firstReason)
		return s.autoAbort(ctx, r, reason, now)
	}
	if r.State != Running {
		return nil
	}
	if r.waveStartedAt == 0 {
		if err := s.setWave(ctx, r, r.Wave, now, EventWaveStarted, fmt.Sprintf("wave %d started: %d devices", r.Wave+1, waveSize(r, r.Wave))); err != nil {
			return err
		}
		r.waveStartedAt = now.UnixMilli()
	}
	if err := s.dispatch(ctx, r, a, devs, now); err != nil {
		return err
	}

	// The current wave: ready, soaked, healthy?
	var inWave, succeeded int
	for _, d := range devs {
		if d.Wave-1 == r.Wave {
			inWave++
			if d.State == DevSucceeded {
				succeeded++
			}
		}
	}
	need := ceilShare(r.Settings.SuccessThreshold, inWave)
	ready := succeeded >= need
	switch {
	case ready && r.waveReadyAt == 0:
		took := now.Sub(time.UnixMilli(r.waveStartedAt)).Round(time.Millisecond)
		return s.markReady(ctx, r, now.UnixMilli(), EventWaveReady,
			fmt.Sprintf("wave %d ready: %d of %d devices succeeded in %v; soak %v", r.Wave+1, succeeded, inWave, took, time.Duration(r.Settings.Soak)))
	case !ready && r.waveReadyAt != 0:
		return s.markReady(ctx, r, 0, EventSoakReset, fmt.Sprintf("wave %d no longer ready: %d of %d devices succeeded, %d needed",
			r.Wave+1, succeeded, inWave, need))
	case !ready:
		return nil
	}
	healthy, updated, sick := s.health(ctx, r, a, devs)
	if healthy < ceilShare(r.Settings.SuccessThreshold, updated) {
		return s.markReady(ctx, r, now.UnixMilli(), EventSoakReset, fmt.Sprintf("soak of wave %d restarted: %d of %d updated devices unhealthy (e.g. %s)",
			r.Wave+1, updated-healthy, updated, sick))
	}
	if now.Sub(time.UnixMilli(r.waveReadyAt)) < time.Duration(r.Settings.Soak) {
		return nil
	}
	took := now.Sub(time.UnixMilli(r.waveStartedAt)).Round(time.Millisecond)
	if r.Wave+1 >= len(r.Settings.Sizes) {
		return s.finish(ctx, r, Succeeded, EventSucceeded, fmt.Sprintf("wave %d done in %v; rollout succeeded: %d of %d devices updated",
			r.Wave+1, took, countState(devs, DevSucceeded), len(devs)), now)
	}
	return s.setWave(ctx, r, r.Wave+1, now, EventWaveDone, fmt.Sprintf("wave %d done in %v", r.Wave+1, took))
}

func waveSize(r Rollout, w int) int {
	if w == 0 {
		return r.Settings.Sizes[0]
	}
	return r.Settings.Sizes[w] - r.Settings.Sizes[w-1]
}

func countState(devs []Device, st string) int {
	n := 0
	for _, d := range devs {
		if d.State == st {
			n++
		}
	}
	return n
}

// setWave makes wave w (from 0) the current one. With EventWaveDone it
// also logs the start of the next wave.
func (s *Service) setWave(ctx context.Context, r Rollout, w int, now time.Time, kind, msg string) error {
	at := now.UnixMilli()
	return s.db.Tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE rollouts SET wave = $1, wave_started_at = $2, wave_ready_at = 0, updated_at = $2
			WHERE id = $3 AND state = $4 AND wave = $5`, w, at, r.ID.String(), Running, r.Wave)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return nil // paused or aborted meanwhile
		}
		if kind == EventWaveDone {
			if err := addEvent(ctx, tx, r.ID, at, EventWaveDone, r.Wave+1, msg); err != nil {
				return err
			}
			kind, msg = EventWaveStarted, fmt.Sprintf("wave %d started: %d devices", w+1, waveSize(r, w))
		}
		s.log.Info("rollout: "+msg, "rollout", r.ID)
		return addEvent(ctx, tx, r.ID, at, kind, w+1, msg)
	})
}

// markReady sets (or with readyAt 0 clears) the time the current wave
// became ready, with an event at the same time.
func (s *Service) markReady(ctx context.Context, r Rollout, readyAt int64, kind, msg string) error {
	now := readyAt
	if now == 0 {
		now = s.now().UnixMilli()
	}
	return s.db.Tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE rollouts SET wave_ready_at = $1, updated_at = $2 WHERE id = $3 AND state = $4 AND wave = $5`,
			readyAt, now, r.ID.String(), r.State, r.Wave)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return nil
		}
		s.log.Info("rollout: "+msg, "rollout", r.ID)
		return addEvent(ctx, tx, r.ID, now, kind, r.Wave+1, msg)
	})
}

func (s *Service) finish(ctx context.Context, r Rollout, state, kind, msg string, now time.Time) error {
	at := now.UnixMilli()
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE rollouts SET state = $1, updated_at = $2, finished_at = $2 WHERE id = $3 AND state = $4`,
			state, at, r.ID.String(), r.State)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return nil
		}
		if state == Succeeded {
			if err := addEvent(ctx, tx, r.ID, at, EventWaveDone, r.Wave+1, fmt.Sprintf("wave %d done", r.Wave+1)); err != nil {
				return err
			}
		}
		return addEvent(ctx, tx, r.ID, at, kind, r.Wave+1, msg)
	})
	if err == nil {
		s.log.Info("rollout: "+msg, "rollout", r.ID)
	}
	return err
}

// autoAbort aborts a rollout that hit its error threshold, audited as the
// system's action.
func (s *Service) autoAbort(ctx context.Context, r Rollout, reason string, now time.Time) error {
	at := now.UnixMilli()
	done := false
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE rollouts SET state = $1, reason = $2, updated_at = $3 WHERE id = $4 AND state = $5`,
			Aborting, reason, at, r.ID.String(), r.State)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return nil
		}
		done = true
		return addEvent(ctx, tx, r.ID, at, EventAborting, r.Wave+1, reason)
	})
	if err != nil || !done {
		return err
	}
	s.log.Warn("rollout aborted: "+reason, "rollout", r.ID)
	s.Poke()
	return s.record(ctx, "", "rollout.abort", "rollout:"+r.ID.String(), map[string]any{"from": r.State, "to": Aborting,
		"reason": reason, "automatic": true})
}

// commandCheckAfter is how long a device may stay "sent" before the
// scheduler looks at its command's result.
const commandCheckAfter = 3 * time.Second

// checkDevices fails devices whose update command was refused or expired,
// and those that reported nothing for DeviceTimeout.
func (s *Service) checkDevices(ctx context.Context, r Rollout, devs []Device, now time.Time) error {
	for _, d := range devs {
		// A device that takes a while to report may have refused the
		// command: look at its result (not at every tick for every
		// device: most report at once).
		if d.State == DevSent && d.commandID != "" && now.Sub(d.UpdatedAt) >= commandCheckAfter {
			id, err := uuid.Parse(d.commandID)
			if err != nil {
				continue
			}
			c, err := s.cmds.Command(ctx, id)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			switch {
			case c.Result != nil && c.Result.Outcome != protocol.OutcomeOK:
				if err := s.setDevice(ctx, r.ID, d, DevFailed, "the device refused the update command ("+c.Result.Outcome.String()+"): "+c.Result.Message, now); err != nil {
					return err
				}
				continue
			case c.State() == store.CommandExpired:
				if err := s.setDevice(ctx, r.ID, d, DevFailed, "the update command expired before the device came online", now); err != nil {
					return err
				}
				continue
			}
		}
		if (inFlight(d.State) || d.State == DevRollingBack) && now.Sub(d.UpdatedAt) > s.opts.DeviceTimeout {
			reason := fmt.Sprintf("no report for %v (last: %s)", s.opts.DeviceTimeout, d.State)
			if d.State == DevRollingBack {
				reason = fmt.Sprintf("did not report the rollback within %v; check the device", s.opts.DeviceTimeout)
			}
			if err := s.setDevice(ctx, r.ID, d, DevFailed, reason, now); err != nil {
				return err
			}
		}
	}
	return nil
}

// setDevice moves a device on from the state it was read in.
func (s *Service) setDevice(ctx context.Context, rollout uuid.UUID, d Device, state, reason string, now time.Time) error {
	at := now.UnixMilli()
	finished := int64(0)
	if terminal(state) {
		finished = at
	}
	return s.db.Tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE rollout_devices SET state = $1, reason = $2, updated_at = $3, finished_at = $4
			WHERE rollout_id = $5 AND device_id = $6 AND state = $7`, state, clip(reason), at, finished, rollout.String(), d.Device, d.State)
		return err
	})
}

func terminal(st string) bool {
	switch st {
	case DevSucceeded, DevFailed, DevRolledBack, DevCancelled, DevSkipped:
		return true
	}
	return false
}

func clip(s string) string {
	if len(s) > 1000 {
		return s[:997] + "..."
	}
	return s
}

// dispatch sends the update command to the devices of the waves so far
// that wait and may update now.
func (s *Service) dispatch(ctx context.Context, r Rollout, a Artifact, devs []Device, now time.Time) error {
	w, err := ParseWindow(r.Settings.Window)
	if err != nil {
		return err
	}
	open := w.Open(now.In(s.opts.Location))
	for _, d := range devs {
		if d.Wave-1 > r.Wave || (d.State != DevPending && d.State != DevWaiting) {
			continue
		}
		if !open {
			if err := s.wait(ctx, r.ID, d, "outside the maintenance window "+w.String(), now); err != nil {
				return err
			}
			continue
		}
		from := ""
		if h, err := s.db.LatestHealth(ctx, d.Device); err == nil {
			from = h.Heartbeat.Software
			if !r.Settings.UpdateWithUnsent && h.Heartbeat.QueueDepth > 0 {
				if err := s.wait(ctx, r.ID, d, fmt.Sprintf("%d captures not yet delivered", h.Heartbeat.QueueDepth), now); err != nil {
					return err
				}
				continue
			}
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if from == "" {
			if dev, err := s.db.Device(ctx, d.Device); err == nil {
				from = s.running(ctx, dev)
			}
		}
		args := map[string]string{artifact.ArgRollout: r.ID.String(), artifact.ArgArtifact: a.ID.String(), artifact.ArgVersion: a.Version}
		if r.Settings.AllowDowngrade {
			args[artifact.ArgAllowDowngrade] = a.Version
		}
		// The device is marked sent before the command goes out: its
		// first report may come back before Send returns.
		at := now.UnixMilli()
		marked := false
		if err := s.db.Tx(ctx, func(tx *sql.Tx) error {
			res, err := tx.ExecContext(ctx, `UPDATE rollout_devices SET state = $1, reason = '', from_version = $2, running = $2,
				started_at = $3, updated_at = $3 WHERE rollout_id = $4 AND device_id = $5 AND state IN ($6, $7)`,
				DevSent, from, at, r.ID.String(), d.Device, DevPending, DevWaiting)
			if err != nil {
				return err
			}
			n, err := res.RowsAffected()
			marked = n == 1
			return err
		}); err != nil || !marked {
			return err
		}
		c, err := s.cmds.Send(ctx, d.Device, artifact.CommandUpdate, args, s.opts.CommandTTL)
		if err != nil {
			state, reason := DevPending, ""
			if errors.Is(err, store.ErrDeviceRevoked) {
				state, reason = DevSkipped, "revoked"
			}
			if uerr := s.setDevice(ctx, r.ID, Device{Device: d.Device, State: DevSent}, state, reason, now); uerr != nil || state == DevPending {
				return errors.Join(fmt.Errorf("send the update to %s: %w", d.Device, err), uerr)
			}
			continue
		}
		if err := s.db.Tx(ctx, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, `UPDATE rollout_devices SET command_id = $1 WHERE rollout_id = $2 AND device_id = $3`,
				c.ID.String(), r.ID.String(), d.Device)
			return err
		}); err != nil {
			return err
		}
	}
	return nil
}

// wait marks a device as waiting for reason (once).
func (s *Service) wait(ctx context.Context, rollout uuid.UUID, d Device, reason string, now time.Time) error {
	if d.State == DevWaiting && d.Reason == reason {
		return nil
	}
	return s.db.Tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE rollout_devices SET state = $1, reason = $2, updated_at = $3
			WHERE rollout_id = $4 AND device_id = $5 AND state IN ($6, $7)`, DevWaiting, reason, now.UnixMilli(), rollout.String(),
			d.Device, DevPending, DevWaiting)
		return err
	})
}

// health counts the updated devices of the waves so far that look healthy:
// online, with the new version in their presence. sick names one that
// does not.
func (s *Service) health(ctx context.Context, r Rollout, a Artifact, devs []Device) (healthy, updated int, sick string) {
	online := map[string]store.Presence{}
	after := ""
	for range 1000 { // a bound: a million devices online
		ps, err := s.db.Presences(ctx, after, 1000, true)
		if err != nil {
			return 0, 1, "presence unknown: " + err.Error()
		}
		for _, p := range ps {
			online[p.Device] = p
		}
		if len(ps) < 1000 {
			break
		}
		after = ps[len(ps)-1].Device
	}
	for _, d := range devs {
		if d.Wave-1 > r.Wave || d.State != DevSucceeded {
			continue
		}
		updated++
		p, ok := online[d.Device]
		switch {
		case !ok:
			sick = d.Device + " offline"
		case p.Software != "" && p.Software != a.Version:
			sick = d.Device + " runs " + p.Software
		default:
			healthy++
		}
	}
	return healthy, updated, sick
}

// unwind carries out an abort: devices that did not start are cancelled,
// those that have the update or are getting it are asked to roll back;
// when none is left in between, the rollout is aborted.
func (s *Service) unwind(ctx context.Context, r Rollout, a Artifact, devs []Device, now time.Time) error {
	busy := 0
	for _, d := range devs {
		switch {
		case d.State == DevPending || d.State == DevWaiting:
			if err := s.setDevice(ctx, r.ID, d, DevCancelled, "the rollout was aborted before this device got the update", now); err != nil {
				return err
			}
		case inFlight(d.State) || d.State == DevSucceeded:
			busy++
			args := map[string]string{artifact.ArgRollout: r.ID.String(), artifact.ArgVersion: a.Version}
			if d.FromVersion != "" {
				args[artifact.ArgTo] = d.FromVersion
			}
			if _, err := s.cmds.Send(ctx, d.Device, artifact.CommandRollback, args, s.opts.CommandTTL); err != nil &&
				!errors.Is(err, store.ErrDeviceRevoked) {
				return fmt.Errorf("send the rollback to %s: %w", d.Device, err)
			}
			if err := s.setDevice(ctx, r.ID, d, DevRollingBack, "asked to go back to "+orUnknown(d.FromVersion), now); err != nil {
				return err
			}
		case d.State == DevRollingBack:
			busy++
		}
	}
	if busy > 0 {
		return nil
	}
	rolled := countState(devs, DevRolledBack)
	return s.finish(ctx, r, Aborted, EventAborted, fmt.Sprintf("aborted: %d devices rolled back, %d cancelled, %d failed",
		rolled, countState(devs, DevCancelled), countState(devs, DevFailed)), now)
}

func orUnknown(v string) string {
	if v == "" {
		return "the previous version"
	}
	return strings.TrimSpace(v)
}
