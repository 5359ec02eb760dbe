// Package procedures simulates the offices' procedures that Kogge's bridges
// deliver into, so that connectors can be tested end to end on loopback:
//
//   - [Webhook]: an HTTPS webhook receiver that verifies the HMAC signature,
//     parses the document, and dedupes on the Idempotency-Key;
//   - [Open311]: a GeoReport v2 server for the road-maintenance procedure
//     (services, POST requests with api_key and media, GET requests and
//     tokens) whose requests' status a test advances;
//   - [DropDir]: a drop-directory consumer (for idpass and owi) that parses
//     and validates every file, writes a receipt file with a reference
//     number, and moves the file aside.
//
// Each records what it received in a [Ledger]: unique deliveries and
// duplicates (a delivery of a record id it has seen before: a second case
// at a procedure that did not dedupe), optionally as a JSON log file. Each
// takes scripted faults for its next requests ([Fault]). Servers listen on
// 127.0.0.1 only, with certificates from a throw-away [CA].
package procedures

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"
)

// Fault is a scripted misbehaviour for the next requests (or files).
type Fault int

const (
	// FaultNone behaves.
	FaultNone Fault = iota
	// Fault500 answers 500 without processing the request.
	Fault500
	// FaultGarbage processes the request and answers 200 with a body that
	// is not the expected format (a drop directory writes a garbage
	// receipt first and the real one on its next scan).
	FaultGarbage
	// FaultTimeout holds the request without processing or answering
	// until the client gives up (a drop directory leaves the file alone
	// until Release).
	FaultTimeout
	// FaultRefuse refuses the request with a 4xx (a drop directory writes
	// a rejected receipt).
	FaultRefuse
	// FaultDrop closes the connection without an answer, unprocessed.
	FaultDrop
)

func (f Fault) String() string {
	return [...]string{"none", "500", "garbage", "timeout", "refuse", "drop"}[f]
}

// faults is a queue of scripted faults.
type faults struct {
	mu    sync.Mutex
	queue []Fault
}

// Inject makes the next n requests misbehave with f, after the faults
// already queued.
func (q *faults) Inject(f Fault, n int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for range n {
		q.queue = append(q.queue, f)
	}
}

func (q *faults) next() Fault {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.queue) == 0 {
		return FaultNone
	}
	f := q.queue[0]
	q.queue = q.queue[1:]
	return f
}

// Entry is one delivery a simulator received and accepted.
type Entry struct {
	At time.Time `json:"at"`
	// Key is what identifies the case: the record id.
	Key       string `json:"key"`
	Reference string `json:"reference"`
	Duplicate bool   `json:"duplicate"`
	Kind      string `json:"kind,omitempty"`
	Bytes     int    `json:"bytes"`
}

// Ledger records deliveries by key and reports unique and duplicate ones.
// It is safe for concurrent use.
type Ledger struct {
	prefix string
	clock  func() time.Time

	mu      sync.Mutex
	refs    map[string]string
	entries []Entry
	file    *os.File
	changed chan struct{}
}

// NewLedger returns a ledger whose references are prefix and a number; with
// a logFile, every entry is appended to it as a JSON line.
func NewLedger(prefix, logFile string, clock func() time.Time) (*Ledger, error) {
	if clock == nil {
		clock = time.Now
	}
	l := &Ledger{prefix: prefix, clock: clock, refs: map[string]string{}, changed: make(chan struct{})}
	if logFile != "" {
		f, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return nil, fmt.Errorf("simulator log: %w", err)
		}
		l.file = f
	}
	return l, nil
}

// Record notes a delivery of key and returns its reference: a new one for a
// new key, the first one's for a duplicate.
func (l *Ledger) Record(key, kind string, size int) (ref string, duplicate bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ref, duplicate = l.refs[key]
	if !duplicate {
		ref = fmt.Sprintf("%s-%06d", l.prefix, len(l.refs)+1)
		l.refs[key] = ref
	}
	e := Entry{At: l.clock().UTC(), Key: key, Reference: ref, Duplicate: duplicate, Kind: kind, Bytes: size}
	l.entries = append(l.entries, e)
	if l.file != nil {
		b, _ := json.Marshal(e)
		l.file.Write(append(b, '\n'))
	}
	close(l.changed)
	l.changed = make(chan struct{})
	return ref, duplicate
}

// Reference returns the reference given to key, if any.
func (l *Ledger) Reference(key string) (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ref, ok := l.refs[key]
	return ref, ok
}

// Stats returns the number of unique deliveries and of duplicates.
func (l *Ledger) Stats() (unique, duplicates int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.refs), len(l.entries) - len(l.refs)
}

// Entries returns every delivery in order.
func (l *Ledger) Entries() []Entry {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.entries)
}

// Changed returns a channel that is closed at the next Record.
func (l *Ledger) Changed() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.changed
}

// Close closes the log file.
func (l *Ledger) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.file == nil {
		return nil
	}
	err := l.file.Close()
	l.file = nil
	return err
}
