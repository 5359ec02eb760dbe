package rollout

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"database/sql"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/fleet-server/audit"
	"github.com/kogge-fleet/kogge/fleet-server/commands"
	"github.com/kogge-fleet/kogge/fleet-server/store"
	"github.com/kogge-fleet/kogge/protocol"
	"github.com/kogge-fleet/kogge/protocol/artifact"
)

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// broker keeps the commands published, in order.
type broker struct {
	mu   sync.Mutex
	sent []*protocol.Command
	to   []string
}

func (b *broker) Publish(topic string, payload []byte, retained bool) error {
	env, err := protocol.DecodeOn(topic, payload)
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sent = append(b.sent, env.Body.(*protocol.Command))
	b.to = append(b.to, env.Device)
	return nil
}

// take returns the commands published since the last take.
func (b *broker) take() ([]string, []*protocol.Command) {
	b.mu.Lock()
	defer b.mu.Unlock()
	to, sent := b.to, b.sent
	b.to, b.sent = nil, nil
	return to, sent
}

// env is a rollout service over a real store and the real command queue,
// with a fake broker and a fleet of fake devices that answer the commands
// as the script says.
type env struct {
	t     *testing.T
	db    *store.DB
	clk   *clock
	b     *broker
	cmds  *commands.Service
	audit *audit.Log
	s     *Service
	key   ed25519.PrivateKey
	keys  artifact.Keyring

	// behave says what a device does with an update: "good" (default),
	// "bad" (rolls back after its health check), "refuse" (fails), "mute"
	// (says nothing).
	behave map[string]string
	// running is what each device runs.
	running map[string]string
	seq     map[string]uint64
	offline map[string]bool
}

func newEnv(t *testing.T, db *store.DB, devices int, edit func(*Options)) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{t: t, db: db, clk: &clock{t: time.Date(2026, 12, 1, 20, 0, 0, 0, time.UTC)}, b: &broker{},
		behave: map[string]string{}, running: map[string]string{}, seq: map[string]uint64{}, offline: map[string]bool{}}
	var err error
	if e.cmds, err = commands.New(db, e.b, commands.Options{Logger: quiet(), Clock: e.clk.Now}); err != nil {
		t.Fatal(err)
	}
	if e.audit, err = audit.New(db, audit.Options{Logger: quiet(), Clock: e.clk.Now}); err != nil {
		t.Fatal(err)
	}
	if e.key, err = artifact.GenerateKey(); err != nil {
		t.Fatal(err)
	}
	e.keys = artifact.NewKeyring(e.key.Public().(ed25519.PublicKey))
	opts := Options{Keys: e.keys, Logger: quiet(), Clock: e.clk.Now, Location: time.UTC, KioskWindow: "19:00-07:00"}
	if edit != nil {
		edit(&opts)
	}
	if e.s, err = New(db, e.cmds, e.audit, opts); err != nil {
		t.Fatal(err)
	}
	e.exec(`INSERT INTO groups (id, name, created_at) VALUES ('mitte', 'Mitte', 1), ('nord', 'Nord', 1)`)
	for i := range devices {
		id := fmt.Sprintf("kiosk-%03d", i)
		group := "mitte"
		if i%2 == 1 {
			group = "nord"
		}
		e.exec(`INSERT INTO devices (id, group_id, created_at, inventory_at, model, software_version) VALUES ($1, $2, 1, 1, 'Kogge Kiosk K1', '1.0.0')`, id, group)
		e.running[id] = "1.0.0"
		e.beat(id, 0)
	}
	_ = ctx
	return e
}

func (e *env) exec(q string, args ...any) {
	e.t.Helper()
	if err := e.db.Tx(context.Background(), func(tx *sql.Tx) error { _, err := tx.Exec(q, args...); return err }); err != nil {
		e.t.Fatal(err)
	}
}

