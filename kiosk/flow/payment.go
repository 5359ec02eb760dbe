package flow

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/kogge-fleet/kogge/drivers/payment"
	"github.com/kogge-fleet/kogge/protocol/casefile"
)

// payment is step 8: the fee through the card terminal. A declined or
// aborted payment may be tried again (PaymentAttempts) or skipped; an
// outcome the terminal never reported is settled with Reconcile; what is
// not paid in the end moves to the counter. A payment is never started
// twice while the first one's outcome is unknown.
func (r *Run) payment() error {
	attempts := r.cfg.PaymentAttempts
	for attempt := 1; ; attempt++ {
		r.view = View{Step: StepPayment, Message: MsgPayment, FeeCents: r.fee, Attempt: attempt, Attempts: attempts}
		res, skipped, err := r.pay()
		if err != nil {
			return err
		}
		if res.Outcome == payment.Unknown {
			if res, err = r.reconcile(res); err != nil {
				return err
			}
		}
		var retry string
		switch res.Outcome {
		case payment.Paid:
			r.paid = true
			r.app.Fee = r.feeRecord(res)
			r.log.Info("fee paid", "cents", res.Amount, "trace", res.Trace)
			return nil
		case payment.Declined:
			r.app.Fee = r.feeRecord(res)
			retry = MsgPaymentDeclined
		case payment.Aborted:
			retry = MsgPaymentAborted
		default: // still unknown: the money may have moved, no second try
			r.log.Warn("payment outcome unknown after reconciling; the fee moves to the counter", "reason", res.Reason)
			r.toCounter(CounterFee)
			return nil
		}
		r.log.Info("payment not made", "outcome", res.Outcome.String(), "reason", res.Reason, "attempt", attempt)
		if skipped || attempt >= attempts {
			r.toCounter(CounterFee)
			return nil
		}
		again, err := r.askRetry(retry, attempt, attempts, r.cfg.Timeouts.Payment)
		if err != nil {
			return err
		}
		if !again {
			r.toCounter(CounterFee)
			return nil
		}
	}
}

type paid struct {
	res payment.Result
}

// pay runs one payment. Skip asks the terminal to abort and waits for its
// outcome (the citizen may have paid in the meantime). Cancel and the
// timeout do the same, then end the session; money taken anyway is logged
// for the office with the application number.
func (r *Run) pay() (payment.Result, bool, error) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.ctx))
	defer cancel()
	events := make(chan any, 1)
	r.bg.Go(func() {
		res, err := r.deps.Payment.Pay(ctx, r.fee)
		if err != nil {
			res.Outcome = payment.Aborted
			if res.Reason == "" {
				res.Reason = err.Error()
			}
		}
		events <- paid{res}
	})
	var (
		res     payment.Result
		skipped bool
	)
	err := r.wait(waiter{timeout: r.cfg.Timeouts.Payment, events: events, input: func(in Input) (bool, error) {
		if _, ok := in.(Skip); ok && !skipped {
			skipped = true
			cancel()
			return false, nil
		}
		return false, r.refuse(in)
	}, event: func(ev any) (bool, error) {
		res = ev.(paid).res
		return true, nil
	}})
	if err == nil {
		return res, skipped, nil
	}
	// Cancelled, timed out or shut down: abort, then learn what happened.
	cancel()
	t := time.NewTimer(r.cfg.Timeouts.Abort)
	defer t.Stop()
	select {
	case ev := <-events:
		res = ev.(paid).res
		switch res.Outcome {
		case payment.Paid:
			r.log.Warn("session ended after the fee was paid; refund or book it at the counter",
				"cents", res.Amount, "trace", res.Trace, "receipt", res.ReceiptNo)
		case payment.Unknown:
			r.log.Warn("session ended while the payment's outcome is unknown; check the terminal's journal",
				"cents", res.Amount)
		}
	case <-t.C:
		r.log.Warn("payment terminal did not give up in time after the session ended", "after", r.cfg.Timeouts.Abort)
	}
	return res, skipped, err
}

// reconcile settles an unknown outcome with the terminal. It cannot be
// cancelled: the money may have moved.
func (r *Run) reconcile(res payment.Result) (payment.Result, error) {
	if res.Pending == nil {
		return res, nil
	}
	r.view.Message = MsgPaymentChecking
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.ctx), r.cfg.Timeouts.Reconcile)
	defer cancel()
	p := *res.Pending
	out, err := busy(r, func() (payment.Result, error) { return r.deps.Payment.Reconcile(ctx, p) })
	if err != nil {
		r.log.Warn("cannot reconcile the payment", "err", err)
		return payment.Result{Outcome: payment.Unknown, Amount: res.Amount, Reason: err.Error()}, nil
	}
	if errors.Is(r.ctx.Err(), context.Canceled) {
		return out, &endSession{shutdown: true}
	}
	return out, nil
}

// feeRecord is the casefile's record of a payment the terminal reported.
func (r *Run) feeRecord(res payment.Result) *casefile.Fee {
	f := &casefile.Fee{AmountCents: res.Amount, Currency: "EUR", Result: res.Code, Terminal: res.TerminalID,
		At: casefile.At(res.Time)}
	if f.AmountCents == 0 {
		f.AmountCents = r.fee
	}
	if res.ReceiptNo > 0 {
		f.Receipt = strconv.Itoa(res.ReceiptNo)
	}
	if f.At == 0 {
		f.At = casefile.At(r.clock.Now())
	}
	if len(f.Terminal) > casefile.MaxText {
		f.Terminal = f.Terminal[:casefile.MaxText]
	}
	return f
}
