package mobileagent

import (
	"context"
	"errors"
	"fmt"

	"github.com/kogge-fleet/kogge/drivers"
)

// SelfTest is the handheld's part of a new software version's health
// check (agent/update.Options.SelfTest): the configured GNSS receiver and
// printer work (OK or degraded, checked now) and the offence catalogue is
// loaded. A peripheral the handheld is not configured with is not needed.
// The error names every part that failed.
func (a *App) SelfTest(ctx context.Context) error {
	a.checkPeripherals(ctx)
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("self-test: %w", err)
	}
	var errs []error
	a.mu.Lock()
	for _, n := range []string{"gnss", "printer"} {
		configured := (n == "gnss" && a.dev.GNSS != nil) || (n == "printer" && a.dev.Printer != nil)
		if !configured {
			continue
		}
		s, ok := a.periph[n]
		if !ok {
			errs = append(errs, fmt.Errorf("peripheral %s: no state", n))
			continue
		}
		if s.State != drivers.StateOK && s.State != drivers.StateDegraded {
			errs = append(errs, fmt.Errorf("peripheral %s is %s: %s", n, s.State, s.Reason))
		}
	}
	a.mu.Unlock()
	if c := a.Catalogue(); c == nil || c.Len() == 0 {
		errs = append(errs, errors.New("offence catalogue not loaded"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("self-test failed: %w", err)
	}
	return nil
}
