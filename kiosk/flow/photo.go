package flow

import (
	"context"
	"errors"
	"image"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/agent"
	"github.com/kogge-fleet/kogge/drivers"
	"github.com/kogge-fleet/kogge/drivers/camera"
	"github.com/kogge-fleet/kogge/protocol/casefile"
)

// photo is step 4 (and 4b): up to Photo.Attempts capture windows. Each
// reads live frames, has every one assessed and shown with its guidance,
// and keeps the acceptable ones. The best by the rules (most mandatory
// criteria met, then most optional, then newest) is cropped; equally good
// ones are offered for choice first. A broken camera, a suspected
// presentation attack, a skip or no usable photo after the last attempt
// move the photo to the counter.
func (r *Run) photo() error {
	attempts := r.cfg.Photo.Attempts
	for attempt := 1; ; attempt++ {
		res, err := r.photoAttempt(attempt)
		if err != nil {
			return err
		}
		switch {
		case res == photoTaken:
			return nil
		case res == photoGiveUp, attempt >= attempts:
			r.toCounter(CounterFace)
			return nil
		case res == photoAgain:
			continue
		}
		r.view = View{Step: StepPhoto}
		again, err := r.askRetry(MsgPhotoRetry, attempt, attempts, r.cfg.Timeouts.Photo)
		if err != nil {
			return err
		}
		if !again {
			r.toCounter(CounterFace)
			return nil
		}
	}
}

type photoResult int

const (
	photoTaken  photoResult = iota + 1
	photoFailed             // no usable frame: ask for another attempt
	photoAgain              // the citizen asked for another attempt
	photoGiveUp             // skipped, camera broken, attack suspected
)

// shot is an assessed frame.
type shot struct {
	img image.Image
	fc  FaceCheck
	at  time.Time
	seq int
}

// Events of the camera reader.
type (
	camStarted struct{ mode camera.Mode }
	camFrame   struct{ f camera.Frame }
	camFailed  struct{ err error }
	photoTime  struct{}
)

// frames are the frames of one attempt: the most recent (for the PAD
// detector, and because the screen may still show them) and the
// acceptable ones. A frame that is neither any more is zeroed at once.
type frames struct {
	max    int
	recent []image.Image
	kept   []shot
}

func (b *frames) add(img image.Image) {
	b.recent = append(b.recent, img)
	if len(b.recent) > b.max {
		old := b.recent[0]
		copy(b.recent, b.recent[1:])
		b.recent[len(b.recent)-1] = nil
		b.recent = b.recent[:len(b.recent)-1]
		if !b.isKept(old) {
			zeroImage(old)
		}
	}
}

func (b *frames) isKept(img image.Image) bool {
	for _, s := range b.kept {
		if s.img == img {
			return true
		}
	}
	return false
}

// dispose hands the frames the screen may still show to hold (zeroed when
// the session ends) and zeroes the others now.
func (b *frames) dispose(hold *held, shown []shot) {
	keep := slices.Clone(b.recent)
	for _, s := range shown {
		keep = append(keep, s.img)
	}
	for _, img := range keep {
		hold.image(img)
	}
	for _, s := range b.kept {
		if !slices.Contains(keep, s.img) {
			zeroImage(s.img)
		}
	}
	b.recent, b.kept = nil, nil
}

