package update

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/protocol/artifact"
)

func signingKey(t *testing.T) (ed25519.PrivateKey, artifact.Keyring) {
	t.Helper()
	k, err := artifact.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k, artifact.NewKeyring(k.Public().(ed25519.PublicKey))
}

func binaryOf(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) ^ seed
	}
	return b
}

func TestUpdateInstallsAndKeepsAHealthyVersion(t *testing.T) {
	srv := newFakeServer(t)
	key, keys := signingKey(t)
	bin := binaryOf(200_000, 1)
	art := srv.publish(key, "1.1.0", "linux/amd64", bin)
	d := newDevice(t, srv, keys, nil)
	d.start()
	if d.slot.Name != SlotA || d.slot.Version != "1.0.0" || d.slot.Trial {
		t.Fatalf("first start: %+v", d.slot)
	}
	rollout := uuid.New()
	if out := d.update(rollout, art, "1.1.0"); !strings.Contains(out, "accepted") {
		t.Fatalf("update answered %q", out)
	}
	// The same command again (the server resends) does nothing twice.
	if out := d.update(rollout, art, "1.1.0"); !strings.Contains(out, "in progress") && !strings.Contains(out, "installing") {
		t.Logf("repeated command: %q", out)
	}
	s := d.restarted()
	if s.Name != SlotB || s.Version != "1.1.0" {
		t.Fatalf("restarted into %+v", s)
	}
	if !d.slot.Trial || d.slot.Boots != 1 || d.slot.Version != "1.1.0" {
		t.Fatalf("after the switch: %+v", d.slot)
	}
	got, err := os.ReadFile(filepath.Join(d.dir, slotsDir, SlotB, BinaryFile))
	if err != nil || !bytes.Equal(got, bin) {
		t.Fatalf("slot b holds %d bytes (%v), want the artifact", len(got), err)
	}
	rep := srv.waitState(rollout, artifact.ReportSucceeded)
	if rep.Running != "1.1.0" {
		t.Errorf("succeeded report runs %q", rep.Running)
	}
	if want := []string{"downloading", "installing", "succeeded"}; !slices.Equal(srv.states(rollout), want) {
		t.Errorf("reports %q, want %q", srv.states(rollout), want)
	}
	if st := d.stateFile(); st.Trial != nil || st.Active != SlotB || st.Slots[SlotA].Version != "1.0.0" {
		t.Errorf("state after the health check: %+v", st)
	}
	// A later start runs the kept version, not on trial.
	d.stop()
	d.start()
	if d.slot.Version != "1.1.0" || d.slot.Trial {
		t.Errorf("next start: %+v", d.slot)
	}
	// The command repeated after all that answers from memory.
	if out := d.update(rollout, art, "1.1.0"); !strings.Contains(out, "succeeded already") {
		t.Errorf("repeated command after success: %q", out)
	}
}

func TestFailedHealthCheckSwitchesBack(t *testing.T) {
	srv := newFakeServer(t)
	key, keys := signingKey(t)
	art := srv.publish(key, "1.1.0", "linux/amd64", binaryOf(5000, 2))
	d := newDevice(t, srv, keys, func(o *Options) { o.HealthWindow = 200 * time.Millisecond })
	d.start()
	rollout := uuid.New()
	d.update(rollout, art, "1.1.0")
	d.failSelfTest(errors.New("camera: no frames"))
	d.restarted() // into 1.1.0, which fails its self-test
	s := d.restarted()
	if s.Name != SlotA || s.Version != "1.0.0" {
		t.Fatalf("switched back into %+v", s)
	}
	rep := srv.waitState(rollout, artifact.ReportRolledBack)
	if !strings.Contains(rep.Reason, "camera: no frames") || rep.Running != "1.0.0" {
		t.Errorf("rolled-back report: %+v", rep)
	}
	if d.slot.Trial || d.slot.Version != "1.0.0" {
		t.Errorf("after the switch back: %+v", d.slot)
	}
}

