package fleet

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
)

// ServerRecord is a record as the fleet server lists it.
type ServerRecord struct {
	Device string
	ID     uuid.UUID
	Seq    uint64
	// Complete is set when every blob has arrived.
	Complete bool
	// Delivery is the server's delivery state of the record, when the
	// server delivers: "" (unknown), or a state such as "queued",
	// "leased", "delivered", "dead" (see Reconcile).
	Delivery string
}

// Delivered is one case a procedure simulator received: the record id it
// was keyed by, and whether the procedure had seen it before.
type Delivered struct {
	Record    uuid.UUID
	Procedure string
	Duplicate bool
	At        time.Time // when the procedure took it
}

// DeviceState is what a device's store says about a record.
type DeviceState int

// Device states.
const (
	// DeviceUnknown: the device has no record of that id (or could not be
	// asked).
	DeviceUnknown DeviceState = iota
	// DeviceQueued: saved on the device and not yet acknowledged by the
	// server.
	DeviceQueued
	// DeviceAcked: the server acknowledged it (the device moved past it).
	DeviceAcked
)

// Inputs are what Reconcile compares the ledger with.
type Inputs struct {
	// Ledger is every receipt the devices gave.
	Ledger []Entry
	// Server is every record the server lists.
	Server []ServerRecord
	// Deliveries are the cases the procedure simulators received; nil
	// when nothing is delivered (see Delivery).
	Deliveries []Delivered
	// Delivery is set when the run delivers to procedures: then a record
	// reaches the end of its way only when a procedure has it, and a
	// record only stored on the server is still pending.
	Delivery bool
	// Device tells what the device that captured a record says about it;
	// nil means the devices cannot be asked (every record that is not on
	// the server counts as lost).
	Device func(device string, id uuid.UUID) DeviceState
}

// Pending reasons.
const (
	PendingDeviceQueue  = "device queue"
	PendingBlobs        = "server: blobs still arriving"
	PendingServerQueue  = "server: delivery queue"
	PendingDeadLetter   = "server: dead letter"
	PendingNotDelivered = "server: stored, not delivered"
)

// Report is the outcome of a reconciliation.
type Report struct {
	// Created is the number of receipts in the ledger.
	Created int
	// Stored is how many of them the server has with every blob.
	Stored int
	// DeliveredOnce is how many reached a procedure exactly once (with
	// delivery only).
	DeliveredOnce int
	// Done is how many reached the end of their way exactly once:
	// DeliveredOnce with delivery, else Stored.
	Done int
	// Lost are receipts that are nowhere: not at a procedure, not on the
	// server, not queued on the device.
	Lost []Entry
	// Duplicated are receipts that a procedure received more than once,
	// or that the server lists more than once.
	Duplicated []Entry
	// Pending are receipts still on their way, by reason.
	Pending map[string][]Entry
	// Unledgered counts server records of no receipt: a device process
	// killed between saving a capture and reporting its receipt leaves
	// one, which is expected; they are delivered like any other.
	Unledgered int
	// UnledgeredDeliveries counts cases at procedures of no receipt.
	UnledgeredDeliveries int
	// LedgerDuplicates counts receipts that appear twice in the ledger
	// (a simulator bug, not Kogge's).
	LedgerDuplicates int
}

// OK reports whether nothing was lost and nothing duplicated.
func (r Report) OK() bool { return len(r.Lost) == 0 && len(r.Duplicated) == 0 }

// PendingCount is the number of receipts still on their way.
func (r Report) PendingCount() int {
	n := 0
	for _, es := range r.Pending {
		n += len(es)
	}
	return n
}

