package dashboard

import (
	"context"
	"errors"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/fleet-server/dashboard/auth"
	"github.com/kogge-fleet/kogge/fleet-server/registry"
	"github.com/kogge-fleet/kogge/fleet-server/rollout"
)

// Software updates: the artifacts, the rollouts with their waves, devices
// and events, and the forms to start, pause, resume and abort a rollout.
// The rollout service audits every action with the user as the actor.

// Rollouts is what the dashboard needs of fleet-server/rollout. It is
// optional: without it the rollout pages say that updates are off.
type Rollouts interface {
	Artifacts(ctx context.Context) ([]rollout.Artifact, error)
	Rollouts(ctx context.Context, f rollout.RolloutFilter) ([]rollout.Rollout, error)
	Rollout(ctx context.Context, id uuid.UUID) (rollout.Rollout, error)
	Events(ctx context.Context, id uuid.UUID) ([]rollout.Event, error)
	Devices(ctx context.Context, id uuid.UUID, f rollout.DeviceFilter) ([]rollout.Device, error)
	Create(ctx context.Context, spec rollout.Spec, actor string) (rollout.Rollout, error)
	Pause(ctx context.Context, id uuid.UUID, actor string) (rollout.Rollout, error)
	Resume(ctx context.Context, id uuid.UUID, actor string) (rollout.Rollout, error)
	Abort(ctx context.Context, id uuid.UUID, reason, actor string) (rollout.Rollout, error)
}

func (h *Handler) registerRollouts() {
	h.page(http.MethodGet, "/rollouts", auth.ReadFleet, h.rolloutsPage)
	h.page(http.MethodPost, "/rollouts", auth.Administer, h.createRollout)
	h.page(http.MethodGet, "/rollouts/{rollout}", auth.ReadFleet, h.rolloutPage)
	h.page(http.MethodPost, "/rollouts/{rollout}/pause", auth.Operate, h.pauseRollout)
	h.page(http.MethodPost, "/rollouts/{rollout}/resume", auth.Operate, h.resumeRollout)
	h.page(http.MethodPost, "/rollouts/{rollout}/abort", auth.Operate, h.abortRollout)
}

// RolloutChanged passes a rollout's progress to the live pages: the count
// of its devices per state and per wave, under keys
// "rollout-ID-STATE", "rollout-ID-done", "rollout-ID-wave" and
// "rollout-ID-wave-N-succeeded|failed|in_progress" (the counts handler of
// app.js fills the elements with those data-count keys). Give it to the
// rollout service as its OnChange; it never blocks.
func (h *Handler) RolloutChanged(r rollout.Rollout) {
	h.hub.broadcast(liveMessage{Type: "counts", ID: r.ID.String(), State: r.State, Counts: rolloutCounts(r)})
}

func rolloutCounts(r rollout.Rollout) map[string]int {
	counts := map[string]int{}
	prefix := rolloutKey(r.ID)
	for st, n := range r.Counts {
		counts[prefix+st] = n
	}
	counts[prefix+"wave"] = r.Wave
	counts[prefix+"done"] = doneCount(r)
	for _, w := range r.Waves {
		wp := prefix + "wave-" + strconv.Itoa(w.Index) + "-"
		counts[wp+"succeeded"], counts[wp+"failed"], counts[wp+"in_progress"] = w.Succeeded, w.Failed, w.InProgress
	}
	return counts
}

func rolloutKey(id uuid.UUID) string { return "rollout-" + id.String() + "-" }

// doneCount is how many of a rollout's devices have an outcome.
func doneCount(r rollout.Rollout) int {
	return r.Counts[rollout.DevSucceeded] + r.Counts[rollout.DevFailed] + r.Counts[rollout.DevRolledBack] +
		r.Counts[rollout.DevCancelled] + r.Counts[rollout.DevSkipped]
}

