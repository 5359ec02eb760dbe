package fleet

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/google/uuid"
)

// Entry is one capture that returned a receipt: the device promised the
// citizen (or the warden) that it is saved. Every entry must end up
// delivered exactly once.
type Entry struct {
	Record uuid.UUID `json:"record"`
	Device string    `json:"device"`
	Kind   string    `json:"kind"`
	Office string    `json:"office"`
	Seq    uint64    `json:"seq"`
	KeyID  string    `json:"key_id,omitempty"`
	Blobs  int       `json:"blobs"`
	Bytes  int64     `json:"bytes"` // body and blobs, in plain
	At     time.Time `json:"at"`
}

// Validate checks an entry read back from a ledger file.
func (e Entry) Validate() error {
	switch {
	case e.Record == uuid.Nil:
		return errors.New("ledger entry without a record id")
	case e.Device == "":
		return fmt.Errorf("ledger entry %v without a device", e.Record)
	case e.Kind == "" || e.Office == "":
		return fmt.Errorf("ledger entry %v without a kind or an office", e.Record)
	}
	return nil
}

// Ledger is the append-only list of receipts, kept in memory and written
// to a file of JSON lines (one Entry per line) as they come. It is safe for
// concurrent use.
type Ledger struct {
	mu      sync.Mutex
	file    *os.File
	w       *bufio.Writer
	entries []Entry
	err     error // the first write error; the ledger is useless after it
}

// OpenLedger creates (or truncates) the ledger file at path; an empty path
// keeps the ledger in memory only.
func OpenLedger(path string) (*Ledger, error) {
	l := &Ledger{}
	if path == "" {
		return l, nil
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open ledger: %w", err)
	}
	l.file, l.w = f, bufio.NewWriterSize(f, 64<<10)
	return l, nil
}

// Add appends an entry.
func (l *Ledger) Add(e Entry) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return l.err
	}
	l.entries = append(l.entries, e)
	if l.w == nil {
		return nil
	}
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	b = append(b, '\n')
	if _, err := l.w.Write(b); err != nil {
		l.err = fmt.Errorf("write ledger %s: %w", l.file.Name(), err)
		return l.err
	}
	return nil
}

// Len is the number of entries.
func (l *Ledger) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.entries)
}

// Entries returns a copy of the entries in the order they were added.
func (l *Ledger) Entries() []Entry {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Entry(nil), l.entries...)
}

// Flush writes buffered entries to the file.
func (l *Ledger) Flush() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.w == nil || l.err != nil {
		return l.err
	}
	if err := l.w.Flush(); err != nil {
		l.err = fmt.Errorf("write ledger %s: %w", l.file.Name(), err)
	}
	return l.err
}

// Close flushes and syncs the file.
func (l *Ledger) Close() error {
	err := l.Flush()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.file == nil {
		return err
	}
	serr := l.file.Sync()
	cerr := l.file.Close()
	l.file, l.w = nil, nil
	return errors.Join(err, serr, cerr)
}

// ReadLedger reads the entries of a ledger file. A last line cut short (the
// writer died in the middle of it) is skipped and counted in torn; any
// other bad line is an error.
func ReadLedger(r io.Reader) (entries []Entry, torn int, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	line := 0
	pendingBad := error(nil)
	for sc.Scan() {
		line++
		if pendingBad != nil {
			return nil, 0, pendingBad
		}
		b := sc.Bytes()
		if len(b) == 0 {
			continue
		}
		var e Entry
		if err := json.Unmarshal(b, &e); err != nil {
			// Only the last line may be torn; decide when the next one
			// comes.
			pendingBad = fmt.Errorf("ledger line %d: %w", line, err)
			continue
		}
		if err := e.Validate(); err != nil {
			return nil, 0, fmt.Errorf("ledger line %d: %w", line, err)
		}
		entries = append(entries, e)
	}
	if err := sc.Err(); err != nil {
		return nil, 0, fmt.Errorf("read ledger: %w", err)
	}
	if pendingBad != nil {
		torn = 1
	}
	return entries, torn, nil
}
