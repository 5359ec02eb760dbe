package payment

import (
	"context"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kogge-fleet/kogge/drivers/payment/zvt"
)

func TestBehaviourTable(t *testing.T) {
	for cents, want := range map[int64]Behaviour{
		600: Approve, 601: Decline, 602: TimeoutBooked, 603: DropBooked, 604: CustomerAbort,
		605: AwaitAbort, 606: FreezeUnbooked, 607: Refuse, 608: Approve, 1: Decline, 12345: Approve,
	} {
		if got := BehaviourOf(cents); got != want {
			t.Errorf("BehaviourOf(%d) = %v, want %v", cents, got, want)
		}
	}
}

func TestPlan(t *testing.T) {
	pw := []byte{0, 0, 0}
	auth := func(cents int64) zvt.APDU {
		a, err := zvt.Authorisation(cents, zvt.EUR)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	reg, _ := zvt.Registration("000000", 0xBE, zvt.EUR)
	wrongPW, _ := zvt.Registration("123456", 0xBE, zvt.EUR)
	usd, _ := zvt.Registration("000000", 0xBE, 840)
	tests := []struct {
		name  string
		cmd   zvt.APDU
		first stepKind
		code  byte
		last  stepKind
	}{
		{"registration", reg, stepAck, 0, stepSend},
		{"wrong password", wrongPW, stepNack, 0x6B, stepNack},
		{"wrong currency", usd, stepNack, 0x6F, stepNack},
		{"approve", auth(600), stepAck, 0, stepSend},
		{"timeout", auth(602), stepAck, 0, stepFreeze},
		{"drop", auth(603), stepAck, 0, stepDrop},
		{"refuse", auth(607), stepNack, 0x9C, stepNack},
		{"authorisation without amount", zvt.New(zvt.CmdAuthorisation, nil), stepNack, 0x9A, stepNack},
		{"abort while idle", zvt.AbortRequest(), stepNack, 0x83, stepNack},
		{"unknown command", zvt.New(0x0699, nil), stepNack, 0x83, stepNack},
	}
	for _, tt := range tests {
		steps, _ := plan(tt.cmd, pw)
		if len(steps) == 0 || steps[0].kind != tt.first || steps[0].code != tt.code || steps[len(steps)-1].kind != tt.last {
			t.Errorf("%s: plan %+v", tt.name, steps)
		}
	}
}

func FuzzPlan(f *testing.F) {
	for _, cents := range []int64{600, 601, 602, 603, 604, 605, 606, 607} {
		a, _ := zvt.Authorisation(cents, zvt.EUR)
		b, _ := a.Marshal()
		f.Add(b)
	}
	reg, _ := zvt.Registration("000000", 0xBE, zvt.EUR)
	b, _ := reg.Marshal()
	f.Add(b)
	f.Add([]byte{0x06, 0x01, 0x05, 0x04, 0x99, 0x99, 0x49, 0x09})
	f.Fuzz(func(t *testing.T, b []byte) {
		cmd, _, err := zvt.Parse(b)
		if err != nil {
			return
		}
		steps, _ := plan(cmd, []byte{0, 0, 0})
		if len(steps) == 0 || (steps[0].kind != stepAck && steps[0].kind != stepNack) {
			t.Fatalf("command % X not acknowledged first: %+v", b, steps)
		}
		for _, st := range steps {
			if st.kind == stepSend {
				if _, err := st.apdu.Marshal(); err != nil {
					t.Fatalf("planned message does not encode: %v", err)
				}
			}
		}
	})
}

// Over the serial line a damaged frame is answered with NAK, a good one
// with ACK and then the terminal's answer.
func TestSerialFraming(t *testing.T) {
	sim, err := Start(context.Background(), Options{Serial: true, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	// Open the terminal's line as the cash register would.
	f, err := os.OpenFile(sim.SerialEndpoint(), os.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	status, _ := zvt.StatusEnquiry("000000")
	raw, _ := status.Marshal()
	good := zvt.Frame(raw)
	bad := append([]byte(nil), good...)
	bad[len(bad)-1] ^= 0x55

	var dec zvt.FrameDecoder
	buf := make([]byte, 64)
	expect := func(kind zvt.EventKind) zvt.Event {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			f.SetReadDeadline(deadline)
			n, err := f.Read(buf)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			for _, c := range buf[:n] {
				if ev := dec.Feed(c); ev.Kind != zvt.EventNone {
					if ev.Kind != kind {
						t.Fatalf("got event %d, want %d", ev.Kind, kind)
					}
					return ev
				}
			}
		}
		t.Fatalf("no event %d", kind)
		return zvt.Event{}
	}
	f.Write(bad)
	expect(zvt.EventNak)
	f.Write(good)
	expect(zvt.EventAck)
	ev := expect(zvt.EventFrame) // the terminal's ACK APDU 80 00 00
	if a, _, err := zvt.Parse(ev.Data); err != nil || !a.IsAck() {
		t.Fatalf("first answer % X", ev.Data)
	}
	f.Write([]byte{zvt.ACK})
	ev = expect(zvt.EventFrame) // the completion
	if a, _, err := zvt.Parse(ev.Data); err != nil || !a.Is(zvt.MsgCompletion) {
		t.Fatalf("second answer % X", ev.Data)
	}
}
