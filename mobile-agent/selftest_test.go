package mobileagent_test

import (
	"context"
	"strings"
	"testing"

	"github.com/kogge-fleet/kogge/drivers"
)

func TestSelfTestPassesWithWorkingDevices(t *testing.T) {
	f := newFixture(t, fixtureOptions{noRun: true})
	if err := f.app.SelfTest(context.Background()); err != nil {
		t.Fatalf("SelfTest: %v", err)
	}
	f.gnss.SetStatus(drivers.Status{State: drivers.StateDegraded, Reason: "few satellites"})
	f.printer.SetPaperLow(true)
	if err := f.app.SelfTest(context.Background()); err != nil {
		t.Fatalf("SelfTest with degraded peripherals: %v", err)
	}
}

func TestSelfTestNamesTheFailedPeripheral(t *testing.T) {
	for _, tc := range []struct {
		name    string
		breakIt func(f *fixture)
		want    string
	}{
		{"printer", func(f *fixture) { f.printer.SetUnreachable(true) }, "peripheral printer"},
		{"gnss", func(f *fixture) {
			f.gnss.SetStatus(drivers.Status{State: drivers.StateMissing, Reason: "unplugged"})
		}, "peripheral gnss"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, fixtureOptions{noRun: true})
			tc.breakIt(f)
			err := f.app.SelfTest(context.Background())
			if err == nil {
				t.Fatal("SelfTest passed with a broken peripheral")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("SelfTest error %q does not name %q", err, tc.want)
			}
		})
	}
}
