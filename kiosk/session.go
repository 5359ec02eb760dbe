package kiosk

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/kogge-fleet/kogge/kiosk/flow"
)

// session is a flow run as the UI gets it: the kiosk reads its views on
// the way, to know whether it still waits at its welcome screen.
type session struct {
	run   *flow.Run
	views chan flow.View
	done  chan struct{} // closed when the run has ended and its views are passed on
	at    atomic.Int32  // the step of the newest view
}

var _ flow.Session = (*session)(nil)

func newSession(run *flow.Run) *session {
	s := &session{run: run, views: make(chan flow.View, 1), done: make(chan struct{})}
	s.at.Store(int32(flow.StepWelcome))
	return s
}

// Views implements flow.Session.
func (s *session) Views() <-chan flow.View { return s.views }

// Send implements flow.Session.
func (s *session) Send(in flow.Input) error { return s.run.Send(in) }

// Number is the session's application number.
func (s *session) Number() string { return s.run.Number() }

// Outcome waits for the session's end and returns how it ended.
func (s *session) Outcome(ctx context.Context) (flow.Outcome, error) { return s.run.Wait(ctx) }

func (s *session) step() flow.Step { return flow.Step(s.at.Load()) }

func (s *session) ended() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// forward passes the run's views on, keeping only the newest for a slow
// reader, and closes them after the run's.
func (s *session) forward() {
	defer close(s.done)
	defer close(s.views)
	for v := range s.run.Views() {
		s.at.Store(int32(v.Step))
		publish(s.views, v)
	}
	<-s.run.Done()
}

// publish puts v in a channel of one, replacing a view not yet taken.
func publish(ch chan flow.View, v flow.View) {
	for {
		select {
		case ch <- v:
			return
		default:
			select {
			case <-ch:
			default:
			}
		}
	}
}

// Outcomer is the part of a flow session that tells how it ended;
// NextSession's flow sessions have it, out-of-service ones do not.
type Outcomer interface {
	Number() string
	Outcome(ctx context.Context) (flow.Outcome, error)
}

// notice is a session that only shows a view (out of service) and takes
// no input.
type notice struct {
	views chan flow.View
}

var _ flow.Session = (*notice)(nil)

func (n *notice) Views() <-chan flow.View { return n.views }

func (n *notice) Send(in flow.Input) error {
	return fmt.Errorf("kiosk: %w: the terminal is out of service", flow.ErrRefused)
}

// ended returns a session that has ended.
func ended() flow.Session {
	n := &notice{views: make(chan flow.View)}
	close(n.views)
	return n
}

// outOfService shows why the terminal cannot serve and ends when every
// required peripheral works again (or ctx ends).
func (k *Kiosk) outOfService(ctx context.Context) flow.Session {
	n := &notice{views: make(chan flow.View, 1)}
	k.wg.Go(func() {
		defer close(n.views)
		for {
			k.mu.Lock()
			changed := k.changed
			k.mu.Unlock()
			name, st, bad := k.unavailable()
			if !bad {
				return
			}
			publish(n.views, flow.View{Step: flow.StepOutOfService, Message: flow.MsgOutOfService,
				Args: map[string]string{"peripheral": name, "reason": st.String()}})
			select {
			case <-changed:
			case <-ctx.Done():
				return
			}
		}
	})
	return n
}

// broken shows that the terminal cannot start a session; it ends at the
// next change of a peripheral's state or after CheckInterval (the kiosk
// tries again then), or when ctx ends.
func (k *Kiosk) broken(ctx context.Context, err error) flow.Session {
	n := &notice{views: make(chan flow.View, 1)}
	k.mu.Lock()
	changed := k.changed
	k.mu.Unlock()
	publish(n.views, flow.View{Step: flow.StepOutOfService, Message: flow.MsgOutOfServiceError,
		Args: map[string]string{"reason": err.Error()}})
	again := make(chan struct{})
	stop := k.opts.Clock.AfterFunc(k.cfg.CheckInterval, func() { close(again) })
	k.wg.Go(func() {
		defer close(n.views)
		defer stop()
		select {
		case <-changed:
		case <-again:
		case <-ctx.Done():
		}
	})
	return n
}