// photoAttempt runs one capture window.
func (r *Run) photoAttempt(attempt int) (photoResult, error) {
	cfg := r.cfg.Photo
	r.view = View{Step: StepPhoto, Message: MsgPhotoStarting, Attempt: attempt, Attempts: cfg.Attempts}
	ctx, cancel := context.WithCancel(r.ctx)
	events, quit := make(chan any), make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { r.readFrames(ctx, events, quit) })
	stopTimer := r.clock.AfterFunc(cfg.Time, func() { deliver(quit, events, photoTime{}) })
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			stopTimer()
			close(quit)
			cancel()
			wg.Wait()
		}
	}
	defer stop()

	book := &frames{max: cfg.Recent}
	var (
		best    *FaceCheck // the best assessment of a frame that failed
		seq     int
		skipped bool
		broken  bool
	)
	err := r.wait(waiter{events: events, input: func(in Input) (bool, error) {
		if _, ok := in.(Skip); ok {
			skipped = true
			return true, nil
		}
		return false, r.refuse(in)
	}, event: func(ev any) (bool, error) {
		switch ev := ev.(type) {
		case camStarted:
			r.log.Info("camera started", "mode", ev.mode.String())
			r.view.Message = MsgPhotoLook
			r.show()
		case camFrame:
			seq++
			img := ev.f.Image
			fc := r.deps.Faces.Assess(img)
			book.add(img)
			r.view.Message, r.view.Frame, r.view.Guidance = MsgPhotoLook, img, fc.Guidance
			r.show()
			if fc.OK {
				at := ev.f.Time
				if at.IsZero() {
					at = r.clock.Now()
				}
				book.kept = append(book.kept, shot{img: img, fc: fc, at: at, seq: seq})
				return len(book.kept) >= cfg.GoodFrames, nil
			}
			if best == nil || better(fc, *best) {
				best = &fc
			}
		case camFailed:
			r.log.Warn("camera failed; the photo moves to the counter", "err", ev.err, "camera", r.deps.Camera.Status().String())
			broken = true
			return true, nil
		case photoTime:
			return true, nil
		}
		return false, nil
	}})
	stop()
	r.view.Frame, r.view.Guidance = nil, nil
	if err != nil {
		book.dispose(&r.held, nil)
		return 0, err
	}

	// The PAD score is logged and recorded for the office, never shown.
	var pad *casefile.PAD
	if len(book.recent) > 0 {
		pad = &casefile.PAD{Threshold: cfg.PADThreshold, Score: clampScore(r.deps.Faces.PAD(book.recent))}
		pad.Passed = pad.Score <= pad.Threshold
		r.log.Info("photo PAD score", "attempt", attempt, "score", pad.Score, "threshold", pad.Threshold, "passed", pad.Passed)
	}
	if len(book.kept) == 0 {
		if best != nil {
			r.recordFace(shot{fc: *best, at: r.clock.Now()}, pad, false, nil)
		}
		book.dispose(&r.held, nil)
		r.log.Info("photo attempt without an acceptable frame", "attempt", attempt, "frames", seq)
		switch {
		case skipped, broken:
			return photoGiveUp, nil
		}
		return photoFailed, nil
	}

	// The best by the rules, and those equally good, newest first.
	shots := slices.Clone(book.kept)
	slices.SortStableFunc(shots, func(a, b shot) int {
		if better(a.fc, b.fc) {
			return -1
		}
		if better(b.fc, a.fc) {
			return 1
		}
		return b.seq - a.seq
	})
	equal := shots[:1]
	for _, s := range shots[1:] {
		if len(equal) < cfg.Candidates && !better(shots[0].fc, s.fc) {
			equal = append(equal, s)
		}
	}
	record := func(chosen int, image []byte) {
		for i, s := range equal {
			if i == chosen {
				r.recordFace(s, pad, true, image)
			} else {
				r.recordFace(s, pad, false, nil)
			}
		}
	}
	if pad != nil && !pad.Passed {
		r.log.Warn("presentation attack suspected; the photo moves to the counter", "attempt", attempt,
			"score", pad.Score, "threshold", pad.Threshold)
		record(-1, nil)
		book.dispose(&r.held, nil)
		return photoGiveUp, nil
	}
	if skipped || broken {
		record(-1, nil)
		book.dispose(&r.held, nil)
		return photoGiveUp, nil
	}

	chosen := 0
	if len(equal) > 1 {
		var res photoResult
		chosen, res, err = r.choosePhoto(equal, attempt)
		if err != nil || res != 0 {
			record(-1, nil)
			book.dispose(&r.held, equal)
			return res, err
		}
	}
	s := equal[chosen]
	jpeg, err := r.deps.Faces.Crop(s.img, s.fc)
	r.held.bytes(jpeg)
	if err != nil || len(jpeg) == 0 {
		r.log.Error("cannot crop the photo; it moves to the counter", "err", err)
		record(-1, nil)
		book.dispose(&r.held, equal)
		return photoGiveUp, nil
	}
	record(chosen, jpeg)
	book.dispose(&r.held, equal)
	r.log.Info("photo taken", "attempt", attempt, "frames", seq, "candidates", len(equal))
	return photoTaken, nil
}

