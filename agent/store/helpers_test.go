package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kogge-fleet/kogge/protocol"
)

// logBuffer collects log output for assertions; safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// testPath returns a store path in a fresh temporary directory.
func testPath(t testing.TB) string { return filepath.Join(t.TempDir(), "outbox.db") }

// openAt opens the store at path and closes it when the test ends.
func openAt(t testing.TB, path string, opts Options) *Store {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = discardLogger()
	}
	s, err := Open(path, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func openTest(t testing.TB, opts Options) *Store { return openAt(t, testPath(t), opts) }

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// randBytes returns n pseudo-random bytes from r.
func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// sample returns a valid capture with a sealed body of sealed bytes and
// blobs of the given sizes.
func sample(r *rand.Rand, sealed int, blobSizes ...int) Capture {
	c := Capture{
		Kind:   "kiosk.application",
		Office: "Buergeramt-Mitte",
		KeyID:  "office-key-1",
		Meta:   map[string]string{"service": "id-card", "terminal": "t-07"},
		Sealed: randBytes(r, sealed),
	}
	for i, n := range blobSizes {
		c.Blobs = append(c.Blobs, BlobData{Role: fmt.Sprintf("part-%d", i), Data: randBytes(r, n)})
	}
	return c
}

// mustSave saves c and fails the test on error.
func mustSave(t testing.TB, s *Store, c Capture) protocol.Record {
	t.Helper()
	rec, err := s.Save(testCtx(t), c)
	if err != nil {
		t.Fatalf("Save: %v", err)
	}
	return rec
}

// readAll reads a whole blob in chunks of 10,000 bytes.
func readAll(ctx context.Context, s *Store, blob uuid.UUID) ([]byte, error) {
	var out []byte
	p := make([]byte, 10000)
	for off := int64(0); ; {
		n, err := s.ReadBlob(ctx, blob, off, p)
		out = append(out, p[:n]...)
		off += int64(n)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

func sum(b []byte) protocol.Sum { return sha256.Sum256(b) }

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// pragma reads an integer pragma through the store's read pool.
func pragma(t testing.TB, s *Store, name string) int64 {
	t.Helper()
	var v int64
	if err := s.rdb.QueryRowContext(testCtx(t), "PRAGMA "+name).Scan(&v); err != nil {
		t.Fatalf("PRAGMA %s: %v", name, err)
	}
	return v
}

func newRand(t testing.TB) *rand.Rand {
	seed := uint64(time.Now().UnixNano())
	t.Logf("random seed %d", seed)
	return rand.New(rand.NewPCG(seed, 0x6b6f676765))
}

// clock is a settable clock for Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 12, 1, 9, 30, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock on by seconds.
func (c *clock) Advance(seconds int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Duration(seconds) * time.Second)
}
