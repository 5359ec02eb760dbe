package command_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/agent/command"
	"github.com/kogge-fleet/kogge/agent/store"
	"github.com/kogge-fleet/kogge/protocol"
)

const device = "dev-1"

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// sent collects what the runner sends directly (results of repeated
// commands).
type sent chan protocol.Message

func (s sent) Send(_ context.Context, m protocol.Message) error {
	s <- m
	return nil
}

type rig struct {
	t       *testing.T
	st      *store.Store
	r       *command.Runner
	sent    sent
	results chan struct{}
	stop    func()
}

func openStore(t *testing.T, path string) *store.Store {
	t.Helper()
	st, err := store.Open(path, store.Options{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func start(t *testing.T, st *store.Store, b command.Builtins, register func(*command.Runner)) *rig {
	t.Helper()
	rg := &rig{t: t, st: st, sent: make(sent, 16), results: make(chan struct{}, 64)}
	r, err := command.New(device, st, rg.sent, command.Options{
		Timeout:        200 * time.Millisecond,
		ResultsWaiting: func() { rg.results <- struct{}{} },
		Logger:         quiet(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.RegisterBuiltins(b); err != nil {
		t.Fatal(err)
	}
	if register != nil {
		register(r)
	}
	rg.r = r
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once gosync.Once
	rg.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
		})
	}
	t.Cleanup(rg.stop)
	return rg
}

func cmd(name string, args map[string]string, expires time.Duration) *protocol.Envelope {
	now := time.Now()
	return protocol.NewEnvelope(device, 1, now, &protocol.Command{
		ID: uuid.Must(uuid.NewV7()), Name: name, Args: args,
		IssuedAt: protocol.At(now.Add(-time.Minute)), ExpiresAt: protocol.At(now.Add(expires)),
	})
}

// run offers a command and returns its persisted result.
func (rg *rig) run(env *protocol.Envelope) *protocol.CommandResult {
	rg.t.Helper()
	rg.r.Offer(env)
	rg.waitResult()
	return rg.result(env.Body.(*protocol.Command).ID)
}

func (rg *rig) waitResult() {
	rg.t.Helper()
	select {
	case <-rg.results:
	case <-time.After(10 * time.Second):
		rg.t.Fatal("no result")
	}
}

func (rg *rig) result(id uuid.UUID) *protocol.CommandResult {
	rg.t.Helper()
	b, ok, err := rg.st.CommandResult(context.Background(), id)
	if err != nil || !ok {
		rg.t.Fatalf("result of %v: %v, %v", id, ok, err)
	}
	env, err := protocol.Decode(b)
	if err != nil {
		rg.t.Fatal(err)
	}
	res := env.Body.(*protocol.CommandResult)
	if res.ID != id || env.Device != device {
		rg.t.Fatalf("result %+v for device %s", res, env.Device)
	}
	return res
}

func TestBuiltins(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "device.db"))
	level := new(slog.LevelVar)
	var mu gosync.Mutex
	wiped, synced := 0, 0
	b := command.Builtins{
		SyncNow:    func() { mu.Lock(); synced++; mu.Unlock() },
		Logs:       func(max int) []byte { return []byte("line 1\nline 2\n")[:min(max, 14)] },
		LogLevel:   level,
		WipeUnsent: func(context.Context) (int, error) { mu.Lock(); wiped++; mu.Unlock(); return 3, nil },
		WipeToken:  "4711",
	}
	rg := start(t, st, b, func(r *command.Runner) {
		r.Register("slow", func(ctx context.Context, _ map[string]string) ([]byte, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		})
		r.Register("broken", func(context.Context, map[string]string) ([]byte, error) {
			return nil, errors.New("the printer is out of paper")
		})
	})
	tests := []struct {
		name    string
		env     *protocol.Envelope
		outcome protocol.Outcome
		message string // part of the message
		output  string
	}{
		{"ping", cmd("ping", nil, time.Minute), protocol.OutcomeOK, "", "pong"},
		{"unknown", cmd("self-destruct", nil, time.Minute), protocol.OutcomeRejected, "does not know", ""},
		{"expired", cmd("ping", nil, -time.Second), protocol.OutcomeExpired, "expired", ""},
		{"sync-now", cmd("sync-now", nil, time.Minute), protocol.OutcomeOK, "", ""},
		{"collect-logs", cmd("collect-logs", nil, time.Minute), protocol.OutcomeOK, "", "line 1\nline 2\n"},
		{"collect-logs bounded", cmd("collect-logs", map[string]string{"max_bytes": "7"}, time.Minute), protocol.OutcomeOK, "", "line 1\n"},
		{"set-log-level", cmd("set-log-level", map[string]string{"level": "debug"}, time.Minute), protocol.OutcomeOK, "", "log level DEBUG (was INFO)"},
		{"set-log-level bad", cmd("set-log-level", map[string]string{"level": "chatty"}, time.Minute), protocol.OutcomeRejected, "chatty", ""},
		{"wipe without confirmation", cmd("wipe-unsent", nil, time.Minute), protocol.OutcomeRejected, "confirm=<token>", ""},
		{"wipe with a wrong token", cmd("wipe-unsent", map[string]string{"confirm": "1234"}, time.Minute), protocol.OutcomeRejected, "nothing was wiped", ""},
		{"wipe confirmed", cmd("wipe-unsent", map[string]string{"confirm": "4711"}, time.Minute), protocol.OutcomeOK, "", "wiped 3 unsent records"},
		{"reboot without hook", cmd("reboot", nil, time.Minute), protocol.OutcomeRejected, "cannot be rebooted", ""},
		{"timeout", cmd("slow", nil, time.Minute), protocol.OutcomeFailed, "timed out", ""},
		{"failure", cmd("broken", nil, time.Minute), protocol.OutcomeFailed, "out of paper", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := rg.run(tt.env)
			if res.Outcome != tt.outcome || !strings.Contains(res.Message, tt.message) || string(res.Output) != tt.output {
				t.Errorf("result %v %q %q: want %v with %q, output %q", res.Outcome, res.Message, res.Output, tt.outcome, tt.message, tt.output)
			}
		})
	}
	mu.Lock()
	defer mu.Unlock()
	if wiped != 1 || synced != 1 || level.Level() != slog.LevelDebug {
		t.Errorf("wiped %d times, synced %d times, level %v", wiped, synced, level.Level())
	}
	unreported, err := st.UnreportedResults(context.Background(), 100)
	if err != nil || len(unreported) != len(tests) {
		t.Errorf("%d unreported results (%v), want %d", len(unreported), err, len(tests))
	}
}

