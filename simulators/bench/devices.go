package bench

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/kogge-fleet/kogge/agent"
	"github.com/kogge-fleet/kogge/agent/enroll"
	agentmqtt "github.com/kogge-fleet/kogge/agent/mqtt"
	"github.com/kogge-fleet/kogge/agent/store"
	agentsync "github.com/kogge-fleet/kogge/agent/sync"
	"github.com/kogge-fleet/kogge/fleet-server/api/client"
	"github.com/kogge-fleet/kogge/protocol"
	"github.com/kogge-fleet/kogge/protocol/casefile"
	"github.com/kogge-fleet/kogge/protocol/seal"
	"github.com/kogge-fleet/kogge/simulators/fleet"
)

// benchOffice is the office the benchmark's records go to.
const benchOffice = "strassenbau"

// enrollAll enrolls n devices bench-<prefix>-<i> in group, with
// concurrency enrollments in flight, and returns their identities.
func (r *runner) enrollAll(ctx context.Context, api *client.Client, enrollURL, dir, prefix, group string, n, concurrency int) ([]*enroll.Identity, error) {
	if _, err := api.CreateGroup(ctx, group, "benchmark "+group); err != nil {
		var ce *client.Error
		if !errors.As(err, &ce) || ce.Status != 409 {
			return nil, fmt.Errorf("create group: %w", err)
		}
	}
	ids := make([]*enroll.Identity, n)
	var (
		next atomic.Int64
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		done atomic.Int64
	)
	stop := r.every(5*time.Second, func() { r.progressf("enrolled %d of %d devices", done.Load(), n) })
	defer stop()
	for range concurrency {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				id := fmt.Sprintf("bench-%s-%05d", prefix, i)
				ident, err := fleet.EnrollDevice(ctx, api, enrollURL, filepath.Join(dir, id), id, group,
					enroll.Inventory{Model: "bench", Serial: id, Software: "bench"})
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
				ids[i] = ident
				done.Add(1)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(append(errs, ctx.Err())...); err != nil {
		return nil, err
	}
	return ids, nil
}

// every calls fn every d until the returned stop is called.
func (r *runner) every(d time.Duration, fn func()) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				fn()
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}

