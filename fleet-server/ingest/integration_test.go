package ingest

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/fleet-server/commands"
	"github.com/kogge-fleet/kogge/fleet-server/presence"
	"github.com/kogge-fleet/kogge/fleet-server/store"
	"github.com/kogge-fleet/kogge/fleet-server/twin"
	"github.com/kogge-fleet/kogge/protocol"
)

// server is the ingest, twin, commands and presence wired as the fleet
// server wires them, on one store and one broker.
type server struct {
	db   *store.DB
	in   *Ingest
	cmds *commands.Service
	tw   *twin.Service
	stop func()
}

func startServer(t *testing.T, file string, b *testBroker) *server {
	t.Helper()
	s := &server{db: openStore(t, file)}
	var err error
	log := testLogger(t)
	if s.cmds, err = commands.New(s.db, b, commands.Options{Logger: log}); err != nil {
		t.Fatal(err)
	}
	if s.tw, err = twin.New(s.db, b, twin.Options{Logger: log}); err != nil {
		t.Fatal(err)
	}
	tr, err := presence.New(s.db, presence.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, run := range []func(context.Context) error{s.cmds.Run, s.tw.Run, tr.Run} {
		wg.Go(func() {
			if err := run(ctx); err != nil {
				t.Error(err)
			}
		})
	}
	var stopIngest func()
	s.in, stopIngest = startIngest(t, s.db, b, Options{Logger: log, OnConnect: func(d string) {
		s.cmds.Connected(d)
		s.tw.Connected(d)
	}})
	var once sync.Once
	s.stop = func() {
		once.Do(func() {
			stopIngest()
			cancel()
			wg.Wait()
			s.db.Close()
		})
	}
	t.Cleanup(s.stop)
	return s
}

// session connects the device and opens a session as the agent does:
// presence online (retained, with the last will offline), then a hello.
func session(t *testing.T, b *testBroker, id string, highest uint64) *device {
	t.Helper()
	sess := uuid.New()
	d := connect(t, b.addr, id, deviceOpts{will: true, session: sess})
	d.send(&protocol.Presence{State: protocol.Online, Session: sess, At: protocol.At(time.Now())})
	d.send(&protocol.SyncHello{Session: sess, Lowest: min(highest, 1), Highest: highest})
	return d
}

func commandsOf(got []*protocol.Envelope) []*protocol.Command {
	var out []*protocol.Command
	for _, e := range got {
		if c, ok := e.Body.(*protocol.Command); ok {
			out = append(out, c)
		}
	}
	return out
}

func twinOf(got []*protocol.Envelope) *protocol.TwinDesired {
	var last *protocol.TwinDesired
	for _, e := range got {
		if d, ok := e.Body.(*protocol.TwinDesired); ok {
			last = d
		}
	}
	return last
}

// TestFleetServerCore runs a device through the server's data path: twin,
// a command queued while it was offline, a record, a server restart with a
// new embedded broker, and its last will.
func TestFleetServerCore(t *testing.T) {
	file := filepath.Join(t.TempDir(), "kogge.db")
	b := startBroker(t)
	s := startServer(t, file, b)
	addDevices(t, s.db, "kiosk-1")
	ctx := context.Background()

	if _, err := s.tw.SetGroup(ctx, "g", map[string]any{"volume": 5}); err != nil {
		t.Fatal(err)
	}
	cmd, err := s.cmds.Send(ctx, "kiosk-1", "print-test-page", nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if cmd.State() != store.CommandQueued {
		t.Fatalf("command to a device never seen: %s", cmd.State())
	}

	d := session(t, b, "kiosk-1", 0)
	got := d.await("twin and command arrive", func(got []*protocol.Envelope) bool {
		// Presence and hello both announce the session and may each send
		// the pending command; the device runs a command id once.
		return twinOf(got) != nil && len(commandsOf(got)) >= 1
	})
	if tw := twinOf(got); tw.Version != 1 || tw.Config["volume"] != uint64(5) {
		t.Errorf("twin = %+v", tw)
	}
	if c := commandsOf(got)[0]; c.ID != cmd.ID {
		t.Errorf("command = %+v", c)
	}
	r1 := newRecord(1)
	d.send(r1)
	d.send(&protocol.TwinReported{Version: 1, Config: map[string]any{"volume": uint64(5)}})
	d.await("the record is stored", func(got []*protocol.Envelope) bool {
		acks, _ := recordAcks(got)
		return acks[r1.ID].Status == protocol.AckStored
	})
	waitFor(t, "the twin is in sync", func() bool {
		v, err := s.tw.Device(ctx, "kiosk-1")
		return err == nil && v.Diff.InSync
	})

	// The server and its embedded broker restart; the device has not sent
	// the command's result yet.
	d.c.Disconnect(0)
	s.stop()
	b.close()
	b = startBroker(t)
	s = startServer(t, file, b)

	d = session(t, b, "kiosk-1", 2)
	got = d.await("twin and command arrive again", func(got []*protocol.Envelope) bool {
		return twinOf(got) != nil && len(commandsOf(got)) >= 1 && len(syncStates(got)) == 1
	})
	for _, c := range commandsOf(got) {
		if c.ID != cmd.ID {
			t.Errorf("after the restart the device got command %v, want only %v", c.ID, cmd.ID)
		}
	}
	if tw := twinOf(got); tw.Version != 1 {
		t.Errorf("twin after the restart = %+v", tw)
	}
	if st := syncStates(got)[0]; len(st.Missing) != 1 || st.Missing[0] != (protocol.SeqRange{From: 2, To: 2}) {
		t.Errorf("sync state after the restart = %+v", st)
	}
	d.send(&protocol.CommandResult{ID: cmd.ID, Outcome: protocol.OutcomeOK, At: protocol.At(time.Now())})
	d.await("the result is acknowledged", func(got []*protocol.Envelope) bool {
		for _, e := range got {
			if a, ok := e.Body.(*protocol.Ack); ok && len(a.Results) == 1 && a.Results[0] == cmd.ID {
				return true
			}
		}
		return false
	})
	if c, err := s.cmds.Command(ctx, cmd.ID); err != nil || c.State() != store.CommandDone || c.SentCount < 2 {
		t.Errorf("command = %+v, %v; want done after a send in each session", c, err)
	}

	// The connection dies: the broker publishes the last will.
	d.cut()
	waitFor(t, "the device is offline", func() bool {
		p, err := s.db.Presence(ctx, "kiosk-1")
		return err == nil && !p.Online && p.Reason == store.OfflineDisconnected
	})
}