func TestHealthCheckNeedsSessionAndHeartbeat(t *testing.T) {
	srv := newFakeServer(t)
	key, keys := signingKey(t)
	art := srv.publish(key, "1.1.0", "linux/amd64", binaryOf(5000, 3))
	d := newDevice(t, srv, keys, func(o *Options) { o.HealthWindow = 200 * time.Millisecond })
	d.start()
	rollout := uuid.New()
	d.update(rollout, art, "1.1.0")
	// The next incarnation never beats.
	select {
	case <-d.restarts:
	case <-time.After(20 * time.Second):
		t.Fatal("no restart")
	}
	d.stop()
	slot, err := Boot(d.dir, d.factory, BootOptions{})
	if err != nil {
		t.Fatal(err)
	}
	u, err := New(d.dir, d.opts)
	if err != nil {
		t.Fatal(err)
	}
	h := &fakeHost{}
	h.connected.Store(true) // connected, but no heartbeat goes out
	if err := u.Bind(h.host()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- u.Run(ctx) }()
	defer func() { cancel(); <-done }()
	if slot.Version != "1.1.0" {
		t.Fatalf("booted %+v", slot)
	}
	select {
	case s := <-d.restarts:
		if s.Version != "1.0.0" {
			t.Fatalf("restart into %+v", s)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no switch back")
	}
	rep := srv.waitState(rollout, artifact.ReportRolledBack)
	if !strings.Contains(rep.Reason, "no heartbeat") {
		t.Errorf("reason %q", rep.Reason)
	}
}

func TestCrashLoopSwitchesBackAtBoot(t *testing.T) {
	srv := newFakeServer(t)
	key, keys := signingKey(t)
	art := srv.publish(key, "2.0.0", "linux/amd64", binaryOf(5000, 4))
	d := newDevice(t, srv, keys, nil)
	d.start()
	rollout := uuid.New()
	d.update(rollout, art, "2.0.0")
	select {
	case <-d.restarts:
	case <-time.After(20 * time.Second):
		t.Fatal("no restart")
	}
	d.stop()
	// 2.0.0 crashes before its health check, three times.
	for i := 1; i <= 3; i++ {
		s, err := Boot(d.dir, d.factory, BootOptions{MaxBoots: 3})
		if err != nil {
			t.Fatal(err)
		}
		if s.Version != "2.0.0" || !s.Trial || s.Boots != i {
			t.Fatalf("start %d: %+v", i, s)
		}
	}
	s, err := Boot(d.dir, d.factory, BootOptions{MaxBoots: 3})
	if err != nil {
		t.Fatal(err)
	}
	if s.Version != "1.0.0" || s.Trial {
		t.Fatalf("after the crash loop: %+v", s)
	}
	// The next incarnation sends the report the boot queued.
	d.start()
	rep := srv.waitState(rollout, artifact.ReportRolledBack)
	if !strings.Contains(rep.Reason, "crash loop") || rep.Running != "1.0.0" {
		t.Errorf("report %+v", rep)
	}
}

func TestRefusals(t *testing.T) {
	key, keys := signingKey(t)
	other, _ := signingKey(t)
	for _, c := range []struct {
		name    string
		publish func(srv *fakeServer) (uuid.UUID, string)
		edit    func(*Options)
		want    string
	}{
		{"tampered binary", func(srv *fakeServer) (uuid.UUID, string) {
			id := srv.publish(key, "1.1.0", "linux/amd64", binaryOf(70_000, 5))
			srv.mu.Lock()
			srv.binaries[id] = bytes.Clone(srv.binaries[id])
			srv.binaries[id][40_000] ^= 0xff
			srv.mu.Unlock()
			return id, "1.1.0"
		}, nil, "does not match its manifest"},
		{"tampered manifest", func(srv *fakeServer) (uuid.UUID, string) {
			id := srv.publish(key, "1.1.0", "linux/amd64", binaryOf(1000, 5))
			srv.mu.Lock()
			s, _ := artifact.Decode(srv.manifests[id])
			s.Raw = bytes.Replace(s.Raw, []byte(`"size":1000`), []byte(`"size":999`), 1)
			srv.manifests[id], _ = s.Encode()
			srv.mu.Unlock()
			return id, "1.1.0"
		}, nil, "signature is wrong"},
		{"unknown key", func(srv *fakeServer) (uuid.UUID, string) {
			return srv.publish(other, "1.1.0", "linux/amd64", binaryOf(1000, 6)), "1.1.0"
		}, nil, "not signed by a trusted key"},
		{"unsigned", func(srv *fakeServer) (uuid.UUID, string) {
			id := srv.publish(key, "1.1.0", "linux/amd64", binaryOf(1000, 6))
			srv.mu.Lock()
			s, _ := artifact.Decode(srv.manifests[id])
			s.Signatures = nil
			srv.manifests[id], _ = s.Encode()
			srv.mu.Unlock()
			return id, "1.1.0"
		}, nil, "not signed"},
		{"wrong platform", func(srv *fakeServer) (uuid.UUID, string) {
			return srv.publish(key, "1.1.0", "linux/arm64", binaryOf(1000, 7)), "1.1.0"
		}, nil, "another platform"},
		{"older version", func(srv *fakeServer) (uuid.UUID, string) {
			return srv.publish(key, "0.9.0", "linux/amd64", binaryOf(1000, 8)), "0.9.0"
		}, nil, "older than the running version"},
		{"disk full", func(srv *fakeServer) (uuid.UUID, string) {
			return srv.publish(key, "1.1.0", "linux/amd64", binaryOf(100_000, 9)), "1.1.0"
		}, func(o *Options) { o.DiskFree = func(string) (int64, error) { return 50_000, nil } }, "not enough disk space"},
		{"missing artifact", func(srv *fakeServer) (uuid.UUID, string) { return uuid.New(), "1.1.0" }, nil, "404"},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := newFakeServer(t)
			id, version := c.publish(srv)
			d := newDevice(t, srv, keys, c.edit)
			d.start()
			rollout := uuid.New()
			d.update(rollout, id, version)
			rep := srv.waitState(rollout, artifact.ReportFailed)
			if !strings.Contains(rep.Reason, c.want) {
				t.Errorf("reason %q, want it to say %q", rep.Reason, c.want)
			}
			if st := d.stateFile(); st.Active != SlotA || st.Job != nil || st.Trial != nil {
				t.Errorf("state after the refusal: %+v", st)
			}
			select {
			case s := <-d.restarts:
				t.Errorf("restarted into %+v", s)
			default:
			}
		})
	}
}

