package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/kogge-fleet/kogge/fleet-server/api/client"
)

// rolloutCmd runs "koggectl rollout create|list|show|devices|pause|resume|abort|watch".
func rolloutCmd(args []string, getenv env, stdin io.Reader, stdout, stderr io.Writer) error {
	simple := func(name string, fn func(c *adminCmd, id string) error) func([]string) error {
		return func(args []string) error {
			fs, af := newAdminFlagSet("rollout "+name, stderr, getenv)
			pos, err := parseInterleaved(fs, args)
			if err != nil {
				return err
			}
			if err := wantArgs(pos, 1, "the rollout's id"); err != nil {
				return err
			}
			return fn(&adminCmd{flags: af, getenv: getenv, stdin: stdin, stdout: stdout}, pos[0])
		}
	}
	return subcommand("rollout", args, map[string]func([]string) error{
		"create": func(args []string) error {
			fs, af := newAdminFlagSet("rollout create", stderr, getenv)
			var req client.RolloutRequest
			art := fs.String("artifact", "", "the artifact to roll out (its id)")
			fs.StringVar(&req.Name, "name", "", "a name for the rollout (default: the artifact's name and version)")
			fs.StringVar(&req.Target.Group, "group", "", "the devices of this group (default: all groups)")
			devices := fs.String("devices", "", "only these devices (comma-separated)")
			fs.StringVar(&req.Target.Model, "model", "", "only devices whose model contains this")
			fs.StringVar(&req.Target.Software, "software", "", "only devices that run exactly this version")
			waves := fs.String("waves", "", "cumulative wave sizes, e.g. 1,5%,25%,100% (the default)")
			success := fs.String("success", "", "share of a wave that must succeed before its soak, 0 to 1 (default 0.95)")
			errs := fs.String("errors", "", "share of failed devices that aborts the rollout, 0 to 1 (default 0.05; 0: the first failure)")
			fs.StringVar(&req.Soak, "soak", "", "how long a ready wave must stay healthy, e.g. 10m (the default)")
			fs.StringVar(&req.Window, "window", "", "daily maintenance window HH:MM-HH:MM or always (default: outside opening hours for kiosks)")
			fs.BoolVar(&req.UpdateWithUnsent, "update-with-unsent", false, "update devices that still hold captures not yet delivered")
			fs.BoolVar(&req.AllowDowngrade, "allow-downgrade", false, "the artifact may be older than what devices run (an explicit rollback version)")
			pos, err := parseInterleaved(fs, args)
			if err != nil {
				return err
			}
			if err := wantArgs(pos, 0, "no arguments (the artifact goes in --artifact)"); err != nil {
				return err
			}
			if req.Artifact, err = parseID(*art, "--artifact"); err != nil {
				return err
			}
			req.Target.Devices = splitCommas(*devices)
			req.Waves = splitCommas(*waves)
			for _, f := range []struct {
				flag string
				s    string
				dst  **float64
			}{{"--success", *success, &req.SuccessThreshold}, {"--errors", *errs, &req.ErrorThreshold}} {
				if f.s == "" {
					continue
				}
				v, err := strconv.ParseFloat(f.s, 64)
				if err != nil {
					return usageErrorf("%s %q is not a share from 0 to 1", f.flag, f.s)
				}
				*f.dst = &v
			}
			c := &adminCmd{flags: af, getenv: getenv, stdin: stdin, stdout: stdout}
			return c.rolloutCreate(req)
		},
		"list": func(args []string) error {
			fs, af := newAdminFlagSet("rollout list", stderr, getenv)
			state := fs.String("state", "", "only rollouts in these states (running, paused, aborting, aborted, succeeded; comma-separated)")
			limit := fs.Int("limit", 100, "at most this many")
			pos, err := parseInterleaved(fs, args)
			if err != nil {
				return err
			}
			if err := wantArgs(pos, 0, "no arguments"); err != nil {
				return err
			}
			c := &adminCmd{flags: af, getenv: getenv, stdin: stdin, stdout: stdout}
			return c.rolloutList(splitCommas(*state), *limit)
		},
		"show": simple("show", func(c *adminCmd, id string) error { return c.rolloutShow(id) }),
		"devices": func(args []string) error {
			fs, af := newAdminFlagSet("rollout devices", stderr, getenv)
			state := fs.String("state", "", "only devices in these states (comma-separated)")
			pos, err := parseInterleaved(fs, args)
			if err != nil {
				return err
			}
			if err := wantArgs(pos, 1, "the rollout's id"); err != nil {
				return err
			}
			c := &adminCmd{flags: af, getenv: getenv, stdin: stdin, stdout: stdout}
			return c.rolloutDevices(pos[0], splitCommas(*state))
		},
		"pause":  simple("pause", func(c *adminCmd, id string) error { return c.rolloutAction(id, "pause", "") }),
		"resume": simple("resume", func(c *adminCmd, id string) error { return c.rolloutAction(id, "resume", "") }),
		"abort": func(args []string) error {
			fs, af := newAdminFlagSet("rollout abort", stderr, getenv)
			reason := fs.String("reason", "", "why (for the audit log and the rollout's page)")
			pos, err := parseInterleaved(fs, args)
			if err != nil {
				return err
			}
			if err := wantArgs(pos, 1, "the rollout's id"); err != nil {
				return err
			}
			c := &adminCmd{flags: af, getenv: getenv, stdin: stdin, stdout: stdout}
			return c.rolloutAction(pos[0], "abort", *reason)
		},
		"watch": func(args []string) error {
			fs, af := newAdminFlagSet("rollout watch", stderr, getenv)
			every := fs.Duration("every", 2*time.Second, "how often to look")
			pos, err := parseInterleaved(fs, args)
			if err != nil {
				return err
			}
			if err := wantArgs(pos, 1, "the rollout's id"); err != nil {
				return err
			}
			if *every < 100*time.Millisecond {
				return usageErrorf("--every %v: at least 100ms", *every)
			}
			c := &adminCmd{flags: af, getenv: getenv, stdin: stdin, stdout: stdout}
			return c.rolloutWatch(pos[0], *every)
		},
	})
}

