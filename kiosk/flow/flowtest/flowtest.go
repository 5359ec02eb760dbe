// Package flowtest provides fakes for testing code around kiosk/flow: a
// clock that moves only when told, scriptable photo, fingerprint and
// signature checkers, a saver that keeps what it was handed, an in-memory
// store for the application numbers, and a helper that waits for a view.
//
// The fakes keep references to every buffer they hand out or receive, so
// that a test can check the session's wipe zeroed them.
package flowtest

import (
	"context"
	"errors"
	"fmt"
	"image"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/agent"
	"github.com/kogge-fleet/kogge/kiosk/flow"
	"github.com/kogge-fleet/kogge/protocol/casefile"
)

// Clock is a flow.Clock whose time moves only with Advance. Timers fire
// in the goroutine that calls Advance, in the order they are due.
type Clock struct {
	mu     sync.Mutex
	now    time.Time
	seq    int
	timers []*timer
}

type timer struct {
	due  time.Time
	seq  int
	f    func()
	done bool
}

var _ flow.Clock = (*Clock)(nil)

// NewClock returns a clock standing at t.
func NewClock(t time.Time) *Clock { return &Clock{now: t} }

// Now implements flow.Clock.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc implements flow.Clock.
func (c *Clock) AfterFunc(d time.Duration, f func()) func() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	t := &timer{due: c.now.Add(d), seq: c.seq, f: f}
	c.timers = append(c.timers, t)
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		if t.done {
			return false
		}
		t.done = true
		c.timers = slices.DeleteFunc(c.timers, func(x *timer) bool { return x == t })
		return true
	}
}

// Advance moves the clock by d and runs the timers that fall due, each
// at its time, in order; timers they set are run too if due.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	end := c.now.Add(d)
	c.mu.Unlock()
	for {
		c.mu.Lock()
		var next *timer
		for _, t := range c.timers {
			if !t.due.After(end) && (next == nil || t.due.Before(next.due) || t.due.Equal(next.due) && t.seq < next.seq) {
				next = t
			}
		}
		if next == nil {
			c.now = end
			c.mu.Unlock()
			return
		}
		next.done = true
		c.timers = slices.DeleteFunc(c.timers, func(x *timer) bool { return x == next })
		if next.due.After(c.now) {
			c.now = next.due
		}
		c.mu.Unlock()
		next.f()
	}
}

// Timers returns how many timers are set.
func (c *Clock) Timers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// Await waits up to timeout (real time) for a view that ok accepts and
// returns it. It fails when the session ends or the time is up, naming
// the last view seen.
func Await(views <-chan flow.View, timeout time.Duration, ok func(flow.View) bool) (flow.View, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	var last flow.View
	seen := false
	for {
		select {
		case v, open := <-views:
			if !open {
				return last, fmt.Errorf("the session ended; last view: %s", describe(last, seen))
			}
			last, seen = v, true
			if ok(v) {
				return v, nil
			}
		case <-t.C:
			return last, fmt.Errorf("no such view within %v; last view: %s", timeout, describe(last, seen))
		}
	}
}

// AtStep accepts a view of step s (without a timeout warning).
func AtStep(s flow.Step) func(flow.View) bool {
	return func(v flow.View) bool { return v.Step == s && !v.Warning }
}

// AtMessage accepts a view of step s showing message.
func AtMessage(s flow.Step, message string) func(flow.View) bool {
	return func(v flow.View) bool { return v.Step == s && v.Message == message && !v.Warning }
}

func describe(v flow.View, seen bool) string {
	if !seen {
		return "none"
	}
	return fmt.Sprintf("%s %q warning=%v attempt=%d/%d counter=%v", v.Step, v.Message, v.Warning, v.Attempt, v.Attempts, v.Counter)
}

// OK is an assessment that passes: 10 mandatory and 3 optional criteria
// met, the crop region the frame's middle.
func OK(frame image.Image) flow.FaceCheck {
	b := frame.Bounds()
	lo, hi := 0.3, 0.5
	return flow.FaceCheck{
		Checks: []flow.CheckValue{
			{Name: "roll", Value: 1.5, Min: ptr(-8), Max: ptr(8), Mandatory: true, Passed: true},
			{Name: "eye-position", Value: 0.42, Min: &lo, Max: &hi, Mandatory: true, Passed: true},
		},
		Mandatory: 10, Optional: 3, OK: true, Faces: 1,
		Region: image.Rect(b.Min.X+b.Dx()/4, b.Min.Y, b.Max.X-b.Dx()/4, b.Max.Y),
	}
}

// Fail is an assessment that fails with the guidance keys.
func Fail(guidance ...string) flow.FaceCheck {
	return flow.FaceCheck{
		Checks:   []flow.CheckValue{{Name: "head-width", Value: 0.31, Min: ptr(0.5), Max: ptr(0.75), Mandatory: true}},
		Guidance: guidance, Mandatory: 8, Optional: 1, Faces: 1,
	}
}

func ptr(f float64) *float64 { return &f }

// Faces is a scriptable flow.Faces.
type Faces struct {
	// Check assesses the n-th frame (from 1); nil: every frame is OK.
	Check func(n int, frame image.Image) flow.FaceCheck
	// PADScore is what PAD returns.
	PADScore float64
	// CropErr, if set, makes Crop fail.
	CropErr error

	mu       sync.Mutex
	n        int
	crops    [][]byte
	cropped  []image.Image
	padCalls int
}

var _ flow.Faces = (*Faces)(nil)