func TestAllowedDowngrade(t *testing.T) {
	srv := newFakeServer(t)
	key, keys := signingKey(t)
	art := srv.publish(key, "0.9.0", "linux/amd64", binaryOf(1000, 10))
	d := newDevice(t, srv, keys, nil)
	d.start()
	rollout := uuid.New()
	if _, err := d.host.run(artifact.CommandUpdate, map[string]string{
		artifact.ArgRollout: rollout.String(), artifact.ArgArtifact: art.String(), artifact.ArgVersion: "0.9.0",
		artifact.ArgAllowDowngrade: "0.9.0",
	}); err != nil {
		t.Fatal(err)
	}
	if s := d.restarted(); s.Version != "0.9.0" {
		t.Fatalf("restarted into %+v", s)
	}
	srv.waitState(rollout, artifact.ReportSucceeded)
}

func TestDownloadResumesAfterACut(t *testing.T) {
	srv := newFakeServer(t)
	key, keys := signingKey(t)
	bin := binaryOf(1<<20, 11)
	art := srv.publish(key, "1.1.0", "linux/amd64", bin)
	srv.mu.Lock()
	srv.cutAt = int64(len(bin) / 2)
	srv.mu.Unlock()
	d := newDevice(t, srv, keys, nil)
	d.start()
	rollout := uuid.New()
	d.update(rollout, art, "1.1.0")
	d.restarted()
	srv.waitState(rollout, artifact.ReportSucceeded)
	srv.mu.Lock()
	ranges, served := slices.Clone(srv.ranges), srv.served
	srv.mu.Unlock()
	if len(ranges) != 2 || ranges[0] != "" || !strings.HasPrefix(ranges[1], "bytes=") {
		t.Fatalf("requests: %q, want a full one and a resumed one", ranges)
	}
	if ranges[1] != "bytes=524288-" {
		t.Errorf("resumed with %q, want bytes=524288-", ranges[1])
	}
	if served != int64(len(bin)) {
		t.Errorf("the server sent %d bytes for a binary of %d: the resume fetched again what it had", served, len(bin))
	}
	got, err := os.ReadFile(filepath.Join(d.dir, slotsDir, SlotB, BinaryFile))
	if err != nil || !bytes.Equal(got, bin) {
		t.Fatalf("installed binary differs (%v)", err)
	}
}

