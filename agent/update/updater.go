// Package update installs software updates on a device: signed artifacts
// (protocol/artifact), downloaded over HTTPS from the fleet server with
// resumable Range requests, installed beside the running version (A/B
// slots), switched to with a restart, and kept only when the new version
// passes its health check within a window; otherwise, or after a crash
// loop, the device switches back by itself. Every step is reported to the
// server.
//
// # Lifecycle
//
// At every start, before the app runs, [Boot] (through [Launch], the
// launcher step the apps call) picks the slot to run and
// counts the starts of a version on trial; after too many (a crash loop) it
// switches back. The app then runs its agent with the slot's version and an
// [Updater] (agent.Options.Updater); the agent binds it ([Updater.Bind]:
// the commands "update" and "update-rollback", the session and heartbeat
// state) and runs it with the other parts.
//
// An "update" command is persisted as a job and answered at once; Run then
// fetches the signed manifest, checks it (trusted signature, platform, app,
// not older than the running version unless the rollout allowed that
// version, minimum prior version), checks the disk space, downloads the
// binary (resuming after a cut, at most RateLimit bytes a second), checks
// its size and SHA-256, waits for unsent captures if asked to, writes it
// into the other slot and restarts into it through the [Restarter]. On the
// next start Run checks the new version's health within HealthWindow: the
// agent has a synced session with the server, a heartbeat went out, and
// the app's self-test passes. Then the version is kept; else the device
// switches back and restarts.
//
// Reports are persisted before they are sent and sent until the server
// acknowledges them, so that the server learns every outcome, also the one
// of a version that crashed.
package update

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	gosync "sync"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/agent/command"
	"github.com/kogge-fleet/kogge/protocol/artifact"
)

// Restarter starts the device again into the active slot.
type Restarter interface {
	// Restart may return before the restart happens (the agent's context
	// then ends soon) or never (a process that re-executes itself).
	Restart(ctx context.Context, slot Slot) error
}

// RestartFunc is a Restarter made of a function.
type RestartFunc func(ctx context.Context, slot Slot) error

// Restart calls f.
func (f RestartFunc) Restart(ctx context.Context, slot Slot) error { return f(ctx, slot) }

// Host is what the updater needs of the agent that runs it.
type Host struct {
	// Register adds a command handler.
	Register func(name string, h command.Handler) error
	// Connected reports whether the agent has a synced session with the
	// server.
	Connected func() bool
	// Heartbeats returns how many heartbeats the agent sent since it
	// started.
	Heartbeats func() uint64
	// Unsent returns how many captures the server has not yet
	// acknowledged; nil means none are ever waited for.
	Unsent func(ctx context.Context) (int, error)
}

// Options configure an Updater.
type Options struct {
	// Server is the fleet server's HTTPS base URL (the enrollment
	// address, agent/enroll.Identity.Server).
	Server string
	// TLS is the client configuration with the device certificate and the
	// fleet CA (agent/enroll.Identity.TLSConfig).
	TLS *tls.Config
	// Keys are the artifact signing keys the device trusts. Required.
	Keys artifact.Keyring
	// App is the device's app (kiosk, mobile-agent); an artifact must
	// name it. Required.
	App string
	// Platform is GOOS/GOARCH; default the running one.
	Platform string
	// Restarter starts the device again. Required.
	Restarter Restarter
	// SelfTest is the app's part of the health check (kiosk: peripherals
	// and the capture pipeline); nil passes.
	SelfTest func(ctx context.Context) error
	// HealthWindow is how long a new version has to pass its health
	// check (2 min).
	HealthWindow time.Duration
	// HealthPoll is how often the health is looked at (250 ms).
	HealthPoll time.Duration
	// SelfTestTimeout bounds one self-test (30 s).
	SelfTestTimeout time.Duration
	// RestartDelay is the pause before the restart of a rollback the
	// server asked for, so that the command's result is stored first
	// (2 s).
	RestartDelay time.Duration
	// RateLimit bounds the download in bytes a second; 0 means no limit.
	RateLimit int64
	// DiskReserve is the space that must stay free besides the download
	// (64 MiB).
	DiskReserve int64
	// DiskFree returns the free bytes of the file system of dir (statfs).
	DiskFree func(dir string) (int64, error)
	// WaitUnsent makes the device install only once the server has every
	// capture (Host.Unsent is 0); the download happens before.
	WaitUnsent bool
	// UnsentPoll is how often unsent captures are counted (5 s).
	UnsentPoll time.Duration
	// Attempts bounds the tries of a download or manifest fetch that fail
	// for a passing reason (network, server error) before the update
	// fails (20). RetryBase and RetryMax bound the wait between them,
	// doubling (1 s, 1 min).
	Attempts  int
	RetryBase time.Duration
	RetryMax  time.Duration
	// RequestTimeout bounds a manifest fetch and a report (30 s).
	RequestTimeout time.Duration
	// HTTPClient replaces the client built from TLS (for tests).
	HTTPClient *http.Client
	// Logger receives the updater's log lines (slog.Default()).
	Logger *slog.Logger
	// Now is the clock (time.Now).
	Now func() time.Time
}

