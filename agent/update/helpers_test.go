package update

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/agent/command"
	"github.com/kogge-fleet/kogge/protocol/artifact"
)

// fakeServer is the server's device endpoint: it serves one artifact per
// id and keeps the reports. It can cut a download after some bytes, stall
// one, and refuse reports for a while.
type fakeServer struct {
	t   *testing.T
	srv *httptest.Server

	mu        sync.Mutex
	manifests map[uuid.UUID][]byte
	binaries  map[uuid.UUID][]byte
	reports   []artifact.Report
	ranges    []string // the Range header of every binary request
	served    int64    // binary bytes written
	cutAt     int64    // cut the next full download after this many bytes
	stall     chan struct{}
	refuse    int // answer this many reports with 503
	notify    chan struct{}
}

func newFakeServer(t *testing.T) *fakeServer {
	f := &fakeServer{t: t, manifests: map[uuid.UUID][]byte{}, binaries: map[uuid.UUID][]byte{}, notify: make(chan struct{}, 1)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /device/v1/artifacts/{id}/manifest", func(w http.ResponseWriter, r *http.Request) {
		id, _ := uuid.Parse(r.PathValue("id"))
		f.mu.Lock()
		b, ok := f.manifests[id]
		f.mu.Unlock()
		if !ok {
			http.Error(w, "no such artifact", http.StatusNotFound)
			return
		}
		w.Write(b)
	})
	mux.HandleFunc("GET /device/v1/artifacts/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, _ := uuid.Parse(r.PathValue("id"))
		f.mu.Lock()
		b, ok := f.binaries[id]
		f.ranges = append(f.ranges, r.Header.Get("Range"))
		cut := f.cutAt
		if r.Header.Get("Range") == "" {
			f.cutAt = 0
		} else {
			cut = 0
		}
		stall := f.stall
		f.mu.Unlock()
		if !ok {
			http.Error(w, "no such artifact", http.StatusNotFound)
			return
		}
		if stall != nil {
			select {
			case <-stall:
			case <-r.Context().Done():
				return
			}
		}
		cw := &countingWriter{ResponseWriter: w, f: f, cut: cut}
		cw.Header().Set("ETag", artifact.ETag(sha(b)))
		http.ServeContent(cw, r, "", time.Time{}, bytes.NewReader(b))
	})
	mux.HandleFunc("POST /device/v1/update-reports", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rep, err := artifact.DecodeReport(b)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		if f.refuse > 0 {
			f.refuse--
			f.mu.Unlock()
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		// Reports are sent at least once: the server keeps each sequence
		// number once, as the real one does.
		if !slices.ContainsFunc(f.reports, func(r artifact.Report) bool { return r.Rollout == rep.Rollout && r.Seq == rep.Seq }) {
			f.reports = append(f.reports, rep)
		}
		f.mu.Unlock()
		select {
		case f.notify <- struct{}{}:
		default:
		}
		w.WriteHeader(http.StatusNoContent)
	})
	f.srv = httptest.NewTLSServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func sha(b []byte) string {
	m, err := artifact.Describe(artifact.Manifest{Name: "x", Version: "1", Apps: []string{"x"}, Platform: "a/b", Created: time.Unix(1, 0)}, bytes.NewReader(b))
	if err != nil {
		panic(err)
	}
	return m.SHA256
}

// countingWriter counts the binary bytes and cuts the response after cut
// bytes (0: never).
type countingWriter struct {
	http.ResponseWriter
	f       *fakeServer
	cut     int64
	written int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.cut > 0 && c.written+int64(len(p)) > c.cut {
		p = p[:c.cut-c.written]
		n, _ := c.ResponseWriter.Write(p)
		c.count(n)
		c.ResponseWriter.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // closes the connection mid-body
	}
	n, err := c.ResponseWriter.Write(p)
	c.count(n)
	return n, err
}

func (c *countingWriter) count(n int) {
	c.written += int64(n)
	c.f.mu.Lock()
	c.f.served += int64(n)
	c.f.mu.Unlock()
}

// publish makes an artifact of binary signed by key and serves it.
func (f *fakeServer) publish(key ed25519.PrivateKey, version, platform string, binary []byte) uuid.UUID {
	f.t.Helper()
	m, err := artifact.Describe(artifact.Manifest{Name: "kogge-kiosk", Version: version, Apps: []string{"kiosk"}, Platform: platform,
		Created: time.Now()}, bytes.NewReader(binary))
	if err != nil {
		f.t.Fatal(err)
	}
	signed, err := artifact.Sign(m, key)
	if err != nil {
		f.t.Fatal(err)
	}
	id := uuid.New()
	f.mu.Lock()
	f.manifests[id], f.binaries[id] = signed, binary
	f.mu.Unlock()
	return id
}

func (f *fakeServer) states(rollout uuid.UUID) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, r := range f.reports {
		if r.Rollout == rollout && !(r.State == artifact.ReportDownloading && r.Progress > 0) {
			out = append(out, r.State)
		}
	}
	return out
}

func (f *fakeServer) last(rollout uuid.UUID) (artifact.Report, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := len(f.reports) - 1; i >= 0; i-- {
		if f.reports[i].Rollout == rollout {
			return f.reports[i], true
		}
	}
	return artifact.Report{}, false
}