// choosePhoto is step 4b: the citizen picks one of the equally good
// photos, or asks for another attempt, or skips.
func (r *Run) choosePhoto(equal []shot, attempt int) (int, photoResult, error) {
	cands := make([]image.Image, len(equal))
	for i, s := range equal {
		cands[i] = region(s.img, s.fc.Region)
	}
	r.view = View{Step: StepPhotoChoice, Message: MsgPhotoChoose, Candidates: cands,
		Attempt: attempt, Attempts: r.cfg.Photo.Attempts}
	chosen, res := -1, photoResult(0)
	err := r.wait(waiter{timeout: r.cfg.Timeouts.Photo, input: func(in Input) (bool, error) {
		switch in := in.(type) {
		case PickPhoto:
			if in.Index >= 0 && in.Index < len(cands) {
				chosen = in.Index
				return true, nil
			}
		case Retry:
			if attempt < r.cfg.Photo.Attempts {
				res = photoAgain
				return true, nil
			}
		case Skip:
			res = photoGiveUp
			return true, nil
		}
		return false, r.refuse(in)
	}})
	r.view.Candidates = nil
	return chosen, res, err
}

// readFrames starts the camera, then hands frames to the step until it
// ends; a frame it cannot hand over it zeroes. A late frame is no error;
// a camera that is gone is.
func (r *Run) readFrames(ctx context.Context, events chan<- any, quit <-chan struct{}) {
	cam := r.deps.Camera
	mode, err := cam.Start(ctx, r.cfg.Photo.Mode)
	if err != nil {
		if ctx.Err() == nil {
			deliver(quit, events, camFailed{err})
		}
		return
	}
	defer cam.Stop()
	if !deliver(quit, events, camStarted{mode}) {
		return
	}
	late := 0
	for ctx.Err() == nil {
		f, err := cam.Next(ctx)
		switch {
		case ctx.Err() != nil:
			if f.Image != nil {
				zeroImage(f.Image)
			}
			return
		case errors.Is(err, drivers.ErrTimeout) && late < 3:
			late++
			continue
		case err != nil:
			deliver(quit, events, camFailed{err})
			return
		}
		late = 0
		if !deliver(quit, events, camFrame{f}) {
			zeroImage(f.Image)
			return
		}
	}
}

// better reports whether a is better than b by the rules: more mandatory
// criteria met, then more optional ones.
func better(a, b FaceCheck) bool {
	if a.Mandatory != b.Mandatory {
		return a.Mandatory > b.Mandatory
	}
	return a.Optional > b.Optional
}

// region is the part of img the crop comes from, sharing its pixels.
func region(img image.Image, rect image.Rectangle) image.Image {
	sub, ok := img.(interface {
		SubImage(image.Rectangle) image.Image
	})
	if !ok || rect.Empty() || !rect.In(img.Bounds()) {
		return img
	}
	return sub.SubImage(rect)
}

// recordFace adds a face attempt; a selected one carries its image.
func (r *Run) recordFace(s shot, pad *casefile.PAD, selected bool, jpeg []byte) {
	if len(r.app.Face) >= casefile.MaxAttempts {
		return
	}
	a := casefile.FaceAttempt{N: len(r.app.Face) + 1, At: casefile.At(s.at), Checks: checks(s.fc.Checks)}
	if pad != nil {
		p := *pad
		a.PAD = &p
	}
	if selected && len(jpeg) > 0 {
		a.Selected, a.Image = true, uuid.New()
		r.blobs = append(r.blobs, agent.Blob{ID: a.Image, Role: "photo", Data: jpeg})
	}
	r.app.Face = append(r.app.Face, a)
}

// checks converts the assessment's criteria for the casefile, leaving out
// what it cannot hold (no name, values that are not finite).
func checks(in []CheckValue) []casefile.Check {
	var out []casefile.Check
	finite := func(p *float64) bool { return p == nil || !math.IsNaN(*p) && !math.IsInf(*p, 0) }
	for _, c := range in {
		if c.Name == "" || len(c.Name) > casefile.MaxText || !finite(&c.Value) || !finite(c.Min) || !finite(c.Max) ||
			len(out) == casefile.MaxChecks {
			continue
		}
		cc := casefile.Check{Name: c.Name, Value: c.Value, Mandatory: c.Mandatory, Passed: c.Passed}
		if c.Min != nil {
			v := *c.Min
			cc.Min = &v
		}
		if c.Max != nil {
			v := *c.Max
			cc.Max = &v
		}
		out = append(out, cc)
	}
	return out
}

// clampScore keeps a PAD score in [0,1]; a detector that gives no number
// counts as an attack (1).
func clampScore(s float64) float64 {
	switch {
	case math.IsNaN(s) || s > 1:
		return 1
	case s < 0:
		return 0
	}
	return s
}
