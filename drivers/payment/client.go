package payment

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/kogge-fleet/kogge/drivers"
	"github.com/kogge-fleet/kogge/drivers/payment/zvt"
)

var _ Terminal = (*Client)(nil)

// Options tune a [Client]. The zero value is usable.
type Options struct {
	// Password is the terminal's six-digit ECR password. Default "000000".
	Password string
	// Config is the registration's config byte. Default 0xBE: the ECR
	// prints receipts (as print lines), gets intermediate status, and
	// controls payment and administration (an unattended kiosk).
	Config byte
	// Currency is the ISO 4217 numeric currency. Default 978 (EUR).
	Currency int
	// Baud is the line speed of a serial terminal. Default 9600.
	Baud int
	// ConnectTimeout bounds connecting and registering. Default 10 s.
	ConnectTimeout time.Duration
	// AckTimeout is how long the terminal may take to acknowledge a
	// command. Default 5 s.
	AckTimeout time.Duration
	// IdleTimeout is the longest silence of the terminal while a command
	// runs (the customer reading the display, typing the PIN). Default
	// 90 s.
	IdleTimeout time.Duration
	// CommandTimeout bounds a whole command. Default 5 min.
	CommandTimeout time.Duration
	// AbortTimeout is how long to wait for the terminal's answer after
	// asking it to abort. Default 15 s.
	AbortTimeout time.Duration
	// ClockSkew is how far the terminal's clock may be from ours when
	// Reconcile matches a transaction by time. Default 2 min.
	ClockSkew time.Duration
	// Location is the terminal's time zone. Default time.Local.
	Location *time.Location
	// OnStatus, if set, receives the terminal's intermediate status
	// ("insert your card") for the display. It must not block.
	OnStatus func(code byte, text string)
	// Log receives what happens. Default: discard.
	Log *slog.Logger
}

func (o *Options) setDefaults() {
	if o.Password == "" {
		o.Password = "000000"
	}
	if o.Config == 0 {
		o.Config = zvt.ConfigReceiptPaymentByECR | zvt.ConfigReceiptAdminByECR | zvt.ConfigIntermediateStatus |
			zvt.ConfigECRPaymentControl | zvt.ConfigECRAdminControl | zvt.ConfigPrintLines
	}
	if o.Currency == 0 {
		o.Currency = zvt.EUR
	}
	if o.Baud == 0 {
		o.Baud = 9600
	}
	defaultDur := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	defaultDur(&o.ConnectTimeout, 10*time.Second)
	defaultDur(&o.AckTimeout, 5*time.Second)
	defaultDur(&o.IdleTimeout, 90*time.Second)
	defaultDur(&o.CommandTimeout, 5*time.Minute)
	defaultDur(&o.AbortTimeout, 15*time.Second)
	defaultDur(&o.ClockSkew, 2*time.Minute)
	if o.Location == nil {
		o.Location = time.Local
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
}

// Validate reports options that cannot work.
func (o *Options) Validate() error {
	if _, err := zvt.Password(o.Password); err != nil {
		return err
	}
	if _, err := zvt.Currency(o.Currency); err != nil {
		return err
	}
	for _, d := range []time.Duration{o.ConnectTimeout, o.AckTimeout, o.IdleTimeout, o.CommandTimeout, o.AbortTimeout, o.ClockSkew} {
		if d < 0 {
			return errors.New("timeouts must not be negative")
		}
	}
	return nil
}

// link carries APDUs to and from the terminal. After an error it is
// closed and a new one opened for the next command.
type link interface {
	send(ctx context.Context, a zvt.APDU) error
	recv(ctx context.Context) (zvt.APDU, error)
	close() error
}

type dialer func(ctx context.Context) (link, error)

// Client is a ZVT cash-register client for one terminal. Commands are
// serialised.
type Client struct {
	name string
	dial dialer
	opts Options
	log  *slog.Logger

	turn       chan struct{} // a token while a command runs
	link       link          // guarded by turn
	registered bool          // guarded by turn
	lastTrace  int           // guarded by turn

	mu     sync.Mutex
	status drivers.Status
}

func newClient(name string, dial dialer, opts Options) (*Client, error) {
	opts.setDefaults()
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("payment: %w", err)
	}
	return &Client{
		name: name, dial: dial, opts: opts,
		log:    opts.Log.With("terminal", name),
		turn:   make(chan struct{}, 1),
		status: drivers.Status{State: drivers.StateMissing, Reason: "not connected yet"},
	}, nil
}

