package update

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/protocol/artifact"
)

// permanent marks a failure that another try does not mend: a refused
// artifact, a missing one, a full disk.
type permanent struct{ error }

func (p permanent) Unwrap() error { return p.error }

func isPermanent(err error) bool {
	var p permanent
	return errors.As(err, &p)
}

// process carries out one job: fetch and check, download, install, restart.
// On failure the job ends with a report; a cancelled job (the server's
// rollback) was reported by the rollback.
func (u *Updater) process(ctx context.Context, j job) {
	jctx, cancel := context.WithCancel(ctx)
	defer cancel()
	u.mu.Lock()
	if u.st.Job == nil || u.st.Job.Rollout != j.Rollout {
		u.mu.Unlock()
		return
	}
	u.jobCancel, u.jobRollout = cancel, j.Rollout
	u.mu.Unlock()
	defer func() {
		u.mu.Lock()
		u.jobCancel, u.jobRollout = nil, uuid.Nil
		u.mu.Unlock()
	}()

	log := u.log.With("rollout", j.Rollout, "version", j.Version)
	log.Info("installing an update")
	err := u.install(jctx, j)
	switch {
	case err == nil:
		return
	case ctx.Err() != nil:
		return // the agent stops; the job resumes at the next start
	case jctx.Err() != nil:
		log.Info("the update was cancelled")
		return
	}
	log.Warn("the update failed; the running version stays", "err", err)
	if serr := u.change(func(s *state) error {
		if s.Job == nil || s.Job.Rollout != j.Rollout {
			return nil
		}
		s.Job = nil
		st := artifact.ReportFailed
		if errors.Is(err, artifact.ErrCurrent) {
			st, err = artifact.ReportSucceeded, nil
		}
		reason := ""
		if err != nil {
			reason = err.Error()
		}
		u.report(s, j.Rollout, st, j.Version, reason)
		s.setDone(j.Rollout, st)
		return nil
	}); serr != nil {
		log.Error("cannot record the failed update; it is tried again at the next start", "err", serr)
	}
}

// install fetches, checks, downloads and installs the job's artifact, then
// asks for the restart. It returns nil once the restart was asked for.
func (u *Updater) install(ctx context.Context, j job) error {
	if err := u.change(func(s *state) error {
		u.report(s, j.Rollout, artifact.ReportDownloading, j.Version, "")
		return nil
	}); err != nil {
		return err
	}
	signed, rawManifest, err := u.fetchManifest(ctx, j)
	if err != nil {
		return err
	}
	m := signed.Manifest
	if m.Version != j.Version {
		return fmt.Errorf("the server sent a manifest of %s for the update to %s", m.Version, j.Version)
	}
	if err := m.Check(artifact.Target{App: u.opts.App, Platform: u.opts.Platform, Running: u.Version(), AllowDowngrade: j.AllowDowngrade}); err != nil {
		return err
	}
	part, err := u.download(ctx, j, m)
	if err != nil {
		return err
	}
	if err := u.waitUnsent(ctx); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return u.switchTo(j, m, part, rawManifest)
}

