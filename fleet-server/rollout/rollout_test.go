package rollout

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kogge-fleet/kogge/fleet-server/store/pgtest"
	"github.com/kogge-fleet/kogge/protocol/artifact"
)

func TestGoodRolloutAdvancesInWaves(t *testing.T) {
	pgtest.Stores(t, func(t *testing.T, db *storeDB) {
		e := newEnv(t, db, 40, nil)
		a := e.publish("1.1.0")
		ctx := context.Background()
		r, err := e.s.Create(ctx, Spec{Artifact: a.ID, Soak: dur(10 * time.Minute)}, "dashboard:alice")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(r.Settings.Sizes, []int{1, 2, 10, 40}) || r.Total != 40 || r.State != Running {
			t.Fatalf("created: sizes %v, total %d, state %s", r.Settings.Sizes, r.Total, r.State)
		}
		if r.Settings.Window != Always {
			t.Errorf("window of a handheld artifact: %q", r.Settings.Window)
		}
		// Wave 1: one device gets the command and succeeds; the soak
		// holds the next wave back.
		e.cycle(2)
		r, _ = e.s.Rollout(ctx, r.ID)
		if r.Wave != 1 || r.Counts[DevSucceeded] != 1 || r.Counts[DevPending] != 39 {
			t.Fatalf("after wave 1 succeeded: wave %d, counts %v", r.Wave, r.Counts)
		}
		if r.Waves[0].StartedAt.IsZero() || r.Waves[0].ReadyAt.IsZero() || !r.Waves[0].DoneAt.IsZero() {
			t.Fatalf("wave 1 times: %+v", r.Waves[0])
		}
		e.clk.Add(9 * time.Minute)
		e.cycle(1)
		if r, _ = e.s.Rollout(ctx, r.ID); r.Wave != 1 {
			t.Fatalf("the next wave started before the soak ended: wave %d", r.Wave)
		}
		e.clk.Add(time.Minute)
		e.cycle(1)
		if r, _ = e.s.Rollout(ctx, r.ID); r.Wave != 2 {
			t.Fatalf("the next wave did not start after the soak: wave %d", r.Wave)
		}
		r = e.untilState(r.ID, Succeeded, 5*time.Minute)
		if r.Counts[DevSucceeded] != 40 || r.FinishedAt.IsZero() {
			t.Fatalf("finished: counts %v", r.Counts)
		}
		for _, w := range r.Waves {
			if w.StartedAt.IsZero() || w.ReadyAt.IsZero() || w.DoneAt.IsZero() || w.Succeeded != w.Devices {
				t.Errorf("wave %d: %+v", w.Index, w)
			}
		}
		for d, dev := range e.devices(r.ID) {
			if dev.FromVersion != "1.0.0" || dev.Running != "1.1.0" || e.running[d] != "1.1.0" {
				t.Errorf("%s: %+v", d, dev)
			}
		}
		if acts := e.auditActions(); !slices.Contains(acts, "artifact.upload") || !slices.Contains(acts, "rollout.create") {
			t.Errorf("audit: %v", acts)
		}
	})
}

func TestBadVersionAbortsInTheFirstWave(t *testing.T) {
	pgtest.Stores(t, func(t *testing.T, db *storeDB) {
		e := newEnv(t, db, 20, nil)
		for d := range e.running {
			e.behave[d] = "bad"
		}
		a := e.publish("1.1.0")
		ctx := context.Background()
		r, err := e.s.Create(ctx, Spec{Artifact: a.ID, Waves: []string{"5%", "50%", "100%"}, Soak: dur(0)}, "dashboard:alice")
		if err != nil {
			t.Fatal(err)
		}
		r = e.untilState(r.ID, Aborted, time.Second)
		if r.Wave != 1 || r.Counts[DevRolledBack] != 1 || r.Counts[DevCancelled] != 19 {
			t.Fatalf("aborted in wave %d with %v", r.Wave, r.Counts)
		}
		if !strings.Contains(r.Reason, "error threshold") || !strings.Contains(r.Reason, "self-test failed") {
			t.Errorf("reason %q", r.Reason)
		}
		for d, v := range e.running {
			if v != "1.0.0" {
				t.Errorf("%s runs %s", d, v)
			}
		}
		if acts := e.auditActions(); !slices.Contains(acts, "rollout.abort") {
			t.Errorf("the automatic abort is not audited: %v", acts)
		}
	})
}