// Status implements [Terminal].
func (c *Client) Status() drivers.Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status
}

func (c *Client) setStatus(st drivers.State, reason string) {
	s := drivers.Status{State: st, Reason: reason}
	c.mu.Lock()
	defer c.mu.Unlock()
	if s != c.status {
		c.log.Info("payment terminal state", "state", st.String(), "reason", reason)
	}
	c.status = s
}

// Close closes the connection; the client may be used again.
func (c *Client) Close() error {
	c.turn <- struct{}{}
	defer func() { <-c.turn }()
	return c.drop()
}

func (c *Client) drop() error {
	c.registered = false
	if c.link == nil {
		return nil
	}
	err := c.link.close()
	c.link = nil
	return err
}

// begin takes the client's turn, bounded by ctx.
func (c *Client) begin(ctx context.Context) (func(), error) {
	select {
	case c.turn <- struct{}{}:
		return func() { <-c.turn }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("payment terminal %s busy with another command: %w", c.name, errors.Join(drivers.ErrTimeout, ctx.Err()))
	}
}

// connect opens the link and registers, if not done yet.
func (c *Client) connect(ctx context.Context) error {
	if c.link != nil && c.registered {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.ConnectTimeout)
	defer cancel()
	if c.link == nil {
		l, err := c.dial(ctx)
		if err != nil {
			err = fmt.Errorf("connect to payment terminal %s: %w", c.name, err)
			c.setStatus(drivers.StateMissing, "terminal not reachable: "+err.Error())
			return errors.Join(drivers.ErrDisconnected, err)
		}
		c.link = l
	}
	reg, err := zvt.Registration(c.opts.Password, c.opts.Config, c.opts.Currency)
	if err != nil {
		return err
	}
	r, _, err := c.exchange(ctx, reg)
	if err == nil && r.abort >= 0 {
		err = fmt.Errorf("terminal refused the registration: %s", zvt.ResultText(byte(r.abort)))
	}
	if err != nil {
		c.drop()
		err = fmt.Errorf("register with payment terminal %s: %w", c.name, err)
		c.setStatus(drivers.StateError, err.Error())
		return err
	}
	c.registered = true
	c.setStatus(drivers.StateOK, "")
	return nil
}

// reply is what the terminal said during one command.
type reply struct {
	info       *zvt.StatusInfo
	completion zvt.Fields
	completed  bool
	abort      int // result code of 06 1E, -1 if none
	receipt    []string
	merchant   []string
	aborted    bool // we asked the terminal to abort
}

// refusal is a negative acknowledgement: the terminal did not start the
// command.
type refusal struct{ code byte }

func (r refusal) Error() string {
	return fmt.Sprintf("terminal refused the command: %s (%#02x)", zvt.ResultText(r.code), r.code)
}

// exchange sends cmd and handles the terminal's messages until the command
// completes or aborts. sent reports whether the terminal may have received
// cmd. Cancelling ctx asks the terminal to abort and waits AbortTimeout for
// its answer. After an error the link is closed.
func (c *Client) exchange(ctx context.Context, cmd zvt.APDU) (r reply, sent bool, err error) {
	r.abort = -1
	defer func() {
		if err != nil {
			c.drop()
		}
	}()
	// The command's own clock: ctx only asks for an abort.
	run, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.CommandTimeout)
	defer cancel()

	if err := c.link.send(run, cmd); err != nil {
		return r, true, fmt.Errorf("send %v: %w", cmd, err)
	}
	wait := c.opts.AckTimeout
	acked := false
	for {
		a, err := c.next(ctx, run, wait, &r)
		if err != nil {
			if !acked {
				err = fmt.Errorf("no acknowledgement: %w", err)
			}
			return r, true, err
		}
		switch {
		case a.IsAck():
			acked = true // of our command, or of our abort request
			wait = c.opts.IdleTimeout
			continue
		case a.IsNack():
			if r.aborted && acked {
				continue // the terminal cannot abort now; wait for the end
			}
			return r, acked, refusal{code: a.Instr}
		}
		acked = true // a message of the command: the command was taken
		wait = c.opts.IdleTimeout
		if err := c.link.send(run, c.answer(a, &r)); err != nil {
			return r, true, fmt.Errorf("acknowledge %v: %w", a, err)
		}
		if r.completed || r.abort >= 0 {
			return r, true, nil
		}
	}
}

