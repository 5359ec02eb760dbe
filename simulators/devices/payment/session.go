package payment

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kogge-fleet/kogge/drivers/payment/zvt"
)

// ackTimeout is how long the terminal waits for the cash register to
// acknowledge a message.
const ackTimeout = 5 * time.Second

var errDrop = errors.New("line dropped on purpose")

// session is one connection of a cash register.
type session struct {
	s      *Simulator
	l      ptLink
	config byte
	frozen bool
	tx     *Transaction // booked by the running command
}

// serve handles commands until the line closes; it reports whether the
// terminal dropped the line on purpose.
func (s *Simulator) serve(ctx context.Context, l ptLink) (dropped bool) {
	ss := &session{s: s, l: l}
	for {
		cmd, err := l.recv(ctx)
		if err != nil {
			return false
		}
		if cmd.IsAck() || cmd.IsNack() {
			continue // a late answer to a message of ours
		}
		s.noteCommand(cmd)
		if ss.frozen && !cmd.Is(zvt.CmdRegistration) {
			continue
		}
		ss.frozen = false
		steps, err := plan(cmd, s.password)
		if err != nil {
			s.log.Info("payment simulator: command refused", "cmd", cmd.String(), "err", err)
		}
		if err := ss.run(ctx, steps); err != nil {
			if errors.Is(err, errDrop) {
				return true
			}
			s.log.Info("payment simulator: command ended", "cmd", cmd.String(), "err", err)
		}
	}
}

