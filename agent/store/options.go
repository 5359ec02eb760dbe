package store

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Defaults for Options.
const (
	DefaultBudget      = 512 << 20
	DefaultMaxBatch    = 256
	DefaultDiskReserve = 64 << 20
)

// Options are the optional settings of a Store. The zero value means the
// defaults.
type Options struct {
	// Budget is how many bytes the store may use on disk: the database
	// pages in use (see the package documentation). Default 512 MiB.
	Budget int64
	// DiskReserve is the free space that must remain on the store's file
	// system: a capture that would leave less is refused with ErrFull.
	// Default 64 MiB.
	DiskReserve int64
	// MaxBatch bounds how many writes share one transaction and one fsync.
	// Default 256.
	MaxBatch int
	// NoGroupCommit gives every capture its own transaction and fsync. It
	// exists only as the baseline for the benchmark.
	NoGroupCommit bool
	// Logger receives the store's log lines. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// withDefaults returns the options with every zero field set to its
// default.
func (o Options) withDefaults() Options {
	if o.Budget == 0 {
		o.Budget = DefaultBudget
	}
	if o.DiskReserve == 0 {
		o.DiskReserve = DefaultDiskReserve
	}
	if o.MaxBatch == 0 {
		o.MaxBatch = DefaultMaxBatch
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Validate checks the options. Zero values are valid: they mean the
// defaults.
func (o Options) Validate() error {
	var errs []error
	if o.Budget < 0 {
		errs = append(errs, fmt.Errorf("budget %d is negative", o.Budget))
	}
	if o.DiskReserve < 0 {
		errs = append(errs, fmt.Errorf("disk reserve %d is negative", o.DiskReserve))
	}
	if o.MaxBatch < 0 {
		errs = append(errs, fmt.Errorf("max batch %d is negative", o.MaxBatch))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("store options: %w", err)
	}
	return nil
}
