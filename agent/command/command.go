// Package command runs the commands the fleet server sends a device, each
// at most once.
//
// A command is persisted before it runs (the store remembers its id across
// restarts); a command received again is not run again, its stored result
// is sent instead. A command that arrives after it expired is reported as
// expired, not run. A command still without a result when the device starts
// was interrupted by a crash or a power cut: it is reported as failed and
// not run again, because nobody knows how far it got. Results are persisted
// and then sent by the sync engine until the server acknowledges them.
package command

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	gosync "sync"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/protocol"
)

// ErrRejected marks a command refused without running: bad arguments, a
// missing confirmation, a missing hook. A handler wraps it to get the
// outcome "rejected" instead of "failed".
var ErrRejected = errors.New("rejected")

// Handler runs one command with its arguments and returns its output. An
// error wrapping ErrRejected reports the command rejected; any other error
// reports it failed. Handlers must honour ctx: it carries the command's
// timeout.
type Handler func(ctx context.Context, args map[string]string) (output []byte, err error)

// Store is what the runner needs from the device store.
type Store interface {
	AddCommand(ctx context.Context, id uuid.UUID, payload []byte) (isNew bool, err error)
	SetCommandResult(ctx context.Context, id uuid.UUID, result []byte) error
	CommandResult(ctx context.Context, id uuid.UUID) ([]byte, bool, error)
	Commands(ctx context.Context) ([]uuid.UUID, error)
}

// Sender publishes a message to the server.
type Sender interface {
	Send(ctx context.Context, msg protocol.Message) error
}

// Options tune the runner.
type Options struct {
	// Timeout bounds one command's run (30 s).
	Timeout time.Duration
	// OpTimeout bounds store calls and sends (10 s).
	OpTimeout time.Duration
	// Queue is how many received commands may wait (16); more are dropped
	// with a log line, and the server sends them again.
	Queue int
	// ResultsWaiting is called after a result was persisted, to make the
	// sync engine send it.
	ResultsWaiting func()
	// Logger receives the runner's log lines (slog.Default()).
	Logger *slog.Logger
	// Now is the clock (time.Now).
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.Timeout == 0 {
		o.Timeout = 30 * time.Second
	}
	if o.OpTimeout == 0 {
		o.OpTimeout = 10 * time.Second
	}
	if o.Queue == 0 {
		o.Queue = 16
	}
	if o.ResultsWaiting == nil {
		o.ResultsWaiting = func() {}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Validate checks the options after defaults are filled in.
func (o Options) Validate() error {
	if o.Timeout <= 0 || o.OpTimeout <= 0 {
		return fmt.Errorf("timeouts %v and %v: must be positive", o.Timeout, o.OpTimeout)
	}
	if o.Queue < 1 {
		return fmt.Errorf("queue %d: must be 1 or more", o.Queue)
	}
	return nil
}

// Runner receives, persists, runs and reports commands.
type Runner struct {
	device string
	st     Store
	send   Sender
	opts   Options
	log    *slog.Logger
	queue  chan *protocol.Envelope

	mu       gosync.Mutex
	handlers map[string]entry
}

type entry struct {
	run Handler
	// after runs once the result is persisted (reboot).
	after func(ctx context.Context)
}

// New returns a runner with no commands; Register adds them.
func New(device string, st Store, send Sender, opts Options) (*Runner, error) {
	opts = opts.withDefaults()
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("command options: %w", err)
	}
	if err := protocol.ValidateDeviceID(device); err != nil {
		return nil, fmt.Errorf("command runner: %w", err)
	}
	return &Runner{
		device:   device,
		st:       st,
		send:     send,
		opts:     opts,
		log:      opts.Logger,
		queue:    make(chan *protocol.Envelope, opts.Queue),
		handlers: map[string]entry{},
	}, nil
}

// Register adds a command. Names follow the protocol's rules (a-z, 0-9,
// '.', '_', '-'); registering a name again replaces its handler.
func (r *Runner) Register(name string, h Handler) error {
	return r.register(name, entry{run: h})
}

func (r *Runner) register(name string, e entry) error {
	probe := protocol.Command{ID: uuid.Max, Name: name, IssuedAt: 1, ExpiresAt: 2}
	if err := probe.Validate(); err != nil {
		return fmt.Errorf("register command %q: %w", name, err)
	}
	if e.run == nil {
		return fmt.Errorf("register command %q: no handler", name)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.handlers[name] = e
	return nil
}

// Offer hands a received Command envelope to the runner. It never blocks.
func (r *Runner) Offer(env *protocol.Envelope) {
	if _, ok := env.Body.(*protocol.Command); !ok {
		return
	}
	select {
	case r.queue <- env:
	default:
		r.log.Warn("too many commands waiting; dropped one, the server sends it again",
			"command", env.Body.(*protocol.Command).ID)
	}
}

// Run first reports the commands a crash interrupted, then runs the
// received ones in order until ctx ends.
func (r *Runner) Run(ctx context.Context) error {
	if err := r.recover(ctx); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case env := <-r.queue:
			r.handle(ctx, env)
		}
	}
}

