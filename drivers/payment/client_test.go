package payment_test

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kogge-fleet/kogge/drivers"
	"github.com/kogge-fleet/kogge/drivers/payment"
	paymentsim "github.com/kogge-fleet/kogge/simulators/devices/payment"
)

func startSim(t *testing.T, serial bool) *paymentsim.Simulator {
	t.Helper()
	sim, err := paymentsim.Start(context.Background(), paymentsim.Options{Serial: serial, Dir: t.TempDir(), Interval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	return sim
}

// statuses collects the intermediate status codes a client reports.
type statuses struct {
	mu    sync.Mutex
	codes []byte
}

func (s *statuses) add(code byte, _ string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.codes = append(s.codes, code)
}

func (s *statuses) has(code byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Contains(s.codes, code)
}

func newClient(t *testing.T, sim *paymentsim.Simulator, serial bool, st *statuses) *payment.Client {
	t.Helper()
	opts := payment.Options{
		AckTimeout: 2 * time.Second, IdleTimeout: 300 * time.Millisecond,
		CommandTimeout: 10 * time.Second, AbortTimeout: 2 * time.Second,
	}
	if st != nil {
		opts.OnStatus = st.add
	}
	var c *payment.Client
	var err error
	if serial {
		c, err = payment.NewSerial(sim.SerialEndpoint(), opts)
	} else {
		c, err = payment.NewTCP(sim.Endpoint(), opts)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func bothTransports(t *testing.T, f func(t *testing.T, serial bool)) {
	for _, serial := range []bool{false, true} {
		name := "tcp"
		if serial {
			name = "serial"
		}
		t.Run(name, func(t *testing.T) { f(t, serial) })
	}
}

func TestOutcomes(t *testing.T) {
	bothTransports(t, func(t *testing.T, serial bool) {
		sim := startSim(t, serial)
		st := &statuses{}
		c := newClient(t, sim, serial, st)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()

		// Approved.
		r, err := c.Pay(ctx, 600)
		if err != nil || r.Outcome != payment.Paid || r.Amount != 600 || r.Code != 0 {
			t.Fatalf("Pay(600) = %v, %v", r, err)
		}
		if r.Trace == 0 || r.TerminalID != "52500001" || r.Card != "girocard" || r.PAN != "672559******1234" || r.Time.IsZero() {
			t.Fatalf("transaction details missing: %+v", r)
		}
		if !slices.Contains(r.Receipt, "KUNDENBELEG") || !slices.Contains(r.Receipt, "Betrag EUR       6,00") ||
			!slices.Contains(r.Receipt, "Bürgeramt Bremen-Mitte") {
			t.Fatalf("customer receipt %q", r.Receipt)
		}
		if len(r.MerchantReceipt) == 0 || r.MerchantReceipt[0] != "HÄNDLERBELEG" {
			t.Fatalf("merchant receipt %q", r.MerchantReceipt)
		}
		if !st.has(0x0A) {
			t.Fatal("no \"insert card\" status reported")
		}
		if s := c.Status(); !s.OK() {
			t.Fatalf("status %v", s)
		}

		// Declined by the issuer.
		r, err = c.Pay(ctx, 601)
		if err != nil || r.Outcome != payment.Declined || r.Code != 0x05 ||
			!strings.Contains(r.Reason, "declined") || !strings.Contains(r.Reason, "Zahlung abgelehnt") {
			t.Fatalf("Pay(601) = %v, %v", r, err)
		}

		// The customer presses Stop.
		r, err = c.Pay(ctx, 604)
		if err != nil || r.Outcome != payment.Aborted || r.Code != 0x6C {
			t.Fatalf("Pay(604) = %v, %v", r, err)
		}

		// Refused: nothing starts.
		r, err = c.Pay(ctx, 607)
		if err != nil || r.Outcome != payment.Aborted || !strings.Contains(r.Reason, "refused") {
			t.Fatalf("Pay(607) = %v, %v", r, err)
		}

		// Booked, then silent: Unknown, and Reconcile finds it paid.
		r, err = c.Pay(ctx, 602)
		if err != nil || r.Outcome != payment.Unknown || r.Pending == nil || r.Pending.Amount != 602 {
			t.Fatalf("Pay(602) = %v, %v", r, err)
		}
		if s := c.Status(); s.State != drivers.StateError {
			t.Fatalf("status after a silent terminal: %v", s)
		}
		rec, err := c.Reconcile(ctx, *r.Pending)
		booked := sim.Transactions()
		if err != nil || rec.Outcome != payment.Paid || rec.Trace != booked[len(booked)-1].Trace || rec.Amount != 602 {
			t.Fatalf("Reconcile(602) = %v, %v; terminal booked %+v", rec, err, booked[len(booked)-1])
		}
		if !slices.Contains(rec.Receipt, "Betrag EUR       6,02") {
			t.Fatalf("reconciled receipt %q", rec.Receipt)
		}

		// Booked, then the line drops: Unknown, and Reconcile finds it paid.
		r, err = c.Pay(ctx, 603)
		if err != nil || r.Outcome != payment.Unknown || r.Pending == nil {
			t.Fatalf("Pay(603) = %v, %v", r, err)
		}
		rec, err = c.Reconcile(ctx, *r.Pending)
		if err != nil || rec.Outcome != payment.Paid || rec.Amount != 603 {
			t.Fatalf("Reconcile(603) = %v, %v", rec, err)
		}

		// Silent before booking: Unknown, and Reconcile finds it not made.
		r, err = c.Pay(ctx, 606)
		if err != nil || r.Outcome != payment.Unknown || r.Pending == nil {
			t.Fatalf("Pay(606) = %v, %v", r, err)
		}
		rec, err = c.Reconcile(ctx, *r.Pending)
		if err != nil || rec.Outcome != payment.Aborted || !strings.Contains(rec.Reason, "not made") {
			t.Fatalf("Reconcile(606) = %v, %v", rec, err)
		}

		// End of day: the approved amounts, booked-but-unheard ones included.
		b, err := c.EndOfDay(ctx)
		if err != nil || b.Total != 600+602+603 {
			t.Fatalf("EndOfDay = %+v, %v; want a total of %d", b, err, 600+602+603)
		}
		if !slices.Contains(b.Receipt, "KASSENSCHNITT") {
			t.Fatalf("end-of-day receipt %q", b.Receipt)
		}

		ts, err := c.Enquire(ctx)
		if err != nil || ts.Code != 0 || ts.TerminalID != "52500001" {
			t.Fatalf("Enquire = %+v, %v", ts, err)
		}
		if s := c.Status(); !s.OK() {
			t.Fatalf("status %v", s)
		}
	})
}

func TestCancelAsksTerminalToAbort(t *testing.T) {
	bothTransports(t, func(t *testing.T, serial bool) {
		sim := startSim(t, serial)
		st := &statuses{}
		c := newClient(t, sim, serial, st)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		var r payment.Result
		var err error
		go func() {
			defer close(done)
			r, err = c.Pay(ctx, 605)
		}()
		deadline := time.After(10 * time.Second)
		for !st.has(0x0A) { // the terminal waits for a card
			select {
			case <-deadline:
				t.Fatal("terminal never asked for a card")
			case <-time.After(5 * time.Millisecond):
			}
		}
		cancel()
		select {
		case <-done:
		case <-deadline:
			t.Fatal("Pay did not return after cancel")
		}
		if err != nil || r.Outcome != payment.Aborted || r.Code != 0x6C {
			t.Fatalf("Pay(605) cancelled = %v, %v", r, err)
		}
		if !slices.Contains(sim.Commands(), "06 B0") {
			t.Fatalf("terminal got no abort: %q", sim.Commands())
		}
		if len(sim.Transactions()) != 0 {
			t.Fatalf("aborted payment booked: %+v", sim.Transactions())
		}
	})
}

func TestReconcileByTimeWithoutTrace(t *testing.T) {
	sim := startSim(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Another client's payment is the terminal's last transaction.
	other := newClient(t, sim, false, nil)
	if r, err := other.Pay(ctx, 1000); err != nil || r.Outcome != payment.Paid {
		t.Fatalf("Pay(1000) = %v, %v", r, err)
	}
	c := newClient(t, sim, false, nil)
	r, err := c.Pay(ctx, 1006) // silent before booking
	if err != nil || r.Outcome != payment.Unknown || r.Pending.LastTrace != 0 {
		t.Fatalf("Pay(1006) = %v, %v", r, err)
	}
	rec, err := c.Reconcile(ctx, *r.Pending)
	if err != nil || rec.Outcome != payment.Aborted || !strings.Contains(rec.Reason, "another one") {
		t.Fatalf("Reconcile = %v, %v", rec, err)
	}
	r, err = c.Pay(ctx, 1002) // booked, then silent
	if err != nil || r.Outcome != payment.Unknown {
		t.Fatalf("Pay(1002) = %v, %v", r, err)
	}
	if rec, err := c.Reconcile(ctx, *r.Pending); err != nil || rec.Outcome != payment.Paid {
		t.Fatalf("Reconcile = %v, %v", rec, err)
	}
}

func TestUnreachableTerminal(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c, err := payment.NewTCP(addr, payment.Options{ConnectTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.Pay(context.Background(), 600)
	if !errors.Is(err, drivers.ErrDisconnected) || r.Outcome != payment.Aborted {
		t.Fatalf("Pay = %v, %v; want Aborted and ErrDisconnected", r, err)
	}
	if s := c.Status(); s.State != drivers.StateMissing || !strings.Contains(s.Reason, "not reachable") {
		t.Fatalf("status %v", s)
	}
	if _, err := c.Reconcile(context.Background(), payment.Pending{Amount: 1}); !errors.Is(err, drivers.ErrDisconnected) {
		t.Fatalf("Reconcile: %v", err)
	}
}

// A terminal that accepts the connection and never answers: the
// registration times out, nothing hangs, and no payment is started.
func TestMuteTerminal(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 64)
		for {
			if _, err := c.Read(buf); err != nil {
				return
			}
		}
	}()
	c, err := payment.NewTCP(ln.Addr().String(), payment.Options{AckTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r, err := c.Pay(context.Background(), 600)
	if err == nil || r.Outcome != payment.Aborted || !strings.Contains(err.Error(), "register") {
		t.Fatalf("Pay = %v, %v; want Aborted, registration failed", r, err)
	}
}

func TestBadInput(t *testing.T) {
	sim := startSim(t, false)
	c := newClient(t, sim, false, nil)
	for _, cents := range []int64{0, -5, 1_000_000_000_000} {
		if r, err := c.Pay(context.Background(), cents); err == nil || r.Outcome != payment.Aborted {
			t.Errorf("Pay(%d) = %v, %v", cents, r, err)
		}
	}
	if _, err := payment.NewTCP("x", payment.Options{Password: "12"}); err == nil {
		t.Error("short password accepted")
	}
	if _, err := payment.NewTCP("", payment.Options{}); err == nil {
		t.Error("empty address accepted")
	}
}

func TestFake(t *testing.T) {
	f := payment.NewFake()
	ctx := context.Background()
	f.Push(payment.Result{Outcome: payment.Declined, Code: 5})
	f.Push(payment.Result{Outcome: payment.Unknown, Code: 0})
	f.Push(payment.Result{Outcome: payment.Unknown, Code: 1})
	if r, _ := f.Pay(ctx, 100); r.Outcome != payment.Declined {
		t.Fatalf("first: %v", r)
	}
	r, _ := f.Pay(ctx, 200)
	if r.Outcome != payment.Unknown || r.Pending == nil {
		t.Fatalf("second: %v", r)
	}
	if rec, _ := f.Reconcile(ctx, *r.Pending); rec.Outcome != payment.Paid {
		t.Fatalf("reconcile: %v", rec)
	}
	r, _ = f.Pay(ctx, 300)
	if rec, _ := f.Reconcile(ctx, *r.Pending); rec.Outcome != payment.Aborted {
		t.Fatalf("reconcile: %v", rec)
	}
	if r, _ := f.Pay(ctx, 400); r.Outcome != payment.Paid {
		t.Fatalf("unscripted: %v", r)
	}
	if b, _ := f.EndOfDay(ctx); b.Total != 600 {
		t.Fatalf("total %d", b.Total)
	}
	if got := f.Payments(); !slices.Equal(got, []int64{100, 200, 300, 400}) {
		t.Fatalf("payments %v", got)
	}
}
