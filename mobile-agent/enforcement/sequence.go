package enforcement

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// Sequencer hands out the sequence numbers of notice numbers: 1, 2, 3 …,
// each once, surviving restarts. Next must persist the number before it
// returns it, so that a crash may skip a number but never repeat one. The
// app may implement it on its own store (a row in the device's SQLite
// file); MemorySequencer and FileSequencer are ready-made.
type Sequencer interface {
	Next(ctx context.Context) (uint64, error)
}

var (
	_ Sequencer = (*MemorySequencer)(nil)
	_ Sequencer = (*FileSequencer)(nil)
)

// MemorySequencer counts in memory, for tests and simulations. It is safe
// for concurrent use.
type MemorySequencer struct {
	mu   sync.Mutex
	last uint64
}

// NewMemorySequencer returns a sequencer whose first number is last+1.
func NewMemorySequencer(last uint64) *MemorySequencer { return &MemorySequencer{last: last} }

// Next returns the next number.
func (m *MemorySequencer) Next(ctx context.Context) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.last >= maxSeq {
		return 0, errSeqExhausted
	}
	m.last++
	return m.last, nil
}

var errSeqExhausted = fmt.Errorf("notice sequence exhausted at %d: give the device a new prefix", uint64(maxSeq))

// FileSequencer keeps the last number in a small file, replaced
// atomically (write to a temporary file, fsync, rename, fsync the
// directory) before Next returns. It is safe for concurrent use within
// one process; only one process may use a file.
//
// If the file is lost (a wiped device), numbers start again at 1 and
// would repeat: give such a device a new prefix.
type FileSequencer struct {
	mu   sync.Mutex
	path string
	last uint64
}

// OpenFileSequencer opens the sequence file at path, creating it (with 0)
// if it does not exist. A file that does not hold a number is an error:
// guessing would repeat notice numbers.
func OpenFileSequencer(path string) (*FileSequencer, error) {
	f := &FileSequencer{path: path}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := f.store(0); err != nil {
			return nil, err
		}
		return f, nil
	case err != nil:
		return nil, fmt.Errorf("open notice sequence: %w", err)
	}
	s := strings.TrimSpace(string(b))
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || len(b) > 32 || !allDigits(s) {
		return nil, fmt.Errorf("notice sequence file %s does not hold a number: restore it from a backup, or write the last issued sequence number into it; starting over would repeat notice numbers", path)
	}
	f.last = n
	return f, nil
}

// Last returns the number handed out last (0: none yet).
func (f *FileSequencer) Last() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last
}

// Next persists and returns the next number.
func (f *FileSequencer) Next(ctx context.Context) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.last >= maxSeq {
		return 0, errSeqExhausted
	}
	n := f.last + 1
	if err := f.store(n); err != nil {
		return 0, err
	}
	f.last = n
	return n, nil
}

func (f *FileSequencer) store(n uint64) (err error) {
	dir := filepath.Dir(f.path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(f.path)+".*")
	if err != nil {
		return fmt.Errorf("store notice sequence: %w", err)
	}
	defer func() {
		if err != nil {
			os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.WriteString(strconv.FormatUint(n, 10) + "\n"); err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), f.path)
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		return fmt.Errorf("store notice sequence %s: %w", f.path, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
