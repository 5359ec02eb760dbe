//go:build !linux

package camera

import (
	"context"
	"errors"
	"time"

	"github.com/kogge-fleet/kogge/drivers"
)

// V4L2 needs Linux; elsewhere it reports itself missing.
type V4L2 struct{ path string }

// V4L2Options tune V4L2 (Linux only).
type V4L2Options struct {
	FrameTimeout time.Duration
	Buffers      int
}

// NewV4L2 returns a camera that is missing on this system.
func NewV4L2(path string, _ V4L2Options) *V4L2 { return &V4L2{path: path} }

var errNoV4L2 = errors.New("cameras through Video4Linux2 need Linux")

func (c *V4L2) Start(context.Context, Mode) (Mode, error) { return Mode{}, errNoV4L2 }
func (c *V4L2) Next(context.Context) (Frame, error)       { return Frame{}, errNoV4L2 }
func (c *V4L2) Stop() error                               { return nil }
func (c *V4L2) Status() drivers.Status {
	return drivers.Status{State: drivers.StateMissing, Reason: errNoV4L2.Error()}
}