func (o *Options) defaults() {
	if o.Platform == "" {
		o.Platform = runtime.GOOS + "/" + runtime.GOARCH
	}
	if o.HealthWindow == 0 {
		o.HealthWindow = 2 * time.Minute
	}
	if o.HealthPoll == 0 {
		o.HealthPoll = 250 * time.Millisecond
	}
	if o.SelfTestTimeout == 0 {
		o.SelfTestTimeout = 30 * time.Second
	}
	if o.RestartDelay == 0 {
		o.RestartDelay = 2 * time.Second
	}
	if o.DiskReserve == 0 {
		o.DiskReserve = 64 << 20
	}
	if o.DiskFree == nil {
		o.DiskFree = diskFree
	}
	if o.UnsentPoll == 0 {
		o.UnsentPoll = 5 * time.Second
	}
	if o.Attempts == 0 {
		o.Attempts = 20
	}
	if o.RetryBase == 0 {
		o.RetryBase = time.Second
	}
	if o.RetryMax == 0 {
		o.RetryMax = time.Minute
	}
	if o.RequestTimeout == 0 {
		o.RequestTimeout = 30 * time.Second
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Transport: &http.Transport{
			TLSClientConfig: o.TLS, ForceAttemptHTTP2: true,
			TLSHandshakeTimeout: 10 * time.Second, ResponseHeaderTimeout: 30 * time.Second,
			IdleConnTimeout: time.Minute,
		}}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Validate checks the options after defaults are filled in.
func (o *Options) Validate() error {
	var errs []error
	if !strings.HasPrefix(o.Server, "https://") {
		errs = append(errs, fmt.Errorf("server %q: want the fleet server's https:// address", o.Server))
	}
	if len(o.Keys) == 0 {
		errs = append(errs, errors.New("no trusted signing keys: the device could install nothing"))
	}
	if o.App == "" {
		errs = append(errs, errors.New("app not set"))
	}
	if err := artifact.ValidatePlatform(o.Platform); err != nil {
		errs = append(errs, err)
	}
	if o.Restarter == nil {
		errs = append(errs, errors.New("no restarter"))
	}
	if o.HealthWindow <= 0 || o.HealthPoll <= 0 || o.SelfTestTimeout <= 0 || o.RestartDelay < 0 || o.UnsentPoll <= 0 ||
		o.RetryBase <= 0 || o.RetryMax < o.RetryBase || o.RequestTimeout <= 0 {
		errs = append(errs, errors.New("durations must be positive, retry max at least retry base"))
	}
	if o.RateLimit < 0 || o.DiskReserve < 0 || o.Attempts < 1 {
		errs = append(errs, errors.New("rate limit and disk reserve must not be negative, attempts at least 1"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("update options: %w", err)
	}
	return nil
}

// Updater installs updates. Build it with New after Boot.
type Updater struct {
	dir  string
	opts Options
	log  *slog.Logger

	host  Host
	bound bool

	wake    chan struct{} // a job, a rollback or a restart waits
	reports chan struct{} // a report waits
	// progress holds the newest download progress, sent best-effort.
	progress chan artifact.Report

	mu         gosync.Mutex
	st         *state
	restartFor string // why a restart is due; "" for none
	restarting bool   // a restart was asked for: nothing else starts
	jobCancel  context.CancelFunc
	jobRollout uuid.UUID
}

// New returns the updater over the update directory dir, which Boot has
// prepared at this start.
func New(dir string, opts Options) (*Updater, error) {
	opts.defaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	st, err := loadState(dir, "")
	if err != nil {
		return nil, fmt.Errorf("%w (call update.Boot at the start)", err)
	}
	for _, d := range []string{filepath.Join(dir, slotsDir), filepath.Join(dir, downloadDir)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("update directory: %w", err)
		}
	}
	return &Updater{
		dir: dir, opts: opts, log: opts.Logger, st: st,
		wake: make(chan struct{}, 1), reports: make(chan struct{}, 1), progress: make(chan artifact.Report, 1),
	}, nil
}

// Version returns the version this start runs.
func (u *Updater) Version() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.st.running()
}

// Status is the updater's state, for the app and tests.
type Status struct {
	Slot Slot
	// Job is the rollout of an update received and not yet installed.
	Job uuid.UUID
	// Pending counts the reports the server has not acknowledged.
	Pending int
	// Restarting is set once a restart was asked for.
	Restarting bool
}

// Status returns the updater's state.
func (u *Updater) Status() Status {
	u.mu.Lock()
	defer u.mu.Unlock()
	s := Status{Slot: slotOf(u.dir, u.st), Pending: len(u.st.Reports), Restarting: u.restarting}
	if u.st.Job != nil {
		s.Job = u.st.Job.Rollout
	}
	return s
}

// Bind connects the updater to its agent and registers its commands; the
// agent calls it from New.
func (u *Updater) Bind(h Host) error {
	if h.Register == nil || h.Connected == nil || h.Heartbeats == nil {
		return errors.New("update: the host lacks Register, Connected or Heartbeats")
	}
	u.host = h
	if err := h.Register(artifact.CommandUpdate, u.handleUpdate); err != nil {
		return err
	}
	if err := h.Register(artifact.CommandRollback, u.handleRollback); err != nil {
		return err
	}
	u.bound = true
	return nil
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// change applies fn to the state and saves it; on a failed save the state
// stays as it was and the error is returned. u.mu must not be held.
func (u *Updater) change(fn func(s *state) error) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.changeLocked(fn)
}

func (u *Updater) changeLocked(fn func(s *state) error) error {
	next := u.st.clone()
	if err := fn(next); err != nil {
		return err
	}
	if err := next.save(u.dir); err != nil {
		return err
	}
	queued := len(next.Reports) > len(u.st.Reports) || (len(next.Reports) > 0 && next.Seq != u.st.Seq)
	u.st = next
	if queued {
		signal(u.reports)
	}
	return nil
}

func (u *Updater) report(s *state, rollout uuid.UUID, st, version, reason string) {
	s.addReport(artifact.Report{Rollout: rollout, State: st, Version: version, Running: s.running(), Reason: clipText(reason), At: u.opts.Now()})
}

func clipText(s string) string {
	if len(s) > 1000 {
		return s[:997] + "..."
	}
	return s
}

// handleUpdate takes an "update" command: it checks the arguments and
// persists the job, which Run carries out; the answer comes at once.
func (u *Updater) handleUpdate(_ context.Context, args map[string]string) ([]byte, error) {
	rollout, err1 := uuid.Parse(args[artifact.ArgRollout])
	art, err2 := uuid.Parse(args[artifact.ArgArtifact])
	version := args[artifact.ArgVersion]
	_, err3 := artifact.ParseVersion(version)
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, fmt.Errorf("%w: update needs rollout, artifact (ids) and version: %v", command.ErrRejected, err)
	}
	allow := args[artifact.ArgAllowDowngrade]
	var out string
	err := u.change(func(s *state) error {
		if st, ok := s.done(rollout); ok {
			out = "this update is " + st + " already"
			return nil
		}
		switch {
		case s.Job != nil && s.Job.Rollout == rollout:
			out = "this update is in progress"
			return nil
		case s.Job != nil:
			return fmt.Errorf("%w: busy with the update of rollout %s", command.ErrRejected, s.Job.Rollout)
		case s.Trial != nil:
			return fmt.Errorf("%w: %s is still on trial (rollout %s)", command.ErrRejected, s.Trial.Version, s.Trial.Rollout)
		}
		if u.restarting { // u.mu is held by change
			return fmt.Errorf("%w: the device is restarting", command.ErrRejected)
		}
		if s.running() == version {
			u.report(s, rollout, artifact.ReportSucceeded, version, "this version runs already")
			s.setDone(rollout, artifact.ReportSucceeded)
			out = "runs " + version + " already"
			return nil
		}
		s.Job = &job{Rollout: rollout, Artifact: art, Version: version, AllowDowngrade: allow, Received: u.opts.Now()}
		out = "accepted: installing " + version
		return nil
	})
	if err != nil {
		return nil, err
	}
	signal(u.wake)
	return []byte(out), nil
}