// next receives the next APDU, asking the terminal to abort once when ctx
// is cancelled.
func (c *Client) next(ctx, run context.Context, wait time.Duration, r *reply) (zvt.APDU, error) {
	for {
		rctx, cancel := context.WithTimeout(run, wait)
		if !r.aborted {
			stop := context.AfterFunc(ctx, cancel)
			defer stop()
		}
		a, err := c.link.recv(rctx)
		cancel()
		if err == nil {
			return a, nil
		}
		if r.aborted || ctx.Err() == nil || run.Err() != nil || !errors.Is(err, drivers.ErrTimeout) {
			return a, err
		}
		// The caller gave up: ask the terminal to abort, then wait for
		// its answer.
		c.log.Info("asking payment terminal to abort")
		r.aborted = true
		if err := c.link.send(run, zvt.AbortRequest()); err != nil {
			return zvt.APDU{}, fmt.Errorf("send abort: %w", err)
		}
		wait = c.opts.AbortTimeout
	}
}

// answer records a terminal message and returns the acknowledgement.
func (c *Client) answer(a zvt.APDU, r *reply) zvt.APDU {
	switch a.Ctrl() {
	case zvt.MsgIntermediate:
		if code, err := zvt.ParseIntermediate(a.Data); err == nil && c.opts.OnStatus != nil {
			c.opts.OnStatus(code, zvt.IntermediateText(code))
		}
	case zvt.MsgStatusInfo:
		info, err := zvt.ParseStatusInfo(a.Data)
		if err != nil {
			c.log.Warn("payment terminal: status information only partly understood", "err", err)
		}
		r.info = &info
		if info.Trace > 0 {
			c.lastTrace = info.Trace
		}
	case zvt.MsgPrintLine:
		attr, line, err := zvt.ParsePrintLine(a.Data)
		switch {
		case err != nil:
		case attr == zvt.LineFeed:
			for range min(int(a.Data[len(a.Data)-1]), 10) {
				r.receipt = append(r.receipt, "")
			}
		default:
			r.receipt = append(r.receipt, line)
		}
	case zvt.MsgPrintText:
		kind, lines, err := zvt.ParsePrintText(a.Data)
		if err != nil {
			c.log.Warn("payment terminal: receipt not understood", "err", err)
		}
		if kind == zvt.ReceiptMerchant {
			r.merchant = append(r.merchant, lines...)
		} else {
			r.receipt = append(r.receipt, lines...)
		}
	case zvt.MsgCompletion:
		r.completed = true
		r.completion, _ = zvt.ParseFields(a.Data)
	case zvt.MsgAbort:
		r.abort = int(zvt.ParseAbort(a.Data))
	default:
		c.log.Warn("payment terminal sent an unexpected command", "apdu", a.String())
		return zvt.Nack(0x83) // function not possible
	}
	return zvt.Ack()
}

// linkState records the peripheral state after a failed command.
func (c *Client) linkState(err error) {
	switch {
	case errors.Is(err, drivers.ErrTimeout):
		c.setStatus(drivers.StateError, "terminal not answering: "+err.Error())
	case errors.Is(err, drivers.ErrDisconnected):
		c.setStatus(drivers.StateMissing, "connection to the terminal lost: "+err.Error())
	}
}

// Register connects and registers now rather than at the first command.
func (c *Client) Register(ctx context.Context) error {
	end, err := c.begin(ctx)
	if err != nil {
		return err
	}
	defer end()
	return c.connect(ctx)
}