// fetchManifest gets the job's signed manifest and verifies it against the
// trusted keys.
func (u *Updater) fetchManifest(ctx context.Context, j job) (*artifact.Signed, []byte, error) {
	var b []byte
	err := u.retry(ctx, "fetch the manifest", func() error {
		rctx, cancel := context.WithTimeout(ctx, u.opts.RequestTimeout)
		defer cancel()
		resp, err := u.get(rctx, artifact.ManifestPath(j.Artifact), nil)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if err := statusError(resp, "manifest"); err != nil {
			return err
		}
		b, err = io.ReadAll(io.LimitReader(resp.Body, artifact.MaxSignedSize+1))
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	s, err := artifact.Verify(b, u.opts.Keys)
	if err != nil {
		return nil, nil, fmt.Errorf("refused the artifact: %w", err)
	}
	return s, b, nil
}

func (u *Updater) get(ctx context.Context, path string, hdr http.Header) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(u.opts.Server, "/")+path, nil)
	if err != nil {
		return nil, permanent{err}
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	return u.opts.HTTPClient.Do(req)
}

// statusError turns a refusal into an error: 4xx are permanent, 5xx pass.
func statusError(resp *http.Response, what string) error {
	if resp.StatusCode < 300 {
		return nil
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	err := fmt.Errorf("%s: the server answered %s: %s", what, resp.Status, strings.TrimSpace(string(b)))
	if resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusTooManyRequests &&
		resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
		return permanent{err}
	}
	return err
}

// retry runs fn until it succeeds, fails permanently, ctx ends or Attempts
// are used up, waiting RetryBase, doubling up to RetryMax, between tries.
func (u *Updater) retry(ctx context.Context, what string, fn func() error) error {
	wait := u.opts.RetryBase
	var err error
	for attempt := 1; ; attempt++ {
		if err = fn(); err == nil || isPermanent(err) || ctx.Err() != nil {
			return err
		}
		if attempt >= u.opts.Attempts {
			return fmt.Errorf("%s: gave up after %d tries: %w", what, attempt, err)
		}
		u.log.Debug("retrying", "what", what, "attempt", attempt, "wait", wait, "err", err)
		if !sleep(ctx, wait) {
			return ctx.Err()
		}
		wait = min(2*wait, u.opts.RetryMax)
	}
}

// download fetches the binary into download/SHA.part, resuming what an
// earlier try left, and checks it against the manifest. It returns the
// file's path.
func (u *Updater) download(ctx context.Context, j job, m artifact.Manifest) (string, error) {
	part := filepath.Join(u.dir, downloadDir, m.SHA256+".part")
	// Old parts of other artifacts make room first.
	if entries, err := os.ReadDir(filepath.Join(u.dir, downloadDir)); err == nil {
		for _, e := range entries {
			if e.Name() != filepath.Base(part) {
				os.Remove(filepath.Join(u.dir, downloadDir, e.Name()))
			}
		}
	}
	have := fileSize(part)
	free, err := u.opts.DiskFree(u.dir)
	if err != nil {
		return "", fmt.Errorf("measure the free disk space: %w", err)
	}
	if need := m.Size - have + u.opts.DiskReserve; free < need {
		return "", permanent{fmt.Errorf("not enough disk space for %s %s: %d bytes free, %d needed (%d for the download, %d kept free)",
			m.Name, m.Version, free, need, m.Size-have, u.opts.DiskReserve)}
	}
	for fresh := 0; fresh < 2; fresh++ {
		err := u.retry(ctx, "download", func() error { return u.fetchBinary(ctx, j, m, part) })
		if err != nil {
			return "", err
		}
		f, err := os.Open(part)
		if err != nil {
			return "", err
		}
		err = m.CheckBinary(f)
		f.Close()
		if err == nil {
			return part, nil
		}
		// A bad resume or damage on the way: once more from the start.
		os.Remove(part)
		if !errors.Is(err, artifact.ErrMismatch) || fresh == 1 {
			return "", permanent{fmt.Errorf("refused the artifact: %w", err)}
		}
		u.log.Warn("the downloaded binary does not match its manifest; downloading it again from the start", "err", err)
	}
	return "", errors.New("unreachable")
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// fetchBinary makes one request for the rest of the binary and appends it
// to part.
func (u *Updater) fetchBinary(ctx context.Context, j job, m artifact.Manifest, part string) error {
	have := fileSize(part)
	if have > m.Size {
		os.Remove(part)
		have = 0
	}
	if have == m.Size {
		return nil
	}
	hdr := http.Header{}
	if have > 0 {
		hdr.Set("Range", fmt.Sprintf("bytes=%d-", have))
		hdr.Set("If-Range", artifact.ETag(m.SHA256))
	}
	resp, err := u.get(ctx, artifact.BinaryPath(j.Artifact), hdr)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	flags := os.O_WRONLY | os.O_CREATE
	switch resp.StatusCode {
	case http.StatusPartialContent:
		start, ok := rangeStart(resp.Header.Get("Content-Range"))
		if !ok || start != have {
			return fmt.Errorf("the server resumed at %q, want byte %d", resp.Header.Get("Content-Range"), have)
		}
		flags |= os.O_APPEND
	case http.StatusOK:
		flags |= os.O_TRUNC
		have = 0
	case http.StatusRequestedRangeNotSatisfiable:
		os.Remove(part)
		return errors.New("the server cannot resume the download; starting again")
	default:
		return statusError(resp, "download")
	}
	if have == 0 {
		u.log.Info("downloading", "version", m.Version, "bytes", m.Size)
	} else {
		u.log.Info("resuming the download", "version", m.Version, "at", have, "of", m.Size)
	}
	f, err := os.OpenFile(part, flags, 0o600)
	if err != nil {
		return permanent{fmt.Errorf("open the download: %w", err)}
	}
	n, cerr := u.copyLimited(ctx, f, io.LimitReader(resp.Body, m.Size-have), j, m, have)
	serr := f.Sync()
	if err := errors.Join(serr, f.Close()); err != nil {
		return permanent{fmt.Errorf("write the download: %w", err)}
	}
	if cerr != nil {
		return fmt.Errorf("download cut after %d of %d bytes: %w", have+n, m.Size, cerr)
	}
	if have+n < m.Size {
		return fmt.Errorf("download cut after %d of %d bytes", have+n, m.Size)
	}
	return nil
}

// rangeStart reads the first byte of "bytes START-END/SIZE".
func rangeStart(cr string) (int64, bool) {
	rest, ok := strings.CutPrefix(cr, "bytes ")
	if !ok {
		return 0, false
	}
	s, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// copyLimited copies at most RateLimit bytes a second and publishes the
// progress at each quarter.
func (u *Updater) copyLimited(ctx context.Context, w io.Writer, r io.Reader, j job, m artifact.Manifest, offset int64) (int64, error) {
	buf := make([]byte, 32<<10)
	start := time.Now()
	var n int64
	quarter := int((offset * 4) / m.Size)
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		k, rerr := r.Read(buf)
		if k > 0 {
			if _, err := w.Write(buf[:k]); err != nil {
				return n, err
			}
			n += int64(k)
			if q := int(((offset + n) * 4) / m.Size); q > quarter && q < 4 {
				quarter = q
				u.publishProgress(j, q*25)
			}
			if rate := u.opts.RateLimit; rate > 0 {
				due := time.Duration(float64(n) / float64(rate) * float64(time.Second))
				if ahead := due - time.Since(start); ahead > 0 && !sleep(ctx, ahead) {
					return n, ctx.Err()
				}
			}
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}

// waitUnsent waits until the server has every capture, when asked to.
func (u *Updater) waitUnsent(ctx context.Context) error {
	if !u.opts.WaitUnsent || u.host.Unsent == nil {
		return nil
	}
	logged := false
	for {
		n, err := u.host.Unsent(ctx)
		if err == nil && n == 0 {
			return nil
		}
		if !logged {
			u.log.Info("waiting for unsent captures before the switch", "unsent", n, "err", err)
			logged = true
		}
		if !sleep(ctx, u.opts.UnsentPoll) {
			return ctx.Err()
		}
	}
}

// switchTo writes the binary and manifest into the other slot, makes it
// the active one on trial, and asks for the restart.
func (u *Updater) switchTo(j job, m artifact.Manifest, part string, rawManifest []byte) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.st.Job == nil || u.st.Job.Rollout != j.Rollout {
		return context.Canceled // cancelled while it downloaded
	}
	next := otherSlot(u.st.Active)
	dir := filepath.Join(u.dir, slotsDir, next)
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("clear slot %s: %w", next, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("make slot %s: %w", next, err)
	}
	bin := filepath.Join(dir, BinaryFile)
	if err := os.Rename(part, bin); err != nil {
		return fmt.Errorf("install into slot %s: %w", next, err)
	}
	if err := os.Chmod(bin, 0o755); err != nil {
		return fmt.Errorf("install into slot %s: %w", next, err)
	}
	if err := writeAtomic(dir, ManifestFile, rawManifest, 0o600); err != nil {
		return err
	}
	if err := syncDir(filepath.Join(u.dir, slotsDir)); err != nil {
		return err
	}
	err := u.changeLocked(func(s *state) error {
		from := s.Active
		s.Trial = &trial{Rollout: j.Rollout, From: from, FromVersion: s.running(), Version: m.Version, Switched: u.opts.Now()}
		s.Slots[next] = slotInfo{Version: m.Version, InstalledAt: u.opts.Now()}
		s.Active, s.Job = next, nil
		s.addReport(artifact.Report{Rollout: j.Rollout, State: artifact.ReportInstalling, Version: m.Version, Running: s.Slots[from].Version,
			Reason: "installed in slot " + next + "; restarting into it", At: u.opts.Now()})
		return nil
	})
	if err != nil {
		return err
	}
	u.restartFor = "switching to " + m.Version
	signal(u.wake)
	return nil
}