// rolloutStateLabel names a rollout state in lang.
func (h *Handler) rolloutStateLabel(lang, st string) string {
	switch st {
	case rollout.Running:
		return h.tr(lang, "rollout.running")
	case rollout.Paused:
		return h.tr(lang, "rollout.paused")
	case rollout.Aborting:
		return h.tr(lang, "rollout.aborting")
	case rollout.Aborted:
		return h.tr(lang, "rollout.aborted")
	case rollout.Succeeded:
		return h.tr(lang, "rollout.succeeded")
	}
	return st
}

// deviceStateLabel names a device's state in a rollout in lang.
func (h *Handler) deviceStateLabel(lang, st string) string {
	switch st {
	case rollout.DevPending:
		return h.tr(lang, "rollout.dev_pending")
	case rollout.DevWaiting:
		return h.tr(lang, "rollout.dev_waiting")
	case rollout.DevSent:
		return h.tr(lang, "rollout.dev_sent")
	case rollout.DevDownloading:
		return h.tr(lang, "rollout.dev_downloading")
	case rollout.DevInstalling:
		return h.tr(lang, "rollout.dev_installing")
	case rollout.DevSucceeded:
		return h.tr(lang, "rollout.dev_succeeded")
	case rollout.DevFailed:
		return h.tr(lang, "rollout.dev_failed")
	case rollout.DevRolledBack:
		return h.tr(lang, "rollout.dev_rolled_back")
	case rollout.DevCancelled:
		return h.tr(lang, "rollout.dev_cancelled")
	case rollout.DevRollingBack:
		return h.tr(lang, "rollout.dev_rolling_back")
	case rollout.DevSkipped:
		return h.tr(lang, "rollout.dev_skipped")
	}
	return st
}

// rolloutRow is a rollout as the list shows it.
type rolloutRow struct {
	rollout.Rollout
	StateLabel string
	Key        string
	Done       int
}

// rolloutForm is the form that starts a rollout, with what was entered.
type rolloutForm struct {
	Name, Artifact, Group, Devices, Waves, Success, Errors, Soak, Window string
	UpdateWithUnsent, AllowDowngrade                                     bool
}

// artifactRow is an artifact as the list shows it.
type artifactRow struct {
	rollout.Artifact
	SizeText string
}

type rolloutsData struct {
	Enabled   bool
	Error     string
	Rollouts  []rolloutRow
	Artifacts []artifactRow
	Groups    []registry.Group
	Form      rolloutForm
}

func (h *Handler) rolloutsPage(w http.ResponseWriter, r *http.Request, s *session) error {
	return h.renderRollouts(w, r, s, http.StatusOK, rolloutForm{Waves: strings.Join(rollout.DefaultWaves, ","),
		Success: "0.95", Errors: "0.05", Soak: "10m"}, "")
}

func (h *Handler) renderRollouts(w http.ResponseWriter, r *http.Request, s *session, status int, form rolloutForm, msg string) error {
	d := rolloutsData{Enabled: h.svc.Rollouts != nil, Error: msg, Form: form}
	if d.Enabled {
		ctx := r.Context()
		list, err := h.svc.Rollouts.Rollouts(ctx, rollout.RolloutFilter{Limit: 100})
		if err != nil {
			return err
		}
		for _, ro := range list {
			d.Rollouts = append(d.Rollouts, rolloutRow{Rollout: ro, StateLabel: h.rolloutStateLabel(s.lang, ro.State),
				Key: rolloutKey(ro.ID), Done: doneCount(ro)})
		}
		arts, err := h.svc.Rollouts.Artifacts(ctx)
		if err != nil {
			return err
		}
		for _, a := range arts {
			d.Artifacts = append(d.Artifacts, artifactRow{Artifact: a, SizeText: humanBytes(uint64(max(a.Size, 0)))})
		}
		if d.Groups, err = h.svc.Registry.Groups(ctx); err != nil {
			return err
		}
	}
	return h.render(w, r, s, status, "rollouts", h.tr(s.lang, "nav.rollouts"), d)
}

// rolloutsOff refuses an action while updates are off.
func (h *Handler) rolloutsOff(s *session) error {
	return &userError{http.StatusNotFound, h.tr(s.lang, "rollout.off")}
}

