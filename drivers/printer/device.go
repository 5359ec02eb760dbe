package printer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/kogge-fleet/kogge/drivers"
	"github.com/kogge-fleet/kogge/drivers/printer/escpos"
)

var _ Printer = (*Device)(nil)

// Options tune a [Device]. The zero value is usable.
type Options struct {
	// DialTimeout bounds connecting to the printer. Default 3 s.
	DialTimeout time.Duration
	// StatusTimeout bounds the answer to one status request; printers
	// answer at once. Default 2 s.
	StatusTimeout time.Duration
	// JobTimeout bounds a Print or Check whose context has no deadline.
	// Default 60 s.
	JobTimeout time.Duration
	// Baud is the line speed of a serial printer. Default 9600.
	Baud int
	// Log receives state changes. Default: discard.
	Log *slog.Logger
}

func (o *Options) setDefaults() {
	if o.DialTimeout == 0 {
		o.DialTimeout = 3 * time.Second
	}
	if o.StatusTimeout == 0 {
		o.StatusTimeout = 2 * time.Second
	}
	if o.JobTimeout == 0 {
		o.JobTimeout = 60 * time.Second
	}
	if o.Baud == 0 {
		o.Baud = 9600
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
}

// Validate reports options that cannot work.
func (o *Options) Validate() error {
	if o.DialTimeout < 0 || o.StatusTimeout < 0 || o.JobTimeout < 0 {
		return errors.New("timeouts must not be negative")
	}
	if o.Baud < 0 {
		return fmt.Errorf("baud rate %d is negative", o.Baud)
	}
	return nil
}

// link is an open connection to a printer. After any error the device
// closes it and opens a new one for the next call.
type link interface {
	write(ctx context.Context, p []byte) error
	read(ctx context.Context, p []byte) (int, error)
	close() error
}

// dialer opens a link.
type dialer func(ctx context.Context) (link, error)

// Device is a printer on some link. Calls are serialised: one job or check
// at a time.
type Device struct {
	name string // "tcp 10.0.0.7:9100", for messages
	dial dialer
	opts Options
	log  *slog.Logger

	turn chan struct{} // holds a token while a call uses the link
	link link          // guarded by turn

	mu     sync.Mutex
	status drivers.Status
}

func newDevice(name string, dial dialer, opts Options) (*Device, error) {
	opts.setDefaults()
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("printer: %w", err)
	}
	d := &Device{
		name: name, dial: dial, opts: opts,
		log:    opts.Log.With("printer", name),
		turn:   make(chan struct{}, 1),
		status: drivers.Status{State: drivers.StateMissing, Reason: "not checked yet"},
	}
	return d, nil
}

// Close closes the link, if open. The device may be used again.
func (d *Device) Close() error {
	d.turn <- struct{}{}
	defer func() { <-d.turn }()
	if d.link == nil {
		return nil
	}
	err := d.link.close()
	d.link = nil
	return err
}

// Status implements [Printer].
func (d *Device) Status() drivers.Status {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.status
}

func (d *Device) setStatus(s drivers.Status) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if s != d.status {
		d.log.Info("printer state", "state", s.State.String(), "reason", s.Reason)
	}
	d.status = s
}

// begin waits for the device's turn, bounded by ctx and JobTimeout.
func (d *Device) begin(ctx context.Context) (context.Context, func(), error) {
	ctx, cancel := context.WithTimeout(ctx, d.opts.JobTimeout)
	select {
	case d.turn <- struct{}{}:
	case <-ctx.Done():
		cancel()
		return nil, nil, fmt.Errorf("printer %s busy with another job: %w", d.name, errors.Join(drivers.ErrTimeout, ctx.Err()))
	}
	return ctx, func() { <-d.turn; cancel() }, nil
}

// Check implements [Printer].
func (d *Device) Check(ctx context.Context) (drivers.Status, error) {
	ctx, end, err := d.begin(ctx)
	if err != nil {
		return d.Status(), err
	}
	defer end()
	st, err := d.query(ctx)
	if err != nil {
		return d.Status(), err
	}
	return statusOf(st), nil
}