// Reconcile compares the ledger with what the server holds and what the
// procedures received.
func Reconcile(in Inputs) Report {
	rep := Report{Pending: map[string][]Entry{}}
	server := map[uuid.UUID][]ServerRecord{}
	for _, s := range in.Server {
		server[s.ID] = append(server[s.ID], s)
	}
	delivered := map[uuid.UUID]int{}
	for _, d := range in.Deliveries {
		delivered[d.Record]++
		if d.Duplicate && delivered[d.Record] == 1 {
			// The procedure saw it before this run's log began.
			delivered[d.Record]++
		}
	}
	seen := map[uuid.UUID]bool{}
	for _, e := range in.Ledger {
		if seen[e.Record] {
			rep.LedgerDuplicates++
			continue
		}
		seen[e.Record] = true
		rep.Created++
		srv := server[e.Record]
		complete := len(srv) > 0 && srv[0].Complete
		if complete {
			rep.Stored++
		}
		if len(srv) > 1 {
			rep.Duplicated = append(rep.Duplicated, e)
			continue
		}
		if in.Delivery {
			switch n := delivered[e.Record]; {
			case n == 1:
				rep.DeliveredOnce++
				rep.Done++
				continue
			case n > 1:
				rep.Duplicated = append(rep.Duplicated, e)
				continue
			}
		}
		switch {
		case len(srv) == 1 && !complete:
			rep.Pending[PendingBlobs] = append(rep.Pending[PendingBlobs], e)
		case len(srv) == 1 && !in.Delivery:
			rep.Done++
		case len(srv) == 1:
			reason := PendingNotDelivered
			switch srv[0].Delivery {
			case "dead", "dead-letter", "failed":
				reason = PendingDeadLetter
			case "queued", "leased", "pending", "retry":
				reason = PendingServerQueue
			}
			rep.Pending[reason] = append(rep.Pending[reason], e)
		case in.Device != nil && in.Device(e.Device, e.Record) == DeviceQueued:
			rep.Pending[PendingDeviceQueue] = append(rep.Pending[PendingDeviceQueue], e)
		default:
			rep.Lost = append(rep.Lost, e)
		}
	}
	for id := range server {
		if !seen[id] {
			rep.Unledgered++
		}
	}
	for id := range delivered {
		if !seen[id] {
			rep.UnledgeredDeliveries++
		}
	}
	return rep
}

// Print writes the report for a person: the summary, then every lost and
// duplicated record (up to 20 each) and the pending ones by reason.
func (r Report) Print(w io.Writer, delivery bool) {
	fmt.Fprintf(w, "ledger: %d created", r.Created)
	if delivery {
		fmt.Fprintf(w, ", %d delivered once", r.DeliveredOnce)
	}
	fmt.Fprintf(w, ", %d stored on the server, %d lost, %d duplicated, %d still pending\n",
		r.Stored, len(r.Lost), len(r.Duplicated), r.PendingCount())
	if !delivery {
		fmt.Fprintln(w, "ledger: delivery to the procedures is not part of this run; a record stored on the server counts as done")
	}
	list := func(title string, es []Entry) {
		if len(es) == 0 {
			return
		}
		fmt.Fprintf(w, "  %s (%d):\n", title, len(es))
		for i, e := range es {
			if i == 20 {
				fmt.Fprintf(w, "    … and %d more\n", len(es)-20)
				break
			}
			fmt.Fprintf(w, "    %v  device %s seq %d  %s → %s  at %s\n", e.Record, e.Device, e.Seq, e.Kind, e.Office, e.At.Format("15:04:05.000"))
		}
	}
	list("LOST", r.Lost)
	list("DUPLICATED", r.Duplicated)
	for _, reason := range slices.Sorted(maps.Keys(r.Pending)) {
		list("pending, "+reason, r.Pending[reason])
	}
	var notes []string
	if r.Unledgered > 0 {
		notes = append(notes, fmt.Sprintf("%d server records without a receipt in the ledger (devices killed between saving and reporting)", r.Unledgered))
	}
	if r.UnledgeredDeliveries > 0 {
		notes = append(notes, fmt.Sprintf("%d delivered cases without a receipt in the ledger", r.UnledgeredDeliveries))
	}
	if r.LedgerDuplicates > 0 {
		notes = append(notes, fmt.Sprintf("%d receipts reported twice by the simulator", r.LedgerDuplicates))
	}
	if len(notes) > 0 {
		fmt.Fprintln(w, "  notes: "+strings.Join(notes, "; "))
	}
}
