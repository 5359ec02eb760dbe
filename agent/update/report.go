package update

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/kogge-fleet/kogge/protocol/artifact"
)

// publishProgress offers the newest download progress to the sender; it
// is sent when nothing else waits, and a newer one replaces it.
func (u *Updater) publishProgress(j job, percent int) {
	r := artifact.Report{Rollout: j.Rollout, State: artifact.ReportDownloading, Version: j.Version, Running: u.Version(),
		Progress: percent, At: u.opts.Now()}
	for {
		select {
		case u.progress <- r:
			return
		default:
		}
		select {
		case <-u.progress:
		default:
		}
	}
}

// sendReports sends the persisted reports in order until ctx ends: each
// until the server takes it (or refuses it for good), waiting between
// failed tries as retry does.
func (u *Updater) sendReports(ctx context.Context) {
	wait := u.opts.RetryBase
	for ctx.Err() == nil {
		u.mu.Lock()
		var r artifact.Report
		have := len(u.st.Reports) > 0
		if have {
			r = u.st.Reports[0]
		}
		u.mu.Unlock()
		if !have {
			select {
			case <-ctx.Done():
			case <-u.reports:
			case p := <-u.progress:
				if err := u.post(ctx, p); err != nil {
					u.log.Debug("progress not sent", "err", err)
				}
			}
			continue
		}
		err := u.post(ctx, r)
		if err != nil && !isPermanent(err) {
			u.log.Debug("report not sent; retrying", "state", r.State, "wait", wait, "err", err)
			if !sleep(ctx, wait) {
				return
			}
			wait = min(2*wait, u.opts.RetryMax)
			continue
		}
		if err != nil {
			u.log.Warn("the server refused a report; dropping it", "rollout", r.Rollout, "state", r.State, "err", err)
		}
		wait = u.opts.RetryBase
		if err := u.change(func(s *state) error {
			s.Reports = slices.DeleteFunc(s.Reports, func(q artifact.Report) bool { return q.Seq == r.Seq })
			return nil
		}); err != nil {
			u.log.Warn("cannot mark a report sent; it is sent again", "err", err)
			if !sleep(ctx, wait) {
				return
			}
		}
	}
}

// post sends one report.
func (u *Updater) post(ctx context.Context, r artifact.Report) error {
	b, err := json.Marshal(r)
	if err != nil {
		return permanent{err}
	}
	ctx, cancel := context.WithTimeout(ctx, u.opts.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(u.opts.Server, "/")+artifact.ReportPath, bytes.NewReader(b))
	if err != nil {
		return permanent{err}
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := u.opts.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("send report: %w", err)
	}
	defer resp.Body.Close()
	return statusError(resp, "report")
}