func (c *adminCmd) rolloutCreate(req client.RolloutRequest) error {
	cl, err := c.client()
	if err != nil {
		return err
	}
	ctx, cancel := c.context()
	defer cancel()
	r, err := cl.CreateRollout(ctx, req)
	if err != nil {
		return err
	}
	if c.flags.json {
		return c.printJSON(r)
	}
	_, err = fmt.Fprintf(c.stdout, "Rollout %s started: %s %s to %d devices in waves of %s (soak %s, window %s).\n",
		r.ID, r.Artifact.Name, r.Artifact.Version, r.Total, intsText(r.Settings.Sizes), r.Settings.Soak, r.Settings.Window)
	return err
}

func intsText(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ", ")
}

// progressText sums a rollout's counts up for one line.
func progressText(r client.Rollout) string {
	var parts []string
	for _, st := range []string{"succeeded", "sent", "downloading", "installing", "waiting", "pending", "failed", "rolled-back",
		"rolling-back", "cancelled", "skipped"} {
		if n := r.Counts[st]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, st))
		}
	}
	return strings.Join(parts, ", ")
}

func (c *adminCmd) rolloutList(states []string, limit int) error {
	cl, err := c.client()
	if err != nil {
		return err
	}
	ctx, cancel := c.context()
	defer cancel()
	list, err := cl.Rollouts(ctx, states, limit)
	if err != nil {
		return err
	}
	if c.flags.json {
		if list == nil {
			list = []client.Rollout{}
		}
		return c.printJSON(map[string]any{"rollouts": list})
	}
	now := time.Now()
	t := newTable(c.stdout, "ROLLOUT", "VERSION", "STATE", "WAVE", "DEVICES", "PROGRESS", "CREATED")
	for _, r := range list {
		t.row(r.ID.String(), r.Artifact.Version, r.State, fmt.Sprintf("%d/%d", r.Wave, len(r.Waves)), strconv.Itoa(r.Total),
			progressText(r), when(r.CreatedAt, now))
	}
	return t.flush()
}

