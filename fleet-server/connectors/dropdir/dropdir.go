// Package dropdir hands documents to a procedure through a drop directory,
// the file interface many case-management systems import from.
//
// For a record the bridge writes <record-id><ext> (for example
// 019a….xml) atomically: into a hidden temporary file in the same
// directory, fsync, rename, fsync of the directory. The procedure imports
// the file and writes <record-id>.receipt. The bridge waits for it (up to
// ReceiptTimeout) and reads the reference from it.
//
// Idempotency: before it writes, the bridge looks for the record's receipt
// and for its file. A receipt means the procedure has the case: its
// reference is the answer. A file without a receipt means an earlier
// attempt wrote it and the procedure has not yet confirmed it: the bridge
// waits for the receipt instead of writing again. So the procedure must
// write the receipt before it moves or deletes the imported file, and keep
// the receipt (it is the record of what it imported); it must ignore
// files whose names start with a dot.
//
// The receipt is either JSON, {"reference": "…", "status": "accepted"} or
// {"status": "rejected", "reason": "…"}, or plain text whose first line is
// the reference. A rejected receipt is a permanent failure. A receipt that
// cannot be read yet (half written) is read again until the timeout.
package dropdir

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kogge-fleet/kogge/fleet-server/bridge"
)

// ReceiptExt is the extension of receipt files.
const ReceiptExt = ".receipt"

// MaxReceipt bounds a receipt file.
const MaxReceipt = 16 << 10

// Config configures a drop directory.
type Config struct {
	// Dir is the drop directory; it must exist.
	Dir string
	// Ext is the extension of the files written, with the dot (".xml").
	Ext string
	// FileMode is the mode of the files written; default 0640 (the
	// procedure often runs as another user of the same group).
	FileMode fs.FileMode
	// ReceiptTimeout bounds the wait for a receipt; default 2 min. The
	// file stays when it runs out: the next attempt waits again.
	ReceiptTimeout time.Duration
	// PollInterval is how often the bridge looks for the receipt;
	// default 200 ms.
	PollInterval time.Duration
}

// Defaults of Config.
const (
	DefaultReceiptTimeout = 2 * time.Minute
	DefaultPollInterval   = 200 * time.Millisecond
)

// Dir is a drop directory.
type Dir struct {
	cfg Config
}