// Pay implements [Terminal].
func (c *Client) Pay(ctx context.Context, cents int64) (Result, error) {
	res := Result{Outcome: Aborted, Amount: cents}
	cmd, err := zvt.Authorisation(cents, c.opts.Currency)
	if err != nil {
		res.Reason = err.Error()
		return res, fmt.Errorf("payment: %w", err)
	}
	end, err := c.begin(ctx)
	if err != nil {
		res.Reason = err.Error()
		return res, err
	}
	defer end()
	if err := c.connect(ctx); err != nil {
		res.Reason = err.Error()
		return res, err
	}
	p := Pending{Amount: cents, Started: time.Now(), LastTrace: c.lastTrace}
	c.log.Info("payment started", "cents", cents)
	r, sent, err := c.exchange(ctx, cmd)
	res = c.settle(r, res)
	var ref refusal
	switch {
	case errors.As(err, &ref):
		res.Outcome, res.Reason = Aborted, ref.Error()
		c.setStatus(drivers.StateOK, "")
		if ref.code == 0x6B { // not registered: register again next time
			c.drop()
		}
		return res, nil
	case err != nil && res.Outcome == Unknown && sent:
		c.linkState(err)
		res.Pending = &p
		res.Reason = "the terminal's answer never arrived (" + err.Error() +
			"); the payment may have been made: reconcile before asking again"
	case err != nil && res.Outcome == Unknown:
		c.linkState(err)
		res.Outcome, res.Reason = Aborted, err.Error()
		return res, err
	case err != nil:
		c.linkState(err) // outcome known from status information
	default:
		c.setStatus(drivers.StateOK, "")
	}
	c.log.Info("payment ended", "outcome", res.Outcome.String(), "reason", res.Reason)
	return res, nil
}

// settle turns what the terminal said into an outcome, starting from res
// (which holds the requested amount).
func (c *Client) settle(r reply, res Result) Result {
	res.Outcome, res.Reason = Unknown, ""
	res.Receipt, res.MerchantReceipt = r.receipt, r.merchant
	if info := r.info; info != nil {
		if info.Amount > 0 {
			res.Amount = info.Amount
		}
		res.Code = info.Result
		res.Trace, res.ReceiptNo, res.TerminalID = info.Trace, info.ReceiptNo, info.TerminalID
		res.Card, res.PAN = info.CardName, info.PAN
		res.Time = info.When(time.Now(), c.opts.Location)
		if info.Result == 0 {
			res.Outcome = Paid
		} else {
			res.Outcome = Declined
			res.Reason = zvt.ResultText(info.Result)
			if info.Text != "" {
				res.Reason += ": " + info.Text
			}
		}
	}
	switch {
	case r.abort == 0x6C && res.Outcome != Declined:
		res.Outcome, res.Code = Aborted, 0x6C
		res.Reason = "aborted at the terminal or on request: " + zvt.ResultText(0x6C)
	case r.abort >= 0 && res.Outcome != Declined:
		res.Outcome, res.Code = Declined, byte(r.abort)
		res.Reason = zvt.ResultText(byte(r.abort))
	case r.completed && res.Outcome == Unknown:
		res.Outcome = Paid
		if code, ok := r.completion.Get(zvt.BMPResultCode); ok && code[0] != 0 {
			res.Outcome, res.Code, res.Reason = Declined, code[0], zvt.ResultText(code[0])
		}
	}
	return res
}

