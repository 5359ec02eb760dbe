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

func TestCommands(t *testing.T) {
	e := newTestEnv(t, nil)
	ctx := context.Background()
	if _, err := e.reg.CreateGroup(ctx, "kiosks", "Kiosks"); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"k-1", "k-2", "k-3"} {
		e.enroll(t, "kiosks", id, registry.Inventory{})
	}
	if err := e.reg.RevokeDevice(ctx, "k-3", "retired"); err != nil {
		t.Fatal(err)
	}
	// k-1 is online, so its command is published at once.
	if err := e.db.Ingest(ctx, func(tx *store.IngestTx) error { return tx.Touch(ctx, "k-1", time.Now().UnixMilli()) }); err != nil {
		t.Fatal(err)
	}

	rec := do(t, e.h, "POST", "/api/v1/commands", testToken, `{"device": "k-1", "name": "set-log-level", "args": {"level": "debug"}, "ttl": "10m"}`)
	if rec.Code != 201 {
		t.Fatalf("send: %d %s", rec.Code, rec.Body.String())
	}
	sent := decodeInto[sentCommands](t, rec.Body.Bytes())
	if len(sent.Commands) != 1 || sent.Fanout != nil {
		t.Fatalf("sent %+v", sent)
	}
	c := sent.Commands[0]
	if c.Device != "k-1" || c.Name != "set-log-level" || c.Args["level"] != "debug" || c.State != "sent" ||
		c.ExpiresAt.Sub(c.IssuedAt) != 10*time.Minute {
		t.Errorf("command %+v", c)
	}
	if got := e.broker.published(); len(got) != 1 || got[0] != "kogge/v1/d/k-1/down/command" {
		t.Errorf("published %q", got)
	}

	// The device's result arrives through the ingest.
	err := e.db.Ingest(ctx, func(tx *store.IngestTx) error {
		_, err := tx.PutCommandResult(ctx, "k-1", &protocol.CommandResult{ID: c.ID, Outcome: protocol.OutcomeOK,
			Message: "done", Output: []byte("log level DEBUG"), At: protocol.At(time.Now())}, time.Now().UnixMilli())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	got := decodeInto[commandJSON](t, do(t, e.h, "GET", "/api/v1/commands/"+c.ID.String(), testToken, "").Body.Bytes())
	if got.State != "done" || got.Result == nil || got.Result.Outcome != "ok" || got.Result.Output != "log level DEBUG" {
		t.Errorf("status %+v result %+v", got, got.Result)
	}

	// A group send fans out to the devices that are not revoked; k-2 is
	// offline, so its command waits.
	rec = do(t, e.h, "POST", "/api/v1/commands", testToken, `{"group": "kiosks", "name": "sync-now"}`)
	if rec.Code != 201 {
		t.Fatalf("send to group: %d %s", rec.Code, rec.Body.String())
	}
	sent = decodeInto[sentCommands](t, rec.Body.Bytes())
	if sent.Fanout == nil || len(sent.Commands) != 2 || sent.Commands[0].Device != "k-1" || sent.Commands[1].State != "queued" {
		t.Fatalf("group send %+v", sent)
	}
	fan := decodeInto[sentCommands](t, do(t, e.h, "GET", "/api/v1/fanouts/"+sent.Fanout.String(), testToken, "").Body.Bytes())
	if len(fan.Commands) != 2 {
		t.Errorf("fan-out %+v", fan)
	}

	hist := decodeInto[commandList](t, do(t, e.h, "GET", "/api/v1/devices/k-1/commands", testToken, "").Body.Bytes())
	if len(hist.Commands) != 2 || hist.Commands[0].Name != "sync-now" || hist.Next != "" {
		t.Errorf("history %+v", hist)
	}
	hist = decodeInto[commandList](t, do(t, e.h, "GET", "/api/v1/devices/k-1/commands?limit=1", testToken, "").Body.Bytes())
	if len(hist.Commands) != 1 || hist.Next == "" {
		t.Fatalf("first page %+v", hist)
	}
	hist = decodeInto[commandList](t, do(t, e.h, "GET", "/api/v1/devices/k-1/commands?limit=1&before="+hist.Next, testToken, "").Body.Bytes())
	if len(hist.Commands) != 1 || hist.Commands[0].Name != "set-log-level" || hist.Next != "" {
		t.Errorf("second page %+v", hist)
	}

	// Commands issued within one millisecond page without loss or repeats.
	now := time.Now().UnixMilli()
	var same []store.Command
	for range 5 {
		same = append(same, store.Command{ID: uuid.Must(uuid.NewV7()), Device: "k-2", Name: "ping",
			IssuedAt: now, ExpiresAt: now + 60_000})
	}
	if err := e.db.InsertCommands(ctx, same); err != nil {
		t.Fatal(err)
	}
	seen := map[uuid.UUID]bool{}
	next := ""
	for page := 0; page < 10; page++ {
		l := decodeInto[commandList](t, do(t, e.h, "GET", "/api/v1/devices/k-2/commands?limit=2&before="+next, testToken, "").Body.Bytes())
		for _, c := range l.Commands {
			if seen[c.ID] {
				t.Errorf("command %v on two pages", c.ID)
			}
			seen[c.ID] = true
		}
		if next = l.Next; next == "" {
			break
		}
	}
	// k-2 has its group command too.
	if len(seen) != 6 {
		t.Errorf("paged through %d commands of k-2, want 6", len(seen))
	}

	bad := []struct {
		body string
		code int
		want string
	}{
		{`{"device": "k-1", "group": "kiosks", "name": "ping"}`, 400, "not both"},
		{`{"name": "ping"}`, 400, "not both"},
		{`{"device": "k-1"}`, 400, "which command"},
		{`{"device": "k-1", "name": "Bad Name"}`, 400, "command.name"},
		{`{"device": "k-1", "name": "ping", "ttl": "1ms"}`, 400, "time to live"},
		{`{"device": "k-1", "name": "ping", "args": {"a": 1}}`, 400, `field "args" must be a string`},
		{`{"device": "nope", "name": "ping"}`, 404, `no device "nope"`},
		{`{"group": "nope", "name": "ping"}`, 404, `no group "nope"`},
		{`{"device": "k-3", "name": "ping"}`, 409, "revoked"},
	}
	for _, b := range bad {
		rec := do(t, e.h, "POST", "/api/v1/commands", testToken, b.body)
		if rec.Code != b.code {
			t.Errorf("%s: %d, want %d (%s)", b.body, rec.Code, b.code, rec.Body.String())
			continue
		}
		if msg := errorBody(t, rec); !strings.Contains(msg, b.want) {
			t.Errorf("%s: error %q lacks %q", b.body, msg, b.want)
		}
	}
	for path, want := range map[string]int{
		"/api/v1/commands/" + uuid.NewString():    404,
		"/api/v1/commands/nope":                   400,
		"/api/v1/fanouts/" + uuid.NewString():     404,
		"/api/v1/devices/nope/commands":           404,
		"/api/v1/devices/k-1/commands?before=abc": 400,
		"/api/v1/devices/k-1/commands?before=12":  400,
	} {
		if rec := do(t, e.h, "GET", path, testToken, ""); rec.Code != want {
			t.Errorf("%s: %d, want %d", path, rec.Code, want)
		}
	}
}
