package ingest

import (
	"context"
	"database/sql"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/google/uuid"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/kogge-fleet/kogge/fleet-server/store"
	"github.com/kogge-fleet/kogge/fleet-server/store/pgtest"
	"github.com/kogge-fleet/kogge/protocol"
)

// testBroker is an embedded mochi broker on a free loopback port with an
// allow-all auth hook: the real broker of the server, without its TLS and
// ACL (the broker package tests those).
type testBroker struct {
	srv   *mqtt.Server
	addr  string
	ids   atomic.Int32
	close func()
}

// allowHook lets every client connect, publish and subscribe, like mochi's
// auth.AllowHook (which needs gopkg.in/yaml.v3, not in go.sum).
type allowHook struct{ mqtt.HookBase }

func (*allowHook) ID() string { return "allow-all" }

func (*allowHook) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}

func (*allowHook) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }

func (*allowHook) OnACLCheck(*mqtt.Client, string, bool) bool { return true }

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return quietLogger()
}

func startBroker(t testing.TB) *testBroker {
	t.Helper()
	srv := mqtt.New(&mqtt.Options{InlineClient: true, Logger: quietLogger()})
	if err := srv.AddHook(new(allowHook), nil); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.AddListener(listeners.NewNet("tcp", ln)); err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	b := &testBroker{srv: srv, addr: ln.Addr().String(), close: func() { once.Do(func() { srv.Close() }) }}
	t.Cleanup(b.close)
	return b
}

// Subscribe and Publish adapt the inline client to Broker, as the broker
// package does for the server.
func (b *testBroker) Subscribe(filter string, handler func(topic string, payload []byte)) error {
	return b.srv.Subscribe(filter, int(b.ids.Add(1)), func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		handler(pk.TopicName, pk.Payload)
	})
}

func (b *testBroker) Publish(topic string, payload []byte, retained bool) error {
	return b.srv.Publish(topic, payload, retained, 1)
}

var _ Broker = (*testBroker)(nil)

// openStore opens a SQLite store in a temporary directory (or the given
// file) with a group "g" and the devices.
func openStore(t testing.TB, file string, devices ...string) *store.DB {
	t.Helper()
	if file == "" {
		file = filepath.Join(t.TempDir(), "kogge.db")
	}
	db, err := store.Open(context.Background(), file, store.Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	addDevices(t, db, devices...)
	return db
}

// openPostgres opens a store in a fresh schema of KOGGE_TEST_POSTGRES_URL,
// or skips (fails under CI=true) without it.
func openPostgres(t testing.TB) (*store.DB, string) {
	t.Helper()
	dsn := pgtest.URL(t)
	return openStoreURL(t, dsn), dsn
}

// openStoreURL opens another store on the same database, as a replica does.
func openStoreURL(t testing.TB, url string) *store.DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := store.Open(ctx, url, store.Options{Logger: quietLogger(), MaxOpenConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// addDevices registers devices in group "g" with plain SQL, so that these
// tests do not depend on the registry's enrollment.
func addDevices(t testing.TB, db *store.DB, ids ...string) {
	t.Helper()
	err := db.Tx(context.Background(), func(tx *sql.Tx) error {
		if _, err := tx.Exec(`INSERT INTO groups (id, name, created_at) VALUES ('g', 'group g', 1) ON CONFLICT DO NOTHING`); err != nil {
			return err
		}
		for _, id := range ids {
			if _, err := tx.Exec(`INSERT INTO devices (id, group_id, created_at, inventory_at) VALUES ($1, 'g', 1, 1)`, id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// startIngest runs an ingest until the test ends (or stop is called) and
// returns it.
func startIngest(t testing.TB, db *store.DB, b Broker, opts Options) (*Ingest, func()) {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	in, err := New(db, b, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	// Wait until both subscriptions are in place.
	tb := b.(*testBroker)
	waitFor(t, "the ingest subscribes", func() bool {
		return len(tb.srv.Topics.Subscribers(protocol.TopicRoot+"x/up/record").InlineSubscriptions) > 0 &&
			len(tb.srv.Topics.Subscribers(protocol.TopicRoot+"x/state").InlineSubscriptions) > 0
	})
	return in, stop
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(2 * time.Millisecond) // polling a condition, not waiting for time to pass
	}
}

// device is a device played by a paho client that publishes protocol
// messages directly and collects what the server sends it.
type device struct {
	t   testing.TB
	id  string
	c   paho.Client
	seq atomic.Uint64

	mu    sync.Mutex
	inbox []*protocol.Envelope
	bad   int
	conn  net.Conn
	wake  chan struct{}
}

type deviceOpts struct {
	will    bool // publish Presence offline as the last will
	session uuid.UUID
}

func connect(t testing.TB, addr, id string, o deviceOpts) *device {
	t.Helper()
	d := &device{t: t, id: id, wake: make(chan struct{}, 1)}
	opts := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).
		SetAutoReconnect(false).SetConnectRetry(false).SetCleanSession(true).
		SetConnectTimeout(5 * time.Second).SetWriteTimeout(5 * time.Second).SetKeepAlive(30 * time.Second)
	if o.will {
		b, err := protocol.Encode(protocol.NewEnvelope(id, 0, time.Now(), &protocol.Presence{
			State: protocol.Offline, Session: o.session, At: protocol.At(time.Now())}))
		if err != nil {
			t.Fatal(err)
		}
		topic, _ := protocol.TopicFor(id, protocol.TypePresence)
		opts.SetBinaryWill(topic, b, 1, true)
	}
	opts.SetCustomOpenConnectionFn(func(uri *url.URL, _ paho.ClientOptions) (net.Conn, error) {
		c, err := net.DialTimeout("tcp", uri.Host, 5*time.Second)
		d.mu.Lock()
		d.conn = c
		d.mu.Unlock()
		return c, err
	})
	opts.SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) {
		env, err := protocol.Decode(m.Payload())
		d.mu.Lock()
		if err != nil {
			d.bad++
		} else {
			d.inbox = append(d.inbox, env)
		}
		d.mu.Unlock()
		select {
		case d.wake <- struct{}{}:
		default:
		}
	})
	d.c = paho.NewClient(opts)
	if tok := d.c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", id, tok.Error())
	}
	filters := map[string]byte{}
	for _, f := range protocol.DeviceFilters(id) {
		filters[f] = 1
	}
	if tok := d.c.SubscribeMultiple(filters, nil); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", id, tok.Error())
	}
	t.Cleanup(func() { d.c.Disconnect(0) })
	return d
}

// cut closes the device's connection without a DISCONNECT, as a network
// failure does: the broker publishes the last will.
func (d *device) cut() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.conn.Close()
}

// send publishes body as the device (QoS 1) and waits for the broker's
// PUBACK.
func (d *device) send(body protocol.Message) {
	d.t.Helper()
	d.sendAs(d.id, body)
}

// sendAs publishes body on the device's topic with another envelope device.
func (d *device) sendAs(envDevice string, body protocol.Message) {
	d.t.Helper()
	b, err := protocol.Encode(protocol.NewEnvelope(envDevice, d.seq.Add(1), time.Now(), body))
	if err != nil {
		d.t.Fatal(err)
	}
	topic, err := protocol.TopicFor(d.id, body.Type())
	if err != nil {
		d.t.Fatal(err)
	}
	d.raw(topic, b, body.Type() == protocol.TypePresence)
}

func (d *device) raw(topic string, payload []byte, retained bool) {
	d.t.Helper()
	tok := d.c.Publish(topic, 1, retained, payload)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		d.t.Fatalf("publish on %s: %v", topic, tok.Error())
	}
}

// received returns what the device has received so far.
func (d *device) received() []*protocol.Envelope {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]*protocol.Envelope(nil), d.inbox...)
}

