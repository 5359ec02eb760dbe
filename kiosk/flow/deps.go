package flow

import (
	"context"
	"errors"
	"log/slog"

	"github.com/kogge-fleet/kogge/agent"
	"github.com/kogge-fleet/kogge/drivers/camera"
	"github.com/kogge-fleet/kogge/drivers/eid"
	"github.com/kogge-fleet/kogge/drivers/fingerprint"
	"github.com/kogge-fleet/kogge/drivers/payment"
	"github.com/kogge-fleet/kogge/drivers/printer"
)

// Saver seals and saves an application durably; *agent.Agent is one.
type Saver interface {
	Capture(ctx context.Context, c agent.Capture) (agent.Receipt, error)
}

var _ Saver = (*agent.Agent)(nil)

// Deps are what a flow works with: the peripherals, the capture-quality
// packages, the agent and a clock.
type Deps struct {
	Camera  camera.Camera
	Scanner fingerprint.Scanner
	// EID is required when Config.EID.Enabled.
	EID eid.Kernel
	// Payment is required unless Config.PayAtCounter.
	Payment payment.Terminal
	Printer printer.Printer

	Faces      Faces
	Fingers    Fingers
	Signatures Signatures

	// Saver saves the application (the agent).
	Saver Saver
	// Numbers hands out application numbers (a Sequence over the agent's
	// store).
	Numbers Numbers
	// Clock runs the timeouts (SystemClock()).
	Clock Clock
	// Logger receives the flow's log lines (slog.Default()). They hold the
	// application number and quality values, never personal data.
	Logger *slog.Logger
}

func (d *Deps) check(cfg Config) error {
	if d.Clock == nil {
		d.Clock = SystemClock()
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	var missing []error
	need := func(ok bool, what string) {
		if !ok {
			missing = append(missing, errors.New(what))
		}
	}
	need(d.Camera != nil, "no camera")
	need(d.Scanner != nil, "no fingerprint scanner")
	need(d.Printer != nil, "no receipt printer")
	need(d.Faces != nil, "no photo checker (Faces)")
	need(d.Fingers != nil, "no fingerprint scorer (Fingers)")
	need(d.Signatures != nil, "no signature renderer (Signatures)")
	need(d.Saver != nil, "no saver (the agent)")
	need(d.Numbers != nil, "no application numbers")
	need(!cfg.EID.Enabled || d.EID != nil, "eID is switched on but there is no eID kernel")
	need(cfg.PayAtCounter || d.Payment != nil, "fees are taken at the terminal but there is no payment terminal")
	if len(missing) > 0 {
		return errors.Join(append([]error{errors.New("flow: missing dependencies")}, missing...)...)
	}
	return nil
}
