package kiosk

import (
	"image"

	"github.com/kogge-fleet/kogge/kiosk/finger"
	"github.com/kogge-fleet/kogge/kiosk/flow"
	"github.com/kogge-fleet/kogge/kiosk/photo"
	"github.com/kogge-fleet/kogge/kiosk/signature"
)

// The flow reaches the capture-quality packages through flow.Faces,
// flow.Fingers and flow.Signatures; these adapters connect the real ones.
// *finger.Scorer is a flow.Fingers as it is.

var _ flow.Fingers = (*finger.Scorer)(nil)

// Faces adapts a kiosk/photo checker to the flow.
func Faces(c *photo.Checker) flow.Faces { return faces{c} }

type faces struct{ c *photo.Checker }

func (f faces) Assess(frame image.Image) flow.FaceCheck {
	a := f.c.Assess(frame)
	fc := flow.FaceCheck{
		Guidance: a.Guidance, Mandatory: a.Mandatory, Optional: a.Optional, OK: a.OK,
		Region: a.Region, Faces: a.Faces,
	}
	for _, c := range a.Checks {
		fc.Checks = append(fc.Checks, flow.CheckValue(c))
	}
	return fc
}

func (f faces) Crop(frame image.Image, fc flow.FaceCheck) ([]byte, error) {
	return f.c.Crop(frame, fc.Region)
}

func (f faces) PAD(frames []image.Image) float64 { return f.c.PAD(frames) }

// Signatures adapts a kiosk/signature renderer to the flow.
func Signatures(r *signature.Renderer) flow.Signatures { return signatures{r} }

type signatures struct{ r *signature.Renderer }

func (s signatures) Render(strokes [][]flow.Point, w, h int) ([]byte, error) {
	conv := make([][]signature.Point, len(strokes))
	for i, st := range strokes {
		conv[i] = make([]signature.Point, len(st))
		for j, p := range st {
			conv[i][j] = signature.Point(p)
		}
	}
	return s.r.Render(conv, w, h)
}

// defaultQuality fills in the capture-quality checks opts leaves nil with
// kiosk/photo, kiosk/finger and kiosk/signature at their defaults.
func defaultQuality(opts *Options) error {
	if opts.Faces == nil || opts.CheckCameraMode == nil {
		cfg := photo.DefaultConfig()
		if opts.Faces == nil {
			c, err := photo.New(cfg, nil)
			if err != nil {
				return err
			}
			opts.Faces = Faces(c)
		}
		if opts.CheckCameraMode == nil {
			opts.CheckCameraMode = cfg.CheckCameraMode
		}
	}
	if opts.Fingers == nil {
		s, err := finger.New(finger.DefaultConfig())
		if err != nil {
			return err
		}
		opts.Fingers = s
	}
	if opts.Signatures == nil {
		r, err := signature.New(signature.DefaultOptions())
		if err != nil {
			return err
		}
		opts.Signatures = Signatures(r)
	}
	return nil
}
