package eid_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/kogge-fleet/kogge/drivers"
	"github.com/kogge-fleet/kogge/drivers/eid"
	eidsim "github.com/kogge-fleet/kogge/simulators/devices/eid"
)

const (
	reader  = "Kogge Virtual Reader"
	service = "https://eid.kogge.test/tc?session=1"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// bound is how long a test waits for any one thing.
const bound = 10 * time.Second

// kernel is a connected client plus the emulator behind it.
type kernel struct {
	*eid.Client
	emu  *eid.Emulator
	drop func()
}

// backends gives every scenario the fake (in memory) and the real client
// over a WebSocket to the simulator.
var backends = []struct {
	name string
	open func(t *testing.T, card *eid.EmulatedCard, opts eid.Options) kernel
}{
	{"fake", func(t *testing.T, card *eid.EmulatedCard, opts eid.Options) kernel {
		opts.Logger = quiet()
		f, err := eid.NewFake(eid.EmulatorOptions{}, opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		if card != nil {
			if err := f.Emulator.InsertCard(reader, *card); err != nil {
				t.Fatal(err)
			}
		}
		return kernel{Client: f.Client, emu: f.Emulator, drop: f.Drop}
	}},
	{"simulator", func(t *testing.T, card *eid.EmulatedCard, opts eid.Options) kernel {
		ctx, cancel := context.WithTimeout(context.Background(), bound)
		defer cancel()
		sim, err := eidsim.Start(context.Background(), eidsim.Options{Card: card, Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sim.Close() })
		opts.Logger = quiet()
		c, err := eid.Dial(ctx, sim.Endpoint(), opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return kernel{Client: c, emu: sim.Emulator(), drop: sim.Drop}
	}},
}

// next returns the next event that is not progress, failing after bound.
// Reader events are skipped unless keepReaders.
func next(t *testing.T, w *eid.Workflow, keepReaders bool) eid.Event {
	t.Helper()
	timer := time.NewTimer(bound)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-w.Events():
			if !ok {
				t.Fatal("events closed before EventDone")
			}
			if ev.Kind == eid.EventProgress || (ev.Kind == eid.EventReader && !keepReaders) {
				continue
			}
			return ev
		case <-timer.C:
			t.Fatal("no event in time")
		}
	}
}

func expect(t *testing.T, w *eid.Workflow, want eid.EventKind) eid.Event {
	t.Helper()
	ev := next(t, w, want == eid.EventReader)
	if ev.Kind != want {
		t.Fatalf("got event %v (%+v), want %v", ev.Kind, ev.Message, want)
	}
	return ev
}

func retries(t *testing.T, ev eid.Event) int {
	t.Helper()
	if ev.Message.Reader == nil || ev.Message.Reader.Card == nil {
		t.Fatalf("%v without a card: %+v", ev.Kind, ev.Message)
	}
	return ev.Message.Reader.Card.RetryCounter
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestWorkflows(t *testing.T) {
	card := func(mod func(*eid.EmulatedCard)) *eid.EmulatedCard {
		c := eid.DefaultCard()
		if mod != nil {
			mod(&c)
		}
		return &c
	}
	tests := []struct {
		name      string
		card      *eid.EmulatedCard // in the reader from the start
		changePIN bool
		url       string
		run       func(t *testing.T, ctx context.Context, k kernel, w *eid.Workflow)
		ok        bool
		reason    string
		check     func(t *testing.T, k kernel, o eid.Outcome)
	}{
		{
			name: "auth with the right PIN", card: card(nil), ok: true,
			run: func(t *testing.T, ctx context.Context, k kernel, w *eid.Workflow) {
				ev := expect(t, w, eid.EventAccessRights)
				if ar := ev.Message.AccessRights; ar == nil || len(ar.Required) == 0 {
					t.Fatalf("access rights: %+v", ev.Message)
				}
				cert, err := w.Certificate(ctx)
				must(t, err)
				if cert.SubjectName == "" {
					t.Fatalf("certificate without subject: %+v", cert)
				}
				rights, err := w.SetAccessRights(ctx, nil)
				must(t, err)
				if len(rights.Effective) != len(rights.Required) {
					t.Fatalf("optional rights still effective: %+v", rights)
				}
				must(t, w.Accept(ctx))
				if n := retries(t, expect(t, w, eid.EventEnterPIN)); n != 3 {
					t.Fatalf("retry counter %d, want 3", n)
				}
				must(t, w.SetPIN(ctx, "123456"))
			},
			check: func(t *testing.T, _ kernel, o eid.Outcome) {
				if !strings.HasPrefix(o.URL, "https://eid.kogge.test/result?refID=") || o.Result == nil || !o.Result.OK() {
					t.Fatalf("outcome %+v", o)
				}
			},
		},
		{
			name: "card inserted after the prompt", ok: true,
			run: func(t *testing.T, ctx context.Context, k kernel, w *eid.Workflow) {
				expect(t, w, eid.EventAccessRights)
				must(t, w.Accept(ctx))
				expect(t, w, eid.EventInsertCard)
				must(t, k.emu.InsertCard(reader, eid.DefaultCard()))
				expect(t, w, eid.EventEnterPIN)
				must(t, w.SetPIN(ctx, "123456"))
			},
		},
		{
			name: "SET_CARD inserts the simulated card", ok: true,
			run: func(t *testing.T, ctx context.Context, k kernel, w *eid.Workflow) {
				expect(t, w, eid.EventAccessRights)
				must(t, w.Accept(ctx))
				expect(t, w, eid.EventInsertCard)
				must(t, w.SetCard(ctx, "No Such Reader", nil))
				if ev := expect(t, w, eid.EventInsertCard); ev.Message.Error == "" {
					t.Fatalf("unknown reader accepted: %+v", ev.Message)
				}
				must(t, w.SetCard(ctx, reader, nil))
				expect(t, w, eid.EventEnterPIN)
				must(t, w.SetPIN(ctx, "123456"))
			},
		},
		{
			name: "retry counter 3, CAN at 1, PUK at 0", card: card(nil), ok: true,
			run: func(t *testing.T, ctx context.Context, k kernel, w *eid.Workflow) {
				expect(t, w, eid.EventAccessRights)
				must(t, w.Accept(ctx))
				expect(t, w, eid.EventEnterPIN)
				must(t, w.SetPIN(ctx, "000000"))
				if n := retries(t, expect(t, w, eid.EventEnterPIN)); n != 2 {
					t.Fatalf("after one wrong PIN: retry counter %d, want 2", n)
				}
				must(t, w.SetPIN(ctx, "000000"))
				if n := retries(t, expect(t, w, eid.EventEnterCAN)); n != 1 {
					t.Fatalf("CAN asked at retry counter %d, want 1", n)
				}
				must(t, w.SetCAN(ctx, "111111"))
				if ev := expect(t, w, eid.EventEnterCAN); ev.Message.Error != "" {
					t.Fatalf("a wrong CAN is asked again without an error, got %q", ev.Message.Error)
				}
				must(t, w.SetCAN(ctx, "500540"))
				if n := retries(t, expect(t, w, eid.EventEnterPIN)); n != 1 {
					t.Fatalf("after the CAN: retry counter %d, want 1", n)
				}
				must(t, w.SetPIN(ctx, "000000"))
				if n := retries(t, expect(t, w, eid.EventEnterPUK)); n != 0 {
					t.Fatalf("PUK asked at retry counter %d, want 0", n)
				}
				must(t, w.SetPUK(ctx, "9876543210"))
				if n := retries(t, expect(t, w, eid.EventEnterPIN)); n != 3 {
					t.Fatalf("after the PUK: retry counter %d, want 3", n)
				}
				must(t, w.SetPIN(ctx, "123456"))
			},
		},
		{
			name: "inoperative PUK", card: card(func(c *eid.EmulatedCard) { c.RetryCounter, c.Inoperative = 0, true }), reason: "User_Cancelled",
			run: func(t *testing.T, ctx context.Context, k kernel, w *eid.Workflow) {
				expect(t, w, eid.EventAccessRights)
				must(t, w.Accept(ctx))
				expect(t, w, eid.EventEnterPUK)
				must(t, w.SetPUK(ctx, "9876543210"))
				ev := expect(t, w, eid.EventEnterPUK)
				if !ev.Message.Reader.Card.Inoperative {
					t.Fatalf("used-up PUK not reported: %+v", ev.Message.Reader.Card)
				}
				must(t, w.Cancel(ctx))
			},
		},
		{
			name: "deactivated card", card: card(func(c *eid.EmulatedCard) { c.Deactivated = true }), reason: "User_Cancelled",
			run: func(t *testing.T, ctx context.Context, k kernel, w *eid.Workflow) {
				expect(t, w, eid.EventAccessRights)
				must(t, w.Accept(ctx))
				ev := expect(t, w, eid.EventReader)
				if c := ev.Message.Reader.Card; c == nil || !c.Deactivated {
					t.Fatalf("deactivated card not reported: %+v", ev.Message.Reader)
				}
				must(t, w.Cancel(ctx))
			},
		},
		{
			name: "card pulled mid-read", card: card(func(c *eid.EmulatedCard) { c.PullAfterPIN = true }), reason: "Card_Removed",
			run: func(t *testing.T, ctx context.Context, k kernel, w *eid.Workflow) {
				expect(t, w, eid.EventAccessRights)
				must(t, w.Accept(ctx))
				expect(t, w, eid.EventEnterPIN)
				must(t, w.SetPIN(ctx, "123456"))
				if ev := expect(t, w, eid.EventReader); ev.Message.Reader.Card != nil {
					t.Fatalf("card still reported: %+v", ev.Message.Reader)
				}
			},
			check: func(t *testing.T, _ kernel, o eid.Outcome) {
				if o.Result == nil || o.Result.Major != eid.MajorError || o.URL == "" {
					t.Fatalf("outcome %+v", o)
				}
			},
		},
		{
			name: "card removed at the PIN prompt", card: card(nil), ok: true,
			run: func(t *testing.T, ctx context.Context, k kernel, w *eid.Workflow) {
				expect(t, w, eid.EventAccessRights)
				must(t, w.Accept(ctx))
				expect(t, w, eid.EventEnterPIN)
				must(t, k.emu.RemoveCard(reader))
				expect(t, w, eid.EventInsertCard)
				if err := w.SetPIN(ctx, "123456"); !errors.Is(err, eid.ErrBadState) {
					t.Fatalf("PIN without a prompt: %v, want ErrBadState", err)
				}
				must(t, k.emu.InsertCard(reader, eid.DefaultCard()))
				expect(t, w, eid.EventEnterPIN)
				must(t, w.SetPIN(ctx, "123456"))
			},
		},
		{
			name: "unreachable eID service", url: "https://elsewhere.example/tc", card: card(nil),
			run: func(t *testing.T, ctx context.Context, k kernel, w *eid.Workflow) {},
			check: func(t *testing.T, _ kernel, o eid.Outcome) {
				if o.Result == nil || !strings.HasSuffix(o.Result.Minor, "#trustedChannelEstablishmentFailed") {
					t.Fatalf("outcome %+v", o)
				}
			},
		},
		{
			name: "change PIN from the transport PIN", card: card(func(c *eid.EmulatedCard) { c.PIN = "12345" }), changePIN: true, ok: true,
			run: func(t *testing.T, ctx context.Context, k kernel, w *eid.Workflow) {
				expect(t, w, eid.EventEnterPIN)
				must(t, w.SetPIN(ctx, "12345"))
				expect(t, w, eid.EventEnterNewPIN)
				if err := w.SetNewPIN(ctx, "12345"); !errors.Is(err, eid.ErrFormat) {
					t.Fatalf("5-digit new PIN: %v, want ErrFormat", err)
				}
				must(t, w.SetNewPIN(ctx, "654321"))
			},
			check: func(t *testing.T, k kernel, o eid.Outcome) {
				if c, _ := k.emu.Card(reader); c.PIN != "654321" {
					t.Fatalf("card PIN %q after the change", c.PIN)
				}
			},
		},
		{
			name: "change PIN cancelled", changePIN: true, reason: "User_Cancelled",
			run: func(t *testing.T, ctx context.Context, k kernel, w *eid.Workflow) {
				expect(t, w, eid.EventInsertCard)
				must(t, w.Cancel(ctx))
			},
		},
	}
	for _, b := range backends {
		for _, tc := range tests {
			t.Run(b.name+"/"+tc.name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), bound)
				defer cancel()
				k := b.open(t, tc.card, eid.Options{})
				var w *eid.Workflow
				var err error
				if tc.changePIN {
					w, err = k.ChangePIN(ctx)
				} else {
					url := tc.url
					if url == "" {
						url = service
					}
					w, err = k.Auth(ctx, url)
				}
				must(t, err)
				tc.run(t, ctx, k, w)
				ev := expect(t, w, eid.EventDone)
				if ev.Err != nil {
					t.Fatalf("workflow ended without an outcome: %v", ev.Err)
				}
				o, err := w.Wait(ctx)
				must(t, err)
				if o != *ev.Outcome {
					t.Fatalf("Wait %+v, EventDone %+v", o, *ev.Outcome)
				}
				if o.OK != tc.ok || o.Reason != tc.reason {
					t.Fatalf("outcome %+v, want ok %v reason %q", o, tc.ok, tc.reason)
				}
				if tc.check != nil {
					tc.check(t, k, o)
				}
				if _, ok := <-w.Events(); ok {
					t.Fatal("an event after EventDone")
				}
				// The app is free for the next workflow.
				w2, err := k.ChangePIN(ctx)
				must(t, err)
				must(t, w2.Cancel(ctx))
				if o, err := w2.Wait(ctx); err != nil || o.OK {
					t.Fatalf("cancelled change PIN: %+v, %v", o, err)
				}
			})
		}
	}
}

