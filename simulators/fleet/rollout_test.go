package fleet

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	fleetserver "github.com/kogge-fleet/kogge/fleet-server"
	"github.com/kogge-fleet/kogge/fleet-server/api/client"
)

// rollTimeout bounds one rollout of a test. A wave takes a few seconds on
// an idle machine; a loaded one (every package's tests at once, under the
// race detector) needs far more.
const rollTimeout = 3 * time.Minute

// TestRolloutHundredDevices rolls a good version out to 100 devices in
// waves, then a bad one, which stops in its first wave: its devices fail
// the health check and go back by themselves, the others never get it.
func TestRolloutHundredDevices(t *testing.T) {
	_, logger := newLogSink(t)
	ctx := context.Background()
	start := time.Now()
	s, err := StartRolloutSim(ctx, RolloutSimConfig{Dir: t.TempDir(), Devices: 100, Logger: logger,
		Update: UpdateOptions{HealthWindow: 10 * time.Second, EnrollConcurrency: 16}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	t.Logf("100 devices enrolled in %v, online %v later (%v with the server's start)", s.Enrolled.Round(time.Millisecond),
		s.Online.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))

	good, err := s.Publish(ctx, "1.1.0", Behaviour{}, 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.Roll(ctx, client.RolloutRequest{Artifact: good.ID, Target: client.RolloutTarget{Group: "mitte"},
		Waves: []string{"1", "5%", "25%", "100%"}, Soak: "300ms", Window: "always"}, rollTimeout, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.State != "succeeded" || r.Counts["succeeded"] != 100 {
		t.Fatalf("good rollout: %s, %v, %q", r.State, r.Counts, r.Reason)
	}
	if v := s.Fleet.Versions(); v["1.1.0"] != 100 {
		t.Fatalf("devices run %v", v)
	}
	timings := WaveTimings(r)
	if len(timings) != 4 || timings[0].Devices != 1 || timings[1].Devices != 4 || timings[2].Devices != 20 || timings[3].Devices != 75 {
		t.Fatalf("waves: %+v", timings)
	}
	for i, w := range timings {
		t.Logf("good version, wave %d: %3d devices, started at %v, ready after %v, done after %v", w.Wave, w.Devices,
			w.Start.Round(time.Millisecond), w.Ready.Round(time.Millisecond), w.Done.Round(time.Millisecond))
		if w.Ready <= 0 || w.Done < w.Ready {
			t.Errorf("wave %d timing: %+v", w.Wave, w)
		}
		if i > 0 && w.Start < timings[i-1].Start+timings[i-1].Done {
			t.Errorf("wave %d started before wave %d was done", w.Wave, w.Wave-1)
		}
	}
	for _, d := range s.Fleet.Devices() {
		if h := d.History(); len(h) != 2 || h[0] != "1.0.0" || h[1] != "1.1.0" {
			t.Fatalf("%s started %v", d.ID, h)
		}
	}

	// A bad version: its self-test fails on every device.
	bad, err := s.Publish(ctx, "1.2.0", Behaviour{FailSelfTest: true}, 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	r, err = s.Roll(ctx, client.RolloutRequest{Artifact: bad.ID, Target: client.RolloutTarget{Group: "mitte"},
		Waves: []string{"5%", "25%", "100%"}, Soak: "300ms", Window: "always"}, rollTimeout, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.State != "aborted" || r.Wave != 1 || !strings.Contains(r.Reason, "error threshold") {
		t.Fatalf("bad rollout: %s in wave %d: %q", r.State, r.Wave, r.Reason)
	}
	if r.Counts["cancelled"] < 95 || r.Counts["rolled-back"]+r.Counts["cancelled"]+r.Counts["failed"] != 100 {
		t.Fatalf("bad rollout counts: %v", r.Counts)
	}
	t.Logf("bad version: aborted %v after it started: %q; %v", r.FinishedAt.Sub(r.CreatedAt).Round(time.Millisecond), r.Reason, r.Counts)
	devs, err := s.API.RolloutDevices(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	tried := 0
	for _, d := range devs {
		if d.Wave != 1 {
			if d.State != "cancelled" {
				t.Errorf("%s of wave %d: %s", d.Device, d.Wave, d.State)
			}
			continue
		}
		if d.State == "rolled-back" {
			tried++
		}
	}
	if tried == 0 {
		t.Error("no device of the first wave tried the bad version")
	}
	// Every device runs the good version again, also those that tried the
	// bad one.
	waitFor(t, "every device back on 1.1.0", 30*time.Second, func() (bool, string) {
		v := s.Fleet.Versions()
		return v["1.1.0"] == 100, fmt.Sprint(v)
	})
	for _, d := range s.Fleet.Devices() {
		h := d.History()
		if len(h) > 2 && (h[len(h)-2] != "1.2.0" || h[len(h)-1] != "1.1.0") {
			t.Errorf("%s started %v", d.ID, h)
		}
	}
}

// TestRolloutResumesAndRefusesTampering cuts a device's download at half
// the binary (it resumes from there), gives it a version that crashes at
// every start (it goes back after three), and makes the server serve a
// tampered binary to another (it refuses it and keeps its version).
func TestRolloutResumesAndRefusesTampering(t *testing.T) {
	_, logger := newLogSink(t)
	ctx := context.Background()
	const size = 2 << 20
	var cut *cutProxy
	s, err := StartRolloutSim(ctx, RolloutSimConfig{Dir: t.TempDir(), Devices: 2, Logger: logger,
		Update: UpdateOptions{HealthWindow: 10 * time.Second, UpdateServer: func(device string) string {
			if strings.HasSuffix(device, "-001") {
				return "https://" + cut.addr()
			}
			return ""
		}},
		Server: func(c *fleetserver.Config) {
			var err error
			if cut, err = newCutProxy(c.Enroll.Listen, size/2); err != nil {
				t.Fatal(err)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		cut.close()
	})
	devA, devB := s.Fleet.Devices()[0], s.Fleet.Devices()[1]

	// A tampered upload is refused by the server.
	bin := SimBinary("1.1.0", Behaviour{}, size)
	signed, err := SignSimBinary(s.Key, "1.1.0", "kiosk", bin)
	if err != nil {
		t.Fatal(err)
	}
	tampered := append([]byte(nil), bin...)
	tampered[size-10] ^= 1
	if _, err := s.API.UploadArtifact(ctx, signed, strings.NewReader(string(tampered))); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("tampered upload: %v", err)
	}

	// Device A downloads through a link that breaks at half the binary.
	good, err := s.Publish(ctx, "1.1.0", Behaviour{}, size)
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.Roll(ctx, client.RolloutRequest{Artifact: good.ID, Target: client.RolloutTarget{Devices: []string{devA.ID}},
		Waves: []string{"100%"}, Soak: "100ms", Window: "always"}, rollTimeout, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.State != "succeeded" || devA.Version() != "1.1.0" {
		t.Fatalf("rollout through the cut link: %s %v; device runs %q", r.State, r.Counts, devA.Version())
	}
	conns, cuts, down := cut.stats()
	t.Logf("download over the cut link: %d connections, %d cut, %d bytes down for a binary of %d", conns, cuts, down, size)
	if cuts != 1 {
		t.Errorf("%d connections were cut, want 1", cuts)
	}
	if down > size*13/10 {
		t.Errorf("%d bytes went down for a binary of %d: the download started over instead of resuming", down, size)
	}

	// A version that crashes at every start: after three starts the
	// device goes back to 1.1.0 by itself.
	crashing, err := s.Publish(ctx, "1.2.0", Behaviour{Crash: true}, 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	r, err = s.Roll(ctx, client.RolloutRequest{Artifact: crashing.ID, Target: client.RolloutTarget{Devices: []string{devA.ID}},
		Waves: []string{"100%"}, Soak: "100ms", Window: "always"}, rollTimeout, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.State != "aborted" || r.Counts["rolled-back"] != 1 || !strings.Contains(r.Reason, "crash loop") {
		t.Fatalf("crashing version: %s %v %q", r.State, r.Counts, r.Reason)
	}
	waitFor(t, "device A back on 1.1.0", 20*time.Second, func() (bool, string) { return devA.Version() == "1.1.0", devA.Version() })
	if _, crashes := devA.Starts(); crashes != 3 {
		t.Errorf("the crashing version ran %d times, want 3", crashes)
	}

	// The server's copy of an artifact is changed behind its back: device
	// B refuses it and keeps running what it runs.
	other, err := s.Publish(ctx, "1.3.0", Behaviour{}, size)
	if err != nil {
		t.Fatal(err)
	}
	db := s.Server.App().Store()
	if err := db.Tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE artifact_chunks SET data = $1 WHERE artifact_id = $2 AND n = 1`,
			make([]byte, 1<<20), other.ID.String())
		if n, _ := res.RowsAffected(); err == nil && n != 1 {
			return errors.New("no chunk changed")
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	r, err = s.Roll(ctx, client.RolloutRequest{Artifact: other.ID, Target: client.RolloutTarget{Devices: []string{devB.ID}},
		Waves: []string{"100%"}, Soak: "100ms", Window: "always"}, rollTimeout, nil)
	if err != nil {
		t.Fatal(err)
	}
	devs, err := s.API.RolloutDevices(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if r.State != "aborted" || len(devs) != 1 || devs[0].State != "failed" || !strings.Contains(devs[0].Reason, "does not match its manifest") {
		t.Fatalf("tampered rollout: %s %v %+v", r.State, r.Counts, devs)
	}
	if v := devB.Version(); v != "1.0.0" {
		t.Errorf("device B runs %q after refusing the tampered artifact", v)
	}
}

// cutProxy passes TCP connections to a target and cuts the first one
// that carries more than cutAt bytes towards the client.
type cutProxy struct {
	ln     net.Listener
	target string
	cutAt  int64

	mu    sync.Mutex
	conns int
	cuts  int
	down  atomic.Int64
	once  atomic.Bool
	wg    sync.WaitGroup
	live  []net.Conn
}

func newCutProxy(target string, cutAt int64) (*cutProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &cutProxy{ln: ln, target: target, cutAt: cutAt}
	p.wg.Go(p.serve)
	return p, nil
}

func (p *cutProxy) addr() string { return p.ln.Addr().String() }

func (p *cutProxy) stats() (conns, cuts int, down int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.conns, p.cuts, p.down.Load()
}

func (p *cutProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns++
		p.live = append(p.live, c, up)
		p.mu.Unlock()
		p.wg.Go(func() { io.Copy(up, c); up.Close() })
		p.wg.Go(func() {
			defer c.Close()
			buf := make([]byte, 16<<10)
			var n int64
			cutThis := !p.once.Load()
			for {
				k, err := up.Read(buf)
				if k > 0 {
					if cutThis && n+int64(k) > p.cutAt && p.once.CompareAndSwap(false, true) {
						k = int(p.cutAt - n)
						c.Write(buf[:k])
						p.down.Add(int64(k))
						p.mu.Lock()
						p.cuts++
						p.mu.Unlock()
						up.Close()
						return
					}
					if _, werr := c.Write(buf[:k]); werr != nil {
						return
					}
					n += int64(k)
					p.down.Add(int64(k))
				}
				if err != nil {
					return
				}
			}
		})
	}
}

func (p *cutProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.live {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}
