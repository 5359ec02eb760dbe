package kiosk

import (
	"context"
	"fmt"
	"time"

	"github.com/kogge-fleet/kogge/drivers"
	"github.com/kogge-fleet/kogge/drivers/camera"
)

// probeTimeout bounds one active check of one peripheral.
const probeTimeout = 10 * time.Second

// peripheral is one peripheral as the kiosk checks it.
type peripheral struct {
	name, kind string
	// required: without it the flow cannot run (out of service).
	required bool
	// probe asks the peripheral actively; status is what its driver last
	// found. safeAtWelcome: probing cannot disturb a session waiting at
	// its welcome screen.
	probe         func(ctx context.Context) drivers.Status
	status        func() drivers.Status
	safeAtWelcome bool
}

// peripherals lists the checks of the terminal's devices. The camera,
// the fingerprint scanner and the printer are always required; the
// payment terminal when fees are taken at the terminal. The eID kernel is
// never required: the flow goes on without identification.
func (k *Kiosk) peripherals() []*peripheral {
	d := k.dev
	var ps []*peripheral
	ps = append(ps, &peripheral{
		name: "camera", kind: "camera", required: true, status: k.cam.Status, safeAtWelcome: true,
		probe: func(ctx context.Context) drivers.Status {
			if !k.cam.probe() {
				return k.cam.Status() // the flow has it
			}
			defer k.cam.release()
			ctx, cancel := context.WithTimeout(ctx, probeTimeout)
			defer cancel()
			mode, err := d.Camera.Start(ctx, k.cfg.Flow.Photo.Mode)
			if err != nil {
				return notWorking(d.Camera.Status(), "camera does not start: "+err.Error())
			}
			defer d.Camera.Stop()
			if k.opts.CheckCameraMode != nil {
				if err := k.opts.CheckCameraMode(mode.Width, mode.Height); err != nil {
					return drivers.Status{State: drivers.StateError, Reason: fmt.Sprintf(
						"camera mode %v cannot give the photo (configuration error): %v", mode, err)}
				}
			}
			return d.Camera.Status()
		},
	})
	ps = append(ps, &peripheral{
		name: "fingerprint", kind: "fingerprint", required: true, status: d.Scanner.Status, safeAtWelcome: true,
		probe: func(ctx context.Context) drivers.Status {
			ctx, cancel := context.WithTimeout(ctx, probeTimeout)
			defer cancel()
			if _, err := d.Scanner.FingerPresent(ctx); err != nil {
				return notWorking(d.Scanner.Status(), "fingerprint scanner does not answer: "+err.Error())
			}
			return d.Scanner.Status()
		},
	})
	ps = append(ps, &peripheral{
		name: "printer", kind: "printer", required: true, status: d.Printer.Status, safeAtWelcome: true,
		probe: func(ctx context.Context) drivers.Status {
			ctx, cancel := context.WithTimeout(ctx, probeTimeout)
			defer cancel()
			st, err := d.Printer.Check(ctx)
			if err != nil {
				return notWorking(st, "printer does not answer: "+err.Error())
			}
			return st
		},
	})
	if d.Payment != nil {
		ps = append(ps, &peripheral{
			name: "payment", kind: "payment", required: !k.cfg.Flow.PayAtCounter, status: d.Payment.Status, safeAtWelcome: true,
			probe: func(ctx context.Context) drivers.Status {
				// The ZVT client registers with the terminal; a fake has
				// nothing to register.
				if r, ok := d.Payment.(interface{ Register(context.Context) error }); ok {
					ctx, cancel := context.WithTimeout(ctx, probeTimeout)
					defer cancel()
					if err := r.Register(ctx); err != nil {
						return notWorking(d.Payment.Status(), "payment terminal does not register: "+err.Error())
					}
				}
				return d.Payment.Status()
			},
		})
	}
	if d.EID != nil {
		ps = append(ps, &peripheral{
			name: "eid", kind: "eid", status: d.EID.Status, safeAtWelcome: true,
			probe: func(ctx context.Context) drivers.Status {
				ctx, cancel := context.WithTimeout(ctx, probeTimeout)
				defer cancel()
				if _, err := d.EID.Readers(ctx); err != nil {
					return notWorking(d.EID.Status(), "AusweisApp does not answer: "+err.Error())
				}
				return d.EID.Status()
			},
		})
	}
	return ps
}

// notWorking is st when the driver says it does not work and why, else
// an error with reason.
func notWorking(st drivers.Status, reason string) drivers.Status {
	if !usable(st) && st.Reason != "" {
		return st
	}
	return drivers.Status{State: drivers.StateError, Reason: reason}
}

// guardedCamera is the camera as the flow gets it: the kiosk's probe and
// the flow's photo step never use it at once. The flow's Start waits for
// a probe to end; a probe is skipped while the flow has the camera.
type guardedCamera struct {
	camera.Camera
	sem chan struct{} // holds a token from Start to Stop, or during a probe
}

func newGuardedCamera(c camera.Camera) *guardedCamera {
	return &guardedCamera{Camera: c, sem: make(chan struct{}, 1)}
}

// Start implements camera.Camera.
func (g *guardedCamera) Start(ctx context.Context, want camera.Mode) (camera.Mode, error) {
	select {
	case g.sem <- struct{}{}:
	case <-ctx.Done():
		return camera.Mode{}, fmt.Errorf("start camera: %w", ctx.Err())
	}
	m, err := g.Camera.Start(ctx, want)
	if err != nil {
		g.release()
	}
	return m, err
}

// Stop implements camera.Camera.
func (g *guardedCamera) Stop() error {
	err := g.Camera.Stop()
	g.release()
	return err
}

// probe takes the camera for a probe, unless the flow has it.
func (g *guardedCamera) probe() bool {
	select {
	case g.sem <- struct{}{}:
		return true
	default:
		return false
	}
}

func (g *guardedCamera) release() {
	select {
	case <-g.sem:
	default:
	}
}
