package flow

import (
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/agent"
	"github.com/kogge-fleet/kogge/protocol/casefile"
)

// Signature limits: a signature has at least minSignaturePoints samples;
// casefile bounds strokes and points.
const (
	minSignaturePoints = 10
	signatureTries     = 3
)

// signature is step 7: the strokes drawn on the touch area, rendered as a
// PNG and kept as stroke data. A signature that cannot be used is asked
// for again; after three such tries, or a Skip, it moves to the counter.
func (r *Run) signature() error {
	r.view = View{Step: StepSignature, Message: MsgSignature}
	tries := 0
	return r.wait(waiter{timeout: r.cfg.Timeouts.Signature, input: func(in Input) (bool, error) {
		switch in := in.(type) {
		case SignatureDone:
			err := r.takeSignature(in)
			if err == nil {
				return true, nil
			}
			tries++
			r.log.Info("signature not usable", "try", tries, "reason", err)
			if tries >= signatureTries {
				r.toCounter(CounterSignature)
				return true, nil
			}
			r.view.Message = MsgSignatureAgain
			r.show()
			return false, nil
		case Skip:
			r.toCounter(CounterSignature)
			return true, nil
		}
		return false, r.refuse(in)
	}})
}

// takeSignature checks and renders a signature and records it.
func (r *Run) takeSignature(in SignatureDone) error {
	if in.W <= 0 || in.H <= 0 || in.W > 65535 || in.H > 65535 {
		return fmt.Errorf("signature area %d×%d: out of range", in.W, in.H)
	}
	if len(in.Strokes) > casefile.MaxStrokes {
		return fmt.Errorf("%d strokes, at most %d", len(in.Strokes), casefile.MaxStrokes)
	}
	points := 0
	strokes := make([]casefile.Stroke, 0, len(in.Strokes))
	for _, s := range in.Strokes {
		if len(s) == 0 {
			continue
		}
		points += len(s)
		if points > casefile.MaxPoints {
			return fmt.Errorf("more than %d points", casefile.MaxPoints)
		}
		pts := make([]casefile.Point, len(s))
		for i, p := range s {
			pts[i] = casefile.Point{X: clampCoord(p.X, in.W), Y: clampCoord(p.Y, in.H), T: p.T, P: p.P}
		}
		strokes = append(strokes, casefile.Stroke{Points: pts})
	}
	if points < minSignaturePoints {
		return errors.New("too few points: empty or a dot")
	}
	png, err := r.deps.Signatures.Render(in.Strokes, in.W, in.H)
	r.held.bytes(png)
	if err == nil && len(png) == 0 {
		err = errors.New("the renderer returned no image")
	}
	if err != nil {
		for i := range strokes {
			clear(strokes[i].Points)
		}
		return fmt.Errorf("render: %w", err)
	}
	id := uuid.New()
	r.blobs = append(r.blobs, agent.Blob{ID: id, Role: "signature", Data: png})
	r.app.Signature = &casefile.Signature{Image: id, Strokes: strokes, Width: uint16(in.W), Height: uint16(in.H)}
	return nil
}

func clampCoord(v, limit int) uint16 {
	return uint16(max(0, min(v, limit)))
}