func TestErrorThresholdRollsBackTheUpdatedDevices(t *testing.T) {
	pgtest.Stores(t, func(t *testing.T, db *storeDB) {
		e := newEnv(t, db, 20, nil)
		a := e.publish("1.1.0")
		ctx := context.Background()
		r, err := e.s.Create(ctx, Spec{Artifact: a.ID, Waves: []string{"10", "100%"}, ErrorThreshold: f64(0.1), Soak: dur(time.Hour)}, "alice")
		if err != nil {
			t.Fatal(err)
		}
		devs := e.devices(r.ID)
		var first []string
		for d, dev := range devs {
			if dev.Wave == 1 {
				first = append(first, d)
			}
		}
		slices.Sort(first)
		// Two of the ten fail: 20 % > 10 %.
		e.behave[first[0]], e.behave[first[1]] = "refuse", "bad"
		r = e.untilState(r.ID, Aborted, time.Second)
		if r.Counts[DevRolledBack] != 9 || r.Counts[DevFailed] != 1 || r.Counts[DevCancelled] != 10 {
			t.Fatalf("counts %v", r.Counts)
		}
		for d, v := range e.running {
			if v != "1.0.0" {
				t.Errorf("%s still runs %s", d, v)
			}
		}
		// The eight that had succeeded were told to go back to 1.0.0.
		rolled := 0
		for _, d := range e.devices(r.ID) {
			if d.State == DevRolledBack && d.Reason == "the rollout was aborted" {
				rolled++
			}
		}
		if rolled != 8 {
			t.Errorf("%d devices rolled back on the server's request, want 8", rolled)
		}
	})
}

func TestPauseResumeAbort(t *testing.T) {
	pgtest.Stores(t, func(t *testing.T, db *storeDB) {
		e := newEnv(t, db, 10, nil)
		a := e.publish("1.1.0")
		ctx := context.Background()
		r, err := e.s.Create(ctx, Spec{Artifact: a.ID, Waves: []string{"2", "100%"}, Soak: dur(0)}, "alice")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.s.Pause(ctx, r.ID, "dashboard:bob"); err != nil {
			t.Fatal(err)
		}
		if _, err := e.s.Pause(ctx, r.ID, "dashboard:bob"); !errors.Is(err, ErrConflict) {
			t.Errorf("pausing twice: %v", err)
		}
		if list, err := e.s.Rollouts(ctx, RolloutFilter{States: []string{Paused, Aborted}}); err != nil || len(list) != 1 || list[0].ID != r.ID {
			t.Errorf("paused rollouts: %v %v", list, err)
		}
		if list, err := e.s.Rollouts(ctx, RolloutFilter{States: []string{Running}}); err != nil || len(list) != 0 {
			t.Errorf("running rollouts: %v %v", list, err)
		}
		e.cycle(3)
		if r, _ = e.s.Rollout(ctx, r.ID); r.Counts[DevPending] != 10 || r.State != Paused {
			t.Fatalf("a paused rollout moved: %s %v", r.State, r.Counts)
		}
		if _, err := e.s.Resume(ctx, r.ID, "dashboard:bob"); err != nil {
			t.Fatal(err)
		}
		e.cycle(2)
		if r, _ = e.s.Rollout(ctx, r.ID); r.Counts[DevSucceeded] < 2 {
			t.Fatalf("resumed rollout: %v", r.Counts)
		}
		if _, err := e.s.Abort(ctx, r.ID, "wrong build", "dashboard:bob"); err != nil {
			t.Fatal(err)
		}
		r = e.untilState(r.ID, Aborted, time.Second)
		if r.Reason != "wrong build" || r.Counts[DevSucceeded] != 0 {
			t.Fatalf("aborted: %q %v", r.Reason, r.Counts)
		}
		if _, err := e.s.Resume(ctx, r.ID, "dashboard:bob"); !errors.Is(err, ErrConflict) {
			t.Errorf("resuming an aborted rollout: %v", err)
		}
		for d, v := range e.running {
			if v != "1.0.0" {
				t.Errorf("%s runs %s", d, v)
			}
		}
		acts := e.auditActions()
		for _, want := range []string{"rollout.pause", "rollout.resume", "rollout.abort"} {
			if !slices.Contains(acts, want) {
				t.Errorf("%s not audited: %v", want, acts)
			}
		}
	})
}

