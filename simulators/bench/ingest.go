package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/agent/enroll"
	"github.com/kogge-fleet/kogge/fleet-server/broker"
	"github.com/kogge-fleet/kogge/protocol"
	"github.com/kogge-fleet/kogge/protocol/seal"
	"github.com/kogge-fleet/kogge/simulators/fleet"
)

// inproc is an in-process fleet server with enrolled devices whose stores
// are filled, ready to drain.
type inproc struct {
	srv    *fleet.Server
	office seal.Recipient
	ids    []*enroll.Identity
	stores []string
}

// setupFilled starts a server, enrolls n devices and fills each store with
// per records carrying blobs of blobSizes.
func (r *runner) setupFilled(ctx context.Context, dir string, n, per int, blobSizes []int) (*inproc, error) {
	srv, err := fleet.StartServer(ctx, fleet.ServerConfig{DataDir: filepath.Join(dir, "server"), Keepalive: 30 * time.Second, Logger: r.log})
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			srv.Stop()
		}
	}()
	offices, err := fleet.GenerateOffices(benchOffice)
	if err != nil {
		return nil, err
	}
	office, _ := offices.Get(benchOffice)
	ids, err := r.enrollAll(ctx, srv.API(), srv.EnrollURL(), filepath.Join(dir, "devices"), "d", "bench", n, 8)
	if err != nil {
		return nil, err
	}
	if _, err := srv.API().SetGroupTwin(ctx, "bench", offices.Twin()); err != nil {
		return nil, err
	}
	p := &inproc{srv: srv, office: office.Recipient, ids: ids}
	r.progressf("filling %d device stores with %d records each", n, per)
	var (
		wg     sync.WaitGroup
		sem    = make(chan struct{}, 4)
		mu     sync.Mutex
		errs   []error
		filled atomic.Int64
	)
	stop := r.every(5*time.Second, func() { r.progressf("filled %d of %d stores", filled.Load(), n) })
	for _, id := range ids {
		path := filepath.Join(dir, "devices", id.DeviceID, "agent.db")
		p.stores = append(p.stores, path)
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := fillStore(ctx, path, p.office, per, blobSizes, r.log); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
			filled.Add(1)
		})
	}
	wg.Wait()
	stop()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	ok = true
	return p, nil
}

// drain starts an agent on every store and waits until the server has
// acknowledged want records (and blobs blobs); it returns the time from
// the start of the agents.
func (r *runner) drain(ctx context.Context, p *inproc, want uint64, blobs uint64, timeout time.Duration) (time.Duration, error) {
	agents := make([]*benchAgent, len(p.ids))
	broker := "ssl://" + p.srv.BrokerAddr()
	start := time.Now()
	for i, id := range p.ids {
		a, err := startAgent(id, p.stores[i], broker, r.log)
		if err != nil {
			stopAll(agents)
			return 0, err
		}
		agents[i] = a
	}
	err := r.waitUntil(ctx, "drain", timeout, func() (bool, string) {
		var acked, done uint64
		for _, a := range agents {
			acked += a.acked()
			done += a.ag.Sync().BlobsComplete
		}
		return acked >= want && done >= blobs, fmt.Sprintf("%d of %d records and %d of %d blobs acknowledged", acked, want, done, blobs)
	})
	took := time.Since(start)
	return took, errors.Join(err, stopAll(agents))
}

// countServerRecords counts the records the server holds.
func countServerRecords(ctx context.Context, srv *fleet.Server) (int, error) {
	recs, err := fleet.ServerRecords(ctx, srv.API())
	if err != nil {
		return 0, err
	}
	complete := 0
	for _, r := range recs {
		if r.Complete {
			complete++
		}
	}
	return complete, nil
}

// rawBroker is a second instance of the server's broker (the same code and
// options, the same TLS and revocation source) with an inline subscriber
// that counts what arrives: the baseline without ingest and store.
type rawBroker struct {
	b       *broker.Broker
	got     atomic.Int64
	gotByte atomic.Int64
}