func (h *Handler) createRollout(w http.ResponseWriter, r *http.Request, s *session) error {
	if h.svc.Rollouts == nil {
		return h.rolloutsOff(s)
	}
	f := rolloutForm{Name: strings.TrimSpace(r.PostFormValue("name")), Artifact: r.PostFormValue("artifact"),
		Group: r.PostFormValue("group"), Devices: r.PostFormValue("devices"), Waves: r.PostFormValue("waves"),
		Success: strings.TrimSpace(r.PostFormValue("success")), Errors: strings.TrimSpace(r.PostFormValue("errors")),
		Soak: strings.TrimSpace(r.PostFormValue("soak")), Window: strings.TrimSpace(r.PostFormValue("window")),
		UpdateWithUnsent: r.PostFormValue("update_with_unsent") == "yes", AllowDowngrade: r.PostFormValue("allow_downgrade") == "yes"}
	bad := func(key string, args ...any) error {
		return h.renderRollouts(w, r, s, http.StatusBadRequest, f, h.tr(s.lang, key, args...))
	}
	id, err := uuid.Parse(f.Artifact)
	if err != nil {
		return bad("rollout.need_artifact")
	}
	spec := rollout.Spec{Name: f.Name, Artifact: id, Target: rollout.Target{Group: f.Group}, Window: f.Window,
		UpdateWithUnsent: f.UpdateWithUnsent, AllowDowngrade: f.AllowDowngrade}
	for d := range strings.SplitSeq(f.Devices, ",") {
		if d = strings.TrimSpace(d); d != "" {
			spec.Target.Devices = append(spec.Target.Devices, d)
		}
	}
	for w := range strings.SplitSeq(f.Waves, ",") {
		if w = strings.TrimSpace(w); w != "" {
			spec.Waves = append(spec.Waves, w)
		}
	}
	for _, t := range []struct {
		s   string
		dst **float64
	}{{f.Success, &spec.SuccessThreshold}, {f.Errors, &spec.ErrorThreshold}} {
		if t.s == "" {
			continue
		}
		v, err := strconv.ParseFloat(t.s, 64)
		if err != nil {
			return bad("rollout.bad_share", t.s)
		}
		*t.dst = &v
	}
	if f.Soak != "" {
		d, err := time.ParseDuration(f.Soak)
		if err != nil {
			return bad("rollout.bad_soak", f.Soak)
		}
		spec.Soak = &d
	}
	ro, err := h.svc.Rollouts.Create(r.Context(), spec, actor(s))
	switch {
	case errors.Is(err, rollout.ErrInvalid), errors.Is(err, rollout.ErrNotFound):
		return h.renderRollouts(w, r, s, http.StatusBadRequest, f, err.Error())
	case errors.Is(err, rollout.ErrConflict):
		return h.renderRollouts(w, r, s, http.StatusConflict, f, err.Error())
	case err != nil:
		return err
	}
	http.Redirect(w, r, "/rollouts/"+ro.ID.String()+"?done=done.rollout_started", http.StatusSeeOther)
	return nil
}

// rolloutDeviceRow is a device of a rollout as the page shows it.
type rolloutDeviceRow struct {
	rollout.Device
	StateLabel string
}

type rolloutData struct {
	R          rollout.Rollout
	StateLabel string
	Key        string
	Done       int
	Events     []rollout.Event
	Devices    []rolloutDeviceRow
	// More is set when the device list is cut short.
	More                         int
	CanPause, CanResume, CanStop bool
	// SuccessPct and ErrorPct are the thresholds in percent.
	SuccessPct, ErrorPct int
	Error                string
}

// maxRolloutDeviceRows bounds the devices a rollout's page lists; the rest are
// counted.
const maxRolloutDeviceRows = 500

func (h *Handler) rolloutPage(w http.ResponseWriter, r *http.Request, s *session) error {
	return h.renderRollout(w, r, s, http.StatusOK, "")
}

