package store

import (
	"context"
	"errors"
	"testing"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/protocol"
)

func TestCommandQueue(t *testing.T) {
	backends(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		addTestDevices(t, db, "g", "d1", "d2")
		fan := uuid.Must(uuid.NewV7())
		c1 := Command{ID: uuid.Must(uuid.NewV7()), Device: "d1", Name: "reboot", IssuedAt: 100, ExpiresAt: 1000}
		c2 := Command{ID: uuid.Must(uuid.NewV7()), Device: "d1", Fanout: fan, Name: "upload-logs",
			Args: map[string]string{"since": "1h"}, IssuedAt: 200, ExpiresAt: 300}
		c3 := Command{ID: uuid.Must(uuid.NewV7()), Device: "d2", Fanout: fan, Name: "upload-logs", IssuedAt: 200, ExpiresAt: 300}
		if err := db.InsertCommands(ctx, []Command{c1, c2, c3}); err != nil {
			t.Fatal(err)
		}
		if err := db.InsertCommands(ctx, []Command{{ID: uuid.Must(uuid.NewV7()), Device: "nobody", Name: "x",
			IssuedAt: 1, ExpiresAt: 2}}); err == nil {
			t.Error("a command for an unknown device was queued")
		}
		open, err := db.OpenCommands(ctx, "d1", 150)
		if err != nil || len(open) != 2 || open[0].ID != c1.ID || open[1].ID != c2.ID {
			t.Fatalf("OpenCommands = %+v, %v", open, err)
		}
		if open[1].Args["since"] != "1h" || open[1].Fanout != fan || open[0].State() != CommandQueued {
			t.Errorf("command 2 = %+v (state %s)", open[1], open[0].State())
		}
		if err := db.MarkCommandsSent(ctx, []uuid.UUID{c1.ID}, 160); err != nil {
			t.Fatal(err)
		}
		if err := db.MarkCommandsSent(ctx, []uuid.UUID{c1.ID}, 170); err != nil {
			t.Fatal(err)
		}
		got, err := db.Command(ctx, c1.ID)
		if err != nil || got.SentCount != 2 || got.FirstSentAt != 160 || got.LastSentAt != 170 || got.State() != CommandSent {
			t.Errorf("Command = %+v, %v", got, err)
		}
		// c2 and c3 expire unsent; c1 was sent and stays open for its result.
		ids, err := db.ExpireCommands(ctx, 1000)
		if err != nil || len(ids) != 2 {
			t.Fatalf("ExpireCommands = %v, %v", ids, err)
		}
		if got, _ := db.Command(ctx, c2.ID); got.State() != CommandExpired || got.ExpiredAt != 1000 {
			t.Errorf("expired command = %+v", got)
		}
		if got, _ := db.Command(ctx, c1.ID); got.State() != CommandSent {
			t.Errorf("sent command after expiry = %s, want sent", got.State())
		}
		ingest(t, db, func(ctx context.Context, tx *IngestTx) error {
			for _, c := range []struct {
				device string
				r      protocol.CommandResult
				want   ResultVerdict
			}{
				{"d1", protocol.CommandResult{ID: c1.ID, Outcome: protocol.OutcomeOK, Message: "done", Output: []byte("log"), At: 180}, ResultStored},
				{"d1", protocol.CommandResult{ID: c1.ID, Outcome: protocol.OutcomeFailed, At: 190}, ResultDuplicate},
				{"d2", protocol.CommandResult{ID: c1.ID, Outcome: protocol.OutcomeOK, At: 190}, ResultUnknown},
				{"d1", protocol.CommandResult{ID: uuid.Must(uuid.NewV7()), Outcome: protocol.OutcomeOK, At: 190}, ResultUnknown},
			} {
				v, err := tx.PutCommandResult(ctx, c.device, &c.r, 500)
				if err != nil {
					return err
				}
				if v != c.want {
					t.Errorf("PutCommandResult(%s, %v) = %d, want %d", c.device, c.r.Outcome, v, c.want)
				}
			}
			return nil
		})
		got, err = db.Command(ctx, c1.ID)
		if err != nil || got.State() != CommandDone || got.Result.Outcome != protocol.OutcomeOK ||
			got.Result.Message != "done" || string(got.Result.Output) != "log" || got.Result.At != 180 || got.Result.ReceivedAt != 500 {
			t.Errorf("command with result = %+v (%+v), %v", got, got.Result, err)
		}
		hist, err := db.DeviceCommands(ctx, CommandFilter{Device: "d1"})
		if err != nil || len(hist) != 2 || hist[0].ID != c2.ID {
			t.Errorf("DeviceCommands = %+v, %v", hist, err)
		}
		if hist, _ := db.DeviceCommands(ctx, CommandFilter{Device: "d1", Before: 200}); len(hist) != 1 || hist[0].ID != c1.ID {
			t.Errorf("DeviceCommands(before 200) = %+v", hist)
		}
		fo, err := db.FanoutCommands(ctx, fan)
		if err != nil || len(fo) != 2 || fo[0].Device != "d1" || fo[1].Device != "d2" {
			t.Errorf("FanoutCommands = %+v, %v", fo, err)
		}
		if _, err := db.Command(ctx, uuid.Must(uuid.NewV7())); !errors.Is(err, ErrNotFound) {
			t.Errorf("Command(unknown) = %v", err)
		}
	})
}

func TestStaleCommands(t *testing.T) {
	backends(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		addTestDevices(t, db, "g", "on", "off")
		var cmds []Command
		for _, d := range []string{"on", "off"} {
			cmds = append(cmds, Command{ID: uuid.Must(uuid.NewV7()), Device: d, Name: "ping", IssuedAt: 100, ExpiresAt: 10_000})
		}
		if err := db.InsertCommands(ctx, cmds); err != nil {
			t.Fatal(err)
		}
		ingest(t, db, func(ctx context.Context, tx *IngestTx) error {
			if err := tx.Touch(ctx, "on", 100); err != nil {
				return err
			}
			_, err := tx.ApplyPresence(ctx, "off", &protocol.Presence{State: protocol.Offline, Session: uuid.New(), At: 50}, 100)
			return err
		})
		stale, err := db.StaleCommands(ctx, 500, 1000, 10)
		if err != nil || len(stale) != 1 || stale[0].Device != "on" {
			t.Fatalf("StaleCommands = %+v, %v", stale, err)
		}
		if err := db.MarkCommandsSent(ctx, []uuid.UUID{stale[0].ID}, 600); err != nil {
			t.Fatal(err)
		}
		if stale, _ := db.StaleCommands(ctx, 500, 1000, 10); len(stale) != 0 {
			t.Errorf("StaleCommands after a send = %+v", stale)
		}
		if stale, _ := db.StaleCommands(ctx, 700, 1000, 10); len(stale) != 1 {
			t.Errorf("StaleCommands later = %+v", stale)
		}
		if stale, _ := db.StaleCommands(ctx, 700, 20_000, 10); len(stale) != 0 {
			t.Errorf("StaleCommands after expiry = %+v", stale)
		}
	})
}
