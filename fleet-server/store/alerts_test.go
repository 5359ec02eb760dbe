package store

import (
	"context"
	"errors"
	"testing"

	"github.com/kogge-fleet/kogge/protocol"
)

func TestAlertRules(t *testing.T) {
	backends(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		r := AlertRule{ID: "r1", Name: "Kiosk offline", Kind: "offline", Params: `{"for":"15m"}`, Notify: `{}`, Enabled: true,
			CreatedAt: 10, UpdatedAt: 10}
		if err := db.PutAlertRule(ctx, r); err != nil {
			t.Fatal(err)
		}
		r.Name, r.Enabled, r.UpdatedAt, r.Group = "Kiosk offline (Mitte)", false, 20, "mitte"
		if err := db.PutAlertRule(ctx, r); err != nil {
			t.Fatal(err)
		}
		got, err := db.AlertRule(ctx, "r1")
		if err != nil || got.Name != "Kiosk offline (Mitte)" || got.Enabled || got.CreatedAt != 10 || got.UpdatedAt != 20 || got.Group != "mitte" {
			t.Fatalf("AlertRule = %+v, %v", got, err)
		}
		if err := db.PutAlertRule(ctx, AlertRule{ID: "r0", Name: "Disk", Kind: "disk-low", Params: "{}", Notify: "{}", Enabled: true}); err != nil {
			t.Fatal(err)
		}
		rules, err := db.AlertRules(ctx)
		if err != nil || len(rules) != 2 || rules[0].ID != "r0" {
			t.Errorf("AlertRules = %+v, %v", rules, err)
		}
		if _, err := db.AlertRule(ctx, "nope"); !errors.Is(err, ErrNotFound) {
			t.Errorf("missing rule: %v", err)
		}
		if err := db.DeleteAlertRule(ctx, "nope"); !errors.Is(err, ErrNotFound) {
			t.Errorf("delete missing rule: %v", err)
		}
	})
}