// beat sends a heartbeat of the device (online, its version, queue depth).
func (e *env) beat(device string, queue uint32) {
	e.t.Helper()
	ctx := context.Background()
	now := e.clk.Now().UnixMilli()
	err := e.db.Ingest(ctx, func(tx *store.IngestTx) error {
		if e.offline[device] {
			_, err := tx.ApplyPresence(ctx, device, &protocol.Presence{State: protocol.Offline, Session: uuid.New(), At: protocol.At(e.clk.Now())}, now)
			return err
		}
		if err := tx.Touch(ctx, device, now); err != nil {
			return err
		}
		return tx.PutHeartbeat(ctx, device, &protocol.Heartbeat{Software: e.running[device], QueueDepth: queue, Battery: -1,
			Clock: protocol.At(e.clk.Now())}, now, 1)
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

// publish uploads an artifact of version for the apps.
func (e *env) publish(version string, apps ...string) Artifact {
	e.t.Helper()
	if len(apps) == 0 {
		apps = []string{"mobile-agent"}
	}
	bin := bytes.Repeat([]byte(version), 1000)
	signed, err := artifact.Sign(mustDescribe(e.t, version, apps, bin), e.key)
	if err != nil {
		e.t.Fatal(err)
	}
	a, err := e.s.Upload(context.Background(), signed, bytes.NewReader(bin), "api-token:test")
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

func mustDescribe(t testing.TB, version string, apps []string, bin []byte) artifact.Manifest {
	t.Helper()
	m, err := artifact.Describe(artifact.Manifest{Name: "kogge-app", Version: version, Apps: apps, Platform: "linux/amd64",
		Created: time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)}, bytes.NewReader(bin))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// report sends a device's report.
func (e *env) report(device string, rollout uuid.UUID, state, version, reason string) {
	e.t.Helper()
	e.seq[device]++
	err := e.s.Report(context.Background(), device, artifact.Report{Rollout: rollout, State: state, Version: version,
		Running: e.running[device], Reason: reason, At: e.clk.Now(), Seq: e.seq[device]})
	if err != nil {
		e.t.Fatalf("report of %s: %v", device, err)
	}
}

// answer plays the devices: each command published since the last call
// is answered as the device's behaviour says, with results and reports.
func (e *env) answer() {
	e.t.Helper()
	ctx := context.Background()
	to, sent := e.b.take()
	for i, c := range sent {
		d := to[i]
		rollout := uuid.MustParse(c.Args[artifact.ArgRollout])
		version := c.Args[artifact.ArgVersion]
		if err := e.db.Ingest(ctx, func(tx *store.IngestTx) error {
			_, err := tx.PutCommandResult(ctx, d, &protocol.CommandResult{ID: c.ID, Outcome: protocol.OutcomeOK, At: protocol.At(e.clk.Now())},
				e.clk.Now().UnixMilli())
			return err
		}); err != nil {
			e.t.Fatal(err)
		}
		switch c.Name {
		case artifact.CommandUpdate:
			switch e.behave[d] {
			case "mute":
			case "refuse":
				e.report(d, rollout, artifact.ReportFailed, version, "refused the artifact: wrong platform")
			case "bad":
				e.report(d, rollout, artifact.ReportDownloading, version, "")
				e.report(d, rollout, artifact.ReportInstalling, version, "")
				e.report(d, rollout, artifact.ReportRolledBack, version, "health check failed: self-test failed")
			default:
				e.report(d, rollout, artifact.ReportDownloading, version, "")
				e.report(d, rollout, artifact.ReportInstalling, version, "")
				e.running[d] = version
				e.beat(d, 0)
				e.report(d, rollout, artifact.ReportSucceeded, version, "")
			}
		case artifact.CommandRollback:
			if e.running[d] == version {
				e.running[d] = c.Args[artifact.ArgTo]
				e.beat(d, 0)
				e.report(d, rollout, artifact.ReportRolledBack, version, "the rollout was aborted")
			} else {
				e.report(d, rollout, artifact.ReportCancelled, version, "not installed")
			}
		}
	}
}

// cycle runs a scheduler step and lets the devices answer, n times.
func (e *env) cycle(n int) {
	for range n {
		e.s.Step(context.Background())
		e.answer()
	}
}

// untilState cycles (advancing the clock by step each time) until the
// rollout is in state; at most 200 cycles.
func (e *env) untilState(id uuid.UUID, state string, step time.Duration) Rollout {
	e.t.Helper()
	for range 200 {
		e.cycle(1)
		r, err := e.s.Rollout(context.Background(), id)
		if err != nil {
			e.t.Fatal(err)
		}
		if r.State == state {
			return r
		}
		e.clk.Add(step)
	}
	r, _ := e.s.Rollout(context.Background(), id)
	e.t.Fatalf("rollout still %s in wave %d after 200 steps, want %s; counts %v; reason %q", r.State, r.Wave, state, r.Counts, r.Reason)
	return r
}

func (e *env) devices(id uuid.UUID) map[string]Device {
	e.t.Helper()
	ds, err := e.s.Devices(context.Background(), id, DeviceFilter{})
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string]Device{}
	for _, d := range ds {
		out[d.Device] = d
	}
	return out
}

func (e *env) auditActions() []string {
	e.t.Helper()
	es, err := e.audit.List(context.Background(), audit.Filter{Limit: 1000})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, x := range es {
		out = append(out, x.Action)
	}
	slices.Sort(out)
	return out
}

func f64(v float64) *float64             { return &v }
func dur(d time.Duration) *time.Duration { return &d }

type (
	storeDB       = store.DB
	storeIngestTx = store.IngestTx
)

// resultRejected is what an agent without the updater answers.
func resultRejected(id uuid.UUID, at time.Time) *protocol.CommandResult {
	return &protocol.CommandResult{ID: id, Outcome: protocol.OutcomeRejected,
		Message: `this device does not know the command "update"`, At: protocol.At(at)}
}

type storeCommand = store.Command

func uuidMust(s string) uuid.UUID { return uuid.MustParse(s) }