func (ss *session) run(ctx context.Context, steps []step) error {
	ss.tx = nil
	for _, st := range steps {
		var err error
		switch st.kind {
		case stepAck:
			err = ss.l.send(ctx, zvt.Ack())
		case stepNack:
			err = ss.l.send(ctx, zvt.Nack(st.code))
		case stepSend:
			a := st.apdu
			if a.Class == 0 { // status enquiry: completion with our state
				fields, _ := zvt.AppendField(nil, zvt.BMPResultCode, []byte{0})
				tid, _ := zvt.BCD(atoi(ss.s.opts.TerminalID), 4)
				fields, _ = zvt.AppendField(fields, zvt.BMPTerminalID, tid)
				a = zvt.Completion(fields)
			}
			err = ss.send(ctx, a)
		case stepRegister:
			ss.config = st.config
		case stepBook:
			tx := ss.s.book(st.cents, st.code)
			ss.tx = &tx
			if b := BehaviourOf(st.cents); b == TimeoutBooked || b == DropBooked {
				continue // booked, but the cash register never hears of it
			}
			err = ss.sendInfo(ctx, tx)
		case stepReceipt:
			if ss.tx != nil {
				err = ss.receipt(ctx, *ss.tx)
			}
		case stepRepeat:
			err = ss.repeat(ctx)
		case stepEndOfDay:
			err = ss.endOfDay(ctx)
		case stepAwaitAbort:
			err = ss.awaitAbort(ctx)
		case stepFreeze:
			ss.frozen = true
			return nil
		case stepDrop:
			return errDrop
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// errAbortRequested: the cash register sent 06 B0 while the terminal
// could still abort.
var errAbortRequested = errors.New("abort requested")

// send sends a message and waits for the cash register's ACK.
func (ss *session) send(ctx context.Context, a zvt.APDU) error {
	return ss.sendAbortable(ctx, a, false)
}

// sendAbortable is send; with abortable, an abort request (06 B0) that
// arrives meanwhile makes it return errAbortRequested once the message is
// acknowledged.
func (ss *session) sendAbortable(ctx context.Context, a zvt.APDU, abortable bool) error {
	if err := ss.l.send(ctx, a); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, ackTimeout)
	defer cancel()
	requested := false
	for {
		r, err := ss.l.recv(ctx)
		if err != nil {
			return fmt.Errorf("no acknowledgement of %v: %w", a, err)
		}
		switch {
		case r.IsAck():
			if requested {
				return errAbortRequested
			}
			return nil
		case r.IsNack():
			return fmt.Errorf("cash register rejected %v with %#02x", a, r.Instr)
		case r.Is(zvt.CmdAbortECR):
			ss.s.noteCommand(r)
			if abortable {
				requested = true
				continue
			}
			// Too late to abort: the card is being processed.
			if err := ss.l.send(ctx, zvt.Nack(0x83)); err != nil {
				return err
			}
		}
	}
}

// awaitAbort prompts for a card until the cash register aborts.
func (ss *session) awaitAbort(ctx context.Context) error {
	abort := func() error {
		if err := ss.l.send(ctx, zvt.Ack()); err != nil {
			return err
		}
		return ss.send(ctx, zvt.Abort(0x6C))
	}
	for range 600 {
		err := ss.sendAbortable(ctx, zvt.Intermediate(0x0A, 30), true)
		if errors.Is(err, errAbortRequested) {
			return abort()
		}
		if err != nil {
			return err
		}
		wctx, cancel := context.WithTimeout(ctx, ss.s.opts.Interval)
		r, err := ss.l.recv(wctx)
		cancel()
		if err == nil && r.Is(zvt.CmdAbortECR) {
			ss.s.noteCommand(r)
			return abort()
		}
		if err != nil && ctx.Err() != nil {
			return err
		}
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
	}
	return ss.send(ctx, zvt.Abort(0x6C)) // nobody came: time out
}

func (ss *session) repeat(ctx context.Context) error {
	last, ok := ss.s.last()
	if !ok {
		return ss.send(ctx, zvt.Abort(0x83))
	}
	if err := ss.sendInfo(ctx, last); err != nil {
		return err
	}
	if err := ss.receipt(ctx, last); err != nil {
		return err
	}
	return ss.send(ctx, zvt.Completion(nil))
}

func (ss *session) endOfDay(ctx context.Context) error {
	total, now := ss.s.closeBatch()
	info := zvt.StatusInfo{Amount: total, Currency: zvt.EUR, Date: dateOf(now), Clock: clockOf(now), TerminalID: ss.s.opts.TerminalID}
	data, err := info.Marshal()
	if err != nil {
		return err
	}
	if err := ss.send(ctx, zvt.New(zvt.MsgStatusInfo, data)); err != nil {
		return err
	}
	if ss.config&zvt.ConfigReceiptAdminByECR != 0 {
		lines := []string{"KASSENSCHNITT", "Terminal-ID " + ss.s.opts.TerminalID, now.Format("02.01.2006 15:04"),
			fmt.Sprintf("Summe EUR %10s", euros(total))}
		pt, err := zvt.PrintText(zvt.ReceiptAdmin, lines)
		if err != nil {
			return err
		}
		if err := ss.send(ctx, pt); err != nil {
			return err
		}
	}
	return ss.send(ctx, zvt.Completion(nil))
}

// sendInfo sends the status information (04 0F) of a transaction.
func (ss *session) sendInfo(ctx context.Context, tx Transaction) error {
	si := zvt.StatusInfo{
		Result: tx.Result, Amount: tx.Amount, Currency: zvt.EUR, Trace: tx.Trace, ReceiptNo: tx.ReceiptNo,
		Date: dateOf(tx.Time), Clock: clockOf(tx.Time), TerminalID: ss.s.opts.TerminalID,
		PAN: "672559******1234", CardType: 5, CardName: "girocard",
	}
	if tx.Result != 0 {
		si.Text = "Zahlung abgelehnt"
	}
	data, err := si.Marshal()
	if err != nil {
		return err
	}
	return ss.send(ctx, zvt.New(zvt.MsgStatusInfo, data))
}

// receipt sends the customer copy as print lines and the merchant copy as
// a text block, if the cash register prints receipts.
func (ss *session) receipt(ctx context.Context, tx Transaction) error {
	if ss.config&zvt.ConfigReceiptPaymentByECR == 0 {
		return nil
	}
	lines := receiptLines(tx, ss.s.opts.TerminalID)
	customer := append([]string{"KUNDENBELEG"}, lines...)
	for i, l := range customer {
		attr := byte(0)
		if i == len(customer)-1 {
			attr = zvt.LineLast | 1
		}
		if err := ss.send(ctx, zvt.PrintLine(attr, l)); err != nil {
			return err
		}
	}
	pt, err := zvt.PrintText(zvt.ReceiptMerchant, append([]string{"HÄNDLERBELEG"}, lines...))
	if err != nil {
		return err
	}
	return ss.send(ctx, pt)
}

func receiptLines(tx Transaction, tid string) []string {
	result := "Zahlung erfolgt"
	if tx.Result != 0 {
		result = "Zahlung abgelehnt"
	}
	return []string{
		"Bürgeramt Bremen-Mitte",
		"Terminal-ID " + tid,
		tx.Time.Format("02.01.2006 15:04:05"),
		fmt.Sprintf("Trace %06d  Beleg %04d", tx.Trace, tx.ReceiptNo),
		"girocard  Karte ************1234",
		fmt.Sprintf("Betrag EUR %10s", euros(tx.Amount)),
		result,
	}
}

func euros(cents int64) string {
	return strings.Replace(fmt.Sprintf("%d.%02d", cents/100, cents%100), ".", ",", 1)
}

func dateOf(t time.Time) int  { return int(t.Month())*100 + t.Day() }
func clockOf(t time.Time) int { return t.Hour()*10000 + t.Minute()*100 + t.Second() }

func atoi(s string) uint64 {
	var v uint64
	for _, c := range s {
		v = v*10 + uint64(c-'0')
	}
	return v
}

func (s *Simulator) noteCommand(cmd zvt.APDU) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.commands = append(s.commands, fmt.Sprintf("%02X %02X", cmd.Class, cmd.Instr))
}

// book records a decided transaction.
func (s *Simulator) book(cents int64, result byte) Transaction {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.trace++
	tx := Transaction{
		Amount: cents, Result: result, Trace: s.trace, ReceiptNo: s.trace,
		Time: time.Now().Truncate(time.Second), Behaviour: BehaviourOf(cents),
	}
	s.txs = append(s.txs, tx)
	if result == 0 {
		s.batch += cents
	}
	s.log.Info("payment simulator booked", "cents", cents, "result", result, "trace", tx.Trace)
	return tx
}

func (s *Simulator) last() (Transaction, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.txs) == 0 {
		return Transaction{}, false
	}
	return s.txs[len(s.txs)-1], true
}

func (s *Simulator) closeBatch() (int64, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	total := s.batch
	s.batch = 0
	return total, time.Now().Truncate(time.Second)
}