func startRawBroker(ctx context.Context, srv *fleet.Server, logger *slog.Logger) (*rawBroker, error) {
	app := srv.App()
	b, err := broker.New(app.Registry().BrokerTLSConfig(), app.Registry(), broker.Options{Address: "127.0.0.1:0", Logger: logger})
	if err != nil {
		return nil, err
	}
	if err := b.Start(ctx); err != nil {
		return nil, err
	}
	rb := &rawBroker{b: b}
	if err := b.Subscribe(protocol.UpFilter, func(_ string, payload []byte) {
		rb.got.Add(1)
		rb.gotByte.Add(int64(len(payload)))
	}); err != nil {
		b.Close()
		return nil, err
	}
	return rb, nil
}

// rawRate publishes per messages of payload from every device through the
// raw broker and returns messages per second until the last arrived.
func (r *runner) rawRate(ctx context.Context, rb *rawBroker, ids []*enroll.Identity, payload []byte, per int) (float64, error) {
	pubs := make([]*publisher, 0, len(ids))
	defer func() {
		for _, p := range pubs {
			p.close()
		}
	}()
	for _, id := range ids {
		p, err := connectPublisher(ctx, "ssl://"+rb.b.Addr().String(), id.DeviceID, id.TLSConfig())
		if err != nil {
			return 0, err
		}
		pubs = append(pubs, p)
	}
	want := int64(len(ids) * per)
	base := rb.got.Load()
	start := time.Now()
	if err := publishAll(ctx, pubs, payload, per, 64); err != nil {
		return 0, err
	}
	if err := r.waitUntil(ctx, "raw publish → subscribe", time.Minute, func() (bool, string) {
		n := rb.got.Load() - base
		return n >= want, fmt.Sprintf("%d of %d arrived", n, want)
	}); err != nil {
		return 0, err
	}
	return float64(want) / time.Since(start).Seconds(), nil
}

// recordPayload is an encoded record envelope like the agent sends for a
// record with a sealed body of size bytes.
func recordPayload(device string, sealed int) ([]byte, error) {
	rec := &protocol.Record{ID: uuid.Must(uuid.NewV7()), Seq: 1, Kind: "roadwork.report", Office: benchOffice, KeyID: benchOffice + "-1",
		CreatedAt: protocol.At(time.Now()), Meta: map[string]string{"source": "kogge-sim-bench"}, Sealed: make([]byte, sealed)}
	return protocol.Encode(protocol.NewEnvelope(device, 1, time.Now(), rec))
}

// ingest: many devices drain their queued small records into the server;
// durable acknowledged records per second against the raw QoS 1 rate of
// the same message size through the same broker.
func (r *runner) ingest(ctx context.Context, dir string) (Result, error) {
	n, per := r.n(200, 10), r.n(1000, 50)
	res := Result{Unit: "records/s", BaselineUnit: "msgs/s raw", Target: "ratio >= 0.5", StartedAt: time.Now().UTC(),
		Params: map[string]any{"devices": n, "records_per_device": per, "transport": "mTLS, embedded broker", "store": "SQLite"}}
	p, err := r.setupFilled(ctx, dir, n, per, nil)
	if err != nil {
		return res, err
	}
	defer p.srv.Stop()

	sealedSize := len(mustSealedSample(p.office))
	payload, err := recordPayload(p.ids[0].DeviceID, sealedSize)
	if err != nil {
		return res, err
	}
	res.Params["message_bytes"] = len(payload)
	rb, err := startRawBroker(ctx, p.srv, r.log)
	if err != nil {
		return res, err
	}
	r.progressf("raw baseline: %d publishers × %d QoS 1 messages of %d bytes", n, per, len(payload))
	raw, err := r.rawRate(ctx, rb, p.ids, payload, per)
	rb.b.Close()
	if err != nil {
		return res, fmt.Errorf("raw baseline: %w", err)
	}

	want := uint64(n * per)
	r.progressf("ingest: %d devices drain %d records", n, want)
	took, err := r.drain(ctx, p, want, 0, max(2*time.Minute, time.Duration(want)*2*time.Millisecond))
	if err != nil {
		return res, err
	}
	got, err := countServerRecords(ctx, p.srv)
	if err != nil {
		return res, err
	}
	if got != int(want) {
		return res, fmt.Errorf("the server holds %d records, want %d", got, want)
	}
	res.Value = float64(want) / took.Seconds()
	res.Baseline = raw
	res.Ratio = res.Value / raw
	res.Pass = pass(res.Ratio >= 0.5)
	res.Params["drain_seconds"] = took.Seconds()
	return res, nil
}