func TestInputChecks(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), bound)
			defer cancel()
			card := eid.DefaultCard()
			k := b.open(t, &card, eid.Options{})
			if _, err := k.Auth(ctx, ""); err == nil {
				t.Fatal("auth without a tcTokenURL started")
			}
			w, err := k.Auth(ctx, service)
			must(t, err)
			if _, err := k.ChangePIN(ctx); !errors.Is(err, eid.ErrBusy) {
				t.Fatalf("second workflow: %v, want ErrBusy", err)
			}
			if err := w.SetPIN(ctx, "123456"); !errors.Is(err, eid.ErrBadState) {
				t.Fatalf("PIN before it is asked: %v, want ErrBadState", err)
			}
			expect(t, w, eid.EventAccessRights)
			must(t, w.Accept(ctx))
			if err := w.Accept(ctx); !errors.Is(err, eid.ErrBadState) {
				t.Fatalf("second accept: %v, want ErrBadState", err)
			}
			expect(t, w, eid.EventEnterPIN)
			for _, bad := range []string{"", "12345", "1234567", "12a456", "１２３４５６"} {
				if err := w.SetPIN(ctx, bad); !errors.Is(err, eid.ErrFormat) {
					t.Errorf("PIN %q: %v, want ErrFormat", bad, err)
				}
			}
			if err := w.SetCAN(ctx, "500540"); !errors.Is(err, eid.ErrBadState) {
				t.Fatalf("CAN while the PIN is asked: %v, want ErrBadState", err)
			}
			must(t, w.Interrupt(ctx))
			must(t, w.Cancel(ctx))
			o, err := w.Wait(ctx)
			if err != nil || o.OK || o.Reason != "User_Cancelled" {
				t.Fatalf("cancelled: %+v, %v", o, err)
			}
			// The kernel's BAD_STATE maps to ErrBadState.
			if _, err := w.Certificate(ctx); !errors.Is(err, eid.ErrBadState) {
				t.Fatalf("certificate outside a workflow: %v, want ErrBadState", err)
			}
		})
	}
}