// Print implements [Printer].
func (d *Device) Print(ctx context.Context, job []byte) error {
	ctx, end, err := d.begin(ctx)
	if err != nil {
		return err
	}
	defer end()
	before, err := d.query(ctx)
	if err != nil {
		return err
	}
	if err := refusal(before); err != nil {
		return fmt.Errorf("printer %s: %w", d.name, err)
	}
	if err := d.link.write(ctx, job); err != nil {
		return d.lost(fmt.Errorf("send job to printer %s: %w", d.name, err))
	}
	after, err := d.query(ctx)
	if err != nil {
		return fmt.Errorf("%w (the job was sent; it may have printed)", err)
	}
	if err := refusal(after); err != nil {
		return fmt.Errorf("printer %s: %w: the printout may be incomplete", d.name, err)
	}
	return nil
}

// query asks for the four status bytes, opening the link if needed, and
// records the state.
func (d *Device) query(ctx context.Context) (escpos.Status, error) {
	if d.link == nil {
		dctx, cancel := context.WithTimeout(ctx, d.opts.DialTimeout)
		l, err := d.dial(dctx)
		cancel()
		if err != nil {
			err = fmt.Errorf("connect to printer %s: %w", d.name, err)
			d.setStatus(drivers.Status{State: drivers.StateMissing, Reason: "printer not reachable: " + err.Error()})
			return escpos.Status{}, errors.Join(drivers.ErrDisconnected, err)
		}
		d.link = l
	}
	var st escpos.Status
	for _, k := range []escpos.StatusKind{escpos.PrinterStatus, escpos.OfflineCause, escpos.ErrorCause, escpos.PaperSensor} {
		if err := d.ask(ctx, k, &st); err != nil {
			return st, d.lost(fmt.Errorf("status of printer %s: %w", d.name, err))
		}
	}
	d.setStatus(statusOf(st))
	return st, nil
}

func (d *Device) ask(ctx context.Context, k escpos.StatusKind, st *escpos.Status) error {
	ctx, cancel := context.WithTimeout(ctx, d.opts.StatusTimeout)
	defer cancel()
	if err := d.link.write(ctx, escpos.StatusRequest(k)); err != nil {
		return err
	}
	var b [1]byte
	for {
		n, err := d.link.read(ctx, b[:])
		if err != nil {
			return fmt.Errorf("no answer to status request %d: %w", k, err)
		}
		if n == 1 {
			return st.Apply(k, b[0])
		}
	}
}

// lost closes a broken link and records the state.
func (d *Device) lost(err error) error {
	if d.link != nil {
		d.link.close()
		d.link = nil
	}
	d.setStatus(drivers.Status{State: drivers.StateMissing, Reason: "printer not answering: " + err.Error()})
	return err
}

// refusal says why a printer in state st cannot print, or nil.
func refusal(st escpos.Status) error {
	switch {
	case st.CoverOpen:
		return ErrCoverOpen
	case st.PaperOut:
		return ErrPaperOut
	case st.Offline || st.Error:
		return errors.New("printer is offline: " + statusOf(st).Reason)
	}
	return nil
}

// statusOf maps the printer's bits to a peripheral state with a reason a
// person can act on.
func statusOf(st escpos.Status) drivers.Status {
	switch {
	case st.CoverOpen:
		return drivers.Status{State: drivers.StateError, Reason: "cover open: close the printer cover"}
	case st.PaperOut:
		return drivers.Status{State: drivers.StateError, Reason: "paper out: load a new roll"}
	case st.CutterError:
		return drivers.Status{State: drivers.StateError, Reason: "cutter error: check for jammed paper"}
	case st.Unrecoverable:
		return drivers.Status{State: drivers.StateError, Reason: "printer error: switch the printer off and on"}
	case st.AutoRecoverable:
		return drivers.Status{State: drivers.StateDegraded, Reason: "printer paused (head too hot?); it recovers by itself"}
	case st.Error || st.Offline:
		return drivers.Status{State: drivers.StateError, Reason: "printer offline"}
	case st.PaperNearEnd:
		return drivers.Status{State: drivers.StateDegraded, Reason: "paper low: replace the roll soon"}
	}
	return drivers.Status{State: drivers.StateOK}
}
