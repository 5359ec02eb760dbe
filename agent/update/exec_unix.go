//go:build linux || darwin || freebsd || netbsd || openbsd

package update

import (
	"context"
	"fmt"
	"os"
	"syscall"
)

// Exec restarts a real device: it executes the active slot's binary in
// place of the running process (execve), with the same process id, so that
// the service manager sees no exit. A slot without a binary (the version
// the device was set up with) executes Fallback.
type Exec struct {
	// Args are the arguments, the program name first; default os.Args.
	Args []string
	// Env is the environment; default os.Environ().
	Env []string
	// Fallback is the binary of a slot that has none; default the
	// running executable.
	Fallback string
	// Before runs first, to close what must be closed (the store); an
	// error stops the restart.
	Before func() error
}

var _ Restarter = Exec{}

// Restart executes the slot's binary; it returns only when that fails.
func (e Exec) Restart(_ context.Context, slot Slot) error {
	bin := slot.Binary
	if _, err := os.Stat(bin); err != nil {
		bin = e.Fallback
		if bin == "" {
			if bin, err = os.Executable(); err != nil {
				return fmt.Errorf("restart: slot %s has no binary and the running one is unknown: %w", slot.Name, err)
			}
		}
	}
	args, env := e.Args, e.Env
	if args == nil {
		args = os.Args
	}
	if env == nil {
		env = os.Environ()
	}
	if e.Before != nil {
		if err := e.Before(); err != nil {
			return fmt.Errorf("restart: %w", err)
		}
	}
	if err := syscall.Exec(bin, args, env); err != nil {
		return fmt.Errorf("restart: execute %s: %w", bin, err)
	}
	return nil
}
