package open311

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/google/uuid"
)

// JournalFile is the name of the journal in the state directory.
const JournalFile = "open311.journal"

// Journal states of a record.
const (
	// statePosting: a POST was sent or is about to be; its outcome is
	// unknown until a lookup or an answer says.
	statePosting = "posting"
	// stateToken: the server answered with a token; the request id is
	// still to be resolved.
	stateToken = "token"
	// stateDone: the server created the request; Request is its id.
	stateDone = "done"
)

// entry is one record's line in the journal.
type entry struct {
	ID      uuid.UUID `json:"id"`
	State   string    `json:"state"`
	Token   ID        `json:"token,omitempty"`
	Request ID        `json:"request,omitempty"`
	// Status and Notes are the last status reported to the fleet server.
	Status string `json:"status,omitempty"`
	Notes  string `json:"notes,omitempty"`
	// At is when the entry was written.
	At      time.Time `json:"at"`
	Deleted bool      `json:"deleted,omitempty"`
}

// journal is the connector's durable idempotency map: an append-only file
// of JSON lines, each the new state of one record, fsynced before the
// connector acts on it. It is compacted when opened.
type journal struct {
	path string

	mu      sync.Mutex
	f       *os.File
	entries map[uuid.UUID]entry
	lines   int
}

// maxJournalLine bounds a line of the journal.
const maxJournalLine = 64 << 10

// openJournal opens the journal in dir, forgetting records finished before
// forget (their redelivery is long impossible: the server erases what is
// undelivered after its hard limit).
func openJournal(dir string, forget time.Time) (*journal, error) {
	if dir == "" {
		return nil, errors.New("the state directory is not set: the connector keeps its idempotency journal there")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	j := &journal{path: filepath.Join(dir, JournalFile), entries: map[uuid.UUID]entry{}}
	b, err := os.ReadFile(j.path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read journal: %w", err)
	}
	if j.entries, err = parseJournal(b); err != nil {
		return nil, fmt.Errorf("journal %s: %w", j.path, err)
	}
	for id, e := range j.entries {
		if e.State == stateDone && e.At.Before(forget) {
			delete(j.entries, id)
		}
	}
	if err := j.compact(); err != nil {
		return nil, err
	}
	return j, nil
}

// parseJournal replays journal lines. A last line without its newline is a
// write cut short by a crash and is ignored; any other bad line is an
// error, for a person to look at (the journal prevents duplicate cases).
func parseJournal(b []byte) (map[uuid.UUID]entry, error) {
	m := map[uuid.UUID]entry{}
	lines := bytes.Split(b, []byte("\n"))
	for i, text := range lines {
		if len(bytes.TrimSpace(text)) == 0 {
			continue
		}
		var e entry
		err := json.Unmarshal(text, &e)
		if err != nil || len(text) > maxJournalLine || e.ID == uuid.Nil || !knownState(e.State) {
			if i == len(lines)-1 {
				break // cut short by a crash: the action it announced did not start
			}
			return nil, fmt.Errorf("line %d is damaged", i+1)
		}
		if e.Deleted {
			delete(m, e.ID)
		} else {
			m[e.ID] = e
		}
	}
	return m, nil
}

func knownState(s string) bool { return s == statePosting || s == stateToken || s == stateDone }

// compact rewrites the journal with one line per record.
func (j *journal) compact() error {
	ids := make([]uuid.UUID, 0, len(j.entries))
	for id := range j.entries {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(a, b int) bool { return bytes.Compare(ids[a][:], ids[b][:]) < 0 })
	var buf bytes.Buffer
	for _, id := range ids {
		line, err := json.Marshal(j.entries[id])
		if err != nil {
			return err
		}
		buf.Write(line)
		buf.WriteByte('\n')
	}
	tmp := j.path + ".tmp"
	if err := writeSync(tmp, buf.Bytes()); err != nil {
		return fmt.Errorf("compact journal: %w", err)
	}
	if err := os.Rename(tmp, j.path); err != nil {
		return fmt.Errorf("compact journal: %w", err)
	}
	if err := syncDir(filepath.Dir(j.path)); err != nil {
		return err
	}
	f, err := os.OpenFile(j.path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open journal: %w", err)
	}
	if j.f != nil {
		j.f.Close()
	}
	j.f, j.lines = f, len(ids)
	return nil
}

func writeSync(name string, b []byte) error {
	f, err := os.OpenFile(name, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync state directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync state directory: %w", err)
	}
	return nil
}

func (j *journal) get(id uuid.UUID) (entry, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	e, ok := j.entries[id]
	return e, ok
}

// put appends the record's new state durably.
func (j *journal) put(e entry) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	line, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if _, err := j.f.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("write journal: %w", err)
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("sync journal: %w", err)
	}
	if e.Deleted {
		delete(j.entries, e.ID)
	} else {
		j.entries[e.ID] = e
	}
	j.lines++
	if j.lines > 1024 && j.lines > 4*len(j.entries) {
		return j.compact()
	}
	return nil
}

// open returns the entries in state done whose status is not closed and
// that were written after since, oldest first.
func (j *journal) open(since time.Time) []entry {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []entry
	for _, e := range j.entries {
		if e.State == stateDone && e.Status != "closed" && e.At.After(since) {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].At.Before(out[b].At) })
	return out
}

func (j *journal) close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return nil
	}
	err := j.f.Close()
	j.f = nil
	return err
}
