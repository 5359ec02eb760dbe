package gnss_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kogge-fleet/kogge/drivers"
	"github.com/kogge-fleet/kogge/drivers/gnss"
)

func TestFake(t *testing.T) {
	f := gnss.NewFake()
	if f.Status().State != drivers.StateMissing {
		t.Fatalf("new fake: %v", f.Status())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := f.Position(ctx); !errors.Is(err, gnss.ErrNoFix) {
		t.Fatalf("Position without fix: %v", err)
	}
	wctx, wcancel := context.WithCancel(context.Background())
	ch := f.Watch(wctx)
	got := make(chan gnss.Position)
	go func() {
		p, err := f.Position(context.Background())
		if err != nil {
			t.Error(err)
		}
		got <- p
	}()
	f.SetFix(gnss.Fix{Lat: 53.1, Lon: 8.8})
	if p := <-got; p.Lat != 53.1 {
		t.Fatalf("waiting Position got %+v", p)
	}
	if p := <-ch; p.Lon != 8.8 {
		t.Fatalf("watch got %+v", p)
	}
	if !f.Status().OK() {
		t.Fatalf("status %v", f.Status())
	}
	wcancel()
	if _, ok := <-ch; ok {
		t.Fatal("watch channel open after cancel")
	}
}
