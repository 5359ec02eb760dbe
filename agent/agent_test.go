package agent_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	gosync "sync"
	"testing"
	"time"

	"github.com/google/uuid"
	_ "github.com/mattn/go-sqlite3"

	"github.com/kogge-fleet/kogge/agent"
	"github.com/kogge-fleet/kogge/agent/internal/testserver"
	"github.com/kogge-fleet/kogge/agent/mqtt"
	"github.com/kogge-fleet/kogge/agent/store"
	"github.com/kogge-fleet/kogge/agent/sync"
	"github.com/kogge-fleet/kogge/protocol"
	"github.com/kogge-fleet/kogge/protocol/seal"
)

const deviceID = "kiosk-7"

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// fleet is the server side: an embedded broker and the test server on it.
type fleet struct {
	broker *testserver.Broker
	srv    *testserver.Server
}

func startFleet(tb testing.TB) *fleet {
	tb.Helper()
	b, err := testserver.StartBroker(testserver.BrokerOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	in, err := testserver.NewInline(b.Server, 1)
	if err != nil {
		tb.Fatal(err)
	}
	srv := testserver.New(testserver.Options{Logger: quiet()})
	ctx, cancel := context.WithCancel(context.Background())
	var wg gosync.WaitGroup
	wg.Go(func() {
		if err := srv.Serve(ctx, in); err != nil {
			tb.Errorf("server: %v", err)
		}
	})
	tb.Cleanup(func() {
		cancel()
		wg.Wait()
		in.Close()
		b.Close()
	})
	return &fleet{broker: b, srv: srv}
}

// device is an agent with its store and MQTT transport.
type device struct {
	a    *agent.Agent
	st   *store.Store
	tr   *mqtt.Transport
	path string
	stop func()
}

func openStore(tb testing.TB, path string) *store.Store {
	tb.Helper()
	st, err := store.Open(path, store.Options{Logger: quiet()})
	if err != nil {
		tb.Fatal(err)
	}
	if m := st.MovedAside(); m != "" {
		tb.Fatalf("the store was moved aside to %s", m)
	}
	return st
}

func startDevice(tb testing.TB, broker, path string, opts agent.Options) *device {
	tb.Helper()
	st := openStore(tb, path)
	tr, err := mqtt.New(mqtt.Config{Broker: broker, Device: deviceID, Software: "kiosk-test"},
		mqtt.Options{MinBackoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, Logger: quiet()})
	if err != nil {
		tb.Fatal(err)
	}
	if opts.Logger == nil {
		opts.Logger = quiet()
	}
	if opts.Offices == nil {
		opts.Offices = provisioned()
	}
	if opts.Sync.AckTimeout == 0 {
		opts.Sync.AckTimeout = time.Second
		opts.Sync.HelloTimeout = time.Second
	}
	a, err := agent.New(agent.Config{Device: deviceID, Software: "kiosk-test"}, st, tr, opts)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once gosync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				tb.Errorf("agent: %v", err)
			}
			st.Close()
		})
	}
	tb.Cleanup(stop)
	return &device{a: a, st: st, tr: tr, path: path, stop: stop}
}

func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

// drained reports whether nothing is left to send.
func (d *device) drained() bool {
	ctx := context.Background()
	s, err := d.st.Stats(ctx)
	if err != nil || s.QueueDepth != 0 {
		return false
	}
	bs, err := d.st.PendingBlobs(ctx, 1)
	return err == nil && len(bs) == 0
}

// testOffice is the office the tests capture for; testKey its key pair.
const testOffice = "buergeramt-mitte"

var testKey, testSecret = func() (seal.Recipient, string) {
	r, secret, err := seal.GenerateKey(testOffice, "test-1")
	if err != nil {
		panic(err)
	}
	return r, secret
}()

// personal marks the plaintext of every test capture, so that a test can
// look for it where it must not be.
var personal = []byte("Erika Mustermann ")

