package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kogge-fleet/kogge/agent/enroll"
	agentmqtt "github.com/kogge-fleet/kogge/agent/mqtt"
)

// connections: many idle devices hold an mTLS connection to a fleet server
// process; its resident memory per device.
func (r *runner) connections(ctx context.Context, dir string) (Result, error) {
	n := r.n(10_000, 50)
	res := Result{Unit: "KiB/device", Target: ">= 10000 devices at <= 30 KiB each", StartedAt: time.Now().UTC(),
		Params: map[string]any{"devices": n, "transport": "mTLS (agent/mqtt)", "keepalive_s": 30}}
	limit, err := raiseFileLimit()
	if err != nil {
		return res, fmt.Errorf("raise the open-files limit: %w", err)
	}
	res.Params["open_files_limit"] = limit
	if need := uint64(n) + 256; limit < need {
		return res, fmt.Errorf("the open-files limit is %d, %d devices need %d: raise it (ulimit -n)", limit, n, need)
	}
	srv, err := r.startChildServer(ctx, dir)
	if err != nil {
		return res, err
	}
	defer srv.stop()

	ids, err := r.enrollAll(ctx, srv.api, srv.enrollURL, filepath.Join(dir, "devices"), "c", "idle", n, 16)
	if err != nil {
		return res, err
	}
	settle := func() error {
		// Let the server finish what the last step started (TLS
		// handshakes, presence and twin writes) before reading its memory.
		d := 5 * time.Second
		if r.cfg.Quick {
			d = time.Second
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
			return nil
		}
	}
	if err := settle(); err != nil {
		return res, err
	}
	before, err := srv.rssKiB()
	if err != nil {
		return res, err
	}
	mBefore := srv.goMetrics(ctx)
	r.progressf("server process RSS with %d enrolled devices, none connected: %d KiB", n, before)

	trs, stop, err := r.connectIdle(ctx, ids, "ssl://"+srv.broker)
	defer stop()
	if err != nil {
		return res, err
	}
	if err := r.waitUntil(ctx, "connect", max(2*time.Minute, time.Duration(n)*20*time.Millisecond), func() (bool, string) {
		c := 0
		for _, t := range trs {
			if t.Stats().Connected {
				c++
			}
		}
		return c == n, fmt.Sprintf("%d of %d connected", c, n)
	}); err != nil {
		return res, err
	}
	if err := settle(); err != nil {
		return res, err
	}
	after, err := srv.rssKiB()
	if err != nil {
		return res, err
	}
	mAfter := srv.goMetrics(ctx)
	for _, m := range []string{"go_memstats_heap_inuse_bytes", "go_memstats_stack_inuse_bytes", "go_goroutines"} {
		b, okb := mBefore[m]
		a, oka := mAfter[m]
		if okb && oka {
			per := (a - b) / float64(n)
			if strings.HasSuffix(m, "_bytes") {
				res.Params[strings.TrimPrefix(strings.TrimSuffix(m, "_bytes"), "go_memstats_")+"_kib_per_device"] = math.Round(per/1024*10) / 10
			} else {
				res.Params["goroutines_per_device"] = math.Round(per*10) / 10
			}
		}
	}
	connected := 0
	for _, t := range trs {
		if t.Stats().Connected {
			connected++
		}
	}
	if connected != n {
		return res, fmt.Errorf("%d of %d devices stayed connected", connected, n)
	}
	res.Value = float64(after-before) / float64(n)
	res.Params["rss_before_kib"] = before
	res.Params["rss_after_kib"] = after
	res.Pass = pass(n >= 10_000 && res.Value <= 30)
	if n < 10_000 {
		res.Note = fmt.Sprintf("only %d devices: the target needs 10000", n)
	}
	return res, nil
}

// connectIdle runs a device connection (agent/mqtt, as the agent uses it)
// for every identity; stop ends them all.
func (r *runner) connectIdle(ctx context.Context, ids []*enroll.Identity, broker string) ([]*agentmqtt.Transport, func(), error) {
	runCtx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	stop := func() {
		cancel()
		wg.Wait()
	}
	trs := make([]*agentmqtt.Transport, 0, len(ids))
	var started atomic.Int64
	stopProgress := r.every(5*time.Second, func() { r.progressf("started %d of %d device connections", started.Load(), len(ids)) })
	defer stopProgress()
	for i, id := range ids {
		tr, err := agentmqtt.New(agentmqtt.Config{Broker: broker, Device: id.DeviceID, TLS: id.TLSConfig(), Software: "bench"},
			agentmqtt.Options{KeepAlive: 30 * time.Second, MinBackoff: time.Second, MaxBackoff: 10 * time.Second, Logger: r.log})
		if err != nil {
			return trs, stop, err
		}
		trs = append(trs, tr)
		wg.Go(func() {
			if err := tr.Run(runCtx); err != nil {
				r.log.Warn("device connection ended", "device", id.DeviceID, "err", err)
			}
		})
		// Nobody reads the device's messages (the twin, commands): drain
		// them.
		wg.Go(func() {
			for {
				select {
				case <-runCtx.Done():
					return
				case <-tr.Incoming():
				}
			}
		})
		started.Add(1)
		// Connect in waves, as a fleet does after an outage, not all at
		// the same instant: at most 200 handshakes in flight.
		if i%200 == 199 {
			if err := r.waitUntil(ctx, "connect", time.Minute, func() (bool, string) {
				c := 0
				for _, t := range trs[i-199:] {
					if t.Stats().Connected {
						c++
					}
				}
				return c >= 180, fmt.Sprintf("%d of the last 200 connected", c)
			}); err != nil {
				return trs, stop, errors.Join(err, ctx.Err())
			}
		}
	}
	return trs, stop, nil
}
