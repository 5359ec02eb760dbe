package api

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/fleet-server/registry"
	"github.com/kogge-fleet/kogge/fleet-server/store"
	"github.com/kogge-fleet/kogge/protocol"
)

// testHealth is a heartbeat as JSON reads it back (protocol's types only
// render JSON).
type testHealth struct {
	ReceivedAt time.Time `json:"received_at"`
	Heartbeat  struct {
		QueueDepth  uint32 `json:"queue_depth"`
		Peripherals []struct {
			State string `json:"state"`
		} `json:"peripherals"`
	} `json:"heartbeat"`
}

type testDetail struct {
	State    string        `json:"state"`
	Presence *presenceJSON `json:"presence"`
	Health   *testHealth   `json:"health"`
}

func TestPresenceAndHealth(t *testing.T) {
	e := newTestEnv(t, nil)
	if _, err := e.reg.CreateGroup(t.Context(), "kiosks", "Kiosks"); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"k-1", "k-2", "k-3", "k-4"} {
		e.enroll(t, "kiosks", id, registry.Inventory{})
	}
	base := time.Date(2026, 6, 1, 8, 0, 0, 0, time.UTC)
	ctx := context.Background()
	err := e.db.Ingest(ctx, func(tx *store.IngestTx) error {
		// k-1 online with heartbeats; k-2 went offline by its last will;
		// k-3 never connected; k-4 online.
		for _, d := range []string{"k-1", "k-2", "k-4"} {
			if _, err := tx.ApplyPresence(ctx, d, &protocol.Presence{State: protocol.Online, Session: uuid.New(),
				Software: "1.0.0", At: protocol.At(base)}, base.UnixMilli()); err != nil {
				return err
			}
		}
		if _, err := tx.ApplyPresence(ctx, "k-2", &protocol.Presence{State: protocol.Offline, Session: uuid.New(),
			At: protocol.At(base.Add(time.Minute))}, base.Add(time.Minute).UnixMilli()); err != nil {
			return err
		}
		for i := range 3 {
			at := base.Add(time.Duration(i) * 10 * time.Minute)
			hb := &protocol.Heartbeat{QueueDepth: uint32(i), DiskFree: 1 << 30, Battery: -1, Software: "1.0.0",
				Clock: protocol.At(at), Peripherals: []protocol.Peripheral{{Name: "camera", Kind: "camera", State: protocol.PeripheralOK}}}
			if err := tx.PutHeartbeat(ctx, "k-1", hb, at.UnixMilli(), int64(time.Minute/time.Millisecond)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	devs := decodeInto[deviceList](t, do(t, e.h, "GET", "/api/v1/devices", testToken, "").Body.Bytes())
	var states []string
	for _, d := range devs.Devices {
		states = append(states, d.ID+":"+d.State)
	}
	if got := strings.Join(states, ","); got != "k-1:online,k-2:offline,k-3:never-connected,k-4:online" {
		t.Errorf("states %s", got)
	}
	if l := decodeInto[deviceList](t, do(t, e.h, "GET", "/api/v1/devices?state=online", testToken, "").Body.Bytes()); len(l.Devices) != 2 {
		t.Errorf("online devices %+v", l.Devices)
	}

	pl := decodeInto[presenceList](t, do(t, e.h, "GET", "/api/v1/presence", testToken, "").Body.Bytes())
	if len(pl.Presence) != 3 || pl.Presence[1].Device != "k-2" || pl.Presence[1].Online || pl.Presence[1].Reason != store.OfflineDisconnected {
		t.Errorf("presence %+v", pl)
	}
	pl = decodeInto[presenceList](t, do(t, e.h, "GET", "/api/v1/presence?state=offline", testToken, "").Body.Bytes())
	if len(pl.Presence) != 1 || pl.Presence[0].Device != "k-2" {
		t.Errorf("offline presence %+v", pl)
	}
	pl = decodeInto[presenceList](t, do(t, e.h, "GET", "/api/v1/presence?limit=1&after=k-1", testToken, "").Body.Bytes())
	if len(pl.Presence) != 1 || pl.Presence[0].Device != "k-2" || pl.Next != "k-2" {
		t.Errorf("paged presence %+v", pl)
	}

	d := decodeInto[testDetail](t, do(t, e.h, "GET", "/api/v1/devices/k-1", testToken, "").Body.Bytes())
	if d.State != "online" || d.Presence == nil || !d.Presence.Online || d.Presence.Software != "1.0.0" ||
		d.Health == nil || d.Health.Heartbeat.QueueDepth != 2 || d.Health.Heartbeat.Peripherals[0].State != "ok" {
		t.Errorf("device detail %+v presence %+v health %+v", d, d.Presence, d.Health)
	}
	rec := do(t, e.h, "GET", "/api/v1/devices/k-3", testToken, "")
	if !strings.Contains(rec.Body.String(), `"presence":null`) || !strings.Contains(rec.Body.String(), `"health":null`) {
		t.Errorf("never-connected device: %s", rec.Body.String())
	}

	type testHealthList struct {
		Samples []testHealth `json:"samples"`
	}
	hl := decodeInto[testHealthList](t, do(t, e.h, "GET", "/api/v1/devices/k-1/health", testToken, "").Body.Bytes())
	if len(hl.Samples) != 3 || hl.Samples[0].Heartbeat.QueueDepth != 2 || !hl.Samples[0].ReceivedAt.Equal(base.Add(20*time.Minute)) {
		t.Errorf("health %+v", hl)
	}
	hl = decodeInto[testHealthList](t, do(t, e.h, "GET", "/api/v1/devices/k-1/health?since=2026-06-01T08:05:00Z&until=2026-06-01T08:15:00Z", testToken, "").Body.Bytes())
	if len(hl.Samples) != 1 || hl.Samples[0].Heartbeat.QueueDepth != 1 {
		t.Errorf("health window %+v", hl)
	}
	rec = do(t, e.h, "GET", "/api/v1/devices/k-1/health", testToken, "")
	if !strings.Contains(rec.Body.String(), `"state":"ok"`) || !strings.Contains(rec.Body.String(), `"clock":"2026-06-01T08:`) {
		t.Errorf("heartbeat JSON: %s", rec.Body.String())
	}
	for path, want := range map[string]int{
		"/api/v1/devices/nope/health":          404,
		"/api/v1/devices/k-1/health?since=now": 400,
		"/api/v1/presence?state=asleep":        400,
	} {
		if rec := do(t, e.h, "GET", path, testToken, ""); rec.Code != want {
			t.Errorf("%s: %d, want %d", path, rec.Code, want)
		}
	}
}