func TestReadersAndStatus(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), bound)
			defer cancel()
			k := b.open(t, nil, eid.Options{})
			rs, err := k.Readers(ctx)
			must(t, err)
			if len(rs) != 1 || rs[0].Name != reader || !rs[0].Attached || rs[0].Card != nil {
				t.Fatalf("readers %+v", rs)
			}
			if r, err := k.Reader(ctx, "Nope"); err != nil || r.Attached {
				t.Fatalf("unknown reader: %+v, %v", r, err)
			}
			info, err := k.Info(ctx)
			must(t, err)
			if info.ImplementationVersion == "" {
				t.Fatalf("info %+v", info)
			}
			lvl, err := k.APILevel(ctx)
			must(t, err)
			if lvl.Current != 2 {
				t.Fatalf("api level %+v", lvl)
			}
			if s := k.Status(); s.State != drivers.StateOK {
				t.Fatalf("status %v, want ok", s)
			}
			must(t, k.emu.Unplug(reader))
			waitStatus(t, k, drivers.StateDegraded)
			must(t, k.emu.Plug(reader))
			waitStatus(t, k, drivers.StateOK)
			k.emu.InternalError("unexpected condition")
			waitStatus(t, k, drivers.StateError)
			k.drop()
			waitStatus(t, k, drivers.StateMissing)
			if _, err := k.Readers(ctx); !errors.Is(err, drivers.ErrDisconnected) {
				t.Fatalf("readers after the drop: %v, want ErrDisconnected", err)
			}
		})
	}
}