func TestKioskMaintenanceWindow(t *testing.T) {
	pgtest.Stores(t, func(t *testing.T, db *storeDB) {
		e := newEnv(t, db, 3, nil)
		e.clk.t = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC) // opening hours
		a := e.publish("1.1.0", "kiosk")
		ctx := context.Background()
		r, err := e.s.Create(ctx, Spec{Artifact: a.ID, Waves: []string{"100%"}, Soak: dur(0)}, "alice")
		if err != nil {
			t.Fatal(err)
		}
		if r.Settings.Window != "19:00-07:00" {
			t.Fatalf("window %q", r.Settings.Window)
		}
		e.cycle(2)
		for d, dev := range e.devices(r.ID) {
			if dev.State != DevWaiting || !strings.Contains(dev.Reason, "maintenance window") {
				t.Errorf("%s at 10:00: %s %q", d, dev.State, dev.Reason)
			}
		}
		e.clk.Add(9 * time.Hour) // 19:00
		e.untilState(r.ID, Succeeded, time.Minute)
	})
}

func TestDevicesWithUnsentCapturesWait(t *testing.T) {
	pgtest.Stores(t, func(t *testing.T, db *storeDB) {
		e := newEnv(t, db, 2, nil)
		e.beat("kiosk-000", 3)
		a := e.publish("1.1.0")
		ctx := context.Background()
		r, err := e.s.Create(ctx, Spec{Artifact: a.ID, Waves: []string{"100%"}, Soak: dur(0)}, "alice")
		if err != nil {
			t.Fatal(err)
		}
		e.cycle(2)
		devs := e.devices(r.ID)
		if d := devs["kiosk-000"]; d.State != DevWaiting || d.Reason != "3 captures not yet delivered" {
			t.Fatalf("device with captures: %+v", d)
		}
		if d := devs["kiosk-001"]; d.State != DevSucceeded {
			t.Fatalf("device without captures: %+v", d)
		}
		e.beat("kiosk-000", 0)
		e.untilState(r.ID, Succeeded, time.Second)

		// With update_with_unsent they do not wait.
		e.beat("kiosk-000", 5)
		b := e.publish("1.2.0")
		r, err = e.s.Create(ctx, Spec{Artifact: b.ID, Waves: []string{"100%"}, Soak: dur(0), UpdateWithUnsent: true}, "alice")
		if err != nil {
			t.Fatal(err)
		}
		e.untilState(r.ID, Succeeded, time.Second)
	})
}

func TestSoakNeedsHealthyDevices(t *testing.T) {
	pgtest.Stores(t, func(t *testing.T, db *storeDB) {
		e := newEnv(t, db, 4, nil)
		a := e.publish("1.1.0")
		ctx := context.Background()
		r, err := e.s.Create(ctx, Spec{Artifact: a.ID, Waves: []string{"2", "100%"}, Soak: dur(time.Minute), SuccessThreshold: f64(1)}, "alice")
		if err != nil {
			t.Fatal(err)
		}
		e.cycle(2)
		var updated string
		for d, dev := range e.devices(r.ID) {
			if dev.State == DevSucceeded {
				updated = d
			}
		}
		e.offline[updated] = true
		e.beat(updated, 0)
		e.clk.Add(2 * time.Minute)
		e.cycle(1)
		r, _ = e.s.Rollout(ctx, r.ID)
		if r.Wave != 1 {
			t.Fatalf("the next wave started with an updated device offline")
		}
		events, _ := e.s.Events(ctx, r.ID)
		if !slices.ContainsFunc(events, func(ev Event) bool { return ev.Kind == EventSoakReset && strings.Contains(ev.Message, updated) }) {
			t.Errorf("no soak reset naming %s: %+v", updated, events)
		}
		e.offline[updated] = false
		e.beat(updated, 0)
		e.untilState(r.ID, Succeeded, 30*time.Second)
	})
}