func (h *Handler) renderRollout(w http.ResponseWriter, r *http.Request, s *session, status int, msg string) error {
	if h.svc.Rollouts == nil {
		return h.rolloutsOff(s)
	}
	ctx := r.Context()
	id, err := uuid.Parse(r.PathValue("rollout"))
	if err != nil {
		return &userError{http.StatusNotFound, h.tr(s.lang, "error.notfound")}
	}
	ro, err := h.svc.Rollouts.Rollout(ctx, id)
	if errors.Is(err, rollout.ErrNotFound) {
		return &userError{http.StatusNotFound, h.tr(s.lang, "error.notfound")}
	}
	if err != nil {
		return err
	}
	d := rolloutData{R: ro, StateLabel: h.rolloutStateLabel(s.lang, ro.State), Key: rolloutKey(ro.ID), Done: doneCount(ro),
		CanPause: ro.State == rollout.Running, CanResume: ro.State == rollout.Paused,
		CanStop: ro.State == rollout.Running || ro.State == rollout.Paused, Error: msg,
		SuccessPct: int(math.Round(100 * ro.Settings.SuccessThreshold)), ErrorPct: int(math.Round(100 * ro.Settings.ErrorThreshold))}
	if d.Events, err = h.svc.Rollouts.Events(ctx, id); err != nil {
		return err
	}
	devs, err := h.svc.Rollouts.Devices(ctx, id, rollout.DeviceFilter{})
	if err != nil {
		return err
	}
	if len(devs) > maxRolloutDeviceRows {
		d.More, devs = len(devs)-maxRolloutDeviceRows, devs[:maxRolloutDeviceRows]
	}
	for _, dv := range devs {
		d.Devices = append(d.Devices, rolloutDeviceRow{Device: dv, StateLabel: h.deviceStateLabel(s.lang, dv.State)})
	}
	return h.render(w, r, s, status, "rollout", h.tr(s.lang, "rollout.title", ro.Name), d)
}

func (h *Handler) rolloutAction(w http.ResponseWriter, r *http.Request, s *session, act func(context.Context, uuid.UUID) error, done string) error {
	if h.svc.Rollouts == nil {
		return h.rolloutsOff(s)
	}
	id, err := uuid.Parse(r.PathValue("rollout"))
	if err != nil {
		return &userError{http.StatusNotFound, h.tr(s.lang, "error.notfound")}
	}
	err = act(r.Context(), id)
	switch {
	case errors.Is(err, rollout.ErrNotFound):
		return &userError{http.StatusNotFound, h.tr(s.lang, "error.notfound")}
	case errors.Is(err, rollout.ErrConflict), errors.Is(err, rollout.ErrInvalid):
		return h.renderRollout(w, r, s, http.StatusConflict, err.Error())
	case err != nil:
		return err
	}
	http.Redirect(w, r, "/rollouts/"+url.PathEscape(id.String())+"?done="+done, http.StatusSeeOther)
	return nil
}

func (h *Handler) pauseRollout(w http.ResponseWriter, r *http.Request, s *session) error {
	return h.rolloutAction(w, r, s, func(ctx context.Context, id uuid.UUID) error {
		_, err := h.svc.Rollouts.Pause(ctx, id, actor(s))
		return err
	}, "done.rollout_paused")
}

func (h *Handler) resumeRollout(w http.ResponseWriter, r *http.Request, s *session) error {
	return h.rolloutAction(w, r, s, func(ctx context.Context, id uuid.UUID) error {
		_, err := h.svc.Rollouts.Resume(ctx, id, actor(s))
		return err
	}, "done.rollout_resumed")
}

func (h *Handler) abortRollout(w http.ResponseWriter, r *http.Request, s *session) error {
	reason := strings.TrimSpace(r.PostFormValue("reason"))
	if h.svc.Rollouts != nil && (r.PostFormValue("confirm") != "yes" || reason == "") {
		return h.renderRollout(w, r, s, http.StatusBadRequest, h.tr(s.lang, "rollout.abort_needs"))
	}
	return h.rolloutAction(w, r, s, func(ctx context.Context, id uuid.UUID) error {
		_, err := h.svc.Rollouts.Abort(ctx, id, reason, actor(s))
		return err
	}, "done.rollout_aborted")
}