// waitState waits until the last report of rollout is state.
func (f *fakeServer) waitState(rollout uuid.UUID, state string) artifact.Report {
	f.t.Helper()
	var last artifact.Report
	waitFor(f.t, "report "+state, func() bool {
		var ok bool
		last, ok = f.last(rollout)
		return ok && last.State == state
	})
	return last
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond) // polling a condition with a deadline
	}
}

// fakeHost stands in for the agent.
type fakeHost struct {
	mu         sync.Mutex
	handlers   map[string]command.Handler
	connected  atomic.Bool
	heartbeats atomic.Uint64
	unsent     atomic.Int64
}

func (h *fakeHost) host() Host {
	return Host{
		Register: func(name string, fn command.Handler) error {
			h.mu.Lock()
			defer h.mu.Unlock()
			if h.handlers == nil {
				h.handlers = map[string]command.Handler{}
			}
			h.handlers[name] = fn
			return nil
		},
		Connected:  h.connected.Load,
		Heartbeats: h.heartbeats.Load,
		Unsent:     func(context.Context) (int, error) { return int(h.unsent.Load()), nil },
	}
}

func (h *fakeHost) run(name string, args map[string]string) (string, error) {
	h.mu.Lock()
	fn := h.handlers[name]
	h.mu.Unlock()
	if fn == nil {
		return "", fmt.Errorf("no handler for %s", name)
	}
	out, err := fn(context.Background(), args)
	return string(out), err
}

// device runs incarnations of an updater over one directory, as a device
// that restarts does.
type device struct {
	t        *testing.T
	dir      string
	opts     Options
	factory  string
	selfTest atomic.Pointer[error]

	host     *fakeHost
	u        *Updater
	slot     Slot
	cancel   context.CancelFunc
	done     chan error
	restarts chan Slot
}

func newDevice(t *testing.T, srv *fakeServer, keys artifact.Keyring, edit func(*Options)) *device {
	d := &device{t: t, dir: t.TempDir(), factory: "1.0.0", restarts: make(chan Slot, 4)}
	d.opts = Options{
		Server: srv.srv.URL, HTTPClient: srv.srv.Client(), Keys: keys, App: "kiosk", Platform: "linux/amd64",
		HealthWindow: time.Second, HealthPoll: 10 * time.Millisecond, RestartDelay: time.Millisecond,
		RetryBase: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond, UnsentPoll: 10 * time.Millisecond,
		DiskFree: func(string) (int64, error) { return 1 << 40, nil }, DiskReserve: 1,
		Logger: slog.New(slog.DiscardHandler),
		Restarter: RestartFunc(func(_ context.Context, s Slot) error {
			d.restarts <- s
			return nil
		}),
		SelfTest: func(context.Context) error {
			if p := d.selfTest.Load(); p != nil {
				return *p
			}
			return nil
		},
	}
	if edit != nil {
		edit(&d.opts)
	}
	t.Cleanup(d.stop)
	return d
}

// start boots and runs one incarnation, connected and beating.
func (d *device) start() {
	d.t.Helper()
	slot, err := Boot(d.dir, d.factory, BootOptions{})
	if err != nil {
		d.t.Fatal(err)
	}
	d.slot = slot
	u, err := New(d.dir, d.opts)
	if err != nil {
		d.t.Fatal(err)
	}
	d.host = &fakeHost{}
	if err := u.Bind(d.host.host()); err != nil {
		d.t.Fatal(err)
	}
	d.host.connected.Store(true)
	d.host.heartbeats.Store(1)
	ctx, cancel := context.WithCancel(context.Background())
	d.u, d.cancel, d.done = u, cancel, make(chan error, 1)
	go func() { d.done <- u.Run(ctx) }()
}

func (d *device) stop() {
	if d.cancel == nil {
		return
	}
	d.cancel()
	if err := <-d.done; err != nil {
		d.t.Errorf("updater: %v", err)
	}
	d.cancel = nil
}

// restarted waits for a restart and starts the next incarnation.
func (d *device) restarted() Slot {
	d.t.Helper()
	select {
	case s := <-d.restarts:
		d.stop()
		d.start()
		return s
	case <-time.After(20 * time.Second):
		d.t.Fatal("no restart")
	}
	return Slot{}
}

func (d *device) update(rollout, art uuid.UUID, version string) string {
	d.t.Helper()
	out, err := d.host.run(artifact.CommandUpdate, map[string]string{
		artifact.ArgRollout: rollout.String(), artifact.ArgArtifact: art.String(), artifact.ArgVersion: version,
	})
	if err != nil {
		d.t.Fatal(err)
	}
	return out
}

func (d *device) failSelfTest(err error) {
	if err == nil {
		d.selfTest.Store(nil)
		return
	}
	d.selfTest.Store(&err)
}

func (d *device) stateFile() state {
	d.t.Helper()
	s, err := loadState(d.dir, "")
	if err != nil {
		d.t.Fatal(err)
	}
	return *s
}

func isRejected(err error) bool { return errors.Is(err, command.ErrRejected) }
