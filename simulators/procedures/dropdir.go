package procedures

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/kogge-fleet/kogge/fleet-server/connectors/dropdir"
	"github.com/kogge-fleet/kogge/fleet-server/connectors/idpass"
	"github.com/kogge-fleet/kogge/fleet-server/connectors/owi"
)

// ParseFunc reads a dropped file (by its name and content) and returns the
// record id it is for and the record kind, or why the procedure rejects it.
type ParseFunc func(name string, b []byte) (key, kind string, err error)

// DropDirOptions configure a DropDir consumer.
type DropDirOptions struct {
	// Dir is the drop directory; it must exist.
	Dir string
	// Parse reads and validates a file.
	Parse ParseFunc
	// Prefix starts the reference numbers; default "DD".
	Prefix string
	// Interval is the scan interval of Run; default 10 ms.
	Interval time.Duration
	// LogFile, when set, receives every delivery as a JSON line.
	LogFile string
	Clock   func() time.Time
}

// DropDir is a drop-directory consumer: it imports every file (parse and
// validate), writes <name>.receipt with a reference number (first, then it
// moves the file into processed/), and rejects files it cannot read with a
// rejected receipt (the file moves into rejected/). Hidden files and
// receipts are ignored.
//
// Faults: FaultGarbage imports the file, writes a garbage receipt and the
// real one on the next scan (a procedure that writes receipts
// non-atomically); FaultTimeout leaves the file alone until Release;
// FaultRefuse writes a rejected receipt. Other faults are ignored.
type DropDir struct {
	opts   DropDirOptions
	ledger *Ledger
	faults

	mu      sync.Mutex
	held    map[string]bool
	garbled map[string]string // file name → reference, for the real receipt
	errs    []error
}

// NewDropDir returns a consumer of dir.
func NewDropDir(opts DropDirOptions) (*DropDir, error) {
	if opts.Parse == nil {
		return nil, errors.New("drop directory simulator: a parse function is required")
	}
	if opts.Prefix == "" {
		opts.Prefix = "DD"
	}
	if opts.Interval == 0 {
		opts.Interval = 10 * time.Millisecond
	}
	for _, sub := range []string{"processed", "rejected"} {
		if err := os.MkdirAll(filepath.Join(opts.Dir, sub), 0o700); err != nil {
			return nil, fmt.Errorf("drop directory simulator: %w", err)
		}
	}
	l, err := NewLedger(opts.Prefix, opts.LogFile, opts.Clock)
	if err != nil {
		return nil, err
	}
	return &DropDir{opts: opts, ledger: l, held: map[string]bool{}, garbled: map[string]string{}}, nil
}

// NewIDPassDrop returns a consumer for the idpass connector's gid-log files.
func NewIDPassDrop(opts DropDirOptions) (*DropDir, error) {
	opts.Parse = ParseIDPass
	if opts.Prefix == "" {
		opts.Prefix = "PA"
	}
	return NewDropDir(opts)
}

// NewOWIDrop returns a consumer for the owi connector's case records in the
// Kogge XML and JSON forms.
func NewOWIDrop(opts DropDirOptions) (*DropDir, error) {
	opts.Parse = ParseOWI
	if opts.Prefix == "" {
		opts.Prefix = "OWI"
	}
	return NewDropDir(opts)
}

// ParseIDPass parses and validates a gid-log file (.xml or .json).
func ParseIDPass(name string, b []byte) (key, kind string, err error) {
	format := strings.TrimPrefix(filepath.Ext(name), ".")
	g, err := idpass.Parse(format, b)
	if err != nil {
		return "", "", err
	}
	return g.RecordID, "kiosk.application", nil
}

// ParseOWI parses and validates a case record (.xml or .json).
func ParseOWI(name string, b []byte) (key, kind string, err error) {
	format := strings.TrimPrefix(filepath.Ext(name), ".")
	r, err := owi.Parse(format, b)
	if err != nil {
		return "", "", err
	}
	return r.RecordID, "enforcement.notice", nil
}