func TestDownloadResumesAfterARestart(t *testing.T) {
	srv := newFakeServer(t)
	key, keys := signingKey(t)
	bin := binaryOf(300_000, 12)
	art := srv.publish(key, "1.1.0", "linux/amd64", bin)
	m, err := artifact.Describe(artifact.Manifest{Name: "kogge-kiosk", Version: "1.1.0", Apps: []string{"kiosk"}, Platform: "linux/amd64",
		Created: time.Now()}, bytes.NewReader(bin))
	if err != nil {
		t.Fatal(err)
	}
	stall := make(chan struct{})
	srv.mu.Lock()
	srv.stall = stall
	srv.mu.Unlock()
	d := newDevice(t, srv, keys, nil)
	d.start()
	rollout := uuid.New()
	d.update(rollout, art, "1.1.0")
	waitFor(t, "the download request", func() bool {
		srv.mu.Lock()
		defer srv.mu.Unlock()
		return len(srv.ranges) == 1
	})
	// The device is switched off mid-download with a third of the binary
	// on disk; the job and the part survive.
	d.stop()
	part := filepath.Join(d.dir, downloadDir, m.SHA256+".part")
	if err := os.WriteFile(part, bin[:100_000], 0o600); err != nil {
		t.Fatal(err)
	}
	srv.mu.Lock()
	srv.stall = nil
	srv.mu.Unlock()
	close(stall)
	d.start()
	d.restarted()
	srv.waitState(rollout, artifact.ReportSucceeded)
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if last := srv.ranges[len(srv.ranges)-1]; last != "bytes=100000-" {
		t.Errorf("the restarted device asked for %q, want bytes=100000-", last)
	}
}

func TestServerRollback(t *testing.T) {
	srv := newFakeServer(t)
	key, keys := signingKey(t)
	art := srv.publish(key, "1.1.0", "linux/amd64", binaryOf(5000, 13))
	d := newDevice(t, srv, keys, nil)
	d.start()
	rollout := uuid.New()
	d.update(rollout, art, "1.1.0")
	d.restarted()
	srv.waitState(rollout, artifact.ReportSucceeded)
	out, err := d.host.run(artifact.CommandRollback, map[string]string{
		artifact.ArgRollout: rollout.String(), artifact.ArgVersion: "1.1.0", artifact.ArgTo: "1.0.0"})
	if err != nil || !strings.Contains(out, "rolling back") {
		t.Fatalf("rollback answered %q, %v", out, err)
	}
	if s := d.restarted(); s.Version != "1.0.0" || s.Name != SlotA {
		t.Fatalf("restarted into %+v", s)
	}
	rep := srv.waitState(rollout, artifact.ReportRolledBack)
	if rep.Running != "1.0.0" {
		t.Errorf("report %+v", rep)
	}
	// Again: nothing to do, and no restart.
	out, err = d.host.run(artifact.CommandRollback, map[string]string{
		artifact.ArgRollout: rollout.String(), artifact.ArgVersion: "1.1.0", artifact.ArgTo: "1.0.0"})
	if err != nil || !strings.Contains(out, "nothing to roll back") {
		t.Fatalf("second rollback answered %q, %v", out, err)
	}
}