// await waits until cond holds for what the device has received.
func (d *device) await(what string, cond func(got []*protocol.Envelope) bool) []*protocol.Envelope {
	d.t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		got := d.received()
		if cond(got) {
			return got
		}
		select {
		case <-d.wake:
		case <-deadline.C:
			d.t.Fatalf("%s: timed out waiting until %s; received %d messages", d.id, what, len(got))
		}
	}
}

// recordAcks returns the record verdicts the device received, by id (the
// last verdict per id) and how many verdicts in all.
func recordAcks(got []*protocol.Envelope) (map[uuid.UUID]protocol.RecordAck, int) {
	out := map[uuid.UUID]protocol.RecordAck{}
	n := 0
	for _, e := range got {
		if a, ok := e.Body.(*protocol.Ack); ok {
			for _, r := range a.Records {
				out[r.ID] = r
				n++
			}
		}
	}
	return out, n
}

func chunkAcks(got []*protocol.Envelope) []protocol.ChunkAck {
	var out []protocol.ChunkAck
	for _, e := range got {
		if a, ok := e.Body.(*protocol.Ack); ok {
			out = append(out, a.Chunks...)
		}
	}
	return out
}

func syncStates(got []*protocol.Envelope) []*protocol.SyncState {
	var out []*protocol.SyncState
	for _, e := range got {
		if s, ok := e.Body.(*protocol.SyncState); ok {
			out = append(out, s)
		}
	}
	return out
}

func newRecord(seq uint64, blobs ...[]byte) *protocol.Record {
	r := &protocol.Record{
		ID: uuid.Must(uuid.NewV7()), Seq: seq, Kind: "owi.notice", Office: "ordnungsamt",
		CreatedAt: protocol.At(time.Now()), Meta: map[string]string{"district": "mitte"},
		Sealed: []byte("age-encrypted body " + uuid.NewString()),
	}
	for i, b := range blobs {
		r.Blobs = append(r.Blobs, protocol.BlobRef{ID: uuid.Must(uuid.NewV7()), Role: "photo-" + string(rune('a'+i)),
			Size: uint64(len(b)), SHA256: protocol.SumOf(b)})
	}
	return r
}

func chunk(r *protocol.Record, i int, blob []byte, off, n int) *protocol.BlobChunk {
	data := blob[off:min(off+n, len(blob))]
	return &protocol.BlobChunk{Record: r.ID, Blob: r.Blobs[i].ID, Offset: uint64(off), Total: uint64(len(blob)),
		Data: data, SHA256: protocol.SumOf(data)}
}