// fillStore saves n records of the given blob sizes into a new store at
// path: each a small roadwork report sealed for the office, as agent.Capture
// would save it (the sealing is done once per store: the server cannot
// tell).
func fillStore(ctx context.Context, path string, office seal.Recipient, n int, blobSizes []int, logger *slog.Logger) error {
	st, err := store.Open(path, store.Options{Budget: 8 << 30, DiskReserve: 1 << 20, Logger: logger})
	if err != nil {
		return err
	}
	defer st.Close()
	doc := &casefile.Report{V: casefile.Version, Category: "pothole", Severity: casefile.SeverityMedium,
		Location: casefile.Place{Street: "Osterdeich", HouseNumber: "12", City: "Bremen"},
		Note:     "Schlagloch, etwa 30 cm.", Reporter: casefile.ReporterCrew, CreatedAt: casefile.At(time.Now())}
	body, err := casefile.Encode(doc)
	if err != nil {
		return err
	}
	sealed, err := seal.Seal(office, body)
	if err != nil {
		return err
	}
	rng := rand.NewChaCha8([32]byte{1, 2, 3})
	var blobs []store.BlobData
	for i, size := range blobSizes {
		b := make([]byte, size)
		rng.Read(b)
		blobs = append(blobs, store.BlobData{Role: fmt.Sprintf("photo-%d", i+1), Data: b})
	}
	c := store.Capture{Kind: casefile.KindReport, Office: office.Office, KeyID: office.KeyID,
		Meta: map[string]string{"source": "kogge-sim-bench"}, Sealed: sealed, Blobs: blobs}
	// Many savers share the store's group commit.
	const savers = 16
	var (
		wg   sync.WaitGroup
		next atomic.Int64
		errc = make(chan error, savers)
	)
	for range savers {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				if _, err := st.Save(ctx, c); err != nil {
					errc <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	return <-errc
}

// benchAgent is an agent over a filled store, connected straight to the
// broker (no fault proxy).
type benchAgent struct {
	st     *store.Store
	tr     *agentmqtt.Transport
	ag     *agent.Agent
	cancel context.CancelFunc
	done   chan error
}

// startAgent runs an agent for id over the store at path.
func startAgent(id *enroll.Identity, path, broker string, logger *slog.Logger) (*benchAgent, error) {
	st, err := store.Open(path, store.Options{Budget: 8 << 30, DiskReserve: 1 << 20, Logger: logger})
	if err != nil {
		return nil, err
	}
	tr, err := agentmqtt.New(agentmqtt.Config{Broker: broker, Device: id.DeviceID, TLS: id.TLSConfig(), Software: "bench"},
		agentmqtt.Options{MinBackoff: 100 * time.Millisecond, MaxBackoff: 2 * time.Second, Logger: logger})
	if err != nil {
		st.Close()
		return nil, err
	}
	ag, err := agent.New(agent.Config{Device: id.DeviceID, Software: "bench"}, st, tr,
		agent.Options{Logger: logger, Sync: agentsync.Options{AckTimeout: 5 * time.Second}})
	if err != nil {
		st.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := &benchAgent{st: st, tr: tr, ag: ag, cancel: cancel, done: make(chan error, 1)}
	go func() { a.done <- ag.Run(ctx) }() // waited for in stop
	return a, nil
}

// acked is how many records the server has acknowledged to the agent.
func (a *benchAgent) acked() uint64 {
	s := a.ag.Sync()
	return s.RecordsStored + s.MarkedBySync
}

func (a *benchAgent) stop() error {
	a.cancel()
	var err error
	select {
	case err = <-a.done:
	case <-time.After(30 * time.Second):
		err = errors.New("agent did not stop within 30s")
	}
	return errors.Join(err, a.st.Close())
}

func stopAll(agents []*benchAgent) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, a := range agents {
		if a == nil {
			continue
		}
		wg.Go(func() {
			if err := a.stop(); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// waitUntil polls cond every 20 ms until it holds, printing progress every
// 5 s, and fails after timeout.
func (r *runner) waitUntil(ctx context.Context, what string, timeout time.Duration, cond func() (bool, string)) error {
	deadline := time.Now().Add(timeout)
	lastPrint := time.Now()
	for {
		ok, state := cond()
		if ok {
			return nil
		}
		if time.Since(lastPrint) >= 5*time.Second {
			r.progressf("%s: %s", what, state)
			lastPrint = time.Now()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not within %v (%s)", what, timeout, state)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// publisher is a raw MQTT client for the baselines: it publishes the same
// payload n times with QoS 1, keeping window publishes in flight, as the
// agent's sync engine does.
type publisher struct {
	c     paho.Client
	topic string
}

// connectPublisher connects a paho client as device (TLS with cfg, or
// plain TCP with the device id as user name when cfg is nil).
func connectPublisher(ctx context.Context, broker, device string, cfg *tls.Config) (*publisher, error) {
	o := paho.NewClientOptions().AddBroker(broker).SetClientID(device).SetProtocolVersion(4).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).SetOrderMatters(false).
		SetKeepAlive(30 * time.Second).SetConnectTimeout(10 * time.Second).SetWriteTimeout(10 * time.Second)
	if cfg != nil {
		o.SetTLSConfig(cfg)
	} else {
		o.SetUsername(device)
	}
	c := paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(15 * time.Second) {
		c.Disconnect(0)
		return nil, fmt.Errorf("connect %s: timed out", device)
	}
	if err := tok.Error(); err != nil {
		return nil, fmt.Errorf("connect %s: %w", device, err)
	}
	topic, err := protocol.TopicFor(device, protocol.TypeRecord)
	if err != nil {
		c.Disconnect(0)
		return nil, err
	}
	return &publisher{c: c, topic: topic}, nil
}

// publish sends payload n times, window in flight.
func (p *publisher) publish(ctx context.Context, payload []byte, n, window int) error {
	inflight := make([]paho.Token, 0, window)
	wait := func(t paho.Token) error {
		if !t.WaitTimeout(30 * time.Second) {
			return errors.New("no PUBACK within 30s")
		}
		return t.Error()
	}
	for range n {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if len(inflight) == window {
			if err := wait(inflight[0]); err != nil {
				return err
			}
			inflight = inflight[1:]
		}
		inflight = append(inflight, p.c.Publish(p.topic, 1, false, payload))
	}
	for _, t := range inflight {
		if err := wait(t); err != nil {
			return err
		}
	}
	return nil
}

func (p *publisher) close() { p.c.Disconnect(100) }

// publishAll runs the publishers at once and waits for them.
func publishAll(ctx context.Context, pubs []*publisher, payload []byte, n, window int) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, p := range pubs {
		wg.Go(func() {
			if err := p.publish(ctx, payload, n, window); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