// waitStatus polls the status until it reaches want, failing after bound.
func waitStatus(t *testing.T, k kernel, want drivers.State) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for k.Status().State != want {
		if time.Now().After(deadline) {
			t.Fatalf("status %v, want %v", k.Status(), want)
		}
		// Status changes arrive through the read loop; ask for something
		// so that the loop has processed everything before it.
		k.Readers(context.Background())
	}
}

func TestDisconnectDuringWorkflow(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), bound)
			defer cancel()
			card := eid.DefaultCard()
			k := b.open(t, &card, eid.Options{})
			w, err := k.Auth(ctx, service)
			must(t, err)
			expect(t, w, eid.EventAccessRights)
			k.drop()
			ev := expect(t, w, eid.EventDone)
			if !errors.Is(ev.Err, drivers.ErrDisconnected) {
				t.Fatalf("done with %v, want ErrDisconnected", ev.Err)
			}
			if _, err := w.Wait(ctx); !errors.Is(err, drivers.ErrDisconnected) {
				t.Fatalf("wait: %v, want ErrDisconnected", err)
			}
			if err := w.Accept(ctx); !errors.Is(err, eid.ErrBadState) {
				t.Fatalf("accept after the drop: %v", err)
			}
		})
	}
}

func TestWorkflowTimeout(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), bound)
			defer cancel()
			// Nobody accepts the access rights: the client cancels.
			k := b.open(t, nil, eid.Options{WorkflowTimeout: 50 * time.Millisecond})
			w, err := k.Auth(ctx, service)
			must(t, err)
			o, err := w.Wait(ctx)
			if !errors.Is(err, drivers.ErrTimeout) || !o.TimedOut || o.OK || o.Reason != "User_Cancelled" {
				t.Fatalf("outcome %+v, %v; want a timed-out cancel", o, err)
			}
		})
	}
}