func TestApplyAlerts(t *testing.T) {
	backends(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		if err := db.PutAlertRule(ctx, AlertRule{ID: "r1", Name: "offline", Kind: "offline", Params: "{}", Notify: "{}", Enabled: true}); err != nil {
			t.Fatal(err)
		}
		note := func(id, event string, at int64) AlertNotification {
			return AlertNotification{ID: id, Event: event, Channel: "webhook", Target: "http://127.0.0.1/hook", CreatedAt: at, NextAt: at}
		}
		fired, resolved, err := db.ApplyAlerts(ctx, AlertChange{Fire: []AlertFire{
			{Alert: Alert{ID: "a1", Rule: "r1", Subject: "d1", Message: "d1 offline", FiredAt: 100},
				Notifications: []AlertNotification{note("n1", "firing", 100)}},
			{Alert: Alert{ID: "a2", Rule: "r1", Subject: "d2", Message: "d2 offline", FiredAt: 100}},
		}})
		if err != nil || len(fired) != 2 || len(resolved) != 0 {
			t.Fatalf("first ApplyAlerts = %v, %v, %v", fired, resolved, err)
		}
		// A second evaluator raises d1 again: nothing changes, no
		// notification is queued; resolving d3 (never fired) neither.
		fired, resolved, err = db.ApplyAlerts(ctx, AlertChange{
			Fire: []AlertFire{{Alert: Alert{ID: "a3", Rule: "r1", Subject: "d1", Message: "again", FiredAt: 150},
				Notifications: []AlertNotification{note("n2", "firing", 150)}}},
			Resolve: []AlertResolve{{Rule: "r1", Subject: "d3", At: 150, Notifications: []AlertNotification{note("n3", "resolved", 150)}}},
		})
		if err != nil || len(fired) != 0 || len(resolved) != 0 {
			t.Fatalf("duplicate ApplyAlerts = %v, %v, %v", fired, resolved, err)
		}
		fired, resolved, err = db.ApplyAlerts(ctx, AlertChange{Resolve: []AlertResolve{{Rule: "r1", Subject: "d1", At: 200,
			Notifications: []AlertNotification{note("n4", "resolved", 200)}}}})
		if err != nil || len(fired) != 0 || len(resolved) != 1 || resolved[0].ID != "a1" || resolved[0].ResolvedAt != 200 {
			t.Fatalf("resolve = %v, %v, %v", fired, resolved, err)
		}
		// d1 fires anew after it was resolved.
		if fired, _, err := db.ApplyAlerts(ctx, AlertChange{Fire: []AlertFire{{Alert: Alert{ID: "a4", Rule: "r1", Subject: "d1", Message: "d1 offline", FiredAt: 300}}}}); err != nil || len(fired) != 1 {
			t.Fatalf("fire again = %v, %v", fired, err)
		}

		if a, err := db.Alert(ctx, "a1"); err != nil || a.ResolvedAt != 200 || a.Firing() || a.Message != "d1 offline" {
			t.Errorf("Alert(a1) = %+v, %v", a, err)
		}
		if _, err := db.Alert(ctx, "a3"); !errors.Is(err, ErrNotFound) {
			t.Errorf("Alert of the refused duplicate: %v", err)
		}
		firing, err := db.Alerts(ctx, AlertFilter{FiringOnly: true})
		if err != nil || len(firing) != 2 || firing[0].ID != "a4" || firing[1].ID != "a2" {
			t.Errorf("firing alerts = %+v, %v", firing, err)
		}
		all, err := db.Alerts(ctx, AlertFilter{ResolvedSince: 200})
		if err != nil || len(all) != 3 {
			t.Errorf("alerts resolved since 200 = %+v, %v", all, err)
		}
		if old, err := db.Alerts(ctx, AlertFilter{ResolvedSince: 201, Rule: "r1"}); err != nil || len(old) != 2 {
			t.Errorf("alerts resolved since 201 = %+v, %v", old, err)
		}

		due, err := db.DueNotifications(ctx, 1000, 10)
		if err != nil || len(due) != 2 || due[0].ID != "n1" || due[0].Alert != "a1" || due[1].ID != "n4" {
			t.Fatalf("due notifications = %+v, %v", due, err)
		}
		if err := db.MarkNotification(ctx, "n1", NotificationResult{Error: "connection refused", NextAt: 2000}); err != nil {
			t.Fatal(err)
		}
		if err := db.MarkNotification(ctx, "n4", NotificationResult{SentAt: 1001}); err != nil {
			t.Fatal(err)
		}
		if due, _ := db.DueNotifications(ctx, 1500, 10); len(due) != 0 {
			t.Errorf("due before the retry: %+v", due)
		}
		due, _ = db.DueNotifications(ctx, 2000, 10)
		if len(due) != 1 || due[0].Attempts != 1 || due[0].LastError != "connection refused" {
			t.Errorf("due at the retry: %+v", due)
		}
		if err := db.MarkNotification(ctx, "n1", NotificationResult{Error: "again", GiveUp: 2001}); err != nil {
			t.Fatal(err)
		}
		if due, _ := db.DueNotifications(ctx, 1<<40, 10); len(due) != 0 {
			t.Errorf("due after giving up: %+v", due)
		}
		ns, err := db.AlertNotifications(ctx, "a1")
		if err != nil || len(ns) != 2 || ns[0].GivenUpAt != 2001 || ns[0].Attempts != 2 || ns[1].SentAt != 1001 {
			t.Errorf("notifications of a1 = %+v, %v", ns, err)
		}

		if err := db.DeleteAlertRule(ctx, "r1"); err != nil {
			t.Fatal(err)
		}
		if left, _ := db.Alerts(ctx, AlertFilter{}); len(left) != 0 {
			t.Errorf("alerts of a deleted rule: %+v", left)
		}
	})
}