func TestWipeWithoutConfiguredToken(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "device.db"))
	called := false
	rg := start(t, st, command.Builtins{WipeUnsent: func(context.Context) (int, error) { called = true; return 0, nil }}, nil)
	res := rg.run(cmd("wipe-unsent", map[string]string{"confirm": ""}, time.Minute))
	if res.Outcome != protocol.OutcomeRejected || called {
		t.Errorf("result %v %q, wipe called %v", res.Outcome, res.Message, called)
	}
}

func TestRebootAfterResultIsPersisted(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "device.db"))
	env := cmd("reboot", nil, time.Minute)
	id := env.Body.(*protocol.Command).ID
	rebooted := make(chan bool, 1)
	rg := start(t, st, command.Builtins{Reboot: func(ctx context.Context) error {
		_, ok, err := st.CommandResult(ctx, id)
		rebooted <- ok && err == nil
		return nil
	}}, nil)
	if res := rg.run(env); res.Outcome != protocol.OutcomeOK {
		t.Fatalf("result %v %q", res.Outcome, res.Message)
	}
	select {
	case persisted := <-rebooted:
		if !persisted {
			t.Error("the reboot hook ran before the result was persisted")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the reboot hook was not called")
	}
}

// A command runs once, even when it arrives again after a restart: the
// second time its stored result is sent instead.
func TestOnceAcrossRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "device.db")
	st := openStore(t, path)
	var mu gosync.Mutex
	runs := 0
	count := func(r *command.Runner) {
		r.Register("count", func(context.Context, map[string]string) ([]byte, error) {
			mu.Lock()
			defer mu.Unlock()
			runs++
			return []byte("counted"), nil
		})
	}
	rg := start(t, st, command.Builtins{}, count)
	env := cmd("count", nil, time.Minute)
	id := env.Body.(*protocol.Command).ID
	if res := rg.run(env); res.Outcome != protocol.OutcomeOK {
		t.Fatalf("first run: %v", res.Outcome)
	}
	rg.stop()
	st.Close()

	st2 := openStore(t, path)
	rg2 := start(t, st2, command.Builtins{}, count)
	rg2.r.Offer(env)
	select {
	case m := <-rg2.sent:
		if res, ok := m.(*protocol.CommandResult); !ok || res.ID != id || string(res.Output) != "counted" {
			t.Fatalf("sent %+v, want the stored result", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stored result was not sent again")
	}
	mu.Lock()
	defer mu.Unlock()
	if runs != 1 {
		t.Errorf("the command ran %d times", runs)
	}
}

// A command without a result at start was interrupted: it is reported
// failed and not run.
func TestInterruptedCommandIsNotRunAgain(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "device.db"))
	env := cmd("count", nil, time.Minute)
	id := env.Body.(*protocol.Command).ID
	payload, _ := protocol.Encode(env)
	if _, err := st.AddCommand(context.Background(), id, payload); err != nil {
		t.Fatal(err)
	}
	ran := false
	rg := start(t, st, command.Builtins{}, func(r *command.Runner) {
		r.Register("count", func(context.Context, map[string]string) ([]byte, error) { ran = true; return nil, nil })
	})
	rg.waitResult()
	res := rg.result(id)
	if res.Outcome != protocol.OutcomeFailed || !strings.Contains(res.Message, "restarted") {
		t.Errorf("result %v %q", res.Outcome, res.Message)
	}
	rg.r.Offer(env) // the server sends it again
	select {
	case <-rg.sent:
	case <-time.After(10 * time.Second):
		t.Fatal("no result sent for the repeated command")
	}
	if ran {
		t.Error("the interrupted command ran")
	}
}

func TestRegisterChecksNames(t *testing.T) {
	r, err := command.New(device, nil, nil, command.Options{})
	if err != nil {
		t.Fatal(err)
	}
	h := func(context.Context, map[string]string) ([]byte, error) { return nil, nil }
	for _, name := range []string{"", "Upper", "with space", strings.Repeat("a", 65)} {
		if err := r.Register(name, h); err == nil {
			t.Errorf("Register(%q) accepted", name)
		}
	}
	if err := r.Register("print-receipt", nil); err == nil {
		t.Error("Register accepted a nil handler")
	}
}
