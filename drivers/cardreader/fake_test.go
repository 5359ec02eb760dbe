package cardreader_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kogge-fleet/kogge/drivers"
	"github.com/kogge-fleet/kogge/drivers/cardreader"
	"github.com/kogge-fleet/kogge/simulators/devices/vcard"
)

func TestFake(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	f := cardreader.NewFake()
	if s := f.Status(); s.State != drivers.StateMissing {
		t.Fatalf("status without readers: %v", s)
	}
	f.Attach("Reader A")
	// A card inserted while WaitCard blocks is found.
	found := make(chan cardreader.Presence, 1)
	go func() {
		pr, err := f.WaitCard(ctx, "")
		if err != nil {
			t.Error(err)
		}
		found <- pr
	}()
	card := vcard.NewCard(vcard.ATR(nil), vcard.DefaultApplets())
	card.Handle([]byte{vcard.CtrlPowerOn})
	if err := f.Insert("Reader A", vcard.ATR(nil), card.Process); err != nil {
		t.Fatal(err)
	}
	if pr := <-found; pr.Reader != "Reader A" || len(pr.ATR) == 0 {
		t.Fatalf("presence %+v", pr)
	}
	c, err := f.Connect(ctx, "Reader A")
	if err != nil {
		t.Fatal(err)
	}
	rsp, err := c.Transmit(ctx, []byte{0x00, 0xA4, 0x04, 0x0C, 0x06, 0xD2, 0x76, 0x00, 0x01, 0x24, 0x01})
	if err != nil || cardreader.SW(rsp) != 0x9000 {
		t.Fatalf("select: % X, %v", rsp, err)
	}
	f.Remove("Reader A")
	if err := f.WaitRemoved(ctx, "Reader A"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Transmit(ctx, []byte{0, 0xB0, 0, 0, 0}); !errors.Is(err, cardreader.ErrCardRemoved) {
		t.Fatalf("transmit after removal: %v", err)
	}
	// The same card put back is a new card: the old connection stays dead.
	f.Insert("Reader A", vcard.ATR(nil), card.Process)
	if _, err := c.Transmit(ctx, []byte{0, 0xB0, 0, 0, 0}); !errors.Is(err, cardreader.ErrCardRemoved) {
		t.Fatalf("transmit on the old connection: %v", err)
	}
	short, scancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer scancel()
	f.Remove("Reader A")
	if _, err := f.WaitCard(short, "Reader A"); !errors.Is(err, drivers.ErrTimeout) {
		t.Fatalf("wait without a card: %v", err)
	}
	if _, err := f.Connect(ctx, "Reader A"); !errors.Is(err, cardreader.ErrNoCard) {
		t.Fatalf("connect without a card: %v", err)
	}
	f.Detach("Reader A")
	if _, err := f.WaitCard(ctx, "Reader A"); !errors.Is(err, cardreader.ErrNoReader) {
		t.Fatalf("wait on a detached reader: %v", err)
	}
	f.SetDown(true)
	if _, err := f.Readers(ctx); !errors.Is(err, drivers.ErrDisconnected) {
		t.Fatalf("readers without pcscd: %v", err)
	}
	if s := f.Status(); s.State != drivers.StateMissing {
		t.Fatalf("status without pcscd: %v", s)
	}
}