// Assess implements flow.Faces.
func (f *Faces) Assess(frame image.Image) flow.FaceCheck {
	f.mu.Lock()
	f.n++
	n, check := f.n, f.Check
	f.mu.Unlock()
	if check == nil {
		return OK(frame)
	}
	return check(n, frame)
}

// Crop implements flow.Faces: 4 KiB standing for the JPEG.
func (f *Faces) Crop(frame image.Image, fc flow.FaceCheck) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cropped = append(f.cropped, frame)
	if f.CropErr != nil {
		return nil, f.CropErr
	}
	b := make([]byte, 4096)
	copy(b, "\xff\xd8\xff\xe0 fake JPEG")
	for i := 16; i < len(b); i++ {
		b[i] = byte(i) | 1
	}
	f.crops = append(f.crops, b)
	return b, nil
}

// PAD implements flow.Faces.
func (f *Faces) PAD(frames []image.Image) float64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.padCalls++
	return f.PADScore
}

// Assessed returns how many frames were assessed.
func (f *Faces) Assessed() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

// Crops returns the crops handed out (the buffers themselves).
func (f *Faces) Crops() [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.crops)
}

// Cropped returns the frames Crop was asked to crop.
func (f *Faces) Cropped() []image.Image {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.cropped)
}

// PADCalls returns how often PAD was asked.
func (f *Faces) PADCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.padCalls
}

// Fingers is a scriptable flow.Fingers.
type Fingers struct {
	// Scores are returned in order; the last repeats. None: 60.
	Scores []uint8

	mu     sync.Mutex
	n      int
	images []*image.Gray
}

var _ flow.Fingers = (*Fingers)(nil)

// Score implements flow.Fingers.
func (f *Fingers) Score(img *image.Gray) uint8 {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.images = append(f.images, img)
	f.n++
	switch {
	case len(f.Scores) == 0:
		return 60
	case f.n <= len(f.Scores):
		return f.Scores[f.n-1]
	}
	return f.Scores[len(f.Scores)-1]
}

// Images returns the images scored (the images themselves).
func (f *Fingers) Images() []*image.Gray {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.images)
}

// Signatures is a scriptable flow.Signatures.
type Signatures struct {
	// Err, if set, makes Render fail.
	Err error

	mu   sync.Mutex
	pngs [][]byte
}

var _ flow.Signatures = (*Signatures)(nil)

// Render implements flow.Signatures: 2 KiB standing for the PNG.
func (s *Signatures) Render(strokes [][]flow.Point, w, h int) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Err != nil {
		return nil, s.Err
	}
	b := make([]byte, 2048)
	copy(b, "\x89PNG\r\n\x1a\n fake")
	for i := 16; i < len(b); i++ {
		b[i] = byte(i) | 1
	}
	s.pngs = append(s.pngs, b)
	return b, nil
}

// PNGs returns the PNGs handed out (the buffers themselves).
func (s *Signatures) PNGs() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.pngs)
}

// Saver is a flow.Saver that keeps what it is handed.
type Saver struct {
	// Err, if set, makes Capture fail.
	Err error

	mu       sync.Mutex
	captures []agent.Capture
	apps     []*casefile.Application
	blobs    []map[uuid.UUID][]byte
}

var _ flow.Saver = (*Saver)(nil)

// Capture implements flow.Saver. It decodes the body and copies the blobs,
// as sealing would, and keeps the capture's own buffers too.
func (s *Saver) Capture(ctx context.Context, c agent.Capture) (agent.Receipt, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.captures = append(s.captures, c)
	if s.Err != nil {
		return agent.Receipt{}, s.Err
	}
	if err := ctx.Err(); err != nil {
		return agent.Receipt{}, err
	}
	if c.Kind != casefile.KindApplication {
		return agent.Receipt{}, fmt.Errorf("capture of kind %q, want %s", c.Kind, casefile.KindApplication)
	}
	app, err := casefile.DecodeApplication(c.Body)
	if err != nil {
		return agent.Receipt{}, err
	}
	copies := map[uuid.UUID][]byte{}
	for _, b := range c.Blobs {
		if b.ID == uuid.Nil {
			return agent.Receipt{}, errors.New("blob without id")
		}
		copies[b.ID] = slices.Clone(b.Data)
	}
	s.apps = append(s.apps, app)
	s.blobs = append(s.blobs, copies)
	return agent.Receipt{ID: uuid.New(), Seq: uint64(len(s.apps)), CreatedAt: time.Now(), KeyID: c.Office + "-1"}, nil
}

// Captures returns the captures handed over (with their buffers).
func (s *Saver) Captures() []agent.Capture {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.captures)
}

// Applications returns the applications saved, decoded.
func (s *Saver) Applications() []*casefile.Application {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.apps)
}

// Blobs returns copies of the blobs of the i-th saved application, by id.
func (s *Saver) Blobs(i int) map[uuid.UUID][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.blobs[i]
}

// KV is an in-memory flow.KV.
type KV struct {
	// Err, if set, makes every call fail.
	Err error

	mu sync.Mutex
	m  map[string][]byte
}

var _ flow.KV = (*KV)(nil)

// GetValue implements flow.KV.
func (k *KV) GetValue(ctx context.Context, key string) ([]byte, bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.Err != nil {
		return nil, false, k.Err
	}
	v, ok := k.m[key]
	return slices.Clone(v), ok, nil
}

// PutValue implements flow.KV.
func (k *KV) PutValue(ctx context.Context, key string, value []byte) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.Err != nil {
		return k.Err
	}
	if k.m == nil {
		k.m = map[string][]byte{}
	}
	k.m[key] = slices.Clone(value)
	return nil
}

// Zero reports whether every byte of b is zero.
func Zero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}