// Reconcile implements [Terminal]: it asks the terminal to repeat its last
// transaction (06 20) and compares it with p.
func (c *Client) Reconcile(ctx context.Context, p Pending) (Result, error) {
	res := Result{Outcome: Unknown, Amount: p.Amount, Pending: &p}
	cmd, err := zvt.RepeatReceipt(c.opts.Password)
	if err != nil {
		return res, err
	}
	end, err := c.begin(ctx)
	if err != nil {
		res.Reason = "could not reconcile: " + err.Error()
		return res, err
	}
	defer end()
	if err := c.connect(ctx); err != nil {
		res.Reason = "could not reconcile: " + err.Error()
		return res, err
	}
	r, _, err := c.exchange(ctx, cmd)
	var ref refusal
	switch {
	case errors.As(err, &ref):
		res.Reason = "could not reconcile: " + ref.Error()
		return res, err
	case err != nil:
		c.linkState(err)
		res.Reason = "could not reconcile: " + err.Error()
		return res, err
	}
	c.setStatus(drivers.StateOK, "")
	if r.info == nil || r.abort >= 0 {
		res.Outcome, res.Pending = Aborted, nil
		res.Reason = "the terminal has no transaction on record: this payment was not made"
		return res, nil
	}
	info := r.info
	when := info.When(time.Now(), c.opts.Location)
	same := info.Amount == p.Amount
	if p.LastTrace > 0 {
		same = same && info.Trace != p.LastTrace
	} else {
		same = same && !when.Before(p.Started.Add(-c.opts.ClockSkew))
	}
	if !same {
		res.Outcome, res.Pending = Aborted, nil
		res.Reason = fmt.Sprintf("the terminal's last transaction (trace %d, %d.%02d EUR) is another one: this payment was not made",
			info.Trace, info.Amount/100, info.Amount%100)
		return res, nil
	}
	res = c.settle(reply{info: info, abort: -1, receipt: r.receipt, merchant: r.merchant}, Result{Amount: p.Amount})
	c.log.Info("payment reconciled", "outcome", res.Outcome.String(), "trace", res.Trace)
	return res, nil
}

// EndOfDay implements [Terminal].
func (c *Client) EndOfDay(ctx context.Context) (Batch, error) {
	cmd, err := zvt.EndOfDay(c.opts.Password)
	if err != nil {
		return Batch{}, err
	}
	end, err := c.begin(ctx)
	if err != nil {
		return Batch{}, err
	}
	defer end()
	if err := c.connect(ctx); err != nil {
		return Batch{}, err
	}
	r, _, err := c.exchange(ctx, cmd)
	if err != nil {
		c.linkState(err)
		return Batch{}, fmt.Errorf("end of day on payment terminal %s: %w", c.name, err)
	}
	if r.abort >= 0 {
		return Batch{}, fmt.Errorf("end of day on payment terminal %s: %s", c.name, zvt.ResultText(byte(r.abort)))
	}
	b := Batch{Receipt: append(r.receipt, r.merchant...)}
	if r.info != nil {
		b.Total = r.info.Amount
		b.Time = r.info.When(time.Now(), c.opts.Location)
	}
	return b, nil
}

// TerminalStatus is the answer to a status enquiry.
type TerminalStatus struct {
	Code       byte // 0: ready
	Text       string
	TerminalID string
}

// Enquire asks the terminal for its state (status enquiry, 05 01) and
// records it for Status.
func (c *Client) Enquire(ctx context.Context) (TerminalStatus, error) {
	cmd, err := zvt.StatusEnquiry(c.opts.Password)
	if err != nil {
		return TerminalStatus{}, err
	}
	end, err := c.begin(ctx)
	if err != nil {
		return TerminalStatus{}, err
	}
	defer end()
	if err := c.connect(ctx); err != nil {
		return TerminalStatus{}, err
	}
	r, _, err := c.exchange(ctx, cmd)
	if err != nil {
		c.linkState(err)
		return TerminalStatus{}, fmt.Errorf("status of payment terminal %s: %w", c.name, err)
	}
	var ts TerminalStatus
	if b, ok := r.completion.Get(zvt.BMPResultCode); ok {
		ts.Code = b[0]
	}
	if b, ok := r.completion.Get(zvt.BMPTerminalID); ok {
		ts.TerminalID = zvt.Digits(b)
	}
	ts.Text = "ready"
	if ts.Code != 0 {
		ts.Text = zvt.ResultText(ts.Code)
		c.setStatus(drivers.StateError, "terminal reports: "+ts.Text)
	} else {
		c.setStatus(drivers.StateOK, "")
	}
	return ts, nil
}