func TestSecondClientIsBusy(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	sim, err := eidsim.Start(ctx, eidsim.Options{Logger: quiet()})
	must(t, err)
	defer sim.Close()
	c, err := eid.Dial(ctx, sim.Endpoint(), eid.Options{Logger: quiet()})
	must(t, err)
	if _, err := eid.Dial(ctx, sim.Endpoint(), eid.Options{Logger: quiet()}); !errors.Is(err, eid.ErrBusy) {
		t.Fatalf("second client: %v, want ErrBusy", err)
	}
	must(t, c.Close())
	// Once the first has gone, the next gets in (the simulator notices
	// the close asynchronously, so retry within the bound).
	deadline := time.Now().Add(bound)
	for {
		c2, err := eid.Dial(ctx, sim.Endpoint(), eid.Options{Logger: quiet()})
		if err == nil {
			c2.Close()
			break
		}
		if !errors.Is(err, eid.ErrBusy) || time.Now().After(deadline) {
			t.Fatalf("client after the first left: %v", err)
		}
	}
}

func TestDialErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	sim, err := eidsim.Start(ctx, eidsim.Options{Logger: quiet()})
	must(t, err)
	url := sim.Endpoint()
	must(t, sim.Close())
	if _, err := eid.Dial(ctx, url, eid.Options{Logger: quiet()}); !errors.Is(err, drivers.ErrDisconnected) {
		t.Fatalf("dial a closed port: %v, want ErrDisconnected", err)
	}
	sim2, err := eidsim.Start(ctx, eidsim.Options{Logger: quiet(), Emulator: eid.EmulatorOptions{APILevels: []int{1}}})
	must(t, err)
	defer sim2.Close()
	if _, err := eid.Dial(ctx, sim2.Endpoint(), eid.Options{Logger: quiet()}); err == nil || !strings.Contains(err.Error(), "update the AusweisApp") {
		t.Fatalf("dial an app without level 2: %v", err)
	}
}