func TestFleetReads(t *testing.T) {
	backends(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		addTestDevices(t, db, "g", "d1", "d2", "d3")
		ingest(t, db, func(ctx context.Context, tx *IngestTx) error {
			if err := tx.Touch(ctx, "d1", 100); err != nil {
				return err
			}
			if err := tx.Touch(ctx, "d2", 200); err != nil {
				return err
			}
			for i, d := range []string{"d1", "d3"} {
				hb := &protocol.Heartbeat{QueueDepth: uint32(i + 1), DiskFree: 1 << 20, Battery: -1, Software: "1.0",
					Clock: 1, Peripherals: []protocol.Peripheral{{Name: "CAM0", Kind: "camera", State: protocol.PeripheralError}}}
				if err := tx.PutHeartbeat(ctx, d, hb, 300, 1000); err != nil {
					return err
				}
			}
			for seq, kind := range []string{"a", "a", "b"} {
				r := testRecord(uint64(seq + 1))
				r.Kind = kind
				if _, err := tx.InsertRecord(ctx, "d1", r, int64(1000+seq*100)); err != nil {
					return err
				}
			}
			return nil
		})
		ch, err := db.PresenceChanges(ctx, 150)
		if err != nil || len(ch) != 1 || ch[0].Device != "d2" || !ch[0].Online {
			t.Errorf("PresenceChanges(150) = %+v, %v", ch, err)
		}
		if ch, _ := db.PresenceChanges(ctx, 0); len(ch) != 2 {
			t.Errorf("PresenceChanges(0) = %+v", ch)
		}
		hs, err := db.LatestHealthPage(ctx, "", 1)
		if err != nil || len(hs) != 1 || hs[0].Device != "d1" || hs[0].Heartbeat.QueueDepth != 1 {
			t.Errorf("first health page = %+v, %v", hs, err)
		}
		hs, err = db.LatestHealthPage(ctx, "d1", 10)
		if err != nil || len(hs) != 1 || hs[0].Device != "d3" || hs[0].Heartbeat.Peripherals[0].State != protocol.PeripheralError {
			t.Errorf("second health page = %+v, %v", hs, err)
		}

		// Certificates: d1 has an old one and a renewed one; d2's only one
		// is revoked; d3 is revoked itself.
		for _, c := range []DeviceCert{
			{Serial: "01", DeviceID: "d1", NotBefore: 1, NotAfter: 1000, CreatedAt: 1},
			{Serial: "02", DeviceID: "d1", NotBefore: 1, NotAfter: 5000, CreatedAt: 2},
			{Serial: "03", DeviceID: "d2", NotBefore: 1, NotAfter: 1000, CreatedAt: 1},
			{Serial: "04", DeviceID: "d3", NotBefore: 1, NotAfter: 1000, CreatedAt: 1},
		} {
			if err := db.AddDeviceCert(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := db.RevokeDeviceCert(ctx, "03", 10); err != nil {
			t.Fatal(err)
		}
		if _, err := db.RevokeDevice(ctx, "d3", "stolen", 10); err != nil {
			t.Fatal(err)
		}
		if ex, err := db.ExpiringCerts(ctx, 2000); err != nil || len(ex) != 0 {
			t.Errorf("ExpiringCerts(2000) = %+v, %v; d1's renewed certificate is valid until 5000", ex, err)
		}
		if ex, err := db.ExpiringCerts(ctx, 6000); err != nil || len(ex) != 1 || ex[0].Device != "d1" || ex[0].Serial != "02" {
			t.Errorf("ExpiringCerts(6000) = %+v, %v", ex, err)
		}

		counts, err := db.RecordCounts(ctx, 1100)
		if err != nil || len(counts) != 2 {
			t.Fatalf("RecordCounts = %+v, %v", counts, err)
		}
		if c := counts[0]; c.Kind != "a" || c.Count != 2 || c.Recent != 1 || c.Office != "buergeramt-mitte" {
			t.Errorf("count of a = %+v", c)
		}
		if c := counts[1]; c.Kind != "b" || c.Count != 1 || c.Recent != 1 {
			t.Errorf("count of b = %+v", c)
		}
	})
}