func TestRollbackCancelsADownload(t *testing.T) {
	srv := newFakeServer(t)
	key, keys := signingKey(t)
	art := srv.publish(key, "1.1.0", "linux/amd64", binaryOf(5000, 14))
	stall := make(chan struct{})
	defer close(stall)
	srv.mu.Lock()
	srv.stall = stall
	srv.mu.Unlock()
	d := newDevice(t, srv, keys, nil)
	d.start()
	rollout := uuid.New()
	d.update(rollout, art, "1.1.0")
	waitFor(t, "the download request", func() bool {
		srv.mu.Lock()
		defer srv.mu.Unlock()
		return len(srv.ranges) == 1
	})
	out, err := d.host.run(artifact.CommandRollback, map[string]string{
		artifact.ArgRollout: rollout.String(), artifact.ArgVersion: "1.1.0", artifact.ArgTo: "1.0.0"})
	if err != nil || !strings.Contains(out, "cancelled") {
		t.Fatalf("rollback answered %q, %v", out, err)
	}
	srv.waitState(rollout, artifact.ReportCancelled)
	waitFor(t, "the job to end", func() bool { return d.u.Status().Job == uuid.Nil })
	if st := d.stateFile(); st.Active != SlotA || st.Job != nil {
		t.Errorf("state: %+v", st)
	}
	select {
	case s := <-d.restarts:
		t.Errorf("restarted into %+v", s)
	default:
	}
}

func TestBusyAndBadCommands(t *testing.T) {
	srv := newFakeServer(t)
	key, keys := signingKey(t)
	art := srv.publish(key, "1.1.0", "linux/amd64", binaryOf(5000, 15))
	stall := make(chan struct{})
	defer close(stall)
	srv.mu.Lock()
	srv.stall = stall
	srv.mu.Unlock()
	d := newDevice(t, srv, keys, nil)
	d.start()
	d.update(uuid.New(), art, "1.1.0")
	_, err := d.host.run(artifact.CommandUpdate, map[string]string{
		artifact.ArgRollout: uuid.NewString(), artifact.ArgArtifact: art.String(), artifact.ArgVersion: "1.2.0"})
	if !isRejected(err) || !strings.Contains(err.Error(), "busy") {
		t.Errorf("a second rollout while one runs: %v", err)
	}
	for _, args := range []map[string]string{
		{},
		{artifact.ArgRollout: "x", artifact.ArgArtifact: art.String(), artifact.ArgVersion: "1.1.0"},
		{artifact.ArgRollout: uuid.NewString(), artifact.ArgArtifact: art.String(), artifact.ArgVersion: "one"},
	} {
		if _, err := d.host.run(artifact.CommandUpdate, args); !isRejected(err) {
			t.Errorf("update %v: %v, want rejected", args, err)
		}
	}
	if _, err := d.host.run(artifact.CommandRollback, map[string]string{}); !isRejected(err) {
		t.Errorf("rollback without arguments: %v", err)
	}
	// The version that runs already: done at once.
	rollout := uuid.New()
	d2 := newDevice(t, srv, keys, nil)
	d2.start()
	if out := d2.update(rollout, art, "1.0.0"); !strings.Contains(out, "already") {
		t.Errorf("update to the running version: %q", out)
	}
	srv.waitState(rollout, artifact.ReportSucceeded)
}

