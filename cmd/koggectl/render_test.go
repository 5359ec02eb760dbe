package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/kogge-fleet/kogge/fleet-server/api/client"
)

func TestRenderDevice(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		d    client.DeviceDetail
		want []string
	}{
		{
			name: "online with a full store",
			d: client.DeviceDetail{
				Device:   client.Device{ID: "k-1", Group: "kiosks", State: "online"},
				Presence: &client.Presence{Online: true, Since: now.Add(-2 * time.Hour), LastHeard: now.Add(-5 * time.Second)},
				Health: &client.HealthSample{ReceivedAt: now.Add(-5 * time.Second), Heartbeat: client.Heartbeat{
					QueueDepth: 7, BudgetUsed: 512 << 20, BudgetTotal: 512 << 20, DiskFree: 3 << 30, Full: true, Battery: 81,
					Peripherals: []client.PeripheralHealth{{Name: "camera", State: "degraded", Reason: "dim"}}}},
			},
			want: []string{"online since 2026-06-01 10:00:00Z (2h00m ago)", "Unsent records:", "7", "512.0 MiB of 512.0 MiB budget used",
				"3.0 GiB free", "FULL: captures paused", "81 %", "camera degraded (dim)"},
		},
		{
			name: "offline by the deadline, revoked",
			d: client.DeviceDetail{
				Device: client.Device{ID: "k-2", State: "revoked", RevokedAt: &now, RevokedReason: "stolen"},
				Presence: &client.Presence{Online: false, Reason: "heartbeat deadline", Since: now.Add(-time.Minute),
					LastHeard: now.Add(-3 * time.Minute)},
			},
			want: []string{"offline (heartbeat deadline) since", "no heartbeat yet", "Revocation reason:", "stolen"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := renderDevice(&b, tt.d, now); err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("lacks %q:\n%s", w, b.String())
				}
			}
		})
	}
}

func TestRenderTwin(t *testing.T) {
	now := time.Now()
	tests := []struct {
		v    client.DeviceTwin
		want string
	}{
		{client.DeviceTwin{}, "no configuration for this device"},
		{client.DeviceTwin{Version: 3}, "waiting for the device to report"},
		{client.DeviceTwin{Version: 3, Reported: &client.TwinReported{Version: 3}, Diff: client.TwinDiff{InSync: true}}, "in sync"},
		{client.DeviceTwin{Version: 3, Reported: &client.TwinReported{Version: 2}, Diff: client.TwinDiff{DesiredVersion: 3, AppliedVersion: 2}}, "device runs version 2"},
		{client.DeviceTwin{Version: 3, Diff: client.TwinDiff{Rejected: true, Reason: "bad heartbeat"}}, "REFUSED by the device: bad heartbeat"},
		{client.DeviceTwin{Version: 3, Reported: &client.TwinReported{Version: 3}, Diff: client.TwinDiff{DesiredVersion: 3, AppliedVersion: 3, Keys: []string{"ui.lang"}}}, "differs in ui.lang"},
	}
	for _, tt := range tests {
		var b bytes.Buffer
		if err := renderTwin(&b, tt.v, now); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(b.String(), tt.want) {
			t.Errorf("%+v: lacks %q:\n%s", tt.v, tt.want, b.String())
		}
	}
}