// capture is a test capture with a personal body and, if blobSize > 0, a
// photo.
func capture(i int, blobSize int) agent.Capture {
	c := agent.Capture{
		Kind:   "kiosk.application",
		Office: testOffice,
		Meta:   map[string]string{"service": "id-card", "n": fmt.Sprint(i)},
		Body:   bytes.Repeat(personal, 2+i%10),
	}
	if blobSize > 0 {
		data := make([]byte, blobSize)
		rand.Read(data)
		copy(data, personal)
		c.Blobs = []agent.Blob{{Role: "photo", Data: data}}
	}
	return c
}

// storeCapture is an already sealed capture for filling a store directly.
func storeCapture(i int) store.Capture {
	return store.Capture{
		Kind:   "kiosk.application",
		Office: testOffice,
		KeyID:  testKey.KeyID,
		Meta:   map[string]string{"service": "id-card", "n": fmt.Sprint(i)},
		Sealed: bytes.Repeat([]byte("sealed!"), 20+i%50),
	}
}

func provisioned() map[string]seal.Recipient { return map[string]seal.Recipient{testOffice: testKey} }

// leftovers counts sealed bodies and blob data still in the device's file.
func leftovers(t *testing.T, path string) (sealed, segments int) {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.QueryRow("SELECT count(*) FROM records WHERE sealed IS NOT NULL").Scan(&sealed); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow("SELECT count(*) FROM segments").Scan(&segments); err != nil {
		t.Fatal(err)
	}
	return sealed, segments
}