// Ledger returns what the consumer imported.
func (d *DropDir) Ledger() *Ledger { return d.ledger }

// Stats returns the unique and the duplicate deliveries.
func (d *DropDir) Stats() (unique, duplicates int) { return d.ledger.Stats() }

// Release lets the consumer import the files FaultTimeout held back.
func (d *DropDir) Release() {
	d.mu.Lock()
	defer d.mu.Unlock()
	clear(d.held)
}

// Held returns the number of files held back.
func (d *DropDir) Held() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.held)
}

// Errors returns the I/O errors the consumer met.
func (d *DropDir) Errors() []error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]error(nil), d.errs...)
}

// Close closes the log file.
func (d *DropDir) Close() error { return d.ledger.Close() }

// Run scans the directory every Interval until ctx ends.
func (d *DropDir) Run(ctx context.Context) error {
	t := time.NewTicker(d.opts.Interval)
	defer t.Stop()
	for {
		d.Scan()
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Scan imports the files in the directory once.
func (d *DropDir) Scan() {
	d.mu.Lock()
	defer d.mu.Unlock()
	entries, err := os.ReadDir(d.opts.Dir)
	if err != nil {
		d.errs = append(d.errs, err)
		return
	}
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || strings.HasPrefix(name, ".") || strings.HasSuffix(name, dropdir.ReceiptExt) || d.held[name] {
			continue
		}
		if err := d.importFile(name); err != nil {
			d.errs = append(d.errs, err)
		}
	}
}

func (d *DropDir) importFile(name string) error {
	stem := strings.TrimSuffix(name, filepath.Ext(name))
	path := filepath.Join(d.opts.Dir, name)
	if ref, ok := d.garbled[name]; ok {
		delete(d.garbled, name)
		return d.finish(stem, path, "processed", dropdir.Receipt{Reference: ref, Status: dropdir.StatusAccepted})
	}
	switch d.next() {
	case FaultTimeout:
		d.held[name] = true
		return nil
	case FaultRefuse:
		return d.finish(stem, path, "rejected", dropdir.Receipt{Status: dropdir.StatusRejected, Reason: "refused (scripted)"})
	case FaultGarbage:
		key, kind, err := d.parse(stem, name, path)
		if err != nil {
			return d.finish(stem, path, "rejected", dropdir.Receipt{Status: dropdir.StatusRejected, Reason: err.Error()})
		}
		ref, _ := d.ledger.Record(key, kind, 0)
		d.garbled[name] = ref
		return d.writeReceipt(stem, []byte(`{"refer`))
	}
	key, kind, err := d.parse(stem, name, path)
	if err != nil {
		return d.finish(stem, path, "rejected", dropdir.Receipt{Status: dropdir.StatusRejected, Reason: err.Error()})
	}
	ref, _ := d.ledger.Record(key, kind, 0)
	return d.finish(stem, path, "processed", dropdir.Receipt{Reference: ref, Status: dropdir.StatusAccepted})
}

func (d *DropDir) parse(stem, name, path string) (key, kind string, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", "", err
	}
	key, kind, err = d.opts.Parse(name, b)
	if err != nil {
		return "", "", err
	}
	if key != stem {
		return "", "", fmt.Errorf("file %s holds record %s", name, key)
	}
	return key, kind, nil
}

// finish writes the receipt, then moves the file into sub.
func (d *DropDir) finish(stem, path, sub string, r dropdir.Receipt) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := d.writeReceipt(stem, b); err != nil {
		return err
	}
	return os.Rename(path, filepath.Join(d.opts.Dir, sub, filepath.Base(path)))
}

func (d *DropDir) writeReceipt(stem string, b []byte) error {
	tmp := filepath.Join(d.opts.Dir, "."+stem+dropdir.ReceiptExt+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(d.opts.Dir, stem+dropdir.ReceiptExt))
}