// handleRollback takes an "update-rollback" command: it cancels the
// rollout's update if it is not installed, or switches back to the
// previous version and restarts.
func (u *Updater) handleRollback(_ context.Context, args map[string]string) ([]byte, error) {
	rollout, err := uuid.Parse(args[artifact.ArgRollout])
	version, to := args[artifact.ArgVersion], args[artifact.ArgTo]
	if err != nil || version == "" {
		return nil, fmt.Errorf("%w: update-rollback needs rollout and version", command.ErrRejected)
	}
	var out string
	var cancel context.CancelFunc
	restart := false
	err = u.change(func(s *state) error {
		switch {
		case s.Job != nil && s.Job.Rollout == rollout:
			s.Job = nil
			u.report(s, rollout, artifact.ReportCancelled, version, "the rollout was aborted before the update was installed")
			s.setDone(rollout, artifact.ReportCancelled)
			if u.jobRollout == rollout {
				cancel = u.jobCancel
			}
			out = "cancelled the update to " + version
		case s.running() == version && s.Slots[otherSlot(s.Active)].Version != "" &&
			(to == "" || s.Slots[otherSlot(s.Active)].Version == to):
			back := otherSlot(s.Active)
			from := s.running()
			s.Active, s.Trial = back, nil
			u.report(s, rollout, artifact.ReportRolledBack, version, "the rollout was aborted: back from "+from+" to "+s.running())
			s.setDone(rollout, artifact.ReportRolledBack)
			restart = true
			out = "rolling back from " + from + " to " + s.running()
		case s.running() != version:
			// Never installed, failed or rolled back already: the
			// device runs what the rollback wants.
			st, _ := s.done(rollout)
			if st != artifact.ReportFailed && st != artifact.ReportRolledBack && st != artifact.ReportCancelled {
				u.report(s, rollout, artifact.ReportCancelled, version, "not installed; runs "+s.running())
				s.setDone(rollout, artifact.ReportCancelled)
			}
			out = "runs " + s.running() + "; nothing to roll back"
		default:
			return fmt.Errorf("%w: runs %s, but the other slot holds %q, not %q", command.ErrRejected,
				version, s.Slots[otherSlot(s.Active)].Version, to)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if cancel != nil {
		cancel()
	}
	if restart {
		u.mu.Lock()
		u.restartFor = "rollback asked by the server"
		u.mu.Unlock()
	}
	signal(u.wake)
	return []byte(out), nil
}

// Run carries out updates until ctx ends: it checks the health of a
// version on trial, installs the jobs, restarts and sends the reports.
func (u *Updater) Run(ctx context.Context) error {
	if !u.bound {
		return errors.New("update: Run before Bind")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg gosync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { u.sendReports(ctx) })

	u.checkHealth(ctx)
	for ctx.Err() == nil {
		u.mu.Lock()
		reason, restarting, j := u.restartFor, u.restarting, u.st.Job
		u.mu.Unlock()
		switch {
		case restarting:
			<-ctx.Done()
		case reason != "":
			if !sleep(ctx, u.opts.RestartDelay) {
				return nil
			}
			u.restart(ctx, reason)
		case j != nil:
			u.process(ctx, *j)
		default:
			select {
			case <-ctx.Done():
			case <-u.wake:
			}
		}
	}
	return nil
}

// restart asks the Restarter for a start into the active slot. A failed
// restart leaves the device running where it is; the next start picks the
// active slot anyway.
func (u *Updater) restart(ctx context.Context, reason string) {
	u.mu.Lock()
	u.restartFor, u.restarting = "", true
	slot := slotOf(u.dir, u.st)
	u.mu.Unlock()
	u.log.Info("restarting", "reason", reason, "slot", slot.Name, "version", slot.Version)
	if err := u.opts.Restarter.Restart(ctx, slot); err != nil {
		u.log.Error("restart failed; the device runs on and starts the new slot at its next start", "err", err)
		u.mu.Lock()
		u.restarting = false
		u.mu.Unlock()
	}
}

// checkHealth checks a version on trial: within HealthWindow the agent must
// have a synced session, have sent a heartbeat, and the self-test must
// pass. Then it is kept; else the device switches back and restarts.
func (u *Updater) checkHealth(ctx context.Context) {
	u.mu.Lock()
	t := u.st.Trial
	u.mu.Unlock()
	if t == nil {
		return
	}
	log := u.log.With("rollout", t.Rollout, "version", t.Version)
	log.Info("checking the health of the new version", "window", u.opts.HealthWindow, "start", t.Boots)
	deadline := u.opts.Now().Add(u.opts.HealthWindow)
	tick := time.NewTicker(u.opts.HealthPoll)
	defer tick.Stop()
	why := "no synced session with the server"
	for {
		u.mu.Lock()
		still := u.st.Trial != nil && u.st.Trial.Rollout == t.Rollout
		u.mu.Unlock()
		if !still {
			return // the server rolled it back meanwhile
		}
		switch {
		case !u.host.Connected():
			why = "no synced session with the server"
		case u.host.Heartbeats() == 0:
			why = "no heartbeat sent"
		default:
			err := u.selfTest(ctx)
			if err == nil {
				u.commit(ctx, *t)
				return
			}
			why = "self-test failed: " + err.Error()
		}
		if ctx.Err() != nil {
			return
		}
		if !u.opts.Now().Before(deadline) {
			u.fallBack(*t, fmt.Sprintf("health check failed within %v: %s", u.opts.HealthWindow, why))
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (u *Updater) selfTest(ctx context.Context) error {
	if u.opts.SelfTest == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, u.opts.SelfTestTimeout)
	defer cancel()
	return u.opts.SelfTest(ctx)
}

// commit keeps a version that passed its health check.
func (u *Updater) commit(ctx context.Context, t trial) {
	err := u.change(func(s *state) error {
		if s.Trial == nil || s.Trial.Rollout != t.Rollout {
			return nil
		}
		s.Trial = nil
		u.report(s, t.Rollout, artifact.ReportSucceeded, t.Version, "")
		s.setDone(t.Rollout, artifact.ReportSucceeded)
		return nil
	})
	if err != nil {
		// The trial stays: the next start checks again, or counts it as
		// a failed start.
		u.log.Error("cannot keep the new version", "version", t.Version, "err", err)
		return
	}
	u.log.Info("the new version passed its health check; keeping it", "rollout", t.Rollout, "version", t.Version)
}

// fallBack switches back from a version on trial and restarts.
func (u *Updater) fallBack(t trial, reason string) {
	u.log.Warn("switching back to the previous version", "version", t.Version, "to", t.FromVersion, "reason", reason)
	err := u.change(func(s *state) error {
		if s.Trial == nil || s.Trial.Rollout != t.Rollout {
			return nil
		}
		s.Active, s.Trial = t.From, nil
		u.report(s, t.Rollout, artifact.ReportRolledBack, t.Version, reason+"; back to "+t.FromVersion)
		s.setDone(t.Rollout, artifact.ReportRolledBack)
		return nil
	})
	if err != nil {
		u.log.Error("cannot switch back; the crash-loop limit switches back at a later start", "err", err)
		return
	}
	u.mu.Lock()
	u.restartFor = "the new version failed its health check"
	u.mu.Unlock()
	signal(u.wake)
}

// sleep waits for d; false if ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
