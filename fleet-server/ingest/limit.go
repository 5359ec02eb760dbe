package ingest

import (
	"log/slog"
	"sync"
	"time"
)

// bucket is a token bucket: tokens refill at rate per second up to burst.
type bucket struct {
	tokens float64
	last   time.Time
}

func (b *bucket) take(n, rate, burst float64, now time.Time) bool {
	if b.last.IsZero() {
		b.tokens = burst
	} else if d := now.Sub(b.last).Seconds(); d > 0 {
		b.tokens = min(burst, b.tokens+d*rate)
	}
	b.last = now
	if b.tokens < n {
		return false
	}
	b.tokens -= n
	return true
}

// deviceLimiter bounds the bytes per second each device may send, so that
// one flooding device cannot crowd out the others. Buckets of quiet devices
// are forgotten once full again.
type deviceLimiter struct {
	rate, burst float64

	mu      sync.Mutex
	buckets map[string]*bucket
	sweepAt int
}

func newDeviceLimiter(rate, burst float64) *deviceLimiter {
	return &deviceLimiter{rate: rate, burst: burst, buckets: map[string]*bucket{}, sweepAt: 1024}
}

func (l *deviceLimiter) allow(device string, n int, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[device]
	if !ok {
		if len(l.buckets) >= l.sweepAt {
			l.sweep(now)
		}
		b = &bucket{}
		l.buckets[device] = b
	}
	return b.take(float64(n), l.rate, l.burst, now)
}

// sweep forgets the buckets that have refilled: a new bucket starts full,
// so nothing changes for their devices.
func (l *deviceLimiter) sweep(now time.Time) {
	for id, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.buckets, id)
		}
	}
	l.sweepAt = max(1024, 2*len(l.buckets))
}

// rateLog writes warnings at a limited rate (a token bucket of burst
// messages, refilled at perSecond) and says how many it suppressed, so that
// a flood of bad input cannot flood the log.
type rateLog struct {
	log              *slog.Logger
	perSecond, burst float64

	mu         sync.Mutex
	b          bucket
	suppressed int
}

func (r *rateLog) Warn(now time.Time, msg string, args ...any) {
	r.mu.Lock()
	ok := r.b.take(1, r.perSecond, r.burst, now)
	n := r.suppressed
	if ok {
		r.suppressed = 0
	} else {
		r.suppressed++
	}
	r.mu.Unlock()
	if !ok {
		return
	}
	if n > 0 {
		args = append(args, "suppressed", n)
	}
	r.log.Warn(msg, args...)
}
