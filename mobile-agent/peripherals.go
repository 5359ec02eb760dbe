package mobileagent

import (
	"context"
	"time"

	"github.com/kogge-fleet/kogge/drivers"
	"github.com/kogge-fleet/kogge/protocol"
)

// Peripheral is a peripheral's state as the screens show it.
type Peripheral struct {
	// Name is "gnss", "printer" or "camera".
	Name   string
	Status drivers.Status
}

// Peripherals returns the states of the configured peripherals, as last
// checked, in the order gnss, printer, camera.
func (a *App) Peripherals() []Peripheral {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []Peripheral
	for _, n := range []string{"gnss", "printer", "camera"} {
		if s, ok := a.periph[n]; ok {
			out = append(out, Peripheral{Name: n, Status: s})
		}
	}
	return out
}

// watchPeripherals checks the peripherals now and every
// PeripheralInterval until ctx ends.
func (a *App) watchPeripherals(ctx context.Context) {
	t := time.NewTicker(a.opts.PeripheralInterval)
	defer t.Stop()
	for {
		a.checkPeripherals(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// checkPeripherals asks every configured peripheral for its state.
func (a *App) checkPeripherals(ctx context.Context) {
	if g := a.dev.GNSS; g != nil {
		a.notePeripheral("gnss", "gnss", g.Status())
	}
	if p := a.dev.Printer; p != nil {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		s, err := p.Check(cctx)
		cancel()
		if err != nil && ctx.Err() != nil {
			return // shutting down: not a printer fault
		}
		if err != nil && s.OK() {
			s = drivers.Status{State: drivers.StateMissing, Reason: err.Error()}
		}
		a.notePeripheral("printer", "printer", s)
	}
	if c := a.dev.Camera; c != nil {
		a.notePeripheral("camera", "camera", c.Status())
	}
}

// notePeripheral records a state and reports a change in the heartbeat.
func (a *App) notePeripheral(name, kind string, s drivers.Status) {
	if s.State == 0 {
		return
	}
	a.mu.Lock()
	old, ok := a.periph[name]
	a.periph[name] = s
	a.mu.Unlock()
	if ok && old == s {
		return
	}
	a.ag.SetPeripheral(name, kind, protocol.PeripheralState(s.State), s.Reason)
	if !ok || old.State != s.State {
		a.log.Info("peripheral state", "peripheral", name, "state", s.State.String(), "reason", s.Reason)
	}
	a.changed()
}