// recover reports the commands that have no result: they were received
// before a crash, and it is unknown whether they ran.
func (r *Runner) recover(ctx context.Context) error {
	octx, cancel := context.WithTimeout(ctx, r.opts.OpTimeout)
	ids, err := r.st.Commands(octx)
	cancel()
	if err != nil {
		return fmt.Errorf("commands interrupted by a restart: %w", err)
	}
	for _, id := range ids {
		r.log.Warn("a command was interrupted by a restart; it is reported failed and not run again", "command", id)
		r.finish(ctx, id, protocol.OutcomeFailed, "the device restarted while the command ran; it is not run again", nil, nil)
	}
	return nil
}

func (r *Runner) handle(ctx context.Context, env *protocol.Envelope) {
	cmd := env.Body.(*protocol.Command)
	log := r.log.With("command", cmd.ID, "name", cmd.Name)
	payload, err := protocol.Encode(env)
	if err != nil {
		log.Error("cannot encode a received command", "err", err)
		return
	}
	octx, cancel := context.WithTimeout(ctx, r.opts.OpTimeout)
	isNew, err := r.st.AddCommand(octx, cmd.ID, payload)
	cancel()
	if err != nil {
		log.Error("cannot persist a command; not running it (the server sends it again)", "err", err)
		return
	}
	if !isNew {
		r.resend(ctx, cmd.ID, log)
		return
	}

	if now := r.opts.Now(); now.After(cmd.ExpiresAt.Time()) {
		log.Info("a command arrived after it expired; not running it", "expired", cmd.ExpiresAt.Time())
		r.finish(ctx, cmd.ID, protocol.OutcomeExpired, fmt.Sprintf("arrived at %s, after it expired at %s",
			now.UTC().Format(time.RFC3339), cmd.ExpiresAt.Time().Format(time.RFC3339)), nil, nil)
		return
	}
	r.mu.Lock()
	e, ok := r.handlers[cmd.Name]
	r.mu.Unlock()
	if !ok {
		r.finish(ctx, cmd.ID, protocol.OutcomeRejected, fmt.Sprintf("this device does not know the command %q", cmd.Name), nil, nil)
		return
	}
	rctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	out, err := e.run(rctx, cmd.Args)
	timedOut := rctx.Err() == context.DeadlineExceeded
	cancel()
	outcome, msg := protocol.OutcomeOK, ""
	switch {
	case err == nil:
	case errors.Is(err, ErrRejected):
		outcome, msg = protocol.OutcomeRejected, err.Error()
	case timedOut:
		outcome, msg = protocol.OutcomeFailed, fmt.Sprintf("timed out after %v: %v", r.opts.Timeout, err)
	default:
		outcome, msg = protocol.OutcomeFailed, err.Error()
	}
	log.Info("ran a command", "outcome", outcome, "message", msg)
	after := e.after
	if outcome != protocol.OutcomeOK {
		after = nil
	}
	r.finish(ctx, cmd.ID, outcome, msg, out, after)
}

// finish persists a result, lets the sync engine send it, then runs after.
func (r *Runner) finish(ctx context.Context, id uuid.UUID, outcome protocol.Outcome, msg string, out []byte, after func(context.Context)) {
	if len(msg) > protocol.MaxTextLen {
		msg = msg[:protocol.MaxTextLen-3] + "..."
	}
	if len(out) > protocol.MaxCommandOutput {
		out = out[len(out)-protocol.MaxCommandOutput:]
	}
	now := r.opts.Now()
	res := &protocol.CommandResult{ID: id, Outcome: outcome, Message: msg, Output: out, At: protocol.At(now)}
	b, err := protocol.Encode(protocol.NewEnvelope(r.device, 0, now, res))
	if err != nil {
		r.log.Error("cannot encode a command result", "command", id, "err", err)
		return
	}
	octx, cancel := context.WithTimeout(ctx, r.opts.OpTimeout)
	err = r.st.SetCommandResult(octx, id, b)
	cancel()
	if err != nil {
		// The command stays without a result: at the next start it is
		// reported as interrupted.
		r.log.Error("cannot persist a command result", "command", id, "err", err)
		return
	}
	r.opts.ResultsWaiting()
	if after != nil {
		after(ctx)
	}
}

// resend sends the stored result of a command received again.
func (r *Runner) resend(ctx context.Context, id uuid.UUID, log *slog.Logger) {
	octx, cancel := context.WithTimeout(ctx, r.opts.OpTimeout)
	defer cancel()
	b, ok, err := r.st.CommandResult(octx, id)
	if err != nil {
		log.Error("cannot read the result of a repeated command", "err", err)
		return
	}
	if !ok {
		log.Warn("a command came again before it has a result; not running it twice")
		return
	}
	env, err := protocol.Decode(b)
	if err != nil {
		log.Error("the stored result of a repeated command is damaged", "err", err)
		return
	}
	log.Debug("a command came again; sending its result instead of running it")
	if err := r.send.Send(octx, env.Body); err != nil {
		log.Debug("cannot send the result now; the server asks again", "err", err)
	}
}