func (c *adminCmd) rolloutShow(s string) error {
	id, err := parseID(s, "rollout")
	if err != nil {
		return err
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	ctx, cancel := c.context()
	defer cancel()
	r, err := cl.Rollout(ctx, id)
	if err != nil {
		return err
	}
	if c.flags.json {
		return c.printJSON(r)
	}
	now := time.Now()
	target := r.Target.Group
	if target == "" {
		target = "all groups"
	}
	if len(r.Target.Devices) > 0 {
		target += ", devices " + strings.Join(r.Target.Devices, ", ")
	}
	if r.Target.Model != "" {
		target += ", model " + r.Target.Model
	}
	if r.Target.Software != "" {
		target += ", running " + r.Target.Software
	}
	if err := fields(c.stdout, "Rollout", r.ID.String(), "Name", r.Name,
		"Artifact", fmt.Sprintf("%s %s for %s (%s)", r.Artifact.Name, r.Artifact.Version, r.Artifact.Platform, r.Artifact.ID),
		"Target", target, "State", r.State, "Reason", r.Reason, "Wave", fmt.Sprintf("%d of %d", r.Wave, len(r.Waves)),
		"Devices", fmt.Sprintf("%d: %s", r.Total, progressText(r)),
		"Thresholds", fmt.Sprintf("success %.0f%%, errors %.0f%%", 100*r.Settings.SuccessThreshold, 100*r.Settings.ErrorThreshold),
		"Soak", r.Settings.Soak, "Window", r.Settings.Window,
		"Created", when(r.CreatedAt, now)+" by "+r.CreatedBy, "Finished", when(r.FinishedAt, now)); err != nil {
		return err
	}
	fmt.Fprintln(c.stdout)
	t := newTable(c.stdout, "WAVE", "DEVICES", "SUCCEEDED", "FAILED", "IN PROGRESS", "STARTED", "READY AFTER", "DONE AFTER")
	for _, w := range r.Waves {
		t.row(strconv.Itoa(w.Index), strconv.Itoa(w.Devices), strconv.Itoa(w.Succeeded), strconv.Itoa(w.Failed), strconv.Itoa(w.InProgress),
			when(w.StartedAt, now), after(w.StartedAt, w.ReadyAt), after(w.StartedAt, w.DoneAt))
	}
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintln(c.stdout)
	t = newTable(c.stdout, "TIME", "WAVE", "EVENT", "MESSAGE")
	for _, e := range r.Events {
		t.row(e.At.UTC().Format("2006-01-02 15:04:05.000Z"), strconv.Itoa(e.Wave), e.Kind, e.Message)
	}
	return t.flush()
}

func after(from, to time.Time) string {
	if from.IsZero() || to.IsZero() {
		return ""
	}
	return to.Sub(from).Round(time.Millisecond).String()
}

func (c *adminCmd) rolloutDevices(s string, states []string) error {
	id, err := parseID(s, "rollout")
	if err != nil {
		return err
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	ctx, cancel := c.context()
	defer cancel()
	devs, err := cl.RolloutDevices(ctx, id, states...)
	if err != nil {
		return err
	}
	if c.flags.json {
		if devs == nil {
			devs = []client.RolloutDevice{}
		}
		return c.printJSON(map[string]any{"devices": devs})
	}
	now := time.Now()
	t := newTable(c.stdout, "DEVICE", "WAVE", "STATE", "FROM", "RUNNING", "UPDATED", "REASON")
	for _, d := range devs {
		t.row(d.Device, strconv.Itoa(d.Wave), d.State, d.FromVersion, d.Running, when(d.UpdatedAt, now), d.Reason)
	}
	return t.flush()
}

func (c *adminCmd) rolloutAction(s, action, reason string) error {
	id, err := parseID(s, "rollout")
	if err != nil {
		return err
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	ctx, cancel := c.context()
	defer cancel()
	var r client.Rollout
	switch action {
	case "pause":
		r, err = cl.PauseRollout(ctx, id)
	case "resume":
		r, err = cl.ResumeRollout(ctx, id)
	default:
		r, err = cl.AbortRollout(ctx, id, reason)
	}
	if err != nil {
		return err
	}
	if c.flags.json {
		return c.printJSON(r)
	}
	_, err = fmt.Fprintf(c.stdout, "Rollout %s is %s.\n", r.ID, r.State)
	return err
}

// rolloutWatch prints a line whenever the rollout changes, until it ends.
func (c *adminCmd) rolloutWatch(s string, every time.Duration) error {
	id, err := parseID(s, "rollout")
	if err != nil {
		return err
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	last := ""
	for {
		ctx, cancel := c.context()
		r, err := cl.Rollout(ctx, id)
		cancel()
		if err != nil {
			return err
		}
		line := fmt.Sprintf("%s wave %d/%d: %s", r.State, r.Wave, len(r.Waves), progressText(r))
		if line != last {
			fmt.Fprintf(c.stdout, "%s  %s\n", time.Now().UTC().Format("15:04:05"), line)
			last = line
		}
		if r.Finished() {
			if r.Reason != "" {
				fmt.Fprintf(c.stdout, "reason: %s\n", r.Reason)
			}
			return nil
		}
		time.Sleep(every) // the pace of a person watching, not a wait for a condition
	}
}