func TestWaitsForUnsentCaptures(t *testing.T) {
	srv := newFakeServer(t)
	key, keys := signingKey(t)
	art := srv.publish(key, "1.1.0", "linux/amd64", binaryOf(5000, 16))
	d := newDevice(t, srv, keys, func(o *Options) { o.WaitUnsent = true })
	d.start()
	d.host.unsent.Store(3)
	rollout := uuid.New()
	d.update(rollout, art, "1.1.0")
	// The download finishes (the part is complete), but no switch while
	// captures wait.
	waitFor(t, "the downloaded binary", func() bool {
		entries, _ := os.ReadDir(filepath.Join(d.dir, downloadDir))
		return len(entries) == 1 && fileSize(filepath.Join(d.dir, downloadDir, entries[0].Name())) == 5000
	})
	select {
	case s := <-d.restarts:
		t.Fatalf("switched with unsent captures: %+v", s)
	case <-time.After(100 * time.Millisecond):
	}
	d.host.unsent.Store(0)
	if s := d.restarted(); s.Version != "1.1.0" {
		t.Fatalf("restarted into %+v", s)
	}
}

func TestReportsSurviveRefusalsAndRestarts(t *testing.T) {
	srv := newFakeServer(t)
	key, keys := signingKey(t)
	art := srv.publish(key, "1.1.0", "linux/amd64", binaryOf(5000, 17))
	srv.mu.Lock()
	srv.refuse = 1000 // the server is down for reports
	srv.mu.Unlock()
	d := newDevice(t, srv, keys, nil)
	d.start()
	rollout := uuid.New()
	d.update(rollout, art, "1.1.0")
	d.restarted()
	waitFor(t, "the health check", func() bool { return d.stateFile().Trial == nil })
	if n := len(d.stateFile().Reports); n != 3 {
		t.Fatalf("%d reports kept, want 3 (downloading, installing, succeeded)", n)
	}
	d.stop()
	srv.mu.Lock()
	srv.refuse = 2
	srv.mu.Unlock()
	d.start()
	srv.waitState(rollout, artifact.ReportSucceeded)
	if want := []string{"downloading", "installing", "succeeded"}; !slices.Equal(srv.states(rollout), want) {
		t.Errorf("reports %q, want %q in order", srv.states(rollout), want)
	}
	waitFor(t, "no report kept", func() bool { return d.u.Status().Pending == 0 })
}

func TestOptionsValidate(t *testing.T) {
	_, keys := signingKey(t)
	good := Options{Server: "https://fleet:8443", Keys: keys, App: "kiosk", Restarter: RestartFunc(func(context.Context, Slot) error { return nil })}
	good.defaults()
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, edit := range map[string]func(*Options){
		"http server":  func(o *Options) { o.Server = "http://fleet" },
		"no keys":      func(o *Options) { o.Keys = nil },
		"no app":       func(o *Options) { o.App = "" },
		"platform":     func(o *Options) { o.Platform = "linux" },
		"no restarter": func(o *Options) { o.Restarter = nil },
		"negative":     func(o *Options) { o.RateLimit = -1 },
	} {
		o := good
		edit(&o)
		if err := o.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := New(t.TempDir(), good); err == nil {
		t.Error("New without Boot accepted")
	}
}

// TestExecRestart runs a child that restarts with Exec into a slot whose
// binary is a shell script; the script proves it ran with the arguments.
func TestExecRestart(t *testing.T) {
	if os.Getenv("KOGGE_UPDATE_EXEC_CHILD") != "" {
		return // handled in TestMain
	}
	dir := t.TempDir()
	script := filepath.Join(dir, BinaryFile)
	out := filepath.Join(dir, "ran")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho \"$1\" > \""+out+"\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "KOGGE_UPDATE_EXEC_CHILD="+script)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("the slot's binary did not run: %v", err)
	}
	if got := strings.TrimSpace(string(b)); got != "--serve" {
		t.Errorf("it ran as %q", got)
	}
}

func TestMain(m *testing.M) {
	if script := os.Getenv("KOGGE_UPDATE_EXEC_CHILD"); script != "" {
		err := Exec{Args: []string{"kogge-kiosk", "--serve"}}.Restart(context.Background(), Slot{Name: SlotB, Binary: script})
		os.Stderr.WriteString("exec returned: " + err.Error() + "\n")
		os.Exit(1)
	}
	os.Exit(m.Run())
}
