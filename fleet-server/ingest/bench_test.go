package ingest

import (
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/google/uuid"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kogge-fleet/kogge/fleet-server/store"
	"github.com/kogge-fleet/kogge/protocol"
)

// BenchmarkIngest measures durable, acknowledged records per second from
// benchDevices paho publishers over loopback TCP (a plain listener, no TLS)
// through the embedded mochi broker into SQLite (WAL, synchronous=FULL) with
// group commit; and, in the same run with the same publishers and payload
// size, the raw rate of QoS 1 publish → inline subscription through the
// same broker. It reports both and their ratio.
//
// Each device sends like the agent: a window of records in flight, each
// acknowledged only after the commit, resent when no ack comes.
//
//	go test -run='^$' -bench=BenchmarkIngest -benchtime=3x ./fleet-server/ingest
func BenchmarkIngest(b *testing.B) {
	const (
		benchDevices = 50
		perDevice    = 400
		window       = 64 // the agent's default
		slices       = 4
	)
	broker := startBroker(b)
	db := openStore(b, "")
	reg := prometheus.NewRegistry()
	in, _ := startIngest(b, db, broker, Options{Logger: quietLogger(), Registerer: reg})

	var raw atomic.Int64
	rawDone := make(chan struct{}, 1)
	var rawWant atomic.Int64
	if err := broker.srv.Subscribe("bench/raw/#", 1_000_000, func(_ *mqtt.Client, _ packets.Subscription, _ packets.Packet) {
		if raw.Add(1) == rawWant.Load() {
			rawDone <- struct{}{}
		}
	}); err != nil {
		b.Fatal(err)
	}

	var ingestSecs, rawSecs, ingestCPU, rawCPU float64
	var records int
	b.ResetTimer()
	for round := range b.N {
		b.StopTimer()
		ids := make([]string, benchDevices)
		for i := range ids {
			ids[i] = fmt.Sprintf("bench-%d-%03d", round, i)
		}
		addDevices(b, db, ids...)
		devs := make([]*benchDevice, benchDevices)
		for i, id := range ids {
			devs[i] = newBenchDevice(b, broker.addr, id, perDevice)
		}
		b.StartTimer()

		// Raw and ingest alternate in slices, so that a change of the
		// machine's load (it is shared) hits both alike.
		for slice := range slices {
			lo, hi := slice*perDevice/slices, (slice+1)*perDevice/slices

			// Raw: every publisher sends its payloads once, QoS 1, and the
			// inline subscription counts them.
			raw.Store(0)
			rawWant.Store(int64(benchDevices * (hi - lo)))
			start := time.Now()
			c0 := cpuNow()
			var wg sync.WaitGroup
			for _, d := range devs {
				wg.Go(func() { d.sendRaw(lo, hi) })
			}
			wg.Wait()
			select {
			case <-rawDone:
			case <-time.After(time.Minute):
				b.Fatalf("raw: %d of %d messages arrived", raw.Load(), rawWant.Load())
			}
			rawSecs += time.Since(start).Seconds()
			rawCPU += cpuNow() - c0
			c0 = cpuNow()

			// Ingest: the same publishers and payloads as records, until
			// every record is acknowledged.
			start = time.Now()
			for _, d := range devs {
				wg.Go(func() { d.sendRecords(hi, window) })
			}
			wg.Wait()
			ingestSecs += time.Since(start).Seconds()
			ingestCPU += cpuNow() - c0
		}
		records += benchDevices * perDevice

		b.StopTimer()
		for _, d := range devs {
			if d.err != nil {
				b.Fatal(d.err)
			}
			d.c.Disconnect(0)
		}
		b.StartTimer()
	}
	b.StopTimer()
	if n := countAll(b, db); n != records {
		b.Fatalf("%d records stored, want %d", n, records)
	}
	ingestRate := float64(records) / ingestSecs
	rawRate := float64(records) / rawSecs
	b.ReportMetric(ingestRate, "records/s")
	b.ReportMetric(rawRate, "raw_msgs/s")
	b.ReportMetric(ingestRate/rawRate, "ratio")
	b.ReportMetric(rawCPU/float64(records)*1e6, "raw_cpu_us/msg")
	b.ReportMetric(ingestCPU/float64(records)*1e6, "ingest_cpu_us/msg")
	b.ReportMetric(rawCPU/rawSecs, "raw_cores")
	b.ReportMetric(ingestCPU/ingestSecs, "ingest_cores")
	st := in.Stats()
	b.ReportMetric(float64(st.Committed)/float64(max(st.Commits, 1)), "msgs/commit")
	b.ReportMetric(histogramMean(b, reg, "kogge_ingest_commit_seconds")*1000, "ms/commit")
}

