package bridge_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kogge-fleet/kogge/fleet-server/bridge"
	"github.com/kogge-fleet/kogge/fleet-server/bridge/bridgetest"
	"github.com/kogge-fleet/kogge/protocol"
	"github.com/kogge-fleet/kogge/protocol/casefile"
	"github.com/kogge-fleet/kogge/protocol/casefile/casefiletest"
)

// delivered is what the fake connector saw of one case, copied before the
// runner wipes the plaintext.
type delivered struct {
	id    uuid.UUID
	kind  string
	doc   casefile.Document
	blobs map[uuid.UUID][]byte
}

// fakeConn records cases and answers with fn (default: a receipt named
// after the record).
type fakeConn struct {
	fn func(ctx context.Context, c *bridge.Case) (bridge.Receipt, error)

	mu   sync.Mutex
	seen []delivered
}

func (f *fakeConn) Deliver(ctx context.Context, c *bridge.Case) (bridge.Receipt, error) {
	d := delivered{id: c.ID, kind: c.Kind, doc: c.Doc, blobs: map[uuid.UUID][]byte{}}
	for _, b := range c.Blobs {
		d.blobs[b.Ref.ID] = bytes.Clone(b.Data)
	}
	f.mu.Lock()
	f.seen = append(f.seen, d)
	f.mu.Unlock()
	if f.fn != nil {
		return f.fn(ctx, c)
	}
	return bridge.Receipt{Reference: "REF-" + c.ID.String()[:8], Note: "accepted"}, nil
}

func (f *fakeConn) cases() []delivered {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]delivered(nil), f.seen...)
}

// start runs a runner in the background; stop cancels it and waits for Run.
func start(t *testing.T, src bridge.Source, office *bridgetest.Office, conn bridge.Connector, opts bridge.Options) (*bridge.Runner, func()) {
	t.Helper()
	r, cancel, wait := startCancel(t, src, office, conn, opts)
	return r, func() { cancel(); wait() }
}

