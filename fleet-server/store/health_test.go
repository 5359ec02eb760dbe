package store

import (
	"context"
	"errors"
	"testing"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/protocol"
)

func TestPresenceStore(t *testing.T) {
	backends(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		addTestDevices(t, db, "g", "d1", "d2")
		s1, s2 := uuid.New(), uuid.New()
		type step struct {
			p       *protocol.Presence // nil: Touch
			at      int64
			applied bool
			online  bool
		}
		for i, s := range []step{
			{nil, 100, true, true},
			{&protocol.Presence{State: protocol.Offline, Session: s1, At: 90}, 200, true, false},
			{&protocol.Presence{State: protocol.Online, Session: s2, At: 300}, 300, true, true},
			// s1's last will arrives late: older session, older time.
			{&protocol.Presence{State: protocol.Offline, Session: s1, At: 90}, 310, false, true},
			{&protocol.Presence{State: protocol.Offline, Session: s2, At: 300, Software: "1.2"}, 400, true, false},
		} {
			applied := true
			ingest(t, db, func(ctx context.Context, tx *IngestTx) error {
				if s.p == nil {
					return tx.Touch(ctx, "d1", s.at)
				}
				var err error
				applied, err = tx.ApplyPresence(ctx, "d1", s.p, s.at)
				return err
			})
			if applied != s.applied {
				t.Errorf("step %d: applied %v, want %v", i, applied, s.applied)
			}
			p, err := db.Presence(ctx, "d1")
			if err != nil || p.Online != s.online {
				t.Errorf("step %d: Presence = %+v, %v; want online %v", i, p, err, s.online)
			}
		}
		p, _ := db.Presence(ctx, "d1")
		if p.Reason != OfflineDisconnected || p.Session != s2 || p.Software != "1.2" || p.LastHeard != 300 || p.ChangedAt != 400 {
			t.Errorf("final presence = %+v", p)
		}
		if d, err := db.Device(ctx, "d1"); err != nil || d.LastSeen != 100 {
			t.Errorf("last seen = %d, %v; want 100", d.LastSeen, err)
		}
		if _, err := db.Presence(ctx, "d2"); !errors.Is(err, ErrNotFound) {
			t.Errorf("Presence(never heard) = %v", err)
		}

		// The heartbeat deadline.
		ingest(t, db, func(ctx context.Context, tx *IngestTx) error {
			if err := tx.Touch(ctx, "d1", 1000); err != nil {
				return err
			}
			return tx.Touch(ctx, "d2", 2000)
		})
		if oldest, ok, err := db.OldestOnline(ctx); err != nil || !ok || oldest != 1000 {
			t.Errorf("OldestOnline = %d, %v, %v", oldest, ok, err)
		}
		off, err := db.ExpireOnline(ctx, 1500, 3000)
		if err != nil || len(off) != 1 || off[0] != "d1" {
			t.Fatalf("ExpireOnline = %v, %v", off, err)
		}
		if p, _ := db.Presence(ctx, "d1"); p.Online || p.Reason != OfflineDeadline || p.ChangedAt != 3000 {
			t.Errorf("after deadline: %+v", p)
		}
		if on, _ := db.DeviceOnline(ctx, "d2"); !on {
			t.Error("d2 offline")
		}
		if ps, err := db.Presences(ctx, "", 10, true); err != nil || len(ps) != 1 || ps[0].Device != "d2" {
			t.Errorf("Presences(online) = %+v, %v", ps, err)
		}
		if ps, _ := db.Presences(ctx, "d1", 10, false); len(ps) != 1 {
			t.Errorf("Presences(after d1) = %+v", ps)
		}
	})
}

func TestHeartbeats(t *testing.T) {
	backends(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		addTestDevices(t, db, "g", "d1")
		hb := func(software string, depth uint32) *protocol.Heartbeat {
			return &protocol.Heartbeat{QueueDepth: depth, Battery: -1, Software: software, Clock: 1,
				Peripherals: []protocol.Peripheral{{Name: "cam", Kind: "camera", State: protocol.PeripheralOK}}}
		}
		// Every 10 ms a heartbeat; a sample every 100 ms or on a change.
		for i := range 30 {
			sw := "1.0"
			if i >= 25 {
				sw = "1.1"
			}
			at := int64(1000 + 10*i)
			ingest(t, db, func(ctx context.Context, tx *IngestTx) error {
				return tx.PutHeartbeat(ctx, "d1", hb(sw, uint32(i)), at, 100)
			})
		}
		latest, err := db.LatestHealth(ctx, "d1")
		if err != nil || latest.Heartbeat.QueueDepth != 29 || latest.ReceivedAt != 1290 || latest.Heartbeat.Software != "1.1" {
			t.Fatalf("LatestHealth = %+v, %v", latest, err)
		}
		hist, err := db.HealthHistory(ctx, HealthFilter{Device: "d1"})
		if err != nil {
			t.Fatal(err)
		}
		var depths []uint32
		for _, h := range hist {
			depths = append(depths, h.Heartbeat.QueueDepth)
		}
		// Samples at 0, 10, 20 (by time) and 25 (software change), newest first.
		if want := []uint32{25, 20, 10, 0}; len(depths) != len(want) || depths[0] != 25 || depths[3] != 0 {
			t.Errorf("sampled depths = %v, want %v", depths, want)
		}
		if h, _ := db.HealthHistory(ctx, HealthFilter{Device: "d1", Since: 1100, Until: 1250}); len(h) != 2 {
			t.Errorf("history in [1100, 1250) = %d samples, want 2", len(h))
		}
		n, err := db.TrimHeartbeats(ctx, 1050, 2)
		if err != nil || n != 2 {
			t.Fatalf("TrimHeartbeats = %d, %v; want 2 (one by age, one by count)", n, err)
		}
		hist, _ = db.HealthHistory(ctx, HealthFilter{Device: "d1"})
		if len(hist) != 2 || hist[0].Heartbeat.QueueDepth != 25 || hist[1].Heartbeat.QueueDepth != 20 {
			t.Errorf("after trim: %+v", hist)
		}
		if n, _ := db.TrimHeartbeats(ctx, 1050, 2); n != 0 {
			t.Errorf("second trim deleted %d", n)
		}
		if _, err := db.LatestHealth(ctx, "nobody"); !errors.Is(err, ErrNotFound) {
			t.Errorf("LatestHealth(unknown) = %v", err)
		}
	})
}
