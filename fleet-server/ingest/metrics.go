package ingest

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kogge-fleet/kogge/protocol"
)

// Reasons, the values of the reason label of kogge_ingest_rejected_total
// (input refused or dropped) and kogge_ingest_ignored_total (input set aside
// as the protocol expects: the device sends it again when it fits).
const (
	// Rejected.
	reasonTopic           = "topic"            // not an uplink topic of a device
	reasonTruncated       = "truncated"        // payload ends early
	reasonTooLarge        = "too_large"        // payload or a field beyond its limit
	reasonVersion         = "version"          // capability version not supported
	reasonMalformed       = "malformed"        // not the CBOR the contract expects
	reasonInvalid         = "invalid"          // decodes, breaks a rule of the contract
	reasonDeviceMismatch  = "device_mismatch"  // envelope device is not the topic device
	reasonTypeMismatch    = "type_mismatch"    // message type is not the topic's
	reasonRecordRefused   = "record_refused"   // the validator refused a record
	reasonRecordConflict  = "record_conflict"  // id or sequence already used otherwise
	reasonChunkDigest     = "chunk_digest"     // chunk data does not match its SHA-256
	reasonChunkInvalid    = "chunk_invalid"    // chunk does not fit its blob
	reasonBlobDigest      = "blob_digest"      // assembled blob does not match its SHA-256
	reasonRate            = "rate"             // device beyond its byte rate
	reasonIncompleteLimit = "incomplete_limit" // device has too many blob bytes under way
	reasonQueueFull       = "queue_full"       // ingest queue full
	reasonShutdown        = "shutdown"         // arrived while draining
	reasonUnknownDevice   = "unknown_device"   // device not in the registry
	reasonStoreError      = "store_error"      // the store failed; the device retransmits

	// Ignored.
	reasonOutOfOrder     = "out_of_order"    // record whose predecessor is not stored yet
	reasonChunkGap       = "chunk_gap"       // chunk beyond the end of what is stored
	reasonUnknownBlob    = "unknown_blob"    // chunk of a record not stored yet
	reasonUnknownType    = "unknown_type"    // message type of a newer peer
	reasonUnknownCommand = "unknown_command" // result for a command the device never had
)

type metrics struct {
	received   *prometheus.CounterVec
	byType     map[protocol.Type]prometheus.Counter // received, by known type
	rejected   *prometheus.CounterVec
	ignored    *prometheus.CounterVec
	records    *prometheus.CounterVec
	chunks     *prometheus.CounterVec
	commits    prometheus.Counter
	commitSecs prometheus.Histogram
	batchSize  prometheus.Histogram

	// Counters the tests and Stats read without Prometheus.
	nReceived, nRejected, nIgnored, nCommits, nCommitted, nStored atomic.Uint64
}

func newMetrics(reg prometheus.Registerer, queueLen func() float64) (*metrics, error) {
	m := &metrics{
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kogge_ingest_messages_total", Help: "Messages the ingest took from the broker, by type.",
		}, []string{"type"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kogge_ingest_rejected_total", Help: "Input refused or dropped, by reason.",
		}, []string{"reason"}),
		ignored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kogge_ingest_ignored_total", Help: "Input set aside until the device sends it again in order, by reason.",
		}, []string{"reason"}),
		records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kogge_ingest_records_total", Help: "Records acknowledged, by verdict (stored, duplicate, rejected).",
		}, []string{"status"}),
		chunks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kogge_ingest_chunks_total", Help: "Blob chunks acknowledged, by verdict (stored, duplicate, rejected).",
		}, []string{"status"}),
		commits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kogge_ingest_commits_total", Help: "Group commits (transactions) of the ingest.",
		}),
		commitSecs: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "kogge_ingest_commit_seconds", Help: "Duration of a group commit, from the first statement to the durable commit.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "kogge_ingest_batch_messages", Help: "Messages per group commit.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 12),
		}),
	}
	m.byType = map[protocol.Type]prometheus.Counter{}
	for _, t := range protocol.Types() {
		m.byType[t] = m.received.WithLabelValues(t.String())
	}
	if reg == nil {
		return m, nil
	}
	queue := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "kogge_ingest_queue_messages", Help: "Messages waiting for the next group commit.",
	}, queueLen)
	var errs []error
	for _, c := range []prometheus.Collector{m.received, m.rejected, m.ignored, m.records, m.chunks, m.commits,
		m.commitSecs, m.batchSize, queue} {
		errs = append(errs, reg.Register(c))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("register ingest metrics: %w", err)
	}
	return m, nil
}

func (m *metrics) reject(reason string, n int) {
	m.rejected.WithLabelValues(reason).Add(float64(n))
	m.nRejected.Add(uint64(n))
}

func (m *metrics) ignore(reason string, n int) {
	m.ignored.WithLabelValues(reason).Add(float64(n))
	m.nIgnored.Add(uint64(n))
}
