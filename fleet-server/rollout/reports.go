package rollout

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/kogge-fleet/kogge/protocol/artifact"
)

// Report applies a device's report about its update in a rollout. Reports
// arrive at least once and may overtake each other: one whose sequence
// number is not above the last one applied is ignored, and a report never
// moves a device back (a late "downloading" after "succeeded"). A device
// the rollout asked to roll back stays rolling-back until it reports the
// rollback, a cancellation or a failure. It returns ErrNotFound when the
// device is not in the rollout.
func (s *Service) Report(ctx context.Context, device string, r artifact.Report) error {
	if err := r.Validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	now := s.now().UnixMilli()
	changed := false
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		var state, running, reason string
		var seq, finished int64
		err := tx.QueryRowContext(ctx, `SELECT state, running, reason, report_seq, finished_at FROM rollout_devices
			WHERE rollout_id = $1 AND device_id = $2`, r.Rollout.String(), device).Scan(&state, &running, &reason, &seq, &finished)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: device %s is not in rollout %s", ErrNotFound, device, r.Rollout)
		}
		if err != nil {
			return err
		}
		if int64(r.Seq) <= seq {
			return nil // a repeat or an older report
		}
		next, ok := nextState(state, r.State)
		if ok {
			if next != state || r.Reason != "" {
				reason = r.Reason
			}
			if terminal(next) && next != state {
				finished = now
			}
		}
		if r.Running != "" {
			running = r.Running
		}
		_, err = tx.ExecContext(ctx, `UPDATE rollout_devices SET state = $1, running = $2, progress = $3, reason = $4, report_seq = $5,
			updated_at = $6, finished_at = $7 WHERE rollout_id = $8 AND device_id = $9`,
			next, running, r.Progress, clip(reason), int64(r.Seq), now, finished, r.Rollout.String(), device)
		changed = err == nil && next != state
		return err
	})
	if err != nil {
		return err
	}
	if changed {
		s.Poke()
	}
	return nil
}

// nextState is the state a report moves a device to from cur, and false
// when the report does not move it.
func nextState(cur, report string) (string, bool) {
	rank := map[string]int{DevPending: 0, DevWaiting: 0, DevSent: 1, DevDownloading: 2, DevInstalling: 3}
	switch cur {
	case DevRollingBack:
		switch report {
		case artifact.ReportRolledBack, artifact.ReportCancelled, artifact.ReportFailed:
			return report, true
		}
		return cur, false
	case DevSucceeded:
		// Only a later rollback (a crash loop after the health check)
		// undoes a success.
		if report == artifact.ReportRolledBack {
			return report, true
		}
		return cur, false
	case DevFailed, DevRolledBack, DevCancelled, DevSkipped:
		return cur, false
	}
	if r, ok := rank[report]; ok {
		if r >= rank[cur] {
			return report, true
		}
		return cur, false
	}
	return report, true // an outcome
}