// TestEndToEnd captures 200 records with blobs through the agent, over the
// embedded broker, into the test server: all arrive once in order with
// their blobs, and the device keeps no sealed body and no blob data.
func TestEndToEnd(t *testing.T) {
	f := startFleet(t)
	d := startDevice(t, f.broker.URL, filepath.Join(t.TempDir(), "device.db"), agent.Options{})
	watch, unwatch := d.a.Watch()
	var (
		seenMu gosync.Mutex
		seen   = map[uuid.UUID]map[agent.State]bool{}
		wg     gosync.WaitGroup
	)
	wg.Go(func() {
		for s := range watch {
			seenMu.Lock()
			if seen[s.ID] == nil {
				seen[s.ID] = map[agent.State]bool{}
			}
			seen[s.ID][s.State] = true
			seenMu.Unlock()
		}
	})
	defer func() { unwatch(); wg.Wait() }()

	ctx := context.Background()
	var receipts []agent.Receipt
	for i := range 200 {
		size := 0
		if i%2 == 0 {
			size = 10_000 + 997*(i%90) // up to ~100 KiB: several chunks
		}
		r, err := d.a.Capture(ctx, capture(i, size))
		if err != nil {
			t.Fatal(err)
		}
		receipts = append(receipts, r)
		if i == 0 {
			// The watcher sees the first record through its states
			// before the rest floods it (a watcher that falls behind
			// misses old changes by design).
			waitFor(t, "the first record stored", func() bool {
				seenMu.Lock()
				defer seenMu.Unlock()
				s := seen[r.ID]
				return s[agent.Saved] && s[agent.Sent] && s[agent.Stored]
			})
		}
	}
	waitFor(t, "drain", d.drained)

	got := f.srv.Records(deviceID)
	if len(got) != len(receipts) {
		t.Fatalf("server stored %d records, want %d", len(got), len(receipts))
	}
	for i, r := range got {
		if r.ID != receipts[i].ID || r.Seq != receipts[i].Seq {
			t.Fatalf("server record %d: seq %d, want %d", i, r.Seq, receipts[i].Seq)
		}
		for _, ref := range r.Blobs {
			if b, _ := f.srv.Blob(deviceID, ref.ID); !b.Complete || protocol.SumOf(b.Data) != ref.SHA256 {
				t.Fatalf("blob of record %d incomplete or wrong", r.Seq)
			}
		}
	}
	if sealed, segments := leftovers(t, d.path); sealed != 0 || segments != 0 {
		t.Errorf("the device still holds %d sealed bodies and %d blob segments", sealed, segments)
	}

	// What the office did with the first record comes back as status.
	first := receipts[0].ID
	if s, err := d.a.Status(ctx, first); err != nil || s.State != agent.Stored {
		t.Fatalf("status %+v, %v; want stored", s, err)
	}
	now := protocol.At(time.Now())
	for _, it := range []protocol.StatusItem{
		{Record: first, State: protocol.Delivered, At: now},
		{Record: first, State: protocol.Accepted, Reference: "AZ-2026-0815", At: now},
		{Record: uuid.Must(uuid.NewV7()), State: protocol.Delivered, At: now}, // unknown: ignored
	} {
		if err := f.srv.Publish(ctx, deviceID, &protocol.RecordStatus{Items: []protocol.StatusItem{it}}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "accepted", func() bool {
		s, err := d.a.Status(ctx, first)
		return err == nil && s.State == agent.Accepted && s.Reference == "AZ-2026-0815"
	})

	// The watcher saw the first record go on to delivered and accepted.
	states := []agent.State{agent.Delivered, agent.Accepted}
	waitFor(t, "the watcher", func() bool {
		seenMu.Lock()
		defer seenMu.Unlock()
		for _, st := range states {
			if !seen[first][st] {
				return false
			}
		}
		return true
	})
	if c := f.srv.Counts(deviceID); len(c.Violations) > 0 {
		t.Errorf("violations: %v", c.Violations)
	}
}

// TestTwinAndCommands runs the twin and commands through the agent over the
// broker: the retained configuration is applied and reported, a refused one
// is reported with its reason, commands run once and their results reach
// the server.
func TestTwinAndCommands(t *testing.T) {
	f := startFleet(t)
	ctx := context.Background()
	// The configuration is retained before the device ever connects.
	if err := f.srv.Publish(ctx, deviceID, &protocol.TwinDesired{Version: 3, Config: map[string]any{"heartbeat_s": uint64(15), "log_level": "debug"}}); err != nil {
		t.Fatal(err)
	}
	d := startDevice(t, f.broker.URL, filepath.Join(t.TempDir(), "device.db"), agent.Options{
		CheckConfig: func(v map[string]any) error {
			if _, ok := v["forbidden"]; ok {
				return errors.New("forbidden is not a setting")
			}
			return nil
		},
	})
	waitFor(t, "twin report v3", func() bool {
		reps := f.srv.TwinReports(deviceID)
		return len(reps) > 0 && reps[len(reps)-1].Version == 3
	})
	if c := d.a.Config(); c.Heartbeat != 15*time.Second {
		t.Errorf("heartbeat %v", c.Heartbeat)
	}
	if err := f.srv.Publish(ctx, deviceID, &protocol.TwinDesired{Version: 4, Config: map[string]any{"forbidden": true}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "refusal of v4", func() bool {
		reps := f.srv.TwinReports(deviceID)
		r := reps[len(reps)-1]
		return r.Version == 3 && r.Rejected == 4 && r.Reason != ""
	})

	ping := &protocol.Command{ID: uuid.Must(uuid.NewV7()), Name: "ping", IssuedAt: protocol.At(time.Now()), ExpiresAt: protocol.At(time.Now().Add(time.Minute))}
	for range 2 { // the second is a repeat: not run again
		if err := f.srv.Publish(ctx, deviceID, ping); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "ping result", func() bool {
		r, ok := f.srv.Results(deviceID)[ping.ID]
		return ok && r.Outcome == protocol.OutcomeOK && string(r.Output) == "pong"
	})
	waitFor(t, "result acknowledged", func() bool {
		m, err := d.st.UnreportedResults(ctx, 10)
		return err == nil && len(m) == 0
	})
	// A heartbeat went out when the session started.
	waitFor(t, "heartbeat", func() bool {
		hbs := f.srv.Heartbeats(deviceID)
		return len(hbs) > 0 && hbs[0].Software == "kiosk-test"
	})
	d.a.SetPeripheral("printer", "escpos", protocol.PeripheralError, "out of paper")
	waitFor(t, "heartbeat with the printer", func() bool {
		hbs := f.srv.Heartbeats(deviceID)
		last := hbs[len(hbs)-1]
		return len(last.Peripherals) == 1 && last.Peripherals[0].State == protocol.PeripheralError
	})
	if s := d.a.Sync(); s.Malformed != 0 || s.Foreign != 0 {
		t.Errorf("sync stats %+v", s)
	}
	var _ sync.Stats = d.a.Sync()
}

func TestCaptureWhenFull(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "device.db"), store.Options{Budget: 256 << 10, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tr, err := mqtt.New(mqtt.Config{Broker: "tcp://127.0.0.1:1", Device: deviceID}, mqtt.Options{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(agent.Config{Device: deviceID, Software: "x"}, st, tr, agent.Options{Logger: quiet(), Offices: provisioned()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var full error
	for i := range 100 {
		if _, err := a.Capture(ctx, capture(i, 20_000)); err != nil {
			full = err
			break
		}
	}
	if !errors.Is(full, store.ErrFull) {
		t.Fatalf("capture into a full store: %v, want ErrFull", full)
	}
}

func TestNewChecksConfig(t *testing.T) {
	for _, cfg := range []agent.Config{{Device: "", Software: "x"}, {Device: "a/b", Software: "x"}, {Device: "ok"}} {
		if _, err := agent.New(cfg, nil, nil, agent.Options{}); err == nil {
			t.Errorf("New accepted %+v", cfg)
		}
	}
}

// Capture seals body and blobs for the office before anything reaches the
// disk: the store's files never hold the plaintext, and the office's key
// opens what they hold.
func TestCaptureSealsBeforeTheDisk(t *testing.T) {
	path := filepath.Join(t.TempDir(), "device.db")
	st := openStore(t, path)
	tr, err := mqtt.New(mqtt.Config{Broker: "tcp://127.0.0.1:1", Device: deviceID}, mqtt.Options{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(agent.Config{Device: deviceID, Software: "x"}, st, tr, agent.Options{Logger: quiet(), Offices: provisioned()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c := capture(1, 50_000)
	body, photo := bytes.Clone(c.Body), bytes.Clone(c.Blobs[0].Data)
	r, err := a.Capture(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if r.KeyID != testKey.KeyID {
		t.Errorf("sealed for key %q, want %q", r.KeyID, testKey.KeyID)
	}
	if _, err := a.Capture(ctx, agent.Capture{Kind: "k.k", Office: "nowhere", Body: body}); !errors.Is(err, agent.ErrNoOfficeKey) {
		t.Errorf("capture for an office without a key: %v, want ErrNoOfficeKey", err)
	}

	recs, err := st.Pending(ctx, 0, 10)
	if err != nil || len(recs) != 1 {
		t.Fatalf("pending %d records, %v", len(recs), err)
	}
	ring := seal.NewKeyring(testOffice)
	if err := ring.Add(testKey.KeyID, testSecret); err != nil {
		t.Fatal(err)
	}
	if got, err := ring.Open(recs[0].KeyID, recs[0].Sealed); err != nil || !bytes.Equal(got, body) {
		t.Fatalf("the office cannot open the body: %v", err)
	}
	sealedPhoto := make([]byte, recs[0].Blobs[0].Size)
	if _, err := st.ReadBlob(ctx, recs[0].Blobs[0].ID, 0, sealedPhoto); err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	if protocol.SumOf(sealedPhoto) != recs[0].Blobs[0].SHA256 {
		t.Error("the blob reference's digest is not that of the stored (sealed) bytes")
	}
	if got, err := ring.Open(recs[0].KeyID, sealedPhoto); err != nil || !bytes.Equal(got, photo) {
		t.Fatalf("the office cannot open the photo: %v", err)
	}

	st.Close()
	for _, name := range []string{path, path + "-wal"} {
		b, err := os.ReadFile(name)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		if bytes.Contains(b, personal) {
			t.Errorf("%s holds personal data in plain", name)
		}
	}
}
