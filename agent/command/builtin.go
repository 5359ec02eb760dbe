package command

import (
	"context"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"strings"
)

// Builtins are the hooks of the built-in commands. A command whose hook is
// nil is still known, and rejected with a reason.
type Builtins struct {
	// SyncNow makes the sync engine try at once (sync-now).
	SyncNow func()
	// Logs returns the recent log lines, at most maxBytes (collect-logs).
	Logs func(maxBytes int) []byte
	// LogLevel is the level set-log-level changes.
	LogLevel *slog.LevelVar
	// WipeUnsent deletes the records not yet sent and returns how many
	// (wipe-unsent).
	WipeUnsent func(ctx context.Context) (int, error)
	// WipeToken is the confirmation wipe-unsent needs as its argument
	// confirm=<token>; the device shows it to the person on site. Empty
	// refuses every wipe.
	WipeToken string
	// Reboot restarts the device (reboot). It is called after the result
	// is persisted, so the reboot does not make the command look
	// interrupted.
	Reboot func(ctx context.Context) error
}

// The names of the built-in commands.
const (
	Ping        = "ping"
	SyncNow     = "sync-now"
	CollectLogs = "collect-logs"
	SetLogLevel = "set-log-level"
	WipeUnsent  = "wipe-unsent"
	Reboot      = "reboot"
)

// RegisterBuiltins registers the built-in commands with b's hooks.
func (r *Runner) RegisterBuiltins(b Builtins) error {
	cmds := map[string]entry{
		Ping: {run: func(context.Context, map[string]string) ([]byte, error) { return []byte("pong"), nil }},
		SyncNow: {run: func(context.Context, map[string]string) ([]byte, error) {
			if b.SyncNow == nil {
				return nil, fmt.Errorf("%w: sync-now is not available on this device", ErrRejected)
			}
			b.SyncNow()
			return nil, nil
		}},
		CollectLogs: {run: func(_ context.Context, args map[string]string) ([]byte, error) {
			if b.Logs == nil {
				return nil, fmt.Errorf("%w: this device keeps no log lines", ErrRejected)
			}
			max := 256 << 10
			if v, ok := args["max_bytes"]; ok {
				var n int
				if _, err := fmt.Sscan(v, &n); err != nil || n < 1 {
					return nil, fmt.Errorf("%w: max_bytes=%q is not a positive number", ErrRejected, v)
				}
				max = n
			}
			return b.Logs(min(max, 512<<10)), nil
		}},
		SetLogLevel: {run: func(_ context.Context, args map[string]string) ([]byte, error) {
			if b.LogLevel == nil {
				return nil, fmt.Errorf("%w: the log level cannot be changed on this device", ErrRejected)
			}
			var l slog.Level
			if err := l.UnmarshalText([]byte(strings.ToUpper(args["level"]))); err != nil || args["level"] == "" {
				return nil, fmt.Errorf("%w: level=%q: want debug, info, warn or error", ErrRejected, args["level"])
			}
			old := b.LogLevel.Level()
			b.LogLevel.Set(l)
			return []byte(fmt.Sprintf("log level %v (was %v)", l, old)), nil
		}},
		WipeUnsent: {run: func(ctx context.Context, args map[string]string) ([]byte, error) {
			if b.WipeUnsent == nil {
				return nil, fmt.Errorf("%w: wiping is not available on this device", ErrRejected)
			}
			if b.WipeToken == "" {
				return nil, fmt.Errorf("%w: no confirmation token is configured on this device, so it cannot be wiped remotely", ErrRejected)
			}
			got, ok := args["confirm"]
			if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(b.WipeToken)) != 1 {
				return nil, fmt.Errorf("%w: wipe-unsent needs confirm=<token>, with the token the device shows; nothing was wiped", ErrRejected)
			}
			n, err := b.WipeUnsent(ctx)
			if err != nil {
				return nil, err
			}
			return []byte(fmt.Sprintf("wiped %d unsent records", n)), nil
		}},
		Reboot: {
			run: func(context.Context, map[string]string) ([]byte, error) {
				if b.Reboot == nil {
					return nil, fmt.Errorf("%w: this device cannot be rebooted remotely", ErrRejected)
				}
				return []byte("rebooting"), nil
			},
			after: func(ctx context.Context) {
				if b.Reboot == nil {
					return
				}
				if err := b.Reboot(ctx); err != nil {
					r.log.Error("reboot failed", "err", err)
				}
			},
		},
	}
	for name, e := range cmds {
		if err := r.register(name, e); err != nil {
			return err
		}
	}
	return nil
}
