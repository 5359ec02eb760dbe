package flow

import (
	"context"
	"fmt"

	"github.com/kogge-fleet/kogge/drivers/printer/escpos"
)

// receiptWidth is the characters per line the receipt's text is wrapped
// to; 80 mm paper holds 48, narrower printers 42.
const receiptWidth = 42

// print is step 11: the receipt with the number and its QR code. A printer
// that fails leaves the number on the screen; the saved application is not
// touched.
func (r *Run) print() bool {
	r.view = View{Step: StepSaving, Message: MsgPrinting, Chosen: r.chosen, FeeCents: r.fee}
	job, err := r.receipt()
	if err != nil {
		r.log.Error("cannot build the receipt", "err", err)
		return false
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.ctx), r.cfg.Timeouts.Print)
	defer cancel()
	_, err = busy(r, func() (struct{}, error) { return struct{}{}, r.deps.Printer.Print(ctx, job) })
	if err != nil {
		r.log.Warn("receipt not printed; the number is on the screen", "err", err, "printer", r.deps.Printer.Status().String())
		return false
	}
	return true
}

// receipt builds the ESC/POS job: title, terminal, the number large and as
// a QR code for the clerk's scanner, date, fee, the office's lines. It
// holds no personal data.
func (r *Run) receipt() ([]byte, error) {
	rc := r.cfg.Receipt
	d := escpos.NewDocument(escpos.CP858)
	d.Align(escpos.Center)
	if rc.Title != "" {
		d.Bold(true).Size(2, 2).Line(rc.Title).Size(1, 1).Bold(false)
	}
	if r.cfg.Terminal != "" {
		d.Lines(r.cfg.Terminal, receiptWidth)
	}
	d.Feed(1).Line("Antragsnummer / Application number")
	d.Bold(true).Size(1, 2).Line(r.number).Size(1, 1).Bold(false)
	d.QR(r.number, escpos.QR{Module: 6, Level: escpos.ECMedium})
	d.Line(r.clock.Now().In(r.cfg.Location).Format("02.01.2006 15:04"))
	switch {
	case r.fee > 0 && r.paid:
		d.Line("Gebühr bezahlt / Fee paid: " + euros(r.fee))
	case r.fee > 0:
		d.Line("Gebühr am Schalter / Fee at the counter: " + euros(r.fee))
	}
	d.Feed(1)
	if r.saveErr == nil && r.consent {
		for _, l := range rc.Lines {
			d.Lines(l, receiptWidth)
		}
	}
	if r.saveErr != nil || !r.consent || len(r.app.Counter) > 0 {
		for _, l := range rc.CounterLines {
			d.Lines(l, receiptWidth)
		}
	}
	d.Feed(3).Cut(true)
	return d.Bytes()
}

// euros formats cents as on a German receipt: "37,00 EUR".
func euros(cents int64) string {
	return fmt.Sprintf("%d,%02d EUR", cents/100, cents%100)
}
