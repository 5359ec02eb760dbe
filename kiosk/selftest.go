package kiosk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"time"

	"github.com/kogge-fleet/kogge/kiosk/flow"
)

// selfTestFrameTimeout bounds the wait for the self-test's camera frame.
const selfTestFrameTimeout = 10 * time.Second

// SelfTest is the terminal's part of a new software version's health
// check (agent/update.Options.SelfTest): every required peripheral works
// (a check round as Run does it), and the capture pipeline works: a
// camera frame goes through the photo checks, the fingerprint scorer
// scores a synthetic fingerprint, and the signature renderer renders a
// fixed stroke as a PNG. The error names every part that failed.
//
// While a citizen's session has the camera, the camera frame is skipped:
// the session itself shows that the camera gives frames.
func (k *Kiosk) SelfTest(ctx context.Context) error {
	var errs []error
	k.check(ctx)
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("self-test: %w", err)
	}
	k.mu.Lock()
	for _, p := range k.checks {
		st, ok := k.states[p.name]
		if p.required && (!ok || !usable(st)) {
			errs = append(errs, fmt.Errorf("peripheral %s is %s: %s", p.name, st.State, st.Reason))
		}
	}
	k.mu.Unlock()
	if err := k.selfTestPhoto(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := k.selfTestFinger(); err != nil {
		errs = append(errs, err)
	}
	if err := k.selfTestSignature(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("self-test failed: %w", err)
	}
	return nil
}

// guard turns a panic of a capture-pipeline part into an error naming it.
func guard(part string, fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s panicked: %v", part, r)
		}
	}()
	return fn()
}

// selfTestPhoto takes one camera frame and runs the photo checks on it.
func (k *Kiosk) selfTestPhoto(ctx context.Context) error {
	if !k.cam.probe() {
		return nil // a session has the camera
	}
	defer k.cam.release()
	ctx, cancel := context.WithTimeout(ctx, selfTestFrameTimeout)
	defer cancel()
	if _, err := k.dev.Camera.Start(ctx, k.cfg.Flow.Photo.Mode); err != nil {
		return fmt.Errorf("capture pipeline: camera does not start: %w", err)
	}
	defer k.dev.Camera.Stop()
	fr, err := k.dev.Camera.Next(ctx)
	if err != nil {
		return fmt.Errorf("capture pipeline: camera gives no frame: %w", err)
	}
	if fr.Image == nil || fr.Image.Bounds().Empty() {
		return errors.New("capture pipeline: camera gives an empty frame")
	}
	return guard("capture pipeline: photo checks", func() error {
		fc := k.opts.Faces.Assess(fr.Image)
		if len(fc.Checks) == 0 && len(fc.Guidance) == 0 && !fc.OK {
			return errors.New("capture pipeline: the photo checks assess nothing on a camera frame")
		}
		return nil
	})
}

// selfTestFinger scores a synthetic fingerprint.
func (k *Kiosk) selfTestFinger() error {
	return guard("capture pipeline: fingerprint scorer", func() error {
		k.opts.Fingers.Score(syntheticFinger())
		return nil
	})
}

// selfTestSignature renders a fixed stroke.
func (k *Kiosk) selfTestSignature() error {
	return guard("capture pipeline: signature renderer", func() error {
		var stroke []flow.Point // a wave across the pad
		for i := range 24 {
			stroke = append(stroke, flow.Point{X: 20 + 10*i, Y: 50 + 30*((i%4+1)/2) - 15*(i%2), T: uint32(20 * i), P: 500})
		}
		b, err := k.opts.Signatures.Render([][]flow.Point{stroke}, 300, 100)
		if err != nil {
			return fmt.Errorf("capture pipeline: signature renderer: %w", err)
		}
		if _, err := png.DecodeConfig(bytes.NewReader(b)); err != nil {
			return fmt.Errorf("capture pipeline: signature renderer gives no PNG: %w", err)
		}
		return nil
	})
}

// syntheticFinger is a ridge pattern of a fingerprint's size.
func syntheticFinger() *image.Gray {
	const w, h = 256, 288
	g := image.NewGray(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			v := uint8(220)
			if (x+y/3)%9 < 4 {
				v = 40
			}
			g.SetGray(x, y, color.Gray{Y: v})
		}
	}
	return g
}