func TestRefusedCommandAndSilentDevices(t *testing.T) {
	pgtest.Stores(t, func(t *testing.T, db *storeDB) {
		e := newEnv(t, db, 2, func(o *Options) { o.DeviceTimeout = time.Hour })
		e.behave["kiosk-000"], e.behave["kiosk-001"] = "mute", "mute"
		a := e.publish("1.1.0")
		ctx := context.Background()
		r, err := e.s.Create(ctx, Spec{Artifact: a.ID, Waves: []string{"100%"}, ErrorThreshold: f64(0.9)}, "alice")
		if err != nil {
			t.Fatal(err)
		}
		e.s.Step(ctx)
		to, sent := e.b.take()
		// kiosk-000 does not know the command; kiosk-001 never answers.
		for i, c := range sent {
			if to[i] == "kiosk-000" {
				if err := e.db.Ingest(ctx, func(tx *storeIngestTx) error {
					_, err := tx.PutCommandResult(ctx, "kiosk-000", resultRejected(c.ID, e.clk.Now()), e.clk.Now().UnixMilli())
					return err
				}); err != nil {
					t.Fatal(err)
				}
			}
		}
		e.s.Step(ctx)
		if d := e.devices(r.ID)["kiosk-000"]; d.State != DevSent {
			t.Errorf("a rejected command is looked at only after a while: %+v", d)
		}
		e.clk.Add(commandCheckAfter)
		e.s.Step(ctx)
		devs := e.devices(r.ID)
		if d := devs["kiosk-000"]; d.State != DevFailed || !strings.Contains(d.Reason, "does not know") {
			t.Errorf("rejected command: %+v", d)
		}
		if d := devs["kiosk-001"]; d.State != DevSent {
			t.Errorf("silent device: %+v", d)
		}
		e.clk.Add(61 * time.Minute)
		e.s.Step(ctx)
		if d := e.devices(r.ID)["kiosk-001"]; d.State != DevFailed || !strings.Contains(d.Reason, "no report") {
			t.Errorf("silent device after the timeout: %+v", d)
		}
		r, _ = e.s.Rollout(ctx, r.ID)
		if r.State != Aborting && r.State != Aborted {
			t.Errorf("two failures of two with threshold 90%%: %s", r.State)
		}
	})
}

func TestReportsNeverGoBack(t *testing.T) {
	pgtest.Stores(t, func(t *testing.T, db *storeDB) {
		e := newEnv(t, db, 1, nil)
		e.behave["kiosk-000"] = "mute"
		a := e.publish("1.1.0")
		ctx := context.Background()
		r, err := e.s.Create(ctx, Spec{Artifact: a.ID, Waves: []string{"100%"}, Soak: dur(time.Hour)}, "alice")
		if err != nil {
			t.Fatal(err)
		}
		e.cycle(1)
		rep := func(seq uint64, state string) {
			t.Helper()
			if err := e.s.Report(ctx, "kiosk-000", artifact.Report{Rollout: r.ID, State: state, Version: "1.1.0", Running: "1.1.0", Seq: seq}); err != nil {
				t.Fatal(err)
			}
		}
		state := func() string { return e.devices(r.ID)["kiosk-000"].State }
		rep(5, artifact.ReportSucceeded)
		rep(4, artifact.ReportDownloading) // older: ignored
		rep(6, artifact.ReportDownloading) // newer, but no step back
		if st := state(); st != DevSucceeded {
			t.Fatalf("state %s, want succeeded", st)
		}
		if _, err := e.s.Abort(ctx, r.ID, "", "alice"); err != nil {
			t.Fatal(err)
		}
		e.s.Step(ctx)
		if st := state(); st != DevRollingBack {
			t.Fatalf("after the abort: %s", st)
		}
		rep(7, artifact.ReportSucceeded) // late; the rollback is still due
		if st := state(); st != DevRollingBack {
			t.Fatalf("a late success undid the rollback: %s", st)
		}
		rep(8, artifact.ReportRolledBack)
		e.s.Step(ctx)
		if r, _ = e.s.Rollout(ctx, r.ID); r.State != Aborted {
			t.Fatalf("state %s", r.State)
		}
		if err := e.s.Report(ctx, "kiosk-999", artifact.Report{Rollout: r.ID, State: "failed", Version: "1", Seq: 1}); !errors.Is(err, ErrNotFound) {
			t.Errorf("report of a device outside the rollout: %v", err)
		}
	})
}

