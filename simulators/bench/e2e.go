package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/agent/enroll"
	"github.com/kogge-fleet/kogge/simulators/fleet"
)

// endToEnd: capture → office receipt latency at 100 and 1,000 records/s.
// It needs the delivery side (bridges and procedure simulators); without
// it the scenario is skipped with a note.
func (r *runner) endToEnd(ctx context.Context, dir string) (Result, error) {
	res := Result{Unit: "ms p99", Target: "p99 <= 1000 ms at 100 records/s", StartedAt: time.Now().UTC()}
	if r.cfg.Delivery == nil {
		res.Skipped = true
		res.Note = "needs delivery into the offices (bridges and procedure simulators), not configured"
		return res, nil
	}
	devices := r.n(30, 3)
	phases := []struct {
		rate float64
		dur  time.Duration
	}{{100, 30 * time.Second}, {1000, 10 * time.Second}}
	if r.cfg.Quick {
		phases[0].dur, phases[1].dur = time.Second, 200*time.Millisecond
	}
	res.Params = map[string]any{"devices": devices, "records": "small, no blobs; kiosk applications, notices and road reports in turn",
		"procedures": "idpass and owi drop directories, webhook, Open311 (in-process bridges)"}

	offices, err := fleet.GenerateOffices(fleet.OfficesFor(e2eSpecs(devices))...)
	if err != nil {
		return res, err
	}
	del, err := r.cfg.Delivery(ctx, filepath.Join(dir, "procedures"), offices, r.log)
	if err != nil {
		return res, err
	}
	defer del.Close()
	srv, err := fleet.StartServer(ctx, fleet.ServerConfig{DataDir: filepath.Join(dir, "server"), Keepalive: 30 * time.Second, Logger: r.log}, del.Hook())
	if err != nil {
		return res, err
	}
	defer srv.Stop()
	specs := e2eSpecs(devices)
	ids := make([]*enroll.Identity, len(specs))
	for _, d := range []string{"mitte", "nord"} {
		if _, err := srv.API().CreateGroup(ctx, d, "benchmark "+d); err != nil {
			return res, err
		}
		if _, err := srv.API().SetGroupTwin(ctx, d, offices.Twin()); err != nil {
			return res, err
		}
	}
	for i, s := range specs {
		if ids[i], err = fleet.EnrollDevice(ctx, srv.API(), srv.EnrollURL(), filepath.Join(dir, "devices", s.ID), s.ID, s.District,
			enroll.Inventory{Model: "bench", Serial: s.ID, Software: "bench"}); err != nil {
			return res, err
		}
	}
	agents := make([]*benchAgent, len(specs))
	defer func() { stopAll(agents) }()
	for i, id := range ids {
		if agents[i], err = startAgent(id, filepath.Join(dir, "devices", id.DeviceID, "agent.db"), "ssl://"+srv.BrokerAddr(), r.log); err != nil {
			return res, err
		}
	}
	// Every device has its offices' keys before the clock starts.
	if err := r.waitUntil(ctx, "office keys", time.Minute, func() (bool, string) {
		n := 0
		for _, a := range agents {
			if len(a.ag.Config().Offices) > 0 {
				n++
			}
		}
		return n == len(agents), fmt.Sprintf("%d of %d devices have the keys", n, len(agents))
	}); err != nil {
		return res, err
	}

	var notes []string
	for pi, ph := range phases {
		captured, achieved, err := r.capturePaced(ctx, specs, agents, ph.rate, ph.dur, uint64(pi))
		if err != nil {
			return res, err
		}
		r.progressf("end-to-end at %.0f records/s: %d captured (%.0f/s achieved); waiting for the procedures", ph.rate, len(captured), achieved)
		wait := max(time.Minute, 3*ph.dur)
		if !r.cfg.Quick {
			wait = 3 * time.Minute
		}
		lat, missing := r.latencies(ctx, del, captured, wait)
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		// What did not arrive in time counts as infinitely late.
		for range missing {
			lat = append(lat, time.Duration(math.MaxInt64))
		}
		p50, p99 := percentile(lat, 0.50), percentile(lat, 0.99)
		if missing > 0 {
			res.Params[fmt.Sprintf("at_%.0f_undelivered_after_%v", ph.rate, wait)] = missing
		}
		key := fmt.Sprintf("at_%.0f", ph.rate)
		res.Params[key+"_p50_ms"] = ms(p50)
		res.Params[key+"_p99_ms"] = ms(p99)
		res.Params[key+"_records"] = len(captured)
		res.Params[key+"_achieved_per_s"] = math.Round(achieved)
		if pi == 0 {
			res.Value = ms(min(p99, wait))
			res.Pass = pass(p99 <= time.Second)
			notes = append(notes, fmt.Sprintf("p50 %s", msText(p50, wait)))
		} else {
			notes = append(notes, fmt.Sprintf("at %.0f/s (%.0f/s captured): p50 %s, p99 %s", ph.rate, achieved, msText(p50, wait), msText(p99, wait)))
		}
		if missing > 0 {
			notes = append(notes, fmt.Sprintf("%d of %d not delivered within %v", missing, len(captured), wait))
		}
	}
	res.Note = notes[0]
	for _, n := range notes[1:] {
		res.Note += "; " + n
	}
	return res, nil
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/float64(time.Millisecond)*10) / 10 }

