package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// capturers is the number of concurrent capturers the target names.
const capturers = 64

// smallCapture is a capture with a sealed body of about 1 KiB and no blobs.
func smallCapture(r *rand.Rand) Capture {
	return Capture{
		Kind:   "enforcement.notice",
		Office: "ordnungsamt",
		KeyID:  "office-key-1",
		Meta:   map[string]string{"tatbestand": "112402", "district": "mitte"},
		Sealed: randBytes(r, 1024),
	}
}

// saveConcurrently saves total captures from `workers` goroutines and
// returns the wall time. It fails b on any error.
func saveConcurrently(b *testing.B, s *Store, workers, total int) time.Duration {
	b.Helper()
	c := smallCapture(rand.New(rand.NewPCG(1, 2)))
	var next atomic.Int64
	var wg sync.WaitGroup
	ctx := context.Background()
	start := time.Now()
	for range workers {
		wg.Go(func() {
			for next.Add(1) <= int64(total) {
				if _, err := s.Save(ctx, c); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return time.Since(start)
}

func benchCapture(b *testing.B, noGroup bool) {
	s := openAt(b, testPath(b), Options{NoGroupCommit: noGroup})
	b.ResetTimer()
	d := saveConcurrently(b, s, capturers, b.N)
	b.ReportMetric(float64(b.N)/d.Seconds(), "captures/s")
}

// BenchmarkCaptureGroupCommit: durable captures from 64 concurrent
// capturers that share transactions and fsyncs.
func BenchmarkCaptureGroupCommit(b *testing.B) { benchCapture(b, false) }

// BenchmarkCaptureFsyncEach: the same with one transaction and fsync per
// capture, the baseline.
func BenchmarkCaptureFsyncEach(b *testing.B) { benchCapture(b, true) }

// BenchmarkCommitRatio measures both in the same run and reports the
// captures per second of each and their ratio (the target: ≥ 10 at
// 64 concurrent capturers). The two stores live in the same directory; the
// runs alternate in rounds (64×10 fsync-each, then 64×100 grouped, five
// times) and each figure is the median of its rounds, so that a burst of
// load on a shared machine skews one round rather than the result. Run it
// with -benchtime 1x.
func BenchmarkCommitRatio(b *testing.B) {
	const rounds, eachCount, groupCount = 5, capturers * 10, capturers * 100
	var eachRates, groupRates, ratios []float64
	for i := range b.N {
		dir := b.TempDir()
		each := openAt(b, fmt.Sprintf("%s/each-%d.db", dir, i), Options{NoGroupCommit: true})
		group := openAt(b, fmt.Sprintf("%s/group-%d.db", dir, i), Options{})
		for range rounds {
			e := eachCount / saveConcurrently(b, each, capturers, eachCount).Seconds()
			g := groupCount / saveConcurrently(b, group, capturers, groupCount).Seconds()
			eachRates, groupRates, ratios = append(eachRates, e), append(groupRates, g), append(ratios, g/e)
		}
		each.Close()
		group.Close()
	}
	b.ReportMetric(median(eachRates), "fsync-each-captures/s")
	b.ReportMetric(median(groupRates), "group-captures/s")
	b.ReportMetric(median(ratios), "ratio")
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
