package kiosk_test

import (
	"context"
	"strings"
	"testing"

	"github.com/kogge-fleet/kogge/drivers"
	"github.com/kogge-fleet/kogge/kiosk"
)

// realQuality makes the rig use kiosk/photo, kiosk/finger and
// kiosk/signature at their defaults, as the terminal does.
func realQuality(_ *kiosk.Config, o *kiosk.Options) {
	o.Faces, o.Fingers, o.Signatures = nil, nil, nil
}

func TestSelfTestPassesWithWorkingDevices(t *testing.T) {
	r := newRig(t, realQuality)
	if err := r.k.SelfTest(context.Background()); err != nil {
		t.Fatalf("SelfTest: %v", err)
	}
}

func TestSelfTestNamesTheFailedPart(t *testing.T) {
	for _, tc := range []struct {
		name    string
		breakIt func(r *rig)
		want    string
	}{
		{"printer", func(r *rig) { r.printer.SetUnreachable(true) }, "peripheral printer"},
		{"fingerprint", func(r *rig) {
			r.scanner.SetStatus(drivers.Status{State: drivers.StateMissing, Reason: "unplugged"})
		}, "peripheral fingerprint"},
		{"camera", func(r *rig) {
			r.cam.SetStatus(drivers.Status{State: drivers.StateError, Reason: "no frames"})
		}, "peripheral camera"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, realQuality)
			tc.breakIt(r)
			err := r.k.SelfTest(context.Background())
			if err == nil {
				t.Fatal("SelfTest passed with a broken peripheral")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("SelfTest error %q does not name %q", err, tc.want)
			}
		})
	}
}

func TestSelfTestNamesABrokenSignatureRenderer(t *testing.T) {
	r := newRig(t, nil) // flowtest's signatures give no PNG
	err := r.k.SelfTest(context.Background())
	if err == nil || !strings.Contains(err.Error(), "signature renderer") {
		t.Fatalf("SelfTest error %v, want one naming the signature renderer", err)
	}
}