// mustSealedSample is a sealed small body as fillStore makes it.
func mustSealedSample(office seal.Recipient) []byte {
	b, err := seal.Seal(office, make([]byte, 180))
	if err != nil {
		return make([]byte, 400)
	}
	return b
}

// blobs: devices upload queued photos; MB/s of blob data acknowledged
// complete, against raw 64 KiB QoS 1 messages through the same broker.
func (r *runner) blobs(ctx context.Context, dir string) (Result, error) {
	n, per := r.n(20, 2), r.n(25, 2)
	const photo = 300 << 10
	res := Result{Unit: "MB/s", BaselineUnit: "MB/s raw", Target: "measured (no target)", StartedAt: time.Now().UTC(),
		Params: map[string]any{"devices": n, "photos_per_device": per, "photo_bytes": photo, "chunk_bytes": protocol.DefaultChunkSize}}
	p, err := r.setupFilled(ctx, dir, n, per, []int{photo})
	if err != nil {
		return res, err
	}
	defer p.srv.Stop()

	total := float64(n * per * photo)
	chunk := make([]byte, protocol.DefaultChunkSize)
	msgs := max(int(total)/len(chunk)/n, 1)
	rb, err := startRawBroker(ctx, p.srv, r.log)
	if err != nil {
		return res, err
	}
	r.progressf("raw baseline: %d publishers × %d QoS 1 messages of 64 KiB", n, msgs)
	rawMsgs, err := r.rawRate(ctx, rb, p.ids, chunk, msgs)
	rb.b.Close()
	if err != nil {
		return res, fmt.Errorf("raw baseline: %w", err)
	}

	r.progressf("blobs: %d devices upload %d photos of %d KiB", n, n*per, photo>>10)
	took, err := r.drain(ctx, p, uint64(n*per), uint64(n*per), 5*time.Minute)
	if err != nil {
		return res, err
	}
	res.Value = total / took.Seconds() / 1e6
	res.Baseline = rawMsgs * float64(len(chunk)) / 1e6
	res.Ratio = res.Value / res.Baseline
	res.Params["upload_seconds"] = took.Seconds()
	return res, nil
}

// catchUp: one device with a long queue connects; records per second until
// the server has acknowledged them all.
func (r *runner) catchUp(ctx context.Context, dir string) (Result, error) {
	per := r.n(10_000, 1_000)
	res := Result{Unit: "records/s", Target: ">= 5000 records/s", StartedAt: time.Now().UTC(),
		Params: map[string]any{"devices": 1, "queued_records": per}}
	p, err := r.setupFilled(ctx, dir, 1, per, nil)
	if err != nil {
		return res, err
	}
	defer p.srv.Stop()
	r.progressf("catch-up: one device drains %d records", per)
	took, err := r.drain(ctx, p, uint64(per), 0, 5*time.Minute)
	if err != nil {
		return res, err
	}
	res.Value = float64(per) / took.Seconds()
	res.Pass = pass(res.Value >= 5000)
	res.Params["drain_seconds"] = took.Seconds()
	return res, nil
}