func TestCreateRefusals(t *testing.T) {
	pgtest.Stores(t, func(t *testing.T, db *storeDB) {
		e := newEnv(t, db, 4, nil)
		a := e.publish("1.1.0")
		ctx := context.Background()
		for name, spec := range map[string]Spec{
			"no such group":     {Artifact: a.ID, Target: Target{Group: "sued"}},
			"unknown device":    {Artifact: a.ID, Target: Target{Devices: []string{"kiosk-000", "kiosk-999"}}},
			"nothing selected":  {Artifact: a.ID, Target: Target{Model: "Handheld"}},
			"bad wave":          {Artifact: a.ID, Waves: []string{"0"}},
			"bad threshold":     {Artifact: a.ID, SuccessThreshold: f64(0)},
			"bad error thresh.": {Artifact: a.ID, ErrorThreshold: f64(1)},
			"bad window":        {Artifact: a.ID, Window: "nachts"},
			"negative soak":     {Artifact: a.ID, Soak: dur(-time.Second)},
		} {
			if _, err := e.s.Create(ctx, spec, "alice"); !errors.Is(err, ErrInvalid) {
				t.Errorf("%s: %v, want ErrInvalid", name, err)
			}
		}
		if _, err := e.s.Create(ctx, Spec{Artifact: a.ID, Target: Target{Group: "nord"}}, "alice"); err != nil {
			t.Fatal(err)
		}
		if _, err := e.s.Create(ctx, Spec{Artifact: a.ID}, "alice"); !errors.Is(err, ErrConflict) {
			t.Errorf("devices in two rollouts: %v", err)
		}
		r, err := e.s.Create(ctx, Spec{Artifact: a.ID, Target: Target{Group: "mitte", Software: "1.0.0", Model: "kiosk"}}, "alice")
		if err != nil {
			t.Fatal(err)
		}
		if r.Total != 2 {
			t.Errorf("group mitte with the filter: %d devices", r.Total)
		}
		if err := e.s.DeleteArtifact(ctx, a.ID, "alice"); !errors.Is(err, ErrConflict) {
			t.Errorf("deleting an artifact in use: %v", err)
		}
	})
}