// startCancel runs a runner in the background and returns its cancel
// function and a function that waits for Run to return.
func startCancel(t *testing.T, src bridge.Source, office *bridgetest.Office, conn bridge.Connector, opts bridge.Options) (*bridge.Runner, context.CancelFunc, func()) {
	t.Helper()
	opts.Office = office.Name
	if opts.IdleWait == 0 {
		opts.IdleWait = 2 * time.Millisecond
	}
	if opts.ErrorBackoff == 0 {
		opts.ErrorBackoff = time.Millisecond
	}
	r, err := bridge.New(src, office.Keyring, conn, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	wait := func() {
		once.Do(func() {
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(func() { cancel(); wait() })
	return r, cancel, wait
}

func settle(t *testing.T, src *bridgetest.Source) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := src.WaitFor(ctx, (*bridgetest.Source).Settled); err != nil {
		t.Fatal(err)
	}
}

func TestDeliverEveryKind(t *testing.T) {
	office := bridgetest.NewOffice(t, "office-a", "k1")
	src := bridgetest.NewSource()
	want := map[uuid.UUID]casefile.Document{}
	plain := map[uuid.UUID]map[uuid.UUID][]byte{}
	for _, kind := range casefile.Kinds() {
		doc := casefiletest.Sample(kind)
		blobs := bridgetest.SampleBlobs(doc, 4096)
		rec := bridgetest.Seal(t, office, doc, blobs)
		src.Add(rec)
		want[rec.Delivery.ID] = doc
		plain[rec.Delivery.ID] = blobs
	}
	conn := &fakeConn{}
	reg := prometheus.NewRegistry()
	r, stop := start(t, src, office, conn, bridge.Options{Registerer: reg})
	settle(t, src)
	stop()

	for id := range want {
		e, _ := src.Entry(id)
		if e.State != bridgetest.Acked {
			t.Fatalf("record %v is %v (%s), want acked", id, e.State, e.Reason)
		}
		if wantRef := "REF-" + id.String()[:8]; e.Receipt.Reference != wantRef || e.Receipt.Note != "accepted" {
			t.Errorf("receipt %+v, want reference %s", e.Receipt, wantRef)
		}
	}
	seen := conn.cases()
	if len(seen) != len(want) {
		t.Fatalf("connector saw %d cases, want %d", len(seen), len(want))
	}
	for _, d := range seen {
		if !reflect.DeepEqual(d.doc, want[d.id]) {
			t.Errorf("%s: connector got document %+v, want %+v", d.kind, d.doc, want[d.id])
		}
		if !reflect.DeepEqual(d.blobs, plain[d.id]) {
			t.Errorf("%s: connector got other blob contents than the device sealed", d.kind)
		}
	}
	if s := r.Stats(); s.Acked != 3 || s.Failed+s.Dead+s.Abandoned+s.LeaseLost != 0 {
		t.Errorf("stats %+v", s)
	}
	if got := metricValue(t, reg, "kogge_bridge_deliveries_total", "acked"); got != 3 {
		t.Errorf("kogge_bridge_deliveries_total{outcome=acked} = %v", got)
	}
}

// metricValue returns the value of the counter name in reg, for the series
// whose outcome label is outcome ("" for a series without one).
func metricValue(t *testing.T, reg *prometheus.Registry, name, outcome string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			got := ""
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" {
					got = l.GetValue()
				}
			}
			if got == outcome {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no %s{outcome=%q}", name, outcome)
	return 0
}

// TestPermanentFailures: records the bridge can never deliver become dead
// letters at once, with a reason a person understands, and never reach the
// connector.
func TestPermanentFailures(t *testing.T) {
	office := bridgetest.NewOffice(t, "office-a", "k2")
	other := bridgetest.NewOffice(t, "office-a", "k9")
	retired := bridgetest.NewOffice(t, "office-a", "k1")
	if err := office.Keyring.Add("k1", retired.Secret); err != nil {
		t.Fatal(err)
	}
	office.Keyring.Retire("k1")
	report := casefiletest.Report()
	blobs := bridgetest.SampleBlobs(report, 512)

	tests := []struct {
		name   string
		record func() bridgetest.Record
		src    func(*bridgetest.Source, bridgetest.Record)
		reason string
	}{
		{
			name:   "unknown key",
			record: func() bridgetest.Record { return bridgetest.Seal(t, other, report, blobs) },
			reason: `sealed for office key "k9", which this bridge does not hold`,
		},
		{
			name:   "retired key",
			record: func() bridgetest.Record { return bridgetest.Seal(t, retired, report, blobs) },
			reason: `sealed for office key "k1", which the office has retired`,
		},
		{
			name: "no key id",
			record: func() bridgetest.Record {
				r := bridgetest.Seal(t, office, report, blobs)
				r.Delivery.KeyID = ""
				return r
			},
			reason: "record names no office key",
		},
		{
			name: "damaged body",
			record: func() bridgetest.Record {
				r := bridgetest.Seal(t, office, report, blobs)
				r.Delivery.Sealed[len(r.Delivery.Sealed)-3] ^= 1
				return r
			},
			reason: `sealed body does not open with office key "k2"`,
		},
		{
			name:   "tampered blob",
			record: func() bridgetest.Record { return bridgetest.Seal(t, office, report, blobs) },
			src: func(s *bridgetest.Source, r bridgetest.Record) {
				s.Tamper(r.Delivery.ID, r.Delivery.Blobs[1].ID)
			},
			reason: "does not match its SHA-256: damaged on the server",
		},
		{
			name: "blob sealed for another key",
			record: func() bridgetest.Record {
				r := bridgetest.Seal(t, office, report, blobs)
				foreign := bridgetest.Seal(t, other, report, blobs)
				id := r.Delivery.Blobs[0].ID
				r.Blobs[id] = foreign.Blobs[id]
				r.Delivery.Blobs[0] = foreign.Delivery.Blobs[0]
				return r
			},
			reason: `does not open with office key "k2"`,
		},
		{
			name: "invalid document",
			record: func() bridgetest.Record {
				return bridgetest.SealBody(t, office, casefile.KindReport, []byte{0xa1, 0x01, 0x01}, nil, nil)
			},
			reason: "body is not a valid roadwork.report document",
		},
		{
			name: "document names a blob the record lacks",
			record: func() bridgetest.Record {
				body, err := casefile.Encode(report)
				if err != nil {
					t.Fatal(err)
				}
				ids := report.Blobs()
				return bridgetest.SealBody(t, office, casefile.KindReport, body, ids[:1], blobs)
			},
			reason: "which the record does not carry",
		},
		{
			name: "another office's record",
			record: func() bridgetest.Record {
				r := bridgetest.Seal(t, office, report, blobs)
				r.Delivery.Office = "office-b"
				return r
			},
			src: func(s *bridgetest.Source, r bridgetest.Record) {},
			// The fake source hands out only office-a's records; this
			// one is leased through a source that ignores the office.
			reason: `record is for office "office-b"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := bridgetest.NewSource()
			rec := tt.record()
			src.Add(rec)
			if tt.src != nil {
				tt.src(src, rec)
			}
			conn := &fakeConn{}
			var s bridge.Source = src
			if rec.Delivery.Office != office.Name {
				s = anyOffice{src, rec.Delivery.Office}
			}
			r, stop := start(t, s, office, conn, bridge.Options{})
			settle(t, src)
			stop()
			e, _ := src.Entry(rec.Delivery.ID)
			if e.State != bridgetest.Dead || e.Failures != 1 {
				t.Fatalf("record is %v after %d failures, want dead after 1", e.State, e.Failures)
			}
			if !strings.Contains(e.Reason, tt.reason) {
				t.Errorf("reason %q, want it to contain %q", e.Reason, tt.reason)
			}
			if n := len(conn.cases()); n != 0 {
				t.Errorf("connector saw %d cases", n)
			}
			if st := r.Stats(); st.Dead != 1 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

// anyOffice leases another office's records, as a broken source might.
type anyOffice struct {
	*bridgetest.Source
	office string
}

func (a anyOffice) Lease(ctx context.Context, _ string, max int, vis time.Duration) ([]bridge.Delivery, error) {
	return a.Source.Lease(ctx, a.office, max, vis)
}

// errNoReference makes the fake connector answer without a reference.
var errNoReference = errors.New("answer without a reference")

func TestConnectorErrors(t *testing.T) {
	office := bridgetest.NewOffice(t, "office-a", "k1")
	tests := []struct {
		name      string
		errs      []error // the connector's answers before it succeeds
		wantState bridgetest.State
		failures  int
	}{
		{"transient then success", []error{errors.New("procedure answered 503"), context.DeadlineExceeded}, bridgetest.Acked, 2},
		{"permanent", []error{bridge.Permanent(errors.New("procedure refused the case: 422"))}, bridgetest.Dead, 1},
		{"wrapped permanent", []error{fmt.Errorf("post: %w", bridge.Permanent(errors.New("400")))}, bridgetest.Dead, 1},
		{"no reference", []error{errNoReference}, bridgetest.Acked, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := bridgetest.NewSource()
			doc := casefiletest.Notice()
			rec := bridgetest.Seal(t, office, doc, bridgetest.SampleBlobs(doc, 256))
			src.Add(rec)
			var calls atomic.Int32
			conn := &fakeConn{fn: func(ctx context.Context, c *bridge.Case) (bridge.Receipt, error) {
				n := int(calls.Add(1))
				if n <= len(tt.errs) {
					if tt.errs[n-1] == errNoReference {
						return bridge.Receipt{Reference: "  ", Note: "thanks"}, nil
					}
					return bridge.Receipt{}, tt.errs[n-1]
				}
				return bridge.Receipt{Reference: "OK"}, nil
			}}
			start(t, src, office, conn, bridge.Options{})
			settle(t, src)
			e, _ := src.Entry(rec.Delivery.ID)
			if e.State != tt.wantState || e.Failures != tt.failures {
				t.Fatalf("record %v after %d failures (%s), want %v after %d", e.State, e.Failures, e.Reason, tt.wantState, tt.failures)
			}
			if tt.wantState == bridgetest.Dead && e.Reason != tt.errs[0].Error() {
				t.Errorf("reason %q, want the connector's %q", e.Reason, tt.errs[0])
			}
		})
	}
}

// TestDrain: when Run's context ends, the delivery in flight finishes and is
// acked before Run returns, and nothing new is leased.
func TestDrain(t *testing.T) {
	office := bridgetest.NewOffice(t, "office-a", "k1")
	src := bridgetest.NewSource()
	doc := casefiletest.Report()
	first := bridgetest.Seal(t, office, doc, bridgetest.SampleBlobs(doc, 256))
	src.Add(first)
	entered := make(chan struct{})
	release := make(chan struct{})
	conn := &fakeConn{fn: func(ctx context.Context, c *bridge.Case) (bridge.Receipt, error) {
		close(entered)
		<-release
		return bridge.Receipt{Reference: "R1"}, nil
	}}
	r, cancel, wait := startCancel(t, src, office, conn, bridge.Options{Concurrency: 1})
	<-entered
	second := bridgetest.Seal(t, office, doc, bridgetest.SampleBlobs(doc, 256))
	src.Add(second)

	// Cancel while the delivery is held, then let it finish: Run must
	// wait for it, and must not lease the second record.
	cancel()
	close(release)
	wait()

	if e, _ := src.Entry(first.Delivery.ID); e.State != bridgetest.Acked || e.Receipt.Reference != "R1" {
		t.Fatalf("the delivery in flight is %v, want acked with R1 when Run returns", e.State)
	}
	if e, _ := src.Entry(second.Delivery.ID); e.State != bridgetest.Pending {
		t.Fatalf("a record added during the delivery is %v, want pending (not leased during the drain)", e.State)
	}
	if s := r.Stats(); s.Acked != 1 || s.Abandoned != 0 {
		t.Errorf("stats %+v", s)
	}
}

// TestDrainTimeout: a delivery that does not finish within the drain is
// cancelled; the record keeps its lease and is delivered again later.
func TestDrainTimeout(t *testing.T) {
	office := bridgetest.NewOffice(t, "office-a", "k1")
	src := bridgetest.NewSource()
	doc := casefiletest.Report()
	rec := bridgetest.Seal(t, office, doc, bridgetest.SampleBlobs(doc, 256))
	src.Add(rec)
	entered := make(chan struct{})
	conn := &fakeConn{fn: func(ctx context.Context, c *bridge.Case) (bridge.Receipt, error) {
		close(entered)
		<-ctx.Done()
		return bridge.Receipt{}, ctx.Err()
	}}
	r, stop := start(t, src, office, conn, bridge.Options{DrainTimeout: 20 * time.Millisecond})
	<-entered
	stop()
	if e, _ := src.Entry(rec.Delivery.ID); e.State != bridgetest.Leased || e.Failures != 0 {
		t.Fatalf("record is %v with %d failures, want still leased", e.State, e.Failures)
	}
	if s := r.Stats(); s.Abandoned != 1 {
		t.Errorf("stats %+v, want one abandoned", s)
	}
}

func TestLeaseErrorsRetried(t *testing.T) {
	office := bridgetest.NewOffice(t, "office-a", "k1")
	src := bridgetest.NewSource()
	src.FailLeases(errors.New("connection refused"), errors.New("502 bad gateway"), errors.New("connection refused"))
	doc := casefiletest.Notice()
	rec := bridgetest.Seal(t, office, doc, bridgetest.SampleBlobs(doc, 256))
	src.Add(rec)
	reg := prometheus.NewRegistry()
	start(t, src, office, &fakeConn{}, bridge.Options{Registerer: reg})
	settle(t, src)
	if e, _ := src.Entry(rec.Delivery.ID); e.State != bridgetest.Acked {
		t.Fatalf("record is %v", e.State)
	}
	if got := metricValue(t, reg, "kogge_bridge_lease_errors_total", ""); got != 3 {
		t.Fatalf("kogge_bridge_lease_errors_total = %v, want 3", got)
	}
}

func TestConcurrencyBound(t *testing.T) {
	office := bridgetest.NewOffice(t, "office-a", "k1")
	src := bridgetest.NewSource()
	for range 12 {
		doc := casefiletest.Report()
		src.Add(bridgetest.Seal(t, office, doc, bridgetest.SampleBlobs(doc, 128)))
	}
	var cur, peak atomic.Int32
	conn := &fakeConn{fn: func(ctx context.Context, c *bridge.Case) (bridge.Receipt, error) {
		n := cur.Add(1)
		defer cur.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		return bridge.Receipt{Reference: "R"}, nil
	}}
	start(t, src, office, conn, bridge.Options{Concurrency: 3})
	settle(t, src)
	if p := peak.Load(); p > 3 {
		t.Fatalf("%d deliveries in flight at once, want at most 3", p)
	}
	if n := src.Count(bridgetest.Acked); n != 12 {
		t.Fatalf("%d acked, want 12", n)
	}
}

// TestLeaseLost: when the lease expires during a delivery and another lease
// takes the record, the ack reports lease lost and the runner counts it.
func TestLeaseLost(t *testing.T) {
	office := bridgetest.NewOffice(t, "office-a", "k1")
	src := bridgetest.NewSource()
	doc := casefiletest.Report()
	rec := bridgetest.Seal(t, office, doc, bridgetest.SampleBlobs(doc, 128))
	src.Add(rec)
	conn := &fakeConn{fn: func(ctx context.Context, c *bridge.Case) (bridge.Receipt, error) {
		src.TakeOver(c.ID, time.Hour)
		return bridge.Receipt{Reference: "R"}, nil
	}}
	r, stop := start(t, src, office, conn, bridge.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The runner counts the refused ack after the source refused it: wait
	// for the ack, then stop the runner, then read its counts.
	if err := src.WaitFor(ctx, func(s *bridgetest.Source) bool {
		e, _ := s.Entry(rec.Delivery.ID)
		return e.Acks == 1
	}); err != nil {
		t.Fatal(err)
	}
	stop()
	if n := r.Stats().LeaseLost; n != 1 {
		t.Errorf("%d deliveries counted as lease lost, want 1", n)
	}
	e, _ := src.Entry(rec.Delivery.ID)
	if e.State != bridgetest.Leased || e.Delivery.Attempt != 2 {
		t.Fatalf("record %v at attempt %d, want leased by attempt 2", e.State, e.Delivery.Attempt)
	}
}

// pollConn reports one status change per poll until told otherwise.
type pollConn struct {
	fakeConn
	changes chan bridge.StatusChange
}

func (p *pollConn) PollStatus(ctx context.Context, report func(bridge.StatusChange) error) error {
	for {
		select {
		case ch := <-p.changes:
			if err := report(ch); err != nil {
				return err
			}
		default:
			return nil
		}
	}
}

func TestStatusPoller(t *testing.T) {
	office := bridgetest.NewOffice(t, "office-a", "k1")
	src := bridgetest.NewSource()
	doc := casefiletest.Report()
	rec := bridgetest.Seal(t, office, doc, bridgetest.SampleBlobs(doc, 128))
	src.Add(rec)
	conn := &pollConn{changes: make(chan bridge.StatusChange, 2)}
	conn.changes <- bridge.StatusChange{ID: rec.Delivery.ID, State: protocol.InProgress, Reference: "311-1", Note: "crew assigned"}
	conn.changes <- bridge.StatusChange{ID: rec.Delivery.ID, State: protocol.Closed, Reference: "311-1", Note: "filled"}
	r, _ := start(t, src, office, conn, bridge.Options{PollInterval: 5 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := src.WaitFor(ctx, func(s *bridgetest.Source) bool { return len(s.Updates()) == 2 }); err != nil {
		t.Fatal(err)
	}
	want := []bridgetest.Update{
		{ID: rec.Delivery.ID, State: protocol.InProgress, Reference: "311-1", Note: "crew assigned"},
		{ID: rec.Delivery.ID, State: protocol.Closed, Reference: "311-1", Note: "filled"},
	}
	if got := src.Updates(); !reflect.DeepEqual(got, want) {
		t.Fatalf("updates %+v, want %+v", got, want)
	}
	if err := src.WaitFor(ctx, func(*bridgetest.Source) bool { return r.Stats().Updates == 2 }); err != nil {
		t.Fatal(err)
	}
}

func TestOptionsValidate(t *testing.T) {
	office := bridgetest.NewOffice(t, "office-a", "k1")
	tests := []struct {
		name string
		opts bridge.Options
		want string
	}{
		{"no office", bridge.Options{}, "office is not set"},
		{"concurrency", bridge.Options{Office: "a", Concurrency: -1}, "concurrency"},
		{"visibility", bridge.Options{Office: "a", Visibility: time.Millisecond}, "visibility"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := bridge.New(bridgetest.NewSource(), office.Keyring, &fakeConn{}, tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New = %v, want an error about %s", err, tt.want)
			}
		})
	}
	if _, err := bridge.New(nil, office.Keyring, &fakeConn{}, bridge.Options{Office: "a"}); err == nil {
		t.Fatal("New without a source succeeded")
	}
}

func TestPermanent(t *testing.T) {
	base := errors.New("422 unprocessable")
	err := fmt.Errorf("deliver: %w", bridge.Permanent(base))
	if !errors.Is(err, bridge.ErrPermanent) || !errors.Is(err, base) {
		t.Fatalf("%v does not wrap both ErrPermanent and its cause", err)
	}
	if err.Error() != "deliver: 422 unprocessable" {
		t.Fatalf("message %q", err)
	}
	if bridge.Permanent(nil) != nil {
		t.Fatal("Permanent(nil) is not nil")
	}
	if errors.Is(base, bridge.ErrPermanent) {
		t.Fatal("plain error is permanent")
	}
}