// New checks cfg and returns the drop directory.
func New(cfg Config) (*Dir, error) {
	if cfg.FileMode == 0 {
		cfg.FileMode = 0o640
	}
	if cfg.ReceiptTimeout == 0 {
		cfg.ReceiptTimeout = DefaultReceiptTimeout
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if !strings.HasPrefix(cfg.Ext, ".") || len(cfg.Ext) < 2 || cfg.Ext == ReceiptExt || strings.ContainsAny(cfg.Ext, `/\`) {
		return nil, fmt.Errorf("drop directory: file extension %q must start with a dot and not be %s", cfg.Ext, ReceiptExt)
	}
	if cfg.ReceiptTimeout < 0 || cfg.PollInterval <= 0 {
		return nil, errors.New("drop directory: receipt timeout and poll interval must be positive")
	}
	st, err := os.Stat(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("drop directory: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("drop directory %s is not a directory", cfg.Dir)
	}
	return &Dir{cfg: cfg}, nil
}

// Path returns the file name of a record's document.
func (d *Dir) Path(id string) string { return filepath.Join(d.cfg.Dir, id+d.cfg.Ext) }

// ReceiptPath returns the file name of a record's receipt.
func (d *Dir) ReceiptPath(id string) string { return filepath.Join(d.cfg.Dir, id+ReceiptExt) }

// Deliver drops content for the record id (unless the record's file or
// receipt is there already) and waits for the receipt.
func (d *Dir) Deliver(ctx context.Context, id string, content []byte) (bridge.Receipt, error) {
	if id == "" || strings.ContainsAny(id, `/\`) || strings.HasPrefix(id, ".") {
		return bridge.Receipt{}, bridge.Permanent(fmt.Errorf("record id %q cannot name a file", id))
	}
	rc, found, err := d.receipt(id)
	if found {
		return rc, err
	}
	if _, err := os.Stat(d.Path(id)); errors.Is(err, fs.ErrNotExist) {
		if err := d.write(id, content); err != nil {
			return bridge.Receipt{}, err
		}
	} else if err != nil {
		return bridge.Receipt{}, fmt.Errorf("drop directory: %w", err)
	}
	return d.wait(ctx, id)
}

// write puts content into the record's file atomically.
func (d *Dir) write(id string, content []byte) error {
	f, err := os.CreateTemp(d.cfg.Dir, "."+id+"-*.tmp")
	if err != nil {
		return fmt.Errorf("drop directory: %w", err)
	}
	tmp := f.Name()
	fail := func(err error) error {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("drop directory: write %s: %w", filepath.Base(d.Path(id)), err)
	}
	if _, err := f.Write(content); err != nil {
		return fail(err)
	}
	if err := f.Chmod(d.cfg.FileMode); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, d.Path(id)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("drop directory: %w", err)
	}
	return syncDir(d.cfg.Dir)
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("drop directory: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("drop directory: sync %s: %w", dir, err)
	}
	return nil
}

// wait polls for the receipt until it is readable, the timeout passes or
// ctx ends.
func (d *Dir) wait(ctx context.Context, id string) (bridge.Receipt, error) {
	timeout := time.NewTimer(d.cfg.ReceiptTimeout)
	defer timeout.Stop()
	tick := time.NewTicker(d.cfg.PollInterval)
	defer tick.Stop()
	var last error
	for {
		rc, found, err := d.receipt(id)
		if found && (err == nil || errors.Is(err, bridge.ErrPermanent)) {
			return rc, err
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			return bridge.Receipt{}, fmt.Errorf("drop directory: no receipt for %s yet (%w); the file stays, the next attempt waits for it", id, ctx.Err())
		case <-timeout.C:
			if last != nil {
				return bridge.Receipt{}, fmt.Errorf("drop directory: receipt for %s unreadable after %v: %w", id, d.cfg.ReceiptTimeout, last)
			}
			return bridge.Receipt{}, fmt.Errorf("drop directory: no receipt for %s within %v; the file stays, the next attempt waits for it", id, d.cfg.ReceiptTimeout)
		case <-tick.C:
		}
	}
}

// receipt reads the record's receipt: found is false when there is none.
// An unreadable receipt is found with a transient error (it may be half
// written); a rejection is found with a permanent one.
func (d *Dir) receipt(id string) (rc bridge.Receipt, found bool, err error) {
	f, err := os.Open(d.ReceiptPath(id))
	if errors.Is(err, fs.ErrNotExist) {
		return rc, false, nil
	}
	if err != nil {
		return rc, true, fmt.Errorf("drop directory: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxReceipt+1))
	if err != nil {
		return rc, true, fmt.Errorf("drop directory: read receipt for %s: %w", id, err)
	}
	if len(b) > MaxReceipt {
		return rc, true, bridge.Permanent(fmt.Errorf("receipt for %s is larger than %d bytes", id, MaxReceipt))
	}
	r, err := ParseReceipt(b)
	if err != nil {
		return rc, true, fmt.Errorf("receipt for %s: %w", id, err)
	}
	if r.Status == StatusRejected {
		return rc, true, bridge.Permanent(fmt.Errorf("procedure rejected %s: %s", id, r.Reason))
	}
	return bridge.Receipt{Reference: r.Reference, Note: r.Note}, true, nil
}

// Receipt statuses.
const (
	StatusAccepted = "accepted"
	StatusRejected = "rejected"
)

// Receipt is the content of a receipt file.
type Receipt struct {
	Reference string `json:"reference,omitempty"`
	Status    string `json:"status,omitempty"`
	Reason    string `json:"reason,omitempty"`
	Note      string `json:"note,omitempty"`
}

// ErrUnreadable: the receipt is empty, half written or not a receipt.
var ErrUnreadable = errors.New("unreadable receipt")

// ParseReceipt reads a receipt file: JSON, or text whose first line is the
// reference.
func ParseReceipt(b []byte) (Receipt, error) {
	if len(b) > MaxReceipt {
		return Receipt{}, fmt.Errorf("%w: larger than %d bytes", ErrUnreadable, MaxReceipt)
	}
	if !utf8.Valid(b) {
		return Receipt{}, fmt.Errorf("%w: not UTF-8 text", ErrUnreadable)
	}
	t := bytes.TrimSpace(b)
	if len(t) == 0 {
		return Receipt{}, fmt.Errorf("%w: empty", ErrUnreadable)
	}
	var r Receipt
	if t[0] == '{' {
		dec := json.NewDecoder(bytes.NewReader(t))
		if err := dec.Decode(&r); err != nil || dec.More() {
			return Receipt{}, fmt.Errorf("%w: not the JSON expected", ErrUnreadable)
		}
		if r.Status == "" {
			r.Status = StatusAccepted
		}
	} else {
		line, _, _ := strings.Cut(string(t), "\n")
		r = Receipt{Reference: strings.TrimSpace(line), Status: StatusAccepted}
	}
	r.Reference = strings.TrimSpace(r.Reference)
	switch r.Status {
	case StatusAccepted:
		if r.Reference == "" {
			return Receipt{}, fmt.Errorf("%w: accepted without a reference", ErrUnreadable)
		}
	case StatusRejected:
		if r.Reason == "" {
			r.Reason = "no reason given"
		}
	default:
		return Receipt{}, fmt.Errorf("%w: unknown status", ErrUnreadable)
	}
	if len(r.Reference) > 256 || len(r.Reason) > 512 || len(r.Note) > 512 {
		return Receipt{}, fmt.Errorf("%w: fields too long", ErrUnreadable)
	}
	for _, s := range []string{r.Reference, r.Reason, r.Note} {
		for _, c := range s {
			if c < 0x20 || c == 0x7f {
				return Receipt{}, fmt.Errorf("%w: control characters", ErrUnreadable)
			}
		}
	}
	return r, nil
}