func countAll(t testing.TB, db *store.DB) int {
	t.Helper()
	var n int
	if err := db.Reader().QueryRow(`SELECT count(*) FROM records`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// benchDevice is one publisher of the benchmark.
type benchDevice struct {
	b        testing.TB
	id       string
	c        paho.Client
	payloads [][]byte
	index    map[uuid.UUID]int64 // record id → its sequence
	acked    atomic.Int64        // records up to this sequence are stored
	progress chan struct{}
	err      error
}

func newBenchDevice(b testing.TB, addr, id string, n int) *benchDevice {
	d := &benchDevice{b: b, id: id, progress: make(chan struct{}, 1), index: map[uuid.UUID]int64{}}
	for i := range n {
		r := newRecord(uint64(i + 1))
		d.index[r.ID] = int64(i + 1)
		p, err := protocol.Encode(protocol.NewEnvelope(id, uint64(i+1), time.Now(), r))
		if err != nil {
			b.Fatal(err)
		}
		d.payloads = append(d.payloads, p)
	}
	opts := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).SetAutoReconnect(false).
		SetCleanSession(true).SetConnectTimeout(10 * time.Second).SetWriteTimeout(10 * time.Second)
	opts.SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) {
		env, err := protocol.Decode(m.Payload())
		if err != nil {
			return
		}
		if a, ok := env.Body.(*protocol.Ack); ok {
			// Records are stored in order: an ack for one covers all
			// before it.
			for _, r := range a.Records {
				if seq := d.index[r.ID]; r.Status != protocol.AckRejected && seq > d.acked.Load() {
					d.acked.Store(seq)
				}
			}
			select {
			case d.progress <- struct{}{}:
			default:
			}
		}
	})
	d.c = paho.NewClient(opts)
	if tok := d.c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		b.Fatalf("connect %s: %v", id, tok.Error())
	}
	topic := protocol.DeviceFilters(id)[0]
	if tok := d.c.Subscribe(topic, 1, nil); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		b.Fatalf("subscribe %s: %v", id, tok.Error())
	}
	return d
}

func (d *benchDevice) sendRaw(lo, hi int) {
	topic := "bench/raw/" + d.id
	toks := make([]paho.Token, 0, hi-lo)
	for _, p := range d.payloads[lo:hi] {
		toks = append(toks, d.c.Publish(topic, 1, false, p))
	}
	for _, t := range toks {
		if !t.WaitTimeout(time.Minute) || t.Error() != nil {
			d.err = fmt.Errorf("%s: raw publish: %v", d.id, t.Error())
			return
		}
	}
}

// sendRecords sends the records up to sequence upto with at most window
// unacknowledged, and resends from the oldest unacknowledged one when acks
// stop coming.
func (d *benchDevice) sendRecords(upto, window int) {
	topic, _ := protocol.TopicFor(d.id, protocol.TypeRecord)
	sent := int(d.acked.Load())
	deadline := time.Now().Add(2 * time.Minute)
	stall := time.NewTimer(2 * time.Second)
	defer stall.Stop()
	for {
		acked := int(d.acked.Load())
		if acked >= upto {
			return
		}
		for sent < upto && sent-acked < window {
			d.c.Publish(topic, 1, false, d.payloads[sent])
			sent++
		}
		select {
		case <-d.progress:
			stall.Reset(2 * time.Second)
		case <-stall.C:
			if time.Now().After(deadline) {
				d.err = fmt.Errorf("%s: %d of %d records acknowledged", d.id, acked, upto)
				return
			}
			sent = int(d.acked.Load()) // resend from the oldest unacknowledged
			stall.Reset(2 * time.Second)
		}
	}
}

// histogramMean returns the mean of the histogram name in reg.
func histogramMean(t testing.TB, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			h := mf.GetMetric()[0].GetHistogram()
			return h.GetSampleSum() / float64(max(h.GetSampleCount(), 1))
		}
	}
	return 0
}

func cpuNow() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