// msText renders a latency, or "> wait" for one that never came.
func msText(d, wait time.Duration) string {
	if d > wait {
		return "> " + wait.String()
	}
	return fmt.Sprintf("%.0f ms", ms(d))
}

// e2eSpecs are the end-to-end devices: kiosks, wardens and crews in turn,
// in two districts.
func e2eSpecs(n int) []fleet.DeviceSpec {
	roles := fleet.Roles()
	specs := make([]fleet.DeviceSpec, n)
	for i := range specs {
		role := roles[i%len(roles)]
		d := []string{"mitte", "nord"}[i/len(roles)%2]
		specs[i] = fleet.DeviceSpec{ID: fmt.Sprintf("bench-e-%s-%03d", role, i), Role: role, District: d}
	}
	return specs
}

// capturePaced makes rate captures per second over all devices for dur,
// each device at its share on a fixed schedule, and returns when each
// record was captured and the rate achieved.
func (r *runner) capturePaced(ctx context.Context, specs []fleet.DeviceSpec, agents []*benchAgent, rate float64, dur time.Duration, phase uint64) (map[uuid.UUID]time.Time, float64, error) {
	var (
		mu       sync.Mutex
		captured = map[uuid.UUID]time.Time{}
		errs     []error
		wg       sync.WaitGroup
	)
	interval := time.Duration(float64(len(agents)) / rate * float64(time.Second))
	start := time.Now()
	end := start.Add(dur)
	for i, a := range agents {
		src := fleet.NewCaptures(specs[i].Role, specs[i].ID, specs[i].District, uint64(i)+phase<<32, 0)
		// Devices start spread over one interval, not all at once.
		first := start.Add(interval * time.Duration(i) / time.Duration(len(agents)))
		wg.Go(func() {
			for at := first; at.Before(end); at = at.Add(interval) {
				if !sleepUntil(ctx, at) {
					return
				}
				c, err := src.Next()
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
				t0 := time.Now()
				rec, err := a.ag.Capture(ctx, c)
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
				mu.Lock()
				captured[rec.ID] = t0
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return captured, float64(len(captured)) / dur.Seconds(), errors.Join(append(errs, ctx.Err())...)
}

func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-tm.C:
		return true
	}
}

// latencies waits until the procedures have every captured record, or
// timeout, and returns capture → procedure receipt of those that arrived
// and how many did not.
func (r *runner) latencies(ctx context.Context, del fleet.Delivery, captured map[uuid.UUID]time.Time, timeout time.Duration) ([]time.Duration, int) {
	var out []time.Duration
	r.waitUntil(ctx, "deliveries", timeout, func() (bool, string) {
		out = out[:0]
		for _, d := range del.Deliveries() {
			if t0, ok := captured[d.Record]; ok && !d.Duplicate {
				out = append(out, d.At.Sub(t0))
			}
		}
		return len(out) >= len(captured), fmt.Sprintf("%d of %d delivered", len(out), len(captured))
	})
	return out, len(captured) - len(out)
}

// percentile returns the p-quantile (nearest rank) of ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(p*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}
