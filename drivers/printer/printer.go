// Package printer drives ESC/POS receipt printers: the handhelds' mobile
// printers for parking notices and the kiosks' receipt printers.
//
// [Printer] is the contract; [Device] is the real implementation over
// TCP (port 9100, "raw" printing), a serial line or USB (printer class,
// through gousb); [Fake] records jobs for unit tests. Jobs are ESC/POS
// bytes as drivers/printer/escpos builds them.
//
// Before and after every job the driver asks the printer for its state
// with DLE EOT (real-time status, answered even while the printer is
// offline): cover open and paper out refuse the job, paper near its end
// makes the state degraded. No call blocks longer than its context allows,
// and a call without a deadline gets Options.JobTimeout.
package printer

import (
	"context"
	"errors"

	"github.com/kogge-fleet/kogge/drivers"
)

// Printer prints ESC/POS jobs.
type Printer interface {
	// Print sends one job. It refuses it, with ErrPaperOut or
	// ErrCoverOpen, when the printer cannot print; ErrPaperOut after
	// sending means the printout may be incomplete.
	Print(ctx context.Context, job []byte) error
	// Check asks the printer for its state now.
	Check(ctx context.Context) (drivers.Status, error)
	// Status is the state found by the latest Print or Check.
	Status() drivers.Status
}

// Errors a caller acts on (ask the user to load paper or close the
// cover). Link problems wrap drivers.ErrDisconnected or drivers.ErrTimeout.
var (
	ErrPaperOut  = errors.New("printer is out of paper")
	ErrCoverOpen = errors.New("printer cover is open")
)