func TestUploadChecksTheArtifact(t *testing.T) {
	pgtest.Stores(t, func(t *testing.T, db *storeDB) {
		e := newEnv(t, db, 0, nil)
		ctx := context.Background()
		other, _ := artifact.GenerateKey()
		bin := bytes.Repeat([]byte("kogge"), 500_000) // 2.5 MB: three chunks
		m := mustDescribe(t, "2.0.0", []string{"kiosk"}, bin)
		good, _ := artifact.Sign(m, e.key)
		byOther, _ := artifact.Sign(m, other)
		tampered := bytes.Clone(bin)
		tampered[ChunkSize+5] ^= 1
		for name, c := range map[string]struct {
			signed []byte
			bin    []byte
			want   error
		}{
			"unknown key":     {byOther, bin, ErrRefused},
			"tampered binary": {good, tampered, ErrRefused},
			"short binary":    {good, bin[:len(bin)-1], ErrRefused},
			"long binary":     {good, append(bytes.Clone(bin), 0), ErrRefused},
			"not a manifest":  {[]byte("{}"), bin, ErrRefused},
		} {
			if _, err := e.s.Upload(ctx, c.signed, bytes.NewReader(c.bin), "alice"); !errors.Is(err, c.want) {
				t.Errorf("%s: %v, want %v", name, err, c.want)
			}
		}
		if list, _ := e.s.Artifacts(ctx); len(list) != 0 {
			t.Fatalf("refused uploads are listed: %v", list)
		}
		a, err := e.s.Upload(ctx, good, bytes.NewReader(bin), "alice")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.s.Upload(ctx, good, bytes.NewReader(bin), "alice"); !errors.Is(err, ErrExists) {
			t.Errorf("the same artifact again: %v", err)
		}
		list, _ := e.s.Artifacts(ctx)
		if len(list) != 1 || list[0].ID != a.ID || list[0].SHA256 != m.SHA256 || len(list[0].KeyIDs) != 1 {
			t.Fatalf("listed: %+v", list)
		}
		r := e.s.openBinary(ctx, a)
		var got bytes.Buffer
		if _, err := got.ReadFrom(r); err != nil || !bytes.Equal(got.Bytes(), bin) {
			t.Fatalf("read back %d bytes, %v", got.Len(), err)
		}
		if err := e.s.DeleteArtifact(ctx, a.ID, "alice"); err != nil {
			t.Fatal(err)
		}
		if _, err := e.s.Artifact(ctx, a.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("deleted artifact: %v", err)
		}
		// Without trusted keys every upload is refused.
		noKeys, err := New(db, e.cmds, e.audit, Options{Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := noKeys.Upload(ctx, good, bytes.NewReader(bin), "alice"); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "rollout.keys") {
			t.Errorf("upload without keys: %v", err)
		}
	})
}

func TestTargetNamedDevices(t *testing.T) {
	pgtest.Stores(t, func(t *testing.T, db *storeDB) {
		e := newEnv(t, db, 5, nil)
		a := e.publish("1.1.0")
		r, err := e.s.Create(context.Background(), Spec{Artifact: a.ID, Target: Target{Devices: []string{"kiosk-003", "kiosk-001"}}}, "alice")
		if err != nil {
			t.Fatal(err)
		}
		devs := e.devices(r.ID)
		if r.Total != 2 || len(devs) != 2 || devs["kiosk-001"].Device == "" || devs["kiosk-003"].Device == "" {
			t.Fatalf("named devices: total %d, %v", r.Total, devs)
		}
	})
}

// eagerCommands answers an update command before Send returns, as a fast
// device on a fast link can.
type eagerCommands struct {
	Commands
	s *Service
}

func (c eagerCommands) Send(ctx context.Context, device, name string, args map[string]string, ttl time.Duration) (storeCommand, error) {
	cmd, err := c.Commands.Send(ctx, device, name, args, ttl)
	if err == nil {
		err = c.s.Report(ctx, device, artifact.Report{Rollout: uuidMust(args[artifact.ArgRollout]), State: artifact.ReportDownloading,
			Version: args[artifact.ArgVersion], Running: "1.0.0", Seq: 1})
	}
	return cmd, err
}

func TestReportBeforeSendReturns(t *testing.T) {
	pgtest.Stores(t, func(t *testing.T, db *storeDB) {
		e := newEnv(t, db, 1, nil)
		e.s.cmds = eagerCommands{Commands: e.cmds, s: e.s}
		a := e.publish("1.1.0")
		r, err := e.s.Create(context.Background(), Spec{Artifact: a.ID, Waves: []string{"100%"}}, "alice")
		if err != nil {
			t.Fatal(err)
		}
		e.s.Step(context.Background())
		d := e.devices(r.ID)["kiosk-000"]
		if d.State != DevDownloading || d.FromVersion != "1.0.0" || d.StartedAt.IsZero() || d.commandID == "" {
			t.Fatalf("device: %+v", d)
		}
	})
}

func TestAllowDowngradeNamesTheVersion(t *testing.T) {
	pgtest.Stores(t, func(t *testing.T, db *storeDB) {
		e := newEnv(t, db, 1, nil)
		a := e.publish("0.9.0")
		ctx := context.Background()
		if _, err := e.s.Create(ctx, Spec{Artifact: a.ID, AllowDowngrade: true}, "alice"); err != nil {
			t.Fatal(err)
		}
		e.s.Step(ctx)
		_, sent := e.b.take()
		if len(sent) != 1 || sent[0].Name != artifact.CommandUpdate || sent[0].Args[artifact.ArgAllowDowngrade] != "0.9.0" ||
			sent[0].Args[artifact.ArgVersion] != "0.9.0" || sent[0].Args[artifact.ArgArtifact] != a.ID.String() {
			t.Fatalf("commands: %+v", sent)
		}
	})
}
